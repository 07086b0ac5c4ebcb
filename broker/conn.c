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
 *  9. Writing. Output to a socket with nothing waiting in its bufferevent
 *     (a protocol's own writes, small replies) is corked and leaves in one
 *     send() at the end of the loop pass, without arming the write event
 *     (see "corked output" below); the rest goes through the bufferevent.
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
 * Files (conn_int.h between them): this one the protocols, accessors,
 * life cycle, closing (6) and handshakes; conn_input.c pacing and reading
 * (2), the timer (5) and the socket's events; conn_reply.c the reply
 * queue and back-pressure (3, 4); conn_registry.c rate-limited lines and
 * the registry (7, 8); conn_accept.c accept and limits (1), transports.
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

/* The idle timeout of c's protocol (SL_CONN_IDLE), 0 = none. */
int64_t conn_idle_ms(const sl_conn *c)
{
    return c->ops->idle_ms ? c->ops->idle_ms : c->b->cfg.idle_timeout_ms;
}

/* ---- protocols ----------------------------------------------------------- */

void sl_conn_set_proto(sl_broker *b, enum sl_listener l, const sl_conn_ops *ops,
                       void *arg)
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

/* ---- small accessors ----------------------------------------------------- */

const char *sl_conn_peer(const sl_conn *c)
{
    return c->peer;
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
    size_t n =
        evbuffer_get_length(bufferevent_get_output(c->bev)) + c->cork_len;
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

/* ---- corked output -------------------------------------------------------
 *
 * A socket bufferevent sends only once epoll says the socket is writable:
 * each write arms the write event (epoll_ctl), takes one more loop pass
 * (epoll_wait) and disarms it again (epoll_ctl), although a socket that
 * sent everything before is writable already. For a STOMP consumer with
 * one message in flight that was 2 epoll_ctl and a loop pass for every
 * MESSAGE, and as many for every RECEIPT a producer waits for (issue 20,
 * window of one). So output written while nothing waits in the
 * bufferevent (sl_conn_write, small replies) is corked instead: copied
 * into c->cork, and cork_ev (SL_PRI_NORMAL, activated by the first such
 * write of the pass) sends each corked connection's bytes in one send()
 * once the callbacks of the pass ran; what the socket does not take
 * (EAGAIN, a partial send) and errors go the bufferevent's way, as
 * before. Every other way into the output uncorks first (sl_conn_write
 * of a larger buffer, sl_conn_write_direct, replies moved as buffers,
 * sl_conn_write_now, closing), so bytes keep their order. The cork holds
 * at most CORK_MAX and half of output-high-water: a connection whose
 * output is high has bytes in the bufferevent, whose write callback
 * brings on_drain and reading back as before. Not for TLS or a filtered
 * transport (their bytes go through the bufferevent). @thread loop
 */

static size_t cork_limit(const sl_conn *c)
{
    size_t hw = (size_t)c->b->cfg.output_high_water / 2;
    return hw < CORK_MAX ? hw : CORK_MAX;
}

/* Take n bytes into c's cork; 0 when they must go another way (nothing
 * changed then but an uncork). */
int conn_cork_add(sl_conn *c, const void *p, size_t n)
{
    sl_broker *b = c->b;
    if (n == 0 || c->dead || c->lingering || c->closing ||
        c->transport != SL_TRANSPORT_TCP || conn_filtered(c) || !b->cork_ev)
        return 0;
    if (c->cork_len + n > cork_limit(c))
        conn_uncork(c);
    /* (an empty bufferevent output: the cork's bytes would come first) */
    if (c->cork_len + n > cork_limit(c) ||
        evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
        return 0;
    if (!c->cork && b->ncork_pool > 0) { /* a buffer sent from before */
        b->ncork_pool--;
        c->cork = b->cork_pool[b->ncork_pool];
        c->cork_cap = b->cork_pool_cap[b->ncork_pool];
    }
    if (c->cork_len + n > c->cork_cap) {
        size_t cap = c->cork_cap ? c->cork_cap : 1024;
        char *q;
        while (cap < c->cork_len + n)
            cap *= 2;
        q = realloc(c->cork, cap);
        if (!q)
            return 0;
        c->cork = q;
        c->cork_cap = cap;
    }
    memcpy(c->cork + c->cork_len, p, n);
    c->cork_len += n;
    if (!c->on_cork) {
        c->on_cork = 1;
        c->cork_next = b->corked;
        b->corked = c;
        event_active(b->cork_ev, EV_READ, 0);
    }
    return 1;
}

/* Send p now if nothing waits in the bufferevent; the rest (EAGAIN, a
 * partial send, an error) goes the bufferevent's way. */
void conn_send_direct(sl_conn *c, const char *p, size_t n)
{
    if (n > 0 && !c->closing && c->transport == SL_TRANSPORT_TCP &&
        !conn_filtered(c) &&
        evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        evutil_socket_t fd = bufferevent_getfd(c->bev);
        ssize_t k = fd >= 0 ? send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL) : -1;
        if (k > 0) {
            p += k;
            n -= (size_t)k;
        }
    }
    if (n > 0)
        bufferevent_write(c->bev, p, n);
}

/* Send c's corked bytes now (before anything written after them). The
 * buffer goes back to the broker's few spare ones: a connection holds
 * one only while it has corked bytes (10,000 idle STOMP sessions that
 * each wrote a CONNECTED would otherwise keep 1 KiB each). */
void conn_uncork(sl_conn *c)
{
    sl_broker *b = c->b;
    size_t n = c->cork_len;
    if (n == 0)
        return;
    c->cork_len = 0;
    if (!c->dead && !c->lingering)
        conn_send_direct(c, c->cork, n);
    if ((size_t)b->ncork_pool <
        sizeof(b->cork_pool) / sizeof(b->cork_pool[0])) {
        b->cork_pool[b->ncork_pool] = c->cork;
        b->cork_pool_cap[b->ncork_pool] = c->cork_cap;
        b->ncork_pool++;
    } else {
        free(c->cork);
    }
    c->cork = NULL;
    c->cork_cap = 0;
}

void conn_cork_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_broker *b = arg;
    (void)fd;
    (void)what;
    while (b->corked) {
        sl_conn *c = b->corked;
        b->corked = c->cork_next;
        c->cork_next = NULL;
        c->on_cork = 0;
        conn_uncork(c);
    }
}

static void cork_unlink(sl_conn *c)
{
    sl_conn **pp = &c->b->corked;
    if (!c->on_cork)
        return;
    while (*pp && *pp != c)
        pp = &(*pp)->cork_next;
    if (*pp)
        *pp = c->cork_next;
    c->cork_next = NULL;
    c->on_cork = 0;
}

void sl_conn_write(sl_conn *c, const void *p, size_t n)
{
    if (c->dead || c->lingering)
        return;
    c->bytes_out += n;
    if (conn_cork_add(c, p, n))
        return;
    conn_uncork(c);
    conn_send_direct(c, p, n);
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
    size_t n;
    conn_uncork(c);
    n = evbuffer_get_length(out);
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

/* ---- lifecycle ----------------------------------------------------------- */

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
void conn_run_close_hooks(sl_conn *c)
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

void conn_timer_clear(sl_conn *c, int kind)
{
    if (c->timer_kind == kind) {
        evtimer_del(c->timer_ev);
        c->timer_kind = TIMER_NONE;
    }
}

void conn_ingress_unlink(sl_conn *c)
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
    cork_unlink(c);
    c->cork_len = 0;
    conn_cancel_replies(c);
    while (c->waits)
        conn_wait_detach(c->waits);
    /* after the cancels: a hook sees no pending reply of its own */
    if (!c->hooks_ran)
        conn_run_close_hooks(c);
    if (c->ingress)
        conn_ingress_unlink(c);
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
        free(c->cork);
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
    conn_uncork(c);
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

void sl_conn_handshake_done(sl_conn *c)
{
    if (!c->hs_pending)
        return;
    c->hs_pending = 0;
    conn_timer_clear(c, TIMER_HANDSHAKE);
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
    conn_timer_clear(c, TIMER_HANDSHAKE);
}
