/*
 * relay.c - cluster: a STOMP /queue subscription is served by the node
 * that coordinates its queue group (docs/cluster.md 5.1).
 *
 * A queue group's state (what is acquired, acked, how often delivered)
 * lives in the groups.db of the node that serves it. If every node served
 * the consumers connected to it, consumers of one queue on three nodes
 * would each get every message. So one node dispatches a group: its
 * coordinator, the leader of partition fnv1a32(group) mod partitions of
 * __sluice_group_state, which holds the group's replicated state
 * (broker/group_state.c; the node libsluice's queue consumers connect to,
 * client/src/coord.c). A /queue SUBSCRIBE on another node is relayed
 * there:
 *
 *  - The node opens a STOMP session of its own to the coordinator's STOMP
 *    address (from the metadata image), one per relayed subscription,
 *    with CONNECT header `sluice-relay:<its node id>` and its identity
 *    (which replaces that subscription's older sessions there at once:
 *    relay_tick.c), and subscribes there under the client's
 *    subscription id with the client's destination, selector, queue
 *    arguments and prefetch, and ack mode client-individual (auto when
 *    the client's is auto). The coordinator
 *    serves that session like any consumer: its prefetch, lock and
 *    delivery counts, expiry and dead-lettering, redelivered flags.
 *  - MESSAGE frames are read from that session, given the client's
 *    subscription id, destination and (1.2) ack id, encoded in the
 *    client's STOMP version and written to the client; the message-id
 *    (topic/partition/offset) is the same on every node. A client ACK or
 *    NACK (client mode: each delivery up to the one named) is sent up as
 *    an ACK/NACK of the same message, or, for a burst of ACKs that covers
 *    every delivery before the oldest one the client still holds, as one
 *    cumulative ACK (rl_acks_flush); with a receipt, the client's RECEIPT
 *    waits for the coordinator's receipt of the frame that carried its
 *    ACK, which comes once the group state holding it is committed
 *    there.
 *  - Back-pressure: while the client's output is above output-high-water
 *    the node stops reading the coordinator's session; TCP then stops the
 *    coordinator, whose own back-pressure takes the consumer's credits.
 *
 * A relay session is served where it lands: a node never relays it again,
 * and a node that is not the group's coordinator as it sees it refuses
 * the SUBSCRIBE with an ERROR (the relaying node's image was ahead or
 * behind; it tries again).
 *
 * Deliveries the client still holds when its subscription moves are
 * stale: the old home released them (or died with them), and the group
 * delivers them again from the new home (at least once; never lost). An
 * ACK or NACK of a stale delivery settles nothing (stomp_sub.c): a NACK
 * is answered as done, an ACK's receipt is an ERROR (a RECEIPT would say
 * it is acknowledged; it comes again). An ACK whose answer from the
 * coordinator was still awaited when the session broke fails its receipt
 * (ERROR): it may or may not have been applied.
 *
 * Authentication: with a cluster secret the CONNECT carries the broker
 * login of peer_auth.c (sluice-relay-login) and the coordinator's
 * CONNECTED its proof (sluice-relay-proof), checked here; the session is
 * then a broker, not subject to the users' rules (this node checked its
 * client's). Without a secret it logs in with the client's login and no
 * passcode, so a coordinator with users refuses it (logged, retried).
 *
 * The relay is split by concern; each file opens with its own essay:
 *
 *   relay.c          this session: CONNECT, SUBSCRIBE, MESSAGEs, ACKs
 *   relay_tick.c     the tick: following the coordinators, retries
 *   relay_topic.c    plain /topic subscriptions: partitions held elsewhere
 *   relay_durable.c  durable subscriptions removed at the coordinator
 *   relay_send.c     SENDs to a temp queue of another node
 *   relay_int.h      what they share
 *
 * @thread loop (everything here)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "broker/broker.h"
#include "broker/cluster.h"
#include "broker/group_state.h"
#include "broker/peer_auth.h"
#include "broker/relay_frame.h"
#include "broker/relay_int.h"
#include "broker/stomp_int.h"
#include "broker/stomp_read.h"
#include "cluster/meta.h"

static void rl_sub_done(stomp_relay *rl);
static void rl_settles_drop(stomp_relay *rl, sl_err rc);

int32_t stomp_relay_node(const struct stomp_relay *rl)
{
    return rl->state == RL_UP ? rl->node : -1;
}

int32_t stomp_relay_coordinator(stomp_srv *srv, const char *group,
                                const char *topic)
{
    const sl_meta *m = sl_bcluster_image(srv->b);
    const sl_mi_node *n;
    int32_t ld;
    (void)topic; /* the group alone decides (docs/cluster.md 6) */
    if (!m)
        return 0;
    ld = sl_gstate_coordinator(srv->b, group);
    if (ld == (int32_t)srv->b->cfg.node_id)
        return 0;
    if (ld <= 0 || !(n = sl_meta_node_find(m, ld)) || !n->stomp_addr ||
        !n->stomp_addr[0])
        return -1;
    return ld;
}

/* ---- the session to the coordinator ------------------------------------ */

static void rl_set_state(stomp_relay *rl, int state)
{
    rl->state = state;
    rl->since = sl_now_ms();
}

/* The session is lost: close it, fail the receipts waiting for it, and
 * try again after the backoff. What the client holds is stale: the
 * coordinator releases it with the session (or died with it). */
void rl_fail(stomp_relay *rl, const char *why)
{
    stomp_sub *s = rl->s;
    int up = rl->state == RL_UP;
    if (rl->bev)
        bufferevent_free(rl->bev);
    rl->bev = NULL;
    sl_stomp_parser_fini(&rl->ps);
    sl_stomp_parser_init(&rl->ps, &s->c->s->lim);
    rl->in_parser = 0;
    rl->paused = 0;
    rl->cumulative = 0;
    /* settled nothing: delivered again */
    rl_settles_drop(rl, SL_ERR_DISCONNECTED);
    while (rl->waits) {
        rl_wait *x = rl->waits;
        rl->waits = x->next;
        sl_wait_set_what(x->w,
                         "the session to node %d, which coordinates queue "
                         "group %s, was lost before it answered",
                         (int)rl->node, s->group ? s->group : "");
        sl_wait_release(x->w, SL_ERR_DISCONNECTED);
        free(x);
    }
    rl->waits_tail = NULL;
    rl_sub_done(rl);
    /* in place: the subscription keeps its relay, only the deliveries of
     * this session are stale (stomp_sub_unhome without the free); a
     * topic's deliveries settle nothing and stay */
    if (rl->part < 0 && s->pq.head) {
        if (s->stale.tail)
            s->stale.tail->next = s->pq.head;
        else
            s->stale.head = s->pq.head;
        s->stale.tail = s->pq.tail;
        s->stale.n += s->pq.n;
        s->pq.head = s->pq.tail = NULL;
        s->pq.n = 0;
    }
    if (!rl->warned || up)
        sl_log(SL_WARN, RELAY_SUBSYS,
               "subscription %s of session %s (%s, partition %d): "
               "relay to node %d at %s: %s; %s",
               s->id, s->c->session, rl->dest, (int)rl->part, (int)rl->node,
               rl->addr, why,
               conn_closing(s->c) ? "the client is gone: not resubscribing"
                                  : "resubscribing");
    else
        sl_log(SL_DEBUG, RELAY_SUBSYS,
               "subscription %s of session %s: relay to node %d: %s", s->id,
               s->c->session, (int)rl->node, why);
    rl->warned = 1;
    rl_set_state(rl, RL_DOWN);
    rl->retry_at = sl_now_ms() + rl->backoff;
    rl->backoff *= 2;
    if (rl->backoff > RELAY_BACKOFF_MAX_MS)
        rl->backoff = RELAY_BACKOFF_MAX_MS;
}

static void rl_write(stomp_relay *rl)
{
    if (rl->bev)
        bufferevent_write(rl->bev, rl->wb.p, rl->wb.len);
}

/* CONNECT and SUBSCRIBE, pipelined. */
static void rl_send_subscribe(stomp_relay *rl)
{
    stomp_sub *s = rl->s;
    stomp_conn *c = s->c;
    sl_stomp_enc e;
    char num[32];
    size_t i;
    sl_wb_reset(&rl->wb);
    sl_stomp_enc_begin(&e, &rl->wb, SL_STOMP_V12, SL_STOMP_CONNECT);
    sl_stomp_enc_header_s(&e, "accept-version", "1.2");
    /* the client's virtual host (stomp_vhost.c), else the address */
    sl_stomp_enc_header_s(&e, "host", c->vhost[0] ? c->vhost : rl->addr);
    if (c->login[0])
        sl_stomp_enc_header_s(&e, "login", c->login);
    snprintf(num, sizeof(num), "%d,%d", RELAY_HB_OUT_MS, RELAY_HB_MS);
    sl_stomp_enc_header_s(&e, "heart-beat", num);
    sl_stomp_enc_header_u(&e, "sluice-relay", c->s->b->cfg.node_id);
    /* who it is, so that it replaces its older sessions at once
     * (relay_tick.c, stomp_relay_replace) */
    sl_stomp_enc_header_u(&e, "sluice-relay-epoch",
                          (uint64_t)c->s->relay_epoch);
    sl_stomp_enc_header_u(&e, "sluice-relay-seq", ++c->s->relay_seq);
    snprintf(num, sizeof(num), "%d", (int)rl->part);
    {
        size_t kl = strlen(c->session) + strlen(num) + strlen(s->id) + 3;
        char *k = malloc(kl);
        if (k) {
            snprintf(k, kl, "%s/%s/%s", c->session, num, s->id);
            sl_stomp_enc_header_s(&e, "sluice-relay-session", k);
            free(k);
        }
    }
    rl->peer_login = 0;
    if (sl_peer_auth_enabled(c->s->b)) {
        /* a broker of this cluster (peer_auth.c), whatever users the
         * coordinator has */
        char m[256];
        if (sl_peer_login_message(c->s->b, m, sizeof(m), rl->expect) == SL_OK) {
            sl_stomp_enc_header_s(&e, "sluice-relay-login", m);
            rl->peer_login = 1;
        }
    }
    if (c->client_id[0]) /* names ActiveMQ durable subscriptions */
        sl_stomp_enc_header_s(&e, "client-id", c->client_id);
    sl_stomp_enc_end(&e, NULL, 0);
    sl_stomp_enc_begin(&e, &rl->wb, SL_STOMP_V12, SL_STOMP_SUBSCRIBE);
    sl_stomp_enc_header_s(&e, "id", s->id);
    sl_stomp_enc_header_s(&e, "destination", rl->dest);
    if (rl->part >= 0) {
        /* a topic's deliveries settle nothing: auto; one partition */
        sl_stomp_enc_header_s(&e, "ack", "auto");
        sl_stomp_enc_header_u(&e, "sluice-partition", (uint64_t)rl->part);
        if (rl->from_start) /* a topic newer than the subscription */
            sl_stomp_enc_header_s(&e, "sluice-from-start", "true");
    } else {
        sl_stomp_enc_header_s(
            &e, "ack", s->ack == ACK_AUTO ? "auto" : "client-individual");
        sl_stomp_enc_header_u(&e, "prefetch-count", (uint64_t)s->prefetch);
    }
    for (i = 0; i + 1 < s->nxh; i += 2)
        sl_stomp_enc_header_s(&e, s->xh[i], s->xh[i + 1]);
    sl_stomp_enc_header_s(&e, "receipt", "subscribed");
    sl_stomp_enc_end(&e, NULL, 0);
    rl_write(rl);
    rl_set_state(rl, RL_SUBSCRIBING);
}

/* Header name: "message-id#subscription-id" (stomp_msgid_parse). */
static void enc_ack_id(sl_stomp_enc *e, const char *name, const char *mid,
                       const char *subid)
{
    char buf[SL_TOPIC_NAME_MAX + 200], *v = buf;
    size_t ml = strlen(mid), sl = strlen(subid);
    if (ml + sl + 2 > sizeof(buf) && !(v = malloc(ml + sl + 2))) {
        sl_stomp_enc_header_s(e, name, mid); /* found by message-id */
        return;
    }
    memcpy(v, mid, ml);
    v[ml] = '#';
    memcpy(v + ml + 1, subid, sl + 1);
    sl_stomp_enc_header(e, name, strlen(name), v, ml + sl + 1);
    if (v != buf)
        free(v);
}

/* mid (n bytes, a MESSAGE's message-id) as "topic/partition/offset" of
 * rl's topic: *part, *off; -1 when it is not that (stomp_msgid_parse's
 * format, without its strtoll and copies: once per relayed message). */
static int rl_mid_parse(const stomp_relay *rl, const char *mid, size_t n,
                        int32_t *part, int64_t *off)
{
    const char *t = rl->r ? rl->r->topic : rl->s->qtopic;
    size_t tl = strlen(t), i, d;
    uint64_t pv = 0, ov = 0;
    if (n < tl + 4 || memcmp(mid, t, tl) != 0 || mid[tl] != '/')
        return -1;
    for (i = tl + 1, d = 0; i < n && mid[i] != '/'; i++, d++) {
        if (mid[i] < '0' || mid[i] > '9' || d >= 10)
            return -1;
        pv = pv * 10 + (uint64_t)(mid[i] - '0');
    }
    if (d == 0 || i >= n || pv > INT32_MAX)
        return -1;
    for (i++, d = 0; i < n; i++, d++) {
        if (mid[i] < '0' || mid[i] > '9' || d >= 18)
            return -1;
        ov = ov * 10 + (uint64_t)(mid[i] - '0');
    }
    if (d == 0)
        return -1;
    *part = (int32_t)pv;
    *off = (int64_t)ov;
    return 0;
}

/* Is mid (a MESSAGE's message-id, n bytes) one for rl to deliver? 1 yes
 * (*part, *off set), 0 no (a partition another relay brings), -1 not of
 * its destination at all (the session is failed). */
static int rl_msg_check(stomp_relay *rl, const char *mid, size_t n,
                        int32_t *part, int64_t *off)
{
    if (!mid || rl_mid_parse(rl, mid, n, part, off) != 0) {
        rl_fail(rl, "a MESSAGE without a message-id of its destination");
        return -1;
    }
    if (rl->part >= 0 && *part != rl->part)
        return 0; /* read here, or by another relay */
    return 1;
}

/* A delivery written to the client: remember it until it is acked. */
static void rl_msg_pend(stomp_relay *rl, int32_t part, int64_t off)
{
    stomp_sub *s = rl->s;
    if (s->ack == ACK_AUTO)
        return;
    /* without memory the ack will not resolve; lock expiry returns the
     * message at the coordinator */
    if (stomp_pendq_push(&s->pq, rl->r, rl->r ? rl->r->topic : s->qtopic, part,
                         off) == 0)
        s->pq.tail->seq = ++rl->seq; /* the coordinator's order */
}

/* A MESSAGE of the coordinator, as the client's (the parsed path). */
static void rl_message(stomp_relay *rl, const sl_stomp_frame *f)
{
    stomp_sub *s = rl->s;
    stomp_conn *c = s->c;
    const char *mid = sl_stomp_frame_value(f, "message-id");
    int32_t part;
    int64_t off;
    sl_wb *wb = &c->scratch;
    sl_stomp_enc e;
    uint32_t i;

    if (rl_msg_check(rl, mid, mid ? strlen(mid) : 0, &part, &off) <= 0)
        return;
    sl_wb_reset(wb);
    stomp_enc_begin(c, &e, wb, c->version, SL_STOMP_MESSAGE);
    sl_stomp_enc_header_s(&e, "subscription", s->id);
    sl_stomp_enc_header_s(&e, "message-id", mid);
    sl_stomp_enc_header_s(&e, "destination", rl->dest);
    if (c->version >= SL_STOMP_V12 && s->ack != ACK_AUTO)
        enc_ack_id(&e, "ack", mid, s->id);
    for (i = 0; i < f->header_count; i++) {
        const sl_stomp_header *h = &f->headers[i];
        if (strcmp(h->name, "subscription") == 0 ||
            strcmp(h->name, "message-id") == 0 ||
            strcmp(h->name, "destination") == 0 ||
            strcmp(h->name, "ack") == 0 ||
            strcmp(h->name, "content-length") == 0)
            continue;
        sl_stomp_enc_header(&e, h->name, h->name_len, h->value, h->value_len);
    }
    sl_stomp_enc_header_u(&e, "content-length", f->body_len);
    sl_stomp_enc_end(&e, f->body, f->body_len);
    conn_write(c, wb->p, wb->len);
    rl_msg_pend(rl, part, off);
}

static void rl_receipt(stomp_relay *rl, const sl_stomp_frame *f)
{
    const char *id = sl_stomp_frame_value(f, "receipt-id");
    stomp_sub *s = rl->s;
    int ok;
    uint64_t n;
    rl_wait *x;
    if (id && strcmp(id, "subscribed") == 0) {
        rl_set_state(rl, RL_UP);
        rl->from_start = 0; /* a session opened again reads from the end */
        rl->backoff = RELAY_BACKOFF_MIN_MS;
        rl_sub_done(rl);
        sl_log(rl->warned ? SL_INFO : SL_DEBUG, RELAY_SUBSYS,
               "subscription %s of session %s (%s, partition %d): "
               "relayed to node %d at %s",
               s->id, s->c->session, rl->dest, (int)rl->part, (int)rl->node,
               rl->addr);
        rl->warned = 0;
        return;
    }
    n = id ? (uint64_t)parse_i64(id, &ok) : 0;
    /* answered in order: the first waiting one, and those that wait for
     * the same frame (a cumulative ACK's) */
    x = rl->waits;
    if (!id || !ok || !x || x->id != n) {
        rl_fail(rl, "a RECEIPT out of order");
        return;
    }
    while ((x = rl->waits) && x->id == n) {
        rl->waits = x->next;
        sl_wait_release(x->w, SL_OK);
        free(x);
    }
    if (!rl->waits)
        rl->waits_tail = NULL;
}

static void rl_frame(stomp_relay *rl, const sl_stomp_frame *f)
{
    char why[300];
    switch (f->cmd) {
    case SL_STOMP_CONNECTED: {
        const char *hb = sl_stomp_frame_value(f, "heart-beat");
        long long sx = 0, sy = 0;
        if (rl->peer_login &&
            !sl_peer_login_proof_ok(
                rl->expect, sl_stomp_frame_value(f, "sluice-relay-proof"))) {
            rl_fail(rl, "the other side does not prove the cluster secret "
                        "(not a broker of this cluster, or its "
                        "cluster-secret-file differs)");
            break;
        }
        sl_stomp_parser_set_version(&rl->ps, SL_STOMP_V12);
        /* it takes "ACK ... sluice-cumulative:true" (rl_acks_flush) */
        rl->cumulative = stomp_header_bool(
            sl_stomp_frame_value(f, "sluice-ack-cumulative"), 0);
        /* "sx,sy": the coordinator sends every sx ms */
        if (hb && sscanf(hb, "%lld,%lld", &sx, &sy) == 2 && sx > 0)
            rl->hb_ms = sx;
        else
            rl->hb_ms = 0;
        break;
    }
    case SL_STOMP_MESSAGE:
        if (rl->state != RL_UP && rl->state != RL_SUBSCRIBING)
            break;
        if (conn_closing(rl->s->c))
            break; /* the client is gone (rl_input) */
        rl_message(rl, f);
        break;
    case SL_STOMP_RECEIPT:
        rl_receipt(rl, f);
        break;
    case SL_STOMP_ERROR: {
        const char *m = sl_stomp_frame_value(f, "message");
        snprintf(why, sizeof(why), "ERROR %.100s: %.*s", m ? m : "",
                 (int)(f->body_len > 150 ? 150 : f->body_len),
                 (const char *)f->body);
        rl_fail(rl, why);
        break;
    }
    default:
        snprintf(why, sizeof(why), "unexpected %s frame",
                 sl_stomp_cmd_name(f->cmd));
        rl_fail(rl, why);
        break;
    }
}

/* Does the client take sc, a MESSAGE of rl's session, as it came? Yes
 * when the parsed path would write the same bytes: a 1.2 client (the
 * session's version), the client's own subscription id and destination
 * (unescaped, so they compare as they are), and the ack id the client's
 * ack mode asks for. */
static int rl_fast_ok(const stomp_relay *rl, const rl_scan *sc)
{
    const stomp_sub *s = rl->s;
    size_t il = rl->id_len, ml = sc->mid_len;
    if (sc->escaped || sc->sub_len != il || memcmp(sc->sub, s->id, il) != 0 ||
        sc->dest_len != rl->dest_len ||
        memcmp(sc->dest, rl->dest, rl->dest_len) != 0)
        return 0;
    if (s->ack == ACK_AUTO)
        return !sc->ack;
    return sc->ack && sc->ack_len == ml + 1 + il &&
           memcmp(sc->ack, sc->mid, ml) == 0 && sc->ack[ml] == '#' &&
           memcmp(sc->ack + ml + 1, s->id, il) == 0;
}

/* Send what rl_out_add gathered to the client in one send (sl_conn_write_
 * direct): the frames of a read, which lie in one or more chains of the
 * input buffer. Queued instead, as before, they waited for epoll to
 * report the client's socket writable: an epoll_ctl to arm the write
 * event, a loop pass, another to disarm it, for every read. */
static void rl_out_flush(stomp_srv *srv)
{
    sl_wb *out = &srv->relay_out;
    if (out->len > 0 && srv->relay_out_to)
        conn_write_direct(srv->relay_out_to, out->p, out->len);
    sl_wb_reset(out);
    srv->relay_out_to = NULL;
}

/* MESSAGE bytes for rl's client, gathered in the server's relay_out (for
 * one client at a time, relay_out_to: another's are sent first; it is
 * empty again when rl_input returns and before the parsed path runs) and
 * sent by rl_out_flush at the end of the read, before a frame of the
 * parser's, or when RELAY_READ_BYTES are gathered. */
static void rl_out_add(stomp_relay *rl, const char *p, size_t n)
{
    stomp_conn *c = rl->s->c;
    stomp_srv *srv = c->s;
    sl_wb *out = &srv->relay_out;
    if (srv->relay_out_to != c || out->len + n > RELAY_READ_BYTES)
        rl_out_flush(srv);
    if (n >= RELAY_READ_BYTES) {
        conn_write_direct(c, p, n);
        return;
    }
    srv->relay_out_to = c;
    sl_wb_put(out, p, n);
    if (out->err) { /* no memory to gather: as it is */
        out->err = 0;
        rl_out_flush(srv);
        conn_write_direct(c, p, n);
    }
}

/* The fast path: the whole MESSAGEs at the start of in that the client
 * takes as they came are copied to it in one write, unparsed
 * (relay_frame.c). 1: some bytes were used; 0: more are needed; -1: the
 * next frame is the parser's. */
static int rl_input_fast(stomp_relay *rl, struct evbuffer *in)
{
    stomp_conn *c = rl->s->c;
    size_t total = evbuffer_get_length(in), n, pos = 0, run = 0;
    const char *p;
    int next = 0;
    struct evbuffer_iovec v;
    /* the frames of the first chain (a read's bytes) as they lie; a frame
     * that crosses into the next chain is joined with some of what
     * follows below, not the whole input (which cost a copy of it and a
     * chain's malloc and free a read) */
    if (evbuffer_peek(in, -1, NULL, &v, 1) == 1 && v.iov_len > 0) {
        p = v.iov_base;
        n = v.iov_len;
    } else if ((p = (const char *)evbuffer_pullup(in, -1))) {
        n = total;
    } else {
        return -1;
    }
    while (pos < n && pos - run < RELAY_READ_BYTES) {
        rl_scan sc;
        int32_t part;
        int64_t off;
        int rc, chk;
        if (p[pos] == '\n') { /* a heart-beat: not the client's */
            if (pos > run)
                rl_out_add(rl, p + run, pos - run);
            run = ++pos;
            continue;
        }
        rc = rl_scan_frame(p + pos, n - pos, RELAY_SCAN_HDR_MAX,
                           c->s->lim.max_frame, &sc);
        if (rc == RL_SCAN_MORE) {
            if (pos == 0 && n < total && n <= 2 * RELAY_READ_BYTES) {
                /* it crosses into the next chain: join more of it */
                size_t want = 2 * n + 4096 < total ? 2 * n + 4096 : total;
                p = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
                if (!p)
                    return -1;
                n = want;
                continue;
            }
            /* a large frame: assembled by the parser, not pulled up again
             * on each read */
            if (pos == 0 && n > 2 * RELAY_READ_BYTES)
                next = -1;
            break;
        }
        if (rc != RL_SCAN_MESSAGE || !rl_fast_ok(rl, &sc)) {
            next = -1;
            break;
        }
        chk = rl_msg_check(rl, sc.mid, sc.mid_len, &part, &off);
        if (chk < 0)
            return 1;   /* failed: its input is gone */
        if (chk == 0) { /* another relay's partition: skipped */
            if (pos > run)
                rl_out_add(rl, p + run, pos - run);
            pos += sc.len;
            run = pos;
            continue;
        }
        c->s->b->stomp_frames_out[SL_STOMP_MESSAGE]++;
        rl_msg_pend(rl, part, off);
        pos += sc.len;
    }
    if (pos > run)
        rl_out_add(rl, p + run, pos - run);
    evbuffer_drain(in, pos);
    return pos > 0 ? 1 : next;
}

static void rl_input_frames(stomp_relay *rl);

/* Handle what the coordinator sent, while the client can take it. */
void rl_input(stomp_relay *rl)
{
    rl_input_frames(rl);
    rl_out_flush(rl->s->c->s);
}

static void rl_input_frames(stomp_relay *rl)
{
    struct evbuffer *in;
    if (!rl->bev)
        return;
    in = bufferevent_get_input(rl->bev);
    while (rl->bev && evbuffer_get_length(in) > 0) {
        sl_stomp_frame f;
        int rc;
        /* The client is going (EOF, DISCONNECT): no MESSAGE goes to it
         * (rl_frame drops them; the coordinator takes them back when this
         * session closes with the connection), but the RECEIPTs and
         * ERRORs of the ACKs it sent are still read: its connection
         * closes only once their receipts are answered (a relay that
         * stopped reading here held the connection, this session and
         * its deliveries at the coordinator forever: issue 14). */
        int closing = conn_closing(rl->s->c);
        if (!closing && out_high(rl->s->c)) {
            /* until stomp_relay_pump: the client's output drained */
            bufferevent_disable(rl->bev, EV_READ);
            rl->paused = 1;
            sl_log(SL_DEBUG, RELAY_SUBSYS,
                   "subscription %s of session %s: the client's output is "
                   "full; not reading node %d",
                   rl->s->id, rl->s->c->session, (int)rl->node);
            return;
        }
        if (!closing && !rl->in_parser && rl->s->c->version == SL_STOMP_V12 &&
            (rl->state == RL_UP || rl->state == RL_SUBSCRIBING)) {
            rc = rl_input_fast(rl, in);
            if (rc > 0)
                continue;
            if (rc == 0)
                return;
        }
        rl_out_flush(rl->s->c->s); /* before what the parsed path writes */
        rc = sl_stomp_read(&rl->ps, in, &f);
        if (rc == SL_STOMP_PERROR) {
            rl_fail(rl, rl->ps.errstr);
            return;
        }
        /* the parser holds part of a frame: it gets the rest */
        rl->in_parser = rc != SL_STOMP_FRAME;
        if (rc == SL_STOMP_FRAME)
            rl_frame(rl, &f);
    }
}

/* libevent 2.1 reads at most 4096 bytes per readiness event: a drain
 * came in 4 KiB reads, each sent on to the client (a wake-up of the
 * consumer) while the coordinator wrote 16 KiB at a time (issue 13:
 * 36,000 reads of exactly 4096 bytes per session and 500,000 messages).
 * So what the socket holds is read at once, up to RELAY_READ_BYTES, and
 * its MESSAGEs go to the client in one send; the coordinator writes a
 * relay session as much at once (stomp_session.c). Not through TLS, whose
 * bytes only the bufferevent may read. */
static void rl_read_cb(struct bufferevent *bev, void *arg)
{
    stomp_relay *rl = arg;
    rl->last_in = sl_now_ms();
    if (!rl->s->c->s->b->cfg.cluster_tls)
        sl_ops_read_more(bev, rl->in_left, RELAY_READ_BYTES);
    rl_input(rl);
    rl->in_left =
        rl->bev ? evbuffer_get_length(bufferevent_get_input(rl->bev)) : 0;
}

static void rl_event_cb(struct bufferevent *bev, short what, void *arg)
{
    stomp_relay *rl = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        rl->last_in = sl_now_ms();
        rl_send_subscribe(rl);
        return;
    }
    if (what & BEV_EVENT_EOF)
        rl_fail(rl, "connection closed");
    else if (what & BEV_EVENT_ERROR)
        rl_fail(rl, "connection failed");
}

/* Open the session to rl->node at its STOMP address. */
void rl_connect(stomp_relay *rl)
{
    stomp_srv *srv = rl->s->c->s;
    const sl_meta *m = sl_bcluster_image(srv->b);
    const sl_mi_node *n = m ? sl_meta_node_find(m, rl->node) : NULL;
    struct sockaddr_storage ss;
    int slen = sizeof(ss);
    if (rl->node <= 0 || !n || !n->stomp_addr || !n->stomp_addr[0]) {
        rl->retry_at = sl_now_ms() + RELAY_BACKOFF_MAX_MS;
        return; /* the tick moves it once a coordinator is known */
    }
    snprintf(rl->addr, sizeof(rl->addr), "%s", n->stomp_addr);
    if (evutil_parse_sockaddr_port(rl->addr, (struct sockaddr *)&ss, &slen) !=
        0) {
        rl_fail(rl, "cannot parse its STOMP address");
        return;
    }
    rl->bev = sl_peer_bev_new(srv->b, rl->addr); /* TLS with cluster-tls */
    if (!rl->bev) {
        rl_fail(rl, "out of memory");
        return;
    }
    bufferevent_setcb(rl->bev, rl_read_cb, NULL, rl_event_cb, rl);
    /* MESSAGEs in bulk: as much per read as a STOMP client connection */
    bufferevent_set_max_single_read(rl->bev, RELAY_READ_BYTES);
    bufferevent_enable(rl->bev, EV_READ | EV_WRITE);
    rl_set_state(rl, RL_CONNECTING);
    rl->hb_ms = 0;
    rl->cumulative = 0;
    if (bufferevent_socket_connect(rl->bev, (struct sockaddr *)&ss, slen) != 0)
        rl_fail(rl, "cannot connect");
}

static void rl_acks_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    rl_acks_flush(arg);
}

stomp_relay *rl_new(stomp_sub *s, int32_t node, int32_t part, treader *r,
                    sl_wait *w)
{
    stomp_relay *rl = calloc(1, sizeof(*rl));
    if (!rl)
        return NULL;
    rl->s = s;
    rl->node = node;
    rl->part = part;
    rl->r = r;
    rl->backoff = RELAY_BACKOFF_MIN_MS;
    rl->id_len = strlen(s->id);
    if (r && s->pattern) {
        /* a topic of a wildcard: its own name (as stomp_deliver.c's) */
        const char *local = stomp_vhost_local(s->c, r->topic);
        size_t n = strlen(s->dprefix) + strlen(local) + 1;
        if ((rl->dest = malloc(n)))
            snprintf(rl->dest, n, "%s%s", s->dprefix, local);
        rl->from_start = r->from_start;
    } else {
        rl->dest = strdup(s->dest);
    }
    if (!rl->dest) {
        free(rl);
        return NULL;
    }
    rl->dest_len = strlen(rl->dest);
    sl_stomp_parser_init(&rl->ps, &s->c->s->lim);
    sl_wb_init(&rl->wb, 512);
    sl_wb_init(&rl->acks, 4096);
    rl->ack_ev = event_new(s->c->s->b->base, -1, 0, rl_acks_cb, rl);
    if (!rl->ack_ev) {
        sl_stomp_parser_fini(&rl->ps);
        sl_wb_fini(&rl->wb);
        sl_wb_fini(&rl->acks);
        free(rl->dest);
        free(rl);
        return NULL;
    }
    if (w) {
        rl->sub_w = w;
        sl_wait_hold(w);
    }
    rl->next = s->relay;
    s->relay = rl;
    rl_set_state(rl, RL_DOWN);
    rl_connect(rl);
    return rl;
}

void stomp_relay_wait_subscribed(stomp_relay *rl, sl_wait *w)
{
    if (!w || rl->sub_w || rl->state == RL_UP)
        return;
    if (rl->state == RL_DOWN && rl->node <= 0)
        return; /* no node to wait for */
    rl->sub_w = w;
    sl_wait_hold(w);
}

sl_err stomp_relay_open(stomp_sub *s, int32_t node)
{
    return rl_new(s, node, -1, NULL, NULL) ? SL_OK : SL_ERR_NOMEM;
}

static void rl_sub_done(stomp_relay *rl)
{
    if (rl->sub_w)
        sl_wait_release(rl->sub_w, SL_OK);
    rl->sub_w = NULL;
}

void rl_free_one(stomp_relay *rl)
{
    /* the coordinator releases what the session held */
    if (rl->bev)
        bufferevent_free(rl->bev);
    rl_sub_done(rl);
    rl_settles_drop(rl, SL_ERR_DISCONNECTED);
    free(rl->st);
    while (rl->waits) {
        rl_wait *x = rl->waits;
        rl->waits = x->next;
        sl_wait_release(x->w, SL_ERR_DISCONNECTED);
        free(x);
    }
    sl_stomp_parser_fini(&rl->ps);
    sl_wb_fini(&rl->wb);
    sl_wb_fini(&rl->acks);
    if (rl->ack_ev)
        event_free(rl->ack_ev);
    free(rl->dest);
    free(rl);
}

void stomp_relay_free(stomp_relay *rl)
{
    while (rl) {
        stomp_relay *n = rl->next;
        rl_free_one(rl);
        rl = n;
    }
}

/* The batch's waits fail with rc (its frames were not sent). */
static void rl_settles_drop(stomp_relay *rl, sl_err rc)
{
    size_t i;
    for (i = 0; i < rl->nst; i++) {
        if (!rl->st[i].w)
            continue;
        sl_wait_set_what(rl->st[i].w,
                         "the session to node %d, which coordinates queue "
                         "group %s, was lost before the ACK went to it",
                         (int)rl->node, rl->s->group ? rl->s->group : "");
        sl_wait_release(rl->st[i].w, rc);
    }
    rl->nst = 0;
    sl_wb_reset(&rl->acks);
}

void stomp_relay_settle(stomp_sub *s, const pend *p, int cmd, int requeue,
                        sl_wait *w)
{
    stomp_relay *rl = s->relay;
    rl_settle *x;
    if (!rl->bev || (rl->state != RL_UP && rl->state != RL_SUBSCRIBING))
        return; /* lost with its session: delivered again */
    if (rl->nst == rl->cap_st) {
        size_t cap = rl->cap_st ? rl->cap_st * 2 : 64;
        rl_settle *n = realloc(rl->st, cap * sizeof(*n));
        if (!n) {
            /* not settled: lock expiry returns it at the coordinator */
            if (w) {
                sl_wait_set_what(w, "out of memory");
                sl_wait_fail(w, SL_ERR_NOMEM);
            }
            return;
        }
        rl->st = n;
        rl->cap_st = cap;
    }
    /* batched: a burst of the client's ACKs goes up in one write, once
     * this loop iteration's callbacks ran (rl_acks_cb) */
    if (rl->nst == 0)
        event_active(rl->ack_ev, EV_TIMEOUT, 0);
    x = &rl->st[rl->nst++];
    x->seq = p->seq;
    x->topic = p->topic;
    x->partition = p->partition;
    x->offset = p->offset;
    x->cmd = cmd;
    x->requeue = requeue;
    x->w = w;
    if (w)
        sl_wait_hold(w);
}

/* One ACK/NACK frame for x into rl->acks; with cumulative, of every
 * delivery of the session up to x. Its receipt (if any of xs[0..n) has a
 * wait) answers the waits of xs[0..n), in that order. */
static void rl_settle_enc(stomp_relay *rl, const rl_settle *x, int cumulative,
                          const rl_settle *xs, size_t n)
{
    sl_stomp_enc e;
    char mid[SL_TOPIC_NAME_MAX + 48];
    size_t k, i;
    uint64_t id = 0;
    /* "topic/partition/offset" without snprintf: once per frame */
    k = strlen(x->topic);
    if (k > SL_TOPIC_NAME_MAX)
        k = SL_TOPIC_NAME_MAX;
    memcpy(mid, x->topic, k);
    mid[k++] = '/';
    k += sl_u64_dec(mid + k, (uint64_t)(x->partition < 0 ? 0 : x->partition));
    mid[k++] = '/';
    sl_u64_dec(mid + k, (uint64_t)(x->offset < 0 ? 0 : x->offset));
    for (i = 0; i < n; i++) {
        rl_wait *w;
        if (!xs[i].w)
            continue;
        if (!id)
            id = ++rl->next_id;
        if (!(w = calloc(1, sizeof(*w)))) {
            /* not waited for: its receipt fails rather than lies */
            sl_wait_set_what(xs[i].w, "out of memory");
            sl_wait_release(xs[i].w, SL_ERR_NOMEM);
            continue;
        }
        w->id = id;
        w->w = xs[i].w; /* the batch's hold moves here */
        if (rl->waits_tail)
            rl->waits_tail->next = w;
        else
            rl->waits = w;
        rl->waits_tail = w;
    }
    sl_stomp_enc_begin(&e, &rl->acks, SL_STOMP_V12,
                       x->cmd == SL_STOMP_ACK ? SL_STOMP_ACK : SL_STOMP_NACK);
    enc_ack_id(&e, "id", mid, rl->s->id);
    if (x->cmd != SL_STOMP_ACK)
        sl_stomp_enc_header_s(&e, "requeue", x->requeue ? "true" : "false");
    if (cumulative)
        sl_stomp_enc_header_s(&e, "sluice-cumulative", "true");
    if (id)
        sl_stomp_enc_header_u(&e, "receipt", id);
    sl_stomp_enc_end(&e, NULL, 0);
}

/* Write p (n bytes) to the coordinator now when nothing waits before it
 * in the session's output (plain TCP): the bufferevent would write it
 * only once epoll reported the socket writable, one loop pass and two
 * epoll_ctl calls later, for every batch of ACKs. What the socket does
 * not take now, errors, and TLS go the bufferevent's way. */
static void rl_write_now(stomp_relay *rl, const uint8_t *p, size_t n)
{
    evutil_socket_t fd = bufferevent_getfd(rl->bev);
    if (!rl->s->c->s->b->cfg.cluster_tls && fd >= 0 &&
        (rl->state == RL_UP || rl->state == RL_SUBSCRIBING) &&
        evbuffer_get_length(bufferevent_get_output(rl->bev)) == 0) {
        ssize_t k = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
        }
    }
    if (n > 0)
        bufferevent_write(rl->bev, p, n);
}

/*
 * Send the batch up in one write. A client acks each delivery
 * (client-individual), mostly in the order they came; one upstream ACK
 * each costs this node an encode and the coordinator a parse and a
 * lookup per message. So, when the coordinator takes them (it says so in
 * CONNECTED), the batch's ACKs of deliveries older than every delivery
 * the client still holds go up as one cumulative ACK of the newest of
 * them: at the coordinator the session's unsettled deliveries up to that
 * one are exactly those (its order is the order they came here, pend.seq;
 * the NACKs, and the ACKs sent before, went up first). Every other ACK
 * and NACK goes up as it came. Each client receipt waits for the
 * coordinator's receipt of the frame that carries its ACK.
 */
void rl_acks_flush(stomp_relay *rl)
{
    const stomp_sub *s = rl->s;
    /* every delivery numbered below this one is settled by the client */
    uint64_t below = s->pq.head && s->pq.head->seq ? s->pq.head->seq
                     : s->pq.head                  ? 0
                                                   : UINT64_MAX;
    size_t i, j, cum = SIZE_MAX, ncum = 0;
    rl_settle last;
    if (!rl->bev || rl->nst == 0) {
        rl_settles_drop(rl, SL_ERR_DISCONNECTED);
        return;
    }
    sl_wb_reset(&rl->acks);
    for (i = 0; rl->cumulative && i < rl->nst; i++) {
        const rl_settle *x = &rl->st[i];
        if (x->cmd != SL_STOMP_ACK || !x->seq || x->seq >= below)
            continue;
        ncum++;
        if (cum == SIZE_MAX || x->seq > rl->st[cum].seq)
            cum = i;
    }
    /* The coordinator finds the ACK's message as for any ACK: its oldest
     * delivery in the session. A message delivered twice (its lock
     * expired, and it came again) whose older delivery is covered too
     * would end the cumulative ACK there, short of the newer ones: then
     * the batch goes up one by one. */
    for (i = 0; cum != SIZE_MAX && i < rl->nst; i++) {
        const rl_settle *x = &rl->st[i];
        if (i != cum && x->cmd == SL_STOMP_ACK && x->seq && x->seq < below &&
            x->partition == rl->st[cum].partition &&
            x->offset == rl->st[cum].offset)
            cum = SIZE_MAX;
    }
    if (ncum < 2 || cum == SIZE_MAX)
        cum = SIZE_MAX; /* one ACK: as it came */
    else
        last = rl->st[cum];
    /* the rest as they came (NACKs before the cumulative ACK); the
     * cumulative ones moved to the end of the batch, in order */
    for (i = 0, j = 0; i < rl->nst; i++) {
        rl_settle x = rl->st[i];
        if (cum != SIZE_MAX && x.cmd == SL_STOMP_ACK && x.seq &&
            x.seq < below) {
            rl->st[j++] = x;
            continue;
        }
        rl_settle_enc(rl, &x, 0, &x, 1);
    }
    if (cum != SIZE_MAX)
        rl_settle_enc(rl, &last, 1, rl->st, j);
    rl->nst = 0;
    rl_write_now(rl, rl->acks.p, rl->acks.len);
    sl_wb_reset(&rl->acks);
}

void stomp_relay_pump(stomp_sub *s)
{
    stomp_relay *rl;
    for (rl = s->relay; rl; rl = rl->next) {
        if (!rl->paused || !rl->bev || out_high(s->c))
            continue;
        rl->paused = 0;
        rl->last_in = sl_now_ms();
        bufferevent_enable(rl->bev, EV_READ);
        rl_input(rl); /* what was buffered when reading stopped */
    }
}
