/*
 * cluster_ops.c - operating a cluster (docs/cluster.md section 10).
 *
 * Controlled shutdown (Kafka's controlled.shutdown): on SIGTERM a cluster
 * node does not just vanish and let the controller notice after
 * cluster-session-timeout-ms. Its stop hook proposes FENCE_NODE for
 * itself with the "controlled shutdown" mark (SL_MI_STOPPED,
 * cluster/meta.h): applying it moves the leadership of every partition it
 * leads to the next in-sync replica (a new leader epoch) and takes it out
 * of every ISR, on every node at once, while it still serves. It holds
 * the loop open (sl_broker_hold) until its own image shows the fence, or
 * controlled-shutdown-timeout-ms passes, then stops as before. Producers
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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "broker/broker.h"
#include "broker/cluster.h"
#include "cluster/meta.h"
#include "cluster/node.h"
#include "protocol/log.h"

struct sl_bops {
    sl_broker *b;
    int32_t self;
    /* controlled shutdown */
    int holding;            /* took a hold: release once */
    struct event *sd_timer; /* controlled-shutdown-timeout-ms */
    int64_t sd_started;
};

/* ---- controlled shutdown ------------------------------------------------ */

static void sd_release(sl_bops *o, const char *how)
{
    if (!o->holding)
        return;
    o->holding = 0;
    if (o->sd_timer)
        event_del(o->sd_timer);
    sl_log(SL_INFO, "cluster", "controlled shutdown of node %d: %s (%lld ms)",
           (int)o->self, how, (long long)(sl_now_ms() - o->sd_started));
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

/* The stop hook (sl_broker_on_stop): SIGTERM or SIGINT arrived. */
static void sd_begin(void *arg)
{
    sl_bops *o = arg;
    sl_broker *b = o->b;
    const sl_meta *m = sl_bcluster_image(b);
    const sl_mi_node *me;
    int others = 0, leads = 0;
    struct timeval tv;
    sl_wb wb;
    sl_err rc;

    if (!m || b->cfg.controlled_shutdown_timeout_ms == 0)
        return;
    me = sl_meta_node_find(m, o->self);
    if (!me || me->fenced)
        return; /* fenced already: it leads nothing, is in no ISR */
    for (size_t i = 0; i < m->nnodes; i++)
        others += m->nodes[i].id != o->self && !m->nodes[i].fenced;
    for (size_t t = 0; t < m->ntopics; t++)
        for (int32_t p = 0; p < m->topics[t]->nparts; p++)
            leads += m->topics[t]->parts[p].leader == o->self;
    if (others == 0) {
        sl_log(SL_INFO, "cluster",
               "controlled shutdown: no other node is "
               "up; stopping without moving leadership");
        return;
    }
    sl_cluster_node_set_leaving(sl_bcluster_node(b));
    sl_wb_init(&wb, 16);
    sl_meta_enc_fence(&wb, o->self, SL_MI_STOPPED);
    o->holding = 1;
    o->sd_started = sl_now_ms();
    sl_broker_hold(b);
    sl_log(SL_INFO, "cluster",
           "controlled shutdown of node %d: moving the "
           "leadership of %d partition(s) off it",
           (int)o->self, leads);
    rc = wb.err ? SL_ERR_NOMEM
                : sl_bcluster_propose(b, wb.p, wb.len, sd_done, o);
    sl_wb_fini(&wb);
    if (rc != SL_OK) {
        sd_done(o, rc, "no metadata leader to ask");
        return;
    }
    o->sd_timer = evtimer_new(b->base, sd_timeout, o);
    tv.tv_sec = (time_t)(b->cfg.controlled_shutdown_timeout_ms / 1000);
    tv.tv_usec =
        (suseconds_t)(b->cfg.controlled_shutdown_timeout_ms % 1000) * 1000;
    if (o->sd_timer)
        evtimer_add(o->sd_timer, &tv);
}

int sl_bops_forwardable(const void *cmd, size_t len)
{
    const uint8_t *p = cmd;
    switch (sl_meta_cmd_type(cmd, len)) {
    case SL_MCMD_FENCE_NODE: /* only with the controlled-shutdown mark */
        return len == 7 && p[6] == 1;
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
    if (o->holding && sd_applied(o))
        sd_release(o, "leadership moved off this node");
}

void sl_bops_free(sl_bops *o)
{
    if (!o)
        return;
    if (o->sd_timer)
        event_free(o->sd_timer);
    free(o);
}
