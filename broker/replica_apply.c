/*
 * replica_apply.c - a follower appends what its leader's FETCH answer
 * brought (replica.c has the essay of the fetcher).
 *
 * Divergent tails (docs/cluster.md 3.2): after every leader change the
 * fetches of a partition start at the lowest offset where this node's log
 * may differ from the new leader's (its high-water mark, else its active
 * segment's base: replica_verify_from), and every batch from there to
 * this node's log end is compared with the leader's batch at the same
 * offset (the header bytes; the CRC in them covers the records). At the
 * first that differs, or where the leader's log ends first, this node's
 * log is cut (sl_part_truncate), once; then it copies from there. Only
 * the active segment can be cut; a divergence below it stalls the
 * partition (logged, with what to do) until its leader epoch changes.
 *
 * @thread loop (everything here)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/observer.h"
#include "broker/ops.h"
#include "broker/replica_int.h"
#include "cluster/meta.h"
#include "protocol/api.h"
#include "protocol/batch.h"
#include "protocol/log.h"

int replica_is_stalled(sl_replicas *rs, const char *topic, int32_t p,
                       int32_t epoch)
{
    for (stall *s = rs->stalls; s; s = s->next)
        if (s->partition == p && !strcmp(s->topic, topic))
            return s->leader_epoch == epoch;
    return 0;
}

static void set_stalled(sl_replicas *rs, const char *topic, int32_t p,
                        int32_t epoch)
{
    stall *s;
    for (s = rs->stalls; s; s = s->next)
        if (s->partition == p && !strcmp(s->topic, topic))
            break;
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return;
        snprintf(s->topic, sizeof(s->topic), "%s", topic);
        s->partition = p;
        s->next = rs->stalls;
        rs->stalls = s;
    }
    s->leader_epoch = epoch;
}

/* Cut this follower's log back to `to` (a batch boundary); 0 if it could
 * not be (then the partition stalls until its epoch changes). */
static int cut_tail(fetcher *f, const char *topic, int32_t p, sl_part *part,
                    int64_t to, int32_t epoch)
{
    sl_err rc;
    int64_t end = sl_part_end_offset(part);
    if (to >= end)
        return 1;
    rc = sl_part_truncate(part, to);
    if (rc != SL_OK) {
        sl_log(SL_ERROR, "replica",
               "%s/%d: log diverged from leader %d below offset %lld and "
               "cannot be truncated there (%s): not replicating this "
               "partition; stop this node, remove its directory "
               "DATA/topics/%s/%d and restart it to copy it again",
               topic, (int)p, (int)f->leader, (long long)end, sl_strerror(rc),
               topic, (int)p);
        set_stalled(f->rs, topic, p, epoch);
        return 0;
    }
    sl_log(SL_WARN, "replica",
           "%s/%d: log end %lld diverged from leader %d (epoch %d): "
           "truncated to %lld",
           topic, (int)p, (long long)end, (int)f->leader, (int)epoch,
           (long long)to);
    return 1;
}

/*
 * Where a follower's check against a new leader starts: the lowest offset
 * at which the two logs may differ. Below this node's high-water mark
 * (its read cap: the last one its leader sent, or the one it computed as
 * leader) every record is on every in-sync replica, so it is in the new
 * leader's log at the same offset with the same bytes (the new leader was
 * in sync). A node that just started knows no mark in memory: it takes
 * the one it wrote down (replica_hwm.c), which is also one it knew.
 * Where neither is known (the file had none, or one that led with no
 * follower in sync), the base of the active segment: the lowest offset a
 * cut can reach. Never above the log end.
 */
int64_t replica_verify_from(sl_replicas *rs, lpart *lp, const sl_mi_topic *t,
                            sl_part *part, const char **why)
{
    int64_t end = sl_part_end_offset(part);
    int64_t from = sl_part_active_base(part), hw = sl_part_read_cap(part);
    int64_t ck = replica_hwm_checkpointed(rs, lp, t);
    *why = "the active segment's base";
    if (hw != INT64_MAX && hw > from) {
        from = hw;
        *why = "the high-water mark";
    }
    if (ck > from) {
        from = ck;
        *why = "the checkpointed high-water mark";
    }
    return from < end ? from : end;
}

/* The check of lp is over: say what it took (docs/benchmarks.md). */
static void verify_done(fetcher *f, const char *topic, int32_t p, lpart *lp,
                        int64_t end, int64_t cut)
{
    char cutmsg[64] = "no difference";
    if (cut >= 0)
        snprintf(cutmsg, sizeof(cutmsg), "cut at %lld", (long long)cut);
    sl_log(SL_INFO, "replica",
           "%s/%d: log [%lld, %lld) checked against leader %d (epoch %d): "
           "%lld bytes compared in %lld ms, %s",
           topic, (int)p, (long long)lp->verify_start, (long long)end,
           (int)f->leader, (int)lp->verify_epoch, (long long)lp->verify_bytes,
           (long long)(sl_now_ms() - lp->verify_ms), cutmsg);
}

/*
 * The answers after a leader change (docs/cluster.md 3.2): the fetch asked
 * from lp->verify_from, and every batch of this node's log from there to
 * its end must be the leader's batch at the same offset, the same header
 * bytes (base offset, length, CRC over the records, producer fields).
 * Comparing only the last batch is not enough: an idempotent (or any
 * retried) producer resends the same bytes, so after a cut the old
 * leader's tail and the new leader's log can end with the same batch at
 * the same offset while the records before it are in another order; the
 * follower kept its own order, and the acks the new leader had answered
 * named offsets that hold other records on the old leader (issue 14,
 * tests/cluster/test_cluster_produce_offsets.py). The first batch that
 * differs, or this node's batches past the leader's log end, are cut
 * (sl_part_truncate) and the check is done; an answer that stops short
 * (max_bytes) moves verify_from on and the next fetch goes on from there.
 * 1 when this node's whole log is verified (the answer's batches past its
 * end can be appended).
 */
static int verify_tail(fetcher *f, const char *topic,
                       const sl_fetch_part_resp *pr, int32_t epoch,
                       sl_part *part, lpart *lp)
{
    int32_t p = (int32_t)pr->partition;
    int64_t end = sl_part_end_offset(part), cut = -1;
    size_t off = 0;

    if (lp->verify_epoch != epoch)
        return 0; /* asked in another epoch: the next fetch starts over */
    lp->verify_bytes += (int64_t)pr->records_len;
    if (pr->error == SL_ERR_OFFSET_OUT_OF_RANGE &&
        pr->log_start_offset > lp->verify_from &&
        pr->log_end_offset >= pr->log_start_offset) {
        /* the leader no longer keeps records that old: compare from its
         * log start */
        lp->verify_from = pr->log_start_offset;
        if (lp->verify_from >= end)
            goto done;
        return 0;
    }
    if (pr->error == SL_ERR_OFFSET_OUT_OF_RANGE) {
        /* the leader's log ends before verify_from */
        int64_t lend = pr->log_end_offset, b;
        uint8_t hdr[SL_BATCH_HDR_SIZE];
        if (lend < 0 || lend >= end)
            return 0;
        if (lend < sl_part_start_offset(part) ||
            sl_part_batch_header(part, lend, hdr, &b) != SL_OK)
            b = lend;
        cut = b;
        goto cut;
    }
    if (pr->error != SL_OK)
        return 0;
    while (off + SL_BATCH_HDR_SIZE <= pr->records_len) {
        const uint8_t *q = pr->records + off;
        int64_t base = -1, last = -1, mine = -1;
        size_t total = 12 + (size_t)sl_get_u32(q + SL_BATCH_LEN_OFF);
        uint8_t hdr[SL_BATCH_HDR_SIZE];

        if (total > pr->records_len - off ||
            !sl_batch_raw_offsets(q, &base, &last) || base >= end)
            break; /* partial, or past this node's log: compared */
        off += total;
        if (last < lp->verify_from)
            continue; /* below the range */
        if (base != lp->verify_from ||
            sl_part_batch_header(part, base, hdr, &mine) != SL_OK ||
            mine != base || memcmp(q, hdr, SL_BATCH_HDR_SIZE) != 0) {
            /* the logs differ from here (or from this node's batch
             * holding it) */
            if (mine < 0 || mine > base)
                mine = base;
            cut = mine < lp->verify_from ? mine : lp->verify_from;
            goto cut;
        }
        lp->verify_from = last + 1;
    }
    if (lp->verify_from >= end)
        goto done;
    if (pr->log_end_offset >= 0 && pr->log_end_offset <= lp->verify_from) {
        /* nothing more on the leader: this node's batches from
         * verify_from on are a tail nobody kept */
        cut = lp->verify_from;
        goto cut;
    }
    return 0; /* the next fetch goes on from verify_from */
cut:
    if (!cut_tail(f, topic, p, part, cut, epoch))
        return 0;
    /* verified below the cut; the next fetch copies from the new end */
    verify_done(f, topic, p, lp, end, cut);
    lp->verified_epoch = epoch;
    lp->verifying = 0;
    return 0;
done:
    verify_done(f, topic, p, lp, end, -1);
    lp->verified_epoch = epoch;
    lp->verifying = 0;
    return 1;
}

static void dwait_cb(void *arg, sl_err rc)
{
    dwait *d = arg, **pp;
    fetcher *f = d->f;
    (void)rc; /* a failed fsync: the next fetch reports what is durable */
    for (pp = &f->waits; *pp; pp = &(*pp)->next)
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    free(d);
    if (!f->waits)
        replica_send_fetch(f);
}

/* Append one response's batches for one partition; 1 if any was. */
static int apply_part(fetcher *f, const char *topic,
                      const sl_fetch_part_resp *pr, int32_t epoch)
{
    sl_replicas *rs = f->rs;
    size_t off = 0;
    sl_part *part;
    int appended = 0, verifying = 1;

    if (sl_ops_part(rs->b, topic, (int32_t)pr->partition, SL_OPS_NO_CREATE,
                    &part) != SL_OK)
        return 0;
    if (pr->error == SL_ERR_FENCED_LEADER_EPOCH ||
        pr->error == SL_ERR_UNKNOWN_LEADER_EPOCH) {
        lpart *lp = replica_lp_get(rs, topic, (int32_t)pr->partition, 1);
        if (lp) {
            if (lp->refused_epoch != epoch)
                sl_log(SL_INFO, "replica",
                       "%s/%u: leader %d refused our fetch in epoch %d: %s; "
                       "waiting for the metadata to agree",
                       topic, pr->partition, (int)f->leader, (int)epoch,
                       sl_strerror(pr->error));
            lp->refused_epoch = epoch;
            lp->refused_until_ms = sl_now_ms() + RETRY_MS;
        }
        return 0;
    }
    {
        const sl_mi_topic *t = sl_meta_topic_find(rs->image, topic);
        if (t && (int32_t)pr->partition < t->nparts &&
            replica_throttled(rs, &t->parts[pr->partition]))
            rs->thr_budget -= (int64_t)pr->records_len;
    }
    {
        lpart *lp = replica_lp_get(rs, topic, (int32_t)pr->partition, 1);
        if (lp && lp->stale_answer)
            return 0; /* asked before an observer's copy started again */
        if (lp && lp->verifying && !verify_tail(f, topic, pr, epoch, part, lp))
            return 0;
        verifying = lp && lp->verifying;
    }
    if (pr->error == SL_ERR_OFFSET_OUT_OF_RANGE && !verifying &&
        pr->log_start_offset > sl_part_end_offset(part) &&
        pr->log_end_offset >= pr->log_start_offset) {
        /* the leader's log starts after this node's end (retention or
         * compaction removed what lies between): go on from its start */
        int64_t was = sl_part_end_offset(part);
        sl_err src = sl_part_skip_to(part, pr->log_start_offset, sl_now_ms());
        sl_log(src == SL_OK ? SL_INFO : SL_ERROR, "replica",
               "%s/%u: leader %d's log starts at %lld, after the end here "
               "(%lld): the log here goes on from there%s%s",
               topic, pr->partition, (int)f->leader,
               (long long)pr->log_start_offset, (long long)was,
               src == SL_OK ? "" : ": ", src == SL_OK ? "" : sl_strerror(src));
        return 0;
    }
    if (pr->error != SL_OK)
        return 0;
    if (pr->records_len) {
        const sl_mi_topic *t = sl_meta_topic_find(rs->image, topic);
        rs->fetched_bytes += (int64_t)pr->records_len;
        if (t && (int32_t)pr->partition < t->nparts &&
            replica_copying(rs, &t->parts[pr->partition])) {
            lpart *lp = replica_lp_get(rs, topic, (int32_t)pr->partition, 1);
            rs->copied_bytes += (int64_t)pr->records_len;
            if (lp && !lp->copied)
                lp->copy_ms = sl_now_ms();
            if (lp)
                lp->copied += (int64_t)pr->records_len;
        }
    }
    while (off + SL_BATCH_HDR_SIZE <= pr->records_len) {
        const uint8_t *p = pr->records + off;
        int64_t base = -1, last = -1;
        uint32_t blen = sl_get_u32(p + SL_BATCH_LEN_OFF);
        size_t total = 12 + (size_t)blen;
        int64_t end = sl_part_end_offset(part);
        uint8_t *copy;
        sl_err rc;

        if (total > pr->records_len - off)
            break; /* a partial trailing batch: fetched again next time */
        if (!sl_batch_raw_offsets(p, &base, &last))
            break; /* offsets no batch can have: not appended */
        off += total;
        if (last < end)
            continue; /* already here (the batch holding fetch_offset) */
        if (base > end && !verifying) {
            /* The leader holds nothing in [end, base): compaction removed
             * those records there before this node copied them (or its
             * log starts later). The log goes on from base, in a new
             * segment (offsets inside one are contiguous). */
            sl_err src = sl_part_skip_to(part, base, sl_now_ms());
            if (src == SL_OK) {
                sl_log(SL_INFO, "replica",
                       "%s/%u: leader %d has no records in [%lld, %lld) "
                       "(compacted): the log here goes on from %lld",
                       topic, pr->partition, (int)f->leader, (long long)end,
                       (long long)base, (long long)base);
                end = base;
            } else {
                sl_log(SL_ERROR, "replica", "%s/%u: skipping to %lld: %s",
                       topic, pr->partition, (long long)base, sl_strerror(src));
            }
        }
        if (base < end && sl_part_start_offset(part) == end &&
            !replica_placed(rs, topic, (int32_t)pr->partition)) {
            /* An observer's copy that starts empty at what its groups
             * need (observer.c), inside this batch of the leader's: it
             * starts at the batch instead (a batch is stored whole). */
            lpart *lp = replica_lp_get(rs, topic, (int32_t)pr->partition, 1);
            sl_replicas_copy_restart(rs, topic, (int32_t)pr->partition, base,
                                     "the leader's batch holding its start");
            end = sl_part_end_offset(part);
            if (lp) { /* this answer is the one to apply */
                lp->stale_answer = 0;
                lp->verified_epoch = epoch;
            }
        }
        if (base != end) {
            sl_log(SL_ERROR, "replica",
                   "%s/%u: leader %d sent offset %lld, log end here is %lld: "
                   "logs diverged; not replicating this partition until its "
                   "leader changes",
                   topic, pr->partition, (int)f->leader, (long long)base,
                   (long long)end);
            set_stalled(rs, topic, (int32_t)pr->partition, epoch);
            break;
        }
        copy = malloc(total);
        if (!copy)
            break;
        memcpy(copy, p, total);
        rs->b->replicating = 1;
        rc = sl_ops_append(rs->b, topic, (int32_t)pr->partition,
                           SL_OPS_NO_CREATE, copy, total, NULL, NULL);
        rs->b->replicating = 0;
        free(copy);
        if (rc != SL_OK) {
            sl_log(SL_ERROR, "replica", "%s/%u: append at %lld: %s", topic,
                   pr->partition, (long long)base, sl_strerror(rc));
            set_stalled(rs, topic, (int32_t)pr->partition, epoch);
            break;
        }
        appended = 1;
    }
    if (pr->error == SL_OK &&
        !replica_placed(rs, topic, (int32_t)pr->partition))
        sl_observer_leader_end(rs->b->observer, topic, (int32_t)pr->partition,
                               pr->log_start_offset, pr->log_end_offset);
    /* readers here stop at the leader's high-water mark too */
    if (pr->high_watermark >= 0)
        sl_ops_set_follower_marks(rs->b, topic, (int32_t)pr->partition,
                                  INT64_MAX, pr->high_watermark, SL_OK);
    if (appended && replica_placed(rs, topic, (int32_t)pr->partition)) {
        /* the next fetch reports this as durable: send it once it is (an
         * observer's copy, observer.c, counts for no ack: not waited) */
        dwait *d = calloc(1, sizeof(*d));
        sl_ops_wait *w = NULL;
        if (d) {
            d->f = f;
            if (sl_ops_wait_durable(rs->b, topic, (int32_t)pr->partition,
                                    sl_part_end_offset(part), dwait_cb, d,
                                    &w) == SL_OK &&
                w) {
                d->w = w;
                d->next = f->waits;
                f->waits = d;
            } else {
                free(d);
            }
        }
    }
    return appended;
}

void replica_on_response(fetcher *f, const uint8_t *frame, size_t flen)
{
    sl_arena a;
    sl_fetch_resp resp;
    uint32_t corr;

    sl_arena_init(&a);
    if (sl_resp_hdr_decode(frame, flen, &corr) != SL_OK || corr != f->corr ||
        sl_fetch_resp_decode(frame + SL_RESP_HDR_SIZE, flen - SL_RESP_HDR_SIZE,
                             &a, &resp) != SL_OK) {
        sl_log(SL_WARN, "replica", "leader %d at %s: bad FETCH reply",
               (int)f->leader, f->addr);
        f->dead = 1;
        goto out;
    }
    for (uint32_t i = 0; i < resp.ntopics; i++) {
        char topic[256];
        const sl_mi_topic *t;
        const sl_fetch_topic_resp *tr = &resp.topics[i];
        snprintf(topic, sizeof(topic), "%.*s", (int)tr->topic.len,
                 tr->topic.p ? tr->topic.p : "");
        t = sl_meta_topic_find(f->rs->image, topic);
        if (!t)
            continue;
        for (uint32_t j = 0; j < tr->nparts; j++) {
            const sl_mi_part *mp;
            if ((int32_t)tr->parts[j].partition >= t->nparts)
                continue;
            mp = replica_followed(f->rs, t, (int32_t)tr->parts[j].partition,
                                  f->leader);
            if (mp)
                apply_part(f, topic, &tr->parts[j], mp->leader_epoch);
        }
    }
out:
    sl_arena_fini(&a);
}
