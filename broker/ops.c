/*
 * ops.c - the internal operations (see ops.h): append, durable waits,
 * topic administration, reads; the hooks and watches are in ops_watch.c
 * (ops_int.h between them). @thread loop throughout (the flusher thread
 * only activates flush_ev, server.c's flush_notify; sl_ops_on_flush runs
 * on the loop).
 */
#include "broker/ops.h"
#include "broker/ops_int.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "broker/broker.h"
#include "broker/topic.h"
#include "groups/visible.h"
#include "protocol/log.h"
#include "storage/fsutil.h"

struct sl_ops_wait {
    sl_tpart *tp;
    int64_t upto;
    sl_ops_durable_cb cb;
    void *arg;
    sl_ops_wait *prev, *next;
};

/* Durable waits come and go by the thousand per request (a produce of
 * one record to each of 10,000 partitions): freed ones are kept for
 * reuse, up to WAIT_CACHE_MAX, per loop thread (sl_ops_wait_cache_drop at
 * the broker's end gives them back). */
#define WAIT_CACHE_MAX 16384
static _Thread_local sl_ops_wait *wait_cache;
static _Thread_local size_t wait_cached;

static sl_ops_wait *wait_new(void)
{
    sl_ops_wait *w = wait_cache;
    if (!w)
        return calloc(1, sizeof(*w));
    wait_cache = w->next;
    wait_cached--;
    memset(w, 0, sizeof(*w));
    return w;
}

static void wait_free(sl_ops_wait *w)
{
    if (wait_cached >= WAIT_CACHE_MAX) {
        free(w);
        return;
    }
    w->next = wait_cache;
    wait_cache = w;
    wait_cached++;
}

void sl_ops_wait_cache_drop(void)
{
    while (wait_cache) {
        sl_ops_wait *w = wait_cache;
        wait_cache = w->next;
        free(w);
    }
    wait_cached = WAIT_CACHE_MAX; /* later ones are freed at once */
}

/* ---- lookup ------------------------------------------------------------ */

sl_err sl_ops_tp_get(sl_broker *b, const char *topic, int32_t partition,
                     enum sl_ops_create create, sl_tpart **out)
{
    sl_topic *t = sl_topics_find(b->topics, topic);
    sl_err rc;

    if (!t) {
        char err[256];
        if (sl_topic_name_check(topic, strlen(topic)) != SL_OK)
            return SL_ERR_INVALID_TOPIC;
        if (create == SL_OPS_NO_CREATE ||
            (create == SL_OPS_AUTO_CREATE && !b->cfg.auto_create_topics))
            return SL_ERR_UNKNOWN_TOPIC;
        if (b->auto_create) /* cluster: via the quorum, DLQs too */
            return b->auto_create(b, topic);
        rc = sl_topics_create(b->topics, topic, 0, NULL, NULL, 0, &t, err,
                              sizeof(err));
        if (rc != SL_OK) {
            sl_log(SL_WARN, "ops", "auto-create topic %s failed: %s", topic,
                   err);
            return rc;
        }
    }
    if (partition < 0 || partition >= t->nparts)
        return SL_ERR_UNKNOWN_PARTITION;
    *out = t->parts[partition];
    return SL_OK;
}

/* Does an append make records visible at once (sl_ops_visible_offset is
 * the log end), or only the flusher round after it (the durable offset)? */
int sl_ops_visible_at_append(const sl_broker *b, const sl_tpart *tp)
{
    return tp->topic->pcfg.flush == SL_FLUSH_NEVER ||
           b->cfg.queue_dispatch == 0; /* 0 = written */
}

sl_err sl_ops_part(sl_broker *b, const char *topic, int32_t partition,
                   enum sl_ops_create create, sl_part **out)
{
    sl_tpart *tp;
    sl_err rc = sl_ops_tp_get(b, topic, partition, create, &tp);
    if (rc == SL_OK)
        *out = tp->part;
    return rc;
}

/* ---- topics ------------------------------------------------------------ */

sl_err sl_ops_topic_create(sl_broker *b, const char *name, int32_t partitions,
                           const char *const *keys, const char *const *values,
                           size_t ncfg, char *errstr, size_t errlen)
{
    char tmp[256];
    sl_topic *t;

    if (!errstr) {
        errstr = tmp;
        errlen = sizeof(tmp);
    }
    errstr[0] = '\0';
    return sl_topics_create(b->topics, name, partitions, keys, values, ncfg, &t,
                            errstr, errlen);
}

sl_err sl_ops_topic_get(sl_broker *b, const char *name,
                        enum sl_ops_create create, int32_t *partitions)
{
    sl_tpart *tp;
    sl_err rc = sl_ops_tp_get(b, name, 0, create, &tp);
    if (rc == SL_OK)
        *partitions = tp->topic->nparts;
    return rc;
}

void sl_ops_topic_list(sl_broker *b,
                       void (*fn)(void *arg, const char *name,
                                  int32_t partitions),
                       void *arg)
{
    size_t n;
    sl_topic **arr = sl_topics_sorted(b->topics, &n);
    for (size_t i = 0; i < n; i++)
        fn(arg, arr[i]->name, arr[i]->nparts);
    free(arr);
}

sl_err sl_ops_topic_configs(sl_broker *b, const char *name,
                            void (*fn)(void *arg, const char *key,
                                       const char *value),
                            void *arg)
{
    sl_topic *t = sl_topics_find(b->topics, name);
    if (!t)
        return SL_ERR_UNKNOWN_TOPIC;
    for (size_t i = 0; i < t->ncfg; i++)
        fn(arg, t->cfg_keys[i], t->cfg_values[i]);
    return SL_OK;
}

static void unlink_tp_lists(sl_broker *b, sl_tpart *tp)
{
    sl_tpart **pp;
    for (pp = &b->dw_list; *pp; pp = &(*pp)->dw_next)
        if (*pp == tp) {
            *pp = tp->dw_next;
            break;
        }
    for (pp = &b->ap_list; *pp; pp = &(*pp)->ap_next)
        if (*pp == tp) {
            *pp = tp->ap_next;
            break;
        }
    for (pp = &b->dv_list; *pp; pp = &(*pp)->dv_next)
        if (*pp == tp) {
            *pp = tp->dv_next;
            break;
        }
    tp->on_dw_list = tp->on_ap_list = tp->on_dv_list = 0;
}

sl_err sl_ops_part_reset(sl_broker *b, const char *topic, int32_t partition,
                         uint64_t *bytes)
{
    return sl_ops_part_reset_at(b, topic, partition, 0, bytes);
}

sl_err sl_ops_part_reset_at(sl_broker *b, const char *topic, int32_t partition,
                            int64_t at, uint64_t *bytes)
{
    sl_tpart *tp;
    sl_ops_wait *w;
    sl_err rc = sl_ops_tp_get(b, topic, partition, SL_OPS_NO_CREATE, &tp);
    if (rc != SL_OK)
        return rc;
    while ((w = tp->dw_head)) {
        tp->dw_head = w->next;
        w->cb(w->arg, SL_ERR_NOT_LEADER);
        wait_free(w);
    }
    tp->dw_tail = NULL;
    unlink_tp_lists(b, tp);
    return sl_part_reset_at(tp->part, at, bytes);
}

sl_err sl_ops_topic_delete(sl_broker *b, const char *name)
{
    sl_topic *t = sl_topics_find(b->topics, name);
    char copy[SL_TOPIC_NAME_MAX + 1];

    if (!t)
        return SL_ERR_UNKNOWN_TOPIC;
    snprintf(copy, sizeof(copy), "%s", name);
    for (size_t i = 0; i < b->ndelete_hooks; i++)
        b->delete_hooks[i].fn(b->delete_hooks[i].arg, copy);
    t = sl_topics_find(b->topics, copy);
    if (!t)
        return SL_OK; /* a hook deleted it */
    for (int32_t i = 0; i < t->nparts; i++) {
        sl_tpart *tp = t->parts[i];
        sl_ops_wait *w;
        while ((w = tp->dw_head)) {
            tp->dw_head = w->next;
            w->cb(w->arg, SL_ERR_UNKNOWN_TOPIC);
            wait_free(w);
        }
        tp->dw_tail = NULL;
        while (tp->watches)
            sl_ops_watch_unlink(tp->watches);
        unlink_tp_lists(b, tp);
        sl_flusher_forget(b->flusher, tp->part);
    }
    return sl_topics_delete(b->topics, t);
}

/* ---- append and durability ------------------------------------------- */

/*
 * loop-spin-us. A client that waits for each answer (a receipt on every
 * SEND, one durable produce at a time) pays, on top of the fdatasync, for
 * the flusher waking the loop thread from epoll_wait: tens of
 * microseconds on a virtual machine. So while exactly one durable waiter
 * is pending, the loop polls instead: a zero timer keeps libevent's
 * epoll_wait from blocking (other connections are still served), and the
 * timer callback runs the durable work as soon as the flusher's round
 * count moves. It gives up after loop-spin-us, and does not start while
 * the flusher's recent fdatasync rounds took longer than that
 * (sl_flusher_sync_avg_us: the disk's own time, which polling does not
 * change), so a slow disk does not cost a polling CPU for nothing. With
 * more than one waiter the loop has work anyway.
 */
static int lone_waiter(const sl_broker *b)
{
    return b->dw_list && !b->dw_list->dw_next &&
           b->dw_list->dw_head == b->dw_list->dw_tail;
}

static void spin_arm(sl_broker *b)
{
    static const struct timeval zero = {0, 0};
    if (b->cfg.loop_spin_us <= 0 || evtimer_pending(b->spin_ev, NULL) ||
        !lone_waiter(b) ||
        sl_flusher_sync_avg_us(b->flusher) > b->cfg.loop_spin_us)
        return;
    b->spin_rounds = sl_flusher_rounds(b->flusher);
    b->spin_start_us = sl_fs_mono_us();
    evtimer_add(b->spin_ev, &zero);
}

void sl_ops_on_spin(evutil_socket_t fd, short what, void *arg)
{
    static const struct timeval zero = {0, 0};
    sl_broker *b = arg;
    (void)fd;
    (void)what;
    if (sl_flusher_rounds(b->flusher) != b->spin_rounds) {
        sl_ops_on_flush(-1, 0, b);
        spin_arm(b);
        return;
    }
    if (sl_fs_mono_us() - b->spin_start_us >= b->cfg.loop_spin_us)
        return;
    sched_yield(); /* a runnable thread of this CPU goes first */
    evtimer_add(b->spin_ev, &zero);
}

/*
 * flush-inline-us (storage/flusher.c, INLINE ROUNDS). A durable append
 * that looks like a window of one (nothing older of its partition waits
 * for a round, no append of this batch did, the partition's previous
 * append is at least half an fdatasync old) is requested with
 * sl_flusher_request_deferred: the flusher thread is not woken. Any other
 * is requested as usual, and marks the batch (kick_dirty). kick_ev runs
 * right after the callback that appended and decides. Unless the batch
 * was that one append and its client is the only one waiting (a lone
 * waiter), it wakes the flusher thread at once (sl_flusher_kick(f, 0)):
 * concurrent load keeps its group commit and a loop that never waits for
 * the disk. Otherwise the round is for the loop to run, but only once it
 * has nothing more urgent to do: idle_ev, a zero timer of SL_PRI_INGRESS,
 * runs after the deliveries of that append have been written (a consumer
 * gets its message during the fdatasync, not after it). A loop kept busy
 * at normal priority would starve idle_ev, so guard_ev, a timer of normal
 * priority, kicks at most SL_KICK_GUARD_US later, then on the flusher
 * thread (unless nothing else is active then: a loop that was only late,
 * descheduled on a loaded machine, runs the round itself). After the
 * loop's own round it answers at once (sl_ops_on_flush) and takes back
 * the flush_ev activation of the round's durable notify.
 */
#define SL_KICK_GUARD_US 200

static void request_durable(sl_broker *b, sl_tpart *tp, int64_t base)
{
    int64_t now, gap;
    if (b->cfg.flush_inline_us <= 0) {
        sl_flusher_request(b->flusher, tp->part);
        return;
    }
    now = sl_fs_mono_us();
    gap = now - tp->last_append_us;
    tp->last_append_us = now;
    /* A client that waits for each answer appends at most once per round
     * (an fdatasync and a round trip apart); a stream appends microseconds
     * apart, also when one of its SENDs arrives alone. */
    if (!b->kick_dirty && sl_part_durable_offset(tp->part) >= base &&
        gap >= sl_flusher_sync_avg_us(b->flusher) / 2) {
        sl_flusher_request_deferred(b->flusher, tp->part);
        b->kick_tp = tp;
        b->kick_appends++;
    } else {
        sl_flusher_request(b->flusher, tp->part);
        b->kick_dirty = 1;
    }
    b->kick_pending = 1;
    event_active(b->kick_ev, EV_READ, 0);
}

static void kick_idle_cancel(sl_broker *b)
{
    if (!b->kick_idle)
        return;
    b->kick_idle = 0;
    evtimer_del(b->idle_ev);
    evtimer_del(b->guard_ev);
}

void sl_ops_on_kick(evutil_socket_t fd, short what, void *arg)
{
    static const struct timeval zero = {0, 0};
    static const struct timeval guard = {0, SL_KICK_GUARD_US};
    sl_broker *b = arg;
    /* (the flusher checks the fdatasync time again; checked here too, a
     * round it would decline goes to the thread now, not after idle_ev) */
    int may = !b->kick_dirty && b->kick_appends == 1 && lone_waiter(b) &&
              b->dw_list == b->kick_tp &&
              sl_flusher_sync_avg_us(b->flusher) <= b->cfg.flush_inline_us;
    (void)fd;
    (void)what;
    b->kick_appends = 0;
    b->kick_dirty = 0;
    b->kick_pending = 0;
    b->kick_tp = NULL;
    if (!may) {
        kick_idle_cancel(b);
        sl_flusher_kick(b->flusher, 0);
        spin_arm(b);
        return;
    }
    if (b->kick_idle)
        return;
    b->kick_idle = 1;
    evtimer_add(b->idle_ev, &zero);
    evtimer_add(b->guard_ev, &guard);
}

/* idle_ev or guard_ev: the loop's own round, or the thread's. */
void sl_ops_on_kick_idle(evutil_socket_t fd, short what, void *arg)
{
    sl_broker *b = arg;
    int idle;
    (void)fd;
    (void)what;
    if (!b->kick_idle)
        return;
    idle = !evtimer_pending(b->idle_ev, NULL); /* idle_ev ran, not guard */
    /* The guard, with nothing else active but idle_ev itself: the loop
     * was late (descheduled on a loaded machine, one slow pass), not
     * busy, and a hand-off would cost the flusher thread's wake-up and
     * the loop's for nothing (issue 20). */
    if (!idle &&
        event_base_get_num_events(b->base, EVENT_BASE_COUNT_ACTIVE) <= 1)
        idle = 1;
    kick_idle_cancel(b);
    if (sl_flusher_kick(b->flusher, idle && lone_waiter(b))) {
        /* answer now, not one pass later (what activated flush_ev before
         * this is answered too) */
        event_del(b->flush_ev);
        sl_ops_on_flush(-1, 0, b);
    } else
        spin_arm(b);
}

static void mark_appended(sl_broker *b, sl_tpart *tp)
{
    if (tp->on_ap_list)
        return;
    tp->on_ap_list = 1;
    tp->ap_next = b->ap_list;
    b->ap_list = tp;
    event_active(b->append_ev, EV_READ, 0);
}

sl_err sl_ops_forward_append(sl_broker *b, const char *topic, int32_t partition,
                             const uint8_t *batch, size_t len, int durable,
                             void (*cb)(void *arg, sl_err err), void *arg)
{
    if (!b->forward_append)
        return SL_ERR_NOT_LEADER;
    return b->forward_append(b, topic, partition, batch, len, durable, cb, arg);
}

/* An append nobody waits on may wait for its fsync round (flush-lazy-ms,
 * sl_flusher_request_lazy): a single node's flush=always partition whose
 * readers see records at append (queue-dispatch written). In a cluster
 * the high-water mark follows the leader's durable offset, and with
 * queue-dispatch durable so do the readers: there the round starts now. */
static int lazy_ok(const sl_broker *b, const sl_tpart *tp)
{
    return b->cfg.flush_lazy_ms > 0 && !b->cluster && !b->replicating &&
           tp->topic->pcfg.flush == SL_FLUSH_ALWAYS &&
           sl_ops_visible_at_append(b, tp);
}

#define APPEND_LAZY 1u
#define APPEND_CHECKED 2u

static sl_err append(sl_broker *b, const char *topic, int32_t partition,
                     enum sl_ops_create create, uint8_t *batch, size_t len,
                     int64_t *base_out, int64_t *next_out, unsigned how)
{
    sl_tpart *tp;
    int64_t base, next = -1;
    int dup = 0, lazy;
    sl_err rc;

    if (b->append_guard && !b->replicating) {
        rc = b->append_guard(b, topic, partition);
        if (rc != SL_OK)
            return rc;
    }
    rc = sl_ops_tp_get(b, topic, partition, create, &tp);
    if (rc != SL_OK)
        return rc;
    /* A round follows at once (request_durable below): the batch may
     * wait for it in the partition's tail (storage/partition.c) */
    lazy = (how & APPEND_LAZY) && lazy_ok(b, tp);
    rc = sl_part_append_ex(
        tp->part, batch, len, sl_now_ms(),
        (b->replicating ? SL_PART_APPEND_REPLICA : 0) |
            (how & APPEND_CHECKED ? SL_PART_APPEND_VERIFIED : 0) |
            (!lazy && tp->topic->pcfg.flush == SL_FLUSH_ALWAYS
                 ? SL_PART_APPEND_DEFER
                 : 0),
        &base, &next, &dup);
    if (dup || rc == SL_ERR_DUPLICATE_SEQUENCE) { /* a producer's retry */
        if (base_out && dup)
            *base_out = base;
        if (next_out)
            *next_out = next;
        return rc;
    }
    if (rc != SL_OK) {
        sl_log(SL_DEBUG, "ops", "append to %s/%d failed: %s", topic, partition,
               sl_strerror(rc));
        return rc;
    }
    tp->bytes_in += len;
    tp->records_in += (uint64_t)(sl_part_end_offset(tp->part) - base);
    if (lazy)
        sl_flusher_request_lazy(b->flusher, tp->part, b->cfg.flush_lazy_ms);
    else if (tp->topic->pcfg.flush != SL_FLUSH_NEVER)
        request_durable(b, tp, base);
    if (!sl_ops_visible_at_append(b, tp) && !tp->on_dv_list) {
        tp->on_dv_list = 1;
        tp->dv_next = b->dv_list;
        b->dv_list = tp;
    }
    mark_appended(b, tp);
    if (base_out)
        *base_out = base;
    if (next_out)
        *next_out = sl_part_end_offset(tp->part);
    return SL_OK;
}

sl_err sl_ops_append(sl_broker *b, const char *topic, int32_t partition,
                     enum sl_ops_create create, uint8_t *batch, size_t len,
                     int64_t *base_out, int64_t *next_out)
{
    return append(b, topic, partition, create, batch, len, base_out, next_out,
                  0);
}

sl_err sl_ops_append_lazy(sl_broker *b, const char *topic, int32_t partition,
                          enum sl_ops_create create, uint8_t *batch, size_t len,
                          int64_t *base_out, int64_t *next_out)
{
    return append(b, topic, partition, create, batch, len, base_out, next_out,
                  APPEND_LAZY);
}

sl_err sl_ops_append_checked(sl_broker *b, const char *topic, int32_t partition,
                             enum sl_ops_create create, uint8_t *batch,
                             size_t len, int lazy, int64_t *base_out,
                             int64_t *next_out)
{
    return append(b, topic, partition, create, batch, len, base_out, next_out,
                  APPEND_CHECKED | (lazy ? APPEND_LAZY : 0));
}

sl_err sl_ops_wait_durable(sl_broker *b, const char *topic, int32_t partition,
                           int64_t upto, sl_ops_durable_cb cb, void *arg,
                           sl_ops_wait **wait_out)
{
    sl_tpart *tp;
    sl_ops_wait *w;
    sl_err rc;

    rc = sl_ops_tp_get(b, topic, partition, SL_OPS_NO_CREATE, &tp);
    if (rc != SL_OK)
        return rc;
    if (tp->fol_durable < 0)
        return SL_ERR_NOT_ENOUGH_REPLICAS; /* cluster: ISR too small */
    if ((tp->topic->pcfg.flush == SL_FLUSH_NEVER ||
         sl_part_durable_offset(tp->part) >= upto) &&
        tp->fol_durable >= upto) {
        *wait_out = NULL;
        return SL_OK;
    }
    w = wait_new();
    if (!w)
        return SL_ERR_NOMEM;
    w->tp = tp;
    w->upto = upto;
    w->cb = cb;
    w->arg = arg;
    w->prev = tp->dw_tail;
    if (tp->dw_tail)
        tp->dw_tail->next = w;
    else
        tp->dw_head = w;
    tp->dw_tail = w;
    if (!tp->on_dw_list) {
        tp->on_dw_list = 1;
        tp->dw_next = b->dw_list;
        b->dw_list = tp;
    }
    if (b->kick_pending) { /* the kick decides (and arms the spin) */
        sl_flusher_request_deferred(b->flusher, tp->part);
    } else {
        sl_flusher_request(b->flusher, tp->part);
        spin_arm(b);
    }
    *wait_out = w;
    return SL_OK;
}

void sl_ops_wait_cancel(sl_ops_wait *w)
{
    sl_tpart *tp = w->tp;
    if (w->prev)
        w->prev->next = w->next;
    else
        tp->dw_head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        tp->dw_tail = w->prev;
    wait_free(w);
}

/* Answer tp's durable waiters that are covered: by the local durable
 * offset, and in a cluster also by the followers' (fol_durable). */
static void dw_run(sl_tpart *tp)
{
    int64_t durable = sl_part_durable_offset(tp->part);
    sl_ops_wait *w;

    /* A failed fsync stops the durable offset for good: fail the
     * waiters beyond it instead of leaving them hanging. */
    int failed = sl_part_failed(tp->part);

    if (tp->fol_durable < durable)
        durable = tp->fol_durable;
    while ((w = tp->dw_head) && (w->upto <= durable || failed)) {
        tp->dw_head = w->next;
        if (tp->dw_head)
            tp->dw_head->prev = NULL;
        else
            tp->dw_tail = NULL;
        if (w->upto > durable)
            sl_log(SL_ERROR, "ops",
                   "%s/%d: fsync failed; durable ack up to offset %lld "
                   "refused",
                   tp->topic->name, tp->id, (long long)w->upto);
        w->cb(w->arg, w->upto <= durable ? SL_OK : SL_ERR_STORAGE);
        wait_free(w);
    }
}

/* Fail every durable waiter of tp with err. */
static void dw_fail(sl_tpart *tp, sl_err err)
{
    sl_ops_wait *w;
    while ((w = tp->dw_head)) {
        tp->dw_head = w->next;
        if (tp->dw_head)
            tp->dw_head->prev = NULL;
        else
            tp->dw_tail = NULL;
        w->cb(w->arg, err);
        wait_free(w);
    }
}

sl_err sl_ops_set_follower_marks(sl_broker *b, const char *topic,
                                 int32_t partition, int64_t fol_durable,
                                 int64_t read_cap, sl_err fail)
{
    sl_tpart *tp;
    int64_t old_cap;
    sl_err rc = sl_ops_tp_get(b, topic, partition, SL_OPS_NO_CREATE, &tp);

    if (rc != SL_OK)
        return rc;
    tp->fol_durable = fol_durable;
    if (fail != SL_OK)
        dw_fail(tp, fail);
    else
        dw_run(tp);
    old_cap = sl_part_read_cap(tp->part);
    if (read_cap != old_cap) {
        sl_part_set_read_cap(tp->part, read_cap);
        if (read_cap > old_cap) { /* readers may go on */
            sl_ops_fire(b, tp);
            mark_appended(b, tp);
        }
    }
    return SL_OK;
}

/* Loop side of the flusher's notifies: answer what the round made durable,
 * and wake the watches of partitions whose visible offset advanced. Runs
 * after the round's fdatasyncs, usually while the flusher is still in the
 * hooks (groups' commit): only log durability is answered here, never
 * group state (groups answer their waiters from their own event). Runs
 * again after the hooks; that pass usually finds nothing new. */
void sl_ops_on_flush(evutil_socket_t fd, short what, void *arg)
{
    sl_broker *b = arg;
    sl_tpart **pp = &b->dv_list;

    while (*pp) {
        sl_tpart *tp = *pp;
        int64_t durable = sl_part_durable_offset(tp->part);
        if (durable > tp->dv_fired) {
            tp->dv_fired = durable;
            sl_ops_fire(b, tp);
        }
        if (durable >= sl_part_end_offset(tp->part)) {
            tp->on_dv_list = 0;
            *pp = tp->dv_next;
        } else {
            pp = &tp->dv_next;
        }
    }
    sl_ops_run_fire_list(b);
    pp = &b->dw_list;

    while (*pp) {
        sl_tpart *tp = *pp;
        dw_run(tp);
        if (!tp->dw_head) {
            tp->on_dw_list = 0;
            *pp = tp->dw_next;
        } else {
            pp = &tp->dw_next;
        }
    }
    for (size_t i = 0; i < b->ndurable_hooks; i++)
        b->durable_hooks[i].fn(b->durable_hooks[i].arg);
}

void sl_ops_fail_waiters(sl_broker *b, sl_err err)
{
    while (b->dw_list) {
        sl_tpart *tp = b->dw_list;
        sl_ops_wait *w;
        b->dw_list = tp->dw_next;
        tp->on_dw_list = 0;
        while ((w = tp->dw_head)) {
            tp->dw_head = w->next;
            if (tp->dw_head)
                tp->dw_head->prev = NULL;
            else
                tp->dw_tail = NULL;
            w->cb(w->arg, err);
            wait_free(w);
        }
    }
}

/* ---- reads --------------------------------------------------------------- */

sl_err sl_ops_visible_offset(sl_broker *b, const char *topic, int32_t partition,
                             int64_t *out)
{
    sl_tpart *tp;
    sl_err rc = sl_ops_tp_get(b, topic, partition, SL_OPS_NO_CREATE, &tp);

    if (rc != SL_OK)
        return rc;
    *out = sl_visible_offset(tp->part, b->cfg.queue_dispatch == 0,
                             SL_VISIBLE_STREAM);
    return SL_OK;
}

sl_err sl_ops_list_offset(sl_broker *b, const char *topic, int32_t partition,
                          int64_t ts, int64_t *offset_out)
{
    sl_tpart *tp;
    sl_err rc = sl_ops_tp_get(b, topic, partition, SL_OPS_NO_CREATE, &tp);

    if (rc != SL_OK)
        return rc;
    if (ts == SL_OFFSET_EARLIEST) {
        *offset_out = sl_part_start_offset(tp->part);
        return SL_OK;
    }
    if (ts == SL_OFFSET_LATEST) {
        *offset_out = sl_part_end_offset(tp->part);
        return SL_OK;
    }
    if (ts < 0)
        return SL_ERR_INVALID_ARG;
    return sl_part_offset_for_time(tp->part, ts, offset_out);
}
