/*
 * replica_leader.c - the partition leader's side of replication: what
 * each follower reported, the high-water mark and durable acks, and ISR
 * upkeep (replica.c has the essay of the follower's side).
 *
 * Each follower's fetch (FETCH version 2) carries, per partition, its log
 * end (fetch_offset) and durable offset. For a partition this node leads,
 * with the ISR from the image:
 *   HW  = min(leader's end, every in-sync follower's end); readers stop
 *         there (the partition's read cap; it never goes down while this
 *         node leads; INT64_MAX when no follower is in the ISR);
 *   DHW = min(leader's durable offset, every in-sync follower's durable
 *         offset): durable acks are answered below it (ops.c), or refused
 *         with NOT_ENOUGH_REPLICAS while the ISR is smaller than
 *         min-insync-replicas (capped to the partition's replication
 *         factor, sl_meta_part_rf: during a reassignment the count it had
 *         before, so moving one partition changes no other's rule).
 * A follower that never fetched counts as having nothing (0).
 *
 * @thread loop (everything here)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/cluster_propose.h"
#include "broker/ops.h"
#include "broker/replica.h"
#include "broker/replica_int.h"
#include "cluster/meta.h"
#include "protocol/api.h"
#include "protocol/log.h"

static unsigned lp_hash(const char *topic, int32_t p)
{
    unsigned h = 2166136261u;
    for (const char *c = topic; *c; c++)
        h = (h ^ (unsigned char)*c) * 16777619u;
    h = (h ^ (unsigned)p) * 16777619u;
    return h % LP_BUCKETS;
}

lpart *replica_lp_get(sl_replicas *rs, const char *topic, int32_t p, int create)
{
    unsigned h = lp_hash(topic, p);
    lpart *lp;
    for (lp = rs->lparts[h]; lp; lp = lp->next)
        if (lp->partition == p && !strcmp(lp->topic, topic))
            return lp;
    if (!create)
        return NULL;
    lp = calloc(1, sizeof(*lp));
    if (!lp || !(lp->topic = strdup(topic))) {
        free(lp);
        return NULL;
    }
    lp->partition = p;
    lp->rs = rs;
    lp->verified_epoch = -1;
    lp->refused_epoch = -1;
    lp->next = rs->lparts[h];
    rs->lparts[h] = lp;
    replica_hwm_attach(rs, lp);
    /* first sight in this process: no high-water mark known yet */
    sl_ops_set_follower_marks(rs->b, topic, p, INT64_MAX, 0, SL_OK);
    return lp;
}

int32_t sl_replicas_min_insync(const sl_broker *b, const sl_mi_topic *t,
                               int32_t p)
{
    const char *v = sl_meta_topic_config(t, "min-insync-replicas");
    int64_t n = b->cfg.min_insync_replicas;
    int32_t rf = sl_meta_part_rf(&t->parts[p]);
    if (v)
        n = strtoll(v, NULL, 10);
    if (n > rf)
        n = rf;
    return n < 1 ? 1 : (int32_t)n;
}

/* Recompute one partition's marks (see above). */
static void leader_eval(sl_replicas *rs, const sl_mi_topic *t, int32_t p,
                        lpart *lp)
{
    const sl_mi_part *mp = &t->parts[p];
    sl_part *part;
    int64_t end, fol_end = INT64_MAX, fol_dur = INT64_MAX, cap, old;
    int nfol = 0;

    if (sl_ops_part(rs->b, t->name, p, SL_OPS_NO_CREATE, &part) != SL_OK)
        return;
    if (mp->leader != rs->self) {
        if (lp->leading) { /* lost it: waiting acks will not come here */
            lp->leading = 0;
            sl_ops_set_follower_marks(rs->b, t->name, p, INT64_MAX,
                                      sl_part_read_cap(part),
                                      SL_ERR_NOT_LEADER);
        }
        return;
    }
    if (!lp->leading) { /* every follower gets a full lag period */
        lp->lead_ms = sl_now_ms();
        for (int32_t k = 0; k < lp->n; k++)
            lp->caught_ms[k] = lp->lead_ms;
    }
    lp->leading = 1;
    end = sl_part_end_offset(part);
    if (lp->njoining && mp->part_epoch != lp->join_epoch)
        lp->njoining = 0; /* applied (now in mp->isr) or overtaken */
    for (int32_t i = 0; i < mp->nisr + lp->njoining; i++) {
        int32_t m = i < mp->nisr ? mp->isr[i] : lp->joining[i - mp->nisr], k;
        int64_t fe = 0, fd = 0;
        if (m == rs->self)
            continue;
        for (k = 0; k < lp->n; k++)
            if (lp->id[k] == m) {
                fe = lp->end[k];
                fd = lp->durable[k];
                break;
            }
        nfol++;
        if (fe < fol_end)
            fol_end = fe;
        if (fd < fol_dur)
            fol_dur = fd;
    }
    old = sl_part_read_cap(part);
    if (old > end)
        old = end;
    if (!nfol) {
        cap = INT64_MAX;
    } else {
        cap = fol_end < end ? fol_end : end;
        if (cap < old)
            cap = old; /* the HW never goes back on a leader */
    }
    if (mp->nisr < sl_replicas_min_insync(rs->b, t, p))
        sl_ops_set_follower_marks(rs->b, t->name, p, -1, cap,
                                  SL_ERR_NOT_ENOUGH_REPLICAS);
    else
        sl_ops_set_follower_marks(rs->b, t->name, p, fol_dur, cap, SL_OK);
}

/* A follower's fetch of partition p names leader epoch e (version 3):
 * 0 when it agrees with this node's image, else the partition's error. */
static sl_err epoch_check(const sl_replicas *rs, const sl_mi_part *mp,
                          int32_t e)
{
    if (e < 0)
        return SL_OK;
    if (e < mp->leader_epoch)
        return SL_ERR_FENCED_LEADER_EPOCH; /* the follower's image lags */
    if (e > mp->leader_epoch)
        return SL_ERR_UNKNOWN_LEADER_EPOCH; /* ours does */
    return mp->leader == rs->self ? SL_OK : SL_ERR_NOT_LEADER;
}

void sl_replicas_on_fetch(sl_replicas *rs, sl_fetch_req *q)
{
    for (uint32_t i = 0; i < q->ntopics; i++) {
        char topic[256];
        const sl_mi_topic *t;
        const sl_fetch_topic *ft = &q->topics[i];
        snprintf(topic, sizeof(topic), "%.*s", (int)ft->topic.len,
                 ft->topic.p ? ft->topic.p : "");
        t = sl_meta_topic_find(rs->image, topic);
        if (!t)
            continue;
        for (uint32_t j = 0; j < ft->nparts; j++) {
            sl_fetch_part *fp = &ft->parts[j];
            int32_t p = (int32_t)fp->partition, k;
            lpart *lp;
            if (p < 0 || p >= t->nparts)
                continue;
            if (q->epochs) {
                /* a refused fetch says nothing about the follower's log
                 * that this epoch can trust: not counted */
                fp->refused =
                    (int32_t)epoch_check(rs, &t->parts[p], fp->leader_epoch);
                if (fp->refused)
                    continue;
            }
            for (k = 0; k < t->parts[p].nrep; k++)
                if (t->parts[p].rep[k] == q->replica_id)
                    break;
            if (k == t->parts[p].nrep)
                continue; /* an observer (observer.c): served, not counted */
            lp = replica_lp_get(rs, topic, p, 1);
            if (!lp)
                continue;
            for (k = 0; k < lp->n; k++)
                if (lp->id[k] == q->replica_id)
                    break;
            if (k == lp->n) {
                if (lp->n == SL_META_MAX_RF)
                    continue;
                lp->id[lp->n++] = q->replica_id;
                lp->prev_end[k] = INT64_MAX;
                lp->caught_ms[k] = sl_now_ms();
            }
            {
                sl_part *part;
                int64_t now_end = 0;
                if (sl_ops_part(rs->b, topic, p, SL_OPS_NO_CREATE, &part) ==
                    SL_OK)
                    now_end = sl_part_end_offset(part);
                /* caught up: it has all the leader had when it last
                 * asked (or all there is now) */
                lp->fetch_ms[k] = sl_now_ms();
                if (fp->fetch_offset >= now_end ||
                    fp->fetch_offset >= lp->prev_end[k])
                    lp->caught_ms[k] = lp->fetch_ms[k];
                lp->prev_end[k] = now_end;
            }
            lp->end[k] = fp->fetch_offset;
            lp->durable[k] = fp->durable_offset < fp->fetch_offset
                                 ? fp->durable_offset
                                 : fp->fetch_offset;
            leader_eval(rs, t, p, lp);
        }
    }
}

/* ---- ISR upkeep (the partition leader; docs/cluster.md 3.3) ------------
 * A follower in the ISR that has not been caught up for
 * replica-lag-time-max-ms leaves it; a replica outside it that is caught up
 * (and fetching) joins it. Both through the metadata quorum as a
 * PARTITION_CHANGE compare-and-set on the partition epoch, one in flight
 * per partition; the new ISR takes effect when the image applies it. */

static void isr_change_done(void *arg, sl_err rc, const char *msg)
{
    lpart *lp = arg;
    lp->change_pending = 0;
    if (rc != SL_OK) {
        lp->njoining = 0;
        sl_log(SL_DEBUG, "replica", "%s/%d: ISR change not applied: %s",
               lp->topic, (int)lp->partition,
               msg && msg[0] ? msg : sl_strerror(rc));
    }
}

static void isr_check(sl_replicas *rs, lpart *lp, int64_t now, int64_t lag)
{
    const sl_mi_topic *t = sl_meta_topic_find(rs->image, lp->topic);
    const sl_mi_part *mp;
    int32_t isr[SL_META_MAX_RF], n = 0, join[SL_META_MAX_RF], nj = 0;
    int changed = 0;
    int64_t hw = -1;
    sl_part *part;
    sl_wb wb;

    if (!t || lp->partition >= t->nparts || lp->change_pending)
        return;
    mp = &t->parts[lp->partition];
    if (mp->leader != rs->self)
        return;
    /* the high-water mark: a joiner must hold every committed record */
    if (sl_ops_part(rs->b, lp->topic, lp->partition, SL_OPS_NO_CREATE, &part) ==
        SL_OK) {
        int64_t end = sl_part_end_offset(part);
        hw = sl_part_read_cap(part);
        if (hw > end)
            hw = end;
    }
    for (int32_t r = 0; r < mp->nrep; r++) {
        int32_t m = mp->rep[r], k, in = 0, ok;
        for (int32_t i = 0; i < mp->nisr; i++)
            in |= mp->isr[i] == m;
        if (m == rs->self) {
            isr[n++] = m;
            continue;
        }
        for (k = 0; k < lp->n; k++)
            if (lp->id[k] == m)
                break;
        /* one that never fetched since this node leads: from then */
        ok = k < lp->n ? now - lp->caught_ms[k] <= lag
                       : now - lp->lead_ms <= lag;
        if (in && !ok) {
            sl_log(SL_WARN, "replica",
                   "%s/%d: follower %d not caught up for %lld ms: leaves "
                   "the in-sync set",
                   lp->topic, (int)lp->partition, (int)m, (long long)lag);
            changed = 1;
            continue;
        }
        /* joins: caught up at its latest fetch, which is recent, and
         * not fenced (a dead node's old progress does not count), and
         * holding every committed record: its fetch offset is at the
         * high-water mark (tests/cluster/test_cluster_isr_join.py) */
        if (!in && k < lp->n && lp->caught_ms[k] == lp->fetch_ms[k] &&
            now - lp->fetch_ms[k] <= 1000 && sl_meta_node_find(rs->image, m) &&
            !sl_meta_node_find(rs->image, m)->fenced) {
            if (hw < 0 || lp->end[k] < hw) {
                sl_log(SL_DEBUG, "replica",
                       "%s/%d: follower %d at offset %lld, below the "
                       "high-water mark %lld: does not join yet",
                       lp->topic, (int)lp->partition, (int)m,
                       (long long)lp->end[k], (long long)hw);
            } else {
                sl_log(SL_INFO, "replica",
                       "%s/%d: follower %d caught up at offset %lld "
                       "(high-water mark %lld): joins the in-sync set",
                       lp->topic, (int)lp->partition, (int)m,
                       (long long)lp->end[k], (long long)hw);
                changed = 1;
                in = 1;
                join[nj++] = m;
            }
        }
        if (in)
            isr[n++] = m;
    }
    if (!changed)
        return;
    sl_wb_init(&wb, 128);
    sl_meta_enc_partition_change(&wb, lp->topic, lp->partition, mp->part_epoch,
                                 rs->self, isr, n);
    if (!wb.err && sl_bcluster_propose(rs->b, wb.p, wb.len, isr_change_done,
                                       lp) == SL_OK) {
        lp->change_pending = 1;
        memcpy(lp->joining, join, sizeof(join[0]) * (size_t)nj);
        lp->njoining = nj;
        lp->join_epoch = mp->part_epoch;
    }
    sl_wb_fini(&wb);
}

void replica_isr_tick(evutil_socket_t fd, short what, void *arg)
{
    sl_replicas *rs = arg;
    int64_t now = sl_now_ms(), lag = rs->b->cfg.replica_lag_time_max_ms;
    (void)fd;
    (void)what;
    for (size_t h = 0; h < LP_BUCKETS; h++)
        for (lpart *lp = rs->lparts[h]; lp; lp = lp->next)
            if (lp->leading)
                isr_check(rs, lp, now, lag);
}

/* The image changed: every replicated partition here is evaluated. */
void replica_leaders_update(sl_replicas *rs)
{
    const sl_meta *m = rs->image;
    for (size_t i = 0; i < m->ntopics; i++) {
        const sl_mi_topic *t = m->topics[i];
        for (int32_t p = 0; p < t->nparts; p++) {
            const sl_mi_part *mp = &t->parts[p];
            int here = 0;
            lpart *lp;
            for (int32_t r = 0; r < mp->nrep; r++)
                here |= mp->rep[r] == rs->self;
            if (!here)
                continue;
            /* a single replica is evaluated only once it had others (a
             * reassignment moved it here or shrank it): its marks then
             * go back to the local fsync alone */
            lp = replica_lp_get(rs, t->name, p, mp->nrep > 1);
            if (lp)
                leader_eval(rs, t, p, lp);
        }
    }
}
