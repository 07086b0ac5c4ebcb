/*
 * sluice.c - the `sluice` command-line tool (docs/cli.md).
 *
 *   sluice [-b HOST:PORT] [-X key=value]... COMMAND ARGS
 *
 * Exit codes: 0 success; 1 the broker refused or failed the operation
 * (unknown topic, topic exists, a record not stored, ...); 2 usage error
 * (bad command line); 3 broker unreachable or connection lost; 4 timed
 * out. Errors go to stderr as "sluice: <what failed>: <why>".
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/auth_cmds.h"
#include "cli/mgmt.h"
#include "protocol/parse.h"
#include "sluice.h"

enum {
    EX_OK = 0,
    EX_FAIL = 1,
    EX_USAGE = 2,
    EX_UNREACHABLE = 3,
    EX_TIMEOUT = 4
};

static sluice_conf *g_conf;
static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *f)
{
    fputs(
        "usage: sluice [-b HOST:PORT] [--tls [--tls-ca FILE]] [--user NAME]\n"
        "              [-X key=value]... COMMAND ...\n"
        "\n"
        "  -b HOST:PORT[,HOST:PORT...]  broker address(es), tried in turn "
        "(default\n"
        "                 $SLUICE_BOOTSTRAP, else 127.0.0.1:7410)\n"
        "  --user NAME    log in as NAME (default $SLUICE_USER); the password "
        "from\n"
        "                 $SLUICE_PASSWORD, else a prompt on a terminal\n"
        "  -X key=value   libsluice setting (see docs/cli.md)\n"
        "  --tls          TLS to the broker (its --tls-listen port); the\n"
        "                 certificate is verified, host name included\n"
        "  --tls-ca FILE  CA certificates (PEM) the broker's must chain to\n"
        "                 (default: the system's)\n"
        "  --tls-cert FILE --tls-key FILE\n"
        "                 client certificate and key (mutual TLS)\n"
        "\n"
        "commands:\n"
        "  topic create NAME [--partitions N] [--replication-factor N]\n"
        "               [--config k=v]...\n"
        "  topic list\n"
        "  topic describe NAME\n"
        "  cluster status\n"
        "  topic delete NAME\n"
        "  topic alter NAME --config k=v...\n"
        "  topic add-partitions NAME --count N\n"
        "  produce TOPIC [--key-separator SEP] [--acks none|written|durable]\n"
        "                [--partition N] [--header k=v]...\n"
        "      one record per stdin line\n"
        "  consume TOPIC [--from-beginning | --offset N | --time T]\n"
        "                [--partition N] [--count N] [--follow]\n"
        "                [--format raw|json] [--group G]\n"
        "      T: ms since the epoch or YYYY-MM-DDTHH:MM:SS[Z] (UTC)\n"
        "  queue consume TOPIC --group G [--count N] [--format raw|json]\n"
        "                [--wait-ms MS]\n"
        "  queue purge TOPIC --group G\n"
        "  queue peek TOPIC --group G [--count N]\n"
        "  queues | connections | status | version\n"
        "  group list\n"
        "  group describe G\n"
        "  group delete G\n"
        "  group reset G --topic T --to-earliest|--to-latest|--to-offset N|\n"
        "                --to-time T\n"
        "  group config G --topic TOPIC [--alter] [--stats] [key=value]...\n"
        "      no key=value: print the settings; else create the queue\n"
        "      group if missing (not with --alter), set them, print them\n"
        "  dlq list [TOPIC]\n"
        "  dlq show DLQTOPIC [--count N] [--format raw|json]\n"
        "  dlq redrive DLQTOPIC [--to TOPIC] [--rate N] [--reason R]\n"
        "                [--max N]\n"
        "  dlq purge DLQTOPIC\n"
        "  user add|passwd NAME [--admin] [--password-stdin] | user delete "
        "NAME\n"
        "  user list\n"
        "  acl grant USER --topic P|--group P|--cluster --ops LIST "
        "[--prefix]\n"
        "  acl revoke USER --topic P|--group P|--cluster [--ops LIST] "
        "[--prefix]\n"
        "  acl list [USER]\n"
        "\n"
        "every command answers --help (sluice topic create --help)\n"
        "\n"
        "exit codes: 0 ok, 1 operation failed, 2 usage, 3 broker "
        "unreachable, 4 timeout\n",
        f);
}

static int die_usage(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static int die_usage(const char *fmt, ...)
{
    va_list ap;
    fputs("sluice: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (sluice --help for usage)\n", stderr);
    return EX_USAGE;
}

static int exit_for(sluice_err err)
{
    if (err == SLUICE_ERR_DISCONNECTED || SLUICE_ERR_IS_SYS(err))
        return EX_UNREACHABLE;
    if (err == SLUICE_ERR_TIMEOUT)
        return EX_TIMEOUT;
    if (err == SLUICE_ERR_INVALID_CONFIG)
        return EX_USAGE;
    return EX_FAIL;
}

/* Report err with what failed; returns the exit code. */
static int fail(sluice_err err, const char *what)
{
    const char *d = sluice_errstr();
    if (d && *d)
        fprintf(stderr, "sluice: %s: %s\n", what, d);
    else
        fprintf(stderr, "sluice: %s: %s\n", what, sluice_strerror(err));
    return exit_for(err);
}

static int fail_new(sluice_err err, const char *errstr)
{
    fprintf(stderr, "sluice: %s\n", errstr[0] ? errstr : sluice_strerror(err));
    return exit_for(err);
}

/* ms since the epoch, or an ISO-8601 UTC time. */
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

/* --name VALUE option helper: returns the value or NULL (usage error). */
static const char *optval(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc)
        return NULL;
    return argv[++*i];
}

/* ---- output ----------------------------------------------------------- */

static void json_str(FILE *f, const void *p, size_t n)
{
    const unsigned char *s = p;
    size_t i;
    fputc('"', f);
    for (i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
        } else if (c == '\n') {
            fputs("\\n", f);
        } else if (c == '\r') {
            fputs("\\r", f);
        } else if (c == '\t') {
            fputs("\\t", f);
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
        } else {
            fputc(c, f);
        }
    }
    fputc('"', f);
}

static void print_msg(const sluice_message *m, int json, int queue)
{
    size_t i;
    if (!json) {
        if (m->value_len)
            fwrite(m->value, 1, m->value_len, stdout);
        fputc('\n', stdout);
        return;
    }
    fputs("{\"topic\":", stdout);
    json_str(stdout, m->topic, strlen(m->topic));
    printf(",\"partition\":%d,\"offset\":%" PRId64 ",\"timestamp\":%" PRId64,
           (int)m->partition, m->offset, m->timestamp);
    fputs(",\"key\":", stdout);
    if (m->key)
        json_str(stdout, m->key, m->key_len);
    else
        fputs("null", stdout);
    fputs(",\"value\":", stdout);
    if (m->value)
        json_str(stdout, m->value, m->value_len);
    else
        fputs("null", stdout);
    fputs(",\"headers\":{", stdout);
    for (i = 0; i < m->header_count; i++) {
        const sluice_header *h = &m->headers[i];
        if (i)
            fputc(',', stdout);
        json_str(stdout, h->key, h->key_len);
        fputc(':', stdout);
        if (h->value)
            json_str(stdout, h->value, h->value_len);
        else
            fputs("null", stdout);
    }
    fputc('}', stdout);
    if (queue)
        printf(",\"attempts\":%u,\"failures\":%u", m->attempts, m->failures);
    fputs("}\n", stdout);
}

/* ---- topic ------------------------------------------------------------ */

static void print_ids(const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%s%d", i ? "," : " ", (int)ids[i]);
    if (n == 0)
        printf(" -");
}

/* ---- cluster ---------------------------------------------------------- */

static int cmd_cluster(int argc, char **argv)
{
    sluice_admin *a = NULL;
    sluice_cluster_status *cs = NULL;
    char errstr[512];
    sluice_err err;
    int rc = EX_OK;

    if (argc != 1 || strcmp(argv[0], "status"))
        return die_usage("cluster: expected 'status'");
    err = sluice_admin_new(g_conf, &a, errstr, sizeof(errstr));
    if (err)
        return fail_new(err, errstr);
    err = sluice_admin_cluster_status(a, NULL, &cs);
    if (err) {
        rc = fail(err, "cluster status");
    } else if (cs->node_id == 0) {
        printf("single node (not a cluster)\n");
    } else {
        printf("node %d metadata-leader %d term %" PRIu64 " applied %" PRIu64
               "\n",
               (int)cs->node_id, (int)cs->leader_id, cs->term, cs->applied);
        for (size_t i = 0; i < cs->node_count; i++) {
            const sluice_cluster_node *n = &cs->nodes[i];
            printf("node %d %s raft %s binary %s stomp %s%s\n", (int)n->id,
                   n->up ? "up" : "down", n->raft_addr,
                   n->addr[0] ? n->addr : "-",
                   n->stomp_addr[0] ? n->stomp_addr : "-",
                   n->id == cs->leader_id ? " leader" : "");
        }
    }
    sluice_cluster_status_free(cs);
    sluice_admin_free(a);
    return rc;
}

static int cmd_topic(int argc, char **argv)
{
    sluice_admin *a = NULL;
    char errstr[512];
    sluice_err err;
    int rc = EX_OK, i;
    const char *sub, *name = NULL;
    int64_t parts = 0;
    sluice_kv *cfgs = NULL;
    size_t ncfg = 0;

    if (argc < 1)
        return die_usage("topic: missing subcommand (create|list|describe|"
                         "delete)");
    sub = argv[0];
    if (strcmp(sub, "create") && strcmp(sub, "list") &&
        strcmp(sub, "describe") && strcmp(sub, "delete"))
        return die_usage("topic: unknown subcommand '%s'", sub);
    cfgs = calloc((size_t)argc, sizeof(*cfgs));
    if (!cfgs)
        return EX_FAIL;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--partitions") && !strcmp(sub, "create")) {
            const char *v = optval(argc, argv, &i);
            if (!v || sl_parse_i64(v, &parts) || parts < 1 || parts > 100000) {
                rc = die_usage("--partitions needs a number in 1..100000");
                goto out;
            }
        } else if (!strcmp(argv[i], "--replication-factor") &&
                   !strcmp(sub, "create")) {
            /* sent as the create config replication-factor (cluster) */
            const char *v = optval(argc, argv, &i);
            int64_t rf;
            if (!v || sl_parse_i64(v, &rf) || rf < 1 || rf > 16) {
                rc = die_usage("--replication-factor needs a number in "
                               "1..16");
                goto out;
            }
            cfgs[ncfg].key = strdup("replication-factor");
            cfgs[ncfg].value = strdup(v);
            ncfg++;
        } else if (!strcmp(argv[i], "--config") && !strcmp(sub, "create")) {
            const char *v = optval(argc, argv, &i);
            char *eq;
            if (!v || !(eq = strchr(v, '=')) || eq == v) {
                rc = die_usage("--config needs key=value");
                goto out;
            }
            cfgs[ncfg].key = strndup(v, (size_t)(eq - v));
            cfgs[ncfg].value = strdup(eq + 1);
            ncfg++;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            rc = die_usage("topic %s: unknown option '%s'", sub, argv[i]);
            goto out;
        } else if (!name) {
            name = argv[i];
        } else {
            rc = die_usage("topic %s: unexpected argument '%s'", sub, argv[i]);
            goto out;
        }
    }
    if (strcmp(sub, "list") && !name) {
        rc = die_usage("topic %s: missing topic name", sub);
        goto out;
    }
    err = sluice_admin_new(g_conf, &a, errstr, sizeof(errstr));
    if (err) {
        rc = fail_new(err, errstr);
        goto out;
    }
    if (!strcmp(sub, "create")) {
        err = sluice_admin_create_topic(a, name, (int32_t)parts, cfgs, ncfg);
        if (err)
            rc = fail(err, "topic create");
        else
            printf("created topic %s\n", name);
    } else if (!strcmp(sub, "delete")) {
        err = sluice_admin_delete_topic(a, name);
        if (err)
            rc = fail(err, "topic delete");
        else
            printf("deleted topic %s\n", name);
    } else if (!strcmp(sub, "list")) {
        sluice_topic_list *l;
        size_t k;
        err = sluice_admin_list_topics(a, &l);
        if (err) {
            rc = fail(err, "topic list");
        } else {
            for (k = 0; k < l->count; k++)
                printf("%s\t%d\n", l->topics[k].name,
                       (int)l->topics[k].partition_count);
            sluice_topic_list_free(l);
        }
    } else {
        sluice_topic_info *t;
        size_t k;
        err = sluice_admin_describe_topic(a, name, &t);
        if (err) {
            rc = fail(err, "topic describe");
        } else {
            printf("topic %s partitions %d\n", t->name,
                   (int)t->partition_count);
            for (k = 0; k < t->config_count; k++) {
                if (!strncmp(t->configs[k].key, "damaged.", 8))
                    continue; /* printed below, not a setting */
                printf("config %s=%s\n", t->configs[k].key,
                       t->configs[k].value ? t->configs[k].value : "");
            }
            for (k = 0; k < t->config_count; k++)
                if (!strncmp(t->configs[k].key, "damaged.", 8))
                    printf("DAMAGED partition %s offsets %s (readers skip "
                           "them; see docs/operations.md)\n",
                           t->configs[k].key + 8,
                           t->configs[k].value ? t->configs[k].value : "");
            sluice_cluster_status *cs = NULL;
            /* in a cluster: leader, replicas and ISR of each partition */
            if (sluice_admin_cluster_status(a, name, &cs) != SLUICE_OK)
                cs = NULL;
            for (k = 0; k < (size_t)t->partition_count; k++) {
                printf("partition %d start %" PRId64 " end %" PRId64,
                       (int)t->partitions[k].partition,
                       t->partitions[k].log_start, t->partitions[k].log_end);
                if (cs && cs->node_id != 0 && k < cs->partition_count) {
                    const sluice_cluster_partition *cp = &cs->partitions[k];
                    printf(" leader %d epoch %d replicas", (int)cp->leader,
                           (int)cp->leader_epoch);
                    print_ids(cp->replicas, cp->replica_count);
                    printf(" isr");
                    print_ids(cp->isr, cp->isr_count);
                }
                printf("\n");
            }
            sluice_cluster_status_free(cs);
            sluice_topic_info_free(t);
        }
    }
out:
    sluice_admin_free(a);
    while (ncfg--) {
        free(cfgs[ncfg].key);
        free(cfgs[ncfg].value);
    }
    free(cfgs);
    return rc;
}

/* ---- produce ---------------------------------------------------------- */

typedef struct produce_state {
    size_t ok, failed;
    sluice_err first_err;
    char first_msg[256];
} produce_state;

static void on_delivery(const sluice_delivery *d, void *opaque)
{
    produce_state *st = opaque;
    if (d->err == SLUICE_OK) {
        st->ok++;
        return;
    }
    if (st->failed++ == 0) {
        st->first_err = d->err;
        snprintf(st->first_msg, sizeof(st->first_msg),
                 "topic '%s' partition %d: %s", d->topic, (int)d->partition,
                 sluice_strerror(d->err));
    }
}

static int cmd_produce(int argc, char **argv)
{
    const char *topic = NULL, *sep = NULL;
    int64_t partition = SLUICE_PARTITION_ANY;
    sluice_header hdrs[64];
    size_t nhdrs = 0;
    produce_state st;
    sluice_producer *p = NULL;
    char errstr[512];
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    sluice_err err;
    int rc = EX_OK, i;

    memset(&st, 0, sizeof(st));
    for (i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--key-separator")) {
            sep = optval(argc, argv, &i);
            if (!sep || !*sep)
                return die_usage("--key-separator needs a non-empty value");
        } else if (!strcmp(argv[i], "--acks")) {
            const char *v = optval(argc, argv, &i);
            if (!v ||
                sluice_conf_set(g_conf, "acks", v, errstr, sizeof(errstr)))
                return die_usage("--acks needs none, written or durable");
        } else if (!strcmp(argv[i], "--partition")) {
            const char *v = optval(argc, argv, &i);
            if (!v || sl_parse_i64(v, &partition) || partition < 0 ||
                partition > INT32_MAX)
                return die_usage("--partition needs a number >= 0");
        } else if (!strcmp(argv[i], "--header")) {
            const char *v = optval(argc, argv, &i);
            const char *eq;
            if (!v || !(eq = strchr(v, '=')) || eq == v)
                return die_usage("--header needs key=value");
            if (nhdrs == sizeof(hdrs) / sizeof(hdrs[0]))
                return die_usage("too many --header options");
            hdrs[nhdrs].key = v;
            hdrs[nhdrs].key_len = (size_t)(eq - v);
            hdrs[nhdrs].value = eq + 1;
            hdrs[nhdrs].value_len = strlen(eq + 1);
            nhdrs++;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            return die_usage("produce: unknown option '%s'", argv[i]);
        } else if (!topic) {
            topic = argv[i];
        } else {
            return die_usage("produce: unexpected argument '%s'", argv[i]);
        }
    }
    if (!topic)
        return die_usage("produce: missing topic");
    sluice_conf_set_delivery_cb(g_conf, on_delivery, &st);
    err = sluice_producer_new(g_conf, &p, errstr, sizeof(errstr));
    if (err)
        return fail_new(err, errstr);
    while (!g_stop && (n = getline(&line, &cap, stdin)) >= 0) {
        const char *key = NULL, *val = line;
        size_t klen = 0, vlen;
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        if (n > 0 && line[n - 1] == '\r')
            line[--n] = '\0';
        vlen = (size_t)n;
        if (sep) {
            char *s = strstr(line, sep);
            if (s) {
                key = line;
                klen = (size_t)(s - line);
                val = s + strlen(sep);
                vlen = (size_t)n - klen - strlen(sep);
            }
        }
        err = sluice_producer_send(p, topic, (int32_t)partition, key, klen, val,
                                   vlen, nhdrs ? hdrs : NULL, nhdrs, 0, NULL);
        if (err) {
            rc = fail(err, "produce");
            break;
        }
        sluice_producer_poll(p, 0);
    }
    free(line);
    err = sluice_producer_flush(p, -1);
    if (err && rc == EX_OK)
        rc = fail(err, "produce flush");
    if (st.failed && rc == EX_OK) {
        fprintf(stderr, "sluice: produce: %zu of %zu records not stored: %s\n",
                st.failed, st.failed + st.ok, st.first_msg);
        rc = exit_for(st.first_err);
    }
    sluice_producer_free(p);
    return rc;
}

/* ---- consume ---------------------------------------------------------- */

typedef struct endmark {
    char *topic;
    int32_t partition;
    int64_t end; /* stop when position reaches it */
    int done;
} endmark;

static int cmd_consume(int argc, char **argv)
{
    const char *topic = NULL, *group = NULL;
    int64_t start = SLUICE_OFFSET_END, partition = -1, count = -1, ts = -1;
    int follow = 0, json = 0, from_set = 0, i;
    sluice_consumer *c = NULL;
    sluice_topic_partition *asg = NULL;
    size_t nasg = 0, k, ndone = 0;
    endmark *ends = NULL;
    char errstr[512];
    sluice_err err;
    int rc = EX_OK;
    int64_t got = 0;

    for (i = 0; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--from-beginning")) {
            start = SLUICE_OFFSET_BEGINNING;
            from_set++;
        } else if (!strcmp(argv[i], "--offset")) {
            v = optval(argc, argv, &i);
            if (!v || sl_parse_i64(v, &start) || start < 0)
                return die_usage("--offset needs a number >= 0");
            from_set++;
        } else if (!strcmp(argv[i], "--time")) {
            v = optval(argc, argv, &i);
            if (!v || parse_time(v, &ts))
                return die_usage("--time needs ms since the epoch or "
                                 "YYYY-MM-DDTHH:MM:SSZ, not '%s'",
                                 v ? v : "");
            from_set++;
        } else if (!strcmp(argv[i], "--partition")) {
            v = optval(argc, argv, &i);
            if (!v || sl_parse_i64(v, &partition) || partition < 0 ||
                partition > INT32_MAX)
                return die_usage("--partition needs a number >= 0");
        } else if (!strcmp(argv[i], "--count")) {
            v = optval(argc, argv, &i);
            if (!v || sl_parse_i64(v, &count) || count < 1)
                return die_usage("--count needs a number >= 1");
        } else if (!strcmp(argv[i], "--follow")) {
            follow = 1;
        } else if (!strcmp(argv[i], "--format")) {
            v = optval(argc, argv, &i);
            if (!v || (strcmp(v, "raw") && strcmp(v, "json")))
                return die_usage("--format needs raw or json");
            json = !strcmp(v, "json");
        } else if (!strcmp(argv[i], "--group")) {
            group = optval(argc, argv, &i);
            if (!group || !*group)
                return die_usage("--group needs a name");
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            return die_usage("consume: unknown option '%s'", argv[i]);
        } else if (!topic) {
            topic = argv[i];
        } else {
            return die_usage("consume: unexpected argument '%s'", argv[i]);
        }
    }
    if (!topic)
        return die_usage("consume: missing topic");
    if (from_set > 1)
        return die_usage("consume: use only one of --from-beginning, "
                         "--offset, --time");
    if (group && partition >= 0)
        return die_usage("consume: --group and --partition exclude each "
                         "other");
    if (group) {
        if (sluice_conf_set(g_conf, "group.id", group, errstr,
                            sizeof(errstr)) ||
            sluice_conf_set(g_conf, "auto.offset.reset",
                            start == SLUICE_OFFSET_BEGINNING ? "earliest"
                                                             : "latest",
                            errstr, sizeof(errstr)))
            return die_usage("%s", errstr);
    }
    err = sluice_consumer_new(g_conf, &c, errstr, sizeof(errstr));
    if (err)
        return fail_new(err, errstr);
    if (group) {
        const char *topics[1] = {topic};
        err = sluice_consumer_subscribe(c, topics, 1);
        if (err) {
            rc = fail(err, "consume: join group");
            goto out;
        }
        if (start >= 0 || ts >= 0) {
            /* explicit start overrides the committed offsets */
            err = sluice_consumer_assignment(c, &asg, &nasg);
            for (k = 0; err == SLUICE_OK && k < nasg; k++)
                err = ts >= 0 ? sluice_consumer_seek_time(c, asg[k].topic,
                                                          asg[k].partition, ts)
                              : sluice_consumer_seek(c, asg[k].topic,
                                                     asg[k].partition, start);
            sluice_topic_partitions_free(asg, nasg);
            asg = NULL;
            if (err) {
                rc = fail(err, "consume: seek");
                goto out;
            }
        }
    } else if (partition >= 0) {
        sluice_topic_partition tp = {topic, (int32_t)partition,
                                     ts >= 0 ? SLUICE_OFFSET_END : start};
        err = sluice_consumer_assign(c, &tp, 1);
        if (!err && ts >= 0)
            err = sluice_consumer_seek_time(c, topic, (int32_t)partition, ts);
    } else {
        err = sluice_consumer_assign_topic(c, topic,
                                           ts >= 0 ? SLUICE_OFFSET_END : start);
        if (!err && ts >= 0)
            err = sluice_consumer_seek_time(c, topic, -1, ts);
    }
    if (err) {
        rc = fail(err, "consume");
        goto out;
    }
    /* Without --follow: stop at the log end as of now. */
    err = sluice_consumer_assignment(c, &asg, &nasg);
    if (err) {
        rc = fail(err, "consume");
        goto out;
    }
    ends = calloc(nasg + 1, sizeof(*ends));
    if (!ends) {
        rc = EX_FAIL;
        goto out;
    }
    for (k = 0; k < nasg; k++) {
        int64_t lo, hi;
        err = sluice_consumer_watermarks(c, asg[k].topic, asg[k].partition, &lo,
                                         &hi);
        if (err) {
            rc = fail(err, "consume: log end");
            goto out;
        }
        ends[k].topic = (char *)asg[k].topic;
        ends[k].partition = asg[k].partition;
        ends[k].end = hi;
        ends[k].done = asg[k].offset >= hi;
        if (ends[k].done)
            ndone++;
    }
    while (!g_stop && (count < 0 || got < count)) {
        sluice_message *m = NULL;
        if (!follow && ndone == nasg)
            break;
        err = sluice_consumer_poll(c, 500, &m);
        if (err == SLUICE_ERR_TIMEOUT)
            continue;
        if (err) {
            rc = fail(err, "consume");
            break;
        }
        print_msg(m, json, 0);
        if (follow)
            fflush(stdout); /* a live tail: show each record at once */
        got++;
        for (k = 0; k < nasg; k++) {
            if (!ends[k].done && ends[k].partition == m->partition &&
                !strcmp(ends[k].topic, m->topic) &&
                m->offset + 1 >= ends[k].end) {
                ends[k].done = 1;
                ndone++;
            }
        }
        sluice_message_free(m);
    }
    fflush(stdout);
    if (group && rc == EX_OK) {
        err = sluice_consumer_commit(c);
        if (err)
            rc = fail(err, "consume: commit");
    }
out:
    free(ends);
    sluice_topic_partitions_free(asg, nasg);
    sluice_consumer_free(c);
    return rc;
}

/* ---- queue ------------------------------------------------------------ */

static int cmd_queue(int argc, char **argv)
{
    const char *topic = NULL, *group = NULL;
    int64_t count = -1, wait_ms = -1, got = 0;
    int json = 0, i, rc = EX_OK;
    sluice_queue_consumer *q = NULL;
    char errstr[512];
    sluice_err err;

    if (argc < 1 || strcmp(argv[0], "consume"))
        return die_usage("queue: expected 'queue consume TOPIC --group G'");
    for (i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--group")) {
            group = optval(argc, argv, &i);
            if (!group || !*group)
                return die_usage("--group needs a name");
        } else if (!strcmp(argv[i], "--count")) {
            v = optval(argc, argv, &i);
            if (!v || sl_parse_i64(v, &count) || count < 1)
                return die_usage("--count needs a number >= 1");
        } else if (!strcmp(argv[i], "--wait-ms")) {
            v = optval(argc, argv, &i);
            if (!v || sl_parse_i64(v, &wait_ms) || wait_ms < 0 ||
                wait_ms > INT_MAX)
                return die_usage("--wait-ms needs a number >= 0");
        } else if (!strcmp(argv[i], "--format")) {
            v = optval(argc, argv, &i);
            if (!v || (strcmp(v, "raw") && strcmp(v, "json")))
                return die_usage("--format needs raw or json");
            json = !strcmp(v, "json");
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            return die_usage("queue consume: unknown option '%s'", argv[i]);
        } else if (!topic) {
            topic = argv[i];
        } else {
            return die_usage("queue consume: unexpected argument '%s'",
                             argv[i]);
        }
    }
    if (!topic)
        return die_usage("queue consume: missing topic");
    if (!group)
        return die_usage("queue consume: --group is required");
    if (count > 0 && count < 256) {
        /* do not acquire (and count a delivery for) more than we print */
        char v[32];
        snprintf(v, sizeof(v), "%lld", (long long)count);
        sluice_conf_set(g_conf, "queue.credits", v, NULL, 0);
    }
    if (count > 0) /* no acquire beyond the last record we print */
        sluice_conf_set(g_conf, "queue.prefetch", "false", NULL, 0);
    err = sluice_queue_consumer_new(g_conf, topic, group, &q, errstr,
                                    sizeof(errstr));
    if (err)
        return fail_new(err, errstr);
    while (!g_stop && (count < 0 || got < count)) {
        sluice_message *m = NULL;
        err =
            sluice_queue_consumer_poll(q, wait_ms < 0 ? 500 : (int)wait_ms, &m);
        if (err == SLUICE_ERR_TIMEOUT) {
            if (wait_ms >= 0)
                break; /* --wait-ms: stop when idle that long */
            continue;
        }
        if (err) {
            rc = fail(err, "queue consume");
            break;
        }
        print_msg(m, json, 1);
        if (count < 0)
            fflush(stdout); /* runs until stopped: show records at once */
        err = sluice_queue_consumer_ack(q, m->partition, m->offset);
        sluice_message_free(m);
        if (err) {
            rc = fail(err, "queue ack");
            break;
        }
        got++;
    }
    fflush(stdout);
    err = sluice_queue_consumer_flush(q, -1);
    if (err && rc == EX_OK)
        rc = fail(err, "queue ack");
    sluice_queue_consumer_free(q);
    return rc;
}

/* ---- group ------------------------------------------------------------ */

/* group config G --topic T [--alter] [--stats] [key=value]... */
static int cmd_group_config(int argc, char **argv)
{
    sluice_admin *a = NULL;
    char errstr[512];
    sluice_err err;
    int rc = EX_OK, i, alter = 0, stats = 0;
    const char *group = NULL, *topic = NULL;
    sluice_kv *cfgs = NULL, *eff = NULL;
    size_t ncfg = 0, neff = 0, k;
    sluice_qgroup_config_mode mode;

    cfgs = calloc((size_t)argc + 1, sizeof(*cfgs));
    if (!cfgs)
        return EX_FAIL;
    for (i = 1; i < argc; i++) {
        const char *eq;
        if (!strcmp(argv[i], "--topic")) {
            topic = optval(argc, argv, &i);
            if (!topic || !*topic) {
                rc = die_usage("--topic needs a name");
                goto out;
            }
        } else if (!strcmp(argv[i], "--alter")) {
            alter = 1;
        } else if (!strcmp(argv[i], "--stats")) {
            stats = 1;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            rc = die_usage("group config: unknown option '%s'", argv[i]);
            goto out;
        } else if (!group) {
            if (strchr(argv[i], '=')) {
                rc = die_usage("group config: missing group name before "
                               "'%s'",
                               argv[i]);
                goto out;
            }
            group = argv[i];
        } else if ((eq = strchr(argv[i], '=')) && eq != argv[i]) {
            cfgs[ncfg].key = strndup(argv[i], (size_t)(eq - argv[i]));
            cfgs[ncfg].value = strdup(eq + 1);
            if (!cfgs[ncfg].key || !cfgs[ncfg].value) {
                ncfg++;
                rc = EX_FAIL;
                goto out;
            }
            ncfg++;
        } else {
            rc = die_usage("group config: expected key=value, got '%s'",
                           argv[i]);
            goto out;
        }
    }
    if (!group) {
        rc = die_usage("group config: missing group name");
        goto out;
    }
    if (!topic) {
        rc = die_usage("group config: --topic is required");
        goto out;
    }
    if (alter && !ncfg) {
        rc = die_usage("group config: --alter needs key=value settings");
        goto out;
    }
    mode = !ncfg   ? SLUICE_QGROUP_DESCRIBE
           : alter ? SLUICE_QGROUP_ALTER
                   : SLUICE_QGROUP_UPSERT;
    err = sluice_admin_new(g_conf, &a, errstr, sizeof(errstr));
    if (err) {
        rc = fail_new(err, errstr);
        goto out;
    }
    err = sluice_admin_queue_group_config(a, topic, group, mode, cfgs, ncfg,
                                          &eff, &neff);
    if (err) {
        rc = fail(err, "group config");
        goto out;
    }
    for (k = 0; k < neff; k++)
        if (stats || strncmp(eff[k].key, "stats.", 6) != 0)
            printf("%s=%s\n", eff[k].key, eff[k].value);
out:
    sluice_kv_array_free(eff, neff);
    for (k = 0; k < ncfg; k++) {
        free(cfgs[k].key);
        free(cfgs[k].value);
    }
    free(cfgs);
    sluice_admin_free(a);
    return rc;
}

/* One "dlq" line per dead-letter topic of a queue group, for each topic
 * the group reads (a group may span topics; DLQ_LIST's depth, 0 for a DLQ
 * not created yet), each name once. */
static void print_group_dlqs(sluice_admin *a, const sluice_group_info *g)
{
    size_t i, k, j, shown = 0;
    for (i = 0; i < g->partition_count; i++) {
        const char *t = g->partitions[i].topic;
        sluice_dlq_list *l = NULL;
        for (k = 0; k < i; k++) /* a topic seen already */
            if (!strcmp(g->partitions[k].topic, t))
                break;
        if (k < i || sluice_admin_dlq_list(a, t, &l) != SLUICE_OK)
            continue;
        for (j = 0; j < l->count; j++) {
            printf("dlq %s depth %" PRId64 " source %s\n", l->dlqs[j].topic,
                   l->dlqs[j].depth, t);
            shown++;
        }
        sluice_dlq_list_free(l);
    }
    if (!shown && g->dlq_topic)
        printf("dlq %s depth %" PRId64 "\n", g->dlq_topic,
               g->dlq_depth < 0 ? 0 : g->dlq_depth);
}

static int cmd_group(int argc, char **argv)
{
    sluice_admin *a = NULL;
    char errstr[512];
    sluice_err err;
    int rc = EX_OK;
    size_t i, k;

    if (argc >= 1 && !strcmp(argv[0], "config"))
        return cmd_group_config(argc, argv);
    if (argc < 1 || (strcmp(argv[0], "list") && strcmp(argv[0], "describe")))
        return die_usage("group: expected 'list', 'describe G' or "
                         "'config G --topic T [key=value]...'");
    if (!strcmp(argv[0], "describe") && argc != 2)
        return die_usage("group describe: expected one group name");
    if (!strcmp(argv[0], "list") && argc != 1)
        return die_usage("group list: unexpected argument '%s'", argv[1]);
    err = sluice_admin_new(g_conf, &a, errstr, sizeof(errstr));
    if (err)
        return fail_new(err, errstr);
    if (!strcmp(argv[0], "list")) {
        sluice_group_list *l;
        err = sluice_admin_list_groups(a, &l);
        if (err) {
            rc = fail(err, "group list");
        } else {
            for (i = 0; i < l->count; i++)
                printf("%s\t%s\t%s\tmembers=%zu\n", l->groups[i].name,
                       l->groups[i].kind == SLUICE_GROUP_QUEUE ? "queue"
                                                               : "stream",
                       l->groups[i].state ? l->groups[i].state : "-",
                       l->groups[i].member_count);
            sluice_group_list_free(l);
        }
    } else {
        sluice_group_info *g;
        err = sluice_admin_describe_group(a, argv[1], &g);
        if (err) {
            rc = fail(err, "group describe");
        } else {
            int q = g->kind == SLUICE_GROUP_QUEUE;
            printf("group %s kind %s state %s generation %d\n", g->name,
                   q ? "queue" : "stream", g->state ? g->state : "-",
                   (int)g->generation);
            if (q)
                print_group_dlqs(a, g);
            else if (g->dlq_topic)
                printf("dlq %s depth %" PRId64 "\n", g->dlq_topic,
                       g->dlq_depth);
            for (i = 0; i < g->member_count; i++) {
                sluice_group_member *m = &g->members[i];
                printf("member %s client %s", m->member_id ? m->member_id : "-",
                       m->client_id ? m->client_id : "-");
                for (k = 0; k < m->assignment_count; k++)
                    printf(" %s/%d", m->assignments[k].topic,
                           (int)m->assignments[k].partition);
                putchar('\n');
            }
            for (i = 0; i < g->partition_count; i++) {
                sluice_group_partition *p = &g->partitions[i];
                printf("partition %s/%d %s %" PRId64 " end %" PRId64
                       " lag %" PRId64,
                       p->topic, (int)p->partition, q ? "start" : "committed",
                       p->committed, p->log_end, p->lag);
                if (q)
                    printf(" in-flight %" PRId64, p->in_flight);
                putchar('\n');
            }
            sluice_group_info_free(g);
        }
    }
    sluice_admin_free(a);
    return rc;
}

/* ---- dlq -------------------------------------------------------------- */

static int cmd_dlq(int argc, char **argv)
{
    sluice_admin *a = NULL;
    char errstr[512];
    sluice_err err;
    int rc = EX_OK, i;
    const char *sub, *topic = NULL, *to = NULL, *reason = NULL;
    int64_t rate = 0, max = -1, moved = 0;

    if (argc < 1)
        return die_usage("dlq: expected list, show or redrive");
    sub = argv[0];
    if (!strcmp(sub, "show")) {
        /* a DLQ is a topic: show = consume it from the beginning (json) */
        char **nargv = calloc((size_t)argc + 3, sizeof(char *));
        int n = 0, r, has_fmt = 0;
        if (!nargv)
            return EX_FAIL;
        for (i = 1; i < argc; i++) {
            if (!strcmp(argv[i], "--format"))
                has_fmt = 1;
            nargv[n++] = argv[i];
        }
        nargv[n++] = "--from-beginning";
        if (!has_fmt) {
            nargv[n++] = "--format";
            nargv[n++] = "json";
        }
        if (argc < 2) {
            free(nargv);
            return die_usage("dlq show: missing DLQ topic");
        }
        r = cmd_consume(n, nargv);
        free(nargv);
        return r;
    }
    if (strcmp(sub, "list") && strcmp(sub, "redrive"))
        return die_usage("dlq: unknown subcommand '%s'", sub);
    for (i = 1; i < argc; i++) {
        const char *v;
        int redrive = !strcmp(sub, "redrive");
        if (redrive && !strcmp(argv[i], "--to")) {
            to = optval(argc, argv, &i);
            if (!to || !*to)
                return die_usage("--to needs a topic");
        } else if (redrive && !strcmp(argv[i], "--rate")) {
            v = optval(argc, argv, &i);
            if (!v || sl_parse_i64(v, &rate) || rate < 0)
                return die_usage("--rate needs records per second >= 0");
        } else if (redrive && !strcmp(argv[i], "--reason")) {
            reason = optval(argc, argv, &i);
            if (!reason)
                return die_usage("--reason needs a value");
        } else if (redrive && !strcmp(argv[i], "--max")) {
            v = optval(argc, argv, &i);
            if (!v || sl_parse_i64(v, &max) || max < 1)
                return die_usage("--max needs a number >= 1");
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            return die_usage("dlq %s: unknown option '%s'", sub, argv[i]);
        } else if (!topic) {
            topic = argv[i];
        } else {
            return die_usage("dlq %s: unexpected argument '%s'", sub, argv[i]);
        }
    }
    if (!strcmp(sub, "redrive") && !topic)
        return die_usage("dlq redrive: missing DLQ topic");
    if (rate > 0) /* a slow redrive may take long: allow for it */
        sluice_conf_set(g_conf, "request.timeout.ms", "2147483647", NULL, 0);
    err = sluice_admin_new(g_conf, &a, errstr, sizeof(errstr));
    if (err)
        return fail_new(err, errstr);
    if (!strcmp(sub, "list")) {
        sluice_dlq_list *l;
        size_t k;
        err = sluice_admin_dlq_list(a, topic, &l);
        if (err) {
            rc = fail(err, "dlq list");
        } else {
            for (k = 0; k < l->count; k++)
                printf("%s\tsource=%s\tdepth=%" PRId64 "\n", l->dlqs[k].topic,
                       l->dlqs[k].source_topic ? l->dlqs[k].source_topic : "-",
                       l->dlqs[k].depth);
            sluice_dlq_list_free(l);
        }
    } else {
        err = sluice_admin_dlq_redrive(a, topic, to, (double)rate, reason, max,
                                       &moved);
        if (err)
            rc = fail(err, "dlq redrive");
        else
            printf("redrove %" PRId64 " records from %s\n", moved, topic);
    }
    sluice_admin_free(a);
    return rc;
}

int main(int argc, char **argv)
{
    char errstr[512];
    int i, rc;
    struct sigaction sa;
    const char *user = NULL;

    g_conf = sluice_conf_new();
    if (!g_conf)
        return EX_FAIL;
    sluice_conf_set(g_conf, "client.id", "sluice-cli", NULL, 0);
    /* lines without a key spread over the partitions (-X overrides) */
    sluice_conf_set(g_conf, "partitioner.null.key", "round-robin", NULL, 0);
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            sluice_conf_free(g_conf);
            return EX_OK;
        } else if (!strcmp(argv[i], "--version")) {
            printf("sluice %s\n", sluice_version());
            sluice_conf_free(g_conf);
            return EX_OK;
        } else if (!strcmp(argv[i], "-b") || !strcmp(argv[i], "--bootstrap")) {
            if (i + 1 >= argc) {
                rc = die_usage("-b needs HOST:PORT");
                goto out;
            }
            if (sluice_conf_set(g_conf, "bootstrap", argv[++i], errstr,
                                sizeof(errstr))) {
                rc = die_usage("-b '%s': expected HOST:PORT or a list "
                               "HOST:PORT,HOST:PORT,...",
                               argv[i]);
                goto out;
            }
        } else if (!strcmp(argv[i], "--tls")) {
            sluice_conf_set(g_conf, "security.protocol", "ssl", NULL, 0);
        } else if (!strcmp(argv[i], "--tls-ca") ||
                   !strcmp(argv[i], "--tls-cert") ||
                   !strcmp(argv[i], "--tls-key")) {
            /* each implies --tls */
            const char *key = !strcmp(argv[i], "--tls-ca")
                                  ? "ssl.ca.location"
                              : !strcmp(argv[i], "--tls-cert")
                                  ? "ssl.certificate.location"
                                  : "ssl.key.location";
            if (i + 1 >= argc) {
                rc = die_usage("%s needs a FILE", argv[i]);
                goto out;
            }
            if (access(argv[i + 1], R_OK) != 0) {
                rc = die_usage("%s %s: %s", argv[i], argv[i + 1],
                               strerror(errno));
                goto out;
            }
            if (sluice_conf_set(g_conf, key, argv[++i], errstr,
                                sizeof(errstr))) {
                rc = die_usage("%s: %s", argv[i - 1], errstr);
                goto out;
            }
            sluice_conf_set(g_conf, "security.protocol", "ssl", NULL, 0);
        } else if (!strcmp(argv[i], "--user")) {
            if (i + 1 >= argc) {
                rc = die_usage("--user needs a user name");
                goto out;
            }
            user = argv[++i];
        } else if (!strcmp(argv[i], "-X")) {
            char *eq;
            if (i + 1 >= argc || !(eq = strchr(argv[i + 1], '='))) {
                rc = die_usage("-X needs key=value");
                goto out;
            }
            *eq = '\0';
            if (sluice_conf_set(g_conf, argv[i + 1], eq + 1, errstr,
                                sizeof(errstr))) {
                rc = die_usage("-X: %s", errstr);
                goto out;
            }
            i++;
        } else if (argv[i][0] == '-') {
            rc = die_usage("unknown option '%s'", argv[i]);
            goto out;
        } else {
            break;
        }
    }
    if (i >= argc) {
        usage(stderr);
        rc = EX_USAGE;
        goto out;
    }
    if (sl_cli_auth_help(argc - i, argv + i) ||
        sl_cli_help(argc - i, argv + i)) {
        rc = EX_OK; /* never contacts the broker */
        goto out;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (sl_cli_login_setup(g_conf, user) != 0) {
        rc = EX_USAGE;
        goto out;
    }
    {
        int handled;
        rc = sl_cli_auth(g_conf, argc - i, argv + i, &handled);
        if (handled)
            goto out;
        rc = sl_cli_mgmt(g_conf, argc - i, argv + i, &handled);
        if (handled)
            goto out;
    }
    if (!strcmp(argv[i], "topic"))
        rc = cmd_topic(argc - i - 1, argv + i + 1);
    else if (!strcmp(argv[i], "produce"))
        rc = cmd_produce(argc - i - 1, argv + i + 1);
    else if (!strcmp(argv[i], "consume"))
        rc = cmd_consume(argc - i - 1, argv + i + 1);
    else if (!strcmp(argv[i], "queue"))
        rc = cmd_queue(argc - i - 1, argv + i + 1);
    else if (!strcmp(argv[i], "group"))
        rc = cmd_group(argc - i - 1, argv + i + 1);
    else if (!strcmp(argv[i], "dlq"))
        rc = cmd_dlq(argc - i - 1, argv + i + 1);
    else if (!strcmp(argv[i], "cluster"))
        rc = cmd_cluster(argc - i - 1, argv + i + 1);
    else
        rc = die_usage("unknown command '%s'", argv[i]);
out:
    sluice_conf_free(g_conf);
    return rc;
}
