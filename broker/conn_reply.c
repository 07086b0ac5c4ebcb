/*
 * conn_reply.c - the connection layer's ordered reply queue, waits
 * and back-pressure by memory (conn.c points 3 and 4).
 * @thread loop
 */
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

static void conn_flush(sl_conn *c);

/* ---- waits --------------------------------------------------------------- */

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

void conn_wait_detach(sl_wait *w)
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
        conn_wait_detach(w);
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

/* ---- back-pressure ------------------------------------------------------- */

void conn_update_pause(sl_conn *c)
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
    conn_update_pause(c);
    if (!c->paused && !c->closing && !c->dead) {
        bufferevent_enable(c->bev, EV_READ);
        sl_conn_kick(c);
    }
}

static size_t reply_cost(size_t len)
{
    return REPLY_OVERHEAD + (len == 0 ? 0 : len < CHAIN_MIN ? CHAIN_MIN : len);
}

/* Move r's bytes to the output: small ones are corked (conn.c) or
 * copied into the output's own chains (dense), larger ones and file
 * segments move as they are. */
static void reply_to_output(sl_conn *c, sl_reply *r, struct evbuffer *out)
{
    size_t n = evbuffer_get_length(r->buf);
    unsigned char *p = NULL;
    if (n == 0)
        return;
    c->bytes_out += n;
    if (n <= COPY_MAX && !r->has_file) {
        p = evbuffer_pullup(r->buf, -1);
        if (p && conn_cork_add(c, p, n))
            return;
    }
    conn_uncork(c);
    if (p && evbuffer_add(out, p, n) == 0)
        return;
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
        conn_idle_ms(c) > 0 && !c->paused && !c->closing)
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
            r->fail(c->state, r, r->w->err, r->w->what, r->note ? r->note : "");
        close_after = r->close_after;
        if (!r->drop) {
            reply_to_output(c, r, out);
            moved = 1;
            if (r->lat)
                sl_lat_observe(r->lat, sl_fs_mono_us() - r->t0_us);
        }
        conn_reply_free(r);
        if (close_after) {
            conn_cancel_replies(c);
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
    conn_update_pause(c);
    conn_maybe_finish_close(c);
}

/* ---- direct writes ------------------------------------------------------- */

/* A stream of deliveries relayed from another node (relay.c): queued with
 * sl_conn_write, each read's worth leaves only once epoll reported the
 * socket writable: the write event armed (epoll_ctl), a loop pass, the
 * write, the event disarmed (epoll_ctl again). With nothing queued before
 * it, it is sent now instead; what the socket does not take, errors and
 * EAGAIN go the bufferevent's way. Not for TLS or a filtered transport
 * (WebSocket), whose bytes must go through the bufferevent. */
void sl_conn_write_direct(sl_conn *c, const void *p, size_t n)
{
    if (c->dead || c->lingering)
        return;
    c->bytes_out += n;
    conn_uncork(c); /* (win20: corked bytes first) */
    conn_send_direct(c, p, n);
}

/* A relay session at the coordinator (stomp_session.c) carries a stream
 * of deliveries that its node reads in reads of up to 128 KiB (relay.c):
 * written 16 KiB at a time (libevent's default), each write was a loop
 * pass and a read there. */
void sl_conn_set_write_max(sl_conn *c, size_t n)
{
    if (!c->dead && c->bev && n > 0)
        bufferevent_set_max_single_write(c->bev, n);
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
    conn_update_pause(c);
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
        conn_reply_free(r);
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
        conn_update_pause(c);
}

void sl_reply_drop(sl_reply *r)
{
    r->drop = 1;
    sl_reply_done(r);
}
