/*
 * cluster_reassign.c - the admin verbs that move partitions and change
 * the membership of a cluster (docs/cluster.md section 10):
 * partition.reassign, partition.reassignments, cluster.rebalance,
 * cluster.add-node and cluster.remove-node (which empties a node with
 * reassignments first). Each proposes its commands to the metadata quorum
 * and answers once they are in the log; split from cluster_ops.c
 * (controlled shutdown, topic changes), whose proposal helpers it uses
 * (cluster_ops_int.h). @thread loop
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/admin_int.h"
#include "broker/broker.h"
#include "broker/cluster_ops_int.h"
#include "broker/cluster_propose.h"
#include "cluster/meta.h"
#include "cluster/node.h"
#include "protocol/log.h"

/* ---- partition reassignment and rebalance (admin verbs) -------------------
 *
 * `partition.reassign` proposes one REASSIGN (cluster/meta.h): the new
 * replicas are added to the partition's replicas at once, copy the log
 * from the leader (broker/replica.c, at most reassign-throttle-bytes per
 * second per node), join the ISR when caught up, and the controller
 * (cluster/node_ctl.c) then completes it with REASSIGN_DONE: the replicas
 * become the target, the old ones stop following, the first target
 * leads. `cluster.rebalance` proposes a REASSIGN for every partition
 * whose replicas or leader differ from the even placement over the
 * current nodes (docs/cluster.md 2.5). Both answer once their commands
 * are in the log; `partition.reassignments` shows what is in progress. */

typedef struct rop {
    sl_admin_call *x;
    int left;  /* proposals not answered yet */
    int count; /* proposals made */
    int unchanged, in_progress;
    int32_t node; /* remove-node: the node being emptied */
    sl_err rc;
    char msg[512];
} rop;

static int not_cluster(sl_admin_call *x)
{
    if (sl_bcluster_image(x->b))
        return 0;
    snprintf(x->msg, sizeof(x->msg),
             "not a cluster: this broker runs without --node-id");
    return 1;
}

static void ids_json(sl_jw *j, const char *k, const int32_t *v, int32_t n)
{
    sl_jw_key(j, k);
    sl_jw_arr(j);
    for (int32_t i = 0; i < n; i++)
        sl_jw_i64(j, v[i]);
    sl_jw_end(j);
}

static int has(const int32_t *v, int32_t n, int32_t id)
{
    for (int32_t i = 0; i < n; i++)
        if (v[i] == id)
            return 1;
    return 0;
}

static void part_json(sl_jw *j, const char *topic, int32_t p,
                      const sl_mi_part *mp)
{
    int32_t add[SL_META_MAX_RF], rem[SL_META_MAX_RF], na = 0, nr = 0;
    for (int32_t i = 0; i < mp->ntarget; i++)
        if (!has(mp->isr, mp->nisr, mp->target[i]))
            add[na++] = mp->target[i];
    for (int32_t i = 0; mp->ntarget && i < mp->nrep; i++)
        if (!has(mp->target, mp->ntarget, mp->rep[i]))
            rem[nr++] = mp->rep[i];
    sl_jw_obj(j);
    sl_jw_kstr(j, "topic", topic);
    sl_jw_ki64(j, "partition", p);
    sl_jw_ki64(j, "leader", mp->leader);
    sl_jw_ki64(j, "leader_epoch", mp->leader_epoch);
    ids_json(j, "replicas", mp->rep, mp->nrep);
    ids_json(j, "isr", mp->isr, mp->nisr);
    ids_json(j, "target", mp->target, mp->ntarget);
    ids_json(j, "adding", add, na);   /* copying, not in sync yet */
    ids_json(j, "removing", rem, nr); /* go once the target is in sync */
    sl_jw_end(j);
}

static void member_json(sl_admin_call *x, int32_t id, const char *state,
                        int64_t moving, int64_t in_progress);

static void rop_json(rop *o)
{
    if (o->node) {
        member_json(o->x, o->node, "moving", o->count, o->in_progress);
        return;
    }
    sl_jw_obj(&o->x->j);
    sl_jw_ki64(&o->x->j, "reassignments", o->count);
    sl_jw_ki64(&o->x->j, "unchanged", o->unchanged);
    sl_jw_ki64(&o->x->j, "in_progress", o->in_progress);
    sl_jw_end(&o->x->j);
}

static void rop_done(void *arg, sl_err rc, const char *msg)
{
    rop *o = arg;
    if (rc != SL_OK && o->rc == SL_OK) {
        o->rc = rc;
        snprintf(o->msg, sizeof(o->msg), "%s",
                 msg && msg[0] ? msg : sl_strerror(rc));
    }
    if (--o->left > 0)
        return;
    if (o->rc != SL_OK)
        snprintf(o->x->msg, sizeof(o->x->msg), "%s", o->msg);
    else
        rop_json(o);
    adm_finish(o->x, o->rc);
    free(o);
}

/* Propose a REASSIGN of topic/p to target under o. */
static sl_err rop_propose(rop *o, const char *topic, int32_t p,
                          const int32_t *target, int32_t n)
{
    sl_wb wb;
    sl_err rc;
    sl_wb_init(&wb, 64);
    sl_meta_enc_reassign(&wb, topic, p, target, n);
    o->left++;
    rc = wb.err ? SL_ERR_NOMEM
                : sl_bcluster_propose(o->x->b, wb.p, wb.len, rop_done, o);
    sl_wb_fini(&wb);
    if (rc != SL_OK)
        o->left--;
    else
        o->count++;
    return rc;
}

/* Start o's answer: pending until its proposals are answered (rc, a
 * failure after some were made, is reported then); answered now when
 * none was made. */
static sl_err rop_start(rop *o, sl_err rc)
{
    sl_admin_call *x = o->x;
    if (o->left == 0) {
        if (rc == SL_OK)
            rop_json(o);
        else if (!x->msg[0])
            snprintf(x->msg, sizeof(x->msg),
                     "cannot reach the metadata leader now: %s; retry",
                     sl_strerror(rc));
        free(o);
        return rc;
    }
    if (rc != SL_OK) {
        o->rc = rc;
        snprintf(o->msg, sizeof(o->msg), "%s",
                 x->msg[0] ? x->msg : sl_strerror(rc));
    }
    x->pending = 1;
    return SL_OK;
}

/* "1,2,3" into ids; 0 or -1 with x->msg set. */
static int parse_ids(sl_admin_call *x, const char *s, int32_t *ids, int32_t *n)
{
    *n = 0;
    while (*s) {
        char *e;
        long v = strtol(s, &e, 10);
        if (e == s || v < 1 || v > 1000000 || (*e && *e != ',') ||
            *n == SL_META_MAX_RF) {
            snprintf(x->msg, sizeof(x->msg),
                     "replicas: expected up to %d node ids like 1,2,3, not "
                     "'%.64s'",
                     SL_META_MAX_RF, s);
            return -1;
        }
        ids[(*n)++] = (int32_t)v;
        s = *e ? e + 1 : e;
    }
    if (*n == 0) {
        snprintf(x->msg, sizeof(x->msg), "replicas: no node ids given");
        return -1;
    }
    return 0;
}

/* `partition reassign --cancel [TOPIC/P]` (Kafka's
 * kafka-reassign-partitions --cancel): every reassignment in progress (of
 * topic/part when given) goes back to the replicas it started from, as a
 * REASSIGN to them (cluster/meta.h: orig). The replicas it was adding and
 * that are not among those stop copying at once; when every original
 * replica is in sync the controller completes it like any other, and the
 * nodes it had added delete their copies (broker/replica.c). */
static sl_err cancel_reassign(sl_admin_call *x, const char *topic, int64_t part)
{
    const sl_meta *m = sl_bcluster_image(x->b);
    sl_err rc = SL_OK;
    rop *o;

    if (topic && !sl_meta_topic_find(m, topic)) {
        snprintf(x->msg, sizeof(x->msg),
                 "unknown topic '%.200s' (not in the cluster's metadata)",
                 topic);
        return SL_ERR_UNKNOWN_TOPIC;
    }
    if (!(o = calloc(1, sizeof(*o))))
        return SL_ERR_NOMEM;
    o->x = x;
    for (size_t i = 0; i < m->ntopics && rc == SL_OK; i++) {
        const sl_mi_topic *t = m->topics[i];
        if (topic && strcmp(topic, t->name))
            continue;
        for (int32_t p = 0; p < t->nparts && rc == SL_OK; p++) {
            const sl_mi_part *mp = &t->parts[p];
            if ((part >= 0 && p != part) || mp->ntarget == 0)
                continue;
            if (mp->norig == 0) {
                snprintf(x->msg, sizeof(x->msg),
                         "%.200s/%d: the replicas it started from are not "
                         "known (started by an older version): move it "
                         "with --replicas instead",
                         t->name, (int)p);
                rc = SL_ERR_INVALID_CONFIG;
                break;
            }
            rc = rop_propose(o, t->name, p, mp->orig, mp->norig);
        }
    }
    if (rc == SL_OK && o->left == 0 && part >= 0) {
        snprintf(x->msg, sizeof(x->msg),
                 "no reassignment of %.200s/%d in progress", topic, (int)part);
        rc = SL_ERR_NOT_FOUND;
    }
    return rop_start(o, rc);
}

sl_err v_partition_reassign(sl_admin_call *x)
{
    const sl_meta *m = sl_bcluster_image(x->b);
    const char *topic, *reps;
    const sl_mi_topic *t;
    int32_t ids[SL_META_MAX_RF], n;
    int64_t part;
    rop *o;
    sl_err rc;

    if (not_cluster(x))
        return SL_ERR_INVALID_ARG;
    if (adm_arg(x, "cancel")) {
        const char *tp = adm_arg(x, "topic");
        if ((rc = adm_int_arg(x, "partition", 0, SL_META_MAX_PARTS - 1, -1,
                              &part)) != SL_OK)
            return rc;
        return cancel_reassign(x, tp && *tp ? tp : NULL, part);
    }
    if ((rc = adm_need(x, "topic", &topic)) != SL_OK ||
        (rc = adm_int_arg(x, "partition", 0, SL_META_MAX_PARTS - 1, -1,
                          &part)) != SL_OK ||
        (rc = adm_need(x, "replicas", &reps)) != SL_OK)
        return rc;
    if (part < 0) {
        snprintf(x->msg, sizeof(x->msg), "missing argument 'partition'");
        return SL_ERR_INVALID_ARG;
    }
    if (!(t = sl_meta_topic_find(m, topic))) {
        snprintf(x->msg, sizeof(x->msg),
                 "unknown topic '%.200s' (not in the cluster's metadata)",
                 topic);
        return SL_ERR_UNKNOWN_TOPIC;
    }
    if (part >= t->nparts) {
        snprintf(x->msg, sizeof(x->msg), "topic %.200s has %d partition(s)",
                 topic, (int)t->nparts);
        return SL_ERR_UNKNOWN_PARTITION;
    }
    if (parse_ids(x, reps, ids, &n) != 0)
        return SL_ERR_INVALID_ARG;
    for (int32_t i = 0; i < n; i++) {
        const sl_mi_node *nd = sl_meta_node_find(m, ids[i]);
        if (!nd) {
            snprintf(x->msg, sizeof(x->msg),
                     "node %d is not a member of the cluster (sluice cluster "
                     "status lists them)",
                     (int)ids[i]);
            return SL_ERR_INVALID_CONFIG;
        }
        if (has(ids, i, ids[i])) {
            snprintf(x->msg, sizeof(x->msg), "replicas: node %d twice",
                     (int)ids[i]);
            return SL_ERR_INVALID_CONFIG;
        }
    }
    if (!(o = calloc(1, sizeof(*o))))
        return SL_ERR_NOMEM;
    o->x = x;
    return rop_start(o, rop_propose(o, topic, (int32_t)part, ids, n));
}

sl_err v_partition_reassignments(sl_admin_call *x)
{
    const sl_meta *m = sl_bcluster_image(x->b);
    const char *topic = adm_arg(x, "topic");
    if (not_cluster(x))
        return SL_ERR_INVALID_ARG;
    sl_jw_obj(&x->j);
    sl_jw_key(&x->j, "reassignments");
    sl_jw_arr(&x->j);
    for (size_t i = 0; i < m->ntopics; i++) {
        const sl_mi_topic *t = m->topics[i];
        if (topic && *topic && strcmp(topic, t->name))
            continue;
        for (int32_t p = 0; p < t->nparts; p++)
            if (t->parts[p].ntarget > 0)
                part_json(&x->j, t->name, p, &t->parts[p]);
    }
    sl_jw_end(&x->j);
    sl_jw_end(&x->j);
    return SL_OK;
}

sl_err v_cluster_rebalance(sl_admin_call *x)
{
    const sl_meta *m = sl_bcluster_image(x->b);
    rop *o;
    sl_err rc = SL_OK;

    if (not_cluster(x))
        return SL_ERR_INVALID_ARG;
    for (size_t i = 0; i < m->nnodes; i++)
        if (m->nodes[i].fenced) {
            snprintf(x->msg, sizeof(x->msg),
                     "node %d is down: bring it back (or remove it with "
                     "sluice cluster remove-node) before rebalancing",
                     (int)m->nodes[i].id);
            return SL_ERR_INVALID_CONFIG;
        }
    if (!(o = calloc(1, sizeof(*o))))
        return SL_ERR_NOMEM;
    o->x = x;
    for (size_t i = 0; i < m->ntopics && rc == SL_OK; i++) {
        const sl_mi_topic *t = m->topics[i];
        for (int32_t p = 0; p < t->nparts && rc == SL_OK; p++) {
            const sl_mi_part *mp = &t->parts[p];
            int32_t want[SL_META_MAX_RF];
            if (mp->ntarget > 0) {
                o->in_progress++;
                continue;
            }
            if (sl_meta_place_one(m, t->name, p, mp->nrep, want, x->msg,
                                  sizeof(x->msg)) != SL_OK) {
                rc = SL_ERR_INVALID_CONFIG;
                break;
            }
            if (!memcmp(want, mp->rep, sizeof(int32_t) * (size_t)mp->nrep) &&
                mp->leader == want[0]) {
                o->unchanged++;
                continue;
            }
            rc = rop_propose(o, t->name, p, want, mp->nrep);
        }
    }
    return rop_start(o, rc);
}

/* ---- membership: cluster add-node / remove-node ---------------------------
 *
 * add-node: MEMBER_ADD goes to the metadata leader (forwarded like a
 * command), which adds the node to the Raft configuration as a spare and
 * makes it a voter once libraft has caught it up (cluster/node.c). The
 * new node, started with cluster-join, then registers its addresses and
 * the controller unfences it. It holds no partition until one is moved
 * to it (partition reassign, cluster rebalance).
 *
 * remove-node: while a partition still names the node, the verb moves
 * them (one REASSIGN each: the node replaced by the live node holding the
 * fewest replicas) and answers "moving"; refused as a whole, before
 * anything is proposed, when a partition would have no node to go to
 * (under its replication factor). Once no partition names it, it takes
 * the node out of the Raft configuration (MEMBER_REMOVE) and out of the
 * image (UNREGISTER_NODE) and answers "removed". `sluice cluster
 * remove-node` calls it until then. */

typedef struct mop {
    sl_admin_call *x;
    int32_t id;
    int step; /* remove: 0 leaving the configuration, 1 the image */
} mop;

static void member_json(sl_admin_call *x, int32_t id, const char *state,
                        int64_t moving, int64_t in_progress)
{
    sl_jw_obj(&x->j);
    sl_jw_ki64(&x->j, "node", id);
    sl_jw_kstr(&x->j, "state", state);
    sl_jw_ki64(&x->j, "moving", moving);
    sl_jw_ki64(&x->j, "in_progress", in_progress);
    sl_jw_end(&x->j);
}

static void mop_fail(mop *o, sl_err rc, const char *msg)
{
    snprintf(o->x->msg, sizeof(o->x->msg), "%s",
             msg && msg[0] ? msg : sl_strerror(rc));
    adm_finish(o->x, rc);
    free(o);
}

static void add_done(void *arg, sl_err rc, const char *msg)
{
    mop *o = arg;
    if (rc != SL_OK) {
        mop_fail(o, rc, msg);
        return;
    }
    member_json(o->x, o->id, "added", 0, 0);
    adm_finish(o->x, SL_OK);
    free(o);
}

static void remove_done(void *arg, sl_err rc, const char *msg)
{
    mop *o = arg;
    sl_wb wb;
    if (rc == SL_ERR_NOT_FOUND && o->step == 1)
        rc = SL_OK; /* not in the image any more: done already */
    if (rc != SL_OK) {
        mop_fail(o, rc, msg);
        return;
    }
    if (o->step == 0) {
        o->step = 1;
        sl_wb_init(&wb, 16);
        sl_meta_enc_unregister(&wb, o->id);
        rc = sl_bops_propose_cmd(o->x->b, &wb, remove_done, o);
        if (rc != SL_OK)
            mop_fail(o, rc,
                     "left the metadata quorum, but cannot reach the "
                     "metadata leader to drop it from the image; "
                     "retry");
        return;
    }
    member_json(o->x, o->id, "removed", 0, 0);
    adm_finish(o->x, SL_OK);
    free(o);
}

static sl_err node_arg(sl_admin_call *x, int32_t *id)
{
    int64_t v;
    sl_err rc = adm_int_arg(x, "node", 1, 1000000, -1, &v);
    if (rc == SL_OK && v < 0) {
        snprintf(x->msg, sizeof(x->msg), "missing argument 'node'");
        rc = SL_ERR_INVALID_ARG;
    }
    *id = (int32_t)v;
    return rc;
}

static sl_err mop_start(sl_admin_call *x, int32_t id, sl_wb *wb,
                        sl_cluster_done_fn fn)
{
    mop *o = calloc(1, sizeof(*o));
    if (o) {
        o->x = x;
        o->id = id;
    }
    return sl_bops_propose_for_call(x, wb, fn, o);
}

sl_err v_cluster_add_node(sl_admin_call *x)
{
    const char *addr, *colon;
    int32_t id;
    sl_wb wb;
    sl_err rc;

    if (not_cluster(x))
        return SL_ERR_INVALID_ARG;
    if ((rc = node_arg(x, &id)) != SL_OK ||
        (rc = adm_need(x, "address", &addr)) != SL_OK)
        return rc;
    colon = strrchr(addr, ':');
    if (!colon || colon == addr || !colon[1] ||
        strlen(addr) >= SL_CLUSTER_ADDR_MAX) {
        snprintf(x->msg, sizeof(x->msg),
                 "address '%.64s': expected the new node's cluster-listen "
                 "HOST:PORT",
                 addr);
        return SL_ERR_INVALID_ARG;
    }
    sl_wb_init(&wb, 64);
    sl_meta_enc_member(&wb, SL_MREQ_MEMBER_ADD, id, addr);
    return mop_start(x, id, &wb, add_done);
}

/* The live node, not id and not in set[0..n), holding the fewest
 * replicas (count, by position in the image's nodes); -1 if none. */
static int32_t pick_node(const sl_meta *m, int32_t id, const int32_t *set,
                         int32_t n, const int64_t *count)
{
    int32_t best = -1;
    int64_t bc = 0;
    for (size_t i = 0; i < m->nnodes; i++) {
        const sl_mi_node *nd = &m->nodes[i];
        if (nd->id == id || nd->fenced || has(set, n, nd->id))
            continue;
        if (best < 0 || count[i] < bc) {
            best = (int32_t)i;
            bc = count[i];
        }
    }
    return best;
}

/* Plan (o NULL) or propose (o) the moves of every partition naming id;
 * count: replicas per node of the image (updated). SL_OK, or
 * SL_ERR_INVALID_CONFIG with x->msg naming a partition that cannot move. */
static sl_err plan_moves(sl_admin_call *x, const sl_meta *m, int32_t id,
                         int64_t *count, rop *o)
{
    for (size_t t = 0; t < m->ntopics; t++)
        for (int32_t p = 0; p < m->topics[t]->nparts; p++) {
            const sl_mi_topic *tp = m->topics[t];
            const sl_mi_part *mp = &tp->parts[p];
            const int32_t *base = mp->ntarget ? mp->target : mp->rep;
            int32_t nb = mp->ntarget ? mp->ntarget : mp->nrep;
            int32_t want[SL_META_MAX_RF], nw = 0, k;
            if (!has(base, nb, id)) {
                if (o && mp->ntarget && has(mp->rep, mp->nrep, id))
                    o->in_progress++; /* moving away already */
                continue;
            }
            for (int32_t i = 0; i < nb; i++)
                if (base[i] != id)
                    want[nw++] = base[i];
            k = pick_node(m, id, want, nw, count);
            if (k < 0) {
                snprintf(x->msg, sizeof(x->msg),
                         "removing node %d would leave %.200s/%d under its "
                         "replication factor %d: no other live node can "
                         "take its replica (add a node first)",
                         (int)id, tp->name, (int)p, (int)nb);
                return SL_ERR_INVALID_CONFIG;
            }
            want[nw++] = m->nodes[k].id;
            count[k]++;
            if (o && rop_propose(o, tp->name, p, want, nw) != SL_OK)
                return SL_ERR_BUSY;
        }
    return SL_OK;
}

static void replica_counts(const sl_meta *m, int64_t *count)
{
    for (size_t i = 0; i < m->nnodes; i++) {
        count[i] = 0;
        for (size_t t = 0; t < m->ntopics; t++)
            for (int32_t p = 0; p < m->topics[t]->nparts; p++) {
                const sl_mi_part *mp = &m->topics[t]->parts[p];
                count[i] += has(mp->rep, mp->nrep, m->nodes[i].id);
            }
    }
}

sl_err v_cluster_remove_node(sl_admin_call *x)
{
    const sl_meta *m = sl_bcluster_image(x->b);
    int64_t *count;
    int32_t id;
    rop *o;
    sl_err rc;

    if (not_cluster(x))
        return SL_ERR_INVALID_ARG;
    if ((rc = node_arg(x, &id)) != SL_OK)
        return rc;
    if (!sl_meta_node_find(m, id)) {
        snprintf(x->msg, sizeof(x->msg),
                 "node %d is not a member of the cluster", (int)id);
        return SL_ERR_NOT_FOUND;
    }
    if (!sl_meta_node_used(m, id)) {
        sl_wb wb;
        sl_wb_init(&wb, 16);
        sl_meta_enc_member(&wb, SL_MREQ_MEMBER_REMOVE, id, "");
        return mop_start(x, id, &wb, remove_done);
    }
    count = calloc(m->nnodes + 1, sizeof(*count));
    o = calloc(1, sizeof(*o));
    if (!count || !o) {
        free(count);
        free(o);
        return SL_ERR_NOMEM;
    }
    o->x = x;
    o->node = id;
    /* nothing moves unless every partition has somewhere to go */
    replica_counts(m, count);
    rc = plan_moves(x, m, id, count, NULL);
    if (rc == SL_OK) {
        replica_counts(m, count);
        rc = plan_moves(x, m, id, count, o);
    }
    free(count);
    if (rc == SL_ERR_INVALID_CONFIG) {
        free(o);
        return rc;
    }
    return rop_start(o, rc);
}
