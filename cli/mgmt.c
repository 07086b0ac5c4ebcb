/*
 * mgmt.c - management commands of `sluice` over the ADMIN api (mgmt.h).
 *
 * Each command sends one admin verb (docs/protocol.md 4.29) and prints the
 * JSON answer as a table, or as is with --format json. The help table
 * (mgmt_help.c) is the one source of every command's --help text (usage,
 * what it does, an example); --help never contacts a broker.
 *
 * Files (mgmt_int.h between them): this one the helpers (the admin call,
 * JSON fields) and the broker-wide, queue, group, topic and dlq commands;
 * mgmt_cluster.c the cluster commands (partition reassign, cluster
 * rebalance, add-node, remove-node); mgmt_help.c the help table.
 */
#include "cli/mgmt.h"
#include "cli/mgmt_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "protocol/parse.h"

/* ---- helpers ---------------------------------------------------------- */

int mgmt_usage_err(const char *fmt, ...)
{
    va_list ap;
    fputs("sluice: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (--help for usage)\n", stderr);
    return EX_USAGE;
}

static int exit_for(sluice_err err)
{
    if (err == SLUICE_ERR_DISCONNECTED || SLUICE_ERR_IS_SYS(err))
        return EX_UNREACHABLE;
    if (err == SLUICE_ERR_TIMEOUT)
        return EX_TIMEOUT;
    return EX_FAIL;
}

void mgmt_kv_add(kvs *a, const char *k, const char *v)
{
    if (a->n < 64) {
        a->v[a->n].key = (char *)k;
        a->v[a->n].value = (char *)v;
        a->n++;
    }
}

/* Call verb; on success *out is the parsed answer (cJSON_Delete) and, if
 * raw is not NULL, the text (free). Returns an exit code. */
int mgmt_call(sluice_conf *conf, const char *verb, const kvs *args,
              const char *what, cJSON **out, char **raw)
{
    return mgmt_call_ex(conf, verb, args, what, out, raw, 0);
}

/* call, but with busy_ok a SLUICE_ERR_BUSY answer ("retry") returns
 * EX_BUSY_RETRY without printing anything. */
int mgmt_call_ex(sluice_conf *conf, const char *verb, const kvs *args,
                 const char *what, cJSON **out, char **raw, int busy_ok)
{
    sluice_admin *a = NULL;
    char errstr[512], *json = NULL;
    sluice_err err = sluice_admin_new(conf, &a, errstr, sizeof(errstr));
    if (err) {
        fprintf(stderr, "sluice: %s\n",
                errstr[0] ? errstr : sluice_strerror(err));
        return exit_for(err);
    }
    err = sluice_admin_call(a, verb, args ? args->v : NULL, args ? args->n : 0,
                            &json, NULL);
    sluice_admin_free(a);
    if (err == SLUICE_ERR_BUSY && busy_ok)
        return EX_BUSY_RETRY;
    if (err) {
        const char *d = sluice_errstr();
        if (d && *d) /* names the verb and the problem */
            fprintf(stderr, "sluice: %s\n", d);
        else
            fprintf(stderr, "sluice: %s: %s\n", what, sluice_strerror(err));
        return exit_for(err);
    }
    *out = cJSON_Parse(json);
    if (!*out) {
        fprintf(stderr, "sluice: %s: the broker's answer is not JSON\n", what);
        sluice_free(json);
        return EX_FAIL;
    }
    if (raw)
        *raw = json;
    else
        sluice_free(json);
    return EX_OK;
}

int64_t mgmt_num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : -1;
}

const char *mgmt_str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* --format table|json (json: print the answer as the broker sent it). */
static int format_opt(int argc, char **argv, int *i, int *json)
{
    if (strcmp(argv[*i], "--format"))
        return 0;
    if (*i + 1 >= argc ||
        (strcmp(argv[*i + 1], "table") && strcmp(argv[*i + 1], "json")))
        return -1;
    *json = !strcmp(argv[++*i], "json");
    return 1;
}

static void fmt_age(int64_t ms, char *buf, size_t len)
{
    if (ms < 0)
        snprintf(buf, len, "-");
    else if (ms < 10000)
        snprintf(buf, len, "%" PRId64 "ms", ms);
    else if (ms < 600000)
        snprintf(buf, len, "%" PRId64 "s", ms / 1000);
    else if (ms < 36000000)
        snprintf(buf, len, "%" PRId64 "m", ms / 60000);
    else
        snprintf(buf, len, "%" PRId64 "h", ms / 3600000);
}

/* ---- commands ---------------------------------------------------------- */

static int simple(sluice_conf *conf, const char *verb, int argc, char **argv,
                  int *json)
{
    for (int i = 0; i < argc; i++) {
        int f = format_opt(argc, argv, &i, json);
        if (f < 0)
            return mgmt_usage_err("--format needs table or json");
        if (!f)
            return mgmt_usage_err("%s: unexpected argument '%s'", verb,
                                  argv[i]);
    }
    (void)conf;
    return EX_OK;
}

/* A list gathered from every node of a cluster names the nodes that did
 * not answer in "left_out": say so, their groups are missing. */
static void warn_left_out(const cJSON *o, const char *what)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(o, "left_out"))
        fprintf(stderr,
                "sluice: %s: node %" PRId64 " did not answer: the groups it "
                "coordinates are missing (retry in a few seconds)\n",
                what, (int64_t)v->valuedouble);
}

static int cmd_queues(sluice_conf *conf, int argc, char **argv)
{
    int json = 0, rc = simple(conf, "queues", argc, argv, &json);
    cJSON *o, *q;
    char *raw = NULL;
    if (rc)
        return rc;
    rc = mgmt_call(conf, "queues", NULL, "queues", &o, &raw);
    if (rc)
        return rc;
    if (json) {
        printf("%s\n", raw);
    } else {
        printf("%-24s %-20s %8s %9s %8s %10s %10s %6s\n", "TOPIC", "GROUP",
               "READY", "IN-FLIGHT", "DELAYED", "DLQ", "CONSUMERS", "OLDEST");
        cJSON_ArrayForEach(q, cJSON_GetObjectItem(o, "queues"))
        {
            char age[32], dlq[48];
            fmt_age(mgmt_num(q, "oldest_ready_age_ms"), age, sizeof(age));
            snprintf(dlq, sizeof(dlq), "%" PRId64 "/%" PRId64,
                     mgmt_num(q, "dlq_pending"), mgmt_num(q, "dlq_total"));
            printf("%-24s %-20s %8" PRId64 " %9" PRId64 " %8" PRId64
                   " %10s %10" PRId64 " %6s\n",
                   mgmt_str(q, "topic"), mgmt_str(q, "group"),
                   mgmt_num(q, "ready"), mgmt_num(q, "in_flight"),
                   mgmt_num(q, "delayed"), dlq, mgmt_num(q, "consumers"), age);
        }
        warn_left_out(o, "queues");
    }
    sluice_free(raw);
    cJSON_Delete(o);
    return EX_OK;
}

static int cmd_connection_close(sluice_conf *conf, int argc, char **argv)
{
    kvs a = {0};
    const char *id = NULL;
    cJSON *o;
    int rc;
    int64_t n;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--reason") && i + 1 < argc)
            mgmt_kv_add(&a, "reason", argv[++i]);
        else if (argv[i][0] == '-')
            return mgmt_usage_err("connections close: unknown option '%s'",
                                  argv[i]);
        else if (id)
            return mgmt_usage_err("connections close: unexpected argument '%s'",
                                  argv[i]);
        else
            id = argv[i];
    }
    if (!id || sl_parse_i64(id, &n) != 0 || n < 1)
        return mgmt_usage_err("connections close: expected a connection ID (a "
                              "number from `sluice connections`)");
    mgmt_kv_add(&a, "id", id);
    rc = mgmt_call(conf, "connection.close", &a, "connections close", &o, NULL);
    if (rc)
        return rc;
    printf("closed connection %" PRId64 " (%s)\n", mgmt_num(o, "id"),
           mgmt_str(o, "peer") ? mgmt_str(o, "peer") : "-");
    cJSON_Delete(o);
    return EX_OK;
}

/* "sub/sub2" names of a connection's subscriptions or queue groups */
static void conn_subs(const cJSON *c, char *buf, size_t len)
{
    const cJSON *x;
    size_t n = 0;
    buf[0] = 0;
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(c, "subscriptions"))
    {
        const char *d = mgmt_str(x, "destination");
        n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s",
                              n ? "," : "", d ? d : "?");
    }
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(c, "groups"))
    {
        n += (size_t)snprintf(
            buf + n, n < len ? len - n : 0, "%s%s/%s", n ? "," : "",
            mgmt_str(x, "group") ? mgmt_str(x, "group") : "?",
            mgmt_str(x, "topic") ? mgmt_str(x, "topic") : "?");
    }
    if (n >= len && len > 4)
        memcpy(buf + len - 4, "...", 4);
    if (!buf[0] && len > 1)
        snprintf(buf, len, "-");
}

static int cmd_connections(sluice_conf *conf, int argc, char **argv)
{
    int json = 0, rc;
    cJSON *o, *c;
    char *raw = NULL;
    if (argc > 0 && !strcmp(argv[0], "close"))
        return cmd_connection_close(conf, argc - 1, argv + 1);
    rc = simple(conf, "connections", argc, argv, &json);
    if (rc)
        return rc;
    rc = mgmt_call(conf, "connections", NULL, "connections", &o, &raw);
    if (rc)
        return rc;
    if (json) {
        printf("%s\n", raw);
    } else {
        printf("%-6s %-8s %-22s %-12s %8s %12s %12s %9s %s\n", "ID", "PROTOCOL",
               "PEER", "USER", "AGE", "BYTES-IN", "BYTES-OUT", "IN-FLIGHT",
               "SUBSCRIPTIONS");
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(o, "connections"))
        {
            char age[32], subs[256];
            fmt_age(mgmt_num(c, "age_ms"), age, sizeof(age));
            conn_subs(c, subs, sizeof(subs));
            printf("%-6" PRId64 " %-8s %-22s %-12s %8s %12" PRId64 " %12" PRId64
                   " %9" PRId64 " %s\n",
                   mgmt_num(c, "id"),
                   mgmt_str(c, "protocol") ? mgmt_str(c, "protocol") : "-",
                   mgmt_str(c, "peer") ? mgmt_str(c, "peer") : "-",
                   mgmt_str(c, "user") ? mgmt_str(c, "user") : "-", age,
                   mgmt_num(c, "bytes_in"), mgmt_num(c, "bytes_out"),
                   mgmt_num(c, "in_flight") < 0 ? 0 : mgmt_num(c, "in_flight"),
                   subs);
        }
    }
    sluice_free(raw);
    cJSON_Delete(o);
    return EX_OK;
}

static int cmd_status(sluice_conf *conf, int argc, char **argv)
{
    int json = 0, rc = simple(conf, "status", argc, argv, &json);
    cJSON *o, *l, *n;
    char *raw = NULL;
    if (rc)
        return rc;
    rc = mgmt_call(conf, "status", NULL, "status", &o, &raw);
    if (rc)
        return rc;
    if (json) {
        printf("%s\n", raw);
    } else {
        l = cJSON_GetObjectItem(o, "listeners");
        n = cJSON_GetObjectItem(o, "node");
        printf("version:     %s\n", mgmt_str(o, "version"));
        printf("uptime:      %" PRId64 " s\n", mgmt_num(o, "uptime_s"));
        printf("data dir:    %s\n", mgmt_str(o, "data_dir"));
        printf("binary:      %s\n", mgmt_str(l, "binary"));
        printf("stomp:       %s\n", mgmt_str(l, "stomp"));
        printf("http:        %s\n",
               mgmt_str(l, "http") ? mgmt_str(l, "http") : "-");
        printf("node:        %s pid %" PRId64 " (%s)\n",
               mgmt_str(n, "hostname"), mgmt_num(n, "pid"),
               mgmt_str(n, "role"));
        printf("topics:      %" PRId64 "\n", mgmt_num(o, "topics"));
        printf("connections: %" PRId64 "\n", mgmt_num(o, "connections"));
    }
    sluice_free(raw);
    cJSON_Delete(o);
    return EX_OK;
}

static int cmd_version(sluice_conf *conf, int argc, char **argv)
{
    cJSON *o;
    int rc;
    if (argc > 0)
        return mgmt_usage_err("version: unexpected argument '%s'", argv[0]);
    printf("sluice %s\n", sluice_version());
    fflush(stdout);
    rc = mgmt_call(conf, "version", NULL, "broker version", &o, NULL);
    if (rc)
        return rc;
    printf("sluiced %s\n", mgmt_str(o, "version"));
    cJSON_Delete(o);
    return EX_OK;
}

/* queue purge|peek TOPIC --group G [--count N] [--format json|raw] */
static int cmd_queue(sluice_conf *conf, int argc, char **argv)
{
    const char *sub = argv[0], *topic = NULL, *group = NULL, *count = NULL;
    int raw_fmt = 0, rc;
    kvs a = {0};
    cJSON *o, *r;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--group") && i + 1 < argc) {
            group = argv[++i];
        } else if (!strcmp(argv[i], "--count") && i + 1 < argc &&
                   !strcmp(sub, "peek")) {
            int64_t n;
            count = argv[++i];
            if (sl_parse_i64(count, &n) || n < 1 || n > 1000)
                return mgmt_usage_err("--count needs a number in 1..1000");
        } else if (!strcmp(argv[i], "--format") && i + 1 < argc &&
                   !strcmp(sub, "peek")) {
            const char *f = argv[++i];
            if (strcmp(f, "json") && strcmp(f, "raw"))
                return mgmt_usage_err("--format needs json or raw");
            raw_fmt = !strcmp(f, "raw");
        } else if (argv[i][0] == '-') {
            return mgmt_usage_err("queue %s: unknown option '%s'", sub,
                                  argv[i]);
        } else if (!topic) {
            topic = argv[i];
        } else {
            return mgmt_usage_err("queue %s: unexpected argument '%s'", sub,
                                  argv[i]);
        }
    }
    if (!topic)
        return mgmt_usage_err("queue %s: missing topic", sub);
    if (!group || !*group)
        return mgmt_usage_err("queue %s: --group is required", sub);
    mgmt_kv_add(&a, "topic", topic);
    mgmt_kv_add(&a, "group", group);
    if (count)
        mgmt_kv_add(&a, "count", count);
    rc = mgmt_call(conf, !strcmp(sub, "purge") ? "queue.purge" : "queue.peek",
                   &a, !strcmp(sub, "purge") ? "queue purge" : "queue peek", &o,
                   NULL);
    if (rc)
        return rc;
    if (!strcmp(sub, "purge")) {
        printf("purged %" PRId64 " records of queue group %s on %s\n",
               mgmt_num(o, "purged"), group, topic);
    } else {
        cJSON_ArrayForEach(r, cJSON_GetObjectItem(o, "records"))
        {
            if (raw_fmt) {
                const char *v = mgmt_str(r, "value");
                printf("%s\n", v ? v : "");
            } else {
                char *line = cJSON_PrintUnformatted(r);
                if (line)
                    printf("%s\n", line);
                free(line);
            }
        }
    }
    cJSON_Delete(o);
    return EX_OK;
}

static int cmd_group(sluice_conf *conf, int argc, char **argv)
{
    const char *sub = argv[0], *group = NULL, *topic = NULL, *to = NULL;
    char value[32] = "";
    int ntos = 0, rc;
    kvs a = {0};
    cJSON *o, *p;
    for (int i = 1; i < argc; i++) {
        int reset = !strcmp(sub, "reset");
        if (reset && !strcmp(argv[i], "--topic") && i + 1 < argc) {
            topic = argv[++i];
        } else if (reset && !strcmp(argv[i], "--to-earliest")) {
            to = "earliest";
            ntos++;
        } else if (reset && !strcmp(argv[i], "--to-latest")) {
            to = "latest";
            ntos++;
        } else if (reset && !strcmp(argv[i], "--to-offset") && i + 1 < argc) {
            int64_t n;
            if (sl_parse_i64(argv[++i], &n) || n < 0)
                return mgmt_usage_err("--to-offset needs an offset >= 0");
            snprintf(value, sizeof(value), "%" PRId64, n);
            to = "offset";
            ntos++;
        } else if (reset && !strcmp(argv[i], "--to-time") && i + 1 < argc) {
            int64_t t;
            if (cli_parse_time(argv[++i], &t))
                return mgmt_usage_err("--to-time needs ms since the epoch or "
                                      "YYYY-MM-DDTHH:MM:SSZ, not '%s'",
                                      argv[i]);
            snprintf(value, sizeof(value), "%" PRId64, t);
            to = "time";
            ntos++;
        } else if (argv[i][0] == '-') {
            return mgmt_usage_err(
                "group %s: unknown option or missing value '%s'", sub, argv[i]);
        } else if (!group) {
            group = argv[i];
        } else {
            return mgmt_usage_err("group %s: unexpected argument '%s'", sub,
                                  argv[i]);
        }
    }
    if (!group)
        return mgmt_usage_err("group %s: missing group name", sub);
    mgmt_kv_add(&a, "group", group);
    if (!strcmp(sub, "delete")) {
        rc = mgmt_call(conf, "group.delete", &a, "group delete", &o, NULL);
        if (rc)
            return rc;
        printf("deleted group %s\n", group);
        cJSON_Delete(o);
        return EX_OK;
    }
    if (!topic)
        return mgmt_usage_err("group reset: --topic is required");
    if (ntos != 1)
        return mgmt_usage_err("group reset: give exactly one of --to-earliest, "
                              "--to-latest, --to-offset N, --to-time T");
    mgmt_kv_add(&a, "topic", topic);
    mgmt_kv_add(&a, "to", to);
    if (value[0])
        mgmt_kv_add(&a, "value", value);
    rc = mgmt_call(conf, "group.reset", &a, "group reset", &o, NULL);
    if (rc)
        return rc;
    printf("reset %s group %s on %s:\n", mgmt_str(o, "kind"), group, topic);
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(o, "partitions"))
        printf("%s/%" PRId64 "\t%" PRId64 "\n", topic, mgmt_num(p, "partition"),
               mgmt_num(p, "offset"));
    cJSON_Delete(o);
    return EX_OK;
}

static int cmd_topic(sluice_conf *conf, int argc, char **argv)
{
    const char *sub = argv[0], *name = NULL, *count = NULL;
    kvs a = {0};
    int rc, alter = !strcmp(sub, "alter");
    cJSON *o, *c;
    for (int i = 1; i < argc; i++) {
        if (alter && !strcmp(argv[i], "--config") && i + 1 < argc) {
            const char *v = argv[++i];
            const char *eq = strchr(v, '=');
            if (!eq || eq == v)
                return mgmt_usage_err("--config needs key=value");
            mgmt_kv_add(&a, "config", v);
        } else if (!alter && !strcmp(argv[i], "--count") && i + 1 < argc) {
            int64_t n;
            count = argv[++i];
            if (sl_parse_i64(count, &n) || n < 1 || n > 10000)
                return mgmt_usage_err("--count needs a number in 1..10000");
        } else if (argv[i][0] == '-') {
            return mgmt_usage_err(
                "topic %s: unknown option or missing value '%s'", sub, argv[i]);
        } else if (!name) {
            name = argv[i];
        } else {
            return mgmt_usage_err("topic %s: unexpected argument '%s'", sub,
                                  argv[i]);
        }
    }
    if (!name)
        return mgmt_usage_err("topic %s: missing topic name", sub);
    if (alter && a.n == 0)
        return mgmt_usage_err("topic alter: give at least one --config k=v");
    if (!alter && !count)
        return mgmt_usage_err("topic add-partitions: --count is required");
    mgmt_kv_add(&a, "topic", name);
    if (count)
        mgmt_kv_add(&a, "count", count);
    rc = mgmt_call(conf, alter ? "topic.alter" : "topic.add_partitions", &a,
                   alter ? "topic alter" : "topic add-partitions", &o, NULL);
    if (rc)
        return rc;
    if (alter) {
        printf("altered topic %s\n", name);
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(o, "configs"))
            printf("config %s=%s\n", c->string,
                   cJSON_IsString(c) ? c->valuestring : "");
    } else {
        printf("topic %s now has %" PRId64 " partitions\n", name,
               mgmt_num(o, "partition_count"));
    }
    cJSON_Delete(o);
    return EX_OK;
}

static int cmd_dlq(sluice_conf *conf, int argc, char **argv)
{
    const char *sub = argv[0], *name = NULL;
    kvs a = {0};
    int rc;
    cJSON *o, *d;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-')
            return mgmt_usage_err("dlq %s: unknown option '%s'", sub, argv[i]);
        if (name)
            return mgmt_usage_err("dlq %s: unexpected argument '%s'", sub,
                                  argv[i]);
        name = argv[i];
    }
    if (!strcmp(sub, "purge")) {
        if (!name)
            return mgmt_usage_err("dlq purge: missing DLQ topic");
        mgmt_kv_add(&a, "dlq", name);
        rc = mgmt_call(conf, "dlq.purge", &a, "dlq purge", &o, NULL);
        if (rc)
            return rc;
        printf("marked %" PRId64 " records of %s handled\n",
               mgmt_num(o, "purged"), name);
        cJSON_Delete(o);
        return EX_OK;
    }
    if (name)
        mgmt_kv_add(&a, "topic", name);
    rc = mgmt_call(conf, "dlq.list", &a, "dlq list", &o, NULL);
    if (rc)
        return rc;
    cJSON_ArrayForEach(d, cJSON_GetObjectItem(o, "dlqs")) printf(
        "%s\tsource=%s\tgroup=%s\tpending=%" PRId64 "\ttotal=%" PRId64 "\n",
        mgmt_str(d, "dlq_topic"), mgmt_str(d, "source_topic"),
        mgmt_str(d, "group"), mgmt_num(d, "pending"), mgmt_num(d, "total"));
    warn_left_out(o, "dlq list");
    cJSON_Delete(o);
    return EX_OK;
}

int sl_cli_mgmt(sluice_conf *conf, int argc, char **argv, int *handled)
{
    const char *c = argv[0], *s = argc > 1 ? argv[1] : "";
    *handled = 1;
    if (!strcmp(c, "queues"))
        return cmd_queues(conf, argc - 1, argv + 1);
    if (!strcmp(c, "connections"))
        return cmd_connections(conf, argc - 1, argv + 1);
    if (!strcmp(c, "status"))
        return cmd_status(conf, argc - 1, argv + 1);
    if (!strcmp(c, "version"))
        return cmd_version(conf, argc - 1, argv + 1);
    if (!strcmp(c, "queue") && (!strcmp(s, "purge") || !strcmp(s, "peek")))
        return cmd_queue(conf, argc - 1, argv + 1);
    if (!strcmp(c, "group") && (!strcmp(s, "delete") || !strcmp(s, "reset")))
        return cmd_group(conf, argc - 1, argv + 1);
    if (!strcmp(c, "topic") &&
        (!strcmp(s, "alter") || !strcmp(s, "add-partitions")))
        return cmd_topic(conf, argc - 1, argv + 1);
    if (!strcmp(c, "dlq") && (!strcmp(s, "list") || !strcmp(s, "purge")))
        return cmd_dlq(conf, argc - 1, argv + 1);
    if (!strcmp(c, "partition") && !strcmp(s, "reassign"))
        return mgmt_cmd_partition(conf, argc - 1, argv + 1);
    if (!strcmp(c, "cluster") &&
        (!strcmp(s, "rebalance") || !strcmp(s, "add-node") ||
         !strcmp(s, "remove-node")))
        return mgmt_cmd_cluster(conf, argc - 1, argv + 1);
    *handled = 0;
    return EX_OK;
}
