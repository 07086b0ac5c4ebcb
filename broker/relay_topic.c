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
 * Wildcard subscriptions (`/topic/a.*`, `a.#`, `a.>`) do the same for
 * each topic they match: one session per partition held elsewhere, to
 * its leader, subscribed to the topic's own destination (what the
 * client's MESSAGEs name). The tick also gives them the matching topics
 * the image gains (a node never sees an append of a topic held
 * elsewhere): read from their start, here and, on the relay's first
 * session, at the leader (`sluice-from-start`), as on a single node.
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

static stomp_relay *topic_relay_find(stomp_sub *s, const treader *r, int32_t p)
{
    stomp_relay *rl;
    for (rl = s->relay; rl; rl = rl->next)
        if (rl->r == r && rl->part == p)
            return rl;
    return NULL;
}

static void topic_relay_drop(stomp_sub *s, stomp_relay *rl)
{
    stomp_relay **pp = &s->relay;
    while (*pp != rl)
        pp = &(*pp)->next;
    *pp = rl->next;
    rl_free_one(rl);
}

/* A wildcard subscription s: readers for the matching topics of the image
 * it has none for yet. Topics created after the subscription (from their
 * start, as stomp_on_append does for one whose first append is here); a
 * node learns of a topic from its image, and one whose partitions are all
 * elsewhere never has an append here. */
static void wild_follow(stomp_sub *s, const sl_meta *m)
{
    size_t i;
    for (i = 0; i < m->ntopics; i++) {
        const char *name = m->topics[i]->name;
        treader *r;
        if (!stomp_wild_match(s->pattern, name) ||
            stomp_tmp_foreign(s->c->session, name) ||
            !stomp_vhost_sees(s->c, name))
            continue;
        for (r = s->readers; r && strcmp(r->topic, name) != 0; r = r->sub_next)
            ;
        if (!r && stomp_reader_new(s, name, 1) == SL_OK)
            stomp_sub_pump(s); /* what is here already */
    }
}

/* Relays for the partitions of s's topics (its topic, or every topic its
 * wildcard matches) this node holds no replica of (open or follow them);
 * w (may be NULL) is held until each is subscribed. */
void rl_topic_follow(stomp_sub *s, sl_wait *w, int64_t now)
{
    stomp_srv *srv = s->c->s;
    const sl_meta *m = sl_bcluster_image(srv->b);
    stomp_relay *rl, *rn;
    treader *r;
    int32_t p;
    (void)now;
    if (!m)
        return;
    if (s->pattern)
        wild_follow(s, m);
    /* a deleted topic's reader reads nothing more (nparts 0): nor do its
     * relays */
    for (rl = s->relay; rl; rl = rn) {
        rn = rl->next;
        if (rl->r && rl->part >= rl->r->nparts)
            topic_relay_drop(s, rl);
    }
    for (r = s->readers; r; r = r->sub_next) {
        const sl_mi_topic *t = sl_meta_topic_find(m, r->topic);
        for (p = 0; t && p < t->nparts && p < r->nparts; p++) {
            int32_t want = topic_source(srv, t, p);
            rl = topic_relay_find(s, r, p);
            if (want == 0) {
                if (rl) { /* a replica here now: read here, from its end */
                    int64_t end = 0;
                    topic_relay_drop(s, rl);
                    if (sl_ops_list_offset(srv->b, r->topic, p,
                                           SL_OFFSET_LATEST, &end) == SL_OK &&
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
        }
    }
}

void stomp_relay_topic_open(stomp_sub *s, sl_wait *w)
{
    rl_topic_follow(s, w, sl_now_ms());
}
