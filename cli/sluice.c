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
#include "cli/cli.h"
#include "cli/mgmt.h"
#include "protocol/parse.h"
#include "sluice.h"

sluice_conf *g_conf;
volatile sig_atomic_t g_stop;

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
        "  cluster rebalance\n"
        "  cluster add-node ID HOST:PORT\n"
        "  cluster remove-node ID [--no-wait]\n"
        "  partition reassign TOPIC/P --replicas A,B,C | --status [TOPIC]\n"
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

int cli_die_usage(const char *fmt, ...)
{
    va_list ap;
    fputs("sluice: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (sluice --help for usage)\n", stderr);
    return EX_USAGE;
}

int cli_exit_for(sluice_err err)
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
int cli_fail(sluice_err err, const char *what)
{
    const char *d = sluice_errstr();
    if (d && *d)
        fprintf(stderr, "sluice: %s: %s\n", what, d);
    else
        fprintf(stderr, "sluice: %s: %s\n", what, sluice_strerror(err));
    return cli_exit_for(err);
}

int cli_fail_new(sluice_err err, const char *errstr)
{
    fprintf(stderr, "sluice: %s\n", errstr[0] ? errstr : sluice_strerror(err));
    return cli_exit_for(err);
}

/* ms since the epoch, or an ISO-8601 UTC time. */
int cli_parse_time(const char *s, int64_t *out)
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
const char *cli_optval(int argc, char **argv, int *i)
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

void cli_print_msg(const sluice_message *m, int json, int queue)
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
        return cli_die_usage("cluster: expected 'status'");
    err = sluice_admin_new(g_conf, &a, errstr, sizeof(errstr));
    if (err)
        return cli_fail_new(err, errstr);
    err = sluice_admin_cluster_status(a, NULL, &cs);
    if (err) {
        rc = cli_fail(err, "cluster status");
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
        return cli_die_usage("topic: missing subcommand (create|list|describe|"
                             "delete)");
    sub = argv[0];
    if (strcmp(sub, "create") && strcmp(sub, "list") &&
        strcmp(sub, "describe") && strcmp(sub, "delete"))
        return cli_die_usage("topic: unknown subcommand '%s'", sub);
    cfgs = calloc((size_t)argc, sizeof(*cfgs));
    if (!cfgs)
        return EX_FAIL;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--partitions") && !strcmp(sub, "create")) {
            const char *v = cli_optval(argc, argv, &i);
            if (!v || sl_parse_i64(v, &parts) || parts < 1 || parts > 100000) {
                rc = cli_die_usage("--partitions needs a number in 1..100000");
                goto out;
            }
        } else if (!strcmp(argv[i], "--replication-factor") &&
                   !strcmp(sub, "create")) {
            /* sent as the create config replication-factor (cluster) */
            const char *v = cli_optval(argc, argv, &i);
            int64_t rf;
            if (!v || sl_parse_i64(v, &rf) || rf < 1 || rf > 16) {
                rc = cli_die_usage("--replication-factor needs a number in "
                                   "1..16");
                goto out;
            }
            cfgs[ncfg].key = strdup("replication-factor");
            cfgs[ncfg].value = strdup(v);
            ncfg++;
        } else if (!strcmp(argv[i], "--config") && !strcmp(sub, "create")) {
            const char *v = cli_optval(argc, argv, &i);
            char *eq;
            if (!v || !(eq = strchr(v, '=')) || eq == v) {
                rc = cli_die_usage("--config needs key=value");
                goto out;
            }
            cfgs[ncfg].key = strndup(v, (size_t)(eq - v));
            cfgs[ncfg].value = strdup(eq + 1);
            ncfg++;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            rc = cli_die_usage("topic %s: unknown option '%s'", sub, argv[i]);
            goto out;
        } else if (!name) {
            name = argv[i];
        } else {
            rc = cli_die_usage("topic %s: unexpected argument '%s'", sub,
                               argv[i]);
            goto out;
        }
    }
    if (strcmp(sub, "list") && !name) {
        rc = cli_die_usage("topic %s: missing topic name", sub);
        goto out;
    }
    err = sluice_admin_new(g_conf, &a, errstr, sizeof(errstr));
    if (err) {
        rc = cli_fail_new(err, errstr);
        goto out;
    }
    if (!strcmp(sub, "create")) {
        err = sluice_admin_create_topic(a, name, (int32_t)parts, cfgs, ncfg);
        /* in a cluster, answered once the node asked has the topic, and
         * any other node waits for it before it answers (docs/cluster.md
         * 2.7): nothing to wait for here */
        if (err)
            rc = cli_fail(err, "topic create");
        else
            printf("created topic %s\n", name);
    } else if (!strcmp(sub, "delete")) {
        err = sluice_admin_delete_topic(a, name);
        if (err)
            rc = cli_fail(err, "topic delete");
        else
            printf("deleted topic %s\n", name);
    } else if (!strcmp(sub, "list")) {
        sluice_topic_list *l;
        size_t k;
        err = sluice_admin_list_topics(a, &l);
        if (err) {
            rc = cli_fail(err, "topic list");
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
            rc = cli_fail(err, "topic describe");
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
                rc = cli_die_usage("-b needs HOST:PORT");
                goto out;
            }
            if (sluice_conf_set(g_conf, "bootstrap", argv[++i], errstr,
                                sizeof(errstr))) {
                rc = cli_die_usage("-b '%s': expected HOST:PORT or a list "
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
            const char *key = !strcmp(argv[i], "--tls-ca") ? "ssl.ca.location"
                              : !strcmp(argv[i], "--tls-cert")
                                  ? "ssl.certificate.location"
                                  : "ssl.key.location";
            if (i + 1 >= argc) {
                rc = cli_die_usage("%s needs a FILE", argv[i]);
                goto out;
            }
            if (access(argv[i + 1], R_OK) != 0) {
                rc = cli_die_usage("%s %s: %s", argv[i], argv[i + 1],
                                   strerror(errno));
                goto out;
            }
            if (sluice_conf_set(g_conf, key, argv[++i], errstr,
                                sizeof(errstr))) {
                rc = cli_die_usage("%s: %s", argv[i - 1], errstr);
                goto out;
            }
            sluice_conf_set(g_conf, "security.protocol", "ssl", NULL, 0);
        } else if (!strcmp(argv[i], "--user")) {
            if (i + 1 >= argc) {
                rc = cli_die_usage("--user needs a user name");
                goto out;
            }
            user = argv[++i];
        } else if (!strcmp(argv[i], "-X")) {
            char *eq;
            if (i + 1 >= argc || !(eq = strchr(argv[i + 1], '='))) {
                rc = cli_die_usage("-X needs key=value");
                goto out;
            }
            *eq = '\0';
            if (sluice_conf_set(g_conf, argv[i + 1], eq + 1, errstr,
                                sizeof(errstr))) {
                rc = cli_die_usage("-X: %s", errstr);
                goto out;
            }
            i++;
        } else if (argv[i][0] == '-') {
            rc = cli_die_usage("unknown option '%s'", argv[i]);
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
        rc = cli_die_usage("unknown command '%s'", argv[i]);
out:
    sluice_conf_free(g_conf);
    return rc;
}
