/*
 * producer_retry.c - the producer's delivery reports, its retry list and
 * the order it keeps within a partition, its producer id, and the
 * recovery from a leader that lost its state (moved from producer.c; its
 * essay gives the whole).
 *
 * A leader that lost this producer's state (a new leader that never got
 * its batches) answers UNKNOWN_PRODUCER_ID to a batch that does not start
 * at sequence 0; nothing of the producer is in its log, so none of the
 * partition's unacknowledged batches is stored. OUT_OF_ORDER_SEQUENCE
 * with no earlier batch of the partition pending is the same loss in part
 * (the leader lost the tail of what it had acknowledged with acks written:
 * a new leader that got only some of it): the batch was not stored, nor
 * any later one. In both cases, as Kafka's KIP-360, the
 * producer then (unk_*) holds the partition until none of its batches is
 * in flight, takes the next epoch, and resends the partition's batches in
 * order renumbered from 0 (sl_pr_restamp: the header's id, epoch, sequence and
 * CRC rewritten). Batches of one partition stamped with different
 * epochs are never in flight together (sl_pr_blocked()), so a later batch in a
 * new epoch cannot be stored ahead of an earlier one the leader refused.
 */
#include <stdlib.h>
#include <string.h>

#include "client/src/producer_int.h"
#include "protocol/api.h"

/* ---- reports ---------------------------------------------------------- */

/* Queue the result of batch b (the producer keeps b until delivered). */
void sl_pr_report_batch(sluice_producer *p, sl_pbatch *b, int64_t base,
                        sl_err err)
{
    b->rep_topic = p->acc.topics[b->tidx].name;
    if (err != SL_OK && b->bb.producer_id >= 0 &&
        b->bb.producer_id == p->acc.pid && b->bb.producer_epoch == p->acc.epoch)
        p->pid_reset = 1; /* its sequences have a gap now */
    b->rep_base = err == SL_OK ? base : -1;
    b->rep_err = err;
    sl_accum_done(&p->acc, b); /* its buffer takes the next batch now */
    b->next = NULL;
    if (p->rep_tail)
        p->rep_tail->next = b;
    else
        p->rep_head = b;
    p->rep_tail = b;
    p->nrep += b->n;
}

/* Hand queued reports to the callback, with the mutex released. Called
 * with the mutex held; returns with it held. Returns the records. */
int sl_pr_deliver(sluice_producer *p)
{
    sl_pbatch *list = p->rep_head, *b, *nb;
    size_t n = p->nrep;
    sluice_delivery d;
    uint32_t i;

    if (!list)
        return 0;
    p->rep_head = p->rep_tail = NULL;
    p->nrep = 0;
    p->outstanding -= n;
    if (p->cfg.dr_cb) {
        pthread_mutex_unlock(&p->mu);
        for (b = list; b; b = b->next) {
            /* topic names are stable until the producer is freed (the
             * topics array is not: another thread may grow it) */
            d.topic = b->rep_topic;
            d.partition = b->partition;
            d.err = (sluice_err)b->rep_err;
            for (i = 0; i < b->n; i++) {
                d.offset = b->rep_base >= 0 ? b->rep_base + i : -1;
                d.timestamp = b->ts[i];
                d.opaque = b->opaque[i];
                p->cfg.dr_cb(&d, p->cfg.dr_opaque);
            }
        }
        pthread_mutex_lock(&p->mu);
    }
    for (b = list; b; b = nb) {
        nb = b->next;
        sl_accum_release(&p->acc, b);
    }
    return (int)n;
}

/* ---- KIP-360: a leader that lost the producer's state ----------------- */

static struct unk *unk_find(const sluice_producer *p, int tidx, int32_t part)
{
    for (size_t i = 0; i < p->nunk; i++)
        if (p->unk[i].tidx == tidx && p->unk[i].partition == part)
            return &p->unk[i];
    return NULL;
}

/* b was answered UNKNOWN_PRODUCER_ID: hold its partition, and ask for the
 * next epoch if b carries the current one. 0 without memory (b fails). */
static int unk_note(sluice_producer *p, const sl_pbatch *b)
{
    struct unk *u = unk_find(p, b->tidx, b->partition);
    if (!u) {
        if (p->nunk == p->unkcap) {
            size_t ncap = p->unkcap ? 2 * p->unkcap : 4;
            struct unk *nu = realloc(p->unk, ncap * sizeof(*nu));
            if (!nu)
                return 0;
            p->unk = nu;
            p->unkcap = ncap;
        }
        u = &p->unk[p->nunk++];
        memset(u, 0, sizeof(*u));
        u->tidx = b->tidx;
        u->partition = b->partition;
    }
    u->hold = 1;
    u->pid = b->bb.producer_id;
    u->epoch = b->bb.producer_epoch;
    if (b->bb.producer_id == p->acc.pid && b->bb.producer_epoch == p->acc.epoch)
        p->pid_reset = 1;
    return 1;
}

/* Is b to be renumbered in the current epoch before it is sent? */
int sl_pr_unk_restamp_due(const sluice_producer *p, const sl_pbatch *b)
{
    const struct unk *u = unk_find(p, b->tidx, b->partition);
    return u && !u->hold && p->acc.pid >= 0 && b->bb.producer_id >= 0 &&
           b->stamped < u->mark;
}

/* Give b the current id and epoch and its partition's next sequence, in
 * the encoded header too (CRC recomputed). */
void sl_pr_restamp(sluice_producer *p, sl_pbatch *b)
{
    int32_t *seq = &p->acc.topics[b->tidx].seq[b->partition];
    uint8_t *e = (uint8_t *)b->enc;
    b->bb.producer_id = p->acc.pid;
    b->bb.producer_epoch = p->acc.epoch;
    b->bb.base_sequence = *seq;
    *seq = sl_seq_add(*seq, b->n);
    memcpy(e + 39, &b->bb.producer_id, 8);
    memcpy(e + 47, &b->bb.producer_epoch, 2);
    memcpy(e + 49, &b->bb.base_sequence, 4);
    sl_put_u32(e + SL_BATCH_CRC_OFF, sl_batch_compute_crc(e, b->enc_len));
    b->stamped = ++p->acc.stamps;
}

/* ---- retries ---------------------------------------------------------- */

/* Into the retry list, behind every older batch but before any newer
 * batch of its partition: a batch that was sl_pr_blocked() behind an older one
 * in flight elsewhere is in the list before that older one fails (seen
 * with a leader stopping cleanly: the older answered NOT_LEADER after the
 * newer was blocked), and the resend must keep the partition's order
 * (its sequences, with idempotence). */
void sl_pr_retry_append(sluice_producer *p, sl_pbatch *b)
{
    sl_pbatch **pp = &p->retry_head;
    if (!p->retry_head)
        p->retry_at = sl_cl_now_ms() + p->cfg.retry_backoff_ms;
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->tidx == b->tidx && (*pp)->partition == b->partition &&
            (*pp)->order > b->order)
            break;
    b->next = *pp;
    *pp = b;
    if (!b->next)
        p->retry_tail = b;
}

/* Is a batch of b's partition with a lower sequence waiting for a resend
 * or in flight? Then b's OUT_OF_ORDER_SEQUENCE is that batch's gap: the
 * broker did not store it yet, and once the resend stores it b fits
 * (Kafka's producer retries such a batch too). */
static int earlier_pending(const sluice_producer *p, const sl_pbatch *b)
{
    const sl_pbatch *x;
    const inflight *f;
    if (b->bb.producer_id < 0)
        return 0;
    for (x = p->retry_head; x; x = x->next)
        if (x->tidx == b->tidx && x->partition == b->partition &&
            x->bb.base_sequence < b->bb.base_sequence)
            return 1;
    for (f = p->if_head; f; f = f->next)
        for (x = f->batches; x; x = x->next)
            if (x != b && x->tidx == b->tidx && x->partition == b->partition &&
                x->bb.base_sequence < b->bb.base_sequence)
                return 1;
    return 0;
}

/* Batch b failed with err: resend it later when err may pass and its
 * delivery timeout has not, else report err. OUT_OF_ORDER_SEQUENCE
 * passes when an older batch of the partition waits for its resend: a
 * new leader that had not applied its election yet refused the older
 * one and then, applied, took b's sequence as a gap (seen when a
 * controlled shutdown moves leadership while batches are pipelined);
 * b goes after it, as Kafka's producer does. */
void sl_pr_retry_or_report(sluice_producer *p, sl_pbatch *b, sl_err err)
{
    int64_t now = sl_cl_now_ms();
    int may_pass =
        sl_cl_retriable(err) ||
        (err == SL_ERR_OUT_OF_ORDER_SEQUENCE && earlier_pending(p, b)) ||
        ((err == SL_ERR_UNKNOWN_PRODUCER_ID ||
          err == SL_ERR_OUT_OF_ORDER_SEQUENCE) &&
         b->bb.producer_id >= 0 && unk_note(p, b));
    if (p->cfg.acks != SL_ACKS_NONE && may_pass &&
        p->cfg.delivery_timeout_ms > 0 &&
        now - b->created_ms < p->cfg.delivery_timeout_ms) {
        b->last_err = err;
        p->rt.stale = 1;
        sl_pr_retry_append(p, b);
        return;
    }
    sl_pr_report_batch(p, b, -1, err);
}

/* Is a batch of b's partition waiting for a resend, or in flight on
 * another connection than to, or in flight with another producer epoch
 * than b would carry? Then b waits behind it. A partition held after
 * UNKNOWN_PRODUCER_ID is released here once nothing of it is in flight
 * and the producer has its next epoch. */
int sl_pr_blocked(sluice_producer *p, const sl_pbatch *b, sl_cl_conn *to)
{
    const sl_pbatch *x;
    const sl_accum_flight *fl = &p->acc.topics[b->tidx].flight[b->partition];
    struct unk *u = unk_find(p, b->tidx, b->partition);
    int64_t pid = b->bb.producer_id;
    int16_t epoch = b->bb.producer_epoch;
    for (x = p->retry_head; x; x = x->next)
        if (x->tidx == b->tidx && x->partition == b->partition)
            return 1;
    if (u && u->hold) {
        if (fl->n > 0)
            return 1;
        if (sl_pr_pid_needed(p) ||
            (p->acc.pid == u->pid && p->acc.epoch == u->epoch))
            return 1; /* the next epoch first */
        u->hold = 0;
        u->mark = p->acc.stamps + 1;
        p->acc.topics[b->tidx].seq[b->partition] = 0;
    }
    if (sl_pr_unk_restamp_due(p, b)) {
        pid = p->acc.pid;
        epoch = p->acc.epoch;
    }
    /* the batches of b's partition in flight all share one connection,
     * id and epoch: this test let each of them through */
    return fl->n > 0 && (fl->conn != (const void *)to || fl->pid != pid ||
                         fl->epoch != epoch);
}

/* ---- idempotence (idem.c) ------------------------------------------- */

/* Whether batches taken now must carry a (new) producer id first. */
int sl_pr_pid_needed(const sluice_producer *p)
{
    return p->cfg.idempotence && p->cfg.acks != SL_ACKS_NONE && !p->pid_off &&
           (p->acc.pid < 0 || p->pid_reset);
}
