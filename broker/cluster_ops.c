/*
 * cluster_ops.c - operating a cluster (docs/cluster.md section 10).
 *
 * Controlled shutdown (Kafka's controlled.shutdown): on SIGTERM a cluster
 * node does not just vanish and let the controller notice after
 * cluster-session-timeout-ms. It first drains the queue groups it
 * coordinates (issue 14: consumers see only a pause): the groups hand
 * out nothing more (sl_groups_set_draining), the connections stay open
 * and served (sl_broker_keep_conns; the listeners are closed), and once
 * consumers hold no acquired record (they acked, nacked or released what
 * they had) or half of controlled-shutdown-timeout-ms passed, it waits
 * for the commit of everything settled so far (groups.db and the
 * replicated state log, sl_groups_wait), whose answers go out in order
 * before that wait completes. Without the drain, acks in flight at the
 * fence were refused (the group had moved before their state records
 * were replicated) or lost with the connection, and their records came
 * again. Then its stop hook proposes FENCE_NODE for
 * itself with the "controlled shutdown" mark (SL_MI_STOPPED,
 * cluster/meta.h): applying it moves the leadership of every partition it
 * leads to the next in-sync replica (a new leader epoch) and takes it out
 * of every ISR, on every node at once, while it still serves. It holds
 * the loop open (sl_broker_hold) until its own image shows the fence, or
 * controlled-shutdown-timeout-ms passes (counted from the SIGTERM), then
 * closes the connections (requests for the moved groups were answered
 * NOT_COORDINATOR meanwhile, and libsluice followed) and stops as
 * before. Producers
 * waiting on it get NOT_LEADER and resend to the new leader (idempotence
 * keeps the resend single); durable acks never wait for a node that is
 * about to go, since it left the ISRs first. The controller does not
 * unfence a stopped node while it is still heard from; the node's
 * REGISTER_NODE when it starts again makes it an ordinary fenced node,
 * unfenced once alive, and its replicas rejoin the ISRs when caught up.
 * If this node is the metadata leader, cluster/node.c hands the Raft
 * leadership over before closing (raft_transfer), so no election timeout
 * passes either.
 *
 * Skipped when no other node is up (the last node of a cluster being
 * stopped: there is nobody to move to and no quorum to ask).
 * @thread loop
 */
#include "broker/cluster_ops.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "broker/admin_int.h"
#include "broker/broker.h"
#include "broker/cluster_propose.h"
#include "broker/config.h"
#include "broker/ops_groups.h"
#include "broker/topic.h"
#include "cluster/meta.h"
#include "cluster/node.h"
#include "groups/groups.h"
#include "protocol/log.h"

struct sl_bops {
    sl_broker *b;
    int32_t self;
    /* controlled shutdown */
    int holding;            /* took a hold: release once */
    struct event *sd_timer; /* controlled-shutdown-timeout-ms */
    int64_t sd_started;
    int phase;              /* SD_* */
    int leads;              /* partitions led here at the start */
    struct event *drain_ev; /* sd_drain_late: polls, then bounds the wait */
    int64_t drain_until;    /* sl_now_ms() at which the drain gives up */
    struct sd_drain *drain; /* the commit waited for, or NULL */
};

enum { SD_NONE, SD_DRAINING, SD_FENCING };
#define SD_DRAIN_POLL_MS 5

/* A wait for the groups' commit (sl_groups_wait cannot be cancelled):
 * o is NULL once nobody waits for it any more. */
typedef struct sd_drain {
    sl_bops *o;
} sd_drain;

/* ---- controlled shutdown ------------------------------------------------ */

static void sd_release(sl_bops *o, const char *how)
{
    if (!o->holding)
        return;
    o->holding = 0;
    if (o->sd_timer)
        event_del(o->sd_timer);
    if (o->drain_ev)
        event_del(o->drain_ev);
    if (o->drain) {
        o->drain->o = NULL;
        o->drain = NULL;
    }
    o->phase = SD_NONE;
    sl_log(SL_INFO, "cluster", "controlled shutdown of node %d: %s (%lld ms)",
           (int)o->self, how, (long long)(sl_now_ms() - o->sd_started));
    /* the groups have moved: requests for them are answered
     * NOT_COORDINATOR and clients follow; now the stop closes the
     * connections */
    sl_broker_stop_conns(o->b);
    sl_broker_release(o->b);
}

/* Whether this node's own image shows its controlled-shutdown fence. */
static int sd_applied(const sl_bops *o)
{
    const sl_meta *m = sl_bcluster_image(o->b);
    const sl_mi_node *me = m ? sl_meta_node_find(m, o->self) : NULL;
    return !me || me->fenced == SL_MI_STOPPED;
}

static void sd_done(void *arg, sl_err rc, const char *msg)
{
    sl_bops *o = arg;
    if (rc != SL_OK) {
        char how[320];
        snprintf(how, sizeof(how),
                 "could not move leadership through the quorum (%s); the "
                 "controller fences this node once it is gone",
                 msg && msg[0] ? msg : sl_strerror(rc));
        sd_release(o, how);
    } else if (sd_applied(o)) {
        sd_release(o, "leadership moved off this node");
    } /* else: forwarded and applied on the leader; wait for our image */
}

static void sd_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sd_release(arg, "timed out (controlled-shutdown-timeout-ms); stopping "
                    "anyway");
}

/* Propose this node's controlled-shutdown fence (the drain is over). */
static void sd_fence(sl_bops *o)
{
    sl_broker *b = o->b;
    sl_wb wb;
    sl_err rc;

    o->phase = SD_FENCING;
    sl_cluster_node_set_leaving(sl_bcluster_node(b));
    sl_wb_init(&wb, 16);
    sl_meta_enc_fence(&wb, o->self, SL_MI_STOPPED);
    sl_log(SL_INFO, "cluster",
           "controlled shutdown of node %d: moving the "
           "leadership of %d partition(s) off it",
           (int)o->self, o->leads);
    rc = wb.err ? SL_ERR_NOMEM
                : sl_bcluster_propose(b, wb.p, wb.len, sd_done, o);
    sl_wb_fini(&wb);
    if (rc != SL_OK)
        sd_done(o, rc, "no metadata leader to ask");
}

/* The drain's end: every settlement that arrived is committed (in
 * groups.db and in the replicated state log) and was answered, since
 * waiters are answered in order. */
static void sd_drained(void *arg, sl_err rc)
{
    sd_drain *d = arg;
    sl_bops *o = d->o;
    if (o)
        o->drain = NULL;
    free(d);
    if (!o)
        return; /* the drain gave up waiting, or the module is gone */
    sl_log(SL_INFO, "cluster",
           "controlled shutdown of node %d: drained its queue groups in "
           "%lld ms (%s; %lld record(s) still held by consumers)",
           (int)o->self, (long long)(sl_now_ms() - o->sd_started),
           rc == SL_OK ? "settlements committed and answered" : sl_strerror(rc),
           (long long)sl_groups_in_flight(sl_ops_groups(o->b)));
    sd_fence(o);
}

/* Every few ms while draining: once consumers hold nothing (or half of
 * controlled-shutdown-timeout-ms passed), wait for the commit of what
 * they settled, then fence. */
static void sd_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    sl_bops *o = arg;
    sl_groups *g = sl_ops_groups(o->b);
    sd_drain *d;
    (void)fd;
    (void)what;
    if (o->phase != SD_DRAINING || o->drain)
        return;
    if (g && sl_groups_in_flight(g) > 0 && sl_now_ms() < o->drain_until) {
        struct timeval tv = {0, SD_DRAIN_POLL_MS * 1000};
        evtimer_add(o->drain_ev, &tv);
        return;
    }
    if (!g || !(d = calloc(1, sizeof(*d)))) {
        sd_fence(o);
        return;
    }
    d->o = o;
    o->drain = d;
    sl_groups_wait(g, sd_drained, d); /* may call back at once */
    if (o->drain) {                   /* bounded too: the commit may not come */
        struct timeval tv;
        int64_t left = o->drain_until - sl_now_ms();
        if (left < SD_DRAIN_POLL_MS)
            left = SD_DRAIN_POLL_MS;
        tv.tv_sec = (time_t)(left / 1000);
        tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
        evtimer_add(o->drain_ev, &tv);
    }
}

/* The drain's budget ran out while waiting for the commit: fence anyway
 * (its waiter, when it runs, sees o->drain changed). */
static void sd_drain_late(evutil_socket_t fd, short what, void *arg)
{
    sl_bops *o = arg;
    if (o->phase == SD_DRAINING && o->drain) {
        o->drain->o = NULL; /* freed by sd_drained when it runs */
        o->drain = NULL;
        sl_log(SL_WARN, "cluster",
               "controlled shutdown of node %d: the queue groups' last "
               "settlements were not committed within the drain (half of "
               "controlled-shutdown-timeout-ms); moving them anyway",
               (int)o->self);
        sd_fence(o);
        return;
    }
    sd_drain_tick(fd, what, arg);
}

/* The stop hook (sl_broker_on_stop): SIGTERM or SIGINT arrived. */
static void sd_begin(void *arg)
{
    sl_bops *o = arg;
    sl_broker *b = o->b;
    const sl_meta *m = sl_bcluster_image(b);
    const sl_mi_node *me;
    sl_groups *g = sl_ops_groups(b);
    int others = 0;
    struct timeval tv;

    if (!m || b->cfg.controlled_shutdown_timeout_ms == 0)
        return;
    me = sl_meta_node_find(m, o->self);
    if (!me || me->fenced)
        return; /* fenced already: it leads nothing, is in no ISR */
    for (size_t i = 0; i < m->nnodes; i++)
        others += m->nodes[i].id != o->self && !m->nodes[i].fenced;
    o->leads = 0;
    for (size_t t = 0; t < m->ntopics; t++)
        for (int32_t p = 0; p < m->topics[t]->nparts; p++)
            o->leads += m->topics[t]->parts[p].leader == o->self;
    if (others == 0) {
        sl_log(SL_INFO, "cluster",
               "controlled shutdown: no other node is "
               "up; stopping without moving leadership");
        return;
    }
    o->holding = 1;
    o->sd_started = sl_now_ms();
    sl_broker_hold(b);
    o->sd_timer = evtimer_new(b->base, sd_timeout, o);
    tv.tv_sec = (time_t)(b->cfg.controlled_shutdown_timeout_ms / 1000);
    tv.tv_usec =
        (suseconds_t)(b->cfg.controlled_shutdown_timeout_ms % 1000) * 1000;
    if (o->sd_timer)
        evtimer_add(o->sd_timer, &tv);
    o->drain_ev = g ? evtimer_new(b->base, sd_drain_late, o) : NULL;
    if (!o->drain_ev) {
        sd_fence(o);
        return;
    }
    /* drain first: no new deliveries, connections served until the
     * fence, what consumers hold settles and is committed */
    o->phase = SD_DRAINING;
    o->drain_until =
        o->sd_started + (int64_t)b->cfg.controlled_shutdown_timeout_ms / 2;
    sl_groups_set_draining(g, 1);
    sl_broker_keep_conns(b);
    sl_log(SL_INFO, "cluster",
           "controlled shutdown of node %d: draining its queue groups "
           "first (no new deliveries; %lld record(s) held by consumers)",
           (int)o->self, (long long)sl_groups_in_flight(g));
    sd_drain_tick(-1, 0, o);
}

/* ---- partition reassignment and rebalance (admin verbs) -------------------
 *
 * `partition.reassign` proposes one REASSIGN (cluster/meta.h): the new
 * replicas are added to the partition's replicas at once, copy the log
 * from the leader (broker/replica.c, at most reassign-throttle-bytes per
 * second per node), join the ISR when caught up, and the controller
 * (cluster/node.c) then completes it with REASSIGN_DONE: the replicas
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

static sl_err propose_cmd(sl_broker *b, sl_wb *wb, sl_cluster_done_fn fn,
                          void *arg)
{
    sl_err rc = wb->err ? SL_ERR_NOMEM
                        : sl_bcluster_propose(b, wb->p, wb->len, fn, arg);
    sl_wb_fini(wb);
    return rc;
}

/* The tail of every verb that answers once one command is in the log:
 * propose wb (consumed) for call x with fn(o, ...) to answer it; x is
 * pending then. o was allocated by the caller (NULL: out of memory) and
 * is freed here when nothing was proposed; x->msg then says why. */
static sl_err propose_for_call(sl_admin_call *x, sl_wb *wb,
                               sl_cluster_done_fn fn, void *o)
{
    sl_err rc;
    if (!o) {
        sl_wb_fini(wb);
        return SL_ERR_NOMEM;
    }
    rc = propose_cmd(x->b, wb, fn, o);
    if (rc != SL_OK) {
        free(o);
        snprintf(x->msg, sizeof(x->msg),
                 "cannot reach the metadata leader now: %s; retry",
                 sl_strerror(rc));
        return rc;
    }
    x->pending = 1;
    return SL_OK;
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
        rc = propose_cmd(o->x->b, &wb, remove_done, o);
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
    return propose_for_call(x, wb, fn, o);
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

/* ---- topic changes in a cluster -------------------------------------------
 *
 * `topic alter` and `topic add-partitions` on a cluster node go through
 * the metadata log (ALTER_TOPIC, ADD_PARTITIONS; the new partitions are
 * placed as at creation, section 2.5, with the topic's replication
 * factor), and every node applies them to its own copy when it sees them
 * in its image (sl_bops_sync_topics, from cluster.c's reconcile). A
 * replication factor changes through partition reassign. */

/* Local copy of image topic mt: partitions added and configs changed to
 * match. Logged on failure; tried again at the next image change. */
static void sync_topic(sl_broker *b, const sl_mi_topic *mt, sl_topic *t)
{
    char err[256] = "";
    const char *keys[SL_META_MAX_CONFIGS * 2 + 1],
        *vals[SL_META_MAX_CONFIGS * 2 + 1];
    size_t n = 0;

    if (t->nparts < mt->nparts &&
        sl_topics_add_partitions(b->topics, t, mt->nparts, err, sizeof(err)) !=
            SL_OK)
        sl_log(SL_ERROR, "cluster",
               "topic %s: cannot add the partitions the metadata log has "
               "(%d): %s",
               mt->name, (int)mt->nparts, err);
    for (uint32_t i = 0; i < mt->ncfg; i++) { /* set or changed */
        size_t k;
        for (k = 0; k < t->ncfg && strcmp(t->cfg_keys[k], mt->keys[i]); k++)
            ;
        if (k == t->ncfg || strcmp(t->cfg_values[k], mt->vals[i])) {
            keys[n] = mt->keys[i];
            vals[n++] = mt->vals[i];
        }
    }
    for (size_t k = 0; k < t->ncfg; k++) /* removed */
        if (!sl_meta_topic_config(mt, t->cfg_keys[k])) {
            keys[n] = t->cfg_keys[k];
            vals[n++] = "";
        }
    if (n == 0)
        return;
    if (sl_topics_alter(b->topics, t, keys, vals, n, err, sizeof(err)) != SL_OK)
        sl_log(SL_ERROR, "cluster",
               "topic %s: cannot apply the configs of the metadata log: %s",
               mt->name, err);
    else
        sl_log(SL_INFO, "cluster", "topic %s: %zu config(s) changed", mt->name,
               n);
}

void sl_bops_sync_topics(sl_broker *b)
{
    const sl_meta *m = sl_bcluster_image(b);
    for (size_t i = 0; m && i < m->ntopics; i++) {
        sl_topic *t = sl_topics_find(b->topics, m->topics[i]->name);
        if (t)
            sync_topic(b, m->topics[i], t);
    }
}

typedef struct top {
    sl_admin_call *x;
    char name[256];
} top;

/* The answer (written before the proposal, dropped on error) names what
 * was asked: this node's image may apply it a heartbeat after the
 * metadata leader did. */
static void topic_change_done(void *arg, sl_err rc, const char *msg)
{
    top *o = arg;
    sl_admin_call *x = o->x;
    if (rc != SL_OK)
        snprintf(x->msg, sizeof(x->msg), "%s",
                 msg && msg[0] ? msg : sl_strerror(rc));
    else
        sl_bops_sync_topics(x->b); /* here before the answer */
    adm_finish(x, rc);
    free(o);
}

static void topic_answer(sl_admin_call *x, const char *name, int32_t count,
                         const char *const *keys, const char *const *vals,
                         size_t n)
{
    sl_jw_obj(&x->j);
    sl_jw_kstr(&x->j, "name", name);
    if (count > 0)
        sl_jw_ki64(&x->j, "partition_count", count);
    sl_jw_key(&x->j, "configs");
    sl_jw_obj(&x->j);
    for (size_t i = 0; i < n; i++)
        sl_jw_kstr(&x->j, keys[i], vals[i]);
    sl_jw_end(&x->j);
    sl_jw_end(&x->j);
}

static sl_err top_propose(sl_admin_call *x, const char *name, sl_wb *wb)
{
    top *o = calloc(1, sizeof(*o));
    if (o) {
        o->x = x;
        snprintf(o->name, sizeof(o->name), "%s", name);
    }
    return propose_for_call(x, wb, topic_change_done, o);
}

static const sl_mi_topic *image_topic(sl_admin_call *x, const char *name)
{
    const sl_mi_topic *mt = sl_meta_topic_find(sl_bcluster_image(x->b), name);
    if (!mt)
        snprintf(x->msg, sizeof(x->msg),
                 "unknown topic '%.200s' (not in the cluster's metadata)",
                 name);
    return mt;
}

sl_err sl_bops_topic_alter(sl_admin_call *x, const char *name,
                           const char *const *keys, const char *const *vals,
                           size_t n)
{
    const sl_mi_topic *mt = image_topic(x, name);
    const char *mk[SL_META_MAX_CONFIGS * 2 + 1],
        *mv[SL_META_MAX_CONFIGS * 2 + 1];
    size_t nm = 0;
    sl_part_cfg pc;
    sl_wb wb;
    sl_err rc;

    if (!mt)
        return SL_ERR_UNKNOWN_TOPIC;
    if (n > SL_META_MAX_CONFIGS) {
        snprintf(x->msg, sizeof(x->msg), "more than %d configs",
                 SL_META_MAX_CONFIGS);
        return SL_ERR_INVALID_CONFIG;
    }
    /* the configs as they would be, checked before they reach the log:
     * every node applies them */
    for (uint32_t i = 0; i < mt->ncfg; i++) {
        int changed = 0;
        for (size_t k = 0; k < n; k++)
            changed |= !strcmp(keys[k], mt->keys[i]);
        if (!changed) {
            mk[nm] = mt->keys[i];
            mv[nm++] = mt->vals[i];
        }
    }
    for (size_t k = 0; k < n; k++)
        if (vals[k][0]) {
            mk[nm] = keys[k];
            mv[nm++] = vals[k];
        }
    rc =
        sl_config_part_cfg(&x->b->cfg, mk, mv, nm, &pc, x->msg, sizeof(x->msg));
    if (rc != SL_OK)
        return rc;
    sl_wb_init(&wb, 256);
    sl_meta_enc_alter_topic(&wb, name, keys, vals, (uint32_t)n);
    topic_answer(x, name, 0, keys, vals, n);
    return top_propose(x, name, &wb);
}

sl_err sl_bops_topic_add_partitions(sl_admin_call *x, const char *name,
                                    int32_t count)
{
    const sl_meta *m = sl_bcluster_image(x->b);
    const sl_mi_topic *mt = image_topic(x, name);
    int32_t *rep;
    sl_wb wb;
    sl_err rc = SL_OK;

    if (!mt)
        return SL_ERR_UNKNOWN_TOPIC;
    if (count <= mt->nparts) {
        snprintf(x->msg, sizeof(x->msg),
                 "topic %.200s has %d partition(s) already: --count is the "
                 "new total and must be more",
                 name, (int)mt->nparts);
        return SL_ERR_INVALID_ARG;
    }
    rep =
        calloc((size_t)(count - mt->nparts) * (size_t)mt->rf + 1, sizeof(*rep));
    if (!rep)
        return SL_ERR_NOMEM;
    for (int32_t p = mt->nparts; p < count && rc == SL_OK; p++)
        rc = sl_meta_place_one(m, name, p, mt->rf,
                               rep + (size_t)(p - mt->nparts) * (size_t)mt->rf,
                               x->msg, sizeof(x->msg));
    if (rc == SL_OK) {
        sl_wb_init(&wb, 256);
        sl_meta_enc_add_partitions(&wb, name, count, mt->rf, rep,
                                   count - mt->nparts);
        topic_answer(x, name, count, NULL, NULL, 0);
        rc = top_propose(x, name, &wb);
    }
    free(rep);
    return rc;
}

int sl_bops_forwardable(const void *cmd, size_t len)
{
    const uint8_t *p = cmd;
    switch (sl_meta_cmd_type(cmd, len)) {
    case SL_MCMD_FENCE_NODE: /* only with the controlled-shutdown mark */
        return len == 7 && p[6] == 1;
    case SL_MCMD_REASSIGN:
    case SL_MCMD_UNREGISTER_NODE:
    case SL_MREQ_MEMBER_ADD:
    case SL_MREQ_MEMBER_REMOVE:
    case SL_MCMD_ALTER_TOPIC:
    case SL_MCMD_ADD_PARTITIONS:
        return 1;
    default:
        return 0;
    }
}

/* ---- life cycle ------------------------------------------------------------
 */

sl_err sl_bops_new(sl_broker *b, sl_bops **out)
{
    sl_bops *o = calloc(1, sizeof(*o));
    if (!o)
        return SL_ERR_NOMEM;
    o->b = b;
    o->self = (int32_t)b->cfg.node_id;
    sl_broker_on_stop(b, sd_begin, o);
    *out = o;
    return SL_OK;
}

void sl_bops_changed(sl_bops *o)
{
    if (!o)
        return;
    if (o->holding && o->phase == SD_FENCING && sd_applied(o))
        sd_release(o, "leadership moved off this node");
}

void sl_bops_free(sl_bops *o)
{
    if (!o)
        return;
    if (o->sd_timer)
        event_free(o->sd_timer);
    if (o->drain_ev)
        event_free(o->drain_ev);
    if (o->drain)
        o->drain->o = NULL; /* freed by sd_drained when the groups go */
    free(o);
}
