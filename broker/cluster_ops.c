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
 *
 * Also here: topic alter and add-partitions in a cluster (below). The
 * verbs that move partitions and change the membership (reassign,
 * rebalance, add-node, remove-node) are in cluster_reassign.c, which
 * shares the proposal helpers of cluster_ops_int.h.
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
#include "broker/cluster_ops_int.h"
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

/* ---- shared with cluster_reassign.c (cluster_ops_int.h) ------------------ */

sl_err sl_bops_propose_cmd(sl_broker *b, sl_wb *wb, sl_cluster_done_fn fn,
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
sl_err sl_bops_propose_for_call(sl_admin_call *x, sl_wb *wb,
                                sl_cluster_done_fn fn, void *o)
{
    sl_err rc;
    if (!o) {
        sl_wb_fini(wb);
        return SL_ERR_NOMEM;
    }
    rc = sl_bops_propose_cmd(x->b, wb, fn, o);
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
    int32_t count; /* add-partitions: the total asked for */
} top;

/* An add-partitions refused because the count changed after it was
 * placed (another one, through another node, applied first): the error
 * names the topic's count now, read after a read barrier (this node's
 * copy may not have the other change yet), as Kafka's
 * INVALID_PARTITIONS does. */
static void add_parts_refused(void *arg, sl_err rc, const char *msg)
{
    top *o = arg;
    sl_admin_call *x = o->x;
    const sl_mi_topic *mt =
        sl_meta_topic_find(sl_bcluster_image(x->b), o->name);
    (void)rc;
    (void)msg;
    snprintf(x->msg, sizeof(x->msg),
             "topic %.200s already has %d partition(s) (changed "
             "concurrently); asked for %d",
             o->name, mt ? (int)mt->nparts : 0, (int)o->count);
    adm_finish(x, SL_ERR_INVALID_ARG);
    free(o);
}

/* The answer (written before the proposal, dropped on error) names what
 * was asked: this node's image may apply it a heartbeat after the
 * metadata leader did. */
static void topic_change_done(void *arg, sl_err rc, const char *msg)
{
    top *o = arg;
    sl_admin_call *x = o->x;
    if (rc == SL_ERR_INVALID_ARG && o->count > 0) {
        if (sl_bcluster_read_barrier(x->b, add_parts_refused, o) != SL_OK)
            add_parts_refused(o, rc, msg);
        return;
    }
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

static sl_err top_propose(sl_admin_call *x, const char *name, int32_t count,
                          sl_wb *wb)
{
    top *o = calloc(1, sizeof(*o));
    if (o) {
        o->x = x;
        o->count = count;
        snprintf(o->name, sizeof(o->name), "%s", name);
    }
    return sl_bops_propose_for_call(x, wb, topic_change_done, o);
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
    return top_propose(x, name, 0, &wb);
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
        rc = top_propose(x, name, count, &wb);
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

/* ---- life cycle ---------------------------------------------------------- */

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
