/*
 * relay_send.c - cluster: SENDs to another node's temp queue.
 *
 * A temp queue ("stomp-tmp-N.S-NAME" in a cluster: node N, session S) is
 * a topic of node N only, never in the metadata: a reply sent to it
 * through another node goes there over a STOMP session of that node's
 * own (one per client connection and node, opened on first use): the
 * SEND as the client wrote it (reply-to already rewritten), and its
 * receipt, if any, waits for node N's. A lost session fails the receipts
 * waiting for it (ERROR: the reply may or may not be stored); the next
 * SEND opens a new one.
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
#include "broker/stomp_read.h"
#include "cluster/meta.h"

typedef struct stomp_sendlink {
    struct stomp_sendlink *next;
    stomp_conn *c;
    int32_t node;
    char addr[128];
    struct bufferevent *bev;
    sl_stomp_parser ps;
    int peer_login;
    uint8_t expect[32];
    uint64_t next_id;
    rl_wait *waits, *waits_tail;
    sl_wb wb;
} stomp_sendlink;

int32_t stomp_relay_temp_owner(stomp_srv *srv, const char *topic)
{
    const sl_meta *m;
    const sl_mi_node *n;
    char *end;
    long v;
    if (!srv->relay_tick || strncmp(topic, "stomp-tmp-", 10) != 0)
        return 0;
    v = strtol(topic + 10, &end, 10);
    if (end == topic + 10 || *end != '.' || v <= 0 || v > INT32_MAX ||
        v == (long)srv->b->cfg.node_id)
        return 0; /* ours, or not a cluster temp queue name */
    m = sl_bcluster_image(srv->b);
    if (!m || !(n = sl_meta_node_find(m, (int32_t)v)) || !n->stomp_addr ||
        !n->stomp_addr[0])
        return -1;
    return (int32_t)v;
}

static void sk_fail(stomp_sendlink *l, sl_err rc, const char *why)
{
    if (l->bev)
        bufferevent_free(l->bev);
    l->bev = NULL;
    if (l->waits || why)
        sl_log(SL_INFO, RELAY_SUBSYS,
               "session %s: SENDs to node %d's temp queues at %s: %s",
               l->c->session, (int)l->node, l->addr, why ? why : "closed");
    while (l->waits) {
        rl_wait *x = l->waits;
        l->waits = x->next;
        sl_wait_set_what(x->w,
                         "a reply to a temp queue of node %d: the session "
                         "to it was lost before it answered (%s)",
                         (int)l->node, why ? why : "closed");
        sl_wait_release(x->w, rc);
        free(x);
    }
    l->waits_tail = NULL;
    sl_stomp_parser_fini(&l->ps);
    sl_stomp_parser_init(&l->ps, &l->c->s->lim);
}

static void sk_frame_in(stomp_sendlink *l, const sl_stomp_frame *f)
{
    const char *id;
    rl_wait *x;
    int ok;
    char why[300];
    switch (f->cmd) {
    case SL_STOMP_CONNECTED:
        if (l->peer_login &&
            !sl_peer_login_proof_ok(
                l->expect, sl_stomp_frame_value(f, "sluice-relay-proof")))
            sk_fail(l, SL_ERR_AUTHENTICATION_FAILED,
                    "the other side does not prove the cluster secret");
        else
            sl_stomp_parser_set_version(&l->ps, SL_STOMP_V12);
        return;
    case SL_STOMP_RECEIPT:
        id = sl_stomp_frame_value(f, "receipt-id");
        x = l->waits;
        if (!id || !x || (uint64_t)parse_i64(id, &ok) != x->id || !ok) {
            sk_fail(l, SL_ERR_PROTOCOL, "a RECEIPT out of order");
            return;
        }
        l->waits = x->next;
        if (!l->waits)
            l->waits_tail = NULL;
        sl_wait_release(x->w, SL_OK);
        free(x);
        return;
    case SL_STOMP_ERROR:
        snprintf(why, sizeof(why), "ERROR %.100s: %.*s",
                 sl_stomp_frame_value(f, "message")
                     ? sl_stomp_frame_value(f, "message")
                     : "",
                 (int)(f->body_len > 150 ? 150 : f->body_len),
                 (const char *)f->body);
        sk_fail(l, SL_ERR_UNKNOWN, why);
        return;
    default:
        return; /* heart-beats are skipped by the parser; nothing else */
    }
}

static void sk_read_cb(struct bufferevent *bev, void *arg)
{
    stomp_sendlink *l = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (l->bev) {
        sl_stomp_frame f;
        int rc = sl_stomp_read(&l->ps, in, &f);
        if (rc == SL_STOMP_NEED_MORE)
            break;
        if (rc == SL_STOMP_PERROR) {
            sk_fail(l, SL_ERR_PROTOCOL, l->ps.errstr);
            return;
        }
        sk_frame_in(l, &f);
    }
}

static void sk_event_cb(struct bufferevent *bev, short what, void *arg)
{
    stomp_sendlink *l = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED)
        return;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        sk_fail(l, SL_ERR_DISCONNECTED,
                what & BEV_EVENT_EOF ? "connection closed"
                                     : "connection failed");
}

static stomp_sendlink *sk_link(stomp_conn *c, int32_t node)
{
    stomp_srv *srv = c->s;
    const sl_meta *m = sl_bcluster_image(srv->b);
    const sl_mi_node *n = m ? sl_meta_node_find(m, node) : NULL;
    struct sockaddr_storage ss;
    int slen = sizeof(ss);
    stomp_sendlink *l;
    sl_stomp_enc e;
    for (l = c->sendlinks; l; l = l->next)
        if (l->node == node)
            break;
    if (!l) {
        l = calloc(1, sizeof(*l));
        if (!l)
            return NULL;
        l->c = c;
        l->node = node;
        sl_stomp_parser_init(&l->ps, &srv->lim);
        sl_wb_init(&l->wb, 512);
        l->next = c->sendlinks;
        c->sendlinks = l;
    }
    if (l->bev)
        return l;
    if (!n || !n->stomp_addr || !n->stomp_addr[0])
        return NULL;
    snprintf(l->addr, sizeof(l->addr), "%s", n->stomp_addr);
    if (evutil_parse_sockaddr_port(l->addr, (struct sockaddr *)&ss, &slen) != 0)
        return NULL;
    l->bev = bufferevent_socket_new(srv->b->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!l->bev)
        return NULL;
    bufferevent_setcb(l->bev, sk_read_cb, NULL, sk_event_cb, l);
    bufferevent_enable(l->bev, EV_READ | EV_WRITE);
    /* CONNECT now; the SENDs queue behind it until the connection is up */
    sl_wb_reset(&l->wb);
    sl_stomp_enc_begin(&e, &l->wb, SL_STOMP_V12, SL_STOMP_CONNECT);
    sl_stomp_enc_header_s(&e, "accept-version", "1.2");
    if (c->login[0])
        sl_stomp_enc_header_s(&e, "login", c->login);
    sl_stomp_enc_header_u(&e, "sluice-relay", srv->b->cfg.node_id);
    l->peer_login = 0;
    if (sl_peer_auth_enabled(srv->b)) {
        char lm[256];
        if (sl_peer_login_message(srv->b, lm, sizeof(lm), l->expect) == SL_OK) {
            sl_stomp_enc_header_s(&e, "sluice-relay-login", lm);
            l->peer_login = 1;
        }
    }
    sl_stomp_enc_end(&e, NULL, 0);
    bufferevent_write(l->bev, l->wb.p, l->wb.len);
    if (bufferevent_socket_connect(l->bev, (struct sockaddr *)&ss, slen) != 0) {
        bufferevent_free(l->bev);
        l->bev = NULL;
        return NULL;
    }
    return l;
}

sl_err stomp_relay_send(stomp_conn *c, int32_t node, const char *dst,
                        const sl_stomp_frame *f, const char *reply_to,
                        sl_wait *w)
{
    stomp_sendlink *l = sk_link(c, node);
    sl_stomp_enc e;
    rl_wait *x = NULL;
    uint32_t i;
    if (!l || !l->bev)
        return SL_ERR_DISCONNECTED;
    if (w && !(x = calloc(1, sizeof(*x))))
        return SL_ERR_NOMEM;
    sl_wb_reset(&l->wb);
    sl_stomp_enc_begin(&e, &l->wb, SL_STOMP_V12, SL_STOMP_SEND);
    sl_stomp_enc_header_s(&e, "destination", dst);
    for (i = 0; i < f->header_count; i++) {
        const sl_stomp_header *h = &f->headers[i];
        if (strcmp(h->name, "destination") == 0 ||
            strcmp(h->name, "receipt") == 0 ||
            strcmp(h->name, "transaction") == 0 ||
            strcmp(h->name, "content-length") == 0 ||
            (reply_to && strcmp(h->name, "reply-to") == 0))
            continue;
        sl_stomp_enc_header(&e, h->name, h->name_len, h->value, h->value_len);
    }
    if (reply_to)
        sl_stomp_enc_header_s(&e, "reply-to", reply_to);
    if (x) {
        x->id = ++l->next_id;
        x->w = w;
        sl_wait_hold(w);
        if (l->waits_tail)
            l->waits_tail->next = x;
        else
            l->waits = x;
        l->waits_tail = x;
        sl_stomp_enc_header_u(&e, "receipt", x->id);
    }
    sl_stomp_enc_header_u(&e, "content-length", f->body_len);
    sl_stomp_enc_end(&e, f->body, f->body_len);
    bufferevent_write(l->bev, l->wb.p, l->wb.len);
    return SL_OK;
}

void stomp_relay_sendlinks_free(stomp_conn *c)
{
    while (c->sendlinks) {
        stomp_sendlink *l = c->sendlinks;
        c->sendlinks = l->next;
        sk_fail(l, SL_ERR_DISCONNECTED, NULL);
        sl_stomp_parser_fini(&l->ps);
        sl_wb_fini(&l->wb);
        free(l);
    }
}
