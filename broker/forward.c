/*
 * forward.c - appends this node cannot make, sent to the partition's
 * leader (docs/cluster.md 5.1).
 *
 * A STOMP client knows nothing of partitions: a SEND to any node must work
 * for every destination, as with a RabbitMQ cluster behind a load
 * balancer. When the partition a SEND lands on is led by another node
 * (sl_ops_append answered SL_ERR_NOT_LEADER), the STOMP adapter hands the
 * batch it built to sl_fwd_append, which sends it to the leader as an
 * ordinary PRODUCE (acks=durable for a persistent SEND with a receipt,
 * else acks=written) and calls back with the leader's answer. So the
 * receipt of a persistent SEND still means what it means on the leader:
 * fsynced on every in-sync replica (docs/cluster.md 3.3).
 *
 * One connection per leader node, opened on first use, carries every
 * forwarded batch for the partitions that node leads, pipelined: the
 * leader answers requests of one connection in order, so the batches of
 * one STOMP connection to one partition are stored in the order it sent
 * them, and the answers are matched to requests by order (the correlation
 * id is checked). A lost connection fails every request in flight on it
 * with SL_ERR_DISCONNECTED (the batch may or may not be stored, as for a
 * produce whose connection broke); a request not answered within
 * FWD_TIMEOUT_MS fails with SL_ERR_TIMEOUT and the connection is closed (a
 * leader cut off by a network partition answers nothing). Bytes queued
 * towards one leader are bounded (FWD_MAX_QUEUED): beyond that a forward
 * is refused with SL_ERR_BUSY at once.
 *
 * The leader is the one this node's copy of the metadata names; if it
 * names none (an election in progress) the forward fails with
 * SL_ERR_NOT_LEADER and the client retries, as it would after a failover.
 *
 * With a cluster secret the connection first logs in as a broker
 * (peer_auth.c), so a leader with users accepts the PRODUCE: the node
 * that took the client's SEND checked the user's rules before it got
 * here.
 *
 * @thread loop (everything here)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "broker/broker.h"
#include "broker/broker_api.h"
#include "broker/forward.h"
#include "broker/peer_auth.h"
#include "protocol/api.h"
#include "protocol/frame.h"
#include "protocol/log.h"

#define FWD_TIMEOUT_MS 30000
#define FWD_MAX_QUEUED (64u * 1024 * 1024)

typedef struct fa_req {
    struct fa_req *next;
    uint32_t corr;
    int64_t deadline_ms;
    sl_fwd_cb cb;
    void *arg;
} fa_req;

typedef struct fa_link {
    struct fa_link *next;
    sl_fwd *fw;
    int32_t leader;
    char addr[80];
    struct bufferevent *bev;
    uint32_t corr;
    fa_req *head, *tail;
    sl_peer_login login; /* with a cluster secret (peer_auth.c) */
} fa_link;

struct sl_fwd {
    sl_broker *b;
    const sl_meta *image;
    fa_link *links;
    struct event *tick;
};

/* Every request in flight on l fails with rc; the connection is closed
 * (the next forward opens a new one). */
static void link_fail(fa_link *l, sl_err rc)
{
    if (l->bev)
        bufferevent_free(l->bev);
    l->bev = NULL;
    while (l->head) {
        fa_req *q = l->head;
        l->head = q->next;
        if (q->cb)
            q->cb(q->arg, rc);
        free(q);
    }
    l->tail = NULL;
}

static void on_reply(fa_link *l, const uint8_t *frame, size_t flen)
{
    fa_req *q = l->head;
    uint32_t corr;
    sl_arena a;
    sl_produce_resp resp;
    sl_err rc;

    if (!q || sl_resp_hdr_decode(frame, flen, &corr) != SL_OK ||
        corr != q->corr) {
        sl_log(SL_WARN, "forward", "leader %d at %s: reply out of order",
               (int)l->leader, l->addr);
        link_fail(l, SL_ERR_PROTOCOL);
        return;
    }
    sl_arena_init(&a);
    rc = sl_produce_resp_decode(frame + SL_RESP_HDR_SIZE,
                                flen - SL_RESP_HDR_SIZE, &a, &resp);
    if (rc == SL_OK) {
        rc = (sl_err)resp.error;
        if (rc == SL_OK && resp.ntopics > 0 && resp.topics[0].nparts > 0)
            rc = (sl_err)resp.topics[0].parts[0].error;
        else if (rc == SL_OK)
            rc = SL_ERR_PROTOCOL;
    }
    sl_arena_fini(&a);
    l->head = q->next;
    if (!l->head)
        l->tail = NULL;
    if (q->cb)
        q->cb(q->arg, rc);
    else if (rc != SL_OK) /* nobody asked for the answer (no receipt) */
        sl_log(SL_WARN, "forward",
               "leader %d at %s refused a forwarded append: %s", (int)l->leader,
               l->addr, sl_strerror(rc));
    free(q);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    fa_link *l = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    if (l->login.left) {
        char msg[300];
        int lr = sl_peer_login_read(&l->login, in, msg, sizeof(msg));
        if (lr < 0) {
            sl_peer_login_warn("forward", l->leader, l->addr, msg);
            link_fail(l, SL_ERR_AUTHENTICATION_FAILED);
        }
        if (lr <= 0)
            return;
    }
    while (l->bev) {
        size_t avail = evbuffer_get_length(in), flen = 0;
        const uint8_t *p;
        int rc;
        if (avail < 4)
            return;
        p = evbuffer_pullup(in, 4);
        rc =
            p ? sl_frame_peek(p, 4, SL_DEFAULT_MAX_FRAME, &flen) : SL_ERR_NOMEM;
        if (rc != SL_OK && rc != SL_FRAME_PARTIAL) {
            link_fail(l, SL_ERR_PROTOCOL);
            return;
        }
        if (avail < flen)
            return;
        p = evbuffer_pullup(in, (ssize_t)flen);
        if (!p || flen < SL_RESP_HDR_SIZE + 4) {
            link_fail(l, SL_ERR_PROTOCOL);
            return;
        }
        on_reply(l, p, flen);
        if (l->bev)
            evbuffer_drain(in, flen);
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    fa_link *l = arg;
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        sl_log(SL_INFO, "forward", "leader %d at %s: connection lost",
               (int)l->leader, l->addr);
        link_fail(l, SL_ERR_DISCONNECTED);
    }
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_fwd *fw = arg;
    int64_t now = sl_now_ms();
    (void)fd;
    (void)what;
    for (fa_link *l = fw->links; l; l = l->next)
        if (l->head && l->head->deadline_ms <= now) {
            sl_log(SL_WARN, "forward",
                   "leader %d at %s: no answer within %d ms; failing the "
                   "forwarded appends in flight",
                   (int)l->leader, l->addr, FWD_TIMEOUT_MS);
            link_fail(l, SL_ERR_TIMEOUT);
        }
}

sl_err sl_fwd_new(sl_broker *b, const sl_meta *image, sl_fwd **out)
{
    sl_fwd *fw = calloc(1, sizeof(*fw));
    struct timeval tv = {1, 0};
    if (!fw)
        return SL_ERR_NOMEM;
    fw->b = b;
    fw->image = image;
    fw->tick = event_new(b->base, -1, EV_PERSIST, tick_cb, fw);
    if (!fw->tick) {
        free(fw);
        return SL_ERR_NOMEM;
    }
    event_add(fw->tick, &tv);
    *out = fw;
    return SL_OK;
}

void sl_fwd_free(sl_fwd *fw)
{
    if (!fw)
        return;
    while (fw->links) {
        fa_link *l = fw->links;
        fw->links = l->next;
        link_fail(l, SL_ERR_SHUTTING_DOWN);
        free(l);
    }
    event_free(fw->tick);
    free(fw);
}

static fa_link *link_get(sl_fwd *fw, int32_t leader, const char *addr)
{
    fa_link *l;
    struct sockaddr_storage ss;
    int slen = sizeof(ss);

    for (l = fw->links; l; l = l->next)
        if (l->leader == leader)
            break;
    if (!l) {
        l = calloc(1, sizeof(*l));
        if (!l)
            return NULL;
        l->fw = fw;
        l->leader = leader;
        l->next = fw->links;
        fw->links = l;
    }
    if (l->bev && strcmp(l->addr, addr) != 0)
        link_fail(l, SL_ERR_DISCONNECTED); /* it moved: reconnect */
    if (l->bev)
        return l;
    snprintf(l->addr, sizeof(l->addr), "%s", addr);
    if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &slen) != 0)
        return NULL;
    l->bev = sl_peer_bev_new(fw->b, addr); /* TLS with cluster-tls */
    if (!l->bev)
        return NULL;
    bufferevent_setcb(l->bev, read_cb, NULL, event_cb, l);
    bufferevent_enable(l->bev, EV_READ | EV_WRITE);
    if (sl_peer_login_start(fw->b, &l->login, l->bev) != SL_OK ||
        bufferevent_socket_connect(l->bev, (struct sockaddr *)&ss, slen) != 0) {
        bufferevent_free(l->bev);
        l->bev = NULL;
        return NULL;
    }
    return l;
}

sl_err sl_fwd_append(sl_fwd *fw, const char *topic, int32_t partition,
                     const uint8_t *batch, size_t len, int durable,
                     sl_fwd_cb cb, void *arg)
{
    const sl_mi_topic *t = sl_meta_topic_find(fw->image, topic);
    const sl_mi_node *n;
    sl_produce_part pp;
    sl_produce_topic pt;
    sl_produce_req q;
    fa_link *l;
    fa_req *r;
    sl_wb wb;
    sl_err rc;

    if (!t || partition < 0 || partition >= t->nparts)
        return SL_ERR_UNKNOWN_TOPIC;
    if (t->parts[partition].leader <= 0 ||
        t->parts[partition].leader == (int32_t)fw->b->cfg.node_id)
        return SL_ERR_NOT_LEADER; /* none now, or the image moved to us */
    n = sl_meta_node_find(fw->image, t->parts[partition].leader);
    if (!n || !n->addr[0])
        return SL_ERR_NOT_LEADER;
    l = link_get(fw, n->id, n->addr);
    if (!l || !l->bev)
        return SL_ERR_DISCONNECTED;
    if (evbuffer_get_length(bufferevent_get_output(l->bev)) > FWD_MAX_QUEUED)
        return SL_ERR_BUSY;
    r = calloc(1, sizeof(*r));
    if (!r)
        return SL_ERR_NOMEM;
    memset(&q, 0, sizeof(q));
    pp.partition = (uint32_t)partition;
    pp.records = (uint8_t *)batch;
    pp.records_len = len;
    pt.topic = sl_str_c(topic);
    pt.nparts = 1;
    pt.parts = &pp;
    q.acks = durable ? SL_ACKS_DURABLE : SL_ACKS_WRITTEN;
    q.timeout_ms = FWD_TIMEOUT_MS - 1000;
    q.ntopics = 1;
    q.topics = &pt;
    r->corr = ++l->corr;
    r->deadline_ms = sl_now_ms() + FWD_TIMEOUT_MS;
    r->cb = cb;
    r->arg = arg;
    sl_wb_init(&wb, len + 128);
    rc = sl_produce_req_encode(&wb, r->corr, &q);
    if (rc == SL_OK && bufferevent_write(l->bev, wb.p, wb.len) != 0)
        rc = SL_ERR_NOMEM;
    sl_wb_fini(&wb);
    if (rc != SL_OK) {
        free(r);
        return rc;
    }
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
    return SL_OK;
}
