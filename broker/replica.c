/*
 * replica.c - the replica fetcher, first step of partition data
 * replication (docs/cluster.md section 3; what is missing: section 9).
 *
 * For every partition that the metadata image places on this node with
 * another node as its leader, this node fetches from the leader with the
 * ordinary FETCH api (one connection and one outstanding FETCH per leader
 * node, covering all such partitions, each from this node's log end) and
 * appends the returned batches as they are, through sl_ops_append: the
 * batch is never re-encoded, its CRC is checked again, and the same
 * group-commit flusher makes it durable per the topic's flush policy.
 * Because the local end is always a batch boundary and appends assign the
 * next offset, a batch whose base offset equals the local end gets the
 * leader's offsets. After a leader change the follower first checks its
 * tail against the new leader's log and cuts what diverged
 * (replica_apply.c).
 *
 * The fetch is FETCH version 2 (docs/protocol.md 4.6): it carries this
 * node's id and, per partition, its durable offset; its fetch_offset is
 * the log end. After appending a response's batches the fetcher waits for
 * their local fsync before it sends the next fetch, so the next fetch
 * reports them durable (the leader's durable acks wait for that). The
 * leader's high-water mark comes back in each response and caps this
 * node's readers too.
 *
 * Leader epochs (KIP-320): the fetch is version 3, each partition with the
 * leader epoch this node's image names. A leader whose image names a
 * newer epoch refuses that partition with FENCED_LEADER_EPOCH and does
 * not count the fetch toward its high-water mark (this node's log may
 * hold a tail the leader cut since, and the tail check runs only
 * once this node knows the epoch changed); one whose image is older
 * answers UNKNOWN_LEADER_EPOCH. Either way this node leaves the partition
 * out of its fetches until its own image changes the epoch or RETRY_MS
 * passed (its image is its metadata: it catches up from the Raft log),
 * then asks again; no busy loop while one of the two images lags.
 *
 * The leader's side (replica_leader.c) keeps what each follower
 * reported and derives the partition's high-water mark (readers' cap) and
 * the followers' durable offset (durable acks), docs/cluster.md 3.3.
 * Appending a FETCH answer and cutting divergent tails: replica_apply.c.
 *
 * @thread loop (everything here)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "broker/broker.h"
#include "broker/cluster_propose.h"
#include "broker/observer.h"
#include "broker/ops.h"
#include "broker/peer_auth.h"
#include "broker/replica.h"
#include "broker/replica_int.h"
#include "cluster/meta.h"
#include "cluster/node.h"
#include "protocol/api.h"
#include "protocol/frame.h"
#include "protocol/log.h"
#include "storage/hwm_checkpoint.h"

const sl_mi_part *replica_followed(const sl_replicas *rs, const sl_mi_topic *t,
                                   int32_t p, int32_t leader)
{
    const sl_mi_part *mp = &t->parts[p];
    if (mp->leader != leader || leader == rs->self)
        return NULL;
    for (int32_t r = 0; r < mp->nrep; r++)
        if (mp->rep[r] == rs->self)
            return mp;
    /* an observer: a queue group coordinated here reads it (observer.c) */
    return sl_observer_wants(rs->b->observer, t->name) ? mp : NULL;
}

int replica_placed(const sl_replicas *rs, const char *topic, int32_t p)
{
    const sl_mi_topic *t = sl_meta_topic_find(rs->image, topic);
    if (!t || p < 0 || p >= t->nparts)
        return 0;
    for (int32_t r = 0; r < t->parts[p].nrep; r++)
        if (t->parts[p].rep[r] == rs->self)
            return 1;
    return 0;
}

static void fetcher_close(fetcher *f)
{
    while (f->waits) {
        dwait *d = f->waits;
        f->waits = d->next;
        sl_ops_wait_cancel(d->w);
        free(d);
    }
    if (f->bev)
        bufferevent_free(f->bev);
    f->bev = NULL;
    f->connected = 0;
    f->inflight = 0;
}

static void fetcher_free(fetcher *f)
{
    fetcher_close(f);
    if (f->retry_ev)
        event_free(f->retry_ev);
    free(f);
}

static void retry_later(fetcher *f)
{
    struct timeval tv = {0, RETRY_MS * 1000};
    fetcher_close(f);
    evtimer_add(f->retry_ev, &tv);
}

int replica_copying(const sl_replicas *rs, const sl_mi_part *mp)
{
    int rep = 0;
    for (int32_t i = 0; i < mp->nrep; i++)
        rep |= mp->rep[i] == rs->self;
    if (mp->ntarget == 0 || !rep) /* !rep: an observer (observer.c) */
        return 0;
    for (int32_t i = 0; i < mp->nisr; i++)
        if (mp->isr[i] == rs->self)
            return 0;
    return 1;
}

int replica_throttled(const sl_replicas *rs, const sl_mi_part *mp)
{
    return rs->b->cfg.reassign_throttle_bytes > 0 && replica_copying(rs, mp);
}

/* A copy for a reassignment that has ended here (this node joined the
 * ISR, or left the target): one log line with what it cost. */
static void copies_done(sl_replicas *rs)
{
    for (size_t h = 0; h < LP_BUCKETS; h++)
        for (lpart *lp = rs->lparts[h]; lp; lp = lp->next) {
            const sl_mi_topic *t;
            const sl_mi_part *mp;
            int in_sync = 0;
            if (!lp->copied)
                continue;
            t = sl_meta_topic_find(rs->image, lp->topic);
            mp = t && lp->partition < t->nparts ? &t->parts[lp->partition]
                                                : NULL;
            if (mp && replica_copying(rs, mp))
                continue;
            for (int32_t i = 0; mp && i < mp->nisr; i++)
                in_sync |= mp->isr[i] == rs->self;
            sl_log(SL_INFO, "replica",
                   "%s/%d: reassignment copy %s: %lld bytes copied in "
                   "%lld ms",
                   lp->topic, (int)lp->partition,
                   in_sync ? "done (in sync)" : "ended (moved elsewhere)",
                   (long long)lp->copied,
                   (long long)(sl_now_ms() - lp->copy_ms));
            lp->copied = 0;
        }
}

void sl_replicas_bytes(const sl_replicas *rs, int64_t *fetched, int64_t *copied)
{
    *fetched = rs ? rs->fetched_bytes : 0;
    *copied = rs ? rs->copied_bytes : 0;
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    fetcher *f = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    if (f->login.left) {
        char msg[300];
        int lr = sl_peer_login_read(&f->login, in, msg, sizeof(msg));
        if (lr < 0) {
            sl_peer_login_warn("replica", f->leader, f->addr, msg);
            retry_later(f);
        }
        if (lr <= 0)
            return;
    }
    for (;;) {
        size_t avail = evbuffer_get_length(in), flen = 0;
        const uint8_t *p = evbuffer_pullup(in, avail < 4 ? (ssize_t)avail : 4);
        int rc;
        if (avail < 4 || !p)
            return;
        rc = sl_frame_peek(p, 4, SL_DEFAULT_MAX_FRAME, &flen);
        if (rc != SL_OK && rc != SL_FRAME_PARTIAL) {
            retry_later(f);
            return;
        }
        if (avail < flen)
            return;
        p = evbuffer_pullup(in, (ssize_t)flen);
        if (!p) {
            retry_later(f);
            return;
        }
        replica_on_response(f, p, flen);
        evbuffer_drain(in, flen);
        f->inflight = 0;
        if (f->dead) {
            f->dead = 0;
            retry_later(f);
            return;
        }
        if (f->waits)
            return; /* dwait_cb sends the next fetch */
        replica_send_fetch(f);
        if (!f->bev)
            return;
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    fetcher *f = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        f->connected = 1;
        replica_send_fetch(f);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        retry_later(f);
}

static void connect_fetcher(fetcher *f)
{
    struct sockaddr_storage ss;
    int slen = sizeof(ss);
    if (f->bev || !f->addr[0])
        return;
    if (evutil_parse_sockaddr_port(f->addr, (struct sockaddr *)&ss, &slen)) {
        sl_log(SL_WARN, "replica", "leader %d: bad address '%s'",
               (int)f->leader, f->addr);
        return;
    }
    f->bev = sl_peer_bev_new(f->rs->b, f->addr); /* TLS with cluster-tls */
    if (!f->bev)
        return;
    bufferevent_setcb(f->bev, read_cb, NULL, event_cb, f);
    bufferevent_enable(f->bev, EV_READ | EV_WRITE);
    if (sl_peer_login_start(f->rs->b, &f->login, f->bev) != SL_OK ||
        bufferevent_socket_connect(f->bev, (struct sockaddr *)&ss, slen) != 0)
        retry_later(f);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    fetcher *f = arg;
    (void)fd;
    (void)what;
    if (f->bev)
        replica_send_fetch(
            f); /* a partition refused for its epoch is due again */
    else
        connect_fetcher(f);
}

/* How many bytes a fetch may ask for partition mp: PART_MAX_BYTES, or
 * when throttled what is left of reassign-throttle-bytes (a token bucket
 * of one second; 0: skip it this time). The bytes that arrive are
 * charged (apply_part), so a batch larger than the grant (the first one
 * comes whole) is a debt the next fetches wait out. */
static uint32_t throttle_grant(sl_replicas *rs, const sl_mi_part *mp)
{
    int64_t rate = rs->b->cfg.reassign_throttle_bytes, now;
    if (!replica_throttled(rs, mp))
        return PART_MAX_BYTES;
    now = sl_now_ms();
    rs->thr_budget += rate * (now - rs->thr_ms) / 1000;
    if (rs->thr_budget > rate)
        rs->thr_budget = rate;
    rs->thr_ms = now;
    if (rs->thr_budget <= 0)
        return 0;
    return rs->thr_budget < PART_MAX_BYTES ? (uint32_t)rs->thr_budget
                                           : PART_MAX_BYTES;
}

static void thr_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_replicas *rs = arg;
    (void)fd;
    (void)what;
    rs->thr_armed = 0;
    for (fetcher *f = rs->fetchers; f; f = f->next)
        replica_send_fetch(f);
}

void sl_replicas_copy_restart(sl_replicas *rs, const char *topic, int32_t p,
                              int64_t at, const char *why)
{
    uint64_t bytes = 0;
    int64_t start, end;
    sl_part *part;
    lpart *lp;
    sl_err rc;

    if (sl_ops_part(rs->b, topic, p, SL_OPS_NO_CREATE, &part) != SL_OK)
        return;
    start = sl_part_start_offset(part);
    end = sl_part_end_offset(part);
    rc = sl_ops_part_reset_at(rs->b, topic, p, at, &bytes);
    if (rc != SL_OK) {
        sl_log(SL_ERROR, "observer", "%s/%d: copy cannot start at %lld: %s",
               topic, (int)p, (long long)at, sl_strerror(rc));
        return;
    }
    sl_log(SL_INFO, "observer",
           "%s/%d: copy starts at %lld (%s); it held [%lld, %lld), %llu "
           "bytes, deleted",
           topic, (int)p, (long long)at, why, (long long)start, (long long)end,
           (unsigned long long)bytes);
    if ((lp = replica_lp_get(rs, topic, p, 1))) {
        lp->verified_epoch = -1; /* an empty log: checked at once */
        lp->verifying = 0;
        lp->stale_answer = 1; /* asked from the old end */
    }
}

int sl_replicas_checking(sl_replicas *rs, const char *topic, int32_t p)
{
    lpart *lp = rs ? replica_lp_get(rs, topic, p, 0) : NULL;
    return lp && lp->verifying;
}

/* An observer's copy (observer.c) holds what the queue groups coordinated
 * here still need: from the lowest start of those groups on (the
 * partition's low-water mark, groups/queue.c). A copy that ends below it
 * (one that starts empty, one kept from before a restart that the groups
 * have since passed elsewhere) or starts above it starts again there,
 * before this fetch asks for it. 0: not fetched now (an empty copy that
 * no group has a start in yet, as a start=latest group asking its
 * leader where it starts: fetched from the log start, it would copy the
 * whole backlog). */
static int observer_copy_start(sl_replicas *rs, const char *topic, int32_t p,
                               sl_part *part)
{
    int64_t need = sl_part_low_water(part);
    if (need < 0) /* no group has a start here yet */
        return sl_part_end_offset(part) > sl_part_start_offset(part);
    if (need > sl_part_end_offset(part))
        sl_replicas_copy_restart(rs, topic, p, need,
                                 "the lowest start of the queue groups "
                                 "coordinated here");
    else if (need < sl_part_start_offset(part))
        sl_replicas_copy_restart(rs, topic, p, need,
                                 "a queue group coordinated here needs "
                                 "records below the copy's start");
    return 1;
}

/* One FETCH for every partition this node follows from f->leader. */
void replica_send_fetch(fetcher *f)
{
    sl_replicas *rs = f->rs;
    const sl_meta *m = rs->image;
    sl_arena a;
    sl_wb wb;
    sl_fetch_req q;
    uint32_t nt = 0;
    int deferred = 0;
    int64_t now = sl_now_ms();

    if (!f->bev || !f->connected || f->inflight || f->waits)
        return;
    sl_arena_init(&a);
    sl_wb_init(&wb, 512);
    memset(&q, 0, sizeof(q));
    q.replica_id = rs->self;
    q.epochs = 1;
    q.max_wait_ms = FETCH_WAIT_MS;
    q.min_bytes = 1;
    q.max_bytes = FETCH_MAX_BYTES;
    q.topics = sl_arena_alloc(&a, sizeof(*q.topics) * (m->ntopics + 1));
    if (!q.topics)
        goto out;
    for (size_t i = 0; i < m->ntopics; i++) {
        const sl_mi_topic *t = m->topics[i];
        sl_fetch_topic *ft = &q.topics[nt];
        ft->parts = sl_arena_alloc(&a, sizeof(*ft->parts) * (size_t)t->nparts);
        if (!ft->parts)
            goto out;
        ft->nparts = 0;
        for (int32_t p = 0; p < t->nparts; p++) {
            const sl_mi_part *mp = replica_followed(rs, t, p, f->leader);
            sl_part *part;
            if (!mp || replica_is_stalled(rs, t->name, p, mp->leader_epoch) ||
                sl_ops_part(rs->b, t->name, p, SL_OPS_NO_CREATE, &part) !=
                    SL_OK)
                continue;
            {
                lpart *lp = replica_lp_get(rs, t->name, p, 0);
                if (lp && lp->refused_epoch == mp->leader_epoch &&
                    now < lp->refused_until_ms) {
                    deferred = 1;
                    continue;
                }
            }
            if (!replica_placed(rs, t->name, p) &&
                !observer_copy_start(rs, t->name, p, part)) {
                deferred = 1; /* looked at again RETRY_MS later */
                continue;
            }
            ft->parts[ft->nparts].partition = (uint32_t)p;
            ft->parts[ft->nparts].leader_epoch = mp->leader_epoch;
            ft->parts[ft->nparts].fetch_offset = sl_part_end_offset(part);
            {
                /* a new leader: first check this node's log from the
                 * lowest offset that may differ (replica_apply.c, 3.2) */
                lpart *lp = replica_lp_get(rs, t->name, p, 1);
                int64_t end = sl_part_end_offset(part);
                if (lp) /* no fetch in flight: this one asks afresh */
                    lp->stale_answer = 0;
                if (lp && lp->verified_epoch != mp->leader_epoch) {
                    if (!lp->verifying ||
                        lp->verify_epoch != mp->leader_epoch) {
                        const char *why;
                        lp->verifying = 1;
                        lp->verify_epoch = mp->leader_epoch;
                        lp->verify_from =
                            replica_verify_from(rs, lp, t, part, &why);
                        lp->verify_start = lp->verify_from;
                        lp->verify_bytes = 0;
                        lp->verify_ms = sl_now_ms();
                        if (lp->verify_from < end)
                            sl_log(SL_INFO, "replica",
                                   "%s/%d: checking log [%lld, %lld) against "
                                   "leader %d (epoch %d) from %s",
                                   t->name, (int)p, (long long)lp->verify_from,
                                   (long long)end, (int)f->leader,
                                   (int)mp->leader_epoch, why);
                    }
                    if (lp->verify_from >= end) {
                        lp->verified_epoch = mp->leader_epoch;
                        lp->verifying = 0;
                    } else {
                        ft->parts[ft->nparts].fetch_offset = lp->verify_from;
                    }
                }
            }
            ft->parts[ft->nparts].max_bytes = throttle_grant(rs, mp);
            if (ft->parts[ft->nparts].max_bytes == 0) {
                /* throttled: again when the budget has grown */
                if (rs->thr_ev && !rs->thr_armed) {
                    struct timeval tv = {0, 100 * 1000};
                    rs->thr_armed = 1;
                    evtimer_add(rs->thr_ev, &tv);
                }
                continue;
            }
            ft->parts[ft->nparts].durable_offset = sl_part_durable_offset(part);
            ft->nparts++;
        }
        if (ft->nparts) {
            ft->topic = sl_str_c(t->name);
            nt++;
        }
    }
    if (nt == 0) {
        if (deferred) { /* only refused partitions: ask again later */
            struct timeval tv = {0, RETRY_MS * 1000};
            evtimer_add(f->retry_ev, &tv);
        }
        goto out; /* nothing to follow from this leader (any more) */
    }
    q.ntopics = nt;
    f->corr++;
    if (sl_fetch_req_encode(&wb, f->corr, &q) != SL_OK)
        goto out;
    if (bufferevent_write(f->bev, wb.p, wb.len) == 0)
        f->inflight = 1;
out:
    sl_wb_fini(&wb);
    sl_arena_fini(&a);
}

sl_err sl_replicas_new(sl_broker *b, int32_t self, const sl_meta *image,
                       sl_replicas **out)
{
    sl_replicas *rs = calloc(1, sizeof(*rs));
    if (!rs)
        return SL_ERR_NOMEM;
    rs->b = b;
    rs->self = self;
    rs->image = image;
    rs->thr_ev = evtimer_new(b->base, thr_cb, rs);
    rs->thr_ms = sl_now_ms();
    replica_hwm_load(rs);
    if (b->cfg.replica_hwm_checkpoint_ms > 0 &&
        (rs->ck_ev =
             event_new(b->base, -1, EV_PERSIST, replica_hwm_tick, rs))) {
        int64_t ms = b->cfg.replica_hwm_checkpoint_ms;
        struct timeval tv = {(time_t)(ms / 1000),
                             (suseconds_t)(ms % 1000) * 1000};
        event_add(rs->ck_ev, &tv);
    }
    rs->isr_ev = event_new(b->base, -1, EV_PERSIST, replica_isr_tick, rs);
    if (rs->isr_ev) {
        int64_t ms = b->cfg.replica_lag_time_max_ms / 4;
        struct timeval tv;
        if (ms < 50)
            ms = 50;
        tv.tv_sec = (time_t)(ms / 1000);
        tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
        event_add(rs->isr_ev, &tv);
    }
    *out = rs;
    return SL_OK;
}

void sl_replicas_free(sl_replicas *rs)
{
    if (!rs)
        return;
    /* a clean stop: the marks as they are now (the partitions are still
     * open here) */
    replica_hwm_flush(rs, 1);
    replica_hwm_stop(rs);
    if (rs->ck_ev)
        event_free(rs->ck_ev);
    sl_hwm_ckpt_free(rs->ck_loaded, rs->ck_nloaded);
    if (rs->isr_ev)
        event_free(rs->isr_ev);
    if (rs->thr_ev)
        event_free(rs->thr_ev);
    while (rs->fetchers) {
        fetcher *f = rs->fetchers;
        rs->fetchers = f->next;
        fetcher_free(f);
    }
    while (rs->stalls) {
        stall *s = rs->stalls;
        rs->stalls = s->next;
        free(s);
    }
    for (size_t h = 0; h < LP_BUCKETS; h++)
        while (rs->lparts[h]) {
            lpart *lp = rs->lparts[h];
            rs->lparts[h] = lp->next;
            free(lp->topic);
            free(lp);
        }
    free(rs);
}

void sl_replicas_topic_deleted(sl_replicas *rs, const char *topic)
{
    /* reset, not freed: an ISR change in flight still points at it */
    for (size_t h = 0; h < LP_BUCKETS; h++)
        for (lpart *lp = rs->lparts[h]; lp; lp = lp->next)
            if (!strcmp(lp->topic, topic)) {
                lp->n = 0;
                lp->leading = 0;
                lp->verified_epoch = -1;
                lp->verifying = 0;
            }
    replica_hwm_topic_deleted(rs, topic);
}

/* Partitions the image no longer places on this node (neither a replica
 * nor a target: a reassignment moved them off, just now or while this
 * node was down) keep no records here: their files are deleted and the
 * log starts again empty, as on a node that never held them; if one comes
 * back, it is copied from offset 0 (docs/cluster.md 10.3). The image
 * only moves forward (a restarted node replays its own Raft log), so one
 * that names this node again came after the copy it would delete. */
static void drop_moved_off(sl_replicas *rs)
{
    const sl_meta *m = rs->image;
    sl_cluster_status st;
    /* Not before the image has applied everything this node's Raft log
     * held when it started: an older one (a restart replaying its log)
     * may predate a move that made this node a replica again, and then
     * the copy it would delete is one the cluster counts on. */
    sl_cluster_status_get(sl_bcluster_node(rs->b), &st);
    if (m->applied < st.start_index)
        return;
    for (size_t i = 0; i < m->ntopics; i++) {
        const sl_mi_topic *t = m->topics[i];
        for (int32_t p = 0; p < t->nparts; p++) {
            const sl_mi_part *mp = &t->parts[p];
            sl_part *part;
            uint64_t bytes = 0;
            int here = 0;
            lpart *lp;
            sl_err rc;
            for (int32_t r = 0; r < mp->nrep; r++)
                here |= mp->rep[r] == rs->self;
            for (int32_t r = 0; r < mp->ntarget; r++)
                here |= mp->target[r] == rs->self;
            /* Not a replica here: an observer's copy, or a replica moved
             * off. Whether a queue group coordinated here reads it is
             * known only once the groups this node coordinates are loaded
             * for this image, and once this node is back in the cluster
             * (not fenced): a restarted coordinator keeps its copies until
             * it knows whether it still coordinates their groups
             * (observer.c). */
            if (!here && !sl_observer_settled(rs->b->observer))
                continue;
            if (here || sl_observer_wants(rs->b->observer, t->name) ||
                sl_ops_part(rs->b, t->name, p, SL_OPS_NO_CREATE, &part) !=
                    SL_OK ||
                (sl_part_end_offset(part) == 0 &&
                 sl_part_start_offset(part) == 0))
                continue;
            rc = sl_ops_part_reset(rs->b, t->name, p, &bytes);
            if (rc != SL_OK) {
                sl_log(SL_ERROR, "replica",
                       "%s/%d: no longer a replica here, but its records "
                       "cannot be deleted: %s",
                       t->name, (int)p, sl_strerror(rc));
                continue;
            }
            sl_log(SL_INFO, "replica",
                   "%s/%d: no longer a replica here (moved to other nodes): "
                   "its records deleted (%llu bytes; no queue group "
                   "coordinated here reads it either)",
                   t->name, (int)p, (unsigned long long)bytes);
            if ((lp = replica_lp_get(rs, t->name, p, 0))) {
                lp->verified_epoch = -1;
                lp->verifying = 0;
                replica_hwm_forget(rs, lp);
            }
            {
                sl_hwm_entry *e =
                    sl_hwm_ckpt_find(rs->ck_loaded, rs->ck_nloaded, t->name, p);
                if (e)
                    e->hwm = -1;
                rs->ck_urgent = 1;
            }
        }
    }
}

void sl_replicas_update(sl_replicas *rs)
{
    const sl_meta *m = rs->image;
    fetcher **pf;

    replica_leaders_update(rs);
    drop_moved_off(rs);
    if (rs->ck_urgent) /* a replica moved off: its mark goes now */
        replica_hwm_flush(rs, 0);
    copies_done(rs);

    /* a fetcher per leader node this node follows something from */
    for (size_t i = 0; i < m->nnodes; i++) {
        const sl_mi_node *n = &m->nodes[i];
        int wanted = 0;
        fetcher *f;
        if (n->id == rs->self)
            continue;
        for (size_t k = 0; k < m->ntopics && !wanted; k++)
            for (int32_t p = 0; p < m->topics[k]->nparts && !wanted; p++)
                wanted = replica_followed(rs, m->topics[k], p, n->id) != NULL;
        for (f = rs->fetchers; f; f = f->next)
            if (f->leader == n->id)
                break;
        if (!wanted)
            continue;
        if (!f) {
            f = calloc(1, sizeof(*f));
            if (!f)
                continue;
            f->rs = rs;
            f->leader = n->id;
            f->retry_ev = evtimer_new(rs->b->base, retry_cb, f);
            if (!f->retry_ev) {
                free(f);
                continue;
            }
            f->next = rs->fetchers;
            rs->fetchers = f;
        }
        if (strcmp(f->addr, n->addr)) {
            fetcher_close(f);
            snprintf(f->addr, sizeof(f->addr), "%s", n->addr);
        }
        if (!f->bev)
            connect_fetcher(f);
        else
            replica_send_fetch(f);
    }
    /* fetchers of nodes that lead nothing of ours any more */
    for (pf = &rs->fetchers; *pf;) {
        fetcher *f = *pf;
        int wanted = 0;
        for (size_t k = 0; k < m->ntopics && !wanted; k++)
            for (int32_t p = 0; p < m->topics[k]->nparts && !wanted; p++)
                wanted =
                    replica_followed(rs, m->topics[k], p, f->leader) != NULL;
        if (wanted) {
            pf = &f->next;
        } else {
            *pf = f->next;
            fetcher_free(f);
        }
    }
}
