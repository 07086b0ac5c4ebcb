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
 *     bounded while the loop is busy. A protocol that has cut part of a
 *     large frame says how much is missing (sl_conn_want_input) and, on a
 *     plain TCP socket, SO_RCVLOWAT makes the kernel wake the loop only
 *     once that much is there (issue 20: 256 producers each sending
 *     frames of 256 KiB had each frame read in pieces, one per loop pass
 *     over all connections, every piece held in the heap meanwhile, and
 *     several read callbacks per frame instead of one). Linux caps the
 *     mark at half of tcp_rmem's maximum and grows the receive buffer to
 *     hold it; a nonblocking read still returns what is there, EOF and
 *     errors still wake. Below WANT_INPUT_MIN the mark stays 1 (a small
 *     rest is not worth a setsockopt); TLS and filtered connections are
 *     left alone (bytes inside TLS or a filter would not count). Bytes
 *     below the mark make no read event, so the idle timeout (5) reads
 *     them instead of closing: a peer sending a large frame slowly is
 *     not idle.
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
#include "broker/conn_int.h"

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
#include <sys/ioctl.h>
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

static void process_input(sl_conn *c);

/* The idle timeout of c's protocol (SL_CONN_IDLE), 0 = none. */
int64_t conn_idle_ms(const sl_conn *c)
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

/* Bytes waiting in c's socket (FIONREAD), 0 when unknown. */
static int conn_socket_pending(sl_conn *c)
{
    int n = 0;
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    if (fd < 0 || ioctl(fd, FIONREAD, &n) != 0)
        return 0;
    return n;
}

int conn_filtered(const sl_conn *c)
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
    if (conn_filtered(c))
        n += evbuffer_get_length(bufferevent_get_output(c->sock));
    return n;
}

size_t conn_mem(const sl_conn *c)
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
    conn_update_pause(m);
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

/* ---- lifecycle ------------------------------------------------------------ */

void conn_reply_free(sl_reply *r)
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
void conn_cancel_replies(sl_conn *c)
{
    sl_reply *r, *n;
    for (r = c->head; r; r = n) {
        n = r->next;
        if (r->done) {
            conn_reply_free(r);
        } else if (r->cancel) {
            void (*fn)(void *) = r->cancel;
            r->cancel = NULL;
            fn(r->cancel_arg);
            conn_reply_free(r);
        } else {
            r->c = NULL;
            r->next = NULL;
        }
    }
    c->head = c->tail = NULL;
    c->npending = 0;
    c->qmem = 0;
}

void conn_timer_set(sl_conn *c, int kind, int64_t ms)
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
void conn_kill(sl_conn *c, const char *why)
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
    conn_cancel_replies(c);
    while (c->waits)
        conn_wait_detach(c->waits);
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
        conn_addr_unref(b, c->addr, c->addr_len);
    c->reap_next = b->reap;
    b->reap = c;
    event_active(b->reap_ev, EV_READ, 0);
    sl_server_check_stopped(b);
}

void sl_conn_abort(sl_conn *c, const char *why)
{
    conn_kill(c, why);
}


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
        conn_warn_flush(c->warns, WARN_KINDS, c->ops->name, prefix);
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
        conn_accept_resume(b);
}

/* All replies sent and closing: shut the write side and linger. */
void conn_maybe_finish_close(sl_conn *c)
{
    if (c->dead || !c->closing || c->lingering || c->head)
        return;
    if (sl_conn_out_len(c) > 0) {
        /* a peer that does not take its output gets CLOSE_DRAIN_MS */
        if (c->timer_kind != TIMER_DRAIN)
            conn_timer_set(c, TIMER_DRAIN, CLOSE_DRAIN_MS);
        return;
    }
    if (c->b->stopping) {
        conn_kill(c, "shutdown");
        return;
    }
    if (conn_filtered(c) && !c->finished) {
        /* the transport's goodbye (a WebSocket Close frame) goes out
         * before the socket's write side is shut */
        c->finished = 1;
        bufferevent_flush(c->bev, EV_WRITE, BEV_FINISHED);
        if (sl_conn_out_len(c) > 0) {
            conn_timer_set(c, TIMER_DRAIN, CLOSE_DRAIN_MS);
            return;
        }
    }
    c->lingering = 1;
    /* conn_read_cb discards whatever still arrives (never drain here: a
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
    conn_timer_set(c, TIMER_LINGER, CLOSE_LINGER_MS);
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
    conn_maybe_finish_close(c);
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
    if (c->dead || conn_filtered(c)) /* never paced (sl_conn_set_pace) */
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
    may_pace = may_pace != 0 && !conn_filtered(c) &&
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

void conn_ingress_guard_cb(evutil_socket_t fd, short what, void *arg)
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
            conn_broker_warn(c->b, "tls-on-plain",
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

void conn_read_cb(struct bufferevent *bev, void *arg)
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
        !conn_filtered(c) && c->transport == SL_TRANSPORT_TCP)
        sl_ops_read_more(bev, c->in_mark, c->ops->read_max);
    process_input(c);
}

void conn_write_cb(struct bufferevent *bev, void *arg)
{
    sl_conn *c = arg;
    (void)bev;
    /* a filter calls this after each pass, with the bytes still in the
     * socket's output: conn_sock_out_cb calls again once they drained */
    if (conn_filtered(c) && !c->dead &&
        evbuffer_get_length(bufferevent_get_output(c->sock)) >
            (size_t)c->b->cfg.output_high_water / 2)
        return;
    /* output drained below the low watermark */
    conn_update_pause(c);
    if (!c->closing && !c->dead && c->ops->on_drain)
        sl_conn_kick(c);
    conn_maybe_finish_close(c);
}

/* Deferred work: on_drain (deliver more), then buffered input. */
void conn_work_cb(evutil_socket_t fd, short what, void *arg)
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
    if (conn_filtered(c) && !c->dead && !c->in_read && !c->paused && !c->closing)
        bufferevent_flush(c->bev, EV_READ, BEV_NORMAL);
    if (!c->dead && !c->in_read)
        process_input(c);
}

void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
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

void conn_event_cb(struct bufferevent *bev, short what, void *arg)
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
            conn_broker_warn(c->b, "tls-handshake",
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
                   (long long)conn_idle_ms(c));
            conn_kill(c, "write timeout");
        } else if (c->npending > 0 || c->paused ||
                   evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
            /* waiting for our replies (long poll), not idle */
            if (!c->paused && !c->closing)
                bufferevent_enable(bev, EV_READ);
        } else if (c->lowat > 1 && conn_socket_pending(c) > 0) {
            /* bytes of a large frame came below the read mark
             * (sl_conn_want_input), so no read event: not idle. They are
             * read now; a peer that stalls mid-frame is closed one idle
             * period later, when nothing more came. */
            sl_log(SL_DEBUG, "conn",
                   "peer %s: %d bytes of a large frame came below the read "
                   "mark; read by the idle check",
                   c->peer, conn_socket_pending(c));
            sl_ops_read_now(bev, c->ops->read_max ? c->ops->read_max
                                                  : SL_OPS_EV_READ_MAX);
            process_input(c);
            if (!c->dead && !c->paused && !c->closing)
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
                conn_maybe_finish_close(c); /* conn_write_cb finishes */
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
        conn_timer_set(c, TIMER_HANDSHAKE, c->b->cfg.handshake_timeout_ms);
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

/* The least rest of a frame worth an SO_RCVLOWAT (see "2. Reading"). */
#define WANT_INPUT_MIN (32 * 1024)

void sl_conn_want_input(sl_conn *c, size_t more)
{
    int v =
        more >= WANT_INPUT_MIN ? (more > INT32_MAX ? INT32_MAX : (int)more) : 1;
    evutil_socket_t fd;
    if (v == (c->lowat ? c->lowat : 1) || c->dead || conn_filtered(c) ||
        c->transport != SL_TRANSPORT_TCP)
        return;
    fd = bufferevent_getfd(c->bev);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof(v)) != 0)
        return; /* the loop is woken per byte, as before */
    c->lowat = v;
    if (v > 1)
        sl_log(SL_DEBUG, "conn", "peer %s: read mark set at %d bytes (the "
               "rest of a large frame)", c->peer, v);
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
