/*
 * group_state.c - group state replicated with the data
 * (docs/cluster.md section 6; Kafka's __consumer_offsets and KIP-932's
 * __share_group_state).
 *
 * DESIGN. In a cluster, queue group state lives in an internal topic,
 * __sluice_group_state (SL_GSTATE_PARTITIONS partitions, RF
 * cluster-replication-factor, flush always, cleanup-policy compact),
 * created through the metadata log the first time a node is asked about
 * a queue group. Group g belongs to partition fnv1a32(g) mod partitions;
 * the leader of that partition is g's **coordinator**: the only node
 * that keeps g in memory, hands its records out and settles them. No
 * election of its own: the metadata quorum already picks one leader per
 * partition and epoch.
 *
 * The records are the groups library's own staged buffers (groups.c):
 * every flusher round serializes each dirty share-partition's whole
 * window (as ranges: acked runs, counts, due times, DLQ states), group
 * settings and deletions into one buffer. env.replicate hands that buffer
 * here; each op becomes one record keyed by what it describes (its window,
 * its settings), all ops of one state partition one batch, appended to the
 * partition this node leads and waited for with sl_ops_wait_durable: in a
 * cluster that is "fsynced on every in-sync replica" (docs/cluster.md
 * 3.3). The groups library answers a waiter (an ACK's reply, a receipt)
 * only when both its groups.db commit and this wait are done
 * (sl_groups_replicated). So one replicated append per round and state
 * partition covers every ack of the round, as the groups.db transaction
 * does, and an answered ack is on a majority's disk.
 *
 * A window op is a full snapshot of that window, so the newest record
 * per key is all a new coordinator needs: compaction (keep the latest per
 * key) is the "snapshot + tail" rule without separate snapshot records.
 *
 * Becoming coordinator (the image names this node leader of partition p;
 * sl_gstate_on_image after every image change): read p's whole local log
 * (past the read cap: the new leader's log is the truth, and an answered
 * ack is in it even if this node had not yet learned the old leader's
 * high-water mark), keep the queue and stream ops, and sl_groups_reload
 * them for the groups of p: their groups.db rows are replaced in one
 * transaction and loaded. Locks are not in the state, so every record acquired
 * but not acked is available again (attempts kept), as after a restart. Only
 * then does sl_gstate_coordinates say yes for p's groups.
 *
 * Losing it: the groups of p are dropped from memory (sl_groups_unload);
 * their consumers are orphaned; binary requests for them are answered
 * SL_ERR_NOT_COORDINATOR and libsluice finds the new coordinator from
 * METADATA of this topic. A stage that includes ops of a partition this
 * node does not lead (or has not rebuilt) fails as a whole with
 * NOT_COORDINATOR: nobody is told such a change is done.
 *
 * Failure scenario this prevents: coordinator A answers an ack, dies;
 * B becomes leader of the state partition: the ack's window record is in
 * B's log (it was fsynced on every ISR member before the answer), so the
 * record is acked on B too and never delivered again.
 *
 * Deleted topics: every node deletes a topic's group state itself when
 * its image drops the topic; the leader of each state partition also
 * appends the delete op (key: the topic) to it. A rebuild drops every
 * op before such a record that names its topic, so a topic created
 * again under the same name starts with no group state, not the old
 * topic's acked ranges and offsets (which would hide its new records).
 * Compaction keeps the newest delete record of a topic, which follows
 * every record of the topics it ended. Not covered: a state partition
 * that had no leader when the topic was deleted (its next leader finds
 * the old state, as before).
 *
 * Stream groups: committed offsets are ops of the same buffers (one
 * record per (group, topic, partition)), so they go the same way, and a
 * stream group is served by its coordinator too. So are its generation
 * and members (one record per group, kind 'm', staged at every
 * rebalance): the new coordinator accepts a commit from a member of the
 * current generation, as Kafka's does from __consumer_offsets.
 *
 * The coordinator lease (cluster/lease.c, docs/cluster.md "Coordinator
 * lease"): leading the state partition is not enough, the node must also
 * hold its lease (sl_cluster_lease_valid: it heard from the quorum
 * recently enough that no other node can coordinate yet). Without it,
 * sl_gstate_coordinates says no, so the groups library delivers nothing
 * (its pump asks) and new requests get NOT_COORDINATOR, except
 * settlements (sl_gstate_settles): for one session timeout after the
 * lease ran out (a controller's death or pause lapses every follower's
 * lease for about an election) they are applied here and wait, like
 * every settlement already waiting for its commit; staged buffers are
 * held, in order, instead of appended (appended, they would be refused
 * and staged again at once, round after round). Nobody is told a
 * settlement is done before its state is appended and committed under
 * a valid lease, so holding them is safe; it spares consumers an error
 * at every controller change. After a session timeout of lapse another
 * node may coordinate: lease_cb fails the waiters with NOT_COORDINATOR
 * (earlier, if this node learns that another one took over: the groups
 * are unloaded and the held state refused). Acquired records stay
 * acquired: the next coordinator releases them. When the lease comes
 * back (a short silence, no failover), the held buffers are appended in
 * order, their waiters answered when committed, and delivery resumes. Failure
 * scenario this prevents: a coordinator cut off from the majority (or paused,
 * then resumed) hands out records from its frozen state that the new
 * coordinator also hands out, or has seen acked.
 * @thread loop
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "broker/broker.h"
#include "broker/cluster_propose.h"
#include "broker/group_state.h"
#include "broker/observer.h"
#include "broker/ops.h"
#include "cluster/meta.h"
#include "cluster/node.h"
#include "protocol/batch.h"
#include "protocol/hash.h"
#include "protocol/log.h"

/* One staged buffer on its way to the state log: done when pending
 * appends are all durable. Completed in seq order. */
typedef struct rstage {
    struct rstage *next;
    uint64_t seq;
    int pending;
    sl_err rc;
    sl_gstate *gs;
    uint8_t *held; /* the ops, while the lease is lapsed (one pending) */
    size_t held_len;
} rstage;

struct sl_gstate {
    sl_broker *b;
    sl_groups *g;
    int32_t self;
    int32_t nparts; /* of the state topic in the image; 0 = none yet */
    uint8_t *ready; /* [nparts]: led here and rebuilt */
    int creating;   /* a CREATE_TOPIC of ours is in the log's hands */
    rstage *head, *tail;
    struct event *done_ev;   /* completes finished stages, never inline */
    struct sl_groute *route; /* group_route.c */
    struct event *lease_ev;  /* every heartbeat: lease_cb */
    int leased;              /* the lease as lease_cb last saw it */
    int lapse_seen;          /* lease_ok said no since lease_cb last ran */
    int nheld;               /* stages held for the lease */
};

/* Does this node hold its coordinator lease now? */
static int lease_ok(sl_gstate *gs)
{
    sl_cluster_node *n = sl_bcluster_node(gs->b);
    if (!n || sl_cluster_lease_valid(n, NULL))
        return 1;
    gs->lapse_seen = 1;
    return 0;
}

/* STOMP temp queues ("stomp-tmp-N.S-NAME") live on the node that made
 * them (docs/stomp.md; relay.c sends replies there): their groups are
 * that node's alone, never coordinated, moved or replicated. */
static int local_group(const char *group, size_t len)
{
    return len >= 10 && !memcmp(group, "stomp-tmp-", 10);
}

int32_t sl_gstate_partition(const char *group, int32_t nparts)
{
    if (nparts <= 0)
        return 0;
    return (int32_t)(sl_fnv1a32(group, strlen(group)) % (uint32_t)nparts);
}

static const sl_mi_topic *state_topic(sl_broker *b)
{
    const sl_meta *m = sl_bcluster_image(b);
    return m ? sl_meta_topic_find(m, SL_GSTATE_TOPIC) : NULL;
}

static void create_topic(sl_gstate *gs);

int32_t sl_gstate_coordinator(sl_broker *b, const char *group)
{
    const sl_mi_topic *t;
    if (!sl_bcluster_image(b))
        return 0;
    t = state_topic(b);
    if (!t || t->nparts <= 0) {
        if (!t && sl_ops_gstate(b))
            create_topic(sl_ops_gstate(b));
        return -1;
    }
    return t->parts[sl_gstate_partition(group, t->nparts)].leader;
}

/* ---- creating the state topic ----------------------------------------- */

static void create_done(void *arg, sl_err rc, const char *msg)
{
    sl_gstate *gs = arg;
    gs->creating = 0;
    if (rc != SL_OK && rc != SL_ERR_TOPIC_EXISTS)
        sl_log(SL_WARN, "groups", "creating %s: %s", SL_GSTATE_TOPIC,
               msg && msg[0] ? msg : sl_strerror(rc));
}

static int count_peers(const char *peers)
{
    int n = peers && peers[0] ? 1 : 0;
    for (const char *p = peers; p && *p; p++)
        n += *p == ',';
    return n;
}

/* Placed like any topic (docs/cluster.md 2.5), so coordinators spread
 * over the nodes; waits until enough nodes are up for the full RF. */
static void create_topic(sl_gstate *gs)
{
    /* small segments: compaction rewrites closed ones only, and a new
     * coordinator reads the active one whole (Kafka's
     * __consumer_offsets uses 100 MiB) */
    static const char *const keys[] = {"cleanup-policy", "flush",
                                       "segment-bytes"};
    static const char *const vals[] = {"compact", "always", "16m"};
    const sl_meta *m = sl_bcluster_image(gs->b);
    const sl_config *cfg = sl_broker_config(gs->b);
    int32_t rf = (int32_t)cfg->cluster_replication_factor, live = 0;
    int32_t np = SL_GSTATE_PARTITIONS, *rep;
    char msg[256];
    sl_wb wb;
    if (gs->creating || !m)
        return;
    for (size_t i = 0; i < m->nnodes; i++)
        live += !m->nodes[i].fenced;
    if (rf > count_peers(cfg->cluster_peers))
        rf = count_peers(cfg->cluster_peers);
    if (rf < 1)
        rf = 1;
    if (live < rf)
        return; /* asked again by the next request */
    rep = calloc((size_t)np * (size_t)rf, sizeof(*rep));
    if (!rep)
        return;
    if (sl_meta_place(m, SL_GSTATE_TOPIC, np, rf, rep, msg, sizeof(msg)) !=
        SL_OK) {
        free(rep);
        return;
    }
    sl_wb_init(&wb, 512);
    sl_meta_enc_create_topic(&wb, SL_GSTATE_TOPIC, np, rf, keys, vals, 3, rep);
    free(rep);
    if (!wb.err &&
        sl_bcluster_propose(gs->b, wb.p, wb.len, create_done, gs) == SL_OK) {
        gs->creating = 1;
        sl_log(SL_INFO, "groups", "creating %s (%d partitions, RF %d)",
               SL_GSTATE_TOPIC, (int)np, (int)rf);
    }
    sl_wb_fini(&wb);
}

struct sl_groute *sl_gstate_route(sl_gstate *gs)
{
    return gs ? gs->route : NULL;
}

int sl_gstate_coordinates(sl_gstate *gs, const char *group)
{
    int32_t p;
    if (!gs || local_group(group, strlen(group)))
        return 1;
    if (gs->nparts <= 0) {
        if (!state_topic(gs->b))
            create_topic(gs);
        return 0;
    }
    p = sl_gstate_partition(group, gs->nparts);
    return gs->ready[p] && lease_ok(gs);
}

int sl_gstate_lease_lapsed(sl_gstate *gs)
{
    return gs && !lease_ok(gs);
}

/* Has the lease been out for a session timeout (or was it never held)?
 * Then the controller may have fenced this node and another one may
 * coordinate its groups: waiting settlements are failed. */
static int lapse_long(sl_gstate *gs)
{
    sl_cluster_node *n = sl_bcluster_node(gs->b);
    return n &&
           sl_cluster_lease_lapsed_ms(n) >=
               (int64_t)sl_broker_config(gs->b)->cluster_session_timeout_ms;
}

int sl_gstate_settles(sl_gstate *gs, const char *group)
{
    int32_t p;
    if (sl_gstate_coordinates(gs, group))
        return 1;
    if (gs->nparts <= 0)
        return 0;
    p = sl_gstate_partition(group, gs->nparts);
    return gs->ready[p] && !lapse_long(gs);
}

/* ---- appending state records ------------------------------------------ */

static void finish_ready(sl_gstate *gs)
{
    while (gs->head && gs->head->pending == 0) {
        rstage *s = gs->head;
        gs->head = s->next;
        if (!gs->head)
            gs->tail = NULL;
        sl_groups_replicated(gs->g, s->seq, s->rc);
        free(s);
    }
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    finish_ready(arg);
}

static void durable_cb(void *arg, sl_err err)
{
    rstage *s = arg;
    if (!s->gs) { /* sl_gstate_free left it to this wait */
        if (--s->pending == 0)
            free(s);
        return;
    }
    if (err != SL_OK && s->rc == SL_OK)
        s->rc = err;
    s->pending--;
    finish_ready(s->gs);
}

/* The record key of an op: what it describes (compaction keeps the
 * newest per key). */
static void op_key(const sl_gop *op, sl_wb *k)
{
    k->len = 0;
    sl_wb_u8(k, (uint8_t)op->kind);
    sl_wb_str16(k, op->group, op->group_len);
    sl_wb_str16(k, op->topic, op->topic_len);
    sl_wb_u32(k, (uint32_t)op->partition);
}

/* Append the records collected for partition p and wait for them. */
static void append_part(sl_gstate *gs, rstage *s, int32_t p,
                        sl_batch_builder *bb)
{
    const uint8_t *bp;
    size_t blen;
    uint8_t *copy;
    int64_t next = 0;
    sl_ops_wait *w = NULL;
    sl_err rc = sl_bb_finish(bb, &bp, &blen);
    if (rc == SL_OK && !(copy = malloc(blen)))
        rc = SL_ERR_NOMEM;
    if (rc == SL_OK) {
        memcpy(copy, bp, blen);
        rc = sl_ops_append(gs->b, SL_GSTATE_TOPIC, p, SL_OPS_NO_CREATE, copy,
                           blen, NULL, &next);
        free(copy);
    }
    if (rc == SL_OK)
        rc = sl_ops_wait_durable(gs->b, SL_GSTATE_TOPIC, p, next, durable_cb, s,
                                 &w);
    if (rc != SL_OK) {
        sl_log(SL_WARN, "groups", "%s/%d: state record not stored: %s",
               SL_GSTATE_TOPIC, (int)p, sl_strerror(rc));
        if (s->rc == SL_OK)
            s->rc = rc;
    } else if (w) {
        s->pending++;
    }
}

static void stage_ops(sl_gstate *gs, rstage *s, const uint8_t *ops, size_t len);

/* Append the held stages, oldest first (the lease is back). */
static void release_held(sl_gstate *gs)
{
    for (rstage *s = gs->head; s && gs->nheld > 0; s = s->next) {
        uint8_t *ops = s->held;
        if (!ops)
            continue;
        s->held = NULL;
        gs->nheld--;
        stage_ops(gs, s, ops, s->held_len);
        free(ops);
        s->pending--;
    }
    event_active(gs->done_ev, 0, 0);
}

void sl_gstate_replicate(sl_gstate *gs, const uint8_t *ops, size_t len,
                         uint64_t seq)
{
    rstage *s = calloc(1, sizeof(*s));

    if (!s) { /* cannot track it: fail it through a later stage */
        sl_log(SL_ERROR, "groups", "out of memory replicating group state");
        return;
    }
    s->seq = seq;
    s->gs = gs;
    if (gs->tail)
        gs->tail->next = s;
    else
        gs->head = s;
    gs->tail = s;
    event_active(gs->done_ev, 0, 0);
    if (!lease_ok(gs)) {
        /* held until the lease is back, behind any earlier held stage */
        s->held = malloc(len ? len : 1);
        if (!s->held) {
            s->rc = SL_ERR_NOMEM;
            return;
        }
        memcpy(s->held, ops, len);
        s->held_len = len;
        s->pending++;
        gs->nheld++;
        return;
    }
    if (gs->nheld > 0)
        release_held(gs); /* they go first: a window's newest record wins */
    stage_ops(gs, s, ops, len);
}

/* The records of one staged buffer, appended to the partitions they
 * belong to (led here) and waited for. */
static void stage_ops(sl_gstate *gs, rstage *s, const uint8_t *ops, size_t len)
{
    sl_batch_builder *bbs = NULL;
    int64_t now = sl_now_ms();
    size_t off = 0;
    sl_gop op;
    sl_wb key;
    int r;

    if (gs->nparts > 0)
        bbs = calloc((size_t)gs->nparts, sizeof(*bbs));
    if (gs->nparts > 0 && !bbs) {
        s->rc = SL_ERR_NOMEM;
        return;
    }
    sl_wb_init(&key, 64);
    while ((r = sl_groups_ops_next(ops, len, &off, &op)) == 1) {
        int32_t p;
        if (op.kind == 't') {
            /* a topic delete: every node applies it itself; each leader
             * marks it in its state partitions, so that a rebuild drops
             * the state of the deleted topic (see read_state) */
            op_key(&op, &key);
            for (p = 0; p < gs->nparts && !key.err; p++) {
                if (!gs->ready[p])
                    continue;
                if (!bbs[p].buf.p)
                    sl_bb_init(&bbs[p], SL_CODEC_NONE);
                if (sl_bb_add(&bbs[p], now, key.p, key.len, op.p, op.len, NULL,
                              0) != SL_OK)
                    s->rc = SL_ERR_NOMEM;
            }
            continue;
        }
        if (local_group(op.group, op.group_len))
            continue;
        if (gs->nparts <= 0) {
            s->rc = SL_ERR_NOT_COORDINATOR;
            break;
        }
        {
            char gname[256];
            snprintf(gname, sizeof(gname), "%.*s", (int)op.group_len,
                     op.group ? op.group : "");
            p = sl_gstate_partition(gname, gs->nparts);
        }
        if (!gs->ready[p]) { /* led elsewhere now: not ours to write */
            s->rc = SL_ERR_NOT_COORDINATOR;
            continue;
        }
        if (!bbs[p].buf.p)
            sl_bb_init(&bbs[p], SL_CODEC_NONE);
        op_key(&op, &key);
        if (key.err || sl_bb_add(&bbs[p], now, key.p, key.len, op.p, op.len,
                                 NULL, 0) != SL_OK)
            s->rc = SL_ERR_NOMEM;
    }
    if (r < 0) {
        sl_log(SL_ERROR, "groups", "internal: bad staged ops at %zu/%zu", off,
               len);
        s->rc = SL_ERR_UNKNOWN;
    }
    for (int32_t p = 0; p < gs->nparts; p++) {
        if (!bbs[p].buf.p)
            continue;
        if (s->rc == SL_OK && bbs[p].count > 0)
            append_part(gs, s, p, &bbs[p]);
        sl_bb_fini(&bbs[p]);
    }
    sl_wb_fini(&key);
    free(bbs);
}

/* ---- coordinator changes ------------------------------------------------ */

typedef struct mine_arg {
    int32_t p, nparts;
} mine_arg;

static int mine_part(void *arg, const char *group)
{
    const mine_arg *a = arg;
    return !local_group(group, strlen(group)) &&
           sl_gstate_partition(group, a->nparts) == a->p;
}

static int mine_all(void *arg, const char *group)
{
    (void)arg;
    return !local_group(group, strlen(group));
}

/* One op read back from the state log (read_state). */
typedef struct rop_ref {
    size_t off, len; /* in the buffer being built */
    int dead;        /* its topic was deleted after it */
} rop_ref;

/* A topic-delete record: every op before it of that topic (an earlier
 * topic of the same name) is dropped. */
static void drop_topic(const sl_wb *buf, rop_ref *v, size_t n,
                       const sl_gop *del)
{
    for (size_t i = 0; i < n; i++) {
        size_t off = 0;
        sl_gop op;
        if (!v[i].dead &&
            sl_groups_ops_next(buf->p + v[i].off, v[i].len, &off, &op) == 1 &&
            op.topic_len == del->topic_len &&
            !memcmp(op.topic, del->topic, op.topic_len))
            v[i].dead = 1;
    }
}

/* The queue and stream ops of partition p's whole local log, oldest
 * first, without those a later topic-delete record covers. */
static sl_err read_state(sl_gstate *gs, int32_t p, sl_wb *out)
{
    sl_part *part;
    sl_part_iter *it = NULL;
    sl_record rec;
    sl_err rc = sl_ops_part(gs->b, SL_GSTATE_TOPIC, p, SL_OPS_NO_CREATE, &part);
    int64_t cap;
    size_t n = 0, cap_v = 0, live = 0;
    rop_ref *v = NULL;
    sl_wb all;
    if (rc != SL_OK)
        return rc;
    sl_wb_init(&all, 4096);
    cap = sl_part_read_cap(part);
    sl_part_set_read_cap(part, INT64_MAX); /* the whole log, see above */
    rc = sl_part_iter_new(part, sl_part_start_offset(part), &it);
    while (rc == SL_OK && sl_part_iter_next(it, &rec, &rc)) {
        size_t off = 0;
        sl_gop op;
        if (!rec.value || rec.value_len <= 0)
            continue;
        if (sl_groups_ops_next(rec.value, (size_t)rec.value_len, &off, &op) !=
                1 ||
            off != (size_t)rec.value_len)
            continue;
        if (op.kind == 't') {
            drop_topic(&all, v, n, &op);
            continue;
        }
        if (n == cap_v) {
            rop_ref *nv =
                realloc(v, (cap_v = cap_v ? cap_v * 2 : 256) * sizeof(*v));
            if (!nv) {
                rc = SL_ERR_NOMEM;
                break;
            }
            v = nv;
        }
        v[n].off = all.len;
        v[n].len = (size_t)rec.value_len;
        v[n].dead = 0;
        n++;
        sl_wb_put(&all, rec.value, (size_t)rec.value_len);
    }
    sl_part_iter_free(it);
    sl_part_set_read_cap(part, cap);
    for (size_t i = 0; rc == SL_OK && i < n; i++)
        if (!v[i].dead) {
            sl_wb_put(out, all.p + v[i].off, v[i].len);
            live++;
        }
    if (all.err || out->err)
        rc = SL_ERR_NOMEM;
    free(v);
    sl_wb_fini(&all);
    sl_log(SL_DEBUG, "groups", "%s/%d: %zu state records read, %zu kept",
           SL_GSTATE_TOPIC, (int)p, n, live);
    return rc;
}

static void become_coordinator(sl_gstate *gs, int32_t p)
{
    mine_arg a = {p, gs->nparts};
    int64_t t0 = sl_now_ms();
    sl_wb ops;
    sl_err rc;
    sl_wb_init(&ops, 4096);
    rc = read_state(gs, p, &ops);
    if (rc == SL_OK)
        rc = sl_groups_reload(gs->g, mine_part, &a, ops.p, ops.len);
    sl_wb_fini(&ops);
    if (rc != SL_OK) {
        sl_log(SL_ERROR, "groups",
               "%s/%d: cannot rebuild the group state it holds: %s (its "
               "groups are not served here; retried at the next change)",
               SL_GSTATE_TOPIC, (int)p, sl_strerror(rc));
        return;
    }
    gs->ready[p] = 1;
    sl_log(SL_INFO, "groups",
           "coordinator of the groups of %s/%d (state rebuilt in %lld ms)",
           SL_GSTATE_TOPIC, (int)p, (long long)(sl_now_ms() - t0));
}

void sl_gstate_on_image(sl_broker *b)
{
    sl_gstate *gs = sl_ops_gstate(b);
    const sl_mi_topic *t;
    if (!gs)
        return;
    /* the observer's start=latest lookups go through group_route.c
     * (observer.c cannot include it: an include cycle) */
    sl_observer_set_call(b->observer, sl_groute_call);
    t = state_topic(b);
    if (!t) {
        if (gs->nparts > 0) { /* deleted: nothing is coordinated here */
            sl_groups_unload(gs->g, mine_all, NULL);
            free(gs->ready);
            gs->ready = NULL;
            gs->nparts = 0;
        }
        return;
    }
    if (gs->nparts != t->nparts) {
        uint8_t *r = calloc((size_t)t->nparts, 1);
        if (!r)
            return;
        sl_groups_unload(gs->g, mine_all, NULL);
        free(gs->ready);
        gs->ready = r;
        gs->nparts = t->nparts;
    }
    for (int32_t p = 0; p < t->nparts; p++) {
        int lead = t->parts[p].leader == gs->self;
        if (lead && !gs->ready[p]) {
            int32_t np;
            if (sl_ops_topic_get(b, SL_GSTATE_TOPIC, SL_OPS_NO_CREATE, &np) !=
                SL_OK)
                return; /* not created here yet: the next change */
            become_coordinator(gs, p);
        } else if (!lead && gs->ready[p]) {
            mine_arg a = {p, gs->nparts};
            gs->ready[p] = 0;
            sl_groups_unload(gs->g, mine_part, &a);
            sl_log(SL_INFO, "groups",
                   "no longer coordinator of the groups of %s/%d (leader "
                   "now %d)",
                   SL_GSTATE_TOPIC, (int)p, (int)t->parts[p].leader);
        }
    }
}

static int coordinates_any(const sl_gstate *gs)
{
    for (int32_t p = 0; p < gs->nparts; p++)
        if (gs->ready[p])
            return 1;
    return 0;
}

/* Every heartbeat: follow the lease. Lapsed for a session timeout:
 * settlements waiting for a commit fail with NOT_COORDINATOR (so clients
 * look the coordinator up again), now and every heartbeat it stays
 * lapsed; shorter: they wait; back: the held stages are appended and
 * delivery resumes. */
static void lease_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_gstate *gs = arg;
    sl_cluster_node *n = sl_bcluster_node(gs->b);
    int ok = lease_ok(gs), any = coordinates_any(gs);
    (void)fd;
    (void)what;
    if (!ok) {
        if (gs->leased && any)
            sl_log(
                SL_WARN, "groups",
                "coordinator lease lapsed (node %d has not heard from "
                "the metadata quorum within %lld ms): its groups are "
                "not served (nothing delivered; settlements wait, and "
                "are answered NOT_COORDINATOR after %lld ms) until it "
                "hears again or another node coordinates them",
                (int)gs->self, (long long)(n ? sl_cluster_lease_ms(n) : 0),
                (long long)sl_broker_config(gs->b)->cluster_session_timeout_ms);
        gs->leased = 0;
        if ((any || gs->nheld > 0) && lapse_long(gs))
            sl_groups_fail_waiters(gs->g, SL_ERR_NOT_COORDINATOR);
        return;
    }
    if (!gs->leased && any)
        sl_log(SL_INFO, "groups",
               "coordinator lease held (node %d hears from the metadata "
               "quorum): serving its groups",
               (int)gs->self);
    /* also after a lapse shorter than a heartbeat, which only the
     * requests it refused saw */
    if (!gs->leased || gs->lapse_seen) {
        gs->leased = 1;
        gs->lapse_seen = 0;
        if (gs->nheld > 0)
            release_held(gs);
        sl_groups_on_durable(gs->g); /* deliver what waited */
    }
}

sl_err sl_gstate_new(sl_broker *b, sl_groups *g, sl_gstate **out)
{
    sl_gstate *gs;
    *out = NULL;
    if (sl_broker_config(b)->node_id == 0)
        return SL_OK;
    gs = calloc(1, sizeof(*gs));
    if (!gs)
        return SL_ERR_NOMEM;
    gs->b = b;
    gs->g = g;
    gs->self = (int32_t)sl_broker_config(b)->node_id;
    gs->done_ev = event_new(sl_broker_base(b), -1, 0, done_cb, gs);
    if (!gs->done_ev) {
        free(gs);
        return SL_ERR_NOMEM;
    }
    if (sl_groute_new(b, &gs->route) != SL_OK) {
        event_free(gs->done_ev);
        free(gs);
        return SL_ERR_NOMEM;
    }
    gs->lease_ev = event_new(sl_broker_base(b), -1, EV_PERSIST, lease_cb, gs);
    if (gs->lease_ev) {
        int64_t hb = (int64_t)sl_broker_config(b)->cluster_heartbeat_ms;
        struct timeval tv = {(time_t)(hb / 1000),
                             (suseconds_t)(hb % 1000) * 1000};
        event_add(gs->lease_ev, &tv);
    }
    *out = gs; /* before the unload: its stage is replicated through it */
    sl_groups_unload(g, mine_all, NULL);
    return SL_OK;
}

void sl_gstate_free(sl_gstate *gs)
{
    if (!gs)
        return;
    /* stages still waiting: their durable waits are failed by the broker's
     * shutdown; the groups are gone, so nobody is told */
    while (gs->head) {
        rstage *s = gs->head;
        gs->head = s->next;
        s->gs = NULL;
        if (s->held) { /* never appended: nobody waits for it */
            free(s->held);
            s->held = NULL;
            s->pending--;
        }
        if (s->pending == 0)
            free(s);
    }
    if (gs->lease_ev)
        event_free(gs->lease_ev);
    sl_groute_free(gs->route);
    if (gs->done_ev)
        event_free(gs->done_ev);
    free(gs->ready);
    free(gs);
}
