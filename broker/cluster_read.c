/*
 * cluster_read.c - read-your-writes across the nodes of a cluster
 * (docs/cluster.md 2.7): a node answers from its copy of the metadata
 * image only once that copy holds every change the metadata leader had
 * applied when it was asked.
 *
 * PROBLEM. Every node applies the metadata log on its own, a heartbeat or
 * so behind the leader. A change answered through node A (`sluice user
 * add u`, `topic alter`) may not be in node B's copy yet when the next
 * request reaches B: B refused `acl grant u` with "no user 'u'", a login
 * as u, or described the topic as it was.
 *
 * RULE (Raft's ReadIndex, section 6.4 of Ongaro's thesis, without its
 * heartbeat round). Every change is answered after the metadata leader's
 * loop applied it (a forwarded one: after the leader's, then the asking
 * node's copy did). So a node that asks the leader for the index its copy
 * has applied (the read index), and waits until its own copy has applied
 * as far, sees every change answered before it asked, on any node:
 *
 *  - sl_bcluster_read_barrier: the leader's copy is already that far (a
 *    leader answers changes only from its copy), so it goes on at once
 *    once its term began (below; callers ask sl_bcluster_read_needed
 *    first and do not wait at all); a
 *    follower sends READ_INDEX (a CLUSTER_FORWARD request that is not
 *    logged) to the leader and waits for its copy. Requests that arrive
 *    while one is in flight wait for the next one (the one in flight may
 *    have been answered before their change was), so a burst costs one
 *    round trip at a time, not one per request.
 *  - A new leader (section 6.4's no-op): right after an election its copy
 *    may lack a change the old leader answered just before it died (the
 *    change is committed, but the new leader learns that only when an
 *    entry of its own term commits). So it neither reads nor answers
 *    READ_INDEX until the barrier the controller appends at the start of
 *    its term has applied and the loop drained everything before it
 *    (sl_cluster_leader_ready, sl_bcluster_after_ready): about one
 *    heartbeat plus a round trip after it won.
 *  - The asker asks again, a heartbeat later and of whoever leads then,
 *    while the leader it asked is gone (connection refused or lost), no
 *    longer leads or has not begun its term, for up to ask_wait_ms: a
 *    read right after the metadata leader was killed waits for the
 *    election and the new leader's first entry, and sees every change
 *    the dead one answered.
 *  - A forwarded command's answer carries the leader's read index after
 *    it applied the command (cluster_fwd.c), and the asking node answers
 *    its client only once its copy has it too (sl_bcluster_after_index).
 *  - Bounds: the leader's answer within four heartbeats (ri_wait_ms,
 *    500 ms at least), the copy's catching up within two election
 *    timeouts (read_wait_ms), the asking again within four (ask_wait_ms:
 *    a split vote costs a second election). A follower that
 *    cannot reach a leader, or whose copy does not catch up in time,
 *    answers from its copy as before (callers get the error, and read
 *    anyway). After a leader did not answer (a paused or cut-off leader
 *    still named leader when the time ran out), or no leader answered
 *    within ask_wait_ms (this node on the minority side of a partition),
 *    reads do not wait at all (degraded) until a READ_INDEX sent without
 *    callers (a probe) is answered or another node leads: a paused or
 *    cut-off leader costs one read the bound, not every read.
 *
 * Not covered: a leader that lost its leadership without knowing it
 * (paused, cut off) answers READ_INDEX from its copy until it learns
 * (ReadIndex without the heartbeat round of section 6.4); a host that
 * vanishes with the leader (no refusal: the connect hangs) costs the
 * asker ri_wait_ms and then the degraded mode, unless another node was
 * elected by then.
 * @thread loop
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "broker/broker.h"
#include "broker/cluster_int.h"
#include "protocol/log.h"

/* The bound: two election timeouts (2 s with the defaults), the time a
 * paused or cut-off leader takes to be replaced. */
static int64_t read_wait_ms(const sl_broker *b)
{
    int64_t ms = 2 * (int64_t)b->cfg.cluster_election_timeout_ms;
    return ms < 1000 ? 1000 : ms;
}

/* Asking again while no leader answers: four election timeouts. Right
 * after a metadata leader died both followers may stand at once and
 * split the vote; the next election comes one to two election timeouts
 * later (libraft's randomized timeout), then the new leader's barrier. */
static int64_t ask_wait_ms(const sl_broker *b)
{
    return 2 * read_wait_ms(b);
}

/* A live leader answers READ_INDEX at once (well under a millisecond on
 * a LAN; a new connection and the brokers' login included, a few on a
 * loaded machine): one that has not in four heartbeats (at least 500
 * ms) is paused, cut off or overloaded, and reads stop waiting for it
 * (the degraded mode below) rather than stall for the whole bound each.
 * The catching up after the answer is not counted here. */
static int64_t ri_wait_ms(const sl_broker *b)
{
    int64_t ms = 4 * (int64_t)b->cfg.cluster_heartbeat_ms;
    if (ms < 500)
        ms = 500;
    return ms < read_wait_ms(b) ? ms : read_wait_ms(b);
}

/* Someone waiting for this node's copy to reach an index (or, ready:
 * for this new leader's copy to hold its predecessors' changes), then
 * fn. */
typedef struct iwait {
    struct iwait *next;
    uint64_t index;
    int ready;
    int64_t deadline_ms;
    sl_cluster_done_fn fn;
    void *arg;
    sl_err rc;
    char msg[256];
} iwait;

/* A read barrier's caller. */
typedef struct rwait {
    struct rwait *next;
    sl_cluster_done_fn fn;
    void *arg;
} rwait;

/* A READ_INDEX in flight; stale once its time ran out (its answer, if
 * it comes, is dropped). */
typedef struct ri {
    struct sl_bread *r;
    int stale;
} ri;

struct sl_bread {
    sl_broker *b;
    iwait *waits;
    struct event *ev; /* the next deadline, or at once */
    rwait *cur;       /* with the READ_INDEX in flight */
    rwait *next;      /* for the one after it */
    ri *inflight;
    struct event *ri_ev; /* its time */
    /* the leader did not answer a READ_INDEX in time: reads do not wait
     * (as before barriers) until one is answered again, or another node
     * leads; meanwhile a READ_INDEX without callers probes it */
    int degraded;
    int32_t degraded_leader;
    /* the callers in cur wait until cur_deadline (ask_wait_ms) while
     * the leader asked is gone (connection refused or lost), no longer
     * leads or has not committed an entry of its term: READ_INDEX is
     * asked again, of whoever leads then, a heartbeat later (retry_ev) */
    int64_t cur_deadline;
    int32_t asked; /* the leader asked by the READ_INDEX in flight */
    int retrying;
    struct event *retry_ev;
};

static void rd_cb(evutil_socket_t fd, short what, void *arg);
static void ri_timeout_cb(evutil_socket_t fd, short what, void *arg);
static void ri_retry_cb(evutil_socket_t fd, short what, void *arg);

/* How often a caller waiting for a leader polls: a heartbeat. */
static int64_t poll_ms(const sl_broker *b)
{
    int64_t ms = (int64_t)b->cfg.cluster_heartbeat_ms;
    return ms < 10 ? 10 : ms;
}

static struct sl_bread *rd_state(sl_broker *b)
{
    sl_bcluster *bc = b->cluster;
    if (!bc)
        return NULL;
    if (!bc->rd) {
        struct sl_bread *r = calloc(1, sizeof(*r));
        if (!r)
            return NULL;
        r->b = b;
        r->ev = evtimer_new(b->base, rd_cb, b);
        r->ri_ev = evtimer_new(b->base, ri_timeout_cb, r);
        r->retry_ev = evtimer_new(b->base, ri_retry_cb, r);
        if (!r->ev || !r->ri_ev || !r->retry_ev) {
            if (r->ev)
                event_free(r->ev);
            if (r->ri_ev)
                event_free(r->ri_ev);
            if (r->retry_ev)
                event_free(r->retry_ev);
            free(r);
            return NULL;
        }
        bc->rd = r;
    }
    return bc->rd;
}

static void rd_arm(struct sl_bread *r);

/* A ready waiter's state: 1 go on (rc as it is), 0 wait, -1 go on with
 * rc SL_ERR_BUSY (the asker retries, a local caller reads its copy). */
static int ready_state(sl_broker *b, iwait *w, int64_t now)
{
    sl_cluster_status st;
    if (sl_cluster_leader_ready(b->cluster->node))
        return 1;
    sl_cluster_status_get(b->cluster->node, &st);
    if (st.role != 3) {
        w->rc = SL_ERR_BUSY;
        snprintf(w->msg, sizeof(w->msg),
                 "this node no longer leads the metadata; retry");
        return -1;
    }
    if (now >= w->deadline_ms) {
        w->rc = SL_ERR_BUSY;
        snprintf(w->msg, sizeof(w->msg),
                 "the new metadata leader has not committed an entry of "
                 "its term in %lld ms; retry",
                 (long long)read_wait_ms(b));
        return -1;
    }
    return 0;
}

/* Run every waiter whose index the copy reached or whose time is up. */
void sl_bcluster_read_check(sl_broker *b)
{
    struct sl_bread *r = b->cluster ? b->cluster->rd : NULL;
    iwait *ready = NULL, **pp, *w;
    int64_t now = sl_now_ms();
    if (!r)
        return;
    pp = &r->waits;
    while ((w = *pp)) {
        if (w->ready) {
            if (!b->cluster->node || ready_state(b, w, now) != 0) {
                *pp = w->next;
                w->next = ready;
                ready = w;
            } else {
                pp = &w->next;
            }
        } else if (b->cluster->image.applied >= w->index ||
                   now >= w->deadline_ms) {
            *pp = w->next;
            if (b->cluster->image.applied < w->index) {
                sl_log(SL_WARN, "cluster",
                       "this node's copy of the metadata did not reach "
                       "index %llu (it is at %llu) within %lld ms: "
                       "answering from it",
                       (unsigned long long)w->index,
                       (unsigned long long)b->cluster->image.applied,
                       (long long)read_wait_ms(b));
            }
            w->next = ready;
            ready = w;
        } else {
            pp = &w->next;
        }
    }
    /* in the order they came (they were pushed in front) */
    {
        iwait *rev = NULL;
        while (ready) {
            w = ready;
            ready = w->next;
            w->next = rev;
            rev = w;
        }
        ready = rev;
    }
    while (ready) {
        w = ready;
        ready = w->next;
        if (w->fn)
            w->fn(w->arg, w->rc, w->msg);
        free(w);
    }
    rd_arm(r);
}

static void rd_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sl_bcluster_read_check(arg);
}

static void rd_arm(struct sl_bread *r)
{
    int64_t first = INT64_MAX, now = sl_now_ms();
    struct timeval tv;
    for (iwait *w = r->waits; w; w = w->next) {
        if (w->deadline_ms < first)
            first = w->deadline_ms;
        /* a lost leadership is not notified: look again */
        if (w->ready && now + poll_ms(r->b) < first)
            first = now + poll_ms(r->b);
    }
    if (first == INT64_MAX) {
        event_del(r->ev);
        return;
    }
    first = first > now ? first - now : 0;
    tv.tv_sec = (time_t)(first / 1000);
    tv.tv_usec = (suseconds_t)(first % 1000) * 1000;
    evtimer_add(r->ev, &tv);
}

void sl_bcluster_after_index(sl_broker *b, uint64_t index, sl_err rc,
                             const char *msg, sl_cluster_done_fn fn, void *arg)
{
    struct sl_bread *r = rd_state(b);
    iwait *w = r ? calloc(1, sizeof(*w)) : NULL;
    if (!w) { /* out of memory: answer from the copy as it is */
        fn(arg, rc, msg);
        return;
    }
    w->index = index;
    w->deadline_ms = sl_now_ms() + read_wait_ms(b);
    w->fn = fn;
    w->arg = arg;
    w->rc = rc;
    snprintf(w->msg, sizeof(w->msg), "%s", msg ? msg : "");
    w->next = r->waits;
    r->waits = w;
    if (b->cluster->image.applied >= index) { /* at once, but not inside */
        event_del(r->ev);
        event_active(r->ev, EV_TIMEOUT, 0);
    } else {
        rd_arm(r);
    }
}

void sl_bcluster_after_ready(sl_broker *b, sl_cluster_done_fn fn, void *arg)
{
    struct sl_bread *r = rd_state(b);
    iwait *w = r ? calloc(1, sizeof(*w)) : NULL;
    if (!w) {
        fn(arg, SL_ERR_NOMEM, "out of memory");
        return;
    }
    w->ready = 1;
    w->deadline_ms = sl_now_ms() + read_wait_ms(b);
    w->fn = fn;
    w->arg = arg;
    w->rc = SL_OK;
    w->next = r->waits;
    r->waits = w;
    if (sl_cluster_leader_ready(b->cluster->node)) { /* not inside */
        event_del(r->ev);
        event_active(r->ev, EV_TIMEOUT, 0);
    } else {
        rd_arm(r);
    }
}

static void ri_send(struct sl_bread *r);
static void ri_try(struct sl_bread *r);

static void ri_fail(rwait *list, sl_err rc, const char *msg)
{
    while (list) {
        rwait *w = list;
        list = w->next;
        w->fn(w->arg, rc, msg);
        free(w);
    }
}

/* The barrier in flight ended: its callers go on (rc not SL_OK: from
 * the copy as it is), and the next one leaves. */
static void ri_end(struct sl_bread *r, sl_err rc, const char *msg)
{
    rwait *list = r->cur;
    r->inflight = NULL;
    event_del(r->ri_ev);
    if (list && (rc == SL_ERR_BUSY || rc == SL_ERR_DISCONNECTED) &&
        sl_now_ms() + poll_ms(r->b) < r->cur_deadline) {
        /* the leader asked is gone or not (yet) the leader: ask whoever
         * leads a heartbeat later */
        int64_t ms = poll_ms(r->b);
        struct timeval tv = {(time_t)(ms / 1000),
                             (suseconds_t)(ms % 1000) * 1000};
        sl_log(SL_DEBUG, "cluster", "read barrier: %s; asking again",
               msg && msg[0] ? msg : sl_strerror(rc));
        r->retrying = 1;
        evtimer_add(r->retry_ev, &tv);
        return;
    }
    if (list && (rc == SL_ERR_BUSY || rc == SL_ERR_DISCONNECTED) &&
        !r->degraded) {
        /* no leader answered within the bound (a minority side of a
         * partition): do not make every read wait for it */
        sl_cluster_status st;
        sl_cluster_status_get(r->b->cluster->node, &st);
        r->degraded = 1;
        r->degraded_leader = st.leader_id;
        sl_log(SL_WARN, "cluster",
               "no metadata leader answered a read barrier in %lld ms (%s): "
               "this node answers reads from its copy, without waiting, "
               "until one does or another node leads",
               (long long)ask_wait_ms(r->b),
               msg && msg[0] ? msg : sl_strerror(rc));
    }
    r->cur = NULL;
    if (rc == SL_OK && r->degraded) {
        r->degraded = 0;
        sl_log(SL_INFO, "cluster",
               "the metadata leader answers read barriers again: reads on "
               "this node wait for them again");
    }
    if (rc != SL_OK)
        sl_log(SL_DEBUG, "cluster",
               "read barrier: %s; answering from this node's copy",
               msg && msg[0] ? msg : sl_strerror(rc));
    if (r->next)
        ri_send(r);
    ri_fail(list, rc, msg);
}

/* The copy reached the read index (or the leader could not be asked). */
static void ri_done(void *arg, sl_err rc, const char *msg)
{
    ri *x = arg;
    struct sl_bread *r = x->r;
    int stale = x->stale;
    free(x);
    if (!stale)
        ri_end(r, rc, msg);
}

void sl_bcluster_read_answered(sl_broker *b, void *arg, uint64_t index)
{
    ri *x = arg;
    /* answered in time: what is left is this node's catching up, bounded
     * by read_wait_ms (the answer's own time is over) */
    if (!x->stale && x->r->inflight == x)
        event_del(x->r->ri_ev);
    sl_bcluster_after_index(b, index, SL_OK, "", ri_done, x);
}

static void ri_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sl_bread *r = arg;
    (void)fd;
    (void)what;
    r->retrying = 0;
    ri_try(r);
}

static void ri_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sl_bread *r = arg;
    sl_cluster_status st;
    (void)fd;
    (void)what;
    if (!r->inflight)
        return;
    r->inflight->stale = 1; /* ri_done frees it when its answer comes */
    sl_cluster_status_get(r->b->cluster->node, &st);
    if (st.leader_id != r->asked) { /* it was replaced meanwhile: ask */
        ri_end(r, SL_ERR_BUSY, "the metadata leader changed");
        return;
    }
    if (!r->degraded) {
        r->degraded = 1;
        r->degraded_leader = st.leader_id;
        sl_log(SL_WARN, "cluster",
               "the metadata leader (node %d) did not answer a read barrier "
               "in %lld ms: this node answers reads from its copy, without "
               "waiting, until it does or another node leads",
               (int)st.leader_id, (long long)ri_wait_ms(r->b));
    }
    ri_end(r, SL_ERR_TIMEOUT, "the metadata leader did not answer in time");
}

/* Ask the leader (or, when this node leads now, wait for its copy to
 * hold its predecessors' changes) for the callers in cur. */
static void ri_try(struct sl_bread *r)
{
    sl_broker *b = r->b;
    uint8_t cmd[2] = {SL_META_VERSION, SL_BREQ_READ_INDEX};
    char msg[256] = "the broker is stopping";
    const char *to = NULL;
    ri *x = calloc(1, sizeof(*x));
    sl_cluster_status st;
    sl_err rc = SL_ERR_NOMEM;
    if (x && b->cluster->node) {
        x->r = r;
        sl_cluster_status_get(b->cluster->node, &st);
        r->asked = st.leader_id;
        if (!sl_bcluster_not_leader_msg(b, msg, sizeof(msg))) {
            /* elected meanwhile: its own copy, once its term began */
            r->inflight = x;
            sl_bcluster_after_ready(b, ri_done, x);
            return;
        }
        to = sl_bcluster_leader_addr(b, msg, sizeof(msg));
        rc = to ? sl_bcluster_forward(b, to, cmd, sizeof(cmd), ri_done, x)
                : SL_ERR_BUSY;
    } else if (x) {
        rc = SL_ERR_SHUTTING_DOWN;
    }
    if (rc != SL_OK) { /* no leader to ask now */
        free(x);
        ri_end(r, rc, to ? sl_strerror(rc) : msg);
        return;
    }
    r->inflight = x;
    {
        int64_t ms = ri_wait_ms(b);
        struct timeval tv = {(time_t)(ms / 1000),
                             (suseconds_t)(ms % 1000) * 1000};
        evtimer_add(r->ri_ev, &tv);
    }
}

/* The next READ_INDEX leaves, for the callers that came since. */
static void ri_send(struct sl_bread *r)
{
    r->cur = r->next;
    r->next = NULL;
    r->cur_deadline = sl_now_ms() + ask_wait_ms(r->b);
    ri_try(r);
}

int sl_bcluster_read_needed(sl_broker *b)
{
    char msg[256];
    struct sl_bread *r;
    if (!b->cluster || !b->cluster->node)
        return 0;
    if (!sl_bcluster_not_leader_msg(b, msg, sizeof(msg)))
        return !sl_cluster_leader_ready(b->cluster->node);
    r = rd_state(b);
    if (r && r->degraded) {
        sl_cluster_status st;
        sl_cluster_status_get(b->cluster->node, &st);
        if (st.leader_id == r->degraded_leader) {
            if (!r->inflight && !r->retrying && !r->cur)
                ri_send(r); /* a probe: answered, it ends the mode */
            return 0;
        }
        r->degraded = 0; /* another leader: ask it */
    }
    return 1;
}

sl_err sl_bcluster_read_barrier(sl_broker *b, sl_cluster_done_fn fn, void *arg)
{
    struct sl_bread *r;
    rwait *w, **pp;
    char msg[256];
    if (!b->cluster || !b->cluster->node)
        return SL_ERR_SHUTTING_DOWN;
    r = rd_state(b);
    if (!r)
        return SL_ERR_NOMEM;
    if (!sl_bcluster_not_leader_msg(b, msg, sizeof(msg))) {
        /* the leader answers changes from this copy: it has them, once
         * it holds its predecessors' too */
        sl_bcluster_after_ready(b, fn, arg);
        return SL_OK;
    }
    w = calloc(1, sizeof(*w));
    if (!w)
        return SL_ERR_NOMEM;
    w->fn = fn;
    w->arg = arg;
    for (pp = &r->next; *pp; pp = &(*pp)->next)
        ;
    *pp = w;
    if (!r->inflight && !r->retrying && !r->cur)
        ri_send(r);
    return SL_OK;
}

void sl_bcluster_read_stop(sl_broker *b)
{
    struct sl_bread *r = b->cluster ? b->cluster->rd : NULL;
    if (!r)
        return;
    /* forwards in flight were finished before (ri_done ran) */
    ri_fail(r->cur, SL_ERR_SHUTTING_DOWN, "the broker is stopping");
    ri_fail(r->next, SL_ERR_SHUTTING_DOWN, "the broker is stopping");
    r->cur = r->next = NULL;
    while (r->waits) {
        iwait *w = r->waits;
        r->waits = w->next;
        if (w->ready) {
            w->rc = SL_ERR_SHUTTING_DOWN;
            snprintf(w->msg, sizeof(w->msg), "the broker is stopping");
        }
        if (w->fn)
            w->fn(w->arg, w->rc, w->msg);
        free(w);
    }
    if (r->inflight) /* its forward was finished before: never */
        r->inflight->stale = 1;
    event_free(r->ev);
    event_free(r->ri_ev);
    event_free(r->retry_ev);
    free(r);
    b->cluster->rd = NULL;
}
