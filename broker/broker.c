/*
 * broker.c - the broker object's accessors for modules (ops.h): its event
 * base, flusher, settings, shutdown state, stop hooks and holds.
 *
 * Layering inside broker/: server.c (start, module table, stop) is at the
 * top and calls down into every module; modules, ops.c and topic.c call
 * this file, which calls nothing above it. So the life cycle and the
 * modules it starts do not call each other in a circle.
 * @thread loop unless noted
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <event2/event.h>

#include "broker/broker.h"
#include "broker/broker_api.h"
#include "protocol/log.h"

int64_t sl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct event_base *sl_broker_base(sl_broker *b)
{
    return b->base;
}

sl_flusher *sl_broker_flusher(sl_broker *b)
{
    return b->flusher;
}

const struct sl_config *sl_broker_config(const sl_broker *b)
{
    return &b->cfg;
}

const char *sl_broker_data_dir(const sl_broker *b)
{
    return b->cfg.data;
}

int sl_broker_stopping(const sl_broker *b)
{
    return b->stopping;
}

const char *sl_broker_http_addr(const sl_broker *b)
{
    return b->http_addr;
}

void sl_broker_fail(sl_broker *b, const char *why)
{
    sl_log(SL_ERROR, "server", "fatal: %s", why);
    b->exit_code = 1;
    event_base_loopexit(b->base, NULL);
}

void sl_broker_on_stop(sl_broker *b, void (*fn)(void *arg), void *arg)
{
    struct sl_stop_hook *h =
        realloc(b->stop_hooks, (b->nstop_hooks + 1) * sizeof(*h));
    if (!h)
        abort();
    h[b->nstop_hooks].fn = fn;
    h[b->nstop_hooks].arg = arg;
    b->stop_hooks = h;
    b->nstop_hooks++;
}

void sl_broker_hold(sl_broker *b)
{
    b->holds++;
}

void sl_broker_release(sl_broker *b)
{
    if (b->holds > 0)
        b->holds--;
    sl_server_check_stopped(b);
}

void sl_broker_keep_conns(sl_broker *b)
{
    b->conns_kept = 1;
}

void sl_server_check_stopped(sl_broker *b)
{
    if (b->stopping && b->nconns == 0 && b->holds == 0)
        event_base_loopexit(b->base, NULL);
}
