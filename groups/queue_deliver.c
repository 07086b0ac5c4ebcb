/*
 * queue_deliver.c - queue groups: handing records to consumers (the
 * delivery pass, key order, credits) and settling them (ack, release,
 * reject, touch). The states and transitions are described at the top of
 * queue.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "groups/dlq.h"
#include "groups/queue_cfg.h"
#include "groups/queue_int.h"
#include "protocol/hash.h"
#include "protocol/log.h"
#include "protocol/parse.h"

/* ---- delivery -------------------------------------------------------- */

/* Seen-key set for key-ordered scans (open addressing, 0 = empty). */
typedef struct keyset {
    uint64_t *v;
    uint32_t mask;
    uint32_t n;
} keyset;

/* Open addressing, kept at most half full; h != 0. */
static int keyset_put(keyset *ks, uint64_t h)
{
    uint32_t i = (uint32_t)(h ^ (h >> 29)) & ks->mask;
    while (ks->v[i]) {
        if (ks->v[i] == h)
            return 0; /* already there */
        i = (i + 1) & ks->mask;
    }
    ks->v[i] = h;
    ks->n++;
    return 1;
}

/* 1 = added, 0 = already there, -1 = out of memory. */
static int keyset_add(keyset *ks, uint64_t h)
{
    if (2 * (ks->n + 1) > ks->mask + 1 || !ks->v) {
        keyset big = {NULL, 0, 0};
        uint32_t cap = ks->v ? 2 * (ks->mask + 1) : 64;
        big.v = calloc(cap, sizeof(uint64_t));
        if (!big.v)
            return -1;
        big.mask = cap - 1;
        for (uint32_t i = 0; ks->v && i <= ks->mask; i++)
            if (ks->v[i])
                keyset_put(&big, ks->v[i]);
        free(ks->v);
        *ks = big;
    }
    return keyset_put(ks, h);
}

/* Does c's filter (if any) take rec? */
static int wants(const sl_qconsumer *c, const sl_record *rec)
{
    return !c->accept || c->accept(c->accept_arg, rec);
}

/* Hand the record at off (state AVAIL, due) to c. Returns 1 if delivered,
 * 0 if it was expired / dead-lettered instead. */
static int hand_out(sl_qpart *qp, int64_t off, const sl_record *rec,
                    sl_qconsumer *c, int64_t now)
{
    sl_qgroup *qg = qp->qg;
    sl_qent *e = ent(qp, off);
    sl_qdelivery d;
    undelay(qp, e);
    if (e->expires && e->expires <= now) {
        sl_q__expire(qp, off, rec);
        return 0;
    }
    if (e->attempts >= qg->cfg.max_deliveries) {
        sl_q__dead_letter(qp, off, rec, SL_R_MAX_DELIVERIES, NULL);
        return 0;
    }
    qp->n_avail--;
    e->state = SL_Q_ACQ;
    e->attempts++;
    e->consumer = c->id;
    e->t = now + (c->lock_ms > 0 ? c->lock_ms : qg->cfg.lock_ms);
    if (!e->first_ms)
        e->first_ms = now;
    e->last_ms = now;
    if (e->t < qp->next_deadline) {
        qp->next_deadline = e->t;
        sl_groups_deadline(qg->g, e->t);
    }
    qp->n_acq++;
    c->credits--;
    c->held++;
    c->delivered_in_pass = 1;
    qg->g->st.deliveries++;
    qg->st.deliveries++;
    if (e->attempts > 1)
        qg->st.redeliveries++;
    qp->dirty = 1;
    sl_groups_mutated(qg->g);
    d.group = qg->name;
    d.topic = qg->topic;
    d.partition = qp->partition;
    d.offset = off;
    d.attempts = e->attempts;
    d.failures = e->failures;
    d.lock_deadline = e->t;
    d.rec = rec;
    c->cb.deliver(c->cb.arg, &d);
    return 1;
}

/* Read the next record at the cursor into the window. 1 = *rec is the
 * record at (the new) cursor - 1, 0 = nothing more now. */
static int read_fresh(sl_qpart *qp, sl_record *rec, int64_t upto, int64_t now)
{
    sl_part *p = sl_q__qp_part(qp);
    sl_err err = SL_OK;
    if (!p || qp->cursor >= upto || sl_q__window_full(qp))
        return 0;
    if (qp->cursor < sl_part_start_offset(p)) {
        /* Retention removed records we never read (hard cap): skip them.
         * With an empty window just move; else the gap is filled below. */
        int64_t ls = sl_part_start_offset(p);
        sl_log(SL_WARN, "groups",
               "%s/%d group %s: offsets %lld..%lld deleted before delivery",
               qp->qg->topic, qp->partition, qp->qg->name,
               (long long)qp->cursor, (long long)ls - 1);
        if (qp->start == qp->cursor) {
            qp->start = qp->cursor = ls;
            qp->dirty = 1;
        }
        qp->it_pos = -1;
    }
    int64_t from = qp->cursor;
    if (from < sl_part_start_offset(p))
        from = sl_part_start_offset(p);
    if (!qp->it) {
        if (sl_part_iter_new(p, from, &qp->it) != SL_OK)
            return 0;
        qp->it_pos = qp->cursor;
    } else if (qp->it_pos != qp->cursor) {
        if (sl_part_iter_seek(qp->it, from) != SL_OK)
            return 0;
        qp->it_pos = qp->cursor;
    }
    for (;;) {
        if (!sl_part_iter_next(qp->it, rec, &err)) {
            if (err != SL_OK)
                sl_log(SL_WARN, "groups", "%s/%d: read at %lld failed: %s",
                       qp->qg->topic, qp->partition, (long long)qp->cursor,
                       sl_strerror(err));
            qp->it_pos = -1;
            return 0;
        }
        if (rec->offset >= qp->cursor)
            break;
    }
    if (rec->offset >= upto) {
        qp->it_pos = -1; /* read past the durable end: seek back later */
        return 0;
    }
    /* Offsets skipped by the log (compaction, control batches): done. */
    if (qp->start == qp->cursor && qp->cursor < rec->offset) {
        qp->start = qp->cursor = rec->offset;
        sl_q__update_low_water(qp->qg, qp);
    }
    while (qp->cursor < rec->offset) {
        if (sl_q__window_full(qp)) {
            qp->it_pos = -1;
            sl_q__advance_start(qp);
            if (sl_q__window_full(qp))
                return 0;
        }
        if (!sl_q__qp_room(qp)) {
            qp->it_pos = -1;
            return 0;
        }
        sl_qent *e = ent(qp, qp->cursor);
        memset(e, 0, sizeof(*e));
        e->state = SL_Q_ACKED;
        qp->cursor++;
    }
    sl_q__advance_start(qp);
    if (sl_q__window_full(qp)) {
        qp->it_pos = -1;
        return 0;
    }
    if (!sl_q__qp_room(qp)) {
        qp->it_pos = -1;
        return 0;
    }
    sl_qent *e = ent(qp, qp->cursor);
    memset(e, 0, sizeof(*e));
    sl_q__ent_meta(qp->qg, e, rec, 1);
    qp->cursor++;
    sl_q__ent_keyed(qp, e, e->keyhash != 0);
    qp->it_pos = qp->cursor;
    sl_q__make_available(qp, e, e->t);
    if (e->t > now) {
        e->flags |= SL_QE_DELAYED;
        qp->n_delayed++;
    }
    qp->dirty = 1;
    return 1;
}

typedef struct prio_cand {
    int64_t off;
    int prio;
} prio_cand;

static int prio_cmp(const void *a, const void *b)
{
    const prio_cand *x = a, *y = b;
    if (x->prio != y->prio)
        return x->prio > y->prio ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* deliver_part for a group with max_priority (the model is at the top of
 * queue.c): read ahead up to SL_Q_PRIO_LOOKAHEAD available records, list
 * the deliverable ones of the window (due, first of their key in key
 * mode), and hand them out highest priority first, by offset within one.
 * A record handed out keeps its key pending, so the list stays valid for
 * the whole call. */
static int deliver_prio(sl_qpart *qp, sl_qconsumer *c, int max, int64_t now)
{
    sl_qgroup *qg = qp->qg;
    int key_mode = qg->cfg.key_ordered;
    int64_t upto = sl_q__qp_upto(qp);
    int64_t next_due = INT64_MAX;
    keyset ks = {NULL, 0, 0};
    prio_cand *cand;
    size_t ncand = 0;
    sl_record rec;
    int n = 0;

    while ((int64_t)qp->n_avail - qp->n_delayed < SL_Q_PRIO_LOOKAHEAD &&
           read_fresh(qp, &rec, upto, now)) {
        sl_qent *e = ent(qp, rec.offset);
        if (e->expires && e->expires <= now)
            sl_q__expire(qp, rec.offset, &rec);
    }
    if (qp->cursor <= qp->start)
        return 0;
    cand = malloc((size_t)(qp->cursor - qp->start) * sizeof(*cand));
    if (!cand)
        return 0;
    for (int64_t off = qp->start; off < qp->cursor; off++) {
        sl_qent *e = ent(qp, off);
        int st = e->state;
        if (st == SL_Q_ACKED || st == SL_Q_ARCHIVED || st == SL_Q_DLQ)
            continue;
        if (!(e->flags & SL_QE_META)) { /* loaded after a restart */
            if (sl_q__reread(qp, off, &rec) == 1) {
                sl_q__ent_meta(qg, e, &rec, 0);
                sl_q__ent_keyed(qp, e, e->keyhash != 0);
            } else {
                e->flags |= SL_QE_META;
            }
        }
        if (key_mode && e->keyhash && keyset_add(&ks, e->keyhash) != 1)
            continue; /* an earlier record of this key is pending */
        if (st != SL_Q_AVAIL)
            continue;
        if (e->t > now) {
            if (e->t < next_due)
                next_due = e->t;
            continue;
        }
        cand[ncand].off = off;
        cand[ncand].prio = e->prio;
        ncand++;
    }
    free(ks.v);
    qsort(cand, ncand, sizeof(*cand), prio_cmp);
    for (size_t i = 0; i < ncand; i++) {
        int64_t off = cand[i].off;
        sl_qent *e = ent(qp, off);
        if (n >= max || c->credits <= 0 ||
            qp->n_acq >= (uint32_t)qg->cfg.max_inflight) {
            next_due = now; /* more to hand out at the next pass */
            break;
        }
        if (off < qp->start || e->state != SL_Q_AVAIL)
            continue; /* settled meanwhile (expired, dead-lettered) */
        int rr = sl_q__reread(qp, off, &rec);
        if (rr < 0) {
            next_due = now;
            continue;
        }
        if (rr == 0) { /* gone from the log (compaction) */
            undelay(qp, e);
            e->state = SL_Q_ACKED;
            qp->n_avail--;
            qp->dirty = 1;
            sl_q__advance_start(qp);
            continue;
        }
        if (!wants(c, &rec)) {
            next_due = now; /* stays available for other consumers */
            continue;
        }
        n += hand_out(qp, off, &rec, c, now);
    }
    free(cand);
    qp->next_due = next_due;
    if (next_due > now && next_due != INT64_MAX)
        sl_groups_deadline(qg->g, next_due);
    return n;
}

/* Deliver up to max records of qp to c. Returns the number delivered. */
static int deliver_part(sl_qpart *qp, sl_qconsumer *c, int max, int64_t now)
{
    sl_qgroup *qg = qp->qg;
    int key_mode = qg->cfg.key_ordered;
    int n = 0;
    keyset ks = {NULL, 0, 0};
    sl_record rec;
    int64_t upto;

    if (qp->latest_pending && !sl_q__latest_settle(qp))
        return 0; /* a start=latest copy's start not known yet */
    upto = sl_q__qp_upto(qp);
    if (qg->cfg.max_priority > 0)
        return deliver_prio(qp, c, max, now);

    /* Phase 1: available records already in the window. Key-ordered
     * delivery also walks it to learn which keys are pending, but only
     * while some entry may carry a key (n_keyed): records without keys
     * cost what they cost in a plain queue. */
    if ((key_mode && qp->n_keyed > 0) ||
        (qp->n_avail > 0 && qp->next_due <= now)) {
        int64_t next_due = INT64_MAX;
        for (int64_t off = qp->start; off < qp->cursor; off++) {
            if (off < qp->start)
                off = qp->start;
            if (off >= qp->cursor)
                break;
            sl_qent *e = ent(qp, off);
            int st = e->state;
            if (st == SL_Q_ACKED || st == SL_Q_ARCHIVED)
                continue;
            if (key_mode) {
                if (!(e->flags & SL_QE_META) && st != SL_Q_DLQ) {
                    if (sl_q__reread(qp, off, &rec) == 1) {
                        sl_q__ent_meta(qg, e, &rec, 0);
                        sl_q__ent_keyed(qp, e, e->keyhash != 0);
                    } else {
                        e->flags |= SL_QE_META;
                    }
                }
                if (st == SL_Q_DLQ)
                    continue;
                if (e->keyhash && keyset_add(&ks, e->keyhash) != 1)
                    continue; /* an earlier record of this key is pending */
            }
            if (st != SL_Q_AVAIL)
                continue;
            if (e->t > now) {
                if (e->t < next_due)
                    next_due = e->t;
                continue;
            }
            if (n >= max || c->credits <= 0 ||
                qp->n_acq >= (uint32_t)qg->cfg.max_inflight) {
                next_due = now;
                if (!key_mode)
                    break;
                continue;
            }
            int rr = sl_q__reread(qp, off, &rec);
            if (rr < 0) {
                next_due = now;
                continue;
            }
            if (rr == 0) {
                /* Gone from the log (compaction): nothing to deliver. */
                undelay(qp, e);
                e->state = SL_Q_ACKED;
                qp->n_avail--;
                qp->dirty = 1;
                sl_q__advance_start(qp);
                continue;
            }
            if (!(e->flags & SL_QE_META)) {
                sl_q__ent_meta(qg, e, &rec, 0);
                sl_q__ent_keyed(qp, e, e->keyhash != 0);
            }
            if (!wants(c, &rec)) {
                next_due = now; /* stays available for other consumers */
                continue;
            }
            n += hand_out(qp, off, &rec, c, now);
        }
        qp->next_due = next_due;
        if (next_due > now && next_due != INT64_MAX)
            sl_groups_deadline(qg->g, next_due);
    }
    /* Phase 2: records never read. */
    while (n < max && c->credits > 0 && read_fresh(qp, &rec, upto, now)) {
        int64_t off = rec.offset;
        sl_qent *e = ent(qp, off);
        if (e->expires && e->expires <= now) {
            sl_q__expire(qp, off, &rec);
            continue;
        }
        if (key_mode && e->keyhash && keyset_add(&ks, e->keyhash) != 1)
            continue; /* stays available, behind its key */
        if (e->t > now)
            continue; /* delayed: next_due updated by make_available */
        if (!wants(c, &rec)) {
            qp->next_due = now; /* available for the others (phase 1) */
            continue;
        }
        n += hand_out(qp, off, &rec, c, now);
    }
    free(ks.v);
    return n;
}

/* Deliver to consumers with credits, round robin, in chunks. Each pass
 * starts at the consumer after the last one that got records (qg->rr), so
 * records that arrive one at a time go to each consumer in turn, as
 * RabbitMQ and ActiveMQ hand them out, instead of all to the first. */
void sl_q__pump(sl_qgroup *qg)
{
    int64_t now;
    int32_t ncons = 0;
    if (qg->pumping) {
        qg->repump = 1;
        return;
    }
    /* a cluster node that is not (or no longer surely) the coordinator
     * delivers nothing: its state may be stale (docs/cluster.md,
     * "Coordinator lease") */
    if (qg->g->env.coordinates &&
        !qg->g->env.coordinates(qg->g->env.ctx, qg->name))
        return;
    if (qg->nparts == 0)
        sl_q__qg_sync_parts(qg);
    if (qg->nparts == 0)
        return;
    if (qg->g->draining)
        return; /* a controlled shutdown settles what is out first */
    qg->pumping = 1;
    for (sl_qconsumer *c = qg->consumers; c; c = c->next) {
        c->delivered_in_pass = 0;
        ncons++;
    }
    do {
        int progress;
        qg->repump = 0;
        now = sl_groups_now(qg->g);
        do {
            /* Chunk per consumer and pass: the backlog shared out among
             * the consumers with credits, so scarce records are spread
             * (fair round robin), and long runs of offsets with a backlog
             * (whole stored batches are sent once instead of to every
             * consumer). */
            int64_t backlog = 0, chunk;
            int nc = 0;
            for (sl_qconsumer *c = qg->consumers; c; c = c->next)
                nc += c->credits > 0;
            for (int32_t k = 0; k < qg->nparts; k++) {
                sl_qpart *qp = qg->parts[k];
                if (qp)
                    backlog +=
                        qp->n_avail + (sl_q__qp_part(qp)
                                           ? sl_q__qp_upto(qp) - qp->cursor
                                           : 0);
            }
            chunk = nc ? (backlog + nc - 1) / nc : 0;
            if (chunk < 1)
                chunk = 1;
            if (chunk > 65536)
                chunk = 65536;
            progress = 0;
            sl_qconsumer *c = qg->consumers;
            int32_t first = ncons ? qg->rr % ncons : 0;
            if (first < 0)
                first = 0;
            for (int32_t i = 0; i < first && c; i++)
                c = c->next;
            for (int32_t i = 0; i < ncons && c;
                 i++, c = c->next ? c->next : qg->consumers) {
                if (c->credits <= 0)
                    continue;
                int want = c->credits < chunk ? (int)c->credits : (int)chunk;
                int got = 0;
                for (int32_t k = 0; k < qg->nparts && got < want; k++) {
                    int32_t pi = (c->rr_part + k) % qg->nparts;
                    if (!qg->parts[pi])
                        continue;
                    got += deliver_part(qg->parts[pi], c, want - got, now);
                }
                c->rr_part = (c->rr_part + 1) % qg->nparts;
                if (got > 0) {
                    progress = 1;
                    qg->rr = (first + i + 1) % ncons;
                }
            }
        } while (progress);
    } while (qg->repump);
    qg->pumping = 0;
    for (sl_qconsumer *c = qg->consumers; c; c = c->next) {
        if (c->delivered_in_pass && c->cb.flush) {
            c->delivered_in_pass = 0;
            c->cb.flush(c->cb.arg);
        }
    }
}

int sl_q__qg_wants(sl_qgroup *qg)
{
    for (sl_qconsumer *c = qg->consumers; c; c = c->next)
        if (c->credits > 0)
            return 1;
    return 0;
}

/* ---- consumers -------------------------------------------------------- */

void sl_qconsumer_set_filter(sl_qconsumer *c,
                             int (*accept)(void *arg, const sl_record *rec),
                             void *arg)
{
    c->accept = accept;
    c->accept_arg = arg;
    sl_q__pump(c->qg);
}

sl_err sl_qconsumer_new(sl_groups *g, const char *group, const char *topic,
                        int64_t lock_ms, const char *name,
                        const sl_qconsumer_cb *cb, sl_qconsumer **out)
{
    sl_qgroup *qg = sl_groups_qgroup_find(g, group, topic);
    sl_qconsumer *c;
    sl_err rc;
    if (!qg) {
        rc = sl_qgroup_declare(g, group, topic, NULL);
        if (rc != SL_OK)
            return rc;
        qg = sl_groups_qgroup_find(g, group, topic);
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        return SL_ERR_NOMEM;
    c->qg = qg;
    c->id = g->next_consumer_id++;
    if (g->next_consumer_id == 0)
        g->next_consumer_id = 1;
    c->lock_ms = lock_ms;
    c->rr_part = (int32_t)(c->id & 0xffff); /* spread first partitions */
    snprintf(c->name, sizeof(c->name), "%s", name ? name : "");
    c->cb = *cb;
    c->next = qg->consumers;
    qg->consumers = c;
    *out = c;
    return SL_OK;
}

uint32_t sl_qconsumer_id(const sl_qconsumer *c)
{
    return c->id;
}

int sl_qconsumer_alive(const sl_qconsumer *c)
{
    return c->qg != NULL;
}

int64_t sl_qconsumer_credits(const sl_qconsumer *c)
{
    return c->credits;
}

uint64_t sl_qconsumer_held(const sl_qconsumer *c)
{
    return c->held;
}

void sl_qconsumer_credit(sl_qconsumer *c, int64_t n)
{
    if (!c->qg)
        return;
    c->credits += n;
    if (c->credits < 0)
        c->credits = 0;
    if (c->credits > 0)
        sl_q__pump(c->qg);
}

void sl_qconsumer_set_credit(sl_qconsumer *c, int64_t n)
{
    if (!c->qg)
        return;
    c->credits = n < 0 ? 0 : n;
    if (c->credits > 0)
        sl_q__pump(c->qg);
}

typedef enum { OP_ACK, OP_RELEASE, OP_REJECT, OP_TOUCH } settle_op;

static sl_err settle(sl_qconsumer *c, int32_t partition, int64_t first,
                     int64_t last, settle_op op, int64_t arg, int count_failure,
                     const char *text, int64_t *deadline, int64_t *count)
{
    sl_qgroup *qg = c->qg;
    sl_groups *g;
    sl_qpart *qp;
    sl_err rc = SL_OK;
    int64_t n = 0, now, dl = 0;
    int released = 0;

    if (!qg)
        return SL_ERR_UNKNOWN_GROUP;
    g = qg->g;
    now = sl_groups_now(g);
    if (partition < 0 || partition >= qg->nparts || !qg->parts[partition])
        return SL_ERR_UNKNOWN_PARTITION;
    if (first > last || last - first > (1LL << 32))
        return SL_ERR_INVALID_ARG;
    qp = qg->parts[partition];
    if (first < qp->start) {
        /* Done already (in bulk: a range may be huge). Acks are
         * idempotent; anything else on a done record is refused. */
        int64_t upto = last < qp->start ? last : qp->start - 1;
        if (op == OP_ACK)
            n += upto - first + 1;
        else
            rc = SL_ERR_NOT_ACQUIRED;
        first = upto + 1;
    }
    for (int64_t off = first; off <= last; off++) {
        sl_qent *e;
        if (off < qp->start) {
            if (op == OP_ACK)
                n++; /* done already: acks are idempotent */
            else if (rc == SL_OK)
                rc = SL_ERR_NOT_ACQUIRED;
            continue;
        }
        if (off >= qp->cursor) {
            if (rc == SL_OK)
                rc = SL_ERR_NOT_ACQUIRED;
            break;
        }
        e = ent(qp, off);
        if (e->state == SL_Q_ACKED && op == OP_ACK) {
            n++;
            continue;
        }
        if (e->state != SL_Q_ACQ || e->consumer != c->id) {
            if (rc == SL_OK)
                rc = e->state == SL_Q_AVAIL && e->attempts > 0
                         ? SL_ERR_LOCK_EXPIRED
                         : SL_ERR_NOT_ACQUIRED;
            continue;
        }
        n++;
        if (op == OP_TOUCH) {
            e->t = now +
                   (arg > 0 ? arg
                            : (c->lock_ms > 0 ? c->lock_ms : qg->cfg.lock_ms));
            dl = e->t;
            continue;
        }
        qp->n_acq--;
        c->held--;
        if (op == OP_ACK) {
            e->state = SL_Q_ACKED;
            g->st.acks++;
            qg->st.acks++;
            continue;
        }
        if (op == OP_REJECT) {
            e->failures++;
            g->st.rejects++;
            qg->st.rejects++;
            e->state = SL_Q_AVAIL;
            qp->n_avail++;
            sl_q__dead_letter(qp, off, NULL, SL_R_REJECTED, text);
            continue;
        }
        /* release / nack */
        g->st.releases++;
        qg->st.nacks++;
        if (count_failure)
            e->failures++;
        if (e->attempts >= qg->cfg.max_deliveries) {
            e->state = SL_Q_AVAIL;
            qp->n_avail++;
            sl_q__dead_letter(qp, off, NULL, SL_R_MAX_DELIVERIES, NULL);
            continue;
        }
        int64_t delay =
            arg >= 0 ? arg : sl_q__backoff_delay(&qg->cfg, e->failures);
        sl_q__make_available(qp, e, delay > 0 ? now + delay : 0);
        released = 1;
    }
    if (n > 0) {
        sl_q__advance_start(qp);
        sl_q__qp_dirty(qp);
    }
    if (count)
        *count = n;
    if (deadline && dl)
        *deadline = dl;
    /* Freed window slots or released records may feed waiting consumers. */
    (void)released;
    if (n > 0 && op != OP_TOUCH && sl_q__qg_wants(qg))
        sl_q__pump(qg);
    return rc;
}

sl_err sl_qconsumer_ack(sl_qconsumer *c, int32_t partition, int64_t first,
                        int64_t last, int64_t *count)
{
    return settle(c, partition, first, last, OP_ACK, 0, 0, NULL, NULL, count);
}

sl_err sl_qconsumer_release(sl_qconsumer *c, int32_t partition, int64_t first,
                            int64_t last, int64_t delay_ms, int count_failure,
                            int64_t *count)
{
    return settle(c, partition, first, last, OP_RELEASE, delay_ms,
                  count_failure, NULL, NULL, count);
}

sl_err sl_qconsumer_reject(sl_qconsumer *c, int32_t partition, int64_t first,
                           int64_t last, const char *reason_text,
                           int64_t *count)
{
    return settle(c, partition, first, last, OP_REJECT, 0, 1, reason_text, NULL,
                  count);
}

sl_err sl_qconsumer_touch(sl_qconsumer *c, int32_t partition, int64_t first,
                          int64_t last, int64_t lock_ms, int64_t *deadline,
                          int64_t *count)
{
    return settle(c, partition, first, last, OP_TOUCH, lock_ms, 0, NULL,
                  deadline, count);
}

void sl_qconsumer_free(sl_qconsumer *c)
{
    sl_qgroup *qg;
    sl_qconsumer **pp;
    int any = 0;
    if (!c)
        return;
    qg = c->qg;
    if (!qg) { /* orphaned: its group is gone */
        free(c);
        return;
    }
    for (pp = &qg->consumers; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    if (c->held > 0) {
        for (int32_t i = 0; i < qg->nparts; i++) {
            sl_qpart *qp = qg->parts[i];
            if (!qp)
                continue;
            for (int64_t off = qp->start; off < qp->cursor; off++) {
                sl_qent *e = ent(qp, off);
                if (e->state != SL_Q_ACQ || e->consumer != c->id)
                    continue;
                qp->n_acq--;
                any = 1;
                if (e->attempts >= qg->cfg.max_deliveries) {
                    e->state = SL_Q_AVAIL;
                    qp->n_avail++;
                    sl_q__dead_letter(qp, off, NULL, SL_R_MAX_DELIVERIES, NULL);
                } else {
                    sl_q__make_available(qp, e, 0);
                }
                qp->dirty = 1;
            }
        }
    }
    free(c);
    if (any) {
        sl_groups_mutated(qg->g);
        if (sl_q__qg_wants(qg))
            sl_q__pump(qg);
    }
}
