/*
 * mgmt.c - management commands of `sluice` over the ADMIN api (mgmt.h).
 *
 * Each command sends one admin verb (docs/protocol.md 4.29) and prints the
 * JSON answer as a table, or as is with --format json. The help table
 * below is the one source of every command's --help text (usage, what it
 * does, an example); --help never contacts a broker.
 */
#include "cli/mgmt.h"

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

enum { EX_OK = 0, EX_FAIL = 1, EX_USAGE = 2, EX_UNREACHABLE = 3, EX_TIMEOUT };

/* ---- help ------------------------------------------------------------- */

typedef struct help {
    const char *cmd, *sub; /* sub NULL = the command without subcommand */
    const char *usage;
    const char *about;
    const char *example;
} help;

static const help helps[] = {
    {"topic", "create", "sluice topic create NAME [--partitions N] [--config k=v]...",
     "Create a topic. --partitions defaults to the broker's\n"
     "default-partitions; --config sets per-topic settings (retention-ms,\n"
     "segment-bytes, flush, cleanup-policy, ...; docs/configuration.md).",
     "sluice topic create orders --partitions 4 --config retention-ms=86400000"},
    {"topic", "list", "sluice topic list", "List topics: NAME<TAB>PARTITIONS.",
     "sluice topic list"},
    {"topic", "describe", "sluice topic describe NAME",
     "Show a topic's configs and each partition's start and end offsets.",
     "sluice topic describe orders"},
    {"topic", "delete", "sluice topic delete NAME",
     "Delete a topic and its data.", "sluice topic delete orders"},
    {"topic", "alter", "sluice topic alter NAME --config k=v [--config k=v]...",
     "Change per-topic settings after creation (an empty value, k=,\n"
     "removes the override). Applied to the open partitions at once.",
     "sluice topic alter orders --config retention-ms=3600000"},
    {"topic", "add-partitions", "sluice topic add-partitions NAME --count N",
     "Grow the topic to N partitions in total (more than it has). Records\n"
     "stay where they are; keys map to partitions differently from now on,\n"
     "as in Kafka.",
     "sluice topic add-partitions orders --count 8"},
    {"produce", NULL,
     "sluice produce TOPIC [--key-separator SEP] [--acks none|written|durable]\n"
     "                     [--partition N] [--header k=v]...",
     "Send one record per line of stdin.",
     "seq 1 100 | sluice produce orders --acks durable"},
    {"consume", NULL,
     "sluice consume TOPIC [--from-beginning | --offset N | --time T]\n"
     "                     [--partition N] [--count N] [--follow]\n"
     "                     [--format raw|json] [--group G]",
     "Read records (stops at the log end unless --follow). T: ms since the\n"
     "epoch or YYYY-MM-DDTHH:MM:SS[Z] (UTC). --group commits offsets of a\n"
     "stream group.",
     "sluice consume orders --from-beginning --count 10 --format json"},
    {"queue", "consume",
     "sluice queue consume TOPIC --group G [--count N] [--format raw|json]\n"
     "                           [--wait-ms MS]",
     "Competing consumption from queue group G: print each record, ack it.",
     "sluice queue consume orders --group workers --count 100"},
    {"queue", "purge", "sluice queue purge TOPIC --group G",
     "Drop every record queue group G has not consumed yet on TOPIC (the\n"
     "group moves to the log end; records in flight are dropped too: their\n"
     "acks then fail). The topic keeps its records for other groups.",
     "sluice queue purge orders --group workers"},
    {"queue", "peek", "sluice queue peek TOPIC --group G [--count N] [--format json|raw]",
     "Browse the next N (default 10) ready records of queue group G without\n"
     "changing anything: no delivery is counted, nothing is locked.",
     "sluice queue peek orders --group workers --count 5"},
    {"queues", NULL, "sluice queues [--format table|json]",
     "Every queue group x topic: ready, in flight, delayed, DLQ depth\n"
     "(pending/total), consumers and the age of the oldest ready record\n"
     "(like rabbitmqctl list_queues).",
     "sluice queues"},
    {"connections", NULL, "sluice connections [--format table|json]",
     "Open client connections: id, protocol, peer, user, age, bytes in and\n"
     "out, records in flight (delivered, not settled) and the\n"
     "subscriptions (STOMP) or queue groups (binary) of each.",
     "sluice connections"},
    {"connections", "close", "sluice connections close ID [--reason TEXT]",
     "Close connection ID (from `sluice connections`) now: its pending\n"
     "replies are dropped and what its consumers held is available again.\n"
     "The reason goes to the broker's log.",
     "sluice connections close 17 --reason 'stuck consumer'"},
    {"status", NULL, "sluice status [--format table|json]",
     "Broker version, uptime, data directory, listeners and node.",
     "sluice status"},
    {"version", NULL, "sluice version",
     "Client and broker versions (the broker's only if reachable).",
     "sluice version"},
    {"group", "list", "sluice group list",
     "Every group: NAME<TAB>stream|queue<TAB>STATE<TAB>members=N.",
     "sluice group list"},
    {"group", "describe", "sluice group describe G",
     "Kind, state, members and per-partition offsets, lag, in flight.",
     "sluice group describe workers"},
    {"group", "config",
     "sluice group config G --topic TOPIC [--alter] [--stats] [key=value]...",
     "Read or change the settings of queue group G on TOPIC\n"
     "(max_deliveries, lock_ms, backoff_initial_ms, ttl_ms, dlq_topic, ...).",
     "sluice group config workers --topic orders max_deliveries=5"},
    {"group", "delete", "sluice group delete G",
     "Delete group G: a queue group's state on every topic, a stream\n"
     "group's committed offsets (refused while it has members).",
     "sluice group delete old-workers"},
    {"group", "reset",
     "sluice group reset G --topic T --to-earliest|--to-latest|--to-offset N|\n"
     "                               --to-time T",
     "Move group G on topic T: queue groups restart delivery there (records\n"
     "in flight are dropped); stream groups get their committed offsets set\n"
     "(refused while the group has members, as in Kafka). T: ms since the\n"
     "epoch or YYYY-MM-DDTHH:MM:SS[Z].",
     "sluice group reset workers --topic orders --to-time 2026-01-01T00:00:00Z"},
    {"dlq", "list", "sluice dlq list [TOPIC]",
     "Dead-letter topics: DLQ<TAB>source=T<TAB>group=G<TAB>pending=N<TAB>total=M.\n"
     "pending counts records not yet redriven or purged (the depth to alert\n"
     "on); total what the DLQ topic holds.",
     "sluice dlq list orders"},
    {"dlq", "show", "sluice dlq show DLQTOPIC [--count N] [--format raw|json]",
     "Print the records of a dead-letter topic from the beginning, with the\n"
     "dlq.* headers naming origin and reason.",
     "sluice dlq show orders.DLQ --count 10"},
    {"dlq", "redrive",
     "sluice dlq redrive DLQTOPIC [--to TOPIC] [--rate N] [--reason R] [--max N]",
     "Move pending dead letters back to their topic (or --to TOPIC) and mark\n"
     "them handled.",
     "sluice dlq redrive orders.DLQ --reason rejected --rate 100"},
    {"partition", "reassign",
     "sluice partition reassign TOPIC/P --replicas A,B,C\n"
     "       sluice partition reassign --status [TOPIC]\n"
     "       sluice partition reassign --cancel [TOPIC/P]",
     "Move partition P of TOPIC to the nodes A,B,C (cluster; node ids as in\n"
     "`sluice cluster status`). The new replicas are added first and copy\n"
     "the log from the leader (at most reassign-throttle-bytes per second\n"
     "per node); once all of them are in sync the old ones are dropped and\n"
     "A leads. A different number of nodes changes the partition's\n"
     "replication factor. --status lists the reassignments in progress:\n"
     "TOPIC/P replicas=.. target=.. adding=.. (copying) removing=..\n"
     "--cancel takes the reassignment of TOPIC/P (or every one in\n"
     "progress) back to the replicas it started from; the nodes it was\n"
     "adding stop copying and delete what they copied.",
     "sluice partition reassign orders/0 --replicas 2,3,4"},
    {"cluster", "rebalance", "sluice cluster rebalance",
     "Spread replicas and leaders evenly over the nodes (cluster): every\n"
     "partition whose replicas or leader differ from the even placement is\n"
     "reassigned (as `partition reassign`, throttled). Refused while a node\n"
     "is down. Follow it with `sluice partition reassign --status`.",
     "sluice cluster rebalance"},
    {"cluster", "add-node", "sluice cluster add-node ID HOST:PORT",
     "Add node ID to the cluster (HOST:PORT: its --cluster-listen). Start\n"
     "it first with --cluster-join and --cluster-peers listing the current\n"
     "nodes and itself; it joins the metadata quorum as a voter once it has\n"
     "caught up. It holds no partition until you move some to it\n"
     "(partition reassign, cluster rebalance).",
     "sluice cluster add-node 4 10.0.0.4:7420"},
    {"cluster", "remove-node", "sluice cluster remove-node ID [--no-wait]",
     "Remove node ID: its partitions are moved to the other nodes first\n"
     "(throttled, as partition reassign; refused if a partition would be\n"
     "left under its replication factor), then it leaves the metadata\n"
     "quorum. Waits until done unless --no-wait (run it again to finish).",
     "sluice cluster remove-node 1"},
    {"dlq", "purge", "sluice dlq purge DLQTOPIC",
     "Mark every pending record of a dead-letter topic handled (pending\n"
     "drops to 0; the records stay until retention removes them).",
     "sluice dlq purge orders.DLQ"},
};

#define NHELPS (sizeof(helps) / sizeof(helps[0]))

static void print_help(const help *h)
{
    printf("usage: %s\n\n%s\n\nexample:\n  %s\n\n"
           "global options: -b HOST:PORT (broker), -X key=value (libsluice)\n",
           h->usage, h->about, h->example);
}

int sl_cli_help(int argc, char **argv)
{
    int asked = 0;
    size_t i;
    for (int k = 0; k < argc; k++)
        if (!strcmp(argv[k], "--help") || !strcmp(argv[k], "-h"))
            asked = 1;
    if (!asked || argc < 1)
        return 0;
    if (argc >= 2)
        for (i = 0; i < NHELPS; i++)
            if (helps[i].sub && !strcmp(helps[i].cmd, argv[0]) &&
                !strcmp(helps[i].sub, argv[1])) {
                print_help(&helps[i]);
                return 1;
            }
    for (i = 0; i < NHELPS; i++)
        if (!helps[i].sub && !strcmp(helps[i].cmd, argv[0])) {
            print_help(&helps[i]);
            return 1;
        }
    /* a command with subcommands: list them */
    {
        int any = 0;
        for (i = 0; i < NHELPS; i++)
            if (!strcmp(helps[i].cmd, argv[0])) {
                if (!any)
                    printf("sluice %s: subcommands\n\n", argv[0]);
                any = 1;
                printf("  %s\n", helps[i].usage);
            }
        if (any) {
            printf("\nsluice %s SUBCOMMAND --help for details\n", argv[0]);
            return 1;
        }
    }
    return 0;
}

/* ---- helpers ---------------------------------------------------------- */

static int usage_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_err(const char *fmt, ...)
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

static int parse_time(const char *s, int64_t *out)
{
    struct tm tm;
    const char *end;
    if (sl_parse_i64(s, out) == 0 && *out >= 0)
        return 0;
    memset(&tm, 0, sizeof(tm));
    end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end)
        end = strptime(s, "%Y-%m-%d %H:%M:%S", &tm);
    if (!end || (*end && strcmp(end, "Z") != 0))
        return -1;
    *out = (int64_t)timegm(&tm) * 1000;
    return 0;
}

typedef struct kvs {
    sluice_kv v[64];
    size_t n;
} kvs;

static void kv_add(kvs *a, const char *k, const char *v)
{
    if (a->n < 64) {
        a->v[a->n].key = (char *)k;
        a->v[a->n].value = (char *)v;
        a->n++;
    }
}

#define EX_BUSY_RETRY 100 /* call_ex with busy_ok: SLUICE_ERR_BUSY */

static int call_ex(sluice_conf *conf, const char *verb, const kvs *args,
                   const char *what, cJSON **out, char **raw, int busy_ok);

/* Call verb; on success *out is the parsed answer (cJSON_Delete) and, if
 * raw is not NULL, the text (free). Returns an exit code. */
static int call(sluice_conf *conf, const char *verb, const kvs *args,
                const char *what, cJSON **out, char **raw)
{
    return call_ex(conf, verb, args, what, out, raw, 0);
}

/* call, but with busy_ok a SLUICE_ERR_BUSY answer ("retry") returns
 * EX_BUSY_RETRY without printing anything. */
static int call_ex(sluice_conf *conf, const char *verb, const kvs *args,
                   const char *what, cJSON **out, char **raw, int busy_ok)
{
    sluice_admin *a = NULL;
    char errstr[512], *json = NULL;
    sluice_err err = sluice_admin_new(conf, &a, errstr, sizeof(errstr));
    if (err) {
        fprintf(stderr, "sluice: %s\n", errstr[0] ? errstr : sluice_strerror(err));
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

static int64_t num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : -1;
}

static const char *str(const cJSON *o, const char *k)
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
            return usage_err("--format needs table or json");
        if (!f)
            return usage_err("%s: unexpected argument '%s'", verb, argv[i]);
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
    rc = call(conf, "queues", NULL, "queues", &o, &raw);
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
            fmt_age(num(q, "oldest_ready_age_ms"), age, sizeof(age));
            snprintf(dlq, sizeof(dlq), "%" PRId64 "/%" PRId64,
                     num(q, "dlq_pending"), num(q, "dlq_total"));
            printf("%-24s %-20s %8" PRId64 " %9" PRId64 " %8" PRId64
                   " %10s %10" PRId64 " %6s\n",
                   str(q, "topic"), str(q, "group"), num(q, "ready"),
                   num(q, "in_flight"), num(q, "delayed"), dlq,
                   num(q, "consumers"), age);
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
            kv_add(&a, "reason", argv[++i]);
        else if (argv[i][0] == '-')
            return usage_err("connections close: unknown option '%s'",
                             argv[i]);
        else if (id)
            return usage_err("connections close: unexpected argument '%s'",
                             argv[i]);
        else
            id = argv[i];
    }
    if (!id || sl_parse_i64(id, &n) != 0 || n < 1)
        return usage_err("connections close: expected a connection ID (a "
                         "number from `sluice connections`)");
    kv_add(&a, "id", id);
    rc = call(conf, "connection.close", &a, "connections close", &o, NULL);
    if (rc)
        return rc;
    printf("closed connection %" PRId64 " (%s)\n", num(o, "id"),
           str(o, "peer") ? str(o, "peer") : "-");
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
        const char *d = str(x, "destination");
        n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s",
                              n ? "," : "", d ? d : "?");
    }
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(c, "groups"))
    {
        n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s/%s",
                              n ? "," : "", str(x, "group") ? str(x, "group") : "?",
                              str(x, "topic") ? str(x, "topic") : "?");
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
    rc = call(conf, "connections", NULL, "connections", &o, &raw);
    if (rc)
        return rc;
    if (json) {
        printf("%s\n", raw);
    } else {
        printf("%-6s %-8s %-22s %-12s %8s %12s %12s %9s %s\n", "ID",
               "PROTOCOL", "PEER", "USER", "AGE", "BYTES-IN", "BYTES-OUT",
               "IN-FLIGHT", "SUBSCRIPTIONS");
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(o, "connections"))
        {
            char age[32], subs[256];
            fmt_age(num(c, "age_ms"), age, sizeof(age));
            conn_subs(c, subs, sizeof(subs));
            printf("%-6" PRId64 " %-8s %-22s %-12s %8s %12" PRId64
                   " %12" PRId64 " %9" PRId64 " %s\n",
                   num(c, "id"), str(c, "protocol") ? str(c, "protocol") : "-",
                   str(c, "peer") ? str(c, "peer") : "-",
                   str(c, "user") ? str(c, "user") : "-", age,
                   num(c, "bytes_in"), num(c, "bytes_out"),
                   num(c, "in_flight") < 0 ? 0 : num(c, "in_flight"), subs);
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
    rc = call(conf, "status", NULL, "status", &o, &raw);
    if (rc)
        return rc;
    if (json) {
        printf("%s\n", raw);
    } else {
        l = cJSON_GetObjectItem(o, "listeners");
        n = cJSON_GetObjectItem(o, "node");
        printf("version:     %s\n", str(o, "version"));
        printf("uptime:      %" PRId64 " s\n", num(o, "uptime_s"));
        printf("data dir:    %s\n", str(o, "data_dir"));
        printf("binary:      %s\n", str(l, "binary"));
        printf("stomp:       %s\n", str(l, "stomp"));
        printf("http:        %s\n", str(l, "http") ? str(l, "http") : "-");
        printf("node:        %s pid %" PRId64 " (%s)\n", str(n, "hostname"),
               num(n, "pid"), str(n, "role"));
        printf("topics:      %" PRId64 "\n", num(o, "topics"));
        printf("connections: %" PRId64 "\n", num(o, "connections"));
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
        return usage_err("version: unexpected argument '%s'", argv[0]);
    printf("sluice %s\n", sluice_version());
    fflush(stdout);
    rc = call(conf, "version", NULL, "broker version", &o, NULL);
    if (rc)
        return rc;
    printf("sluiced %s\n", str(o, "version"));
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
                return usage_err("--count needs a number in 1..1000");
        } else if (!strcmp(argv[i], "--format") && i + 1 < argc &&
                   !strcmp(sub, "peek")) {
            const char *f = argv[++i];
            if (strcmp(f, "json") && strcmp(f, "raw"))
                return usage_err("--format needs json or raw");
            raw_fmt = !strcmp(f, "raw");
        } else if (argv[i][0] == '-') {
            return usage_err("queue %s: unknown option '%s'", sub, argv[i]);
        } else if (!topic) {
            topic = argv[i];
        } else {
            return usage_err("queue %s: unexpected argument '%s'", sub, argv[i]);
        }
    }
    if (!topic)
        return usage_err("queue %s: missing topic", sub);
    if (!group || !*group)
        return usage_err("queue %s: --group is required", sub);
    kv_add(&a, "topic", topic);
    kv_add(&a, "group", group);
    if (count)
        kv_add(&a, "count", count);
    rc = call(conf, !strcmp(sub, "purge") ? "queue.purge" : "queue.peek", &a,
              !strcmp(sub, "purge") ? "queue purge" : "queue peek", &o, NULL);
    if (rc)
        return rc;
    if (!strcmp(sub, "purge")) {
        printf("purged %" PRId64 " records of queue group %s on %s\n",
               num(o, "purged"), group, topic);
    } else {
        cJSON_ArrayForEach(r, cJSON_GetObjectItem(o, "records"))
        {
            if (raw_fmt) {
                const char *v = str(r, "value");
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
                return usage_err("--to-offset needs an offset >= 0");
            snprintf(value, sizeof(value), "%" PRId64, n);
            to = "offset";
            ntos++;
        } else if (reset && !strcmp(argv[i], "--to-time") && i + 1 < argc) {
            int64_t t;
            if (parse_time(argv[++i], &t))
                return usage_err("--to-time needs ms since the epoch or "
                                 "YYYY-MM-DDTHH:MM:SSZ, not '%s'",
                                 argv[i]);
            snprintf(value, sizeof(value), "%" PRId64, t);
            to = "time";
            ntos++;
        } else if (argv[i][0] == '-') {
            return usage_err("group %s: unknown option or missing value '%s'",
                             sub, argv[i]);
        } else if (!group) {
            group = argv[i];
        } else {
            return usage_err("group %s: unexpected argument '%s'", sub, argv[i]);
        }
    }
    if (!group)
        return usage_err("group %s: missing group name", sub);
    kv_add(&a, "group", group);
    if (!strcmp(sub, "delete")) {
        rc = call(conf, "group.delete", &a, "group delete", &o, NULL);
        if (rc)
            return rc;
        printf("deleted group %s\n", group);
        cJSON_Delete(o);
        return EX_OK;
    }
    if (!topic)
        return usage_err("group reset: --topic is required");
    if (ntos != 1)
        return usage_err("group reset: give exactly one of --to-earliest, "
                         "--to-latest, --to-offset N, --to-time T");
    kv_add(&a, "topic", topic);
    kv_add(&a, "to", to);
    if (value[0])
        kv_add(&a, "value", value);
    rc = call(conf, "group.reset", &a, "group reset", &o, NULL);
    if (rc)
        return rc;
    printf("reset %s group %s on %s:\n", str(o, "kind"), group, topic);
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(o, "partitions"))
    printf("%s/%" PRId64 "\t%" PRId64 "\n", topic, num(p, "partition"),
           num(p, "offset"));
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
                return usage_err("--config needs key=value");
            kv_add(&a, "config", v);
        } else if (!alter && !strcmp(argv[i], "--count") && i + 1 < argc) {
            int64_t n;
            count = argv[++i];
            if (sl_parse_i64(count, &n) || n < 1 || n > 10000)
                return usage_err("--count needs a number in 1..10000");
        } else if (argv[i][0] == '-') {
            return usage_err("topic %s: unknown option or missing value '%s'",
                             sub, argv[i]);
        } else if (!name) {
            name = argv[i];
        } else {
            return usage_err("topic %s: unexpected argument '%s'", sub, argv[i]);
        }
    }
    if (!name)
        return usage_err("topic %s: missing topic name", sub);
    if (alter && a.n == 0)
        return usage_err("topic alter: give at least one --config k=v");
    if (!alter && !count)
        return usage_err("topic add-partitions: --count is required");
    kv_add(&a, "topic", name);
    if (count)
        kv_add(&a, "count", count);
    rc = call(conf, alter ? "topic.alter" : "topic.add_partitions", &a,
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
               num(o, "partition_count"));
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
            return usage_err("dlq %s: unknown option '%s'", sub, argv[i]);
        if (name)
            return usage_err("dlq %s: unexpected argument '%s'", sub, argv[i]);
        name = argv[i];
    }
    if (!strcmp(sub, "purge")) {
        if (!name)
            return usage_err("dlq purge: missing DLQ topic");
        kv_add(&a, "dlq", name);
        rc = call(conf, "dlq.purge", &a, "dlq purge", &o, NULL);
        if (rc)
            return rc;
        printf("marked %" PRId64 " records of %s handled\n", num(o, "purged"),
               name);
        cJSON_Delete(o);
        return EX_OK;
    }
    if (name)
        kv_add(&a, "topic", name);
    rc = call(conf, "dlq.list", &a, "dlq list", &o, NULL);
    if (rc)
        return rc;
    cJSON_ArrayForEach(d, cJSON_GetObjectItem(o, "dlqs"))
    printf("%s\tsource=%s\tgroup=%s\tpending=%" PRId64 "\ttotal=%" PRId64 "\n",
           str(d, "dlq_topic"), str(d, "source_topic"), str(d, "group"),
           num(d, "pending"), num(d, "total"));
    warn_left_out(o, "dlq list");
    cJSON_Delete(o);
    return EX_OK;
}

static void print_ids(const char *k, const cJSON *o)
{
    const cJSON *v;
    int first = 1;
    printf(" %s=", k);
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(o, k))
    {
        printf("%s%" PRId64, first ? "" : ",", (int64_t)v->valuedouble);
        first = 0;
    }
    if (first)
        printf("-");
}

/* partition reassign TOPIC/P --replicas A,B,C | --status [TOPIC] |
 * --cancel [TOPIC/P] */
static int cmd_partition(sluice_conf *conf, int argc, char **argv)
{
    const char *what = NULL, *reps = NULL;
    int status = 0, cancel = 0, rc;
    char topic[256], part[24];
    kvs a = {0};
    cJSON *o, *r, *e;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--replicas") && i + 1 < argc)
            reps = argv[++i];
        else if (!strcmp(argv[i], "--status"))
            status = 1;
        else if (!strcmp(argv[i], "--cancel"))
            cancel = 1;
        else if (argv[i][0] == '-')
            return usage_err("partition reassign: unknown option or missing "
                             "value '%s'",
                             argv[i]);
        else if (!what)
            what = argv[i];
        else
            return usage_err("partition reassign: unexpected argument '%s'",
                             argv[i]);
    }
    if (cancel && (status || reps))
        return usage_err("partition reassign: --cancel takes no --status "
                         "or --replicas");
    if (cancel && !what) {
        kv_add(&a, "cancel", "1");
        rc = call(conf, "partition.reassign", &a, "partition reassign --cancel",
                  &o, NULL);
        if (rc)
            return rc;
        printf("cancelled %" PRId64 " reassignment(s): back to the replicas "
               "they started from (sluice partition reassign --status "
               "follows them)\n",
               num(o, "reassignments"));
        cJSON_Delete(o);
        return EX_OK;
    }
    if (status) {
        if (reps)
            return usage_err("partition reassign: --status takes no "
                             "--replicas");
        if (what)
            kv_add(&a, "topic", what);
        rc = call(conf, "partition.reassignments", &a,
                  "partition reassign --status", &o, NULL);
        if (rc)
            return rc;
        r = cJSON_GetObjectItem(o, "reassignments");
        if (cJSON_GetArraySize(r) == 0)
            printf("no reassignment in progress\n");
        cJSON_ArrayForEach(e, r)
        {
            printf("%s/%" PRId64 " leader=%" PRId64, str(e, "topic"),
                   num(e, "partition"), num(e, "leader"));
            print_ids("replicas", e);
            print_ids("isr", e);
            print_ids("target", e);
            print_ids("adding", e);
            print_ids("removing", e);
            printf("\n");
        }
        cJSON_Delete(o);
        return EX_OK;
    }
    {
        const char *slash = what ? strrchr(what, '/') : NULL;
        int64_t p;
        if (!slash || slash == what || (size_t)(slash - what) >= sizeof(topic) ||
            sl_parse_i64(slash + 1, &p) || p < 0)
            return usage_err("partition reassign: expected TOPIC/PARTITION, "
                             "e.g. orders/0");
        if (!reps && !cancel)
            return usage_err("partition reassign: --replicas A,B,C is "
                             "required");
        memcpy(topic, what, (size_t)(slash - what));
        topic[slash - what] = 0;
        snprintf(part, sizeof(part), "%" PRId64, p);
    }
    kv_add(&a, "topic", topic);
    kv_add(&a, "partition", part);
    if (cancel) {
        kv_add(&a, "cancel", "1");
        rc = call(conf, "partition.reassign", &a, "partition reassign --cancel",
                  &o, NULL);
        if (rc)
            return rc;
        printf("cancelled the reassignment of %s/%s: back to the replicas it "
               "started from (sluice partition reassign --status follows "
               "it)\n",
               topic, part);
        cJSON_Delete(o);
        return EX_OK;
    }
    kv_add(&a, "replicas", reps);
    rc = call(conf, "partition.reassign", &a, "partition reassign", &o, NULL);
    if (rc)
        return rc;
    printf("reassigning %s/%s to %s (sluice partition reassign --status "
           "follows it)\n",
           topic, part, reps);
    cJSON_Delete(o);
    return EX_OK;
}

/* cluster add-node ID HOST:PORT */
static int cmd_add_node(sluice_conf *conf, int argc, char **argv)
{
    kvs a = {0};
    int64_t id;
    int rc;
    cJSON *o;
    if (argc != 3 || sl_parse_i64(argv[1], &id) || id < 1 || id > 1000000)
        return usage_err("cluster add-node: expected ID HOST:PORT (the new "
                         "node's --node-id and --cluster-listen)");
    kv_add(&a, "node", argv[1]);
    kv_add(&a, "address", argv[2]);
    for (int tries = 0;; tries++) {
        rc = call_ex(conf, "cluster.add_node", &a, "cluster add-node", &o,
                     NULL, tries < 30);
        if (rc != EX_BUSY_RETRY)
            break;
        sleep(1); /* another membership change or an election: retry */
    }
    if (rc)
        return rc;
    printf("node %s at %s is a voter of the metadata quorum\n", argv[1],
           argv[2]);
    cJSON_Delete(o);
    return EX_OK;
}

/* cluster remove-node ID [--no-wait]: moves its partitions off, waits
 * until they are moved, then removes it. */
static int cmd_remove_node(sluice_conf *conf, int argc, char **argv)
{
    kvs a = {0};
    int64_t id;
    int rc, nowait = 0, told = 0;
    const char *state;
    cJSON *o;
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--no-wait"))
            nowait = 1;
        else
            return usage_err("cluster remove-node: unexpected argument '%s'",
                             argv[i]);
    if (argc < 2 || sl_parse_i64(argv[1], &id) || id < 1 || id > 1000000)
        return usage_err("cluster remove-node: expected a node id");
    kv_add(&a, "node", argv[1]);
    for (int busy = 0;;) {
        rc = call_ex(conf, "cluster.remove_node", &a, "cluster remove-node",
                     &o, NULL, busy < 30);
        if (rc == EX_BUSY_RETRY) {
            busy++;
            sleep(1); /* a leader hand-over or another change: retry */
            continue;
        }
        if (rc)
            return rc;
        state = str(o, "state");
        if (state && !strcmp(state, "removed")) {
            printf("node %s removed from the cluster (stop its sluiced "
                   "now)\n",
                   argv[1]);
            cJSON_Delete(o);
            return EX_OK;
        }
        if (!told || nowait)
            printf("moving %" PRId64 " partition(s) off node %s (%" PRId64
                   " already moving); sluice partition reassign --status "
                   "follows them\n",
                   num(o, "moving"), argv[1], num(o, "in_progress"));
        told = 1;
        cJSON_Delete(o);
        if (nowait)
            return EX_OK;
        sleep(1); /* polling the operation, as --status would */
    }
}

static int cmd_cluster_ops(sluice_conf *conf, int argc, char **argv)
{
    int rc;
    cJSON *o;
    if (!strcmp(argv[0], "add-node"))
        return cmd_add_node(conf, argc, argv);
    if (!strcmp(argv[0], "remove-node"))
        return cmd_remove_node(conf, argc, argv);
    if (argc > 1)
        return usage_err("cluster %s: unexpected argument '%s'", argv[0],
                         argv[1]);
    rc = call(conf, "cluster.rebalance", NULL, "cluster rebalance", &o, NULL);
    if (rc)
        return rc;
    printf("rebalance: %" PRId64 " partition(s) reassigned, %" PRId64
           " already in place, %" PRId64 " with a reassignment in progress\n",
           num(o, "reassignments"), num(o, "unchanged"), num(o, "in_progress"));
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
        return cmd_partition(conf, argc - 1, argv + 1);
    if (!strcmp(c, "cluster") &&
        (!strcmp(s, "rebalance") || !strcmp(s, "add-node") ||
         !strcmp(s, "remove-node")))
        return cmd_cluster_ops(conf, argc - 1, argv + 1);
    *handled = 0;
    return EX_OK;
}
