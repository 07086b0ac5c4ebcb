/*
 * conn.c - the connection layer: every client socket, whatever protocol.
 *
 * Design
 * ------
 * One sl_conn per accepted socket, owned by the loop. The layer knows
 * nothing of frames; a protocol (binary.c, stomp*.c, http.c) plugs in
 * with an ops table (conn.h), the way nng's protocols plug into its
 * sockets:
 *
 *   on_open(arg, c, &state)   a socket was accepted: make the protocol state
 *   on_input(state, c, in)    bytes wait in `in`: cut and handle frames
 *   on_drain(state, c)        the peer took output: deliver more
 *   on_close(state, c)        the connection is freed: release the state
 *
 * and everything that does not depend on the protocol is done here once:
 *
 *  1. Accept and limits. One count of open connections for every listener
 *     (max-connections) and, when max-connections-per-address is set, one
 *     per client address. A refused socket is closed at once; the WARN
 *     line saying so is rate-limited (see 7). Out of descriptors (EMFILE,
 *     ENFILE) the listeners pause instead of spinning on a failing accept:
 *     a spare descriptor, kept open for the purpose, is closed to accept
 *     and close the client that triggered it (it sees a closed connection
 *     rather than a hang), one line is logged for the whole episode, and
 *     accepting resumes when a connection is freed or after a second.
 *  2. Reading, with priorities. libevent's read (4 KiB after FIONREAD) is
 *     topped up with readv (sl_ops_read_more) up to the protocol's
 *     read_max. A producer-only connection (sl_conn_set_pace) whose reads
 *     fill libevent's 4 KiB is a streaming producer: its read event goes
 *     to SL_PRI_INGRESS so that deliveries and acks run first (ops.h), and
 *     a guard timer, armed by every read of normal priority, reads for any
 *     paced connection not served for INGRESS_MAX_WAIT_US, so its wait is
 *     bounded while the loop is busy.
 *  3. The ordered reply queue. Each request that owes an answer takes a
 *     slot (sl_reply) at the FIFO's tail; slots complete in any order
 *     (durable produce, long poll, group commit) and the completed prefix
 *     moves to the socket's output, so answers keep request order. A slot
 *     may depend on an sl_wait: a refcounted operation completed through
 *     callbacks (an fsync, a commit) that outlives the connection; a failed
 *     wait lets the protocol rewrite the slot (STOMP: an ERROR, then close).
 *  4. Back-pressure by the memory really held. What a connection holds for
 *     its peer is the unsent output plus the replies queued: the cost of a
 *     queued reply is what it allocated (the slot, its buffer and at least
 *     one 1 KiB buffer chain), not its payload, so that a client that
 *     pipelines tiny requests and never reads cannot make a 30-byte answer
 *     cost a kilobyte 140,000 times over (issue 18: 270 MB for one such
 *     connection under a 4 MiB output-high-water). Completed small replies
 *     are copied into the output, whose chains are filled densely, instead
 *     of moving their own mostly empty chains there. When output plus
 *     queued replies pass output-high-water, or max-pending-requests
 *     replies are owed, reading stops (libevent's le-proxy idiom); the
 *     write watermark at half the high water brings on_drain and reading
 *     back. Input is bounded by the protocol (a frame at a time) and,
 *     before a handshake, by sl_conn_limit_input. Freeing a connection that
 *     held much gives the memory back to the system (malloc_trim).
 *  5. Timeouts. idle-timeout-ms for protocols that ask for it (binary: a
 *     peer that sends nothing and waits for nothing); handshake-timeout-ms
 *     for those that must finish a handshake (STOMP CONNECT, TLS later).
 *  6. Closing. A connection is never freed inside one of its callbacks:
 *     close marks it, runs the close hooks and cancels pending replies,
 *     and the reap event frees it (and calls on_close) at the end of the
 *     loop iteration (Redis freeClientAsync, nng's reap). A protocol error
 *     closes after the error reply is sent: the write side is shut down
 *     first, then input is discarded until EOF (at most CLOSE_LINGER_MS)
 *     so the peer reads the reply instead of a reset; output a peer does
 *     not take is dropped after CLOSE_DRAIN_MS.
 *  7. Log lines about a peer are rate-limited per connection and kind
 *     (sl_conn_warn), so one client cannot write the log full.
 *  8. The registry. Each connection has an id (from 1, never reused while
 *     the broker runs), its open time and its bytes in and out (counted
 *     where bytes enter the input and the output, no extra call).
 *     sl_conn_foreach and sl_conn_find give the admin verbs
 *     "connections" and "connection.close" a read-only view; a protocol
 *     adds its own keys (user, subscriptions, in-flight) through the
 *     optional describe hook. Each open and close is one INFO line with
 *     peer, protocol and (on close) user, duration and bytes; at most 100
 *     such lines per 10 s, the rest counted in one line.
 *
 * Transports: the seam is the bufferevent. Every connection is a socket
 * bufferevent over TCP (conn_bev_new), which a listener's transport may
 * wrap in a filter (sl_conn_set_transport): STOMP over WebSocket (ws.c)
 * is the STOMP ops table on a bufferevent_filter that unwraps and wraps
 * WebSocket frames. Under a filter the layer counts the socket's output
 * as the connection's (back-pressure, close), is told when it drains
 * (sock_out_cb: the filter's own write callback fires after each pass,
 * not when the socket drains), pumps raw input left in the socket's
 * buffer after a pause (work_cb), never reads the socket directly
 * (sl_ops_read_more, pacing), and flushes the filter with BEV_FINISHED
 * before shutting the socket's write side. TLS (tls.c) is decided by the
 * listener too (sl_conn_accept_on): the socket-level bufferevent is then
 * bufferevent_openssl over the socket instead of a socket bufferevent,
 * the same interface, so reading, writing, watermarks and timeouts above
 * stay as they are. What touches the socket directly is skipped for it:
 * the extra reads of sl_ops_read_more and pacing, sl_conn_write_now, and
 * sendfile (reply buffers of a TLS connection are not marked
 * DRAINS_TO_FD: file ranges are read into memory to be encrypted). The
 * TLS handshake runs under handshake-timeout-ms like a protocol's; its
 * failures are logged broker-wide rate-limited (scanners); a verified
 * client certificate's subject is kept on the connection for the auth
 * layer (sl_conn_tls_subject). Closing sends close_notify before shutting
 * the write side. A plaintext connection whose first bytes are a TLS
 * ClientHello is closed with a line naming the port to use. An
 * inter-broker link is one more ops table on a
 * listener of its own, or an outgoing connection handed to
 * conn_bev_new. No protocol code changes for any of them.
 *
 * @thread loop (everything in this file)
 */
#include "broker/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "broker/broker.h"
#include "broker/hist.h"
#include "broker/tls.h"
#include "protocol/log.h"
#include "storage/fsutil.h"

#define PAUSE_OUTPUT 1u
#define PAUSE_PENDING 2u
#define PAUSE_PROTO 4u

/* A closing connection waits this long for the peer's EOF after its last
 * reply (write side shut), and this long for the peer to take output. */
#define CLOSE_LINGER_MS 1000
#define CLOSE_DRAIN_MS 5000
/* Longest a paced producer (SL_PRI_INGRESS) waits for a read while the
 * loop is busy with more urgent work; see ingress_guard_cb. */
#define INGRESS_MAX_WAIT_US 5000
/* What a queued reply costs besides its bytes: the slot and its evbuffer;
 * and the smallest buffer chain libevent allocates for the first byte. */
#define REPLY_OVERHEAD (sizeof(sl_reply) + 160)
#define CHAIN_MIN 1024
/* Completed replies up to this size are copied into the output. */
#define COPY_MAX 4096
/* Output written right away (sl_conn_write_now) up to this size. */
#define WRITE_NOW_MAX (64 * 1024)
/* sl_conn_warn: window and kinds remembered per connection. */
#define WARN_WINDOW_MS 10000
#define WARN_KINDS 4
/* Out of descriptors: one episode (one log line) until accepting has
 * worked this long. */
#define EMFILE_EPISODE_MS 10000
/* INFO lines per connection opened and closed: at most CONNLOG_BURST in
 * a window of CONNLOG_WINDOW_MS, the rest counted (see conn_info). */
#define CONNLOG_WINDOW_MS 10000
#define CONNLOG_BURST 100
/* Freeing connections that held this much returns memory to the OS. */
#define TRIM_BYTES (8u * 1024 * 1024)

struct sl_wait {
    int refs;    /* the builder + each reply attached + each callback */
    int pending; /* callbacks still to come (+1 while being built) */
    sl_err err;  /* first failure */
    sl_conn *c;  /* NULL once the connection is gone */
    sl_wait *prev, *next; /* in c->waits */
    char what[320];
};

struct sl_reply {
    sl_conn *c; /* NULL once the connection died (orphan) */
    uint32_t corr;
    struct evbuffer *buf;
    size_t cost; /* counted in c->qmem */
    int done;
    int drop;
    int close_after;
    int has_file; /* sendfile segments: never copied */
    sl_wait *w;
    sl_reply_fail_fn fail;
    struct sl_lat_hist *lat; /* sl_reply_time */
    long long t0_us;
    char *note;
    void (*cancel)(void *arg);
    void *cancel_arg;
    sl_reply *next;
};

typedef struct close_hook {
    sl_conn_close_fn fn;
    void *arg;
} close_hook;

typedef sl_warn_slot warn_slot;

enum { TIMER_NONE = 0, TIMER_HANDSHAKE, TIMER_LINGER, TIMER_DRAIN };

struct sl_conn {
    sl_broker *b;
    const sl_conn_ops *ops;
    void *state;
    int opened; /* on_open succeeded: on_close is owed */
    struct bufferevent *bev;
    /* the socket's own bufferevent: bev itself, or the one a transport
     * (sl_conn_set_transport) filters; its output is counted as ours */
    struct bufferevent *sock;
    struct evbuffer_cb_entry *sock_cb; /* sock_out_cb, when filtered */
    int finished; /* filtered: BEV_FINISHED flushed (transport's goodbye) */
    struct event *work_ev;  /* sl_conn_kick, resume */
    struct event *timer_ev; /* handshake, linger or drain (timer_kind) */
    int timer_kind;
    char peer[80];
    unsigned char addr[16]; /* client address, for the per-address cap */
    int addr_len;
    size_t in_mark;  /* input length after the last on_input */
    size_t in_limit; /* sl_conn_limit_input, 0 = none */
    sl_reply *head, *tail;
    size_t npending;
    size_t qmem; /* what the queued replies cost */
    size_t peak; /* most ever held (output + qmem) */
    unsigned paused;
    int closing;   /* close once every reply is sent */
    int lingering; /* write side shut; discarding input until EOF */
    int dead;
    int in_read;
    int in_flush;
    int hs_pending; /* SL_CONN_HANDSHAKE, not done yet */
    void *auth;     /* sl_conn_set_auth: login state, freed with c */
    void (*auth_free)(void *);
    /* pacing (SL_PRI_INGRESS) */
    int pace;      /* producer-only: may be paced */
    int streaming; /* its last read found more than 4 KiB waiting */
    int pri_stale; /* bufferevent_priority_set refused (events active) */
    int ingress;   /* on b->ingress: at SL_PRI_INGRESS, or pri_stale */
    long long in_us;
    sl_conn *in_prev, *in_next;
    sl_conn *prev, *next;
    sl_conn *reap_next;
    sl_wait *waits;
    close_hook *hooks; /* sl_conn_on_close, in registration order */
    size_t nhooks, caphooks;
    int hooks_ran; /* peer EOF or dead: no more registrations */
    warn_slot warns[WARN_KINDS];
    /* the registry's view (sl_conn_stat) */
    uint64_t id;
    enum sl_listener lis;
    int64_t opened_ms;
    uint64_t bytes_in, bytes_out, replies;
    /* transport (conn_bev_new) */
    enum sl_transport transport;
    int tls_hs;        /* TLS handshake not finished yet */
    int plain_checked; /* TCP: first bytes looked at (TLS on plaintext) */
    char *tls_subject; /* verified client certificate, RFC 2253 */
    char *tls_cn;      /* its commonName */
    char *tls_san;     /* its first DNS or email subjectAltName */
};

static void process_input(sl_conn *c);
static void conn_info(sl_broker *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void conn_flush(sl_conn *c);
static void conn_kill(sl_conn *c, const char *why);
static void update_pause(sl_conn *c);
static void addr_unref(sl_broker *b, const unsigned char *a, int len);

/* The idle timeout of c's protocol (SL_CONN_IDLE), 0 = none. */
static int64_t idle_ms(const sl_conn *c)
{
    return c->ops->idle_ms ? c->ops->idle_ms : c->b->cfg.idle_timeout_ms;
}

/* ---- protocols ----------------------------------------------------------- */

void sl_conn_set_proto(sl_broker *b, enum sl_listener l,
                       const sl_conn_ops *ops, void *arg)
{
    b->protos[l].ops = ops;
    b->protos[l].arg = arg;
}

void *sl_conn_proto_arg(sl_broker *b, enum sl_listener l,
                        const sl_conn_ops *ops)
{
    return b->protos[l].ops == ops ? b->protos[l].arg : NULL;
}

void sl_conn_set_transport(sl_broker *b, enum sl_listener l,
                           sl_conn_wrap_fn wrap, void *arg)
{
    b->protos[l].wrap = wrap;
    b->protos[l].wrap_arg = arg;
}

const sl_conn_ops *sl_conn_proto_ops(sl_broker *b, enum sl_listener l)
{
    return b->protos[l].ops;
}

/* ---- small accessors ------------------------------------------------------ */

const char *sl_conn_peer(const sl_conn *c)
{
    return c->peer;
}

static int filtered(const sl_conn *c)
{
    return c->sock != c->bev;
}

enum sl_transport sl_conn_transport(const sl_conn *c)
{
    return c->transport;
}

const char *sl_conn_tls_subject(const sl_conn *c)
{
    return c->tls_subject;
}

const char *sl_conn_tls_cn(const sl_conn *c)
{
    return c->tls_cn;
}

const char *sl_conn_tls_san(const sl_conn *c)
{
    return c->tls_san;
}

size_t sl_conn_out_len(const sl_conn *c)
{
    size_t n = evbuffer_get_length(bufferevent_get_output(c->bev));
    if (filtered(c))
        n += evbuffer_get_length(bufferevent_get_output(c->sock));
    return n;
}

static size_t conn_mem(const sl_conn *c)
{
    return sl_conn_out_len(c) + c->qmem;
}

int sl_conn_out_high(const sl_conn *c)
{
    return conn_mem(c) >= (size_t)c->b->cfg.output_high_water;
}

int sl_conn_reading(const sl_conn *c)
{
    sl_conn *m = (sl_conn *)c;
    if (c->closing || c->dead)
        return 0;
    update_pause(m);
    return !c->paused;
}

int sl_conn_closing(const sl_conn *c)
{
    return c->closing || c->dead;
}

void sl_conn_write(sl_conn *c, const void *p, size_t n)
{
    if (c->dead || c->lingering)
        return;
    c->bytes_out += n;
    bufferevent_write(c->bev, p, n);
}

/* Write the (small) output now rather than in the next loop iteration: a
 * socket bufferevent writes only once epoll reports the socket writable,
 * one more loop pass before a reply that an fdatasync just released
 * leaves (about 4% of a STOMP receipt on every send, 12 alternated
 * pairs). The bufferevent keeps the start of its output buffer frozen
 * outside its own writes, so unfreeze it around ours; errors and EAGAIN
 * are left to the bufferevent's own write. */
void sl_conn_write_now(sl_conn *c)
{
    /* a filter moved its output to the socket's at once */
    struct evbuffer *out = bufferevent_get_output(c->sock);
    size_t n = evbuffer_get_length(out);
    /* TLS: the bytes must go through SSL_write, the bufferevent's job */
    if (n == 0 || n > WRITE_NOW_MAX || c->closing || c->dead ||
        c->transport != SL_TRANSPORT_TCP)
        return;
    evbuffer_unfreeze(out, 1);
    evbuffer_write(out, bufferevent_getfd(c->bev));
    evbuffer_freeze(out, 1);
}

void sl_conn_kick(sl_conn *c)
{
    if (!c->dead)
        event_active(c->work_ev, EV_TIMEOUT, 0);
}

/* ---- rate-limited warnings ------------------------------------------------ */

/* The shared body of sl_conn_warn and the broker's own limited lines:
 * slots remember up to n kinds. */
static void warn_limited(warn_slot *slots, size_t n, const char *subsys,
                         const char *prefix, const char *kind,
                         const char *fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));
static void warn_limited(warn_slot *slots, size_t n, const char *subsys,
                         const char *prefix, const char *kind,
                         const char *fmt, va_list ap)
{
    int64_t now = sl_now_ms();
    warn_slot *s = NULL, *old = &slots[0];
    char line[512];
    size_t i;

    if (SL_WARN < sl_log_level)
        return;
    for (i = 0; i < n; i++) {
        if (slots[i].kind == kind) {
            s = &slots[i];
            break;
        }
        if (!slots[i].kind || slots[i].start_ms < old->start_ms)
            old = &slots[i];
    }
    if (!s) {
        s = old;
        if (s->kind && s->more > 0)
            sl_log_write(SL_WARN, subsys,
                         "%s... and %llu more like this (%s) in the last "
                         "%d s",
                         prefix, (unsigned long long)s->more, s->kind,
                         WARN_WINDOW_MS / 1000);
        s->kind = kind;
        s->start_ms = 0;
        s->more = 0;
    }
    if (s->start_ms && now - s->start_ms < WARN_WINDOW_MS) {
        s->more++;
        return;
    }
    vsnprintf(line, sizeof(line), fmt, ap);
    if (s->more > 0)
        sl_log_write(SL_WARN, subsys,
                     "%s%s (and %llu more like this in the last %d s)", prefix,
                     line, (unsigned long long)s->more, WARN_WINDOW_MS / 1000);
    else
        sl_log_write(SL_WARN, subsys, "%s%s", prefix, line);
    s->start_ms = now;
    s->more = 0;
}

static void warn_flush(warn_slot *slots, size_t n, const char *subsys,
                       const char *prefix)
{
    for (size_t i = 0; i < n; i++) {
        if (slots[i].kind && slots[i].more > 0 && SL_WARN >= sl_log_level)
            sl_log_write(SL_WARN, subsys,
                         "%s... and %llu more like this (%s) in the last "
                         "%d s",
                         prefix, (unsigned long long)slots[i].more,
                         slots[i].kind, WARN_WINDOW_MS / 1000);
        slots[i].more = 0;
    }
}

void sl_conn_warn(sl_conn *c, const char *kind, const char *fmt, ...)
{
    char prefix[100];
    va_list ap;
    snprintf(prefix, sizeof(prefix), "peer %s: ", c->peer);
    va_start(ap, fmt);
    warn_limited(c->warns, WARN_KINDS, c->ops->name, prefix, kind, fmt, ap);
    va_end(ap);
}

/* Broker-wide limited lines (refused connections, accept errors). */
static void broker_warn(sl_broker *b, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void broker_warn(sl_broker *b, const char *kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    warn_limited(b->accept_warns, SL_BROKER_WARN_KINDS, "conn",
                 "", kind, fmt, ap);
    va_end(ap);
}

/* One INFO line per connection opened and closed, at most CONNLOG_BURST
 * per CONNLOG_WINDOW_MS: a client reconnecting in a loop (or a load
 * balancer's health checks) writes a bounded log; the lines left out are
 * counted and the count logged when the next window starts (or at stop). */
static void connlog_flush(sl_broker *b)
{
    if (b->connlog_more > 0 && SL_INFO >= sl_log_level)
        sl_log_write(SL_INFO, "conn",
                     "... and %llu more connections opened or closed in "
                     "that %d s (at most %d lines per %d s)",
                     (unsigned long long)b->connlog_more,
                     CONNLOG_WINDOW_MS / 1000, CONNLOG_BURST,
                     CONNLOG_WINDOW_MS / 1000);
    b->connlog_more = 0;
}

static void conn_info(sl_broker *b, const char *fmt, ...)
{
    char line[512];
    int64_t now;
    va_list ap;

    if (SL_INFO < sl_log_level)
        return;
    now = sl_now_ms();
    if (now - b->connlog_ms >= CONNLOG_WINDOW_MS) {
        connlog_flush(b);
        b->connlog_ms = now;
        b->connlog_n = 0;
    }
    if (b->connlog_n >= CONNLOG_BURST) {
        b->connlog_more++;
        return;
    }
    b->connlog_n++;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    sl_log_write(SL_INFO, "conn", "%s", line);
}

/* ---- the registry, read-only ------------------------------------------------ */

const char *sl_conn_listener_name(enum sl_listener l)
{
    static const char *const names[SL_LISTENER_N] = {
        [SL_LISTENER_BINARY] = "binary",
        [SL_LISTENER_STOMP] = "stomp",
        [SL_LISTENER_STOMP_WS] = "stomp-ws",
        [SL_LISTENER_HTTP] = "http",
    };
    return (unsigned)l < SL_LISTENER_N && names[l] ? names[l] : "other";
}

void sl_conn_stat_get(const sl_conn *c, sl_conn_stat *st)
{
    st->id = c->id;
    st->protocol = c->ops->name;
    st->listener = sl_conn_listener_name(c->lis);
    st->peer = c->peer;
    st->opened_ms = c->opened_ms;
    st->bytes_in = c->bytes_in;
    st->bytes_out = c->bytes_out;
    st->replies = c->replies;
    st->replies_owed = c->npending;
    st->out_bytes = sl_conn_out_len(c);
    st->closing = c->closing || c->dead;
}

void sl_conn_foreach(sl_broker *b,
                     void (*fn)(void *arg, sl_conn *c, const sl_conn_stat *st),
                     void *arg)
{
    sl_conn_stat st;
    for (sl_conn *c = b->conns; c; c = c->next) {
        if (!c->opened)
            continue;
        sl_conn_stat_get(c, &st);
        fn(arg, c, &st);
    }
}

sl_conn *sl_conn_find(sl_broker *b, uint64_t id)
{
    for (sl_conn *c = b->conns; c; c = c->next)
        if (c->id == id && c->opened)
            return c;
    return NULL;
}

const char *sl_conn_user(sl_conn *c)
{
    return c->opened && c->ops->user ? c->ops->user(c->state, c) : NULL;
}

void sl_conn_describe(sl_conn *c, struct sl_jw *j)
{
    if (c->opened && c->ops->describe)
        c->ops->describe(c->state, c, j);
}

void sl_conn_totals_get(sl_broker *b, enum sl_listener l, sl_conn_totals *t)
{
    t->open = 0;
    t->accepted = b->protos[l].accepted;
    t->bytes_in = b->protos[l].gone_in;
    t->bytes_out = b->protos[l].gone_out;
    for (sl_conn *c = b->conns; c; c = c->next) {
        if (c->lis != l)
            continue;
        t->open++;
        t->bytes_in += c->bytes_in;
        t->bytes_out += c->bytes_out;
    }
}

/* ---- waits ------------------------------------------------------------------ */

sl_wait *sl_wait_new(sl_conn *c)
{
    sl_wait *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->refs = 1;    /* the caller's */
    w->pending = 1; /* "being built"; sl_wait_built drops it */
    if (c && !c->dead) {
        w->c = c;
        w->next = c->waits;
        if (c->waits)
            c->waits->prev = w;
        c->waits = w;
    }
    return w;
}

static void wait_detach(sl_wait *w)
{
    sl_conn *c = w->c;
    if (!c)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        c->waits = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->c = NULL;
}

void sl_wait_unref(sl_wait *w)
{
    if (w && --w->refs == 0) {
        wait_detach(w);
        free(w);
    }
}

void sl_wait_hold(sl_wait *w)
{
    w->refs++;
    w->pending++;
}

static void wait_done_one(sl_wait *w, sl_err err)
{
    if (err != SL_OK && w->err == SL_OK)
        w->err = err;
    if (--w->pending == 0 && w->c)
        conn_flush(w->c);
}

void sl_wait_release(sl_wait *w, sl_err err)
{
    wait_done_one(w, err);
    sl_wait_unref(w); /* the callback's */
}

void sl_wait_built(sl_wait *w)
{
    wait_done_one(w, SL_OK);
}

void sl_wait_fail(sl_wait *w, sl_err err)
{
    if (err != SL_OK && w->err == SL_OK)
        w->err = err;
}

sl_err sl_wait_err(const sl_wait *w)
{
    return w->err;
}

void sl_wait_set_what(sl_wait *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->what, sizeof(w->what), fmt, ap);
    va_end(ap);
}

const char *sl_wait_what(const sl_wait *w)
{
    return w->what;
}

/* ---- lifecycle ------------------------------------------------------------ */

static void reply_free(sl_reply *r)
{
    if (r->buf)
        evbuffer_free(r->buf);
    sl_wait_unref(r->w);
    free(r->note);
    free(r);
}

sl_err sl_conn_on_close(sl_conn *c, sl_conn_close_fn fn, void *arg)
{
    if (c->dead || c->hooks_ran)
        return SL_ERR_CLOSED;
    for (size_t i = 0; i < c->nhooks; i++)
        if (c->hooks[i].fn == fn && c->hooks[i].arg == arg)
            return SL_OK;
    if (c->nhooks == c->caphooks) {
        size_t nc = c->caphooks ? c->caphooks * 2 : 2;
        close_hook *h = realloc(c->hooks, nc * sizeof(*h));
        if (!h)
            return SL_ERR_NOMEM;
        c->hooks = h;
        c->caphooks = nc;
    }
    c->hooks[c->nhooks].fn = fn;
    c->hooks[c->nhooks].arg = arg;
    c->nhooks++;
    return SL_OK;
}

void sl_conn_off_close(sl_conn *c, sl_conn_close_fn fn, void *arg)
{
    for (size_t i = 0; i < c->nhooks; i++)
        if (c->hooks[i].fn == fn && c->hooks[i].arg == arg) {
            memmove(&c->hooks[i], &c->hooks[i + 1],
                    (c->nhooks - i - 1) * sizeof(*c->hooks));
            c->nhooks--;
            return;
        }
}

/* Run the close hooks once. The list is detached first: a hook may call
 * sl_conn_off_close (no-op then), complete replies or close other
 * connections. */
static void run_close_hooks(sl_conn *c)
{
    close_hook *h = c->hooks;
    size_t n = c->nhooks;

    c->hooks_ran = 1;
    c->hooks = NULL;
    c->nhooks = c->caphooks = 0;
    for (size_t i = 0; i < n; i++)
        h[i].fn(h[i].arg, c);
    free(h);
}

/* Cancel every reply still queued: done ones are freed, pending ones are
 * told through their cancel function, or orphaned (sl_reply_done frees
 * them) when a handler still holds them. */
static void cancel_replies(sl_conn *c)
{
    sl_reply *r, *n;
    for (r = c->head; r; r = n) {
        n = r->next;
        if (r->done) {
            reply_free(r);
        } else if (r->cancel) {
            void (*fn)(void *) = r->cancel;
            r->cancel = NULL;
            fn(r->cancel_arg);
            reply_free(r);
        } else {
            r->c = NULL;
            r->next = NULL;
        }
    }
    c->head = c->tail = NULL;
    c->npending = 0;
    c->qmem = 0;
}

static void timer_set(sl_conn *c, int kind, int64_t ms)
{
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    c->timer_kind = kind;
    evtimer_add(c->timer_ev, &tv);
}

static void timer_clear(sl_conn *c, int kind)
{
    if (c->timer_kind == kind) {
        evtimer_del(c->timer_ev);
        c->timer_kind = TIMER_NONE;
    }
}

static void ingress_unlink(sl_conn *c)
{
    sl_broker *b = c->b;
    if (c->in_prev)
        c->in_prev->in_next = c->in_next;
    else
        b->ingress = c->in_next;
    if (c->in_next)
        c->in_next->in_prev = c->in_prev;
    c->in_prev = c->in_next = NULL;
    c->ingress = 0;
}

/* Mark dead, cancel pending replies, run the close hooks, queue for
 * freeing. Idempotent. */
static void conn_kill(sl_conn *c, const char *why)
{
    sl_broker *b = c->b;

    if (c->dead)
        return;
    c->dead = 1;
    if (c->opened && (c->ops->flags & SL_CONN_QUIET)) {
        sl_log(SL_DEBUG, "conn",
               "peer %s: connection %llu closed (%s): %s, %llu bytes in, "
               "%llu out",
               c->peer, (unsigned long long)c->id, why, c->ops->name,
               (unsigned long long)c->bytes_in,
               (unsigned long long)c->bytes_out);
    } else if (c->opened) {
        const char *u = sl_conn_user(c);
        conn_info(b,
                  "peer %s: connection %llu closed (%s): %s, user %s, "
                  "%.1f s, %llu bytes in, %llu out",
                  c->peer, (unsigned long long)c->id, why, c->ops->name,
                  u ? u : "-", (double)(sl_now_ms() - c->opened_ms) / 1000.0,
                  (unsigned long long)c->bytes_in,
                  (unsigned long long)c->bytes_out);
    }
    b->protos[c->lis].gone_in += c->bytes_in;
    b->protos[c->lis].gone_out += c->bytes_out;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    cancel_replies(c);
    while (c->waits)
        wait_detach(c->waits);
    /* after the cancels: a hook sees no pending reply of its own */
    if (!c->hooks_ran)
        run_close_hooks(c);
    if (c->ingress)
        ingress_unlink(c);
    evtimer_del(c->timer_ev);
    event_del(c->work_ev);
    if (c->prev)
        c->prev->next = c->next;
    else
        b->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    b->nconns--;
    if (c->addr_len)
        addr_unref(b, c->addr, c->addr_len);
    c->reap_next = b->reap;
    b->reap = c;
    event_active(b->reap_ev, EV_READ, 0);
    sl_server_check_stopped(b);
}

void sl_conn_abort(sl_conn *c, const char *why)
{
    conn_kill(c, why);
}

static void accept_resume(sl_broker *b);

void sl_conn_reap_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_broker *b = arg;
    size_t held = 0;
    int any = 0;
    while (b->reap) {
        sl_conn *c = b->reap;
        char prefix[100];
        b->reap = c->reap_next;
        if (c->opened && c->ops->on_close)
            c->ops->on_close(c->state, c);
        snprintf(prefix, sizeof(prefix), "peer %s: ", c->peer);
        warn_flush(c->warns, WARN_KINDS, c->ops->name, prefix);
        held += c->peak;
        if (c->sock_cb)
            evbuffer_remove_cb_entry(bufferevent_get_output(c->sock),
                                     c->sock_cb);
        bufferevent_free(c->bev);
        event_free(c->work_ev);
        event_free(c->timer_ev);
        free(c->hooks);
        free(c->tls_subject);
        free(c->tls_cn);
        free(c->tls_san);
        if (c->auth_free)
            c->auth_free(c->auth);
        free(c);
        any = 1;
    }
    /* Many small chunks freed (a connection that held replies nobody
     * read) stay with the process unless handed back. */
    b->reaped_bytes += held;
    if (b->reaped_bytes >= TRIM_BYTES) {
        b->reaped_bytes = 0;
        malloc_trim(0);
    }
    if (any && b->accept_paused)
        accept_resume(b);
}

/* All replies sent and closing: shut the write side and linger. */
static void maybe_finish_close(sl_conn *c)
{
    if (c->dead || !c->closing || c->lingering || c->head)
        return;
    if (sl_conn_out_len(c) > 0) {
        /* a peer that does not take its output gets CLOSE_DRAIN_MS */
        if (c->timer_kind != TIMER_DRAIN)
            timer_set(c, TIMER_DRAIN, CLOSE_DRAIN_MS);
        return;
    }
    if (c->b->stopping) {
        conn_kill(c, "shutdown");
        return;
    }
    if (filtered(c) && !c->finished) {
        /* the transport's goodbye (a WebSocket Close frame) goes out
         * before the socket's write side is shut */
        c->finished = 1;
        bufferevent_flush(c->bev, EV_WRITE, BEV_FINISHED);
        if (sl_conn_out_len(c) > 0) {
            timer_set(c, TIMER_DRAIN, CLOSE_DRAIN_MS);
            return;
        }
    }
    c->lingering = 1;
    /* read_cb discards whatever still arrives (never drain here: a
     * handler may be reading the current frame from the input) */
    if (c->transport == SL_TRANSPORT_TLS && !c->tls_hs) {
        /* close_notify first, so the peer sees a clean end, not a
         * truncation (everything before it was written already) */
        SSL *ssl = bufferevent_openssl_get_ssl(c->sock);
        if (ssl)
            SSL_shutdown(ssl);
        ERR_clear_error();
    }
    shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    bufferevent_set_timeouts(c->bev, NULL, NULL);
    timer_set(c, TIMER_LINGER, CLOSE_LINGER_MS);
    bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
    bufferevent_enable(c->bev, EV_READ);
}

void sl_conn_close_after_reply(sl_conn *c)
{
    if (c->closing || c->dead)
        return;
    c->closing = 1;
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    /* on_drain sees it closing: stop deliveries (STOMP takes back the
     * credits of its queue consumers) */
    sl_conn_kick(c);
    maybe_finish_close(c);
}

/* ---- back-pressure -------------------------------------------------------- */

static void update_pause(sl_conn *c)
{
    sl_broker *b = c->b;
    size_t mem = conn_mem(c);
    size_t hw = (size_t)b->cfg.output_high_water;
    unsigned was = c->paused;

    if (mem > c->peak)
        c->peak = mem;
    if (mem > hw)
        c->paused |= PAUSE_OUTPUT;
    else if (mem <= hw / 2)
        c->paused &= ~PAUSE_OUTPUT;
    if (c->npending >= (size_t)b->cfg.max_pending_requests)
        c->paused |= PAUSE_PENDING;
    else if (c->npending <= (size_t)b->cfg.max_pending_requests / 2)
        c->paused &= ~PAUSE_PENDING;
    if (c->closing || c->dead)
        return;
    if (!was && c->paused) {
        bufferevent_disable(c->bev, EV_READ);
        sl_log(SL_DEBUG, "conn",
               "peer %s: paused reading (output %zu, replies %zu costing "
               "%zu)",
               c->peer, sl_conn_out_len(c), c->npending, c->qmem);
    } else if (was && !c->paused) {
        bufferevent_enable(c->bev, EV_READ);
        /* frames already buffered get no new read event */
        sl_conn_kick(c);
    }
}

void sl_conn_pause(sl_conn *c)
{
    if (c->dead)
        return;
    c->paused |= PAUSE_PROTO;
    bufferevent_disable(c->bev, EV_READ);
}

void sl_conn_resume(sl_conn *c)
{
    if (!(c->paused & PAUSE_PROTO))
        return;
    c->paused &= ~PAUSE_PROTO;
    update_pause(c);
    if (!c->paused && !c->closing && !c->dead) {
        bufferevent_enable(c->bev, EV_READ);
        sl_conn_kick(c);
    }
}

static size_t reply_cost(size_t len)
{
    return REPLY_OVERHEAD + (len == 0 ? 0 : len < CHAIN_MIN ? CHAIN_MIN : len);
}

/* Move r's bytes to the output: small ones are copied into the output's
 * own chains (dense), larger ones and file segments move as they are. */
static void reply_to_output(sl_conn *c, sl_reply *r, struct evbuffer *out)
{
    size_t n = evbuffer_get_length(r->buf);
    if (n == 0)
        return;
    c->bytes_out += n;
    if (n <= COPY_MAX && !r->has_file) {
        unsigned char *p = evbuffer_pullup(r->buf, -1);
        if (p && evbuffer_add(out, p, n) == 0)
            return;
    }
    evbuffer_add_buffer(out, r->buf);
}

static int reply_ready(const sl_reply *r)
{
    return r->done && (!r->w || r->w->pending == 0);
}

/* Move the completed prefix of the reply FIFO to the output. */
static void conn_flush(sl_conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    int moved = 0;

    if (c->in_flush || c->dead)
        return;
    c->in_flush = 1;
    /* A reply restarts the idle clock (re-adding the read event resets its
     * timeout): a long poll answered just now is not an idle peer. */
    if (c->head && reply_ready(c->head) && (c->ops->flags & SL_CONN_IDLE) &&
        idle_ms(c) > 0 && !c->paused && !c->closing)
        bufferevent_enable(c->bev, EV_READ);
    while (c->head && reply_ready(c->head)) {
        sl_reply *r = c->head;
        int close_after;
        c->head = r->next;
        if (!c->head)
            c->tail = NULL;
        c->npending--;
        c->qmem -= r->cost;
        if (r->w && r->w->err != SL_OK && r->fail)
            r->fail(c->state, r, r->w->err, r->w->what,
                    r->note ? r->note : "");
        close_after = r->close_after;
        if (!r->drop) {
            reply_to_output(c, r, out);
            moved = 1;
            if (r->lat)
                sl_lat_observe(r->lat, sl_fs_mono_us() - r->t0_us);
        }
        reply_free(r);
        if (close_after) {
            cancel_replies(c);
            c->in_flush = 0;
            sl_conn_close_after_reply(c); /* no-op if closing already */
            break;
        }
    }
    c->in_flush = 0;
    /* Replies released by a durable notify or a group commit go out now;
     * those completed while reading frames go out together after it. */
    if (moved && !c->in_read)
        sl_conn_write_now(c);
    update_pause(c);
    maybe_finish_close(c);
}

/* ---- replies ------------------------------------------------------------- */

sl_reply *sl_reply_new(sl_conn *c, uint32_t tag)
{
    sl_reply *r;
    if (c->dead)
        return NULL;
    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->buf = evbuffer_new();
    if (!r->buf) {
        free(r);
        return NULL;
    }
    /* Its chains end up in the socket's output: let evbuffer_add_file
     * make sendfile segments rather than mmap and copy them. Not for TLS,
     * whose bytes are encrypted in user space (tls.c, kernel TLS). */
    if (c->transport == SL_TRANSPORT_TCP)
        evbuffer_set_flags(r->buf, EVBUFFER_FLAG_DRAINS_TO_FD);
    r->c = c;
    r->corr = tag;
    r->cost = reply_cost(0);
    if (c->tail)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    c->npending++;
    c->replies++;
    c->qmem += r->cost;
    update_pause(c);
    return r;
}

sl_err sl_reply_add(sl_reply *r, const void *p, size_t len)
{
    return evbuffer_add(r->buf, p, len) == 0 ? SL_OK : SL_ERR_NOMEM;
}

sl_err sl_reply_add_file(sl_reply *r, int fd, uint64_t off, size_t len)
{
    r->has_file = 1;
    /* evbuffer_add_file owns fd from here on, also on error */
    return evbuffer_add_file(r->buf, fd, (ev_off_t)off, (ev_off_t)len) == 0
               ? SL_OK
               : SL_ERR_NOMEM;
}

struct evbuffer *sl_reply_evbuffer(sl_reply *r)
{
    r->has_file = 1; /* it may get anything */
    return r->buf;
}

void sl_reply_clear(sl_reply *r)
{
    evbuffer_drain(r->buf, evbuffer_get_length(r->buf));
}

uint32_t sl_reply_corr(const sl_reply *r)
{
    return r->corr;
}

void sl_reply_set_cancel(sl_reply *r, void (*fn)(void *arg), void *arg)
{
    r->cancel = fn;
    r->cancel_arg = arg;
}

void sl_reply_close_after(sl_reply *r)
{
    r->close_after = 1;
}

void sl_reply_time(sl_reply *r, struct sl_lat_hist *h)
{
    r->lat = h;
    r->t0_us = sl_fs_mono_us();
}

void sl_reply_wait(sl_reply *r, sl_wait *w)
{
    if (!w)
        return;
    if (r->w)
        sl_wait_unref(r->w);
    w->refs++;
    r->w = w;
}

void sl_reply_on_fail(sl_reply *r, sl_reply_fail_fn fn, const char *note)
{
    r->fail = fn;
    free(r->note);
    r->note = note ? strdup(note) : NULL;
}

void sl_reply_done(sl_reply *r)
{
    sl_conn *c = r->c;
    size_t cost;
    if (!c) {
        reply_free(r);
        return;
    }
    r->done = 1;
    r->cancel = NULL;
    /* now that its size is known */
    cost = reply_cost(evbuffer_get_length(r->buf));
    c->qmem += cost - r->cost;
    r->cost = cost;
    if (r == c->head)
        conn_flush(c);
    else
        update_pause(c);
}

void sl_reply_drop(sl_reply *r)
{
    r->drop = 1;
    sl_reply_done(r);
}

/* ---- pacing (SL_PRI_INGRESS) ------------------------------------------------ */

/* A producer (sl_conn_set_pace) that streams, i.e. whose last read found
 * more than libevent's 4 KiB waiting, reads at SL_PRI_INGRESS (ops.h);
 * every other connection at the normal priority. It stays one until a
 * smaller read finds no reply owed (a window of receipts has drained).
 * One that sends a frame and waits for its reply cannot outrun the
 * consumers, and at the lower priority it would wait behind their acks
 * (4% on a STOMP receipt on every send). */
static void set_priority(sl_conn *c)
{
    sl_broker *b = c->b;
    int want = c->pace && c->streaming, ingress;
    if (c->dead || filtered(c)) /* never paced (sl_conn_set_pace) */
        return;
    /* libevent refuses while one of the events is active (it may have
     * moved one of the two): retried from the next read, work or guard
     * callback, and until then the guard looks after the connection */
    c->pri_stale = bufferevent_priority_set(c->bev, want ? SL_PRI_INGRESS
                                                         : SL_PRI_NORMAL) != 0;
    ingress = want || c->pri_stale;
    if (ingress != c->ingress) {
        if (ingress) {
            c->ingress = 1;
            c->in_prev = NULL;
            c->in_next = b->ingress;
            if (c->in_next)
                c->in_next->in_prev = c;
            b->ingress = c;
        } else
            ingress_unlink(c);
    }
}

void sl_conn_set_pace(sl_conn *c, int may_pace)
{
    /* pacing reads the socket directly: not under a transport's filter,
     * nor under TLS */
    may_pace = may_pace != 0 && !filtered(c) &&
               c->transport == SL_TRANSPORT_TCP;
    if (c->pace == may_pace)
        return;
    c->pace = may_pace;
    set_priority(c);
}

/*
 * Paced reads are SL_PRI_INGRESS (ops.h): they run once nothing more
 * urgent is active. A loop kept busy for longer by other work (a binary
 * client producing flat out, a consumer replaying a long log) would leave
 * them waiting for as long as that lasts. So every read callback of
 * normal priority arms a timer, of normal priority too, that reads for
 * every paced connection not served for INGRESS_MAX_WAIT_US: a
 * producer's wait is bounded. An idle loop arms nothing.
 */
static void ingress_arm(sl_broker *b)
{
    static const struct timeval tv = {0, INGRESS_MAX_WAIT_US};
    if (b->ingress && !evtimer_pending(b->ingress_ev, NULL))
        evtimer_add(b->ingress_ev, &tv);
}

static void ingress_guard_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_broker *b = arg;
    long long now = sl_fs_mono_us();
    sl_conn *c, *cn;
    size_t got;
    (void)fd;
    (void)what;
    for (c = b->ingress; c; c = cn) {
        cn = c->in_next; /* c may leave the list below */
        if (c->pri_stale)
            set_priority(c);
        if (c->closing || c->dead || c->paused || c->in_read ||
            c->in_limit || now - c->in_us < INGRESS_MAX_WAIT_US)
            continue;
        c->in_us = now;
        got = sl_ops_read_now(c->bev, c->ops->read_max ? c->ops->read_max
                                                       : SL_OPS_EV_READ_MAX);
        if (got < SL_OPS_EV_READ_MAX && c->npending == 0) {
            c->streaming = 0;
            set_priority(c);
        }
        if (got > 0)
            process_input(c);
        /* its write event waits at SL_PRI_INGRESS too */
        sl_conn_write_now(c);
    }
}

/* ---- input -------------------------------------------------------------- */

static void process_input(sl_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t len = evbuffer_get_length(in);

    if (c->in_read || c->dead)
        return;
    /* in_mark is what was left after the last on_input: the rest came in
     * since */
    if (len > c->in_mark)
        c->bytes_in += len - c->in_mark;
    c->in_mark = len;
    if (!c->plain_checked && c->transport == SL_TRANSPORT_TCP &&
        evbuffer_get_length(in) >= 6) {
        unsigned char h[6];
        size_t rl;
        c->plain_checked = 1;
        evbuffer_copyout(in, h, 6);
        rl = (size_t)h[3] << 8 | h[4];
        if (h[0] == 0x16 && h[1] == 0x03 && h[2] <= 0x04 && rl > 0 &&
            rl <= 18432 && h[5] == 0x01) {
            /* a TLS record holding a ClientHello (TLS 1.0..1.3): no
             * STOMP frame starts so, and a binary frame only with an api
             * key above 256; the client wants the TLS listener */
            broker_warn(c->b, "tls-on-plain",
                        "peer %s: closing, it started a TLS handshake on "
                        "the plaintext %s port (TLS clients connect to "
                        "the TLS listener, --tls-listen, "
                        "--stomp-tls-listen or --http-tls-listen)",
                        c->peer, c->ops->name);
            conn_kill(c, "TLS on a plaintext port");
            return;
        }
    }
    c->in_read = 1;
    /* the pause as it stands (set by replies and at frame boundaries):
     * output a protocol wrote of its own accord (deliveries) does not stop
     * the next frame, which may be the ack that frees it */
    if (!c->paused && !c->closing && evbuffer_get_length(in) > 0)
        c->ops->on_input(c->state, c, in);
    c->in_read = 0;
    if (!c->dead)
        c->in_mark = evbuffer_get_length(in);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    sl_conn *c = arg;
    if (c->lingering || c->closing || c->dead) {
        struct evbuffer *in = bufferevent_get_input(bev);
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    if (c->pace) {
        /* libevent's read filled its 4 KiB (the test sl_ops_read_more
         * makes): a streaming producer, to be paced */
        int streaming = evbuffer_get_length(bufferevent_get_input(bev)) >=
                            c->in_mark + SL_OPS_EV_READ_MAX ||
                        (c->streaming && c->npending > 0);
        if (streaming != c->streaming) {
            c->streaming = streaming;
            c->pri_stale = 1;
        }
    }
    if (c->pri_stale)
        set_priority(c);
    if (c->ingress)
        c->in_us = sl_fs_mono_us();
    else
        ingress_arm(c->b);
    /* libevent 2.1 reads at most 4 KiB per callback: take what the
     * socket holds, up to the protocol's read_max (not through a filter
     * nor TLS: the bufferevent reads the socket itself) */
    if (!c->in_read && !c->paused && !c->in_limit && c->ops->read_max &&
        !filtered(c) && c->transport == SL_TRANSPORT_TCP)
        sl_ops_read_more(bev, c->in_mark, c->ops->read_max);
    process_input(c);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    sl_conn *c = arg;
    (void)bev;
    /* a filter calls this after each pass, with the bytes still in the
     * socket's output: sock_out_cb calls again once they drained */
    if (filtered(c) && !c->dead &&
        evbuffer_get_length(bufferevent_get_output(c->sock)) >
            (size_t)c->b->cfg.output_high_water / 2)
        return;
    /* output drained below the low watermark */
    update_pause(c);
    if (!c->closing && !c->dead && c->ops->on_drain)
        sl_conn_kick(c);
    maybe_finish_close(c);
}

/* Deferred work: on_drain (deliver more), then buffered input. */
static void work_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_conn *c = arg;
    (void)fd;
    (void)what;
    if (c->dead)
        return;
    if (c->pri_stale)
        set_priority(c);
    /* also when closing: the protocol stops what it delivers */
    if (c->ops->on_drain)
        c->ops->on_drain(c->state, c);
    /* a filter left raw input in the socket's buffer while reading was
     * paused: it gets no new read event for it */
    if (filtered(c) && !c->dead && !c->in_read && !c->paused && !c->closing)
        bufferevent_flush(c->bev, EV_READ, BEV_NORMAL);
    if (!c->dead && !c->in_read)
        process_input(c);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_conn *c = arg;
    int kind = c->timer_kind;
    (void)fd;
    (void)what;
    c->timer_kind = TIMER_NONE;
    if (c->dead)
        return;
    switch (kind) {
    case TIMER_HANDSHAKE:
        sl_log(SL_INFO, "conn",
               "peer %s: closing, %s handshake not finished within %lld ms",
               c->peer, c->tls_hs ? "TLS" : c->ops->name,
               (long long)c->b->cfg.handshake_timeout_ms);
        conn_kill(c, "handshake timeout");
        break;
    case TIMER_LINGER:
        conn_kill(c, "linger timeout");
        break;
    case TIMER_DRAIN:
        sl_log(SL_INFO, "conn",
               "peer %s: output not drained %d ms after close: dropping it",
               c->peer, CLOSE_DRAIN_MS);
        conn_kill(c, "output not drained");
        break;
    default:
        break;
    }
}

/* The first DNS name or email address among x's subjectAltNames (the
 * name tls-cert-login san maps to a user), or NULL. */
static char *first_san(X509 *x)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    char *out = NULL;
    for (int i = 0; gens && !out && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        const ASN1_IA5STRING *s = g->type == GEN_DNS     ? g->d.dNSName
                                  : g->type == GEN_EMAIL ? g->d.rfc822Name
                                                         : NULL;
        int len = s ? ASN1_STRING_length(s) : 0;
        const unsigned char *d = s ? ASN1_STRING_get0_data(s) : NULL;
        /* no embedded NUL: "alice\0.evil" must not read as "alice" */
        if (d && len > 0 && memchr(d, 0, (size_t)len) == NULL)
            out = strndup((const char *)d, (size_t)len);
    }
    GENERAL_NAMES_free(gens);
    return out;
}

/* The TLS handshake finished: stop its timer, keep the verified client
 * certificate's subject. */
static void tls_connected(sl_conn *c)
{
    SSL *ssl = bufferevent_openssl_get_ssl(c->sock);
    X509 *x = ssl ? SSL_get0_peer_certificate(ssl) : NULL;

    c->tls_hs = 0;
    if (!c->hs_pending)
        timer_clear(c, TIMER_HANDSHAKE);
    if (x && SSL_get_verify_result(ssl) == X509_V_OK) {
        X509_NAME *n = X509_get_subject_name(x);
        BIO *bio = BIO_new(BIO_s_mem());
        char cn[256];
        if (bio && X509_NAME_print_ex(bio, n, 0, XN_FLAG_RFC2253) >= 0) {
            char buf[1024];
            int got = BIO_read(bio, buf, (int)sizeof(buf) - 1);
            buf[got > 0 ? got : 0] = '\0';
            c->tls_subject = strdup(buf);
        }
        BIO_free(bio);
        int cl = X509_NAME_get_text_by_NID(n, NID_commonName, cn, sizeof(cn));
        /* an embedded NUL would cut the name short: no CN then */
        if (cl > 0 && (size_t)cl == strlen(cn))
            c->tls_cn = strdup(cn);
        c->tls_san = first_san(x);
    }
    ERR_clear_error();
    sl_log(SL_DEBUG, "conn", "peer %s: TLS %s established%s%s", c->peer,
           ssl ? SSL_get_version(ssl) : "?",
           c->tls_subject ? ", client certificate " : "",
           c->tls_subject ? c->tls_subject : "");
}

/* Why a TLS connection failed, for the log line. */
static void tls_error_text(sl_conn *c, char *buf, size_t len)
{
    unsigned long e = bufferevent_get_openssl_error(c->sock);
    SSL *ssl = bufferevent_openssl_get_ssl(c->sock);
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    char r[160];
    int se = EVUTIL_SOCKET_ERROR();

    if (e)
        sl_tls_err_reason(e, r, sizeof(r));
    else if (se)
        snprintf(r, sizeof(r), "%s", evutil_socket_error_to_string(se));
    else
        snprintf(r, sizeof(r), "connection closed");
    while (bufferevent_get_openssl_error(c->sock))
        ; /* the rest of the queue */
    if (vr != X509_V_OK)
        snprintf(buf, len, "%s (client certificate: %s)", r,
                 X509_verify_cert_error_string(vr));
    else if (!strcmp(r, "wrong version number") ||
             !strcmp(r, "http request") ||
             !strcmp(r, "https proxy request") ||
             !strcmp(r, "packet length too long") ||
             !strcmp(r, "record layer failure"))
        snprintf(buf, len, "%s (not TLS: a plaintext client on a TLS port?)",
                 r);
    else
        snprintf(buf, len, "%s", r);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    sl_conn *c = arg;

    if (c->dead)
        return;
    if (what & BEV_EVENT_CONNECTED) {
        if (c->transport == SL_TRANSPORT_TLS)
            tls_connected(c);
        return;
    }
    if (c->tls_hs && (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))) {
        /* a scanner, a plaintext client on a TLS port, a client that
         * does not trust us or that we do not trust: one (broker-wide
         * rate-limited) line; a bare connect-and-close (a port probe)
         * only at DEBUG */
        char why[400];
        tls_error_text(c, why, sizeof(why));
        if ((what & BEV_EVENT_ERROR) || strcmp(why, "connection closed"))
            broker_warn(c->b, "tls-handshake",
                        "peer %s: TLS handshake on the %s port failed: %s",
                        c->peer, c->ops->name, why);
        else
            sl_log(SL_DEBUG, "conn",
                   "peer %s: closed before the TLS handshake", c->peer);
        conn_kill(c, "TLS handshake failed");
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        if (what & BEV_EVENT_WRITING) {
            sl_log(SL_INFO, "conn",
                   "peer %s: closing, it read nothing for %lld ms", c->peer,
                   (long long)idle_ms(c));
            conn_kill(c, "write timeout");
        } else if (c->npending > 0 || c->paused ||
                   evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
            /* waiting for our replies (long poll), not idle */
            if (!c->paused && !c->closing)
                bufferevent_enable(bev, EV_READ);
        } else {
            sl_log(c->ops->flags & SL_CONN_QUIET ? SL_DEBUG : SL_INFO,
                   "conn", "peer %s: closing idle connection", c->peer);
            conn_kill(c, "idle");
        }
        return;
    }
    if (what & BEV_EVENT_EOF) {
        if (c->lingering) {
            conn_kill(c, "eof after reply");
            return;
        }
        /* The peer sent all it will send: answer what is buffered, then
         * close once the replies are out. It can settle nothing more on
         * this connection: the close hooks run now (a parked long poll
         * may keep the connection open until it times out). */
        process_input(c);
        if (!c->dead) {
            c->closing = 1;
            bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
            sl_conn_kick(c); /* on_drain: stop deliveries */
            run_close_hooks(c);
            if (c->dead || c->lingering)
                return;
            if (!c->head && sl_conn_out_len(c) > 0) {
                maybe_finish_close(c); /* write_cb finishes */
                return;
            }
            if (!c->head)
                conn_kill(c, "eof");
        }
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        if (c->transport == SL_TRANSPORT_TLS) {
            char why[400];
            tls_error_text(c, why, sizeof(why));
            sl_conn_warn(c, "tls", "TLS error: %s", why);
        }
        conn_kill(c, "socket error");
        return;
    }
}

void sl_conn_handshake_done(sl_conn *c)
{
    if (!c->hs_pending)
        return;
    c->hs_pending = 0;
    timer_clear(c, TIMER_HANDSHAKE);
    if (c->in_limit) {
        c->in_limit = 0;
        bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
        if (c->ops->read_max)
            bufferevent_set_max_single_read(c->bev, c->ops->read_max);
    }
}

int sl_conn_is_tls(const sl_conn *c)
{
    return c->transport == SL_TRANSPORT_TLS;
}

void *sl_conn_auth(const sl_conn *c)
{
    return c->auth;
}

void sl_conn_set_auth(sl_conn *c, void *auth, void (*free_fn)(void *))
{
    if (c->auth_free && c->auth && c->auth != auth)
        c->auth_free(c->auth);
    c->auth = auth;
    c->auth_free = free_fn;
}

void sl_conn_handshake_begin(sl_conn *c, size_t input_limit)
{
    if (c->hs_pending || c->dead)
        return;
    if (c->b->cfg.handshake_timeout_ms > 0) {
        c->hs_pending = 1;
        timer_set(c, TIMER_HANDSHAKE, c->b->cfg.handshake_timeout_ms);
    }
    if (input_limit) {
        c->hs_pending = 1;
        sl_conn_limit_input(c, input_limit);
    }
}

void sl_conn_handshake_wait(sl_conn *c)
{
    timer_clear(c, TIMER_HANDSHAKE);
}

void sl_conn_limit_input(sl_conn *c, size_t bytes)
{
    c->in_limit = bytes;
    bufferevent_setwatermark(c->bev, EV_READ, 0, bytes);
    if (bytes)
        bufferevent_set_max_single_read(
            c->bev, c->ops->read_max && c->ops->read_max < bytes
                        ? c->ops->read_max
                        : bytes);
    else if (c->ops->read_max)
        bufferevent_set_max_single_read(c->bev, c->ops->read_max);
}

/* ---- accept ----------------------------------------------------------------
 */

/* Open connections per client address (max-connections-per-address):
 * an open hash table, kept only while the cap is set. */
typedef struct sl_addr_ent {
    unsigned char a[16];
    int len; /* 0 = empty slot */
    size_t n;
} addr_ent;

static uint32_t addr_hash(const unsigned char *a, int len)
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < len; i++)
        h = (h ^ a[i]) * 16777619u;
    return h;
}

static addr_ent *addr_find(sl_broker *b, const unsigned char *a, int len,
                           int create)
{
    size_t cap = b->addr_cap, i;
    addr_ent *t = b->addrs;
    if (create && (b->addr_used + 1) * 2 > cap) {
        size_t ncap = cap ? cap * 2 : 64;
        addr_ent *nt = calloc(ncap, sizeof(*nt));
        if (!nt)
            return NULL;
        for (i = 0; i < cap; i++) {
            size_t j;
            if (!t[i].len)
                continue;
            for (j = addr_hash(t[i].a, t[i].len) & (ncap - 1); nt[j].len;
                 j = (j + 1) & (ncap - 1))
                ;
            nt[j] = t[i];
        }
        free(t);
        b->addrs = t = nt;
        b->addr_cap = cap = ncap;
    }
    if (!cap)
        return NULL;
    for (i = addr_hash(a, len) & (cap - 1); t[i].len; i = (i + 1) & (cap - 1))
        if (t[i].len == len && memcmp(t[i].a, a, (size_t)len) == 0)
            return &t[i];
    if (!create)
        return NULL;
    memcpy(t[i].a, a, (size_t)len);
    t[i].len = len;
    t[i].n = 0;
    b->addr_used++;
    return &t[i];
}

static void addr_unref(sl_broker *b, const unsigned char *a, int len)
{
    addr_ent *e = addr_find(b, a, len, 0);
    if (e && e->n > 0)
        e->n--;
    /* empty entries stay (tombstones would complicate the probing); the
     * table is rebuilt without them when it grows */
    if (e && e->n == 0 && b->addr_used * 4 > b->addr_cap * 3 / 2) {
        addr_ent *t = b->addrs;
        size_t cap = b->addr_cap;
        b->addrs = NULL;
        b->addr_cap = b->addr_used = 0;
        for (size_t i = 0; i < cap; i++) {
            addr_ent *ne;
            if (!t[i].len || t[i].n == 0)
                continue;
            ne = addr_find(b, t[i].a, t[i].len, 1);
            if (ne)
                ne->n = t[i].n;
        }
        free(t);
    }
}

static void write_cb(struct bufferevent *bev, void *arg);

/* A filtered connection's socket output changed: once it drained below
 * the write watermark, what write_cb does for a plain socket. */
static void sock_out_cb(struct evbuffer *buf,
                        const struct evbuffer_cb_info *info, void *arg)
{
    sl_conn *c = arg;
    size_t lw = (size_t)c->b->cfg.output_high_water / 2;
    size_t now = evbuffer_get_length(buf);
    if (c->dead || info->n_deleted == 0)
        return;
    if (now == 0 || (now <= lw && info->orig_size > lw))
        write_cb(c->bev, c);
}

/* TLS over fd: bufferevent_openssl (tls.c's context). NULL on failure
 * (fd then still open). */
static struct bufferevent *tls_bev_new(sl_broker *b, evutil_socket_t fd)
{
    SSL *ssl = sl_tls_ssl_new(b);
    struct bufferevent *bev;
    if (!ssl)
        return NULL;
    bev = bufferevent_openssl_socket_new(b->base, fd, ssl,
                                         BUFFEREVENT_SSL_ACCEPTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    /* a peer that closes the socket without close_notify ends its input
     * like a TCP peer (EOF), not with an error */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* The transport seam: a socket bufferevent over TCP, or an OpenSSL one
 * for a TLS listener (t), filtered by the listener's transport if it has
 * one (sl_conn_set_transport). */
static struct bufferevent *conn_bev_new(sl_broker *b, enum sl_listener l,
                                        sl_conn *c, evutil_socket_t fd,
                                        enum sl_transport t, int *fd_closed)
{
    int one = 1;
    struct bufferevent *sock, *bev;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sock = t == SL_TRANSPORT_TLS
               ? tls_bev_new(b, fd)
               : bufferevent_socket_new(b->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->sock = sock;
    if (!sock || !b->protos[l].wrap)
        return sock;
    bev = b->protos[l].wrap(b->protos[l].wrap_arg, c, sock);
    if (!bev) {
        bufferevent_free(sock); /* closes fd */
        c->sock = NULL;
        *fd_closed = 1;
        return NULL;
    }
    c->sock_cb =
        evbuffer_add_cb(bufferevent_get_output(sock), sock_out_cb, c);
    return bev;
}

void sl_conn_accept(sl_broker *b, enum sl_listener l, evutil_socket_t fd,
                    const struct sockaddr *sa, int salen)
{
    sl_conn_accept_on(b, l, SL_TRANSPORT_TCP, fd, sa, salen);
}

void sl_conn_accept_on(sl_broker *b, enum sl_listener l, enum sl_transport t,
                       evutil_socket_t fd, const struct sockaddr *sa,
                       int salen)
{
    const sl_conn_ops *ops = b->protos[l].ops;
    unsigned char addr[16];
    int alen = 0;
    sl_conn *c;
    char host[64] = "?";
    int port = 0;
    struct timeval tv;
    addr_ent *ae = NULL;
    int fd_closed = 0;
    (void)salen;

    b->accept_paused = 0;
    if (b->emfile_ms && sl_now_ms() - b->emfile_ms >= EMFILE_EPISODE_MS) {
        /* descriptors are back for good: the episode is over */
        sl_log(SL_INFO, "conn",
               "accepting connections again (%llu refused while out of "
               "file descriptors)",
               (unsigned long long)b->emfile_refused);
        b->emfile_ms = 0;
        b->emfile_refused = 0;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        evutil_inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        port = ntohs(s4->sin_port);
        memcpy(addr, &s4->sin_addr, 4);
        alen = 4;
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        evutil_inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        port = ntohs(s6->sin6_port);
        memcpy(addr, &s6->sin6_addr, 16);
        alen = 16;
    }
    if (!ops || b->stopping || b->nconns >= (size_t)b->cfg.max_connections) {
        broker_warn(b, "refused", "peer %s:%d: refused (%s)", host, port,
                    !ops          ? "no protocol on this listener"
                    : b->stopping ? "shutting down"
                                  : "max-connections reached");
        evutil_closesocket(fd);
        return;
    }
    if (b->cfg.max_connections_per_address > 0 && alen) {
        ae = addr_find(b, addr, alen, 1);
        if (ae && ae->n >= (size_t)b->cfg.max_connections_per_address) {
            broker_warn(b, "refused-addr",
                        "peer %s:%d: refused (max-connections-per-address "
                        "%lld reached)",
                        host, port,
                        (long long)b->cfg.max_connections_per_address);
            evutil_closesocket(fd);
            return;
        }
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        evutil_closesocket(fd);
        return;
    }
    c->b = b;
    c->ops = ops;
    c->lis = l;
    c->id = ++b->conn_ids;
    c->opened_ms = sl_now_ms();
    b->protos[l].accepted++;
    c->transport = t;
    snprintf(c->peer, sizeof(c->peer), "%s:%d", host, port);
    c->bev = conn_bev_new(b, l, c, fd, t, &fd_closed);
    c->work_ev = event_new(b->base, -1, 0, work_cb, c);
    c->timer_ev = evtimer_new(b->base, timer_cb, c);
    if (!c->bev || !c->work_ev || !c->timer_ev) {
        if (c->bev) {
            if (c->sock_cb)
                evbuffer_remove_cb_entry(bufferevent_get_output(c->sock),
                                         c->sock_cb);
            bufferevent_free(c->bev);
        } else if (c->sock)
            bufferevent_free(c->sock);
        else if (!fd_closed)
            evutil_closesocket(fd);
        if (c->work_ev)
            event_free(c->work_ev);
        if (c->timer_ev)
            event_free(c->timer_ev);
        free(c);
        return;
    }
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    /* libevent's default is 16 KiB per read/write call: producers send
     * frames of up to a few MiB, fetch replies are larger still */
    if (ops->read_max)
        bufferevent_set_max_single_read(c->bev, ops->read_max);
    if (ops->write_max)
        bufferevent_set_max_single_write(c->bev, ops->write_max);
    bufferevent_setwatermark(c->bev, EV_WRITE,
                             (size_t)b->cfg.output_high_water / 2, 0);
    if ((ops->flags & SL_CONN_IDLE) && idle_ms(c) > 0) {
        tv.tv_sec = (time_t)(idle_ms(c) / 1000);
        tv.tv_usec = (suseconds_t)(idle_ms(c) % 1000) * 1000;
        bufferevent_set_timeouts(c->bev, &tv, &tv);
    }
    c->next = b->conns;
    if (b->conns)
        b->conns->prev = c;
    b->conns = c;
    b->nconns++;
    if (ae) {
        ae->n++;
        memcpy(c->addr, addr, (size_t)alen);
        c->addr_len = alen;
    }
    if ((ops->flags & SL_CONN_HANDSHAKE) && b->cfg.handshake_timeout_ms > 0)
        c->hs_pending = 1;
    /* the TLS handshake counts against the same timeout */
    if (t == SL_TRANSPORT_TLS)
        c->tls_hs = 1;
    if ((c->hs_pending || c->tls_hs) && b->cfg.handshake_timeout_ms > 0)
        timer_set(c, TIMER_HANDSHAKE, b->cfg.handshake_timeout_ms);
    if (ops->on_open(b->protos[l].arg, c, &c->state) != SL_OK) {
        conn_kill(c, "refused by the protocol");
        return;
    }
    c->opened = 1;
    if (!c->dead)
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (ops->flags & SL_CONN_QUIET)
        sl_log(SL_DEBUG, "conn", "peer %s: connection %llu opened (%s)",
               c->peer, (unsigned long long)c->id, ops->name);
    else
        conn_info(b, "peer %s: connection %llu opened (%s)", c->peer,
                  (unsigned long long)c->id, ops->name);
}

/* ---- out of descriptors ------------------------------------------------------ */

static void listeners_enable(sl_broker *b, int on)
{
    struct evconnlistener *ls[] = {b->bin_lis,      b->stomp_lis,
                                   b->ws_lis,       b->bin_tls_lis,
                                   b->stomp_tls_lis, b->wss_lis,
                                   b->http_lis,     b->http_tls_lis};
    for (size_t i = 0; i < sizeof(ls) / sizeof(ls[0]); i++) {
        if (!ls[i])
            continue;
        if (on)
            evconnlistener_enable(ls[i]);
        else
            evconnlistener_disable(ls[i]);
    }
}

static void accept_resume(sl_broker *b)
{
    if (b->stopping)
        return;
    if (b->spare_fd < 0)
        b->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    evtimer_del(b->accept_ev);
    listeners_enable(b, 1);
    /* the episode (one WARN line) lasts until accepts have worked for
     * EMFILE_EPISODE_MS: freeing a few descriptors, taking a few of the
     * waiting clients and running out again is the same episode */
}

static void accept_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    accept_resume(arg);
}

void sl_conn_accept_error(sl_broker *b, int err, evutil_socket_t lfd)
{
    static const struct timeval tv = {1, 0};
    if (err != EMFILE && err != ENFILE) {
        broker_warn(b, "accept", "accept failed: %s",
                    evutil_socket_error_to_string(err));
        return;
    }
    if (!b->emfile_ms)
        sl_log(SL_WARN, "conn",
               "out of file descriptors (%s) with %zu connections open: "
               "not accepting until some close; raise the limit "
               "(ulimit -n, LimitNOFILE) or lower max-connections",
               evutil_socket_error_to_string(err), b->nconns);
    b->emfile_ms = sl_now_ms();
    b->accept_paused = 1;
    listeners_enable(b, 0);
    /* The client that could not be accepted would wait in the backlog
     * with no answer: close the spare descriptor to accept it and close
     * it at once, so it sees a closed connection (and may retry). */
    if (b->spare_fd >= 0 && lfd >= 0) {
        int fd;
        close(b->spare_fd);
        b->spare_fd = -1;
        fd = accept(lfd, NULL, NULL);
        if (fd >= 0) {
            close(fd);
            b->emfile_refused++;
        }
        b->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    evtimer_add(b->accept_ev, &tv);
}

int sl_conn_init(sl_broker *b)
{
    b->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    b->accept_ev = evtimer_new(b->base, accept_timer_cb, b);
    b->ingress_ev = evtimer_new(b->base, ingress_guard_cb, b);
    b->reap_ev = event_new(b->base, -1, 0, sl_conn_reap_cb, b);
    if (!b->accept_ev || !b->ingress_ev || !b->reap_ev)
        return -1;
    return 0;
}

void sl_conn_fini(sl_broker *b)
{
    if (b->accept_ev)
        event_free(b->accept_ev);
    if (b->ingress_ev)
        event_free(b->ingress_ev);
    if (b->reap_ev)
        event_free(b->reap_ev);
    b->accept_ev = b->ingress_ev = b->reap_ev = NULL;
    if (b->spare_fd >= 0)
        close(b->spare_fd);
    b->spare_fd = -1;
    free(b->addrs);
    b->addrs = NULL;
    warn_flush(b->accept_warns, SL_BROKER_WARN_KINDS, "conn", "");
    connlog_flush(b);
}

void sl_conn_stop_all(sl_broker *b)
{
    sl_conn *c, *n;
    evtimer_del(b->accept_ev);
    for (c = b->conns; c; c = n) {
        n = c->next;
        sl_conn_close_after_reply(c);
    }
    sl_server_check_stopped(b);
}

void sl_conn_free_all(sl_broker *b)
{
    while (b->conns)
        conn_kill(b->conns, "shutdown");
    sl_conn_reap_cb(-1, 0, b);
}
