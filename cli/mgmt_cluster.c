/*
 * mgmt_cluster.c - the cluster commands of `sluice` over the ADMIN api
 * (docs/cluster.md section 10): partition reassign / reassignments,
 * cluster rebalance, add-node and remove-node (which calls until the node
 * is empty and removed). The helpers are mgmt.c's (mgmt_int.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/mgmt_int.h"
#include "protocol/parse.h"

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
int mgmt_cmd_partition(sluice_conf *conf, int argc, char **argv)
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
            return mgmt_usage_err(
                "partition reassign: unknown option or missing "
                "value '%s'",
                argv[i]);
        else if (!what)
            what = argv[i];
        else
            return mgmt_usage_err(
                "partition reassign: unexpected argument '%s'", argv[i]);
    }
    if (cancel && (status || reps))
        return mgmt_usage_err("partition reassign: --cancel takes no --status "
                              "or --replicas");
    if (cancel && !what) {
        mgmt_kv_add(&a, "cancel", "1");
        rc = mgmt_call(conf, "partition.reassign", &a,
                       "partition reassign --cancel", &o, NULL);
        if (rc)
            return rc;
        printf("cancelled %" PRId64 " reassignment(s): back to the replicas "
               "they started from (sluice partition reassign --status "
               "follows them)\n",
               mgmt_num(o, "reassignments"));
        cJSON_Delete(o);
        return EX_OK;
    }
    if (status) {
        if (reps)
            return mgmt_usage_err("partition reassign: --status takes no "
                                  "--replicas");
        if (what)
            mgmt_kv_add(&a, "topic", what);
        rc = mgmt_call(conf, "partition.reassignments", &a,
                       "partition reassign --status", &o, NULL);
        if (rc)
            return rc;
        r = cJSON_GetObjectItem(o, "reassignments");
        if (cJSON_GetArraySize(r) == 0)
            printf("no reassignment in progress\n");
        cJSON_ArrayForEach(e, r)
        {
            printf("%s/%" PRId64 " leader=%" PRId64, mgmt_str(e, "topic"),
                   mgmt_num(e, "partition"), mgmt_num(e, "leader"));
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
        if (!slash || slash == what ||
            (size_t)(slash - what) >= sizeof(topic) ||
            sl_parse_i64(slash + 1, &p) || p < 0)
            return mgmt_usage_err(
                "partition reassign: expected TOPIC/PARTITION, "
                "e.g. orders/0");
        if (!reps && !cancel)
            return mgmt_usage_err("partition reassign: --replicas A,B,C is "
                                  "required");
        memcpy(topic, what, (size_t)(slash - what));
        topic[slash - what] = 0;
        snprintf(part, sizeof(part), "%" PRId64, p);
    }
    mgmt_kv_add(&a, "topic", topic);
    mgmt_kv_add(&a, "partition", part);
    if (cancel) {
        mgmt_kv_add(&a, "cancel", "1");
        rc = mgmt_call(conf, "partition.reassign", &a,
                       "partition reassign --cancel", &o, NULL);
        if (rc)
            return rc;
        printf("cancelled the reassignment of %s/%s: back to the replicas it "
               "started from (sluice partition reassign --status follows "
               "it)\n",
               topic, part);
        cJSON_Delete(o);
        return EX_OK;
    }
    mgmt_kv_add(&a, "replicas", reps);
    rc = mgmt_call(conf, "partition.reassign", &a, "partition reassign", &o,
                   NULL);
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
        return mgmt_usage_err(
            "cluster add-node: expected ID HOST:PORT (the new "
            "node's --node-id and --cluster-listen)");
    mgmt_kv_add(&a, "node", argv[1]);
    mgmt_kv_add(&a, "address", argv[2]);
    for (int tries = 0;; tries++) {
        rc = mgmt_call_ex(conf, "cluster.add_node", &a, "cluster add-node", &o,
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
            return mgmt_usage_err(
                "cluster remove-node: unexpected argument '%s'", argv[i]);
    if (argc < 2 || sl_parse_i64(argv[1], &id) || id < 1 || id > 1000000)
        return mgmt_usage_err("cluster remove-node: expected a node id");
    mgmt_kv_add(&a, "node", argv[1]);
    for (int busy = 0;;) {
        rc = mgmt_call_ex(conf, "cluster.remove_node", &a,
                          "cluster remove-node", &o, NULL, busy < 30);
        if (rc == EX_BUSY_RETRY) {
            busy++;
            sleep(1); /* a leader hand-over or another change: retry */
            continue;
        }
        if (rc)
            return rc;
        state = mgmt_str(o, "state");
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
                   mgmt_num(o, "moving"), argv[1], mgmt_num(o, "in_progress"));
        told = 1;
        cJSON_Delete(o);
        if (nowait)
            return EX_OK;
        sleep(1); /* polling the operation, as --status would */
    }
}

int mgmt_cmd_cluster(sluice_conf *conf, int argc, char **argv)
{
    int rc;
    cJSON *o;
    if (!strcmp(argv[0], "add-node"))
        return cmd_add_node(conf, argc, argv);
    if (!strcmp(argv[0], "remove-node"))
        return cmd_remove_node(conf, argc, argv);
    if (argc > 1)
        return mgmt_usage_err("cluster %s: unexpected argument '%s'", argv[0],
                              argv[1]);
    rc = mgmt_call(conf, "cluster.rebalance", NULL, "cluster rebalance", &o,
                   NULL);
    if (rc)
        return rc;
    printf("rebalance: %" PRId64 " partition(s) reassigned, %" PRId64
           " already in place, %" PRId64 " with a reassignment in progress\n",
           mgmt_num(o, "reassignments"), mgmt_num(o, "unchanged"),
           mgmt_num(o, "in_progress"));
    cJSON_Delete(o);
    return EX_OK;
}
