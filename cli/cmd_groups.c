/*
 * cmd_groups.c - `sluice group` and `sluice dlq` (docs/cli.md): group
 * settings, description, offsets, and dead-letter topics.
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

#include "cli/cli.h"
#include "cli/mgmt.h"
#include "protocol/parse.h"
#include "sluice.h"

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
            topic = cli_optval(argc, argv, &i);
            if (!topic || !*topic) {
                rc = cli_die_usage("--topic needs a name");
                goto out;
            }
        } else if (!strcmp(argv[i], "--alter")) {
            alter = 1;
        } else if (!strcmp(argv[i], "--stats")) {
            stats = 1;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            rc = cli_die_usage("group config: unknown option '%s'", argv[i]);
            goto out;
        } else if (!group) {
            if (strchr(argv[i], '=')) {
                rc = cli_die_usage("group config: missing group name before "
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
            rc = cli_die_usage("group config: expected key=value, got '%s'",
                               argv[i]);
            goto out;
        }
    }
    if (!group) {
        rc = cli_die_usage("group config: missing group name");
        goto out;
    }
    if (!topic) {
        rc = cli_die_usage("group config: --topic is required");
        goto out;
    }
    if (alter && !ncfg) {
        rc = cli_die_usage("group config: --alter needs key=value settings");
        goto out;
    }
    mode = !ncfg   ? SLUICE_QGROUP_DESCRIBE
           : alter ? SLUICE_QGROUP_ALTER
                   : SLUICE_QGROUP_UPSERT;
    err = sluice_admin_new(g_conf, &a, errstr, sizeof(errstr));
    if (err) {
        rc = cli_fail_new(err, errstr);
        goto out;
    }
    err = sluice_admin_queue_group_config(a, topic, group, mode, cfgs, ncfg,
                                          &eff, &neff);
    if (err) {
        rc = cli_fail(err, "group config");
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

int cmd_group(int argc, char **argv)
{
    sluice_admin *a = NULL;
    char errstr[512];
    sluice_err err;
    int rc = EX_OK;
    size_t i, k;

    if (argc >= 1 && !strcmp(argv[0], "config"))
        return cmd_group_config(argc, argv);
    if (argc < 1 || (strcmp(argv[0], "list") && strcmp(argv[0], "describe")))
        return cli_die_usage("group: expected 'list', 'describe G' or "
                             "'config G --topic T [key=value]...'");
    if (!strcmp(argv[0], "describe") && argc != 2)
        return cli_die_usage("group describe: expected one group name");
    if (!strcmp(argv[0], "list") && argc != 1)
        return cli_die_usage("group list: unexpected argument '%s'", argv[1]);
    err = sluice_admin_new(g_conf, &a, errstr, sizeof(errstr));
    if (err)
        return cli_fail_new(err, errstr);
    if (!strcmp(argv[0], "list")) {
        sluice_group_list *l;
        err = sluice_admin_list_groups(a, &l);
        if (err) {
            rc = cli_fail(err, "group list");
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
            rc = cli_fail(err, "group describe");
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

int cmd_dlq(int argc, char **argv)
{
    sluice_admin *a = NULL;
    char errstr[512];
    sluice_err err;
    int rc = EX_OK, i;
    const char *sub, *topic = NULL, *to = NULL, *reason = NULL;
    int64_t rate = 0, max = -1, moved = 0;

    if (argc < 1)
        return cli_die_usage("dlq: expected list, show or redrive");
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
            return cli_die_usage("dlq show: missing DLQ topic");
        }
        r = cmd_consume(n, nargv);
        free(nargv);
        return r;
    }
    if (strcmp(sub, "list") && strcmp(sub, "redrive"))
        return cli_die_usage("dlq: unknown subcommand '%s'", sub);
    for (i = 1; i < argc; i++) {
        const char *v;
        int redrive = !strcmp(sub, "redrive");
        if (redrive && !strcmp(argv[i], "--to")) {
            to = cli_optval(argc, argv, &i);
            if (!to || !*to)
                return cli_die_usage("--to needs a topic");
        } else if (redrive && !strcmp(argv[i], "--rate")) {
            v = cli_optval(argc, argv, &i);
            if (!v || sl_parse_i64(v, &rate) || rate < 0)
                return cli_die_usage("--rate needs records per second >= 0");
        } else if (redrive && !strcmp(argv[i], "--reason")) {
            reason = cli_optval(argc, argv, &i);
            if (!reason)
                return cli_die_usage("--reason needs a value");
        } else if (redrive && !strcmp(argv[i], "--max")) {
            v = cli_optval(argc, argv, &i);
            if (!v || sl_parse_i64(v, &max) || max < 1)
                return cli_die_usage("--max needs a number >= 1");
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            return cli_die_usage("dlq %s: unknown option '%s'", sub, argv[i]);
        } else if (!topic) {
            topic = argv[i];
        } else {
            return cli_die_usage("dlq %s: unexpected argument '%s'", sub,
                                 argv[i]);
        }
    }
    if (!strcmp(sub, "redrive") && !topic)
        return cli_die_usage("dlq redrive: missing DLQ topic");
    if (rate > 0) /* a slow redrive may take long: allow for it */
        sluice_conf_set(g_conf, "request.timeout.ms", "2147483647", NULL, 0);
    err = sluice_admin_new(g_conf, &a, errstr, sizeof(errstr));
    if (err)
        return cli_fail_new(err, errstr);
    if (!strcmp(sub, "list")) {
        sluice_dlq_list *l;
        size_t k;
        err = sluice_admin_dlq_list(a, topic, &l);
        if (err) {
            rc = cli_fail(err, "dlq list");
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
            rc = cli_fail(err, "dlq redrive");
        else
            printf("redrove %" PRId64 " records from %s\n", moved, topic);
    }
    sluice_admin_free(a);
    return rc;
}
