/*
 * conn_registry.c - the connection layer's log lines about peers
 * (rate-limited per connection and broker-wide, conn.c point 7) and its
 * registry (point 8: ids, listing, totals).
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

/* ---- rate-limited warnings ----------------------------------------------- */

/* The shared body of sl_conn_warn and the broker's own limited lines:
 * slots remember up to n kinds. */
static void warn_limited(warn_slot *slots, size_t n, const char *subsys,
                         const char *prefix, const char *kind, const char *fmt,
                         va_list ap) __attribute__((format(printf, 6, 0)));
static void warn_limited(warn_slot *slots, size_t n, const char *subsys,
                         const char *prefix, const char *kind, const char *fmt,
                         va_list ap)
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

void conn_warn_flush(warn_slot *slots, size_t n, const char *subsys,
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
void conn_broker_warn(sl_broker *b, const char *kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    warn_limited(b->accept_warns, SL_BROKER_WARN_KINDS, "conn", "", kind, fmt,
                 ap);
    va_end(ap);
}

/* One INFO line per connection opened and closed, at most CONNLOG_BURST
 * per CONNLOG_WINDOW_MS: a client reconnecting in a loop (or a load
 * balancer's health checks) writes a bounded log; the lines left out are
 * counted and the count logged when the next window starts (or at stop). */
void conn_connlog_flush(sl_broker *b)
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

void conn_info(sl_broker *b, const char *fmt, ...)
{
    char line[512];
    int64_t now;
    va_list ap;

    if (SL_INFO < sl_log_level)
        return;
    now = sl_now_ms();
    if (now - b->connlog_ms >= CONNLOG_WINDOW_MS) {
        conn_connlog_flush(b);
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

/* ---- the registry, read-only --------------------------------------------- */

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
