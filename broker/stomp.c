/*
 * stomp.c - STOMP sessions over the broker's internal operations.
 *
 * Design
 * ------
 * One stomp_conn per socket, owned by the loop. Bytes go through the pure
 * parser (stomp_frame.c); each frame is handled in arrival order:
 *
 *  - SEND appends a one-record batch (key = JMSXGroupID, value = body,
 *    headers = the frame's headers minus the protocol ones) with
 *    sl_ops_append. Consecutive SENDs to the same partition within one read
 *    are coalesced into one batch (one write(2), one CRC) before anything
 *    else is handled. A receipt for a persistent SEND is answered after
 *    sl_ops_wait_durable says the batch is fsynced.
 *  - /queue/NAME subscriptions and durable topic subscriptions are queue
 *    group consumers (groups.h): the group pushes records while the
 *    subscription has credits (its prefetch); ACK/NACK settle them there.
 *  - Plain /topic/NAME subscriptions read the partition logs from the end
 *    offset at subscribe time (sl_part_iter), woken by the append hook.
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
#include "broker/stomp_auth.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "broker/config.h"
#include "broker/conn.h"
#include "broker/ops_groups.h"
#include "broker/stomp_frame.h"
#include "groups/groups.h"
#include "groups/queue_cfg.h"
#include "protocol/batch.h"
#include "protocol/hash.h"
#include "protocol/log.h"
#include "protocol/parse.h"
#include "storage/fsutil.h"

#define SUBSYS "stomp"
#define SERVER_NAME "Sluice/0.1"
/* Bytes per read of a connection (bigger reads: more SENDs per append
 * batch, fewer callbacks). */
#define READ_BYTES (128u * 1024)
/* Before login: the largest frame, and the most input buffered. */
#define STOMP_PRELOGIN_BYTES (32u * 1024)
/* Coalesced SEND batches are cut at this size. */
#define BATCH_CUT_BYTES (256u * 1024)
/* Record header the queue groups read as a delivery delay (ms after the
 * record's timestamp); AMQ_SCHEDULED_DELAY is copied into it. */
#define HDR_DELAY_MS "delay-ms"
/* Record header the queue groups read as the message's time to live (ms
 * after its timestamp); RabbitMQ's `expiration` is copied into it. */
#define HDR_TTL_MS "ttl-ms"

enum { ACK_AUTO = 0, ACK_CLIENT = 1, ACK_INDIVIDUAL = 2 };
static const char *const ack_names[] = {"auto", "client", "client-individual"};

typedef struct stomp_srv stomp_srv;
typedef struct stomp_conn stomp_conn;
typedef struct stomp_sub stomp_sub;
typedef struct treader treader;

/* ---- waits ------------------------------------------------------------- */

/* The callback of sl_ops_wait_durable and sl_groups_wait: one held part of
 * a wait came back (conn.h). */
static void wait_cb(void *arg, sl_err err)
{
    sl_wait_release(arg, err);
}

/* ---- server and connection state ----------------------------------------- */

typedef sl_stomp_user stomp_user;

struct stomp_srv {
    sl_broker *b;
    const sl_config *cfg;
    sl_stomp_limits lim;
    stomp_user *users;
    size_t nusers;
    sl_stomp_auth *auth; /* password checks, when users are configured */
    sl_stomp_limits lim_prelogin; /* until CONNECT succeeded */
    stomp_conn *conns;        /* every STOMP session */
    treader *readers;         /* every topic reader */
    uint64_t next_session;
};

typedef struct pend {
    struct pend *next;
    treader *r; /* topic reader it came from, or NULL (queue consumer) */
    int32_t partition;
    int64_t offset;
} pend;

struct treader {
    stomp_sub *sub;
    treader *sub_next;      /* in sub->readers */
    treader *gnext, *gprev; /* in srv->readers */
    char topic[SL_TOPIC_NAME_MAX + 1];
    int32_t nparts;
    int64_t *cursor;   /* next offset per partition */
    sl_part_iter **it; /* lazily opened per partition */
};

struct stomp_sub {
    stomp_conn *c;
    stomp_sub *next;
    char *id;
    char *dest;    /* as the client wrote it */
    char *dprefix; /* "/topic/" or "/exchange/amq.topic/" for wildcards */
    int ack;       /* ACK_* */
    int64_t prefetch;
    int queue; /* 1 = queue group consumer, 0 = topic readers */
    int durable;
    int temp; /* temp queue: deleted with the connection */
    sl_qconsumer *qc;
    char *group, *qtopic;
    int64_t qcredit; /* credits last granted */
    treader *readers;
    char *pattern; /* wildcard pattern, or NULL */
    pend *ph, *pt;
    size_t npend;
};

typedef struct tx_op {
    struct tx_op *next;
    int cmd; /* SL_STOMP_SEND / ACK / NACK */
    /* SEND */
    char topic[SL_TOPIC_NAME_MAX + 1];
    int32_t partition;
    uint8_t *rec; /* flat copy: key, value, headers (see tx_add_send) */
    size_t key_len;
    int has_key;
    size_t body_len;
    sl_header *hdrs;
    size_t nhdrs;
    /* ACK / NACK */
    char *msgid, *subid;
    int requeue;
    char *receipt;
} tx_op;

typedef struct stomp_tx {
    struct stomp_tx *next;
    char *id;
    tx_op *ops, *ops_tail;
    size_t bytes;
} stomp_tx;

struct stomp_conn {
    stomp_srv *s;
    stomp_conn *next, *prev;
    sl_conn *conn;    /* the connection layer's (conn.h) */
    const char *peer; /* sl_conn_peer(conn) */
    sl_stomp_parser ps;
    int version;
    int connected;
    char session[32];
    char login[64];
    char client_id[128];
    int64_t hb_in, hb_out; /* ms; 0 = none */
    int64_t last_read, last_write;
    /* CONNECT waiting for its password check (stomp_auth.c) */
    sl_stomp_auth_job *auth_job;
    int64_t auth_cx, auth_cy;
    char *auth_receipt;
    struct event *hb_ev;
    stomp_sub *subs;
    stomp_tx *txs;
    /* the SEND batch being coalesced */
    sl_batch_builder bb;
    int bb_active;
    char bb_topic[SL_TOPIC_NAME_MAX + 1];
    int32_t bb_part;
    int bb_durable;   /* some SEND in it was persistent */
    sl_wait *bb_w; /* receipts waiting for it, or NULL */
    uint32_t rr;   /* round robin over partitions */
    sl_wb scratch;
    sl_wb rwb; /* receipts and ERRORs being encoded */
    char **tmp_topics;
    size_t ntmp;
    uint64_t tmp_seq;
};

/* The broker's queue groups (NULL before the groups module started and
 * after it stopped: then /queue and durable subscriptions are refused with
 * an ERROR). */
static sl_groups *srv_groups(stomp_srv *s)
{
    return sl_ops_groups(s->b);
}

/* ---- small helpers ------------------------------------------------------- */

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* sl_parse_i64 with the ok flag the callers here test (0 when not ok) */
static int64_t parse_i64(const char *s, int *ok)
{
    int64_t v = 0;
    *ok = sl_parse_i64(s, &v) == 0;
    return v;
}

static size_t out_len(stomp_conn *c)
{
    return sl_conn_out_len(c->conn);
}

static int out_high(stomp_conn *c)
{
    return sl_conn_out_high(c->conn);
}

static int conn_closing(stomp_conn *c)
{
    return sl_conn_closing(c->conn);
}

static void conn_write(stomp_conn *c, const void *p, size_t n)
{
    sl_conn_write(c->conn, p, n);
    c->last_write = sl_now_ms();
}

static void conn_kick(stomp_conn *c)
{
    sl_conn_kick(c->conn);
}

/* ---- destinations ---------------------------------------------------------
 *
 *   /queue/NAME, /amq/queue/NAME, /reply-queue/NAME   queue group NAME on
 *                                                     topic NAME
 *   /topic/NAME, /exchange/amq.topic/NAME              broadcast (wildcards)
 *   /exchange/amq.fanout[/KEY]                          broadcast on topic
 *                                                     "amq.fanout"
 *   /temp-queue/NAME                                    this connection's
 *                                                     queue "stomp-tmp-S-NAME"
 */
enum { DEST_QUEUE = 1, DEST_TOPIC = 2, DEST_TEMP = 3 };

typedef struct dest {
    int kind;
    char name[SL_TOPIC_NAME_MAX + 1]; /* topic (or pattern) */
    const char *prefix;               /* for wildcard deliveries */
    int wildcard;
} dest;

static int has_prefix(const char *s, const char *p, const char **rest)
{
    size_t n = strlen(p);
    if (strncmp(s, p, n) != 0)
        return 0;
    *rest = s + n;
    return 1;
}

/* Resolve a destination header. SL_OK or SL_ERR_INVALID_ARG with why. */
static sl_err dest_parse(stomp_conn *c, const char *s, dest *d, char *why,
                         size_t whylen)
{
    const char *rest = NULL;
    size_t i, n;
    memset(d, 0, sizeof(*d));
    if (!s || !*s) {
        snprintf(why, whylen, "missing destination header");
        return SL_ERR_INVALID_ARG;
    }
    if (has_prefix(s, "/queue/", &rest) ||
        has_prefix(s, "/amq/queue/", &rest) ||
        has_prefix(s, "/reply-queue/", &rest)) {
        d->kind = DEST_QUEUE;
    } else if (has_prefix(s, "/topic/", &rest)) {
        d->kind = DEST_TOPIC;
        d->prefix = "/topic/";
    } else if (has_prefix(s, "/exchange/amq.topic/", &rest)) {
        d->kind = DEST_TOPIC;
        d->prefix = "/exchange/amq.topic/";
    } else if (strcmp(s, "/exchange/amq.fanout") == 0 ||
               strncmp(s, "/exchange/amq.fanout/", 21) == 0) {
        d->kind = DEST_TOPIC;
        snprintf(d->name, sizeof(d->name), "amq.fanout");
        return SL_OK;
    } else if (has_prefix(s, "/temp-queue/", &rest)) {
        d->kind = DEST_TEMP;
        if (!*rest || strlen(rest) > 128) {
            snprintf(why, whylen, "invalid temp-queue name in '%.100s'", s);
            return SL_ERR_INVALID_ARG;
        }
        snprintf(d->name, sizeof(d->name), "stomp-tmp-%s-%s", c->session, rest);
        if (sl_topic_name_check(d->name, strlen(d->name)) != SL_OK) {
            snprintf(why, whylen,
                     "invalid temp-queue name in '%.100s' (use "
                     "[A-Za-z0-9._-])",
                     s);
            return SL_ERR_INVALID_ARG;
        }
        return SL_OK;
    } else if (strncmp(s, "/exchange/", 10) == 0) {
        snprintf(why, whylen,
                 "unsupported exchange in destination '%.100s' (supported: "
                 "/exchange/amq.topic/KEY, /exchange/amq.fanout)",
                 s);
        return SL_ERR_INVALID_ARG;
    } else {
        snprintf(why, whylen,
                 "unknown destination '%.100s' (use /queue/NAME, "
                 "/topic/NAME, /temp-queue/NAME, /exchange/amq.topic/KEY, "
                 "/exchange/amq.fanout or /amq/queue/NAME)",
                 s);
        return SL_ERR_INVALID_ARG;
    }
    n = strlen(rest);
    if (n == 0 || n > SL_TOPIC_NAME_MAX) {
        snprintf(why, whylen,
                 "invalid destination '%.100s': empty or "
                 "longer than 249 characters",
                 s);
        return SL_ERR_INVALID_ARG;
    }
    memcpy(d->name, rest, n + 1);
    if (d->kind == DEST_TOPIC) {
        for (i = 0; i < n; i++) {
            if (rest[i] == '*' || rest[i] == '#' || rest[i] == '>')
                d->wildcard = 1;
        }
        if (d->wildcard)
            return SL_OK;
    }
    if (sl_topic_name_check(d->name, n) != SL_OK) {
        snprintf(why, whylen,
                 "invalid destination '%.100s': names are 1-249 characters "
                 "of [A-Za-z0-9._-]",
                 s);
        return SL_ERR_INVALID_ARG;
    }
    return SL_OK;
}

/* Topic wildcard match, dot-separated words: '*' one word, '#' zero or
 * more words (RabbitMQ), '>' one or more words at the end (ActiveMQ). */
static int wild_match(const char *p, const char *t)
{
    if (*p == 0)
        return *t == 0;
    if (p[0] == '#' && (p[1] == 0 || p[1] == '.')) {
        const char *np = p[1] ? p + 2 : p + 1;
        if (p[1] == 0)
            return 1;
        /* zero words */
        if (wild_match(np, t))
            return 1;
        /* one or more words */
        while (*t) {
            const char *dot = strchr(t, '.');
            if (!dot)
                return 0;
            t = dot + 1;
            if (wild_match(np, t))
                return 1;
        }
        return 0;
    }
    if (p[0] == '>' && p[1] == 0)
        return *t != 0;
    if (p[0] == '*' && (p[1] == 0 || p[1] == '.')) {
        const char *dot = strchr(t, '.');
        if (*t == 0 || t[0] == '.')
            return 0;
        if (p[1] == 0)
            return dot == NULL;
        return dot && wild_match(p + 2, dot + 1);
    }
    {
        /* literal word */
        const char *pe = strchr(p, '.'), *te = strchr(t, '.');
        size_t pl = pe ? (size_t)(pe - p) : strlen(p);
        size_t tl = te ? (size_t)(te - t) : strlen(t);
        if (pl != tl || memcmp(p, t, pl) != 0)
            return 0;
        if (!pe)
            return te == NULL;
        if (!te)
            return 0;
        return wild_match(pe + 1, te + 1);
    }
}

/* ---- replies ------------------------------------------------------------ */

static void encode_error(stomp_conn *c, sl_wb *wb, const char *receipt,
                         const char *msg, const char *detail)
{
    sl_stomp_enc e;
    size_t dl;
    if (!detail || !*detail)
        detail = msg; /* the body says it too: clients show the body */
    dl = strlen(detail);
    sl_stomp_enc_begin(&e, wb, c->version, SL_STOMP_ERROR);
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
    sl_stomp_enc_begin(&e, wb, c->version, SL_STOMP_RECEIPT);
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
static void owe_receipt(stomp_conn *c, const char *receipt, sl_wait *w)
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
static void send_error(stomp_conn *c, const char *receipt, const char *msg,
                       const char *detail)
{
    sl_reply *r;
    sl_log(SL_INFO, SUBSYS, "peer %s session %s: ERROR %s%s%s", c->peer,
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

/* ---- SEND batches -------------------------------------------------------- */

/* Append the coalesced batch, if any. Receipts attached to it complete
 * when it is appended (non-persistent) or fsynced (persistent). */
static sl_err batch_flush(stomp_conn *c)
{
    const uint8_t *bp;
    size_t blen;
    int64_t base = 0, next = 0;
    sl_wait *w = c->bb_w;
    sl_err rc;
    if (!c->bb_active)
        return SL_OK;
    c->bb_active = 0;
    c->bb_w = NULL;
    rc = sl_bb_finish(&c->bb, &bp, &blen);
    if (rc == SL_OK)
        rc = sl_ops_append(c->s->b, c->bb_topic, c->bb_part, SL_OPS_AUTO_CREATE,
                           (uint8_t *)bp, blen, &base, &next);
    sl_bb_reset(&c->bb);
    if (rc != SL_OK) {
        sl_log(SL_WARN, SUBSYS, "peer %s: append to %s/%d failed: %s", c->peer,
               c->bb_topic, c->bb_part, sl_strerror(rc));
        if (w) {
            sl_wait_set_what(w, "SEND to topic %s", c->bb_topic);
            sl_wait_fail(w, rc);
            sl_wait_built(w);
            sl_wait_unref(w);
        } else {
            char d[400];
            snprintf(d, sizeof(d), "SEND to topic %s: %s", c->bb_topic,
                     sl_strerror(rc));
            send_error(c, NULL, "message not stored", d);
        }
        return rc;
    }
    if (w) {
        if (c->bb_durable) {
            sl_ops_wait *ow = NULL;
            sl_wait_hold(w);
            rc = sl_ops_wait_durable(c->s->b, c->bb_topic, c->bb_part, next,
                                     wait_cb, w, &ow);
            if (rc != SL_OK || !ow)
                sl_wait_release(w, rc); /* no callback will come */
        }
        sl_wait_built(w);  /* drop the "being built" count */
        sl_wait_unref(w);  /* batch's reference */
    }
    return SL_OK;
}

static int is_protocol_header(const char *n)
{
    static const char *const skip[] = {
        "destination", "receipt",      "transaction", "content-length",
        "message-id",  "subscription", "ack",         "redelivered",
        NULL};
    size_t i;
    for (i = 0; skip[i]; i++) {
        if (strcmp(n, skip[i]) == 0)
            return 1;
    }
    return 0;
}

/* The record headers of a SEND: every header but the protocol ones, first
 * occurrence only. *out is malloc'd (caller frees); values borrow from f,
 * except reply-to and the scheduled-delay translation, which use bufs. */
static sl_err send_headers(stomp_conn *c, const sl_stomp_frame *f,
                           const char *reply_to, char *nb_buf, size_t nbl,
                           sl_header **out, size_t *nout)
{
    sl_header *h = calloc(f->header_count + 2, sizeof(*h));
    size_t n = 0;
    uint32_t i, j;
    if (!h)
        return SL_ERR_NOMEM;
    for (i = 0; i < f->header_count; i++) {
        const sl_stomp_header *sh = &f->headers[i];
        int dup = 0;
        if (is_protocol_header(sh->name))
            continue;
        for (j = 0; j < i; j++) {
            if (f->headers[j].name_len == sh->name_len &&
                memcmp(f->headers[j].name, sh->name, sh->name_len) == 0)
                dup = 1;
        }
        if (dup)
            continue; /* repeated header: the first counts */
        h[n].key = sh->name;
        h[n].key_len = sh->name_len;
        if (reply_to && strcmp(sh->name, "reply-to") == 0) {
            h[n].value = reply_to;
            h[n].value_len = strlen(reply_to);
        } else {
            h[n].value = sh->value;
            h[n].value_len = sh->value_len;
        }
        if (strcmp(sh->name, "AMQ_SCHEDULED_DELAY") == 0 &&
            !sl_stomp_frame_get(f, HDR_DELAY_MS)) {
            int ok;
            int64_t d = parse_i64(sh->value, &ok);
            if (ok && d > 0) {
                int l = snprintf(nb_buf, nbl, "%" PRId64, d);
                n++;
                h[n].key = HDR_DELAY_MS;
                h[n].key_len = strlen(HDR_DELAY_MS);
                h[n].value = nb_buf;
                h[n].value_len = (size_t)l;
            }
        }
        /* RabbitMQ's per-message TTL (ms from now) */
        if (strcmp(sh->name, "expiration") == 0 &&
            !sl_stomp_frame_get(f, HDR_TTL_MS)) {
            int ok;
            int64_t t = parse_i64(sh->value, &ok);
            if (ok && t >= 0) {
                n++;
                h[n].key = HDR_TTL_MS;
                h[n].key_len = strlen(HDR_TTL_MS);
                h[n].value = sh->value;
                h[n].value_len = sh->value_len;
            }
        }
        n++;
    }
    *out = h;
    *nout = n;
    return SL_OK;
}

/* ---- subscriptions: delivery --------------------------------------------- */

static int sub_can_deliver(stomp_sub *s)
{
    stomp_conn *c = s->c;
    if (conn_closing(c) || out_high(c))
        return 0;
    if (s->ack != ACK_AUTO && (int64_t)s->npend >= s->prefetch)
        return 0;
    return 1;
}

static const char *rec_header(const sl_record *rec, const char *name, char *buf,
                              size_t bl)
{
    sl_header h;
    if (sl_record_header_find(rec, name, &h) != SL_OK || !h.value)
        return NULL;
    if (h.value_len >= bl)
        return NULL;
    memcpy(buf, h.value, h.value_len);
    buf[h.value_len] = 0;
    return buf;
}

static int printable(const uint8_t *p, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f)
            return 0;
    }
    return 1;
}

/* Write one MESSAGE frame for rec on subscription s. */
/* 0 = sent; -1 = not sent: the MESSAGE would exceed stomp-max-frame (a
 * record stored through the binary protocol may be larger than any STOMP
 * frame; the caller dead-letters or skips it, and it is logged here). */
static int deliver(stomp_sub *s, const char *topic, int32_t partition,
                   const sl_record *rec, uint32_t attempts, uint32_t failures)
{
    stomp_conn *c = s->c;
    sl_wb *wb = &c->scratch;
    sl_stomp_enc e;
    char mid[SL_TOPIC_NAME_MAX + 48], dst[SL_TOPIC_NAME_MAX + 32];
    const char *dname = s->dest;
    size_t blen = rec->value_len > 0 ? (size_t)rec->value_len : 0;

    {
        /* "topic/partition/offset" without snprintf: once per MESSAGE */
        size_t tl = strlen(topic), n;
        if (tl > SL_TOPIC_NAME_MAX)
            tl = SL_TOPIC_NAME_MAX;
        memcpy(mid, topic, tl);
        n = tl;
        mid[n++] = '/';
        n += sl_u64_dec(mid + n, (uint64_t)(partition < 0 ? 0 : partition));
        mid[n++] = '/';
        sl_u64_dec(mid + n, (uint64_t)(rec->offset < 0 ? 0 : rec->offset));
    }
    if (s->pattern) {
        snprintf(dst, sizeof(dst), "%s%s", s->dprefix, topic);
        dname = dst;
    }
    sl_wb_reset(wb);
    sl_stomp_enc_begin(&e, wb, c->version, SL_STOMP_MESSAGE);
    sl_stomp_enc_header_s(&e, "subscription", s->id);
    sl_stomp_enc_header_s(&e, "message-id", mid);
    sl_stomp_enc_header_s(&e, "destination", dname);
    if (c->version >= SL_STOMP_V12 && s->ack != ACK_AUTO) {
        /* "message-id#subscription-id" (see msgid_parse) */
        char ackv[sizeof(mid) + 128], *av = ackv;
        size_t need = strlen(mid) + strlen(s->id) + 2;
        if (need > sizeof(ackv) && !(av = malloc(need)))
            av = mid; /* then pend_find searches every subscription */
        else {
            size_t ml = strlen(mid);
            memcpy(av, mid, ml);
            av[ml] = '#';
            memcpy(av + ml + 1, s->id, need - ml - 1); /* with its NUL */
        }
        sl_stomp_enc_header_s(&e, "ack", av);
        if (av != ackv && av != mid)
            free(av);
    }
    sl_stomp_enc_header_s(&e, "redelivered", attempts > 1 ? "true" : "false");
    sl_stomp_enc_header_u(&e, "x-delivery-count", attempts ? attempts - 1 : 0);
    sl_stomp_enc_header_u(&e, "sluice-attempts", attempts);
    sl_stomp_enc_header_u(&e, "sluice-failures", failures);
    sl_header_iter hi;
    sl_header h;
    sl_record_headers_begin(rec, &hi);
    while (sl_record_headers_next(&hi, &h) == SL_OK) {
        if (h.key_len == 0)
            continue;
        /* the protocol's own headers above win over stored ones */
        if ((h.key_len == 12 && memcmp(h.key, "subscription", 12) == 0) ||
            (h.key_len == 10 && memcmp(h.key, "message-id", 10) == 0) ||
            (h.key_len == 11 && memcmp(h.key, "destination", 11) == 0) ||
            (h.key_len == 3 && memcmp(h.key, "ack", 3) == 0) ||
            (h.key_len == 11 && memcmp(h.key, "redelivered", 11) == 0) ||
            (h.key_len == 14 && memcmp(h.key, "content-length", 14) == 0) ||
            (h.key_len == 16 && memcmp(h.key, "x-delivery-count", 16) == 0))
            continue;
        sl_stomp_enc_header(&e, h.key, h.key_len,
                            h.value ? (const char *)h.value : "",
                            h.value ? h.value_len : 0);
    }
    if (rec->key && rec->key_len > 0 && rec->key_len < 1024 &&
        printable(rec->key, rec->key_len)) {
        sl_header gh;
        if (sl_record_header_find(rec, "JMSXGroupID", &gh) != SL_OK)
            sl_stomp_enc_header(&e, "sluice-key", 10, (const char *)rec->key,
                                (size_t)rec->key_len);
    }
    sl_stomp_enc_header_u(&e, "timestamp", (uint64_t)rec->timestamp);
    sl_stomp_enc_header_u(&e, "content-length", blen);
    if (blen + wb->len + 1 > c->s->lim.max_frame) {
        sl_log(SL_WARN, SUBSYS,
               "%s/%d offset %" PRId64 ": a MESSAGE of %zu bytes would "
               "exceed stomp-max-frame (%zu); not sent to subscription %s",
               topic, (int)partition, rec->offset, blen + wb->len + 1,
               c->s->lim.max_frame, s->id);
        sl_wb_reset(wb);
        return -1;
    }
    sl_stomp_enc_end(&e, rec->value, blen);
    conn_write(c, wb->p, wb->len);
    return 0;
}

static void pend_add(stomp_sub *s, treader *r, int32_t partition,
                     int64_t offset)
{
    pend *p = malloc(sizeof(*p));
    if (!p)
        return; /* the ack will not resolve; lock expiry returns it */
    p->next = NULL;
    p->r = r;
    p->partition = partition;
    p->offset = offset;
    if (s->pt)
        s->pt->next = p;
    else
        s->ph = p;
    s->pt = p;
    s->npend++;
}

/* expires (ms since the epoch, ActiveMQ) or ttl-ms (after the record's
 * timestamp) already passed? */
static int rec_expired(const sl_record *rec)
{
    char b[32];
    int ok;
    int64_t v;
    if (rec_header(rec, "expires", b, sizeof(b))) {
        v = parse_i64(b, &ok);
        if (ok && v > 0 && v <= sl_now_ms())
            return 1;
    }
    if (rec_header(rec, HDR_TTL_MS, b, sizeof(b))) {
        v = parse_i64(b, &ok);
        if (ok && v >= 0 && rec->timestamp + v <= sl_now_ms())
            return 1;
    }
    return 0;
}

/* Queue consumer push callback. */
static void qc_deliver(void *arg, const sl_qdelivery *d)
{
    stomp_sub *s = arg;
    if (s->qcredit > 0)
        s->qcredit--;
    /* expiry (expires, ttl-ms, the group's and the topic's TTL) was
     * checked by the group as it handed the record out, and dealt with
     * as the group says (dlq_expired) */
    if (deliver(s, d->topic, d->partition, d->rec, d->attempts,
                d->failures) != 0)
        sl_qconsumer_reject(s->qc, d->partition, d->offset, d->offset,
                            "larger than stomp-max-frame", NULL);
    else if (s->ack == ACK_AUTO)
        sl_qconsumer_ack(s->qc, d->partition, d->offset, d->offset, NULL);
    else
        pend_add(s, NULL, d->partition, d->offset);
    if (out_high(s->c)) {
        sl_qconsumer_set_credit(s->qc, 0);
        s->qcredit = 0;
    }
}

static void qc_flush(void *arg)
{
    stomp_sub *s = arg;
    conn_kick(s->c); /* refill outside the callback */
}

/* Give a queue subscription the credits it may use now. Not from inside
 * its callbacks. */
static void sub_refill(stomp_sub *s)
{
    int64_t want;
    if (!s->qc)
        return;
    if (conn_closing(s->c) || out_high(s->c))
        want = 0;
    else if (s->ack == ACK_AUTO)
        want = s->prefetch;
    else
        want = s->prefetch - (int64_t)s->npend;
    if (want < 0)
        want = 0;
    if (want != s->qcredit) {
        s->qcredit = want;
        sl_qconsumer_set_credit(s->qc, want);
    }
}

/* Deliver what a topic reader can, from its cursors. */
static void reader_pump(treader *r)
{
    stomp_sub *s = r->sub;
    stomp_srv *srv = s->c->s;
    int32_t p;
    for (p = 0; p < r->nparts; p++) {
        while (sub_can_deliver(s)) {
            sl_record rec;
            sl_err err = SL_OK;
            if (!r->it[p]) {
                sl_part *part;
                if (sl_ops_part(srv->b, r->topic, p, SL_OPS_NO_CREATE, &part) !=
                    SL_OK)
                    break;
                if (r->cursor[p] < sl_part_start_offset(part))
                    r->cursor[p] = sl_part_start_offset(part);
                if (sl_part_iter_new(part, r->cursor[p], &r->it[p]) != SL_OK)
                    break;
            }
            if (sl_part_iter_next(r->it[p], &rec, &err) != 1) {
                if (err != SL_OK) {
                    sl_log(SL_WARN, SUBSYS,
                           "topic %s partition %d offset %" PRId64
                           ": read failed: %s",
                           r->topic, p, r->cursor[p], sl_strerror(err));
                    sl_part_iter_free(r->it[p]);
                    r->it[p] = NULL;
                }
                break;
            }
            if (rec.offset < r->cursor[p])
                continue;
            r->cursor[p] = rec.offset + 1;
            if (rec_expired(&rec))
                continue;
            if (deliver(s, r->topic, p, &rec, 1, 0) == 0 &&
                s->ack != ACK_AUTO)
                pend_add(s, r, p, rec.offset);
        }
    }
}

static void reader_free(stomp_srv *srv, treader *r)
{
    int32_t p;
    if (r->gprev)
        r->gprev->gnext = r->gnext;
    else
        srv->readers = r->gnext;
    if (r->gnext)
        r->gnext->gprev = r->gprev;
    for (p = 0; p < r->nparts; p++)
        sl_part_iter_free(r->it[p]);
    free(r->it);
    free(r->cursor);
    free(r);
}

/* A reader of topic for s, starting at the log end (from_start = 0) or at
 * the log start (a topic that appeared after the subscription). */
static sl_err reader_new(stomp_sub *s, const char *topic, int from_start)
{
    stomp_srv *srv = s->c->s;
    treader *r;
    int32_t np = 0, p;
    sl_err rc = sl_ops_topic_get(srv->b, topic, SL_OPS_NO_CREATE, &np);
    if (rc != SL_OK)
        return rc;
    r = calloc(1, sizeof(*r));
    if (!r)
        return SL_ERR_NOMEM;
    snprintf(r->topic, sizeof(r->topic), "%s", topic);
    r->sub = s;
    r->nparts = np;
    r->cursor = calloc((size_t)np, sizeof(*r->cursor));
    r->it = calloc((size_t)np, sizeof(*r->it));
    if (!r->cursor || !r->it) {
        free(r->cursor);
        free(r->it);
        free(r);
        return SL_ERR_NOMEM;
    }
    for (p = 0; p < np; p++) {
        int64_t off = 0;
        if (sl_ops_list_offset(srv->b, topic, p,
                               from_start ? SL_OFFSET_EARLIEST
                                          : SL_OFFSET_LATEST,
                               &off) == SL_OK)
            r->cursor[p] = off;
    }
    r->sub_next = s->readers;
    s->readers = r;
    r->gnext = srv->readers;
    if (srv->readers)
        srv->readers->gprev = r;
    srv->readers = r;
    return SL_OK;
}

static treader *sub_reader_for(stomp_sub *s, const char *topic)
{
    treader *r;
    for (r = s->readers; r; r = r->sub_next) {
        if (strcmp(r->topic, topic) == 0)
            return r;
    }
    return NULL;
}

static void sub_pump(stomp_sub *s)
{
    treader *r;
    if (s->qc)
        sub_refill(s);
    for (r = s->readers; r; r = r->sub_next)
        reader_pump(r);
}

typedef struct wild_ctx {
    stomp_sub *s;
} wild_ctx;

/* A temp queue ("stomp-tmp-S-NAME") is its connection's alone, as in
 * RabbitMQ (exclusive) and ActiveMQ: others may SEND to it (reply-to) but
 * not read it, not even through a wildcard. */
static int tmp_foreign(const stomp_conn *c, const char *topic)
{
    size_t n = strlen(c->session);
    if (strncmp(topic, "stomp-tmp-", 10) != 0)
        return 0;
    return strncmp(topic + 10, c->session, n) != 0 || topic[10 + n] != '-';
}

static void wild_each(void *arg, const char *name, int32_t partitions)
{
    wild_ctx *w = arg;
    if (wild_match(w->s->pattern, name) && !tmp_foreign(w->s->c, name) &&
        !sub_reader_for(w->s, name))
        reader_new(w->s, name, 0);
}

/* The append hook: wake topic readers of this topic (and let wildcard
 * subscriptions discover topics created after they subscribed). */
static void on_append(void *arg, const char *topic, int32_t partition,
                      int64_t end_offset)
{
    stomp_srv *srv = arg;
    treader *r, *next;
    stomp_conn *c;
    for (c = srv->conns; c; c = c->next) {
        stomp_sub *s;
        if (conn_closing(c))
            continue;
        for (s = c->subs; s; s = s->next) {
            if (s->pattern && wild_match(s->pattern, topic) &&
                !tmp_foreign(c, topic) && !sub_reader_for(s, topic))
                reader_new(s, topic, 1);
        }
    }
    for (r = srv->readers; r; r = next) {
        next = r->gnext;
        if (strcmp(r->topic, topic) == 0 && partition < r->nparts)
            reader_pump(r);
    }
}

static void on_topic_delete(void *arg, const char *topic)
{
    stomp_srv *srv = arg;
    treader *r;
    for (r = srv->readers; r; r = r->gnext) {
        int32_t p;
        if (strcmp(r->topic, topic) != 0)
            continue;
        for (p = 0; p < r->nparts; p++) {
            sl_part_iter_free(r->it[p]);
            r->it[p] = NULL;
        }
        r->nparts = 0; /* dead: nothing more to read */
    }
}

/* ---- subscriptions: lifecycle -------------------------------------------- */

static stomp_sub *sub_find(stomp_conn *c, const char *id)
{
    stomp_sub *s;
    for (s = c->subs; s; s = s->next) {
        if (strcmp(s->id, id) == 0)
            return s;
    }
    return NULL;
}

/* Free s (already unlinked): release what it holds. */
static void sub_free(stomp_sub *s)
{
    stomp_srv *srv = s->c->s;
    pend *p, *pn;
    treader *r, *rn;
    /* releases unacked records; at shutdown the groups module may have
     * gone first and freed its consumers itself */
    if (s->qc && srv_groups(srv))
        sl_qconsumer_free(s->qc);
    for (r = s->readers; r; r = rn) {
        rn = r->sub_next;
        reader_free(srv, r);
    }
    for (p = s->ph; p; p = pn) {
        pn = p->next;
        free(p);
    }
    free(s->id);
    free(s->dest);
    free(s->dprefix);
    free(s->group);
    free(s->qtopic);
    free(s->pattern);
    free(s);
}

/* A connection without a subscription is a producer: the connection layer
 * may pace it (SL_PRI_INGRESS) when it streams. */
static void conn_set_priority(stomp_conn *c)
{
    sl_conn_set_pace(c->conn, c->subs == NULL);
}

static void sub_link(stomp_conn *c, stomp_sub *s)
{
    s->next = c->subs;
    c->subs = s;
    conn_set_priority(c);
}

static void sub_unlink(stomp_conn *c, stomp_sub *s)
{
    stomp_sub **pp;
    for (pp = &c->subs; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            conn_set_priority(c);
            return;
        }
    }
}

/* Group names follow topic-name rules: replace anything else by '_'. */
static void sanitize_name(char *s)
{
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
            *s = '_';
    }
}

/* A queue consumer on group/topic for s; declares the group when new. */
/* Does the described group already cover topic? */
static int info_has_topic(const sl_group_info *info, const char *topic)
{
    size_t i;
    for (i = 0; info && i < info->nparts; i++) {
        if (strcmp(info->parts[i].topic, topic) == 0)
            return 1;
    }
    return 0;
}

/* Queue settings a SUBSCRIBE may carry when it creates the queue
 * (RabbitMQ's queue arguments): x-message-ttl, x-delivery-limit. */
static sl_err sub_queue_args(const sl_stomp_frame *f, sl_qgroup_cfg *cfg,
                             char *why, size_t whylen)
{
    const char *ttl = f ? sl_stomp_frame_value(f, "x-message-ttl") : NULL;
    const char *lim = f ? sl_stomp_frame_value(f, "x-delivery-limit") : NULL;
    int ok;
    int64_t v;
    if (ttl) {
        v = parse_i64(ttl, &ok);
        if (!ok || v < 0 ||
            sl_qgroup_cfg_set_int(cfg, "ttl-ms", v, NULL, 0) != SL_OK) {
            snprintf(why, whylen, "x-message-ttl must be ms >= 0, not '%.40s'",
                     ttl);
            return SL_ERR_INVALID_ARG;
        }
    }
    if (lim) {
        /* RabbitMQ counts redeliveries; the group counts deliveries: the
         * bounds are the queue groups' own, one less */
        int64_t lo = 1, hi = 1;
        sl_qgroup_cfg_bounds("max-deliveries", &lo, &hi);
        v = parse_i64(lim, &ok);
        if (!ok || v < lo - 1 || v > hi - 1 ||
            sl_qgroup_cfg_set_int(cfg, "max-deliveries", v + 1, NULL, 0) !=
                SL_OK) {
            snprintf(why, whylen,
                     "x-delivery-limit must be %lld..%lld, not '%.40s'",
                     (long long)(lo - 1), (long long)(hi - 1), lim);
            return SL_ERR_INVALID_ARG;
        }
    }
    return SL_OK;
}

static sl_err sub_open_queue(stomp_sub *s, const char *group, const char *topic,
                             int start_latest, const sl_stomp_frame *f,
                             char *why, size_t whylen)
{
    stomp_conn *c = s->c;
    sl_groups *g = srv_groups(c->s);
    sl_group_info *info = NULL;
    sl_qconsumer_cb cb;
    char name[128];
    sl_err rc;
    if (!g) {
        snprintf(why, whylen, "queue groups are not available");
        return SL_ERR_UNKNOWN;
    }
    if (sl_groups_describe(g, group, &info) != SL_OK ||
        !info_has_topic(info, topic)) {
        sl_qgroup_cfg cfg;
        sl_groups_qgroup_defaults(g, &cfg);
        cfg.key_ordered = c->s->cfg->stomp_key_ordered ? 1 : 0;
        cfg.start_latest = start_latest;
        rc = sub_queue_args(f, &cfg, why, whylen);
        if (rc != SL_OK) {
            sl_group_info_free(info);
            return rc;
        }
        rc = sl_qgroup_declare(g, group, topic, &cfg);
        if (rc != SL_OK) {
            snprintf(why, whylen, "cannot create queue group %s on %s: %s",
                     group, topic, sl_strerror(rc));
            sl_group_info_free(info);
            return rc;
        }
    }
    sl_group_info_free(info);
    cb.deliver = qc_deliver;
    cb.flush = qc_flush;
    cb.arg = s;
    snprintf(name, sizeof(name), "stomp %s %s", c->peer, s->id);
    rc = sl_qconsumer_new(g, group, topic, c->s->cfg->stomp_lock_ms, name, &cb,
                          &s->qc);
    if (rc != SL_OK) {
        snprintf(why, whylen, "cannot consume queue group %s on %s: %s", group,
                 topic, sl_strerror(rc));
        return rc;
    }
    s->group = strdup(group);
    s->qtopic = strdup(topic);
    s->queue = 1;
    return SL_OK;
}

/* Register a temp queue topic for deletion with the connection. */
static void tmp_remember(stomp_conn *c, const char *topic)
{
    size_t i;
    char **n;
    for (i = 0; i < c->ntmp; i++) {
        if (strcmp(c->tmp_topics[i], topic) == 0)
            return;
    }
    n = realloc(c->tmp_topics, (c->ntmp + 1) * sizeof(*n));
    if (!n)
        return;
    c->tmp_topics = n;
    c->tmp_topics[c->ntmp++] = strdup(topic);
}

/* Create subscription id on dest. On failure why says it. */
/* The topic of a destination, created if missing. A temp queue's topic
 * is created with flush=never: it lives as long as its connection (and
 * is deleted at the next start after a crash), so neither its messages
 * nor its creation are fsynced, as RabbitMQ's exclusive reply queues are
 * not durable. */
static sl_err dest_topic(stomp_conn *c, const dest *d, int32_t *np)
{
    static const char *const k[] = {"flush"}, *const v[] = {"never"};
    char err[256];
    sl_err rc;
    if (d->kind != DEST_TEMP)
        return sl_ops_topic_get(c->s->b, d->name, SL_OPS_AUTO_CREATE, np);
    rc = sl_ops_topic_get(c->s->b, d->name, SL_OPS_NO_CREATE, np);
    if (rc != SL_ERR_UNKNOWN_TOPIC)
        return rc;
    rc = sl_ops_topic_create(c->s->b, d->name, 1, k, v, 1, err, sizeof(err));
    if (rc != SL_OK && rc != SL_ERR_TOPIC_EXISTS)
        return rc;
    return sl_ops_topic_get(c->s->b, d->name, SL_OPS_NO_CREATE, np);
}

static sl_err sub_create(stomp_conn *c, const char *id, const char *dstr,
                         const dest *d, int ack, int64_t prefetch,
                         const char *durable_name, const sl_stomp_frame *f,
                         char *why, size_t whylen, stomp_sub **out)
{
    stomp_sub *s = calloc(1, sizeof(*s));
    sl_err rc = SL_OK;
    int32_t np;
    if (!s)
        return SL_ERR_NOMEM;
    s->c = c;
    s->id = strdup(id);
    s->dest = strdup(dstr);
    s->ack = ack;
    s->prefetch = prefetch;
    if (d->kind == DEST_QUEUE || d->kind == DEST_TEMP) {
        rc = dest_topic(c, d, &np);
        if (rc != SL_OK) {
            snprintf(why, whylen, "destination %s: %s", dstr, sl_strerror(rc));
            goto out;
        }
        if (d->kind == DEST_TEMP) {
            tmp_remember(c, d->name);
            s->temp = 1;
        }
        rc = sub_open_queue(s, d->name, d->name, 0, f, why, whylen);
    } else if (durable_name) {
        char group[SL_TOPIC_NAME_MAX + 1];
        if (d->wildcard) {
            snprintf(why, whylen,
                     "durable subscriptions to wildcard destinations are "
                     "not supported ('%s')",
                     dstr);
            rc = SL_ERR_INVALID_ARG;
            goto out;
        }
        rc = sl_ops_topic_get(c->s->b, d->name, SL_OPS_AUTO_CREATE, &np);
        if (rc != SL_OK) {
            snprintf(why, whylen, "destination %s: %s", dstr, sl_strerror(rc));
            goto out;
        }
        snprintf(group, sizeof(group), "%s", durable_name);
        sanitize_name(group);
        s->durable = 1;
        rc = sub_open_queue(s, group, d->name, 1, f, why, whylen);
    } else if (d->wildcard) {
        wild_ctx w;
        s->pattern = strdup(d->name);
        s->dprefix = strdup(d->prefix ? d->prefix : "/topic/");
        w.s = s;
        sl_ops_topic_list(c->s->b, wild_each, &w);
    } else {
        rc = sl_ops_topic_get(c->s->b, d->name, SL_OPS_AUTO_CREATE, &np);
        if (rc == SL_OK)
            rc = reader_new(s, d->name, 0);
        if (rc != SL_OK)
            snprintf(why, whylen, "destination %s: %s", dstr, sl_strerror(rc));
    }
out:
    if (rc != SL_OK) {
        sub_free(s);
        return rc;
    }
    *out = s;
    return SL_OK;
}

/* ---- ACK / NACK ---------------------------------------------------------- */

/* "topic/partition/offset", as message-id; the 1.2 ack header adds
 * "#subscription-id" (*sub, else NULL), since one connection may hold the
 * same record in two subscriptions (a queue and a durable topic
 * subscription over the same topic, overlapping wildcards). */
static int msgid_parse(const char *id, char *topic, size_t tl, int32_t *part,
                       int64_t *off, const char **sub)
{
    const char *a = strchr(id, '/'), *b2, *hash;
    int ok1, ok2;
    char pb[16], ob[24];
    if (!a || (size_t)(a - id) >= tl || a == id)
        return -1;
    b2 = strchr(a + 1, '/');
    if (!b2 || (size_t)(b2 - a - 1) >= sizeof(pb))
        return -1;
    memcpy(topic, id, (size_t)(a - id));
    topic[a - id] = 0;
    memcpy(pb, a + 1, (size_t)(b2 - a - 1));
    pb[b2 - a - 1] = 0;
    *part = (int32_t)parse_i64(pb, &ok1);
    hash = strchr(b2 + 1, '#');
    *sub = hash ? hash + 1 : NULL;
    if (hash) {
        if ((size_t)(hash - b2 - 1) >= sizeof(ob))
            return -1;
        memcpy(ob, b2 + 1, (size_t)(hash - b2 - 1));
        ob[hash - b2 - 1] = 0;
        *off = parse_i64(ob, &ok2);
    } else {
        *off = parse_i64(b2 + 1, &ok2);
    }
    return ok1 && ok2 ? 0 : -1;
}

static const char *pend_topic(stomp_sub *s, pend *p)
{
    return p->r ? p->r->topic : s->qtopic;
}

/* The subscription and entry holding msgid. An ack id names its
 * subscription, and only that one is searched; for a message-id, hint
 * (subscription id, may be NULL or wrong, as 1.1 clients send) is tried
 * first, then every subscription. */
static stomp_sub *pend_find(stomp_conn *c, const char *msgid, const char *hint,
                            pend **prev_out, pend **ent_out)
{
    char topic[SL_TOPIC_NAME_MAX + 1];
    int32_t part;
    int64_t off;
    stomp_sub *s, *order[2] = {NULL, NULL};
    const char *exact;
    int k;
    if (msgid_parse(msgid, topic, sizeof(topic), &part, &off, &exact) != 0)
        return NULL;
    if (exact)
        hint = exact;
    if (hint)
        order[0] = sub_find(c, hint);
    for (k = 0; k < (exact ? 1 : 2); k++) {
        for (s = k == 0 ? order[0] : c->subs; s; s = k == 0 ? NULL : s->next) {
            pend *p, *prev = NULL;
            for (p = s->ph; p; prev = p, p = p->next) {
                if (p->partition == part && p->offset == off &&
                    strcmp(pend_topic(s, p), topic) == 0) {
                    *prev_out = prev;
                    *ent_out = p;
                    return s;
                }
            }
        }
    }
    return NULL;
}

static void pend_settle(stomp_sub *s, pend *p, int cmd, int requeue)
{
    if (!s->qc || p->r)
        return; /* topic subscription: nothing to settle */
    if (cmd == SL_STOMP_ACK)
        sl_qconsumer_ack(s->qc, p->partition, p->offset, p->offset, NULL);
    else if (requeue)
        sl_qconsumer_release(s->qc, p->partition, p->offset, p->offset, -1, 1,
                             NULL);
    else
        sl_qconsumer_reject(s->qc, p->partition, p->offset, p->offset,
                            "rejected by a STOMP NACK with requeue:false",
                            NULL);
}

/* Settle msgid (and, in client mode, every earlier delivery of its
 * subscription). SL_OK or SL_ERR_NOT_FOUND. *settled_queue = 1 when group
 * state changed (the receipt then waits for its commit). */
static sl_err do_ack(stomp_conn *c, int cmd, const char *msgid,
                     const char *hint, int requeue, int *settled_queue)
{
    pend *prev, *ent, *p;
    stomp_sub *s = pend_find(c, msgid, hint, &prev, &ent);
    if (!s)
        return SL_ERR_NOT_FOUND;
    if (s->ack == ACK_CLIENT) {
        /* cumulative: everything up to and including ent */
        pend *stop = ent->next;
        p = s->ph;
        while (p != stop) {
            pend *n = p->next;
            pend_settle(s, p, cmd, requeue);
            free(p);
            s->npend--;
            p = n;
        }
        s->ph = stop;
        if (!stop)
            s->pt = NULL;
    } else {
        pend_settle(s, ent, cmd, requeue);
        if (prev)
            prev->next = ent->next;
        else
            s->ph = ent->next;
        if (s->pt == ent)
            s->pt = prev;
        s->npend--;
        free(ent);
    }
    if (s->qc)
        *settled_queue = 1;
    /* room for more deliveries: granted once per loop iteration (work_cb),
     * not once per ACK, so a burst of ACKs costs one delivery pass */
    conn_kick(c);
    return SL_OK;
}

/* ---- transactions -------------------------------------------------------- */

static stomp_tx *tx_find(stomp_conn *c, const char *id)
{
    stomp_tx *t;
    for (t = c->txs; t; t = t->next) {
        if (strcmp(t->id, id) == 0)
            return t;
    }
    return NULL;
}

static void tx_op_free(tx_op *o)
{
    free(o->rec);
    free(o->hdrs);
    free(o->msgid);
    free(o->subid);
    free(o->receipt);
    free(o);
}

static void tx_free(stomp_tx *t)
{
    tx_op *o, *n;
    for (o = t->ops; o; o = n) {
        n = o->next;
        tx_op_free(o);
    }
    free(t->id);
    free(t);
}

static void tx_unlink(stomp_conn *c, stomp_tx *t)
{
    stomp_tx **pp;
    for (pp = &c->txs; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            return;
        }
    }
}

static void tx_push(stomp_tx *t, tx_op *o)
{
    if (t->ops_tail)
        t->ops_tail->next = o;
    else
        t->ops = o;
    t->ops_tail = o;
}

/* Copy a SEND into the transaction (one flat allocation for key, body and
 * header strings). */
static sl_err tx_add_send(stomp_tx *t, const char *topic, int32_t part,
                          const char *key, const sl_stomp_frame *f,
                          const sl_header *h, size_t nh, const char *receipt)
{
    tx_op *o = calloc(1, sizeof(*o));
    size_t total = 0, i, kl = key ? strlen(key) : 0;
    uint8_t *w;
    if (!o)
        return SL_ERR_NOMEM;
    for (i = 0; i < nh; i++)
        total += h[i].key_len + h[i].value_len;
    total += kl + f->body_len + 1;
    o->rec = malloc(total);
    o->hdrs = calloc(nh ? nh : 1, sizeof(*o->hdrs));
    if (!o->rec || !o->hdrs) {
        tx_op_free(o);
        return SL_ERR_NOMEM;
    }
    o->cmd = SL_STOMP_SEND;
    snprintf(o->topic, sizeof(o->topic), "%s", topic);
    o->partition = part;
    w = o->rec;
    o->has_key = key != NULL;
    o->key_len = kl;
    memcpy(w, key ? key : "", kl);
    w += kl;
    o->body_len = f->body_len;
    if (f->body_len)
        memcpy(w, f->body, f->body_len);
    w += f->body_len;
    for (i = 0; i < nh; i++) {
        memcpy(w, h[i].key, h[i].key_len);
        o->hdrs[i].key = (const char *)w;
        o->hdrs[i].key_len = h[i].key_len;
        w += h[i].key_len;
        memcpy(w, h[i].value, h[i].value_len);
        o->hdrs[i].value = w;
        o->hdrs[i].value_len = h[i].value_len;
        w += h[i].value_len;
    }
    o->nhdrs = nh;
    o->receipt = xstrdup(receipt);
    tx_push(t, o);
    t->bytes += total + nh * sizeof(sl_header);
    return SL_OK;
}

/* ---- frame handlers ------------------------------------------------------ */

#define RECEIPT(f) sl_stomp_frame_value((f), "receipt")

static int hb_parse(const char *v, int64_t *a, int64_t *b)
{
    char *end;
    long long x, y;
    if (!v)
        return 0;
    errno = 0;
    x = strtoll(v, &end, 10);
    if (errno || end == v || *end != ',' || x < 0)
        return -1;
    v = end + 1;
    y = strtoll(v, &end, 10);
    if (errno || end == v || *end != 0 || y < 0)
        return -1;
    *a = x;
    *b = y;
    return 0;
}

static void hb_cb(evutil_socket_t fd, short what, void *arg);

static const stomp_user *user_find(stomp_srv *s, const char *login)
{
    size_t i;
    for (i = 0; i < s->nusers; i++) {
        if (strcmp(s->users[i].login, login) == 0)
            return &s->users[i];
    }
    return NULL;
}

static void auth_done(void *arg, int ok);
static void connect_finish(stomp_conn *c, int64_t cx, int64_t cy,
                           const char *receipt);

static void h_connect(stomp_conn *c, const sl_stomp_frame *f)
{
    const char *av = sl_stomp_frame_value(f, "accept-version");
    const char *login = sl_stomp_frame_value(f, "login");
    const char *pass = sl_stomp_frame_value(f, "passcode");
    const char *cid = sl_stomp_frame_value(f, "client-id");
    int64_t cx = 0, cy = 0;
    sl_stomp_enc e;
    sl_wb *wb = &c->scratch;

    if (c->connected) {
        send_error(c, RECEIPT(f), "already connected",
                   "CONNECT or STOMP was sent twice on this connection");
        return;
    }
    c->version = SL_STOMP_V10;
    if (av) {
        /* highest common version */
        char buf[128], *tok, *save = NULL;
        int best = 0;
        snprintf(buf, sizeof(buf), "%s", av);
        for (tok = strtok_r(buf, ", ", &save); tok;
             tok = strtok_r(NULL, ", ", &save)) {
            int v = strcmp(tok, "1.2") == 0   ? SL_STOMP_V12
                    : strcmp(tok, "1.1") == 0 ? SL_STOMP_V11
                    : strcmp(tok, "1.0") == 0 ? SL_STOMP_V10
                                              : 0;
            if (v > best)
                best = v;
        }
        if (!best) {
            sl_wb_reset(wb);
            sl_stomp_enc_begin(&e, wb, SL_STOMP_V10, SL_STOMP_ERROR);
            sl_stomp_enc_header_s(&e, "version", "1.0,1.1,1.2");
            sl_stomp_enc_header_s(&e, "message",
                                  "unsupported protocol version");
            sl_stomp_enc_header_s(&e, "content-type", "text/plain");
            {
                char body[160];
                int bl = snprintf(body, sizeof(body),
                                  "Supported protocol versions are 1.0, 1.1 "
                                  "and 1.2; accept-version was '%.60s'",
                                  av);
                sl_stomp_enc_header_u(&e, "content-length", (uint64_t)bl);
                sl_stomp_enc_end(&e, body, (size_t)bl);
            }
            conn_write(c, wb->p, wb->len);
            sl_log(SL_INFO, SUBSYS, "peer %s: unsupported accept-version %s",
                   c->peer, av);
            sl_conn_close_after_reply(c->conn);
            return;
        }
        c->version = best;
    }
    if (hb_parse(sl_stomp_frame_value(f, "heart-beat"), &cx, &cy) < 0) {
        send_error(c, RECEIPT(f), "invalid heart-beat header",
                   "heart-beat must be two non-negative integers in ms: "
                   "cx,cy");
        return;
    }
    snprintf(c->login, sizeof(c->login), "%s", login ? login : "");
    snprintf(c->client_id, sizeof(c->client_id), "%s", cid ? cid : "");
    if (c->s->nusers > 0) {
        /* checked on the auth thread; reading stops until the answer
         * (should_pause), connect_finish or an ERROR follows */
        const stomp_user *u = login ? user_find(c->s, login) : NULL;
        const char *r = RECEIPT(f);
        c->auth_cx = cx;
        c->auth_cy = cy;
        c->auth_receipt = r ? strdup(r) : NULL;
        c->auth_job =
            sl_stomp_auth_submit(c->s->auth, u ? u->hash : c->s->users[0].hash,
                                 pass ? pass : "", !u || !pass, auth_done, c);
        if (!c->auth_job) {
            free(c->auth_receipt);
            c->auth_receipt = NULL;
            send_error(c, r, "out of memory", NULL);
            return;
        }
        sl_conn_pause(c->conn);
        /* a slow check is the broker's doing, not the client's */
        sl_conn_handshake_wait(c->conn);
        return;
    }
    connect_finish(c, cx, cy, RECEIPT(f));
}

/* The password check of a CONNECT came back. @thread loop */
static void auth_done(void *arg, int ok)
{
    stomp_conn *c = arg;
    char *receipt = c->auth_receipt;
    c->auth_job = NULL;
    c->auth_receipt = NULL;
    if (!ok) {
        sl_log(SL_WARN, SUBSYS,
               "peer %s: authentication failed for login '%.64s'", c->peer,
               c->login);
        send_error(c, receipt, "access refused", "wrong login or passcode");
    } else {
        connect_finish(c, c->auth_cx, c->auth_cy, receipt);
        sl_conn_resume(c->conn); /* and handle what came after CONNECT */
    }
    free(receipt);
}

/* CONNECT accepted: heart-beats, CONNECTED, the receipt. */
static void connect_finish(stomp_conn *c, int64_t cx, int64_t cy,
                           const char *receipt)
{
    sl_stomp_enc e;
    sl_wb *wb = &c->scratch;
    char hb[48];
    int64_t period;
    const int64_t hmin = c->s->cfg->stomp_heartbeat_min_ms;
    /* Heart-beats: we send every max(cy, min) if the client wants them,
     * and expect one every max(cx, min) if it offers them. */
    c->hb_out = cy > 0 ? (cy > hmin ? cy : hmin) : 0;
    c->hb_in = cx > 0 ? (cx > hmin ? cx : hmin) : 0;
    if (c->version == SL_STOMP_V10)
        c->hb_out = c->hb_in = 0;
    c->connected = 1;
    sl_stomp_parser_set_version(&c->ps, c->version);
    /* logged in: the full limits from the next frame on */
    c->ps.lim = c->s->lim;
    sl_conn_handshake_done(c->conn);

    sl_wb_reset(wb);
    sl_stomp_enc_begin(&e, wb, c->version, SL_STOMP_CONNECTED);
    sl_stomp_enc_header_s(&e, "version",
                          c->version == SL_STOMP_V12   ? "1.2"
                          : c->version == SL_STOMP_V11 ? "1.1"
                                                       : "1.0");
    sl_stomp_enc_header_s(&e, "server", SERVER_NAME);
    sl_stomp_enc_header_s(&e, "session", c->session);
    if (c->version >= SL_STOMP_V11) {
        snprintf(hb, sizeof(hb), "%" PRId64 ",%" PRId64, c->hb_out, c->hb_in);
        sl_stomp_enc_header_s(&e, "heart-beat", hb);
    }
    sl_stomp_enc_end(&e, NULL, 0);
    conn_write(c, wb->p, wb->len);
    sl_log(SL_DEBUG, SUBSYS,
           "peer %s session %s: connected, STOMP %d.%d login '%s' "
           "heart-beat out %" PRId64 " in %" PRId64,
           c->peer, c->session, c->version / 10, c->version % 10, c->login,
           c->hb_out, c->hb_in);
    if (c->hb_out || c->hb_in) {
        /* half the intervals: an EOL goes out once the connection was
         * quiet for half of hb_out, so no gap exceeds hb_out (ticking at
         * hb_out could leave nearly two) */
        int64_t a = c->hb_out ? c->hb_out / 2 : INT64_MAX;
        int64_t b = c->hb_in ? c->hb_in / 2 : INT64_MAX;
        struct timeval tv;
        period = a < b ? a : b;
        if (period < 1)
            period = 1;
        tv.tv_sec = period / 1000;
        tv.tv_usec = (period % 1000) * 1000;
        c->hb_ev = event_new(sl_broker_base(c->s->b), -1, EV_PERSIST, hb_cb, c);
        if (c->hb_ev)
            event_add(c->hb_ev, &tv);
    }
    /* CONNECT may carry a receipt too */
    owe_receipt(c, receipt, NULL);
}

static void h_send(stomp_conn *c, const sl_stomp_frame *f)
{
    const char *dv = sl_stomp_frame_value(f, "destination");
    const char *txid = sl_stomp_frame_value(f, "transaction");
    const char *receipt = RECEIPT(f);
    const char *key = sl_stomp_frame_value(f, "JMSXGroupID");
    const char *pers = sl_stomp_frame_value(f, "persistent");
    const char *rt = sl_stomp_frame_value(f, "reply-to");
    char why[512], rtbuf[SL_TOPIC_NAME_MAX + 32], nb[32];
    const char *reply_to = NULL;
    sl_header *h = NULL;
    size_t nh = 0;
    int32_t np = 0, part;
    dest d;
    sl_err rc;
    stomp_tx *t = NULL;

    if (dest_parse(c, dv, &d, why, sizeof(why)) != SL_OK) {
        send_error(c, receipt, "invalid destination", why);
        return;
    }
    if (d.kind == DEST_TOPIC && d.wildcard) {
        snprintf(why, sizeof(why),
                 "cannot SEND to a wildcard destination '%.100s'", dv);
        send_error(c, receipt, "invalid destination", why);
        return;
    }
    if (txid) {
        t = tx_find(c, txid);
        if (!t) {
            snprintf(why, sizeof(why), "SEND in unknown transaction '%.100s'",
                     txid);
            send_error(c, receipt, "unknown transaction", why);
            return;
        }
    }
    /* request/reply: a temp queue in reply-to is created, subscribed
     * (auto ack, subscription = the temp-queue name) and rewritten */
    if (rt && strncmp(rt, "/temp-queue/", 12) == 0) {
        dest td;
        if (dest_parse(c, rt, &td, why, sizeof(why)) != SL_OK) {
            send_error(c, receipt, "invalid reply-to", why);
            return;
        }
        if (!sub_find(c, rt)) {
            stomp_sub *s;
            rc = sub_create(c, rt, rt, &td, ACK_AUTO, c->s->cfg->stomp_prefetch,
                            NULL, NULL, why, sizeof(why), &s);
            if (rc != SL_OK) {
                send_error(c, receipt, "cannot create temp queue", why);
                return;
            }
            sub_link(c, s);
            sub_pump(s);
        }
        snprintf(rtbuf, sizeof(rtbuf), "/queue/%s", td.name);
        reply_to = rtbuf;
    }
    rc = dest_topic(c, &d, &np);
    if (rc != SL_OK || np < 1) {
        snprintf(why, sizeof(why), "destination %.100s: %s", dv,
                 sl_strerror(rc != SL_OK ? rc : SL_ERR_UNKNOWN_TOPIC));
        send_error(c, receipt, "invalid destination", why);
        return;
    }
    if (key && np > 1) {
        part = sl_partition_for_key(key, strlen(key), np);
    } else {
        part = np > 1 ? (int32_t)(c->rr++ % (uint32_t)np) : 0;
    }
    if (send_headers(c, f, reply_to, nb, sizeof(nb), &h, &nh) != SL_OK) {
        send_error(c, receipt, "out of memory", NULL);
        return;
    }
    if (t) {
        if (t->bytes + f->body_len > (size_t)c->s->cfg->stomp_max_tx_bytes) {
            snprintf(why, sizeof(why),
                     "transaction '%.100s' exceeds %" PRId64
                     " bytes (stomp-max-tx-bytes)",
                     txid, c->s->cfg->stomp_max_tx_bytes);
            send_error(c, receipt, "transaction too large", why);
        } else if (tx_add_send(t, d.name, part, key, f, h, nh, receipt) !=
                   SL_OK) {
            send_error(c, receipt, "out of memory", NULL);
        }
        free(h);
        return;
    }
    /* coalesce with the batch being built when it is the same partition */
    if (c->bb_active &&
        (strcmp(c->bb_topic, d.name) != 0 || c->bb_part != part ||
         sl_bb_size(&c->bb) > BATCH_CUT_BYTES)) {
        if (batch_flush(c) != SL_OK) {
            free(h);
            return;
        }
    }
    if (!c->bb_active) {
        c->bb_active = 1;
        snprintf(c->bb_topic, sizeof(c->bb_topic), "%s", d.name);
        c->bb_part = part;
        c->bb_durable = 0;
    }
    rc = sl_bb_add(&c->bb, sl_now_ms(), key, key ? strlen(key) : 0, f->body,
                   f->body_len, h, nh);
    free(h);
    if (rc != SL_OK) {
        send_error(c, receipt, "out of memory", NULL);
        return;
    }
    if (pers && strcmp(pers, "true") == 0)
        c->bb_durable = 1;
    if (receipt) {
        if (!c->bb_w) {
            c->bb_w = sl_wait_new(c->conn);
            if (!c->bb_w) {
                send_error(c, receipt, "out of memory", NULL);
                return;
            }
        }
        owe_receipt(c, receipt, c->bb_w);
    }
}

static int parse_ack_mode(const char *v)
{
    if (!v || strcmp(v, "auto") == 0)
        return ACK_AUTO;
    if (strcmp(v, "client") == 0)
        return ACK_CLIENT;
    if (strcmp(v, "client-individual") == 0)
        return ACK_INDIVIDUAL;
    return -1;
}

static void h_subscribe(stomp_conn *c, const sl_stomp_frame *f)
{
    const char *dv = sl_stomp_frame_value(f, "destination");
    const char *id = sl_stomp_frame_value(f, "id");
    const char *receipt = RECEIPT(f);
    const char *pf = sl_stomp_frame_value(f, "prefetch-count");
    const char *apf = sl_stomp_frame_value(f, "activemq.prefetchSize");
    const char *amq_sub = sl_stomp_frame_value(f, "activemq.subscriptionName");
    const char *dur = sl_stomp_frame_value(f, "durable");
    const char *ad = sl_stomp_frame_value(f, "auto-delete");
    const char *xq = sl_stomp_frame_value(f, "x-queue-name");
    char why[512], durable_name[SL_TOPIC_NAME_MAX + 1];
    const char *dn = NULL;
    int ack = parse_ack_mode(sl_stomp_frame_value(f, "ack"));
    int64_t prefetch = c->s->cfg->stomp_prefetch;
    stomp_sub *s;
    dest d;

    if (sl_stomp_frame_value(f, "selector")) {
        send_error(c, receipt, "selectors are not supported",
                   "Sluice does not implement JMS selectors; subscribe "
                   "without a selector header");
        return;
    }
    if (!id) {
        if (c->version >= SL_STOMP_V11) {
            send_error(c, receipt, "missing id header",
                       "SUBSCRIBE requires an id header in STOMP 1.1 and "
                       "1.2");
            return;
        }
        id = dv ? dv : ""; /* 1.0: the destination names it */
    }
    if (sub_find(c, id)) {
        snprintf(why, sizeof(why),
                 "subscription id '%.100s' is already in use on this "
                 "connection",
                 id);
        send_error(c, receipt, "duplicate subscription id", why);
        return;
    }
    if (ack < 0) {
        snprintf(why, sizeof(why),
                 "ack must be auto, client or client-individual, not "
                 "'%.60s'",
                 sl_stomp_frame_value(f, "ack"));
        send_error(c, receipt, "invalid ack mode", why);
        return;
    }
    if (pf || apf) {
        int ok;
        int64_t v = parse_i64(pf ? pf : apf, &ok);
        if (!ok || v < 0) {
            snprintf(why, sizeof(why),
                     "%s must be a non-negative integer, not '%.60s'",
                     pf ? "prefetch-count" : "activemq.prefetchSize",
                     pf ? pf : apf);
            send_error(c, receipt, "invalid prefetch", why);
            return;
        }
        /* 0 = unlimited (RabbitMQ); cap to keep memory bounded */
        prefetch = v == 0 ? 1000000 : v;
    }
    if (dest_parse(c, dv, &d, why, sizeof(why)) != SL_OK) {
        send_error(c, receipt, "invalid destination", why);
        return;
    }
    if (tmp_foreign(c, d.name)) {
        snprintf(why, sizeof(why),
                 "'%.100s' is another connection's temporary queue: it can "
                 "be sent to (reply-to), not subscribed to",
                 dv);
        send_error(c, receipt, "access refused", why);
        return;
    }
    if (d.kind == DEST_TOPIC) {
        if (amq_sub) {
            if (!c->client_id[0]) {
                send_error(c, receipt, "missing client-id",
                           "a durable subscription "
                           "(activemq.subscriptionName) needs a client-id "
                           "header on CONNECT");
                return;
            }
            snprintf(durable_name, sizeof(durable_name), "%s.%s", c->client_id,
                     amq_sub);
            dn = durable_name;
        } else if (dur && strcmp(dur, "true") == 0 &&
                   !(ad && strcmp(ad, "true") == 0)) {
            snprintf(durable_name, sizeof(durable_name), "%s", xq ? xq : id);
            dn = durable_name;
        }
    }
    if (sub_create(c, id, dv, &d, ack, prefetch, dn, f, why, sizeof(why), &s) !=
        SL_OK) {
        send_error(c, receipt, "cannot subscribe", why);
        return;
    }
    sub_link(c, s);
    sl_log(SL_DEBUG, SUBSYS,
           "peer %s session %s: subscribed %s to %s (ack %s, prefetch "
           "%" PRId64 "%s%s)",
           c->peer, c->session, s->id, s->dest, ack_names[ack], prefetch,
           dn ? ", durable " : "", dn ? dn : "");
    owe_receipt(c, receipt, NULL);
    sub_pump(s);
}

static void h_unsubscribe(stomp_conn *c, const sl_stomp_frame *f)
{
    const char *id = sl_stomp_frame_value(f, "id");
    const char *receipt = RECEIPT(f);
    const char *amq_sub = sl_stomp_frame_value(f, "activemq.subscriptionName");
    const char *dur = sl_stomp_frame_value(f, "durable");
    char why[256];
    stomp_sub *s;
    char *group = NULL, *topic = NULL;
    int drop = 0;
    if (!id)
        id = sl_stomp_frame_value(f, "destination"); /* 1.0 */
    s = id ? sub_find(c, id) : NULL;
    if (!s && amq_sub && c->client_id[0]) {
        /* ActiveMQ: remove a durable subscription that is not active */
        char g[SL_TOPIC_NAME_MAX + 1];
        snprintf(g, sizeof(g), "%s.%s", c->client_id, amq_sub);
        sanitize_name(g);
        if (srv_groups(c->s))
            sl_qgroup_delete(srv_groups(c->s), g, NULL);
        owe_receipt(c, receipt, NULL);
        return;
    }
    if (!s) {
        snprintf(why, sizeof(why), "no subscription with id '%.100s'",
                 id ? id : "");
        send_error(c, receipt, "unknown subscription", why);
        return;
    }
    /* A durable subscription survives UNSUBSCRIBE unless the client says
     * to remove it (ActiveMQ: activemq.subscriptionName; RabbitMQ:
     * durable:true on UNSUBSCRIBE). */
    if (s->durable && (amq_sub || (dur && strcmp(dur, "true") == 0))) {
        drop = 1;
        group = xstrdup(s->group);
        topic = xstrdup(s->qtopic);
    }
    sub_unlink(c, s);
    sub_free(s);
    if (drop && srv_groups(c->s))
        sl_qgroup_delete(srv_groups(c->s), group, topic);
    free(group);
    free(topic);
    owe_receipt(c, receipt, NULL);
}

static void h_ack(stomp_conn *c, const sl_stomp_frame *f)
{
    const char *receipt = RECEIPT(f);
    const char *id = sl_stomp_frame_value(f, "id");
    const char *mid = sl_stomp_frame_value(f, "message-id");
    const char *sub = sl_stomp_frame_value(f, "subscription");
    const char *txid = sl_stomp_frame_value(f, "transaction");
    const char *rq = sl_stomp_frame_value(f, "requeue");
    const char *msgid;
    int requeue = !(rq && strcmp(rq, "false") == 0);
    int queue = 0;
    char why[512];
    /* 1.2 uses id (our ack header); 1.0/1.1 message-id. Accept either. */
    msgid = c->version >= SL_STOMP_V12 ? (id ? id : mid) : (mid ? mid : id);
    if (!msgid) {
        snprintf(why, sizeof(why), "%s needs an %s header",
                 f->cmd == SL_STOMP_ACK ? "ACK" : "NACK",
                 c->version >= SL_STOMP_V12 ? "id" : "message-id");
        send_error(c, receipt, "missing message id", why);
        return;
    }
    if (txid) {
        stomp_tx *t = tx_find(c, txid);
        tx_op *o;
        if (!t) {
            snprintf(why, sizeof(why), "%s in unknown transaction '%.100s'",
                     f->cmd == SL_STOMP_ACK ? "ACK" : "NACK", txid);
            send_error(c, receipt, "unknown transaction", why);
            return;
        }
        o = calloc(1, sizeof(*o));
        if (!o) {
            send_error(c, receipt, "out of memory", NULL);
            return;
        }
        o->cmd = f->cmd;
        o->msgid = strdup(msgid);
        o->subid = xstrdup(sub);
        o->requeue = requeue;
        o->receipt = xstrdup(receipt);
        tx_push(t, o);
        return;
    }
    if (do_ack(c, f->cmd, msgid, sub, requeue, &queue) != SL_OK) {
        snprintf(why, sizeof(why),
                 "no unacknowledged message with id '%.150s' on this "
                 "connection (already acknowledged, or auto-acknowledged)",
                 msgid);
        send_error(c, receipt, "unknown message", why);
        return;
    }
    if (receipt) {
        sl_wait *w = NULL;
        if (queue && srv_groups(c->s)) {
            /* the receipt means the ack is committed */
            w = sl_wait_new(c->conn);
            if (w) {
                sl_wait_hold(w);
                sl_wait_set_what(
                    w,
                    "%s %.120s is applied but not yet durable (the "
                    "group state could not be written, a full disk?); "
                    "it is written by the next commit that succeeds, "
                    "and undone only if the broker stops before that",
                    f->cmd == SL_STOMP_ACK ? "ACK" : "NACK", msgid);
                sl_groups_wait(srv_groups(c->s), wait_cb, w);
                sl_wait_built(w);
            }
        }
        owe_receipt(c, receipt, w);
        sl_wait_unref(w);
    }
}

static void h_begin(stomp_conn *c, const sl_stomp_frame *f)
{
    const char *txid = sl_stomp_frame_value(f, "transaction");
    const char *receipt = RECEIPT(f);
    char why[256];
    stomp_tx *t;
    if (!txid) {
        send_error(c, receipt, "missing transaction header",
                   "BEGIN needs a transaction header");
        return;
    }
    if (tx_find(c, txid)) {
        snprintf(why, sizeof(why), "transaction '%.100s' is already open",
                 txid);
        send_error(c, receipt, "duplicate transaction", why);
        return;
    }
    t = calloc(1, sizeof(*t));
    if (!t || !(t->id = strdup(txid))) {
        free(t);
        send_error(c, receipt, "out of memory", NULL);
        return;
    }
    t->next = c->txs;
    c->txs = t;
    owe_receipt(c, receipt, NULL);
}

/* COMMIT: append the transaction's SENDs (one batch per partition, in
 * order of first use), settle its ACK/NACKs, then answer the receipts of
 * its frames and of the COMMIT once all of it is durable. */
static void h_commit(stomp_conn *c, const sl_stomp_frame *f, int abort)
{
    const char *txid = sl_stomp_frame_value(f, "transaction");
    const char *receipt = RECEIPT(f);
    char why[512];
    stomp_tx *t;
    sl_wait *w;
    tx_op *o, *p;
    int queue = 0;
    sl_err rc = SL_OK;
    if (!txid) {
        send_error(c, receipt, "missing transaction header",
                   abort ? "ABORT needs a transaction header"
                         : "COMMIT needs a transaction header");
        return;
    }
    t = tx_find(c, txid);
    if (!t) {
        snprintf(why, sizeof(why), "no open transaction '%.100s'", txid);
        send_error(c, receipt, "unknown transaction", why);
        return;
    }
    tx_unlink(c, t);
    if (abort) {
        /* the buffered frames are dropped, but a client may wait for
         * their receipts: they come now, in order, before ABORT's own */
        for (o = t->ops; o; o = o->next)
            owe_receipt(c, o->receipt, NULL);
        tx_free(t);
        owe_receipt(c, receipt, NULL);
        return;
    }
    w = sl_wait_new(c->conn);
    if (!w) {
        tx_free(t);
        send_error(c, receipt, "out of memory", NULL);
        return;
    }
    sl_wait_set_what(w, "COMMIT of transaction %s", txid);
    /* SENDs: for each not-yet-sent op, batch every later op of the same
     * partition with it */
    for (o = t->ops; o && rc == SL_OK; o = o->next) {
        sl_batch_builder bb;
        const uint8_t *bp;
        size_t blen;
        int64_t base, next;
        if (o->cmd != SL_STOMP_SEND || o->partition < 0)
            continue;
        sl_bb_init(&bb, SL_CODEC_NONE);
        for (p = o; p; p = p->next) {
            if (p->cmd != SL_STOMP_SEND || p->partition != o->partition ||
                strcmp(p->topic, o->topic) != 0)
                continue;
            rc = sl_bb_add(&bb, sl_now_ms(), p->has_key ? p->rec : NULL,
                           p->key_len, p->rec + p->key_len, p->body_len,
                           p->hdrs, p->nhdrs);
            if (p != o)
                p->partition = -1; /* done */
            if (rc != SL_OK)
                break;
        }
        if (rc == SL_OK)
            rc = sl_bb_finish(&bb, &bp, &blen);
        if (rc == SL_OK)
            rc = sl_ops_append(c->s->b, o->topic, o->partition,
                               SL_OPS_AUTO_CREATE, (uint8_t *)bp, blen, &base,
                               &next);
        if (rc == SL_OK) {
            sl_ops_wait *ow = NULL;
            sl_wait_hold(w);
            rc = sl_ops_wait_durable(c->s->b, o->topic, o->partition, next,
                                     wait_cb, w, &ow);
            if (rc != SL_OK || !ow)
                sl_wait_release(w, SL_OK); /* no callback will come */
        } else {
            snprintf(why, sizeof(why),
                     "COMMIT of transaction %.60s: SEND "
                     "to %s: %s",
                     txid, o->topic, sl_strerror(rc));
        }
        o->partition = -1;
        sl_bb_fini(&bb);
    }
    if (rc != SL_OK) {
        /* appends are not undone; say so and close */
        sl_wait_built(w);
        sl_wait_unref(w);
        tx_free(t);
        send_error(c, receipt, "transaction failed", why);
        return;
    }
    for (o = t->ops; o; o = o->next) {
        if (o->cmd == SL_STOMP_SEND)
            continue;
        if (do_ack(c, o->cmd, o->msgid, o->subid, o->requeue, &queue) != SL_OK)
            sl_log(SL_INFO, SUBSYS,
                   "peer %s session %s: COMMIT %s: %s of unknown message "
                   "%s ignored",
                   c->peer, c->session, txid,
                   o->cmd == SL_STOMP_ACK ? "ACK" : "NACK", o->msgid);
    }
    if (queue && srv_groups(c->s)) {
        sl_wait_hold(w);
        sl_groups_wait(srv_groups(c->s), wait_cb, w);
    }
    for (o = t->ops; o; o = o->next)
        owe_receipt(c, o->receipt, w);
    owe_receipt(c, receipt, w);
    sl_wait_built(w);
    sl_wait_unref(w);
    tx_free(t);
}

static void h_disconnect(stomp_conn *c, const sl_stomp_frame *f)
{
    /* the receipt (if asked for) after every reply owed before it, then
     * the connection closes */
    owe_receipt(c, RECEIPT(f), NULL);
    sl_conn_close_after_reply(c->conn);
}

static void handle_frame(stomp_conn *c, const sl_stomp_frame *f)
{
    char why[128];
    if (f->cmd != SL_STOMP_SEND)
        batch_flush(c);
    if (conn_closing(c))
        return;
    if (!c->connected && f->cmd != SL_STOMP_CONNECT &&
        f->cmd != SL_STOMP_STOMP) {
        snprintf(why, sizeof(why),
                 "the first frame must be CONNECT or STOMP, not %s",
                 sl_stomp_cmd_name(f->cmd));
        send_error(c, RECEIPT(f), "not connected", why);
        return;
    }
    switch (f->cmd) {
    case SL_STOMP_CONNECT:
    case SL_STOMP_STOMP:
        h_connect(c, f);
        break;
    case SL_STOMP_SEND:
        h_send(c, f);
        break;
    case SL_STOMP_SUBSCRIBE:
        h_subscribe(c, f);
        break;
    case SL_STOMP_UNSUBSCRIBE:
        h_unsubscribe(c, f);
        break;
    case SL_STOMP_ACK:
    case SL_STOMP_NACK:
        h_ack(c, f);
        break;
    case SL_STOMP_BEGIN:
        h_begin(c, f);
        break;
    case SL_STOMP_COMMIT:
        h_commit(c, f, 0);
        break;
    case SL_STOMP_ABORT:
        h_commit(c, f, 1);
        break;
    case SL_STOMP_DISCONNECT:
        h_disconnect(c, f);
        break;
    default:
        snprintf(why, sizeof(why), "%s is a server frame",
                 sl_stomp_cmd_name(f->cmd));
        send_error(c, RECEIPT(f), "invalid frame", why);
        break;
    }
}

/* ---- the connection's ops (conn.h) ---------------------------------------- */

/* on_input: parse and handle frames while the connection layer lets us
 * read; coalesced SENDs are appended before anything else waits. */
static void st_input(void *state, sl_conn *conn, struct evbuffer *in)
{
    stomp_conn *c = state;
    c->last_read = sl_now_ms();
    while (!sl_conn_closing(conn) && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        size_t used = 0;
        sl_stomp_frame f;
        int rc;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        rc = sl_stomp_parse(&c->ps, v.iov_base, v.iov_len, &used, &f);
        evbuffer_drain(in, used);
        if (rc == SL_STOMP_PERROR) {
            batch_flush(c);
            send_error(c, NULL, c->ps.errstr, NULL);
            break;
        }
        if (rc == SL_STOMP_FRAME) {
            handle_frame(c, &f);
            if (!sl_conn_reading(conn))
                break; /* paused (after this frame) or closing */
        }
    }
    if (!conn_closing(c))
        batch_flush(c);
}

/* on_drain: room in the output (or a kick): refill credits, pump
 * readers. */
static void st_drain(void *state, sl_conn *conn)
{
    stomp_conn *c = state;
    stomp_sub *s;
    (void)conn;
    for (s = c->subs; s; s = s->next)
        sub_pump(s);
}

static void hb_cb(evutil_socket_t fd, short what, void *arg)
{
    stomp_conn *c = arg;
    int64_t now = sl_now_ms();
    if (conn_closing(c))
        return;
    if (!sl_conn_reading(c->conn))
        c->last_read = now; /* not reading is our doing, not the client's */
    if (c->hb_in && now - c->last_read > c->hb_in + c->hb_in / 2) {
        sl_log(SL_INFO, SUBSYS,
               "peer %s session %s: no heart-beat for %" PRId64
               " ms (interval %" PRId64 " ms): closing",
               c->peer, c->session, now - c->last_read, c->hb_in);
        sl_conn_abort(c->conn, "no heart-beat");
        return;
    }
    if (c->hb_out && now - c->last_write >= c->hb_out / 2 && out_len(c) == 0)
        conn_write(c, "\n", 1);
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
    sl_log(SL_DEBUG, SUBSYS, "peer %s session %s: closed", c->peer, c->session);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    for (s = c->subs; s; s = sn) {
        sn = s->next;
        sub_free(s); /* unacked messages return to their queues */
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
        tx_free(t);
    }
    sl_wait_unref(c->bb_w);
    if (c->hb_ev)
        event_free(c->hb_ev);
    sl_stomp_auth_cancel(c->auth_job); /* its answer finds no connection */
    free(c->auth_receipt);
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
    snprintf(c->session, sizeof(c->session), "%" PRIu64, ++srv->next_session);
    c->version = SL_STOMP_V10;
    c->last_read = c->last_write = sl_now_ms();
    sl_stomp_parser_init(&c->ps, &srv->lim_prelogin);
    sl_bb_init(&c->bb, SL_CODEC_NONE);
    sl_wb_init(&c->scratch, 1024);
    sl_wb_init(&c->rwb, 128);
    sl_conn_limit_input(conn, STOMP_PRELOGIN_BYTES);
    conn_set_priority(c);
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    *state = c;
    sl_log(SL_DEBUG, SUBSYS, "peer %s: accepted, session %s", c->peer,
           c->session);
    return SL_OK;
}

static const sl_conn_ops stomp_ops = {
    .name = "stomp",
    .flags = SL_CONN_HANDSHAKE,
    .read_max = READ_BYTES,
    .on_open = st_open,
    .on_input = st_input,
    .on_drain = st_drain,
    .on_close = st_close,
};

/* ---- users --------------------------------------------------------------- */

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static int unhex(const char *s, size_t n, uint8_t *out, size_t cap)
{
    size_t i;
    if (n % 2 || n / 2 > cap)
        return -1;
    for (i = 0; i < n / 2; i++) {
        int a = hexval(s[2 * i]), b = hexval(s[2 * i + 1]);
        if (a < 0 || b < 0)
            return -1;
        out[i] = (uint8_t)(a * 16 + b);
    }
    return (int)(n / 2);
}

int sl_stomp_password_ok(const char *stored, const char *password)
{
    const char *p = stored, *a, *b;
    uint8_t salt[256], want[128], got[128];
    int sl, hl, ok;
    int64_t iter;
    char ib[16];
    if (strncmp(p, "pbkdf2-sha256$", 14) != 0)
        return 0;
    p += 14;
    a = strchr(p, '$');
    if (!a || (size_t)(a - p) >= sizeof(ib))
        return 0;
    memcpy(ib, p, (size_t)(a - p));
    ib[a - p] = 0;
    iter = parse_i64(ib, &ok);
    if (!ok || iter < 1 || iter > 10000000)
        return 0;
    b = strchr(a + 1, '$');
    if (!b)
        return 0;
    sl = unhex(a + 1, (size_t)(b - a - 1), salt, sizeof(salt));
    hl = unhex(b + 1, strlen(b + 1), want, sizeof(want));
    if (sl < 1 || hl < 16)
        return 0;
    if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, sl, (int)iter,
                          EVP_sha256(), hl, got) != 1)
        return 0;
    return CRYPTO_memcmp(got, want, (size_t)hl) == 0;
}

static sl_err users_load(stomp_srv *s, const char *path, char *err,
                         size_t errlen)
{
    FILE *f = fopen(path, "r");
    sl_err rc;
    if (!f) {
        snprintf(err, errlen, "stomp-users-file %s: %s", path, strerror(errno));
        return SL_ESYS(errno);
    }
    rc = sl_stomp_users_read(f, path, &s->users, &s->nusers, err, errlen);
    fclose(f);
    return rc;
}

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
            sl_log(SL_INFO, SUBSYS, "deleted temp queue %s of a previous run",
                   l.names[i]);
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
    if (s->cfg->stomp_users_file && s->cfg->stomp_users_file[0]) {
        if (users_load(s, s->cfg->stomp_users_file, err, sizeof(err)) !=
            SL_OK) {
            sl_broker_fail(b, err);
            free(s);
            return;
        }
        sl_log(SL_INFO, SUBSYS, "%zu STOMP users loaded from %s", s->nusers,
               s->cfg->stomp_users_file);
        if (s->nusers > 0 &&
            sl_stomp_auth_new(sl_broker_base(b), &s->auth) != SL_OK) {
            sl_broker_fail(b, "stomp: cannot start the password check thread");
            free(s);
            return;
        }
    } else {
        sl_log(SL_WARN, SUBSYS,
               "development mode: no stomp-users-file, every STOMP login is "
               "accepted");
    }
    tmp_cleanup(s);
    sl_ops_on_append(b, on_append, s);
    sl_ops_on_topic_delete(b, on_topic_delete, s);
    /* the module's state hangs on the listener's protocol entry */
    sl_conn_set_proto(b, SL_LISTENER_STOMP, &stomp_ops, s);
}

void sl_stomp_module_fini(sl_broker *b)
{
    stomp_srv *s = sl_conn_proto_arg(b, SL_LISTENER_STOMP, &stomp_ops);
    size_t i;
    if (!s)
        return;
    /* the server freed every connection (and so every session) first */
    sl_conn_set_proto(b, SL_LISTENER_STOMP, NULL, NULL);
    sl_stomp_auth_free(s->auth);
    for (i = 0; i < s->nusers; i++) {
        free(s->users[i].login);
        free(s->users[i].hash);
    }
    free(s->users);
    free(s);
}
