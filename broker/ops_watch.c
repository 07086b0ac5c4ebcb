/*
 * ops_watch.c - the hooks and watches of the internal operations (ops.h;
 * ops.c has append, durability, topics and reads): append, durable and
 * topic-delete hooks, the socket read helpers (sl_ops_read_now,
 * sl_ops_read_more), and watches (a long poll or a subscriber waiting
 * for records on some partitions): fired when records become visible,
 * run from the deferred append event, timed out, expired at shutdown.
 * @thread loop
 */
#include "broker/ops.h"
#include "broker/ops_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "broker/broker.h"
#include "broker/topic.h"
#include "protocol/log.h"

struct sl_watch_link {
    struct sl_ops_watch *w;
    sl_tpart *tp;
    sl_watch_link *tp_prev, *tp_next; /* in tp->watches */
    sl_watch_link *w_next;            /* in w->links */
};

struct sl_ops_watch {
    sl_broker *b;
    sl_ops_watch_cb cb;
    void *arg;
    struct event *timer;
    sl_watch_link *links;
    struct sl_ops_watch *prev, *next; /* b->watches */
    struct sl_ops_watch *fire_next;
    int on_fire;
    int in_cb;
    int dead;
};

void sl_ops_watch_unlink(sl_watch_link *l)
{
    if (l->tp_prev)
        l->tp_prev->tp_next = l->tp_next;
    else
        l->tp->watches = l->tp_next;
    if (l->tp_next)
        l->tp_next->tp_prev = l->tp_prev;
    l->tp = NULL;
}

/* ---- hooks and watches ------------------------------------------------- */

void sl_ops_on_append(sl_broker *b, sl_ops_append_fn fn, void *arg)
{
    sl_append_hook *h =
        realloc(b->append_hooks, (b->nappend_hooks + 1) * sizeof(*h));
    if (!h)
        abort();
    h[b->nappend_hooks].fn = fn;
    h[b->nappend_hooks].arg = arg;
    b->append_hooks = h;
    b->nappend_hooks++;
}

size_t sl_ops_read_now(struct bufferevent *bev, size_t limit)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    evutil_socket_t fd = bufferevent_getfd(bev);
    size_t got = 0;
    if (fd < 0)
        return 0;
    /* a socket bufferevent freezes the end of its input buffer outside
     * its own reads */
    evbuffer_unfreeze(in, 0);
    while (got < limit) {
        struct evbuffer_iovec v[2];
        struct iovec iov[2];
        size_t want = limit - got < 65536 ? limit - got : 65536;
        size_t room = 0, left;
        int n = evbuffer_reserve_space(in, (ev_ssize_t)want, v, 2), used = 0;
        ssize_t r;
        if (n <= 0)
            break;
        for (int i = 0; i < n; i++) {
            iov[i].iov_base = v[i].iov_base;
            iov[i].iov_len = v[i].iov_len;
            room += v[i].iov_len;
        }
        r = readv(fd, iov, n);
        if (r <= 0) { /* EAGAIN, EOF or an error: the bufferevent's turn */
            evbuffer_commit_space(in, v, 0);
            break;
        }
        left = (size_t)r;
        for (int i = 0; i < n && left > 0; i++) {
            if (v[i].iov_len > left)
                v[i].iov_len = left;
            left -= v[i].iov_len;
            used++;
        }
        evbuffer_commit_space(in, v, used);
        got += (size_t)r;
        if ((size_t)r < room)
            break; /* the socket is drained */
    }
    evbuffer_freeze(in, 0);
    return got;
}

size_t sl_ops_read_more(struct bufferevent *bev, size_t before, size_t limit)
{
    if (evbuffer_get_length(bufferevent_get_input(bev)) <
        before + SL_OPS_EV_READ_MAX)
        return 0;
    return sl_ops_read_now(bev, limit);
}

void sl_ops_on_durable(sl_broker *b, void (*fn)(void *arg), void *arg)
{
    struct sl_durable_hook *h =
        realloc(b->durable_hooks, (b->ndurable_hooks + 1) * sizeof(*h));
    if (!h)
        abort();
    h[b->ndurable_hooks].fn = fn;
    h[b->ndurable_hooks].arg = arg;
    b->durable_hooks = h;
    b->ndurable_hooks++;
}

void sl_ops_on_topic_delete(sl_broker *b,
                            void (*fn)(void *arg, const char *topic), void *arg)
{
    sl_delete_hook *h =
        realloc(b->delete_hooks, (b->ndelete_hooks + 1) * sizeof(*h));
    if (!h)
        abort();
    h[b->ndelete_hooks].fn = fn;
    h[b->ndelete_hooks].arg = arg;
    b->delete_hooks = h;
    b->ndelete_hooks++;
}

static void watch_destroy(struct sl_ops_watch *w)
{
    if (w->timer)
        event_free(w->timer);
    free(w);
}

static void watch_after_cb(struct sl_ops_watch *w)
{
    w->in_cb = 0;
    if (w->dead && !w->on_fire)
        watch_destroy(w);
}

static void watch_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sl_ops_watch *w = arg;
    if (w->dead)
        return;
    w->in_cb = 1;
    w->cb(w->arg, 1);
    watch_after_cb(w);
}

sl_err sl_ops_watch_new(sl_broker *b, int64_t timeout_ms, sl_ops_watch_cb cb,
                        void *arg, sl_ops_watch **out)
{
    struct sl_ops_watch *w = calloc(1, sizeof(*w));

    if (!w)
        return SL_ERR_NOMEM;
    w->b = b;
    w->cb = cb;
    w->arg = arg;
    w->timer = evtimer_new(b->base, watch_timeout_cb, w);
    if (!w->timer) {
        free(w);
        return SL_ERR_NOMEM;
    }
    if (timeout_ms >= 0) {
        struct timeval tv = {(time_t)(timeout_ms / 1000),
                             (suseconds_t)(timeout_ms % 1000) * 1000};
        if (b->stopping)
            tv.tv_sec = tv.tv_usec = 0;
        evtimer_add(w->timer, &tv);
    }
    w->next = b->watches;
    if (b->watches)
        b->watches->prev = w;
    b->watches = w;
    *out = w;
    return SL_OK;
}

sl_err sl_ops_watch_add(sl_ops_watch *w, const char *topic, int32_t partition)
{
    sl_tpart *tp;
    sl_watch_link *l;
    sl_err rc = sl_ops_tp_get(w->b, topic, partition, SL_OPS_NO_CREATE, &tp);

    if (rc != SL_OK)
        return rc;
    l = calloc(1, sizeof(*l));
    if (!l)
        return SL_ERR_NOMEM;
    l->w = w;
    l->tp = tp;
    l->tp_next = tp->watches;
    if (tp->watches)
        tp->watches->tp_prev = l;
    tp->watches = l;
    l->w_next = w->links;
    w->links = l;
    return SL_OK;
}

void sl_ops_watch_free(sl_ops_watch *w)
{
    sl_broker *b;
    sl_watch_link *l, *n;

    if (!w || w->dead)
        return;
    b = w->b;
    for (l = w->links; l; l = n) {
        n = l->w_next;
        if (l->tp)
            sl_ops_watch_unlink(l);
        free(l);
    }
    w->links = NULL;
    evtimer_del(w->timer);
    if (w->prev)
        w->prev->next = w->next;
    else
        b->watches = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->dead = 1;
    if (!w->in_cb && !w->on_fire)
        watch_destroy(w);
}

void sl_ops_expire_watches(sl_broker *b)
{
    struct timeval now = {0, 0};
    for (struct sl_ops_watch *w = b->watches; w; w = w->next)
        evtimer_add(w->timer, &now);
}

void sl_ops_fire(sl_broker *b, sl_tpart *tp)
{
    for (sl_watch_link *l = tp->watches; l; l = l->tp_next) {
        struct sl_ops_watch *w = l->w;
        if (w->on_fire || w->dead)
            continue;
        w->on_fire = 1;
        w->fire_next = NULL;
        if (b->fire_tail)
            b->fire_tail->fire_next = w;
        else
            b->fire_head = w;
        b->fire_tail = w;
    }
}

typedef struct ap_item {
    char name[SL_TOPIC_NAME_MAX + 1];
    int32_t id;
} ap_item;

/* Deferred: run append hooks, then the watches of appended partitions. */
void sl_ops_on_append_ev(evutil_socket_t fd, short what, void *arg)
{
    sl_broker *b = arg;
    ap_item *items = NULL;
    size_t n = 0, cap = 0;

    while (b->ap_list) {
        sl_tpart *tp = b->ap_list;
        b->ap_list = tp->ap_next;
        tp->on_ap_list = 0;
        if (b->nappend_hooks) {
            if (n == cap) {
                ap_item *ni;
                cap = cap ? cap * 2 : 16;
                ni = realloc(items, cap * sizeof(*items));
                if (!ni)
                    abort();
                items = ni;
            }
            snprintf(items[n].name, sizeof(items[n].name), "%s",
                     tp->topic->name);
            items[n].id = tp->id;
            n++;
        }
        /* a follower's fetch (cluster) reads past the durable offset */
        if (sl_ops_visible_at_append(b, tp) || b->cluster)
            sl_ops_fire(b, tp);
    }
    /* Hooks may append, create or delete topics: look each one up again. */
    for (size_t i = 0; i < n; i++) {
        for (size_t h = 0; h < b->nappend_hooks; h++) {
            sl_tpart *tp;
            if (sl_ops_tp_get(b, items[i].name, items[i].id, SL_OPS_NO_CREATE,
                              &tp) != SL_OK)
                break;
            b->append_hooks[h].fn(b->append_hooks[h].arg, items[i].name,
                                  items[i].id, sl_part_end_offset(tp->part));
        }
    }
    free(items);
    sl_ops_run_fire_list(b);
}

void sl_ops_run_fire_list(sl_broker *b)
{
    struct sl_ops_watch *w;

    while ((w = b->fire_head)) {
        b->fire_head = w->fire_next;
        if (!b->fire_head)
            b->fire_tail = NULL;
        w->on_fire = 0;
        if (w->dead) {
            watch_destroy(w);
            continue;
        }
        w->in_cb = 1;
        w->cb(w->arg, 0);
        watch_after_cb(w);
    }
}
