/*
 * queue.c - queue groups: competing consumers with per-record state.
 *
 * MODEL (compare Kafka KIP-932 share groups).
 *
 * A queue group is keyed by (group, topic); for each partition of the topic
 * it keeps a share-partition (sl_qpart):
 *
 *   start   every offset below is done (acked or archived)   ~ KIP-932 SPSO
 *   cursor  first offset never read from the log              ~ SPEO
 *   window  [start, cursor): one sl_qent per offset, in a ring of at most
 *           max_inflight entries. Memory is bounded by the window, never by
 *           the backlog: records are read lazily with sl_part_iter, and a
 *           redelivery re-reads its record from the log.
 *
 * Record states and transitions (every one has a unit test):
 *
 *   (log) --read--> AVAIL          due = not-before header, else 0
 *   AVAIL --acquire--> ACQ         attempts++, lock deadline = now+lock_ms
 *   AVAIL --acquire, expired--> ARCHIVED (or DLQ, reason expired)
 *   AVAIL --acquire, attempts >= max_deliveries--> DLQ (after a restart)
 *   ACQ --ack--> ACKED
 *   ACQ --release/nack--> AVAIL    failures++ (nack), due = now + delay
 *   ACQ --release, attempts >= max--> DLQ reason max_deliveries
 *   ACQ --lock expiry (tick)--> AVAIL, failures++ ; or DLQ lock_expired
 *   ACQ --reject--> DLQ reason rejected, failures++
 *   ACQ --touch--> ACQ             deadline = now + lock_ms
 *   DLQ --DLQ append durable--> ARCHIVED
 *   start advances over a prefix of ACKED/ARCHIVED; the partition's
 *   low-water mark (sl_part_set_low_water) is the min start of all groups.
 *
 * Which records are handed out (qp_upto): those visible by the one rule
 * of groups/visible.c, which every reader of a partition follows: below
 * the log end for flush=never topics; for flush=always topics also below
 * the log end when early dispatch is on (sl_groups_set_early, the
 * broker's queue-dispatch written, its default: a consumer does not wait
 * for the fdatasync, as RabbitMQ and ActiveMQ dispatch while they store),
 * else below sl_part_durable_offset. Either way, group state that refers to a
 * record not yet durable is committed only after the flusher round that covers
 * it (sl_queue_stage reports it, groups.c holds the commit back): otherwise, if
 * a crash took that tail back, the ack would be remembered and would mark a NEW
 * record at the same offset acked.
 *
 * Dead-lettering: the DLQ record is appended first (headers dlq.*), the
 * entry stays in state DLQ (persisted with its reason) until the DLQ
 * partition's durable offset passes the appended offset, and only then it
 * becomes ARCHIVED. A crash in between redoes the append after restart: a
 * dead-lettered record may appear twice in the DLQ, never zero times.
 *
 * Persistence (groups.db, see groups.c for the batching): per partition a
 * qpart row (start, cursor) and the window as ranges in qrange: runs of
 * ACKED/ARCHIVED, runs of never-delivered AVAIL, and single rows for
 * records with counts. ACQ is written as AVAIL with its counts (a crash
 * during processing still counts the delivery; KIP-932 forgets it). The
 * `due` column is the one durable due-time index: not-before delays and
 * nack backoff both live there.
 *
 * Key-ordered mode: a record with key K is deliverable only if it is the
 * lowest not-done offset with key K in the window (by a 64-bit FNV-1a hash
 * of the key; a collision only serializes two keys). Records without a key
 * are not ordered.
 *
 * Priority (max_priority > 0): the log stays in arrival order; delivery
 * changes the order in which it hands out what is available. A partition
 * reads up to SL_Q_PRIO_LOOKAHEAD available records ahead into its window
 * (bounded by max_inflight like any read), and each delivery pass hands
 * out the deliverable ones highest priority first, in offset order within
 * a priority (queue_deliver.c, deliver_prio). Key order still holds: a
 * record behind a pending one of its key waits, whatever its priority.
 * Nothing is stored for it: after a restart the priorities are read again
 * from the records.
 *
 * Files: this one holds the window and its transitions, group lifetime and
 * events (append, flush, tick); queue_deliver.c hands records out and
 * settles them; queue_store.c persists and loads; queue_mgmt.c describes,
 * seeks and peeks. groups/queue_int.h is what they share.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "groups/dlq.h"
#include "groups/queue_cfg.h"
#include "groups/queue_int.h"
#include "groups/visible.h"
#include "protocol/hash.h"
#include "protocol/log.h"
#include "protocol/parse.h"

void sl_groups_qgroup_defaults(const sl_groups *g, sl_qgroup_cfg *cfg)
{
    *cfg = g->qdefaults;
}

void sl_groups_set_qgroup_defaults(sl_groups *g, const sl_qgroup_cfg *cfg)
{
    g->qdefaults = *cfg;
}

/* ---- helpers ---------------------------------------------------------- */

/*
 * No more records may be read into the window: either max_inflight records
 * are active (acquired, or available and not waiting for a not-before
 * time), or the window's span (which also holds done records behind a
 * slow or delayed head, and delayed records) reached max_inflight +
 * max_delayed. The span bounds the memory.
 */
int sl_q__window_full(const sl_qpart *qp)
{
    const sl_qgroup_cfg *cfg = &qp->qg->cfg;
    int64_t active = (int64_t)qp->n_acq + qp->n_avail - qp->n_delayed;
    return active >= cfg->max_inflight ||
           qp->cursor - qp->start >=
               (int64_t)cfg->max_inflight + cfg->max_delayed;
}

sl_part *sl_q__qp_part(sl_qpart *qp)
{
    sl_groups *g = qp->qg->g;
    if (!qp->part)
        qp->part = g->env.get_part(g->env.ctx, qp->qg->topic, qp->partition);
    return qp->part;
}

void sl_q__qp_dirty(sl_qpart *qp)
{
    qp->dirty = 1;
    sl_groups_mutated(qp->qg->g);
}

sl_qconsumer *sl_q__consumer_by_id(sl_qgroup *qg, uint32_t id)
{
    for (sl_qconsumer *c = qg->consumers; c; c = c->next)
        if (c->id == id)
            return c;
    return NULL;
}

const char *sl_q__dlq_topic(sl_qgroup *qg, char *buf, size_t len)
{
    return sl_dlq_topic_name(&qg->cfg, qg->topic, buf, len);
}

static uint64_t fnv1a(const uint8_t *p, int32_t n)
{
    uint64_t h = sl_fnv1a64(p, n < 0 ? 0 : (size_t)n);
    return h ? h : 1;
}

static int header_i64(const sl_record *rec, const char *key, int64_t *out)
{
    sl_header h;
    char buf[32];
    if (rec->header_count == 0 ||
        sl_record_header_find(rec, key, &h) != SL_OK || !h.value ||
        h.value_len == 0 || h.value_len >= sizeof(buf))
        return -1;
    memcpy(buf, h.value, h.value_len);
    buf[h.value_len] = 0;
    return sl_parse_i64(buf, out);
}

/* Fill expires / due / keyhash of a fresh entry from its record. */
void sl_q__ent_meta(sl_qgroup *qg, sl_qent *e, const sl_record *rec, int fresh)
{
    int64_t v, exp = 0;
    if (qg->cfg.ttl_ms >= 0)
        exp = rec->timestamp + qg->cfg.ttl_ms;
    if (qg->topic_ttl_ms >= 0 &&
        (exp == 0 || rec->timestamp + qg->topic_ttl_ms < exp))
        exp = rec->timestamp + qg->topic_ttl_ms;
    if (header_i64(rec, "ttl-ms", &v) == 0 && v >= 0 &&
        (exp == 0 || rec->timestamp + v < exp))
        exp = rec->timestamp + v;
    if (header_i64(rec, "expires", &v) == 0 && v > 0 && (exp == 0 || v < exp))
        exp = v;
    e->expires = exp;
    if (fresh) {
        if (header_i64(rec, "not-before", &v) == 0 && v > 0)
            e->t = v;
        else if (header_i64(rec, "delay-ms", &v) == 0 && v > 0)
            e->t = rec->timestamp + v;
    }
    e->keyhash = rec->key ? fnv1a(rec->key, rec->key_len) : 0;
    e->prio = 0;
    if (qg->cfg.max_priority > 0) {
        /* absent or not a number: 4, JMS's default (RabbitMQ reads 0) */
        if (header_i64(rec, "priority", &v) != 0)
            v = 4;
        if (v < 0)
            v = 0;
        if (v > qg->cfg.max_priority)
            v = qg->cfg.max_priority;
        e->prio = (uint8_t)v;
    }
    e->flags |= SL_QE_META;
}

/* Mark a window entry that may carry a key (key-ordered delivery only has
 * to scan the window while some do). */
void sl_q__ent_keyed(sl_qpart *qp, sl_qent *e, int keyed)
{
    if (keyed && !(e->flags & SL_QE_KEYED)) {
        e->flags |= SL_QE_KEYED;
        qp->n_keyed++;
    } else if (!keyed && (e->flags & SL_QE_KEYED)) {
        e->flags &= (uint8_t)~SL_QE_KEYED;
        qp->n_keyed--;
    }
}

/* Recount n_keyed over the window (after loading or cutting it). */
void sl_q__recount_keyed(sl_qpart *qp)
{
    qp->n_keyed = 0;
    for (int64_t o = qp->start; o < qp->cursor; o++)
        if (ent(qp, o)->flags & SL_QE_KEYED)
            qp->n_keyed++;
}

/* Below this offset a dead-letter copy is safe: fsynced here (any
 * offset for flush=never), and in a cluster also below the DLQ
 * partition's high-water mark, so on every in-sync replica (the kill -9
 * of its leader cannot take it back). On a single node the cap is
 * INT64_MAX. */
static int64_t dlq_durable(sl_part *dp)
{
    int64_t d = sl_part_get_cfg(dp)->flush == SL_FLUSH_NEVER
                    ? sl_part_end_offset(dp)
                    : sl_part_durable_offset(dp);
    int64_t cap = sl_part_read_cap(dp);
    return cap < d ? cap : d;
}

/* The offset below which records may be handed out: the one visibility
 * rule (groups/visible.c) for a queue reader; early dispatch is
 * queue-dispatch written. */
int64_t sl_q__qp_upto(sl_qpart *qp)
{
    sl_part *p = sl_q__qp_part(qp);
    if (!p)
        return qp->cursor;
    return sl_visible_offset(p, qp->qg->g->early, SL_VISIBLE_QUEUE);
}

/* A start=latest partition whose start was not known when the group was
 * created (env.latest): 1 once it is (start and cursor moved there; the
 * window is empty, nothing was handed out), 0 while it is not. */
int sl_q__latest_settle(sl_qpart *qp)
{
    sl_groups *g = qp->qg->g;
    int64_t s = g->env.latest(g->env.ctx, qp->qg->topic, qp->partition,
                              qp->latest_since);
    if (s < 0)
        return 0;
    qp->latest_pending = 0;
    if (qp->start == qp->cursor) {
        qp->start = qp->cursor = s;
        qp->it_pos = -1;
        sl_q__update_low_water(qp->qg, qp);
    }
    qp->dirty = 1;
    sl_groups_mutated(g);
    return 1;
}

/* Re-read the record at off into *rec. 1 = found, 0 = gone from the log
 * (retention, compaction), -1 = read error (try again later). */
int sl_q__reread(sl_qpart *qp, int64_t off, sl_record *rec)
{
    sl_part *p = sl_q__qp_part(qp);
    sl_err err = SL_OK;
    if (!p)
        return -1;
    if (off < sl_part_start_offset(p))
        return 0;
    /* not readable here yet, not gone: a cluster's new coordinator may
     * hold records an old one handed out above this replica's read cap
     * (the high-water mark it knows) or past its log end */
    if (off >= sl_part_read_cap(p) || off >= sl_part_end_offset(p))
        return -1;
    if (!qp->rit) {
        if (sl_part_iter_new(p, off, &qp->rit) != SL_OK)
            return -1;
        qp->rit_pos = off;
    } else if (qp->rit_pos != off) {
        if (sl_part_iter_seek(qp->rit, off) != SL_OK) {
            qp->rit_pos = -1;
            return -1;
        }
        qp->rit_pos = off;
    }
    for (;;) {
        if (!sl_part_iter_next(qp->rit, rec, &err)) {
            qp->rit_pos = -1;
            return err == SL_OK && off < sl_part_end_offset(p) &&
                           off < sl_part_read_cap(p)
                       ? 0
                       : -1;
        }
        if (rec->offset >= off)
            break;
    }
    qp->rit_pos = rec->offset + 1;
    return rec->offset == off ? 1 : 0;
}

void sl_q__update_low_water(sl_qgroup *qg, sl_qpart *qp)
{
    sl_groups *g = qg->g;
    int64_t lw = -1;
    sl_part *p = sl_q__qp_part(qp);
    if (!p)
        return;
    for (sl_qgroup *o = g->qgroups; o; o = o->next) {
        /* a start=latest group whose start is not known yet needs
         * nothing below it: an observer's copy (broker/observer.c) must
         * not start at the empty copy's end it holds meanwhile */
        if (strcmp(o->topic, qg->topic) || qp->partition >= o->nparts ||
            !o->parts[qp->partition] || o->parts[qp->partition]->latest_pending)
            continue;
        int64_t s = o->parts[qp->partition]->start;
        if (lw < 0 || s < lw)
            lw = s;
    }
    sl_part_set_low_water(p, lw);
}

void sl_q__advance_start(sl_qpart *qp)
{
    int64_t old = qp->start;
    while (qp->start < qp->cursor) {
        sl_qent *e = ent(qp, qp->start);
        if (e->state != SL_Q_ACKED && e->state != SL_Q_ARCHIVED)
            break;
        if (e->flags & SL_QE_KEYED)
            qp->n_keyed--;
        qp->start++;
    }
    if (qp->start != old)
        sl_q__update_low_water(qp->qg, qp);
}

int64_t sl_q__backoff_delay(const sl_qgroup_cfg *cfg, uint16_t failures)
{
    int64_t d = cfg->backoff_ms;
    if (d <= 0)
        return 0;
    for (uint16_t i = 1; i < failures && d < cfg->backoff_max_ms; i++)
        d *= cfg->backoff_factor;
    return d > cfg->backoff_max_ms ? cfg->backoff_max_ms : d;
}

static const char *reason_name(int r)
{
    switch (r) {
    case SL_R_REJECTED:
        return "rejected";
    case SL_R_MAX_DELIVERIES:
        return "max_deliveries";
    case SL_R_EXPIRED:
        return "expired";
    case SL_R_LOCK_EXPIRED:
        return "lock_expired";
    default:
        return "unknown";
    }
}

void sl_q__make_available(sl_qpart *qp, sl_qent *e, int64_t due)
{
    e->state = SL_Q_AVAIL;
    e->t = due;
    qp->n_avail++;
    if (due < qp->next_due)
        qp->next_due = due;
    if (due > 0)
        sl_groups_deadline(qp->qg->g, due);
}

static void archive(sl_qpart *qp, sl_qent *e)
{
    undelay(qp, e);
    if (e->state == SL_Q_AVAIL)
        qp->n_avail--;
    e->state = SL_Q_ARCHIVED;
    qp->archived++;
    sl_q__advance_start(qp);
}

/*
 * Dead-letter the record at off (entry e, record rec or NULL = re-read).
 * The entry must not be ACQ (callers release it first) and leaves AVAIL.
 */
void sl_q__dead_letter(sl_qpart *qp, int64_t off, const sl_record *rec_in,
                       int reason, const char *text)
{
    sl_qgroup *qg = qp->qg;
    sl_groups *g = qg->g;
    sl_qent *e = ent(qp, off);
    char tbuf[300];
    const char *dt = sl_q__dlq_topic(qg, tbuf, sizeof(tbuf));
    sl_record rr;
    const sl_record *rec = rec_in;
    int64_t base;
    sl_part *dp;
    sl_err rc;
    int64_t now = sl_groups_now(g);

    undelay(qp, e);
    if (e->state == SL_Q_AVAIL)
        qp->n_avail--;
    e->state = SL_Q_DLQ;
    e->reason = (uint8_t)reason;
    sl_q__qp_dirty(qp);
    if (!dt) { /* no dead-letter topic: archive only */
        e->state = SL_Q_AVAIL;
        qp->n_avail++;
        archive(qp, e);
        return;
    }
    if (!rec) {
        if (sl_q__reread(qp, off, &rr) != 1) { /* gone from the log */
            e->state = SL_Q_AVAIL;
            qp->n_avail++;
            archive(qp, e);
            return;
        }
        rec = &rr;
    }
    {
        sl_dlq_origin o = {.topic = qg->topic,
                           .group = qg->name,
                           .partition = qp->partition,
                           .offset = off,
                           .attempts = e->attempts,
                           .failures = e->failures,
                           .reason = reason_name(reason),
                           .first_ms = e->first_ms,
                           .last_ms = e->last_ms,
                           .time_ms = now,
                           .reason_text = text};
        rc = sl_dlq_append(g, dt, rec, &o, &dp, &base);
    }
    if (rc == SL_ERR_INVALID_TOPIC || rc == SL_ERR_MALFORMED ||
        rc == SL_ERR_TOO_LARGE || rc == SL_ERR_INVALID_ARG ||
        rc == SL_ERR_INVALID_CONFIG) {
        /* Retrying cannot help (a configured dlq_topic that is not a valid
         * name, a record too large with its dlq.* headers): archive it, as
         * a queue without a dead-letter topic does, and say so. Never a
         * retry loop (issue 18, finding 7). */
        sl_log(SL_ERROR, "groups",
               "dead-letter of %s/%d offset %lld (group %s) to %s failed: "
               "%s; archived without a dead-letter copy",
               qg->topic, qp->partition, (long long)off, qg->name, dt,
               sl_strerror(rc));
        e->state = SL_Q_AVAIL;
        qp->n_avail++;
        archive(qp, e);
        return;
    }
    if (rc != SL_OK) {
        /* Retry later: keep it in DLQ state without SENT; tick redoes. */
        sl_log(SL_WARN, "groups",
               "dead-letter of %s/%d offset %lld (group %s) to %s failed: "
               "%s; will retry",
               qg->topic, qp->partition, (long long)off, qg->name, dt,
               sl_strerror(rc));
        qp->n_dlq_redo++;
        return;
    }
    qg->st.dead_letters++;
    e->flags |= SL_QE_DLQ_SENT;
    /* dp NULL: forwarded to the DLQ partition's leader (a cluster), base
     * is its token; sl_groups_dlq_forwarded settles it */
    if (dp && dlq_durable(dp) > base) {
        e->state = SL_Q_ARCHIVED;
        qp->archived++;
        sl_q__advance_start(qp);
        return;
    }
    if (g->ndlqp == g->dlqp_cap) {
        size_t nc = g->dlqp_cap ? g->dlqp_cap * 2 : 16;
        sl_qdlq_pending *n = realloc(g->dlqp, nc * sizeof(*n));
        if (!n) { /* cannot track durability: treat as done now */
            e->state = SL_Q_AVAIL;
            qp->n_avail++;
            archive(qp, e);
            return;
        }
        g->dlqp = n;
        g->dlqp_cap = nc;
    }
    g->dlqp[g->ndlqp++] = (sl_qdlq_pending){
        .qp = qp, .off = off, .dlq_part = dp, .dlq_off = base};
}

/* Expired record at off: archive, or dead-letter when the group asks. */
void sl_q__expire(sl_qpart *qp, int64_t off, const sl_record *rec)
{
    sl_qent *e = ent(qp, off);
    qp->qg->g->st.expired++;
    qp->qg->st.expired++;
    if (qp->qg->cfg.dlq_expired) {
        sl_q__dead_letter(qp, off, rec, SL_R_EXPIRED, NULL);
    } else {
        archive(qp, e);
        sl_q__qp_dirty(qp);
    }
}

/* ---- window allocation ----------------------------------------------- */

static sl_err qp_alloc_ring(sl_qpart *qp, int32_t span)
{
    uint32_t cap = 16;
    while (cap < (uint32_t)span)
        cap <<= 1;
    qp->ents = calloc(cap, sizeof(sl_qent));
    if (!qp->ents)
        return SL_ERR_NOMEM;
    qp->mask = cap - 1;
    return SL_OK;
}

/* Grow the ring (max_inflight raised). */
sl_err sl_q__qp_resize(sl_qpart *qp, int32_t span)
{
    uint32_t cap = qp->mask + 1;
    sl_qent *old = qp->ents;
    uint32_t omask = qp->mask;
    if ((uint32_t)span <= cap)
        return SL_OK;
    if (qp_alloc_ring(qp, span) != SL_OK) {
        qp->ents = old;
        qp->mask = omask;
        return SL_ERR_NOMEM;
    }
    for (int64_t o = qp->start; o < qp->cursor; o++)
        qp->ents[(uint64_t)o & qp->mask] = old[(uint64_t)o & omask];
    free(old);
    return SL_OK;
}

/* Room for the entry at qp->cursor (the window grows by one). */
int sl_q__qp_room(sl_qpart *qp)
{
    uint64_t need = (uint64_t)(qp->cursor - qp->start) + 1;
    if (need <= (uint64_t)qp->mask + 1)
        return 1;
    return sl_q__qp_resize(qp, (int32_t)((qp->mask + 1) * 2)) == SL_OK;
}

sl_qpart *sl_q__qp_new(sl_qgroup *qg, int32_t partition, int64_t start)
{
    sl_qpart *qp = calloc(1, sizeof(*qp));
    if (!qp)
        return NULL;
    qp->qg = qg;
    qp->partition = partition;
    qp->start = qp->cursor = start;
    qp->it_pos = -1;
    qp->rit_pos = -1;
    qp->next_due = INT64_MAX;
    qp->next_deadline = INT64_MAX;
    /* The ring grows with the window (up to max_inflight), so idle groups
     * and partitions cost little. */
    if (qp_alloc_ring(qp, 64) != SL_OK) {
        free(qp);
        return NULL;
    }
    return qp;
}

void sl_q__qp_free(sl_qpart *qp)
{
    if (!qp)
        return;
    sl_part_iter_free(qp->it);
    sl_part_iter_free(qp->rit);
    free(qp->ents);
    free(qp);
}

/* Make sure parts[0..n) exist for the topic's current partition count. */
void sl_q__qg_sync_parts(sl_qgroup *qg)
{
    sl_groups *g = qg->g;
    int32_t n = g->env.partitions(g->env.ctx, qg->topic);
    if (n <= qg->nparts)
        return;
    sl_qpart **np = realloc(qg->parts, (size_t)n * sizeof(*np));
    if (!np)
        return;
    qg->parts = np;
    for (int32_t i = qg->nparts; i < n; i++) {
        sl_part *p = g->env.get_part(g->env.ctx, qg->topic, i);
        int64_t s = 0;
        int pending = 0;
        int64_t now = sl_groups_now(g);
        if (p && qg->cfg.start_latest && g->env.latest) {
            s = g->env.latest(g->env.ctx, qg->topic, i, now);
            if (s < 0) { /* sl_q__latest_settle sets it */
                pending = 1;
                s = sl_part_end_offset(p);
            }
        } else if (p) {
            if (!qg->cfg.start_latest && g->env.need_from)
                g->env.need_from(g->env.ctx, qg->topic, i, -1);
            s = qg->cfg.start_latest ? sl_part_end_offset(p)
                                     : sl_part_start_offset(p);
        }
        np[i] = sl_q__qp_new(qg, i, s);
        if (np[i]) {
            np[i]->dirty = 1;
            np[i]->latest_pending = pending;
            np[i]->latest_since = now;
        }
    }
    qg->nparts = n;
    for (int32_t i = 0; i < n; i++) /* after nparts: this group counts */
        if (np[i])
            sl_q__update_low_water(qg, np[i]);
    sl_groups_mutated(g);
}

sl_qgroup *sl_q__qg_new(sl_groups *g, const char *group, const char *topic,
                        const sl_qgroup_cfg *cfg)
{
    sl_qgroup *qg = calloc(1, sizeof(*qg));
    if (!qg)
        return NULL;
    qg->g = g;
    qg->name = strdup(group);
    qg->topic = strdup(topic);
    if (!qg->name || !qg->topic) {
        free(qg->name);
        free(qg->topic);
        free(qg);
        return NULL;
    }
    if (cfg)
        qg->cfg = *cfg;
    else
        qg->cfg = g->qdefaults;
    qg->topic_ttl_ms =
        g->env.topic_ttl_ms ? g->env.topic_ttl_ms(g->env.ctx, topic) : -1;
    qg->next = g->qgroups;
    g->qgroups = qg;
    return qg;
}

static void qg_free(sl_qgroup *qg)
{
    for (int32_t i = 0; i < qg->nparts; i++)
        sl_q__qp_free(qg->parts[i]);
    /* Consumers belong to their owners: orphan them (later calls on them
     * fail with SL_ERR_UNKNOWN_GROUP; sl_qconsumer_free frees them). */
    while (qg->consumers) {
        sl_qconsumer *c = qg->consumers;
        qg->consumers = c->next;
        c->qg = NULL;
        c->next = NULL;
        c->credits = 0;
        c->held = 0;
    }
    free(qg->parts);
    free(qg->name);
    free(qg->topic);
    free(qg);
}

static void drop_dlq_pending(sl_groups *g, sl_qgroup *qg)
{
    size_t j = 0;
    for (size_t i = 0; i < g->ndlqp; i++)
        if (g->dlqp[i].qp->qg != qg)
            g->dlqp[j++] = g->dlqp[i];
    g->ndlqp = j;
}

void sl_qgroup_free_all(sl_groups *g)
{
    while (g->qgroups) {
        sl_qgroup *qg = g->qgroups;
        g->qgroups = qg->next;
        qg_free(qg);
    }
}

void sl_qgroup_unload(sl_groups *g, int (*mine)(void *arg, const char *group),
                      void *arg)
{
    sl_qgroup **pp = &g->qgroups;
    while (*pp) {
        sl_qgroup *qg = *pp;
        if (!mine(arg, qg->name)) {
            pp = &qg->next;
            continue;
        }
        *pp = qg->next;
        drop_dlq_pending(g, qg);
        qg_free(qg);
    }
}

sl_err sl_qgroup_declare(sl_groups *g, const char *group, const char *topic,
                         const sl_qgroup_cfg *cfg)
{
    sl_qgroup *qg = sl_groups_qgroup_find(g, group, topic);
    if (!group[0] || strlen(group) > 249)
        return SL_ERR_INVALID_ARG;
    if (g->env.coordinates && !g->env.coordinates(g->env.ctx, group))
        return SL_ERR_NOT_COORDINATOR;
    if (g->env.partitions(g->env.ctx, topic) < 0)
        return SL_ERR_UNKNOWN_TOPIC;
    if (!qg) {
        qg = sl_q__qg_new(g, group, topic, cfg);
        if (!qg)
            return SL_ERR_NOMEM;
        qg->cfg_dirty = 1;
        sl_q__qg_sync_parts(qg);
    } else if (cfg) {
        int reprio = cfg->max_priority != qg->cfg.max_priority;
        qg->cfg = *cfg;
        qg->cfg_dirty = 1;
        /* priorities are read with the other metadata: read them again */
        for (int32_t i = 0; reprio && i < qg->nparts; i++) {
            sl_qpart *qp = qg->parts[i];
            for (int64_t o = qp ? qp->start : 0; qp && o < qp->cursor; o++)
                ent(qp, o)->flags &= (uint8_t)~SL_QE_META;
        }
    }
    sl_groups_mutated(g);
    return SL_OK;
}

sl_err sl_qgroup_get_cfg(sl_groups *g, const char *group, const char *topic,
                         sl_qgroup_cfg *out)
{
    sl_qgroup *qg = sl_groups_qgroup_find(g, group, topic);
    if (!qg)
        return SL_ERR_UNKNOWN_GROUP;
    *out = qg->cfg;
    return SL_OK;
}

/* ---- events ----------------------------------------------------------- */

void sl_queue_on_append(sl_groups *g, const char *topic, int32_t partition)
{
    for (sl_qgroup *qg = g->qgroups; qg; qg = qg->next) {
        if (strcmp(qg->topic, topic))
            continue;
        if (partition >= qg->nparts)
            sl_q__qg_sync_parts(qg);
        if (sl_q__qg_wants(qg))
            sl_q__pump(qg);
    }
}

/* The dead-letter copy of off is safe: archive the record (still in
 * state DLQ: a delete or reload may have changed it meanwhile). */
static void dlq_archive(sl_qpart *qp, int64_t off)
{
    if (off >= qp->start && off < qp->cursor) {
        sl_qent *e = ent(qp, off);
        if (e->state == SL_Q_DLQ) {
            e->state = SL_Q_ARCHIVED;
            qp->archived++;
            sl_q__advance_start(qp);
            sl_q__qp_dirty(qp);
        }
    }
}

void sl_groups_dlq_forwarded(sl_groups *g, int64_t token, sl_err rc)
{
    for (size_t i = 0; i < g->ndlqp; i++) {
        sl_qdlq_pending d = g->dlqp[i];
        if (d.dlq_part || d.dlq_off != token)
            continue;
        g->dlqp[i] = g->dlqp[--g->ndlqp];
        if (rc == SL_OK) {
            dlq_archive(d.qp, d.off);
        } else if (d.off >= d.qp->start && d.off < d.qp->cursor &&
                   ent(d.qp, d.off)->state == SL_Q_DLQ) {
            /* not stored for sure: the tick appends it again (a copy
             * may exist: duplicated maybe, lost never) */
            ent(d.qp, d.off)->flags &= (uint8_t)~SL_QE_DLQ_SENT;
            d.qp->n_dlq_redo++;
            sl_log(SL_WARN, "groups",
                   "dead-letter copy of %s/%d offset %lld (group %s) "
                   "forwarded to the DLQ's leader failed: %s; will retry",
                   d.qp->qg->topic, d.qp->partition, (long long)d.off,
                   d.qp->qg->name, sl_strerror(rc));
        }
        return;
    }
}

/* Dead-letter appends that became durable: archive. */
static void dlq_settle(sl_groups *g)
{
    size_t j = 0;
    for (size_t i = 0; i < g->ndlqp; i++) {
        sl_qdlq_pending *d = &g->dlqp[i];
        if (d->dlq_part && dlq_durable(d->dlq_part) > d->dlq_off) {
            dlq_archive(d->qp, d->off);
        } else {
            g->dlqp[j++] = *d;
        }
    }
    g->ndlqp = j;
}

void sl_queue_on_flushed(sl_groups *g)
{
    dlq_settle(g);
    /* Newly durable records for waiting consumers. */
    for (sl_qgroup *qg = g->qgroups; qg; qg = qg->next)
        if (sl_q__qg_wants(qg))
            sl_q__pump(qg);
}

int64_t sl_queue_tick(sl_groups *g, int64_t now)
{
    int64_t next = now + 1000;
    int refresh = g->env.topic_ttl_ms && now - g->ttl_refreshed >= 1000;
    if (refresh)
        g->ttl_refreshed = now;
    if (g->ndlqp) /* a cluster's HW rises without a flusher round */
        dlq_settle(g);
    for (sl_qgroup *qg = g->qgroups; qg; qg = qg->next) {
        int freed = 0;
        if (refresh) /* topic settings may change at run time */
            qg->topic_ttl_ms = g->env.topic_ttl_ms(g->env.ctx, qg->topic);
        for (int32_t i = 0; i < qg->nparts; i++) {
            sl_qpart *qp = qg->parts[i];
            if (!qp)
                continue;
            if (qp->n_dlq_redo > 0) {
                qp->n_dlq_redo = 0;
                for (int64_t off = qp->start; off < qp->cursor; off++) {
                    sl_qent *e = ent(qp, off);
                    if (e->state == SL_Q_DLQ && !(e->flags & SL_QE_DLQ_SENT))
                        sl_q__dead_letter(qp, off, NULL, e->reason, NULL);
                }
            }
            if (qp->n_acq > 0 && qp->next_deadline <= now) {
                int64_t nd = INT64_MAX;
                for (int64_t off = qp->start; off < qp->cursor; off++) {
                    sl_qent *e = ent(qp, off);
                    if (e->state != SL_Q_ACQ)
                        continue;
                    if (e->t > now) {
                        if (e->t < nd)
                            nd = e->t;
                        continue;
                    }
                    sl_qconsumer *c = sl_q__consumer_by_id(qg, e->consumer);
                    if (c)
                        c->held--;
                    qp->n_acq--;
                    e->failures++;
                    g->st.lock_expiries++;
                    qg->st.lock_expiries++;
                    freed = 1;
                    sl_log(SL_DEBUG, "groups",
                           "%s/%d offset %lld group %s: lock expired "
                           "(attempt %u)",
                           qg->topic, qp->partition, (long long)off, qg->name,
                           e->attempts);
                    if (e->attempts >= qg->cfg.max_deliveries) {
                        e->state = SL_Q_AVAIL;
                        qp->n_avail++;
                        sl_q__dead_letter(qp, off, NULL, SL_R_LOCK_EXPIRED,
                                          NULL);
                    } else {
                        sl_q__make_available(qp, e, 0);
                    }
                    sl_q__qp_dirty(qp);
                }
                qp->next_deadline = nd;
            }
            if (qp->n_acq > 0 && qp->next_deadline < next)
                next = qp->next_deadline;
            if (qp->n_avail > 0 && qp->next_due <= now)
                freed = 1;
            /* Records due now wait for credit, and credit pumps by
             * itself: only a future due needs the clock. (A next_due in
             * the past may hide a later one; the pump that hands those
             * records out recomputes it and reports it, see
             * sl_groups_deadline.) */
            if (qp->n_avail > 0 && qp->next_due > now && qp->next_due < next)
                next = qp->next_due;
        }
        if (sl_q__qg_wants(qg) && (freed || qg->cfg.key_ordered))
            sl_q__pump(qg);
    }
    return next - now;
}

void sl_queue_forget_topic(sl_groups *g, const char *topic)
{
    sl_qgroup **pp = &g->qgroups;
    int32_t np = g->env.partitions(g->env.ctx, topic);
    /* Dead-letter appends into the deleted topic: nothing left to wait
     * for (the topic's contents go away); archive them now. */
    for (size_t i = 0; i < g->ndlqp;) {
        int hit = 0;
        for (int32_t k = 0; k < np && !hit; k++)
            hit = g->env.get_part(g->env.ctx, topic, k) == g->dlqp[i].dlq_part;
        if (hit) {
            sl_qpart *qp = g->dlqp[i].qp;
            int64_t off = g->dlqp[i].off;
            if (off >= qp->start && off < qp->cursor &&
                ent(qp, off)->state == SL_Q_DLQ) {
                ent(qp, off)->state = SL_Q_ARCHIVED;
                qp->archived++;
                sl_q__advance_start(qp);
                sl_q__qp_dirty(qp);
            }
            g->dlqp[i] = g->dlqp[--g->ndlqp];
        } else {
            i++;
        }
    }
    while (*pp) {
        sl_qgroup *qg = *pp;
        if (!strcmp(qg->topic, topic)) {
            *pp = qg->next;
            drop_dlq_pending(g, qg);
            qg_free(qg);
        } else {
            pp = &qg->next;
        }
    }
}

sl_err sl_qgroup_delete(sl_groups *g, const char *group, const char *topic)
{
    sl_qgroup **pp = &g->qgroups;
    int found = 0;
    while (*pp) {
        sl_qgroup *qg = *pp;
        if (strcmp(qg->name, group) || (topic && strcmp(qg->topic, topic))) {
            pp = &qg->next;
            continue;
        }
        *pp = qg->next; /* unlinked: excluded from low-water marks */
        found = 1;
        /* Staged directly: the delete must reach the db. */
        sl_groups_stage_delete(g, SL_OP_QDEL, qg->name, qg->topic);
        drop_dlq_pending(g, qg);
        for (int32_t i = 0; i < qg->nparts; i++)
            if (qg->parts[i])
                sl_q__update_low_water(qg, qg->parts[i]);
        qg_free(qg);
    }
    if (!found)
        return SL_ERR_UNKNOWN_GROUP;
    sl_groups_mutated(g);
    if (g->flusher)
        sl_flusher_wake(g->flusher);
    return SL_OK;
}

void sl_queue_mark_all_dirty(sl_groups *g)
{
    for (sl_qgroup *qg = g->qgroups; qg; qg = qg->next) {
        qg->cfg_dirty = 1;
        for (int32_t i = 0; i < qg->nparts; i++)
            if (qg->parts[i])
                qg->parts[i]->dirty = 1;
    }
}
