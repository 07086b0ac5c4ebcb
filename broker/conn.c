/*
 * conn.c - binary-protocol connections (see conn.h).
 */
#include "broker/conn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "protocol/api.h"
#include "protocol/frame.h"
#include "protocol/log.h"

#define PAUSE_OUTPUT 1
#define PAUSE_PENDING 2

struct sl_reply {
    sl_conn *c; /* NULL once the connection died (orphan) */
    uint32_t corr;
    struct evbuffer *buf;
    int done;
    int drop;
    void (*cancel)(void *arg);
    void *cancel_arg;
    sl_reply *next;
};

typedef struct close_hook {
    sl_conn_close_fn fn;
    void *arg;
} close_hook;

struct sl_conn {
    sl_broker *b;
    struct bufferevent *bev;
    size_t in_mark; /* input length after the last processing */
    char peer[80];
    sl_reply *head, *tail;
    size_t npending;
    unsigned paused;
    int closing;   /* close once every reply is sent */
    int lingering; /* write side shut; discarding input until EOF */
    int dead;
    int in_read;
    sl_conn *prev, *next;
    sl_conn *reap_next;
    close_hook *hooks; /* sl_conn_on_close, in registration order */
    size_t nhooks, caphooks;
    int hooks_ran; /* peer EOF or dead: no more registrations */
};

static void process_input(sl_conn *c);
static void conn_flush(sl_conn *c);

const char *sl_conn_peer(const sl_conn *c)
{
    return c->peer;
}

/* ---- lifecycle -------------------------------------------------------- */

static void reply_free(sl_reply *r)
{
    if (r->buf)
        evbuffer_free(r->buf);
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

/* Mark dead, cancel pending replies, run the close hooks, queue for
 * freeing. Idempotent. */
static void conn_kill(sl_conn *c, const char *why)
{
    sl_broker *b = c->b;
    sl_reply *r, *n;

    if (c->dead)
        return;
    c->dead = 1;
    sl_log(SL_DEBUG, "conn", "peer %s: closed (%s)", c->peer, why);
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
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
            /* a handler still holds it: sl_reply_done frees the orphan */
            r->c = NULL;
        }
    }
    c->head = c->tail = NULL;
    c->npending = 0;
    /* after the cancels: a hook sees no pending reply of its own */
    run_close_hooks(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        b->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    b->nconns--;
    c->reap_next = b->reap;
    b->reap = c;
    event_active(b->reap_ev, EV_READ, 0);
    sl_server_check_stopped(b);
}

void sl_conn_reap_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_broker *b = arg;
    while (b->reap) {
        sl_conn *c = b->reap;
        b->reap = c->reap_next;
        bufferevent_free(c->bev);
        free(c->hooks);
        free(c);
    }
}

/* All replies sent and closing: shut the write side and linger. */
static void maybe_finish_close(sl_conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    struct timeval tv = {1, 0};

    if (c->dead || !c->closing || c->lingering || c->head ||
        evbuffer_get_length(out) > 0)
        return;
    if (c->b->stopping) {
        conn_kill(c, "shutdown");
        return;
    }
    c->lingering = 1;
    /* read_cb discards whatever still arrives (never drain here: a
     * handler may be reading the current frame from the input) */
    shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    bufferevent_set_timeouts(c->bev, &tv, NULL);
    bufferevent_enable(c->bev, EV_READ);
}

void sl_conn_close_after_reply(sl_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    maybe_finish_close(c);
}

/* ---- back-pressure ----------------------------------------------------- */

static void update_pause(sl_conn *c)
{
    sl_broker *b = c->b;
    size_t out = evbuffer_get_length(bufferevent_get_output(c->bev));
    size_t hw = (size_t)b->cfg.output_high_water;
    unsigned was = c->paused;

    if (out > hw)
        c->paused |= PAUSE_OUTPUT;
    else if (out <= hw / 2)
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
               "peer %s: paused reading (output %zu, "
               "pending %zu)",
               c->peer, out, c->npending);
    } else if (was && !c->paused) {
        bufferevent_enable(c->bev, EV_READ);
        /* frames already buffered get no new read event */
        process_input(c);
    }
}

/* Move the completed prefix of the reply FIFO to the output. */
static void conn_flush(sl_conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);

    /* A reply restarts the idle clock (re-adding the read event resets its
     * timeout): a long poll answered just now is not an idle peer. */
    if (c->head && c->head->done && c->b->cfg.idle_timeout_ms > 0 &&
        !c->paused && !c->closing && !c->dead)
        bufferevent_enable(c->bev, EV_READ);
    while (c->head && c->head->done) {
        sl_reply *r = c->head;
        c->head = r->next;
        if (!c->head)
            c->tail = NULL;
        c->npending--;
        if (!r->drop)
            evbuffer_add_buffer(out, r->buf);
        reply_free(r);
    }
    update_pause(c);
    maybe_finish_close(c);
}

/* ---- replies ------------------------------------------------------------- */

static sl_reply *reply_new(sl_conn *c, uint32_t corr)
{
    sl_reply *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->buf = evbuffer_new();
    if (!r->buf) {
        free(r);
        return NULL;
    }
    /* Its chains end up in the socket's output: let evbuffer_add_file
     * make sendfile segments rather than mmap and copy them. */
    evbuffer_set_flags(r->buf, EVBUFFER_FLAG_DRAINS_TO_FD);
    r->c = c;
    r->corr = corr;
    if (c->tail)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    c->npending++;
    return r;
}

sl_err sl_reply_add(sl_reply *r, const void *p, size_t len)
{
    return evbuffer_add(r->buf, p, len) == 0 ? SL_OK : SL_ERR_NOMEM;
}

sl_err sl_reply_add_file(sl_reply *r, int fd, uint64_t off, size_t len)
{
    /* evbuffer_add_file owns fd from here on, also on error */
    return evbuffer_add_file(r->buf, fd, (ev_off_t)off, (ev_off_t)len) == 0
               ? SL_OK
               : SL_ERR_NOMEM;
}

struct evbuffer *sl_reply_evbuffer(sl_reply *r)
{
    return r->buf;
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

void sl_reply_done(sl_reply *r)
{
    sl_conn *c = r->c;
    if (!c) {
        reply_free(r);
        return;
    }
    r->done = 1;
    r->cancel = NULL;
    if (r == c->head)
        conn_flush(c);
}

void sl_reply_drop(sl_reply *r)
{
    r->drop = 1;
    sl_reply_done(r);
}

void sl_reply_error(sl_reply *r, sl_err err, const char *msg)
{
    sl_wb wb;

    if (r->buf)
        evbuffer_drain(r->buf, evbuffer_get_length(r->buf));
    sl_wb_init(&wb, 64);
    if (sl_resp_error_encode(&wb, r->corr, (int32_t)err, msg) != SL_OK) {
        /* message too long or no memory: send the bare code */
        sl_wb_reset(&wb);
        sl_resp_error_encode(&wb, r->corr, (int32_t)err, NULL);
    }
    evbuffer_add(r->buf, wb.p, wb.len);
    sl_wb_fini(&wb);
    sl_reply_done(r);
}

/* ---- input -----------------------------------------------------------------
 */

/* Printable sample of untrusted bytes for a log line. */
static void sample(const uint8_t *p, size_t n, char *out, size_t outlen)
{
    size_t k = 0;
    if (n > 24)
        n = 24;
    for (size_t i = 0; i < n && k + 3 < outlen; i++)
        k += (size_t)snprintf(out + k, outlen - k, "%02x", p[i]);
    out[k] = '\0';
}

static void protocol_error(sl_conn *c, const uint8_t *p, size_t n,
                           const char *what)
{
    char hex[64];
    sample(p, n, hex, sizeof(hex));
    sl_log(SL_WARN, "conn", "peer %s: protocol error (%s), first bytes %s",
           c->peer, what, hex);
}

static void process_input(sl_conn *c)
{
    sl_broker *b = c->b;
    struct evbuffer *in = bufferevent_get_input(c->bev);

    if (c->in_read)
        return;
    c->in_read = 1;
    while (!c->closing && !c->dead && !c->paused) {
        uint8_t hdr[SL_REQ_HDR_SIZE], *p;
        size_t avail = evbuffer_get_length(in), h, flen = 0;
        sl_req_hdr rh;
        sl_reply *r;
        sl_req req;
        char msg[160];
        int prc;

        if (avail < SL_FRAME_LEN_SIZE)
            break;
        h = avail < sizeof(hdr) ? avail : sizeof(hdr);
        evbuffer_copyout(in, hdr, h);
        prc = sl_frame_peek(hdr, h, (uint32_t)b->cfg.max_frame_bytes, &flen);
        if (prc == SL_ERR_MALFORMED) {
            protocol_error(c, hdr, h, "frame length shorter than a header");
            conn_kill(c, "broken framing");
            break;
        }
        if (prc == SL_ERR_TOO_LARGE) {
            if (h < SL_REQ_HDR_SIZE)
                break; /* wait for the correlation id to answer it */
            sl_req_hdr_decode(hdr, sizeof(hdr), &rh);
            snprintf(msg, sizeof(msg),
                     "frame of %zu bytes exceeds max-frame-bytes %lld", flen,
                     (long long)b->cfg.max_frame_bytes);
            protocol_error(c, hdr, h, msg);
            r = reply_new(c, sl_get_u32(hdr + 8));
            if (r)
                sl_reply_error(r, SL_ERR_TOO_LARGE, msg);
            sl_conn_close_after_reply(c);
            break;
        }
        if (avail < flen)
            break;
        p = evbuffer_pullup(in, (ev_ssize_t)flen);
        if (!p || sl_req_hdr_decode(p, flen, &rh) != SL_OK) {
            protocol_error(c, hdr, h, "undecodable request header");
            conn_kill(c, "broken framing");
            break;
        }
        r = reply_new(c, rh.correlation_id);
        if (!r) {
            sl_log(SL_ERROR, "conn", "peer %s: out of memory", c->peer);
            conn_kill(c, "out of memory");
            break;
        }
        req.api_key = rh.api_key;
        req.api_version = rh.api_version;
        req.correlation_id = rh.correlation_id;
        req.body = p + SL_REQ_HDR_SIZE;
        req.len = flen - SL_REQ_HDR_SIZE;
        req.peer = c->peer;
        sl_binary_dispatch(b, c, &req, r);
        if (!c->dead)
            evbuffer_drain(in, flen);
        update_pause(c);
    }
    c->in_read = 0;
    c->in_mark = evbuffer_get_length(in);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    sl_conn *c = arg;
    if (c->lingering || c->closing) {
        struct evbuffer *in = bufferevent_get_input(bev);
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    sl_ops_busy(c->b);
    if (!c->in_read)
        sl_ops_read_more(bev, c->in_mark, 256 * 1024);
    process_input(c);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    sl_conn *c = arg;
    /* output drained below the low watermark */
    update_pause(c);
    maybe_finish_close(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    sl_conn *c = arg;

    if (c->dead)
        return;
    if (what & BEV_EVENT_TIMEOUT) {
        if (c->lingering) {
            conn_kill(c, "linger timeout");
        } else if (what & BEV_EVENT_WRITING) {
            sl_log(SL_INFO, "conn",
                   "peer %s: closing, it read nothing for %lld ms", c->peer,
                   (long long)c->b->cfg.idle_timeout_ms);
            conn_kill(c, "write timeout");
        } else if (c->npending > 0 || c->paused ||
                   evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
            /* waiting for our replies (long poll), not idle */
            if (!c->paused && !c->closing)
                bufferevent_enable(bev, EV_READ);
        } else {
            sl_log(SL_INFO, "conn", "peer %s: closing idle connection",
                   c->peer);
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
            run_close_hooks(c);
            if (c->dead || c->lingering)
                return;
            if (!c->head && evbuffer_get_length(bufferevent_get_output(bev)))
                return; /* write_cb finishes */
            if (!c->head)
                conn_kill(c, "eof");
        }
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        conn_kill(c, "socket error");
        return;
    }
}

void sl_conn_accept(sl_broker *b, evutil_socket_t fd, const struct sockaddr *sa,
                    int salen)
{
    sl_conn *c;
    char host[64] = "?";
    int port = 0, one = 1;
    struct timeval tv;

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        evutil_inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        port = ntohs(s4->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        evutil_inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        port = ntohs(s6->sin6_port);
    }
    if (b->stopping || b->nconns >= (size_t)b->cfg.max_connections) {
        sl_log(SL_WARN, "conn", "peer %s:%d: refused (%s)", host, port,
               b->stopping ? "shutting down" : "max-connections reached");
        evutil_closesocket(fd);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        evutil_closesocket(fd);
        return;
    }
    c->b = b;
    snprintf(c->peer, sizeof(c->peer), "%s:%d", host, port);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->bev = bufferevent_socket_new(b->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        evutil_closesocket(fd);
        free(c);
        return;
    }
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    /* libevent's default is 16 KiB per read/write call: producers send
     * frames of up to a few MiB, fetch replies are larger still */
    bufferevent_set_max_single_read(c->bev, 256 * 1024);
    bufferevent_set_max_single_write(c->bev, 1024 * 1024);
    bufferevent_setwatermark(c->bev, EV_WRITE,
                             (size_t)b->cfg.output_high_water / 2, 0);
    if (b->cfg.idle_timeout_ms > 0) {
        tv.tv_sec = (time_t)(b->cfg.idle_timeout_ms / 1000);
        tv.tv_usec = (suseconds_t)(b->cfg.idle_timeout_ms % 1000) * 1000;
        bufferevent_set_timeouts(c->bev, &tv, &tv);
    }
    c->next = b->conns;
    if (b->conns)
        b->conns->prev = c;
    b->conns = c;
    b->nconns++;
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    sl_log(SL_DEBUG, "conn", "peer %s: connected", c->peer);
}

void sl_conn_stop_all(sl_broker *b)
{
    sl_conn *c, *n;
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
