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
 * Which records are handed out (qp_upto): those below the log end for
 * flush=never topics; for flush=always topics also below the log end when
 * early dispatch is on (sl_groups_set_early, the broker's default: a
 * consumer does not wait for the fdatasync, as RabbitMQ and ActiveMQ
 * dispatch while they store), else below sl_part_durable_offset. Either
 * way, group state that refers to a record not yet durable is committed
 * only after the flusher round that covers it (sl_queue_stage reports it,
 * groups.c holds the commit back): otherwise, if a crash took that tail
 * back, the ack would be remembered and would mark a NEW record at the
 * same offset acked.
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
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "groups/dlq.h"
#include "groups/internal.h"
#include "groups/queue_cfg.h"
#include "protocol/hash.h"
#include "protocol/log.h"
#include "protocol/parse.h"

#define PASS_CHUNK 64

void sl_groups_qgroup_defaults(const sl_groups *g, sl_qgroup_cfg *cfg)
{
    *cfg = g->qdefaults;
}

void sl_groups_set_qgroup_defaults(sl_groups *g, const sl_qgroup_cfg *cfg)
{
    g->qdefaults = *cfg;
}

/* ---- helpers ---------------------------------------------------------- */

static inline sl_qent *ent(sl_qpart *qp, int64_t off)
{
    return &qp->ents[(uint64_t)off & qp->mask];
}

/*
 * No more records may be read into the window: either max_inflight records
 * are active (acquired, or available and not waiting for a not-before
 * time), or the window's span (which also holds done records behind a
 * slow or delayed head, and delayed records) reached max_inflight +
 * max_delayed. The span bounds the memory.
 */
static int window_full(const sl_qpart *qp)
{
    const sl_qgroup_cfg *cfg = &qp->qg->cfg;
    int64_t active = (int64_t)qp->n_acq + qp->n_avail - qp->n_delayed;
    return active >= cfg->max_inflight ||
           qp->cursor - qp->start >=
               (int64_t)cfg->max_inflight + cfg->max_delayed;
}

/* The entry stops being a delayed never-delivered record. */
static inline void undelay(sl_qpart *qp, sl_qent *e)
{
    if (e->flags & SL_QE_DELAYED) {
        e->flags &= (uint8_t)~SL_QE_DELAYED;
        qp->n_delayed--;
    }
}

static sl_part *qp_part(sl_qpart *qp)
{
    sl_groups *g = qp->qg->g;
    if (!qp->part)
        qp->part = g->env.get_part(g->env.ctx, qp->qg->topic, qp->partition);
    return qp->part;
}

static void qp_dirty(sl_qpart *qp)
{
    qp->dirty = 1;
    sl_groups_mutated(qp->qg->g);
}

static sl_qconsumer *consumer_by_id(sl_qgroup *qg, uint32_t id)
{
    for (sl_qconsumer *c = qg->consumers; c; c = c->next)
        if (c->id == id)
            return c;
    return NULL;
}

static const char *dlq_topic(sl_qgroup *qg, char *buf, size_t len)
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
static void ent_meta(sl_qgroup *qg, sl_qent *e, const sl_record *rec, int fresh)
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
    e->flags |= SL_QE_META;
}

/* Mark a window entry that may carry a key (key-ordered delivery only has
 * to scan the window while some do). */
static void ent_keyed(sl_qpart *qp, sl_qent *e, int keyed)
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
static void recount_keyed(sl_qpart *qp)
{
    qp->n_keyed = 0;
    for (int64_t o = qp->start; o < qp->cursor; o++)
        if (ent(qp, o)->flags & SL_QE_KEYED)
            qp->n_keyed++;
}

/* The offset below which records may be handed out: the log end for
 * flush=never topics, and for flush=always topics when early dispatch is
 * on (sl_groups_set_early; not for a partition whose fdatasync failed);
 * else the durable offset. */
static int64_t qp_upto(sl_qpart *qp)
{
    sl_part *p = qp_part(qp);
    int flush;
    if (!p)
        return qp->cursor;
    flush = sl_part_get_cfg(p)->flush;
    if (flush == SL_FLUSH_NEVER ||
        (flush == SL_FLUSH_ALWAYS && qp->qg->g->early && !sl_part_failed(p)))
        return sl_part_end_offset(p);
    return sl_part_durable_offset(p);
}

/* Re-read the record at off into *rec. 1 = found, 0 = gone from the log
 * (retention, compaction), -1 = read error (try again later). */
static int reread(sl_qpart *qp, int64_t off, sl_record *rec)
{
    sl_part *p = qp_part(qp);
    sl_err err = SL_OK;
    if (!p)
        return -1;
    if (off < sl_part_start_offset(p))
        return 0;
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
            return err == SL_OK && off < sl_part_end_offset(p) ? 0 : -1;
        }
        if (rec->offset >= off)
            break;
    }
    qp->rit_pos = rec->offset + 1;
    return rec->offset == off ? 1 : 0;
}

static void update_low_water(sl_qgroup *qg, sl_qpart *qp)
{
    sl_groups *g = qg->g;
    int64_t lw = -1;
    sl_part *p = qp_part(qp);
    if (!p)
        return;
    for (sl_qgroup *o = g->qgroups; o; o = o->next) {
        if (strcmp(o->topic, qg->topic) || qp->partition >= o->nparts ||
            !o->parts[qp->partition])
            continue;
        int64_t s = o->parts[qp->partition]->start;
        if (lw < 0 || s < lw)
            lw = s;
    }
    sl_part_set_low_water(p, lw);
}

static void advance_start(sl_qpart *qp)
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
        update_low_water(qp->qg, qp);
}

static int64_t backoff_delay(const sl_qgroup_cfg *cfg, uint16_t failures)
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

static void make_available(sl_qpart *qp, sl_qent *e, int64_t due)
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
    advance_start(qp);
}

/*
 * Dead-letter the record at off (entry e, record rec or NULL = re-read).
 * The entry must not be ACQ (callers release it first) and leaves AVAIL.
 */
static void dead_letter(sl_qpart *qp, int64_t off, const sl_record *rec_in,
                        int reason, const char *text)
{
    sl_qgroup *qg = qp->qg;
    sl_groups *g = qg->g;
    sl_qent *e = ent(qp, off);
    char tbuf[300];
    const char *dt = dlq_topic(qg, tbuf, sizeof(tbuf));
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
    qp_dirty(qp);
    if (!dt) { /* no dead-letter topic: archive only */
        e->state = SL_Q_AVAIL;
        qp->n_avail++;
        archive(qp, e);
        return;
    }
    if (!rec) {
        if (reread(qp, off, &rr) != 1) { /* gone from the log */
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
    e->flags |= SL_QE_DLQ_SENT;
    if (sl_part_get_cfg(dp)->flush == SL_FLUSH_NEVER ||
        sl_part_durable_offset(dp) > base) {
        e->state = SL_Q_ARCHIVED;
        qp->archived++;
        advance_start(qp);
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
static void expire(sl_qpart *qp, int64_t off, const sl_record *rec)
{
    sl_qent *e = ent(qp, off);
    qp->qg->g->st.expired++;
    if (qp->qg->cfg.dlq_expired) {
        dead_letter(qp, off, rec, SL_R_EXPIRED, NULL);
    } else {
        archive(qp, e);
        qp_dirty(qp);
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
static sl_err qp_resize(sl_qpart *qp, int32_t span)
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
static int qp_room(sl_qpart *qp)
{
    uint64_t need = (uint64_t)(qp->cursor - qp->start) + 1;
    if (need <= (uint64_t)qp->mask + 1)
        return 1;
    return qp_resize(qp, (int32_t)((qp->mask + 1) * 2)) == SL_OK;
}

static sl_qpart *qp_new(sl_qgroup *qg, int32_t partition, int64_t start)
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

static void qp_free(sl_qpart *qp)
{
    if (!qp)
        return;
    sl_part_iter_free(qp->it);
    sl_part_iter_free(qp->rit);
    free(qp->ents);
    free(qp);
}

/* Make sure parts[0..n) exist for the topic's current partition count. */
static void qg_sync_parts(sl_qgroup *qg)
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
        if (p)
            s = qg->cfg.start_latest ? sl_part_end_offset(p)
                                     : sl_part_start_offset(p);
        np[i] = qp_new(qg, i, s);
        if (np[i])
            np[i]->dirty = 1;
    }
    qg->nparts = n;
    for (int32_t i = 0; i < n; i++) /* after nparts: this group counts */
        if (np[i])
            update_low_water(qg, np[i]);
    sl_groups_mutated(g);
}

static sl_qgroup *qg_new(sl_groups *g, const char *group, const char *topic,
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
        qp_free(qg->parts[i]);
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

sl_err sl_qgroup_declare(sl_groups *g, const char *group, const char *topic,
                         const sl_qgroup_cfg *cfg)
{
    sl_qgroup *qg = sl_groups_qgroup_find(g, group, topic);
    if (!group[0] || strlen(group) > 249)
        return SL_ERR_INVALID_ARG;
    if (g->env.partitions(g->env.ctx, topic) < 0)
        return SL_ERR_UNKNOWN_TOPIC;
    if (!qg) {
        qg = qg_new(g, group, topic, cfg);
        if (!qg)
            return SL_ERR_NOMEM;
        qg->cfg_dirty = 1;
        qg_sync_parts(qg);
    } else if (cfg) {

        qg->cfg = *cfg;
        qg->cfg_dirty = 1;
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
        expire(qp, off, rec);
        return 0;
    }
    if (e->attempts >= qg->cfg.max_deliveries) {
        dead_letter(qp, off, rec, SL_R_MAX_DELIVERIES, NULL);
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
    sl_part *p = qp_part(qp);
    sl_err err = SL_OK;
    if (!p || qp->cursor >= upto || window_full(qp))
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
        update_low_water(qp->qg, qp);
    }
    while (qp->cursor < rec->offset) {
        if (window_full(qp)) {
            qp->it_pos = -1;
            advance_start(qp);
            if (window_full(qp))
                return 0;
        }
        if (!qp_room(qp)) {
            qp->it_pos = -1;
            return 0;
        }
        sl_qent *e = ent(qp, qp->cursor);
        memset(e, 0, sizeof(*e));
        e->state = SL_Q_ACKED;
        qp->cursor++;
    }
    advance_start(qp);
    if (window_full(qp)) {
        qp->it_pos = -1;
        return 0;
    }
    if (!qp_room(qp)) {
        qp->it_pos = -1;
        return 0;
    }
    sl_qent *e = ent(qp, qp->cursor);
    memset(e, 0, sizeof(*e));
    ent_meta(qp->qg, e, rec, 1);
    qp->cursor++;
    ent_keyed(qp, e, e->keyhash != 0);
    qp->it_pos = qp->cursor;
    make_available(qp, e, e->t);
    if (e->t > now) {
        e->flags |= SL_QE_DELAYED;
        qp->n_delayed++;
    }
    qp->dirty = 1;
    return 1;
}

/* Deliver up to max records of qp to c. Returns the number delivered. */
static int deliver_part(sl_qpart *qp, sl_qconsumer *c, int max, int64_t now)
{
    sl_qgroup *qg = qp->qg;
    int key_mode = qg->cfg.key_ordered;
    int n = 0;
    keyset ks = {NULL, 0, 0};
    sl_record rec;
    int64_t upto = qp_upto(qp);

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
                    if (reread(qp, off, &rec) == 1) {
                        ent_meta(qg, e, &rec, 0);
                        ent_keyed(qp, e, e->keyhash != 0);
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
            int rr = reread(qp, off, &rec);
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
                advance_start(qp);
                continue;
            }
            if (!(e->flags & SL_QE_META)) {
                ent_meta(qg, e, &rec, 0);
                ent_keyed(qp, e, e->keyhash != 0);
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
            expire(qp, off, &rec);
            continue;
        }
        if (key_mode && e->keyhash && keyset_add(&ks, e->keyhash) != 1)
            continue; /* stays available, behind its key */
        if (e->t > now)
            continue; /* delayed: next_due updated by make_available */
        n += hand_out(qp, off, &rec, c, now);
    }
    free(ks.v);
    return n;
}

/* Deliver to consumers with credits, round robin, in chunks. */
static void pump(sl_qgroup *qg)
{
    int64_t now;
    if (qg->pumping) {
        qg->repump = 1;
        return;
    }
    if (qg->nparts == 0)
        qg_sync_parts(qg);
    if (qg->nparts == 0)
        return;
    qg->pumping = 1;
    for (sl_qconsumer *c = qg->consumers; c; c = c->next)
        c->delivered_in_pass = 0;
    do {
        int progress;
        qg->repump = 0;
        now = sl_groups_now(qg->g);
        do {
            /* Chunk per consumer and pass: small when records are scarce
             * (fair round robin), large with a backlog, so each consumer
             * gets long runs of offsets (whole stored batches are sent
             * once instead of to every consumer). */
            int64_t backlog = 0, chunk;
            int nc = 0;
            for (sl_qconsumer *c = qg->consumers; c; c = c->next)
                nc += c->credits > 0;
            for (int32_t k = 0; k < qg->nparts; k++) {
                sl_qpart *qp = qg->parts[k];
                if (qp)
                    backlog += qp->n_avail +
                               (qp_part(qp) ? qp_upto(qp) - qp->cursor : 0);
            }
            chunk = nc ? backlog / nc : 0;
            if (chunk < PASS_CHUNK)
                chunk = PASS_CHUNK;
            if (chunk > 65536)
                chunk = 65536;
            progress = 0;
            for (sl_qconsumer *c = qg->consumers; c; c = c->next) {
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
                if (got > 0)
                    progress = 1;
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

static int qg_wants(sl_qgroup *qg)
{
    for (sl_qconsumer *c = qg->consumers; c; c = c->next)
        if (c->credits > 0)
            return 1;
    return 0;
}

/* ---- consumers -------------------------------------------------------- */

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
        pump(c->qg);
}

void sl_qconsumer_set_credit(sl_qconsumer *c, int64_t n)
{
    if (!c->qg)
        return;
    c->credits = n < 0 ? 0 : n;
    if (c->credits > 0)
        pump(c->qg);
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
            continue;
        }
        if (op == OP_REJECT) {
            e->failures++;
            g->st.rejects++;
            e->state = SL_Q_AVAIL;
            qp->n_avail++;
            dead_letter(qp, off, NULL, SL_R_REJECTED, text);
            continue;
        }
        /* release / nack */
        g->st.releases++;
        if (count_failure)
            e->failures++;
        if (e->attempts >= qg->cfg.max_deliveries) {
            e->state = SL_Q_AVAIL;
            qp->n_avail++;
            dead_letter(qp, off, NULL, SL_R_MAX_DELIVERIES, NULL);
            continue;
        }
        int64_t delay = arg >= 0 ? arg : backoff_delay(&qg->cfg, e->failures);
        make_available(qp, e, delay > 0 ? now + delay : 0);
        released = 1;
    }
    if (n > 0) {
        advance_start(qp);
        qp_dirty(qp);
    }
    if (count)
        *count = n;
    if (deadline && dl)
        *deadline = dl;
    /* Freed window slots or released records may feed waiting consumers. */
    (void)released;
    if (n > 0 && op != OP_TOUCH && qg_wants(qg))
        pump(qg);
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
                    dead_letter(qp, off, NULL, SL_R_MAX_DELIVERIES, NULL);
                } else {
                    make_available(qp, e, 0);
                }
                qp->dirty = 1;
            }
        }
    }
    free(c);
    if (any) {
        sl_groups_mutated(qg->g);
        if (qg_wants(qg))
            pump(qg);
    }
}

/* ---- events ----------------------------------------------------------- */

void sl_queue_on_append(sl_groups *g, const char *topic, int32_t partition)
{
    for (sl_qgroup *qg = g->qgroups; qg; qg = qg->next) {
        if (strcmp(qg->topic, topic))
            continue;
        if (partition >= qg->nparts)
            qg_sync_parts(qg);
        if (qg_wants(qg))
            pump(qg);
    }
}

void sl_queue_on_flushed(sl_groups *g)
{
    size_t j = 0;
    /* Dead-letter appends that became durable: archive. */
    for (size_t i = 0; i < g->ndlqp; i++) {
        sl_qdlq_pending *d = &g->dlqp[i];
        if (sl_part_get_cfg(d->dlq_part)->flush == SL_FLUSH_NEVER ||
            sl_part_durable_offset(d->dlq_part) > d->dlq_off) {
            sl_qpart *qp = d->qp;
            if (d->off >= qp->start && d->off < qp->cursor) {
                sl_qent *e = ent(qp, d->off);
                if (e->state == SL_Q_DLQ) {
                    e->state = SL_Q_ARCHIVED;
                    qp->archived++;
                    advance_start(qp);
                    qp_dirty(qp);
                }
            }
        } else {
            g->dlqp[j++] = *d;
        }
    }
    g->ndlqp = j;
    /* Newly durable records for waiting consumers. */
    for (sl_qgroup *qg = g->qgroups; qg; qg = qg->next)
        if (qg_wants(qg))
            pump(qg);
}

int64_t sl_queue_tick(sl_groups *g, int64_t now)
{
    int64_t next = now + 1000;
    int refresh = g->env.topic_ttl_ms && now - g->ttl_refreshed >= 1000;
    if (refresh)
        g->ttl_refreshed = now;
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
                        dead_letter(qp, off, NULL, e->reason, NULL);
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
                    sl_qconsumer *c = consumer_by_id(qg, e->consumer);
                    if (c)
                        c->held--;
                    qp->n_acq--;
                    e->failures++;
                    g->st.lock_expiries++;
                    freed = 1;
                    sl_log(SL_DEBUG, "groups",
                           "%s/%d offset %lld group %s: lock expired "
                           "(attempt %u)",
                           qg->topic, qp->partition, (long long)off, qg->name,
                           e->attempts);
                    if (e->attempts >= qg->cfg.max_deliveries) {
                        e->state = SL_Q_AVAIL;
                        qp->n_avail++;
                        dead_letter(qp, off, NULL, SL_R_LOCK_EXPIRED, NULL);
                    } else {
                        make_available(qp, e, 0);
                    }
                    qp_dirty(qp);
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
        if (qg_wants(qg) && (freed || qg->cfg.key_ordered))
            pump(qg);
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
                advance_start(qp);
                qp_dirty(qp);
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
                update_low_water(qg, qg->parts[i]);
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

/* ---- persistence ------------------------------------------------------ */

static int persist_state(const sl_qent *e)
{
    return e->state == SL_Q_ACQ ? SL_Q_AVAIL : e->state;
}

/* Two entries can share one range row. */
static int same_range(const sl_qent *a, const sl_qent *b)
{
    int sa = persist_state(a), sb = persist_state(b);
    if (sa != sb)
        return 0;
    if (sa == SL_Q_ACKED || sa == SL_Q_ARCHIVED)
        return 1;
    int64_t da = a->state == SL_Q_ACQ ? 0 : a->t;
    int64_t db = b->state == SL_Q_ACQ ? 0 : b->t;
    return a->attempts == b->attempts && a->failures == b->failures &&
           da == db && a->first_ms == b->first_ms && a->last_ms == b->last_ms &&
           a->reason == b->reason;
}

static void stage_qpart(sl_qpart *qp, sl_wb *wb)
{
    sl_qgroup *qg = qp->qg;
    size_t count_at;
    uint32_t n = 0;
    sl_wb_u8(wb, SL_OP_QPART);
    sl_wb_str16(wb, qg->name, strlen(qg->name));
    sl_wb_str16(wb, qg->topic, strlen(qg->topic));
    sl_wb_u32(wb, (uint32_t)qp->partition);
    sl_wb_u64(wb, (uint64_t)qp->start);
    sl_wb_u64(wb, (uint64_t)qp->cursor);
    count_at = wb->len;
    sl_wb_u32(wb, 0);
    for (int64_t off = qp->start; off < qp->cursor;) {
        const sl_qent *e = ent(qp, off);
        int64_t last = off;
        while (last + 1 < qp->cursor && same_range(e, ent(qp, last + 1)))
            last++;
        sl_wb_u64(wb, (uint64_t)off);
        sl_wb_u64(wb, (uint64_t)last);
        sl_wb_u8(wb, (uint8_t)persist_state(e));
        sl_wb_u8(wb, e->reason);
        sl_wb_u16(wb, e->attempts);
        sl_wb_u16(wb, e->failures);
        sl_wb_u64(wb, (uint64_t)(e->state == SL_Q_AVAIL ? e->t : 0));
        sl_wb_u64(wb, (uint64_t)e->first_ms);
        sl_wb_u64(wb, (uint64_t)e->last_ms);
        n++;
        off = last + 1;
    }
    sl_wb_patch_u32(wb, count_at, n);
}

int sl_queue_stage(sl_groups *g, sl_wb *wb)
{
    int early = 0;
    for (sl_qgroup *qg = g->qgroups; qg; qg = qg->next) {
        if (qg->cfg_dirty) {
            char text[1024];
            sl_qgroup_cfg_text(&qg->cfg, text, sizeof(text));
            sl_wb_u8(wb, SL_OP_QGROUP);
            sl_wb_str16(wb, qg->name, strlen(qg->name));
            sl_wb_str16(wb, qg->topic, strlen(qg->topic));
            sl_wb_str16(wb, text, strlen(text));
            qg->cfg_dirty = 0;
        }
        for (int32_t i = 0; i < qg->nparts; i++) {
            sl_qpart *qp = qg->parts[i];
            if (qp && qp->dirty) {
                sl_part *p = qp_part(qp);
                stage_qpart(qp, wb);
                qp->dirty = 0;
                if (p && sl_part_get_cfg(p)->flush != SL_FLUSH_NEVER &&
                    qp->cursor > sl_part_durable_offset(p))
                    early = 1;
            }
        }
    }
    return early;
}

static sl_qpart *load_qpart(sl_qgroup *qg, int32_t part, int64_t start,
                            int64_t cursor)
{
    sl_qpart *qp;
    if (part < 0 || part > 100000)
        return NULL;
    if (part >= qg->nparts) {
        sl_qpart **np = realloc(qg->parts, (size_t)(part + 1) * sizeof(*np));
        if (!np)
            return NULL;
        for (int32_t i = qg->nparts; i <= part; i++)
            np[i] = NULL;
        qg->parts = np;
        qg->nparts = part + 1;
    }
    if (qg->parts[part])
        return qg->parts[part];
    if (cursor - start > (int64_t)qg->cfg.max_inflight + qg->cfg.max_delayed)
        qg->cfg.max_delayed = (int32_t)(cursor - start);
    qp = qp_new(qg, part, start);
    if (!qp)
        return NULL;
    if (cursor - start > 0 &&
        qp_resize(qp, (int32_t)(cursor - start)) != SL_OK) {
        qp_free(qp);
        return NULL;
    }
    qp->cursor = cursor;
    /* Until ranges say otherwise: never delivered, available. */
    for (int64_t o = start; o < cursor; o++) {
        memset(ent(qp, o), 0, sizeof(sl_qent));
        ent(qp, o)->flags = SL_QE_KEYED; /* key unknown until re-read */
        qp->n_avail++;
    }
    qp->next_due = 0;
    qg->parts[part] = qp;
    return qp;
}

sl_err sl_queue_load(sl_groups *g)
{
    sqlite3_stmt *st = NULL;
    sl_err rc = SL_OK;
    if (sqlite3_prepare_v2(g->db, "SELECT grp, topic, cfg FROM qgroup", -1, &st,
                           NULL) != SQLITE_OK)
        return SL_ERR_STORAGE;
    while (sqlite3_step(st) == SQLITE_ROW) {
        sl_qgroup_cfg cfg = g->qdefaults;
        sl_qgroup_cfg_from_text(&cfg, (const char *)sqlite3_column_text(st, 2));
        if (!qg_new(g, (const char *)sqlite3_column_text(st, 0),
                    (const char *)sqlite3_column_text(st, 1), &cfg)) {
            rc = SL_ERR_NOMEM;
            goto out;
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(g->db,
                           "SELECT grp, topic, part, start, cursor FROM qpart",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = SL_ERR_STORAGE;
        goto out;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        sl_qgroup *qg =
            sl_groups_qgroup_find(g, (const char *)sqlite3_column_text(st, 0),
                                  (const char *)sqlite3_column_text(st, 1));
        if (!qg)
            continue;
        load_qpart(qg, sqlite3_column_int(st, 2), sqlite3_column_int64(st, 3),
                   sqlite3_column_int64(st, 4));
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(g->db,
                           "SELECT grp, topic, part, first, last, state, "
                           "reason, attempts, failures, due, first_ms, "
                           "last_ms FROM qrange",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = SL_ERR_STORAGE;
        goto out;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        sl_qgroup *qg =
            sl_groups_qgroup_find(g, (const char *)sqlite3_column_text(st, 0),
                                  (const char *)sqlite3_column_text(st, 1));
        int32_t part = sqlite3_column_int(st, 2);
        sl_qpart *qp;
        if (!qg || part < 0 || part >= qg->nparts || !qg->parts[part])
            continue;
        qp = qg->parts[part];
        int64_t first = sqlite3_column_int64(st, 3);
        int64_t last = sqlite3_column_int64(st, 4);
        if (first < qp->start)
            first = qp->start;
        if (last >= qp->cursor)
            last = qp->cursor - 1;
        for (int64_t o = first; o <= last; o++) {
            sl_qent *e = ent(qp, o);
            int s = sqlite3_column_int(st, 5);
            e->reason = (uint8_t)sqlite3_column_int(st, 6);
            e->attempts = (uint16_t)sqlite3_column_int(st, 7);
            e->failures = (uint16_t)sqlite3_column_int(st, 8);
            e->t = sqlite3_column_int64(st, 9);
            e->first_ms = sqlite3_column_int64(st, 10);
            e->last_ms = sqlite3_column_int64(st, 11);
            if (s != SL_Q_AVAIL) {
                qp->n_avail--;
                e->state = (uint8_t)s;
                if (s == SL_Q_DLQ)
                    qp->n_dlq_redo++;
            }
        }
    }
    /* Settle loaded windows: done prefixes, low-water marks. */
    for (sl_qgroup *qg = g->qgroups; qg; qg = qg->next)
        for (int32_t i = 0; i < qg->nparts; i++)
            if (qg->parts[i]) {
                sl_qpart *qp = qg->parts[i];
                sl_part *p = qp_part(qp);
                if (p && qp->cursor > sl_part_end_offset(p)) {
                    /* The log lost an unflushed tail (state referring to
                     * records not durable is never committed, so nothing
                     * acked is lost here). */
                    int64_t end = sl_part_end_offset(p);
                    for (int64_t o = end; o < qp->cursor; o++)
                        if (o >= qp->start && ent(qp, o)->state == SL_Q_AVAIL)
                            qp->n_avail--;
                    qp->cursor = end > qp->start ? end : qp->start;
                    if (qp->start > end)
                        qp->start = qp->cursor = end;
                }
                recount_keyed(qp);
                advance_start(qp);
                update_low_water(qg, qp);
            }
out:
    sqlite3_finalize(st);
    return rc;
}

/* ---- describe ---------------------------------------------------------- */

sl_err sl_queue_describe(sl_groups *g, const char *group, sl_group_info *info)
{
    size_t nparts = 0, nmem = 0, pi = 0, mi = 0;
    int found = 0;
    int64_t now = sl_groups_now(g);
    for (sl_qgroup *qg = g->qgroups; qg; qg = qg->next) {
        if (strcmp(qg->name, group))
            continue;
        if (!found) {
            char tb[300];
            const char *dt = dlq_topic(qg, tb, sizeof(tb));
            info->cfg = qg->cfg;
            snprintf(info->dlq_topic, sizeof(info->dlq_topic), "%.255s",
                     dt ? dt : "");
        }
        found = 1;
        nparts += (size_t)qg->nparts;
        for (sl_qconsumer *c = qg->consumers; c; c = c->next)
            nmem++;
    }
    if (!found)
        return SL_ERR_UNKNOWN_GROUP;
    info->kind = 1;
    info->parts = calloc(nparts + 1, sizeof(*info->parts));
    info->members = calloc(nmem + 1, sizeof(*info->members));
    if (!info->parts || !info->members)
        return SL_ERR_NOMEM;
    for (sl_qgroup *qg = g->qgroups; qg; qg = qg->next) {
        if (strcmp(qg->name, group))
            continue;
        for (sl_qconsumer *c = qg->consumers; c; c = c->next) {
            sl_gmember_info *m = &info->members[mi++];
            snprintf(m->id, sizeof(m->id), "%u", c->id);
            snprintf(m->name, sizeof(m->name), "%s", c->name);
            m->held = (int64_t)c->held;
            m->credits = c->credits;
        }
        for (int32_t i = 0; i < qg->nparts; i++) {
            sl_qpart *qp = qg->parts[i];
            sl_gpart_info *p = &info->parts[pi];
            sl_part *sp;
            if (!qp)
                continue;
            pi++;
            sp = qp_part(qp);
            snprintf(p->topic, sizeof(p->topic), "%s", qg->topic);
            p->partition = i;
            p->start = qp->start;
            p->cursor = qp->cursor;
            p->log_end = sp ? sl_part_end_offset(sp) : qp->cursor;
            p->lag = p->log_end - qp->start;
            p->acquired = qp->n_acq;
            p->available = qp->n_avail;
            p->archived = (int64_t)qp->archived;
            for (int64_t o = qp->start; o < qp->cursor; o++) {
                sl_qent *e = ent(qp, o);
                if (e->state == SL_Q_AVAIL && e->t > now)
                    p->delayed++;
            }
        }
    }
    info->nparts = pi;
    info->nmembers = mi;
    snprintf(info->state, sizeof(info->state), "%s", mi ? "Active" : "Empty");
    return SL_OK;
}

/* ---- management ------------------------------------------------------- */

/* A window entry a consumer could get now. */
static int ent_ready(const sl_qent *e, int64_t now)
{
    return e->state == SL_Q_AVAIL && e->t <= now &&
           !(e->flags & SL_QE_DELAYED);
}

sl_err sl_qgroup_summary_get(sl_groups *g, const char *group,
                             const char *topic, sl_qgroup_summary *out)
{
    sl_qgroup *qg = sl_groups_qgroup_find(g, group, topic);
    sl_qgroup_summary s;
    int64_t now = sl_groups_now(g);
    if (!qg)
        return SL_ERR_UNKNOWN_GROUP;
    qg_sync_parts(qg);
    memset(&s, 0, sizeof(s));
    s.oldest_ready_ts = -1;
    for (sl_qconsumer *c = qg->consumers; c; c = c->next)
        s.consumers++;
    for (int32_t i = 0; i < qg->nparts; i++) {
        sl_qpart *qp = qg->parts[i];
        sl_part *p;
        int64_t first = -1, upto;
        sl_record rec;
        if (!qp || !(p = qp_part(qp)))
            continue;
        upto = qp_upto(qp);
        s.in_flight += qp->n_acq;
        s.backlog += sl_part_end_offset(p) - qp->start;
        for (int64_t o = qp->start; o < qp->cursor; o++) {
            const sl_qent *e = ent(qp, o);
            if (ent_ready(e, now)) {
                s.ready++;
                if (first < 0)
                    first = o;
            } else if (e->state == SL_Q_AVAIL) {
                s.delayed++;
            }
        }
        if (upto > qp->cursor) {
            s.ready += upto - qp->cursor;
            if (first < 0)
                first = qp->cursor < sl_part_start_offset(p)
                            ? sl_part_start_offset(p)
                            : qp->cursor;
        }
        if (first >= 0 && reread(qp, first, &rec) == 1 &&
            (s.oldest_ready_ts < 0 || rec.timestamp < s.oldest_ready_ts))
            s.oldest_ready_ts = rec.timestamp;
    }
    *out = s;
    return SL_OK;
}

sl_err sl_qgroup_seek(sl_groups *g, const char *group, const char *topic,
                      int32_t partition, int64_t offset)
{
    sl_qgroup *qg = sl_groups_qgroup_find(g, group, topic);
    sl_qpart *qp;
    sl_part *p;
    size_t j = 0;
    if (!qg)
        return SL_ERR_UNKNOWN_GROUP;
    qg_sync_parts(qg);
    if (partition < 0 || partition >= qg->nparts || !qg->parts[partition])
        return SL_ERR_UNKNOWN_PARTITION;
    qp = qg->parts[partition];
    if (!(p = qp_part(qp)))
        return SL_ERR_UNKNOWN_PARTITION;
    if (offset < sl_part_start_offset(p))
        offset = sl_part_start_offset(p);
    if (offset > sl_part_end_offset(p))
        offset = sl_part_end_offset(p);
    /* Records held by consumers are forgotten: their settlements fail
     * with NOT_ACQUIRED from now on (the offsets left the window). */
    for (int64_t o = qp->start; o < qp->cursor; o++) {
        sl_qent *e = ent(qp, o);
        if (e->state == SL_Q_ACQ) {
            sl_qconsumer *c = consumer_by_id(qg, e->consumer);
            if (c && c->held)
                c->held--;
        }
    }
    /* Dead-letter copies already appended stay in the DLQ; nothing in
     * this window waits for them any more. */
    for (size_t i = 0; i < g->ndlqp; i++)
        if (g->dlqp[i].qp != qp)
            g->dlqp[j++] = g->dlqp[i];
    g->ndlqp = j;
    qp->start = qp->cursor = offset;
    qp->n_avail = qp->n_acq = qp->n_dlq_redo = 0;
    qp->n_delayed = qp->n_keyed = 0;
    qp->it_pos = -1;
    qp->rit_pos = -1;
    qp->next_deadline = INT64_MAX;
    qp->next_due = INT64_MAX;
    update_low_water(qg, qp);
    qp_dirty(qp);
    sl_log(SL_INFO, "groups", "queue group %s on %s/%d moved to offset %lld",
           qg->name, qg->topic, partition, (long long)offset);
    if (qg_wants(qg))
        pump(qg);
    return SL_OK;
}

int64_t sl_qgroup_peek(sl_groups *g, const char *group, const char *topic,
                       int64_t max, sl_qpeek_fn fn, void *arg)
{
    sl_qgroup *qg = sl_groups_qgroup_find(g, group, topic);
    int64_t n = 0, now = sl_groups_now(g);
    if (!qg)
        return -1;
    qg_sync_parts(qg);
    for (int32_t i = 0; i < qg->nparts && n < max; i++) {
        sl_qpart *qp = qg->parts[i];
        sl_part *p;
        sl_part_iter *it = NULL;
        sl_record rec;
        int64_t upto, from;
        if (!qp || !(p = qp_part(qp)))
            continue;
        for (int64_t o = qp->start; o < qp->cursor && n < max; o++) {
            sl_qent *e = ent(qp, o);
            if (ent_ready(e, now) && reread(qp, o, &rec) == 1) {
                fn(arg, i, o, e->attempts, &rec);
                n++;
            }
        }
        upto = qp_upto(qp);
        from = qp->cursor;
        if (from < sl_part_start_offset(p))
            from = sl_part_start_offset(p);
        if (n >= max || from >= upto ||
            sl_part_iter_new(p, from, &it) != SL_OK)
            continue;
        while (n < max && sl_part_iter_next(it, &rec, NULL) &&
               rec.offset < upto) {
            if (rec.offset < from)
                continue;
            fn(arg, i, rec.offset, 0, &rec);
            n++;
        }
        sl_part_iter_free(it);
    }
    return n;
}
