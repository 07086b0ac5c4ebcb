/*
 * raft_auth.c - the cluster secret on the Raft port (issue 16).
 *
 * libraft's TCP transport accepts anyone who connects to --cluster-listen
 * and says a server id: whoever reaches that port could speak Raft to the
 * nodes (vote, append entries) and so change the metadata, users
 * included. It has no TLS and no hook for a handshake of ours, but the
 * transport is an interface (struct raft_uv_transport), so this one wraps
 * the TCP transport:
 *
 *  - outgoing: once the TCP transport connected and wrote its own
 *    handshake (protocol, server id, address), the first bytes of ours
 *    are a proof of the cluster secret, PROOF_LEN bytes of ASCII padded
 *    with spaces: "SLRAFT1 n=ID,t=UNIX_MS,r=NONCE,p=HEX" where HEX is
 *    HMAC-SHA-256(secret, "SLRAFT1,n=ID,t=UNIX_MS,r=NONCE"); libraft
 *    writes its messages after it on the same stream.
 *  - incoming: after the TCP transport read its handshake, exactly
 *    PROOF_LEN bytes are read (the read buffer is that size, so nothing of
 *    libraft's messages is consumed) and checked: the proof, the id it
 *    names equal to the one the handshake said, the time within
 *    SKEW_MS of ours, the nonce not seen before (a ring of the last
 *    SEEN nonces). Only then does libraft get the stream; otherwise it is
 *    closed, with a WARN line (at most one per 10 s). A connection that
 *    does not send its proof within PROOF_TIMEOUT_MS is closed too.
 *
 * Raft connections are one-way (each node sends on the connections it
 * opened), so proving the connecting side is what keeps messages of
 * strangers out. This authenticates; it does not encrypt (Raft carries
 * the metadata: topic names, addresses, the users' salted SCRAM keys),
 * so the port still belongs on a private network.
 * @thread raft
 */
#include "cluster/raft_auth.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "protocol/log.h"
#include "protocol/scram.h"

#define PROOF_LEN 160
#define SKEW_MS (5 * 60 * 1000)
#define SEEN 1024
#define PROOF_TIMEOUT_MS 10000

struct sl_raft_auth {
    struct raft_uv_transport *outer, *inner;
    struct uv_loop_s *loop;
    uint8_t secret[256];
    size_t secret_len;
    raft_id id;
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb close_cb;
    struct incoming *incoming; /* proofs being read */
    struct {
        char nonce[33];
        int64_t ms;
    } seen[SEEN];
    size_t seen_next;
    int64_t warn_ms;
    long warn_skipped;
};

typedef struct incoming {
    struct incoming *next;
    sl_raft_auth *a;
    raft_id id;
    char *address;
    struct uv_stream_s *stream;
    uv_timer_t timer;
    char buf[PROOF_LEN + 1];
    size_t got;
    int closing;
} incoming;

typedef struct outgoing {
    sl_raft_auth *a;
    struct raft_uv_connect inner_req; /* ours, to the TCP transport */
    struct raft_uv_connect *req;      /* libraft's */
    uv_write_t write;
    char buf[PROOF_LEN];
} outgoing;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void hexs(const uint8_t *p, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = 0;
}

static void mac_hex(const sl_raft_auth *a, const char *body, char out[65])
{
    char msg[200];
    uint8_t h[SL_SCRAM_KEY_LEN];
    int n = snprintf(msg, sizeof(msg), "SLRAFT1,%s", body);
    sl_scram_hmac(a->secret, a->secret_len, msg, n < 0 ? 0 : (size_t)n, h);
    hexs(h, sizeof(h), out);
}

/* One WARN line per 10 s at most: a node with a wrong secret retries. */
static void warn(sl_raft_auth *a, const char *address, raft_id id,
                 const char *why)
{
    int64_t now = now_ms();
    if (a->warn_ms && now - a->warn_ms < 10000) {
        a->warn_skipped++;
        return;
    }
    sl_log(SL_WARN, "cluster",
           "raft connection from node %llu at %s refused: %s%s",
           (unsigned long long)id, address, why,
           a->warn_skipped ? " (and earlier refusals not logged)" : "");
    a->warn_ms = now;
    a->warn_skipped = 0;
}

/* ---- incoming --------------------------------------------------------- */

static void stream_free_cb(uv_handle_t *h)
{
    raft_free(h);
}

static void incoming_timer_closed(uv_handle_t *h)
{
    incoming *in = h->data;
    free(in->address);
    free(in);
}

/* Unlink in and release it; the stream too unless handed to libraft. */
static void incoming_end(incoming *in, int keep_stream)
{
    sl_raft_auth *a = in->a;
    for (incoming **pp = &a->incoming; *pp; pp = &(*pp)->next)
        if (*pp == in) {
            *pp = in->next;
            break;
        }
    if (!keep_stream) {
        uv_read_stop(in->stream);
        uv_close((uv_handle_t *)in->stream, stream_free_cb);
    }
    uv_timer_stop(&in->timer);
    uv_close((uv_handle_t *)&in->timer, incoming_timer_closed);
}

/* 1 when the proof holds (why filled otherwise). */
static int check(sl_raft_auth *a, incoming *in, char *why, size_t whylen)
{
    unsigned long long n;
    long long t;
    char r[33], p[65], body[120], want[65];
    int64_t now = now_ms();
    in->buf[PROOF_LEN] = 0;
    if (sscanf(in->buf, "SLRAFT1 n=%llu,t=%lld,r=%32[0-9a-f],p=%64[0-9a-f]", &n,
               &t, r, p) != 4 ||
        strlen(r) != 32 || strlen(p) != 64) {
        snprintf(why, whylen,
                 "no proof of the cluster secret (a node without "
                 "cluster-secret-file, or not a node)");
        return 0;
    }
    snprintf(body, sizeof(body), "n=%llu,t=%lld,r=%s", n, t, r);
    mac_hex(a, body, want);
    if (!sl_scram_equal((const uint8_t *)want, (const uint8_t *)p, 64)) {
        snprintf(why, whylen,
                 "wrong proof of the cluster secret (its "
                 "cluster-secret-file differs from this node's)");
        return 0;
    }
    if ((raft_id)n != in->id) {
        snprintf(why, whylen, "the proof is node %llu's", n);
        return 0;
    }
    if (t < now - SKEW_MS || t > now + SKEW_MS) {
        snprintf(why, whylen,
                 "proof time %lld ms away from this node's clock "
                 "(synchronize the clocks)",
                 (long long)(t - now));
        return 0;
    }
    for (size_t i = 0; i < SEEN; i++)
        if (a->seen[i].ms && !strcmp(a->seen[i].nonce, r)) {
            snprintf(why, whylen, "a replayed proof");
            return 0;
        }
    memcpy(a->seen[a->seen_next].nonce, r, sizeof(r));
    a->seen[a->seen_next].ms = now;
    a->seen_next = (a->seen_next + 1) % SEEN;
    return 1;
}

static void in_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    incoming *in = h->data;
    (void)suggested;
    buf->base = in->buf + in->got;
    buf->len = PROOF_LEN - in->got; /* nothing of libraft's messages */
}

static void in_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    incoming *in = s->data;
    sl_raft_auth *a = in->a;
    char why[200];
    (void)buf;
    if (nread == 0)
        return;
    if (nread < 0) {
        incoming_end(in, 0);
        return;
    }
    in->got += (size_t)nread;
    if (in->got < PROOF_LEN)
        return;
    uv_read_stop(s);
    if (!check(a, in, why, sizeof(why))) {
        warn(a, in->address, in->id, why);
        incoming_end(in, 0);
        return;
    }
    s->data = NULL;
    a->accept_cb(a->outer, in->id, in->address, s); /* libraft's now */
    incoming_end(in, 1);
}

static void in_timer_cb(uv_timer_t *t)
{
    incoming *in = t->data;
    warn(in->a, in->address, in->id, "no proof of the cluster secret in time");
    incoming_end(in, 0);
}

static void accept_cb(struct raft_uv_transport *inner, raft_id id,
                      const char *address, struct uv_stream_s *stream)
{
    sl_raft_auth *a = inner->data;
    incoming *in = calloc(1, sizeof(*in));
    if (!in || !(in->address = strdup(address))) {
        free(in);
        uv_close((uv_handle_t *)stream, stream_free_cb);
        return;
    }
    in->a = a;
    in->id = id;
    in->stream = stream;
    stream->data = in;
    uv_timer_init(a->loop, &in->timer);
    in->timer.data = in;
    uv_timer_start(&in->timer, in_timer_cb, PROOF_TIMEOUT_MS, 0);
    in->next = a->incoming;
    a->incoming = in;
    if (uv_read_start(stream, in_alloc_cb, in_read_cb) != 0)
        incoming_end(in, 0);
}

/* ---- outgoing --------------------------------------------------------- */

static void out_write_cb(uv_write_t *w, int status)
{
    (void)status; /* a failed write shows up in libraft's own writes */
    free(w->data);
}

static void connect_cb(struct raft_uv_connect *inner_req,
                       struct uv_stream_s *stream, int status)
{
    outgoing *o = inner_req->data;
    sl_raft_auth *a = o->a;
    struct raft_uv_connect *req = o->req;
    char nonce[16], nh[33], body[120], p[65];
    uv_buf_t b;
    int n;
    if (status != 0) {
        free(o);
        req->cb(req, stream, status);
        return;
    }
    sl_scram_random((uint8_t *)nonce, sizeof(nonce));
    hexs((const uint8_t *)nonce, sizeof(nonce), nh);
    snprintf(body, sizeof(body), "n=%llu,t=%" PRId64 ",r=%s",
             (unsigned long long)a->id, now_ms(), nh);
    mac_hex(a, body, p);
    n = snprintf(o->buf, sizeof(o->buf), "SLRAFT1 %s,p=%s", body, p);
    memset(o->buf + n, ' ', sizeof(o->buf) - (size_t)n);
    b = uv_buf_init(o->buf, sizeof(o->buf));
    o->write.data = o;
    if (uv_write(&o->write, stream, &b, 1, out_write_cb) != 0)
        free(o);
    req->cb(req, stream, 0); /* libraft's writes queue behind ours */
}

/* ---- the transport's functions ------------------------------------------- */

static int t_init(struct raft_uv_transport *t, raft_id id, const char *addr)
{
    sl_raft_auth *a = t->impl;
    int rv;
    a->id = id;
    rv = a->inner->init(a->inner, id, addr);
    if (rv != 0)
        memcpy(t->errmsg, a->inner->errmsg, sizeof(t->errmsg));
    return rv;
}

static int t_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    sl_raft_auth *a = t->impl;
    int rv;
    a->accept_cb = cb;
    rv = a->inner->listen(a->inner, accept_cb);
    if (rv != 0)
        memcpy(t->errmsg, a->inner->errmsg, sizeof(t->errmsg));
    return rv;
}

static int t_connect(struct raft_uv_transport *t, struct raft_uv_connect *req,
                     raft_id id, const char *address, raft_uv_connect_cb cb)
{
    sl_raft_auth *a = t->impl;
    outgoing *o = calloc(1, sizeof(*o));
    int rv;
    if (!o)
        return RAFT_NOMEM;
    o->a = a;
    o->req = req;
    req->cb = cb;
    o->inner_req.data = o;
    rv = a->inner->connect(a->inner, &o->inner_req, id, address, connect_cb);
    if (rv != 0) {
        memcpy(t->errmsg, a->inner->errmsg, sizeof(t->errmsg));
        free(o);
    }
    return rv;
}

static void inner_closed(struct raft_uv_transport *inner)
{
    sl_raft_auth *a = inner->data;
    if (a->close_cb)
        a->close_cb(a->outer);
}

static void t_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    sl_raft_auth *a = t->impl;
    a->close_cb = cb;
    while (a->incoming)
        incoming_end(a->incoming, 0);
    a->inner->close(a->inner, inner_closed);
}

int sl_raft_auth_init(struct raft_uv_transport *outer,
                      struct raft_uv_transport *inner, struct uv_loop_s *loop,
                      const uint8_t *secret, size_t len)
{
    sl_raft_auth *a = calloc(1, sizeof(*a));
    if (!a)
        return RAFT_NOMEM;
    if (len > sizeof(a->secret))
        len = sizeof(a->secret);
    memcpy(a->secret, secret, len);
    a->secret_len = len;
    a->outer = outer;
    a->inner = inner;
    a->loop = loop;
    inner->data = a;
    memset(outer, 0, sizeof(*outer));
    outer->impl = a;
    outer->init = t_init;
    outer->listen = t_listen;
    outer->connect = t_connect;
    outer->close = t_close;
    return 0;
}

void sl_raft_auth_fini(struct raft_uv_transport *outer)
{
    sl_raft_auth *a = outer->impl;
    if (!a || outer->init != t_init)
        return;
    memset(a->secret, 0, sizeof(a->secret));
    free(a);
    outer->impl = NULL;
}
