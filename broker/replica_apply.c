/*
 * replica_apply.c - a follower appends what its leader's FETCH answer
 * brought (replica.c has the essay of the fetcher).
 *
 * Divergent tails (docs/cluster.md 3.2): after every leader change the
 * first fetch of a partition asks for this node's last batch again and
 * compares the leader's batch at that offset with it (the header bytes;
 * the CRC in them covers the records). Different, or the leader's log
 * ends before it: the batch is a tail an old leader wrote that nobody
 * kept, so it is cut (sl_part_truncate) and the batch before it is checked
 * with the next fetch, until the logs agree. Only the active segment can
 * be cut; a divergence below it stalls the partition (logged, with what
 * to do) until its leader epoch changes.
 *
 * @thread loop (everything here)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
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
 * The first answer after a leader change (docs/cluster.md 3.2): the fetch
 * asked for this node's last batch again. The leader's batch at that
 * offset must be the same bytes (header compared; its CRC covers the
 * records); else this node's tail is one the old leader wrote and nobody
 * else kept: cut it and check the batch before it with the next fetch.
 * 1 when the tail is verified (the answer's batches can be appended).
 */
static int verify_tail(fetcher *f, const char *topic,
                       const sl_fetch_part_resp *pr, int32_t epoch,
                       sl_part *part, lpart *lp)
{
    int32_t p = (int32_t)pr->partition;
    if (pr->error == SL_ERR_OFFSET_OUT_OF_RANGE) {
        /* the leader's log ends before our last batch starts */
        int64_t lend = pr->log_end_offset, b;
        uint8_t hdr[SL_BATCH_HDR_SIZE];
        if (lend < 0 || lend >= sl_part_end_offset(part))
            return 0;
        if (lend < sl_part_start_offset(part) ||
            sl_part_batch_header(part, lend, hdr, &b) != SL_OK)
            b = lend;
        cut_tail(f, topic, p, part, b, epoch);
        return 0;
    }
    if (pr->error != SL_OK)
        return 0;
    if (pr->records_len >= SL_BATCH_HDR_SIZE &&
        (int64_t)sl_get_u64(pr->records) == lp->tail_base &&
        !memcmp(pr->records, lp->tail_hdr, SL_BATCH_HDR_SIZE)) {
        lp->verified_epoch = epoch;
        lp->verifying = 0;
        return 1;
    }
    cut_tail(f, topic, p, part, lp->tail_base, epoch);
    return 0;
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
    int appended = 0;

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
        if (lp && lp->verifying && !verify_tail(f, topic, pr, epoch, part, lp))
            return 0;
    }
    if (pr->error != SL_OK)
        return 0;
    while (off + SL_BATCH_HDR_SIZE <= pr->records_len) {
        const uint8_t *p = pr->records + off;
        int64_t base = (int64_t)sl_get_u64(p);
        uint32_t blen = sl_get_u32(p + SL_BATCH_LEN_OFF);
        size_t total = 12 + (size_t)blen;
        int32_t lod = (int32_t)sl_get_u32(p + 19);
        int64_t end = sl_part_end_offset(part);
        uint8_t *copy;
        sl_err rc;

        if (total > pr->records_len - off)
            break; /* a partial trailing batch: fetched again next time */
        if (base < 0)
            break;
        off += total;
        if (base + lod < end)
            continue; /* already here (the batch holding fetch_offset) */
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
    /* readers here stop at the leader's high-water mark too */
    if (pr->high_watermark >= 0)
        sl_ops_set_follower_marks(rs->b, topic, (int32_t)pr->partition,
                                  INT64_MAX, pr->high_watermark, SL_OK);
    if (appended) {
        /* the next fetch reports this as durable: send it once it is */
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
