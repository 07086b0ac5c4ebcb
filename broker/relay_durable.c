/*
 * relay_durable.c - cluster: removing a relayed durable subscription.
 *
 * Durable topic subscriptions are queue groups named after the
 * subscription: relayed the same way (the session's CONNECT carries the
 * client's client-id, the SUBSCRIBE its durable headers), and an
 * UNSUBSCRIBE that removes one is sent up before the session closes
 * (stomp_relay_drop; ActiveMQ's removal of an inactive one goes to every
 * node). A SUBSCRIBE's receipt waits until the relay is subscribed.
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

/* ---- sessions that only deliver a last frame ------------------------- */

/* bev (ours, connected or connecting) carries a last frame: free it once
 * that is written (the node reads it before the EOF), or on an error or
 * after RELAY_CONNECT_MS. */
static void linger_done(struct bufferevent *bev, void *arg)
{
    (void)arg;
    bufferevent_free(bev);
}

static void linger_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & BEV_EVENT_CONNECTED)
        return; /* the write callback follows */
    linger_done(bev, arg);
}

static void linger_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    evbuffer_drain(bufferevent_get_input(bev),
                   evbuffer_get_length(bufferevent_get_input(bev)));
}

static void linger(struct bufferevent *bev, const sl_wb *last)
{
    struct timeval tv = {RELAY_CONNECT_MS / 1000, 0};
    bufferevent_setcb(bev, linger_read, linger_done, linger_event, NULL);
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    bufferevent_set_timeouts(bev, &tv, &tv);
    bufferevent_write(bev, last->p, last->len);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

void stomp_relay_drop(stomp_sub *s, const char *amq_sub)
{
    stomp_relay *rl = s->relay;
    sl_stomp_enc e;
    if (!rl || !rl->bev || rl->state == RL_CONNECTING) {
        sl_log(SL_WARN, RELAY_SUBSYS,
               "durable subscription %s (group %s): no session to its "
               "coordinator now; it stays there (UNSUBSCRIBE it again)",
               s->id, s->group);
        return;
    }
    rl_acks_flush(rl); /* the ACKs before it first */
    sl_wb_reset(&rl->wb);
    sl_stomp_enc_begin(&e, &rl->wb, SL_STOMP_V12, SL_STOMP_UNSUBSCRIBE);
    sl_stomp_enc_header_s(&e, "id", s->id);
    if (amq_sub)
        sl_stomp_enc_header_s(&e, "activemq.subscriptionName", amq_sub);
    else
        sl_stomp_enc_header_s(&e, "durable", "true");
    sl_stomp_enc_end(&e, NULL, 0);
    linger(rl->bev, &rl->wb);
    rl->bev = NULL; /* the linger frees it */
}

void stomp_relay_unsubscribe_all(stomp_conn *c, const char *amq_sub)
{
    stomp_srv *srv = c->s;
    const sl_meta *m = srv->relay_tick ? sl_bcluster_image(srv->b) : NULL;
    sl_stomp_enc e;
    sl_wb wb;
    size_t i;
    if (!m || c->relay_from)
        return;
    sl_wb_init(&wb, 256);
    sl_stomp_enc_begin(&e, &wb, SL_STOMP_V12, SL_STOMP_CONNECT);
    sl_stomp_enc_header_s(&e, "accept-version", "1.2");
    if (c->vhost[0])
        sl_stomp_enc_header_s(&e, "host", c->vhost);
    if (c->login[0])
        sl_stomp_enc_header_s(&e, "login", c->login);
    sl_stomp_enc_header_u(&e, "sluice-relay", srv->b->cfg.node_id);
    if (sl_peer_auth_enabled(srv->b)) {
        char lm[256];
        uint8_t expect[32];
        if (sl_peer_login_message(srv->b, lm, sizeof(lm), expect) == SL_OK)
            sl_stomp_enc_header_s(&e, "sluice-relay-login", lm);
    }
    sl_stomp_enc_header_s(&e, "client-id", c->client_id);
    sl_stomp_enc_end(&e, NULL, 0);
    sl_stomp_enc_begin(&e, &wb, SL_STOMP_V12, SL_STOMP_UNSUBSCRIBE);
    sl_stomp_enc_header_s(&e, "activemq.subscriptionName", amq_sub);
    sl_stomp_enc_end(&e, NULL, 0);
    for (i = 0; i < m->nnodes; i++) {
        const sl_mi_node *n = &m->nodes[i];
        struct sockaddr_storage ss;
        int slen = sizeof(ss);
        struct bufferevent *bev;
        if (n->id == (int32_t)srv->b->cfg.node_id || n->fenced ||
            !n->stomp_addr || !n->stomp_addr[0] ||
            evutil_parse_sockaddr_port(n->stomp_addr, (struct sockaddr *)&ss,
                                       &slen) != 0)
            continue;
        bev = sl_peer_bev_new(srv->b, n->stomp_addr); /* cluster-tls */
        if (!bev)
            continue;
        linger(bev, &wb);
        if (bufferevent_socket_connect(bev, (struct sockaddr *)&ss, slen) != 0)
            bufferevent_free(bev);
    }
    sl_wb_fini(&wb);
}
