/*
 * relay_topic.c - cluster: plain /topic subscriptions and the partitions
 * of their topic held elsewhere.
 *
 * Plain /topic subscriptions use the same sessions for the partitions
 * of their topic that this node holds no replica of (RF below the cluster
 * size): one session per such partition, to its leader, subscribed to the
 * same destination with `sluice-partition:P` (that node reads only P of
 * its replica, from its log end) and ack auto; the SUBSCRIBE's receipt
 * waits until each is subscribed. A lost one is opened again at the
 * partition's leader then (what was appended in between is not seen:
 * a plain topic subscription is not durable).
 *
 * @thread loop (everything here)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "broker/broker.h"
#include "broker/cluster.h"
#include "broker/group_state.h"
#include "broker/peer_auth.h"
#include "broker/relay_int.h"
#include "broker/stomp_int.h"
#include "cluster/meta.h"

/* The node that brings partition p of t to a node without a replica of
 * it: its leader (-1: none now). 0 when this node holds a replica. */
static int32_t topic_source(stomp_srv *srv, const sl_mi_topic *t, int32_t p)
{
    const sl_mi_part *mp = &t->parts[p];
    const sl_meta *m = sl_bcluster_image(srv->b);
    const sl_mi_node *n;
    int32_t i;
    for (i = 0; i < mp->nrep; i++)
        if (mp->rep[i] == (int32_t)srv->b->cfg.node_id)
            return 0;
    if (mp->leader <= 0 || !(n = sl_meta_node_find(m, mp->leader)) ||
        !n->stomp_addr || !n->stomp_addr[0])
        return -1;
    return mp->leader;
}

static stomp_relay *topic_relay_find(stomp_sub *s, int32_t p)
{
    stomp_relay *rl;
    for (rl = s->relay; rl; rl = rl->next)
        if (rl->part == p)
            return rl;
    return NULL;
}

/* Relays for the partitions of s's topic this node holds no replica of
 * (open or follow them); w (may be NULL) is held until each is
 * subscribed. */
void rl_topic_follow(stomp_sub *s, sl_wait *w, int64_t now)
{
    stomp_srv *srv = s->c->s;
    const sl_meta *m = sl_bcluster_image(srv->b);
    treader *r = s->readers;
    const sl_mi_topic *t;
    int32_t p;
    if (!m || !r || r->sub_next || !(t = sl_meta_topic_find(m, r->topic)))
        return;
    for (p = 0; p < t->nparts && p < r->nparts; p++) {
        int32_t want = topic_source(srv, t, p);
        stomp_relay *rl = topic_relay_find(s, p);
        if (want == 0) {
            if (rl) { /* a replica here now: read here, from its end */
                stomp_relay **pp = &s->relay;
                int64_t end = 0;
                while (*pp != rl)
                    pp = &(*pp)->next;
                *pp = rl->next;
                rl_free_one(rl);
                if (sl_ops_list_offset(srv->b, r->topic, p, SL_OFFSET_LATEST,
                                       &end) == SL_OK &&
                    !r->it[p])
                    r->cursor[p] = end;
            }
            continue;
        }
        if (!rl) {
            if (want > 0 && !rl_new(s, want, p, r, w))
                sl_log(SL_WARN, RELAY_SUBSYS,
                       "subscription %s of session %s: out of memory "
                       "relaying %s/%d",
                       s->id, s->c->session, r->topic, (int)p);
            continue;
        }
        /* an established relay keeps reading its node's replica (it
         * stays one when leadership moves); a lost one goes to the
         * leader */
        if (rl->state == RL_DOWN && want > 0)
            rl->node = want;
        (void)now;
    }
}

void stomp_relay_topic_open(stomp_sub *s, sl_wait *w)
{
    rl_topic_follow(s, w, sl_now_ms());
}
