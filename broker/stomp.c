/*
 * stomp.c - STOMP sessions over the broker's internal operations: the
 * session's connection ops, frame dispatch, the replies it owes, and the
 * module. stomp_int.h lists the other files of the adapter.
 *
 * Design
 * ------
 * One stomp_conn per socket, owned by the loop. Bytes go through the pure
 * parser (stomp_frame.c); each frame is handled in arrival order:
 *
 *  - CONNECT/STOMP and DISCONNECT: stomp_session.c (version, login,
 *    heart-beats).
 *  - SEND appends a one-record batch with sl_ops_append; consecutive SENDs
 *    to the same partition within one read are coalesced into one batch,
 *    appended before any other frame is handled (stomp_send.c, with
 *    BEGIN/COMMIT/ABORT).
 *  - /queue/NAME subscriptions and durable topic subscriptions are queue
 *    group consumers (groups.h): the group pushes records while the
 *    subscription has credits (its prefetch); ACK/NACK settle them there
 *    (stomp_sub.c).
 *  - Plain /topic/NAME subscriptions read the partition logs from the end
 *    offset at subscribe time (sl_part_iter), woken by the append hook
 *    (stomp_deliver.c).
 *
 * The connection itself is broker/conn.c's (accept, limits, reading and
 * pacing, back-pressure, timeouts, close and reap): STOMP plugs in with
 * its ops table (stomp_ops) and keeps only the session.
 *
 * Replies are owed in order: every RECEIPT/ERROR takes a slot of the
 * connection's reply queue (conn.h), sent only once its wait (sl_wait:
 * fsync of an append, commit of group state) has completed, so a receipt
 * is never sent before the frames before it are done. A failed wait turns
 * the receipt into an ERROR and closes. MESSAGE frames are written
 * directly.
 *
 * Back-pressure: when a connection's output passes output-high-water, its
 * subscriptions lose their credits and topic readers stop; on_drain (at
 * half) gives them back. The connection layer stops reading from a
 * connection with too much output or too many owed replies.
 *
 * Before CONNECT (and login) succeeded, a connection may make the broker
 * hold at most STOMP_PRELOGIN_BYTES of its input (the frame limit and the
 * input buffer), and must finish within handshake-timeout-ms.
 */
#include "broker/stomp.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "broker/broker.h"
#include "broker/config.h"
#include "broker/json.h"
#include "broker/stomp_int.h"
#include "broker/stomp_read.h"
#include "storage/fsutil.h"

/* Bytes per read of a connection (bigger reads: more SENDs per append
 * batch, fewer callbacks). */
#define READ_BYTES (128u * 1024)
/* Before login: the largest frame, and the most input buffered. */
#define STOMP_PRELOGIN_BYTES (32u * 1024)

/* ---- waits ------------------------------------------------------------- */

/* The callback of sl_ops_wait_durable and sl_groups_wait: one held part of
 * a wait came back (conn.h). */
void stomp_wait_cb(void *arg, sl_err err)
{
    sl_wait_release(arg, err);
}

/* ---- replies ------------------------------------------------------------ */

void stomp_enc_begin(stomp_conn *c, sl_stomp_enc *e, sl_wb *wb, int version,
                     enum sl_stomp_cmd cmd)
{
    c->s->b->stomp_frames_out[cmd]++;
    sl_stomp_enc_begin(e, wb, version, cmd);
}

static void encode_error(stomp_conn *c, sl_wb *wb, const char *receipt,
                         const char *msg, const char *detail)
{
    sl_stomp_enc e;
    size_t dl;
    if (!detail || !*detail)
        detail = msg; /* the body says it too: clients show the body */
    dl = strlen(detail);
    stomp_enc_begin(c, &e, wb, c->version, SL_STOMP_ERROR);
    sl_stomp_enc_header_s(&e, "message", msg);
    if (receipt && *receipt)
        sl_stomp_enc_header_s(&e, "receipt-id", receipt);
    sl_stomp_enc_header_s(&e, "content-type", "text/plain");
    sl_stomp_enc_header_u(&e, "content-length", dl);
    sl_stomp_enc_end(&e, detail, dl);
}

static void encode_receipt(stomp_conn *c, sl_wb *wb, const char *receipt)
{
    sl_stomp_enc e;
    stomp_enc_begin(c, &e, wb, c->version, SL_STOMP_RECEIPT);
    sl_stomp_enc_header_s(&e, "receipt-id", receipt);
    sl_stomp_enc_end(&e, NULL, 0);
}

/* The operation behind a receipt failed (its wait): say so, and close. */
static void receipt_failed(void *state, sl_reply *r, sl_err err,
                           const char *what, const char *receipt)
{
    stomp_conn *c = state;
    char detail[400];
    snprintf(detail, sizeof(detail), "%s%s%s", sl_strerror(err),
             what[0] ? ": " : "", what);
    sl_wb_reset(&c->rwb);
    encode_error(c, &c->rwb, receipt, "operation failed or not durable",
                 detail);
    sl_reply_clear(r);
    sl_reply_add(r, c->rwb.p, c->rwb.len);
    sl_reply_close_after(r);
    sl_conn_warn(c->conn, "receipt-failed", "session %s: receipt %s: %s",
                 c->session, receipt, detail);
}

/* Owe a RECEIPT once w completes (w NULL = at once, in order). */
void stomp_owe_receipt(stomp_conn *c, const char *receipt, sl_wait *w)
{
    sl_reply *r;
    if (!receipt)
        return;
    r = sl_reply_new(c->conn, 0);
    if (!r)
        return;
    sl_wb_reset(&c->rwb);
    encode_receipt(c, &c->rwb, receipt);
    sl_reply_add(r, c->rwb.p, c->rwb.len);
    if (w) {
        sl_reply_wait(r, w);
        sl_reply_on_fail(r, receipt_failed, receipt);
    }
    sl_reply_done(r);
}

/* Send an ERROR (after the replies owed before it) and close. */
void stomp_send_error(stomp_conn *c, const char *receipt, const char *msg,
                      const char *detail)
{
    sl_reply *r;
    sl_log(SL_INFO, STOMP_SUBSYS, "peer %s session %s: ERROR %s%s%s", c->peer,
           c->session, msg, detail ? ": " : "", detail ? detail : "");
    if (conn_closing(c))
        return;
    r = sl_reply_new(c->conn, 0);
    if (!r) {
        sl_conn_abort(c->conn, "out of memory");
        return;
    }
    sl_wb_reset(&c->rwb);
    encode_error(c, &c->rwb, receipt, msg, detail);
    sl_reply_add(r, c->rwb.p, c->rwb.len);
    sl_reply_close_after(r);
    /* read nothing more; close once the replies before it are out */
    sl_conn_close_after_reply(c->conn);
    sl_reply_done(r);
}

static void handle_frame_cmd(stomp_conn *c, const sl_stomp_frame *f);

/* One client frame: counted per command, and the time its parsing and
 * handling took on the loop (not what it waits for afterwards: a
 * receipt's fsync) into sluice_stomp_frame_duration_seconds. *t: when
 * its parsing started (the end of the frame before it in this read, set
 * to the end of this one: one clock read a frame). */
static void handle_frame(stomp_conn *c, const sl_stomp_frame *f, long long *t)
{
    sl_broker *b = c->s->b;
    long long t1;
    handle_frame_cmd(c, f);
    t1 = sl_fs_mono_us();
    if (f->cmd > 0 && f->cmd < SL_STOMP_CMD__END) {
        b->stomp_frames[f->cmd]++;
        sl_lat_observe(&b->stomp_lat[f->cmd], t1 - *t);
    }
    *t = t1;
}

static void handle_frame_cmd(stomp_conn *c, const sl_stomp_frame *f)
{
    char why[128];
    if (f->cmd != SL_STOMP_SEND)
        stomp_batch_flush(c);
    if (conn_closing(c))
        return;
    if (!c->connected && f->cmd != SL_STOMP_CONNECT &&
        f->cmd != SL_STOMP_STOMP) {
        snprintf(why, sizeof(why),
                 "the first frame must be CONNECT or STOMP, not %s",
                 sl_stomp_cmd_name(f->cmd));
        stomp_send_error(c, RECEIPT(f), "not connected", why);
        return;
    }
    switch (f->cmd) {
    case SL_STOMP_CONNECT:
    case SL_STOMP_STOMP:
        stomp_h_connect(c, f);
        break;
    case SL_STOMP_SEND:
        stomp_h_send(c, f);
        break;
    case SL_STOMP_SUBSCRIBE:
        stomp_h_subscribe(c, f);
        break;
    case SL_STOMP_UNSUBSCRIBE:
        stomp_h_unsubscribe(c, f);
        break;
    case SL_STOMP_ACK:
    case SL_STOMP_NACK:
        stomp_h_ack(c, f);
        break;
    case SL_STOMP_BEGIN:
        stomp_h_begin(c, f);
        break;
    case SL_STOMP_COMMIT:
        stomp_h_commit(c, f, 0);
        break;
    case SL_STOMP_ABORT:
        stomp_h_commit(c, f, 1);
        break;
    case SL_STOMP_DISCONNECT:
        stomp_h_disconnect(c, f);
        break;
    default:
        snprintf(why, sizeof(why), "%s is a server frame",
                 sl_stomp_cmd_name(f->cmd));
        stomp_send_error(c, RECEIPT(f), "invalid frame", why);
        break;
    }
}

/* ---- the connection's ops (conn.h) --------------------------------------- */

/* on_input: parse and handle frames while the connection layer lets us
 * read; coalesced SENDs are appended before anything else waits. */
static void st_input(void *state, sl_conn *conn, struct evbuffer *in)
{
    stomp_conn *c = state;
    long long t = sl_fs_mono_us();
    c->last_read = sl_now_ms();
    while (!sl_conn_closing(conn)) {
        sl_stomp_frame f;
        int rc = sl_stomp_read(&c->ps, in, &f);
        if (rc == SL_STOMP_NEED_MORE)
            break;
        if (rc == SL_STOMP_PERROR) {
            stomp_batch_flush(c);
            stomp_send_error(c, NULL, c->ps.errstr, NULL);
            break;
        }
        handle_frame(c, &f, &t);
        if (!sl_conn_reading(conn))
            break; /* paused (after this frame) or closing */
    }
    if (!conn_closing(c))
        stomp_batch_flush(c);
}

/* on_drain: room in the output (or a kick): refill credits, pump
 * readers. */
static void st_drain(void *state, sl_conn *conn)
{
    stomp_conn *c = state;
    stomp_sub *s;
    (void)conn;
    for (s = c->subs; s; s = s->next)
        stomp_sub_pump(s);
}

/* on_close: the connection is being freed; release what the session
 * holds (unacked messages return to their queues). */
static void st_close(void *state, sl_conn *conn)
{
    stomp_conn *c = state;
    stomp_srv *srv = c->s;
    stomp_sub *s, *sn;
    stomp_tx *t, *tn;
    size_t i;
    (void)conn;
    sl_log(SL_DEBUG, STOMP_SUBSYS, "peer %s session %s: closed", c->peer,
           c->session);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    for (s = c->subs; s; s = sn) {
        sn = s->next;
        stomp_sub_free(s); /* unacked messages return to their queues */
    }
    c->subs = NULL;
    for (i = 0; i < c->ntmp; i++) {
        /* at shutdown the groups are gone: the next start removes it */
        if (srv_groups(srv) && !sl_broker_stopping(srv->b)) {
            sl_qgroup_delete(srv_groups(srv), c->tmp_topics[i], NULL);
            sl_ops_topic_delete(srv->b, c->tmp_topics[i]);
        }
        free(c->tmp_topics[i]);
    }
    free(c->tmp_topics);
    for (t = c->txs; t; t = tn) {
        tn = t->next;
        stomp_tx_free(t);
    }
    sl_wait_unref(c->bb_w);
    stomp_relay_sendlinks_free(c);
    if (c->hb_ev)
        event_free(c->hb_ev);
    sl_auth_job_cancel(c->auth_job); /* its answer finds no connection */
    free(c->auth_receipt);
    free(c->relay_key);
    sl_stomp_parser_fini(&c->ps);
    sl_bb_fini(&c->bb);
    sl_wb_fini(&c->scratch);
    sl_wb_fini(&c->rwb);
    free(c);
}

/* on_open: a new session, limited until CONNECT (and login) succeeds. */
static sl_err st_open(void *arg, sl_conn *conn, void **state)
{
    stomp_srv *srv = arg;
    stomp_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return SL_ERR_NOMEM;
    c->s = srv;
    c->conn = conn;
    c->peer = sl_conn_peer(conn);
    if (srv->b->cfg.node_id)
        /* a cluster: names temp queues "stomp-tmp-N.S-NAME" (relay.c) */
        snprintf(c->session, sizeof(c->session), "%u.%" PRIu64,
                 (unsigned)srv->b->cfg.node_id, ++srv->next_session);
    else
        snprintf(c->session, sizeof(c->session), "%" PRIu64,
                 ++srv->next_session);
    c->version = SL_STOMP_V10;
    c->last_read = c->last_write = sl_now_ms();
    sl_stomp_parser_init(&c->ps, &srv->lim_prelogin);
    sl_bb_init(&c->bb, SL_CODEC_NONE);
    sl_wb_init(&c->scratch, 1024);
    sl_wb_init(&c->rwb, 128);
    sl_conn_limit_input(conn, STOMP_PRELOGIN_BYTES);
    stomp_conn_set_priority(c);
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    *state = c;
    sl_log(SL_DEBUG, STOMP_SUBSYS, "peer %s: accepted, session %s", c->peer,
           c->session);
    return SL_OK;
}

/* user and describe: the session as the admin "connections" verb shows
 * it (the layer writes id, peer, bytes and "user"). The login is the CONNECT
 * header's (checked when users are configured). */
static const char *st_user(void *state, sl_conn *conn)
{
    stomp_conn *c = state;
    (void)conn;
    return c->connected && c->login[0] ? c->login : NULL;
}

static void st_describe(void *state, sl_conn *conn, sl_jw *j)
{
    stomp_conn *c = state;
    int64_t in_flight = 0;
    (void)conn;
    sl_jw_kstr(j, "client", c->client_id[0] ? c->client_id : NULL);
    sl_jw_kstr(j, "session", c->connected ? c->session : NULL);
    sl_jw_key(j, "subscriptions");
    sl_jw_arr(j);
    for (stomp_sub *s = c->subs; s; s = s->next) {
        int64_t held = s->queue && s->qc ? (int64_t)sl_qconsumer_held(s->qc)
                                         : (int64_t)s->pq.n;
        if (s->relay && s->ack == ACK_AUTO)
            held = 0;
        if (s->ack != ACK_AUTO || s->queue)
            in_flight += held;
        sl_jw_obj(j);
        sl_jw_kstr(j, "id", s->id);
        sl_jw_kstr(j, "destination", s->dest);
        sl_jw_kstr(j, "ack",
                   s->ack == ACK_AUTO     ? "auto"
                   : s->ack == ACK_CLIENT ? "client"
                                          : "client-individual");
        if (s->queue) {
            sl_jw_kstr(j, "group", s->group);
            sl_jw_kstr(j, "topic", s->qtopic);
        }
        if (s->relay) /* served by the group's coordinator */
            sl_jw_ki64(j, "relayed_to", stomp_relay_node(s->relay));
        sl_jw_ki64(j, "in_flight", held);
        sl_jw_end(j);
    }
    sl_jw_end(j);
    sl_jw_ki64(j, "in_flight", in_flight);
}

static const sl_conn_ops stomp_ops = {
    .name = "stomp",
    .flags = SL_CONN_HANDSHAKE,
    .read_max = READ_BYTES,
    .on_open = st_open,
    .on_input = st_input,
    .on_drain = st_drain,
    .on_close = st_close,
    .user = st_user,
    .describe = st_describe,
};

/* ---- module -------------------------------------------------------------- */

typedef struct tmp_list {
    char **names;
    size_t n;
} tmp_list;

static void tmp_collect(void *arg, const char *name, int32_t partitions)
{
    tmp_list *l = arg;
    char **n;
    if (strncmp(name, "stomp-tmp-", 10) != 0)
        return;
    n = realloc(l->names, (l->n + 1) * sizeof(*n));
    if (!n)
        return;
    l->names = n;
    l->names[l->n++] = strdup(name);
}

/* Temp queues of a previous run belong to sessions that are gone (and
 * session numbers start again at 1): delete them. */
static void tmp_cleanup(stomp_srv *s)
{
    tmp_list l = {NULL, 0};
    size_t i;
    sl_ops_topic_list(s->b, tmp_collect, &l);
    for (i = 0; i < l.n; i++) {
        if (l.names[i]) {
            if (srv_groups(s))
                sl_qgroup_delete(srv_groups(s), l.names[i], NULL);
            sl_ops_topic_delete(s->b, l.names[i]);
            sl_log(SL_INFO, STOMP_SUBSYS,
                   "deleted temp queue %s of a previous run", l.names[i]);
        }
        free(l.names[i]);
    }
    free(l.names);
}

void sl_stomp_module_init(sl_broker *b)
{
    stomp_srv *s = calloc(1, sizeof(*s));
    char err[512];
    if (!s) {
        sl_broker_fail(b, "stomp: out of memory");
        return;
    }
    s->b = b;
    s->cfg = sl_broker_config(b);
    s->lim.max_frame = (size_t)s->cfg->stomp_max_frame;
    s->lim.max_headers = (uint32_t)s->cfg->stomp_max_headers;
    s->lim.max_header_len = (size_t)s->cfg->stomp_max_header_length;
    s->lim_prelogin = s->lim;
    if (s->lim_prelogin.max_frame > STOMP_PRELOGIN_BYTES)
        s->lim_prelogin.max_frame = STOMP_PRELOGIN_BYTES;
    if (stomp_users_init(s, err, sizeof(err)) != SL_OK) {
        sl_broker_fail(b, err);
        free(s);
        return;
    }
    tmp_cleanup(s);
    if (stomp_relay_init(s) != SL_OK) {
        sl_broker_fail(b, "stomp: out of memory");
        stomp_users_fini(s);
        free(s);
        return;
    }
    sl_ops_on_append(b, stomp_on_append, s);
    sl_ops_on_topic_delete(b, stomp_on_topic_delete, s);
    /* the module's state hangs on the listener's protocol entry */
    sl_conn_set_proto(b, SL_LISTENER_STOMP, &stomp_ops, s);
}

void sl_stomp_module_fini(sl_broker *b)
{
    stomp_srv *s = sl_conn_proto_arg(b, SL_LISTENER_STOMP, &stomp_ops);
    if (!s)
        return;
    /* the server freed every connection (and so every session) first */
    sl_conn_set_proto(b, SL_LISTENER_STOMP, NULL, NULL);
    stomp_relay_fini(s);
    stomp_users_fini(s);
    free(s);
}
