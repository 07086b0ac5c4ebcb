/*
 * groups.c - the groups object: groups.db, batched commits, waiters.
 *
 * DESIGN: one SQLite transaction per flusher round.
 *
 * Every mutation on the loop thread (ack, release, delivery count, offset
 * commit, group config) bumps g->seq and marks its object dirty. When no
 * staged buffer is waiting, the loop serializes every dirty object into a
 * staged buffer (a list of ops: whole-window snapshots as ranges, offsets,
 * configs) covering seq = g->seq, queues it (g->stq) and wakes the
 * flusher's hook thread. The flusher hook takes the ready buffers from the
 * head of the queue under g->mu and applies them in ONE transaction
 * (BEGIN IMMEDIATE .. COMMIT, WAL, synchronous=FULL so the commit is on
 * disk), then publishes committed_seq. The broker's notify runs
 * sl_groups_on_flushed on the loop, which completes the waiters whose
 * seq <= committed_seq and stages what changed meanwhile. So an ack is
 * answered at most two rounds after it arrived, and the number of SQLite
 * transactions follows the number of rounds, not the number of acks.
 *
 * Early dispatch (sl_groups_set_early): a queue window may refer to
 * records handed out before their fdatasync. Staging asks the flusher
 * for a round of each such partition now (sl_flusher_request: an append
 * nobody waited on may have asked only lazily), then the buffer carries a
 * flusher token (sl_flusher_token, taken after those requests) and is
 * ready only once sl_flusher_covered() reaches it, i.e.
 * after the round that made the records durable; sl_groups_on_durable
 * wakes the hook then. Buffers commit in order, so everything staged
 * after it waits too; a newer buffer is merged into the newest queued one
 * only when that does not make it wait longer, so a steady stream of
 * rounds never starves the commit.
 *
 * Failure scenario this ordering prevents: answering an ack, crashing
 * before the transaction that contains it, and redelivering the record.
 * A commit failure is reported to the waiters (they answer an error) and
 * the state stays dirty so the next round retries it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "groups/internal.h"
#include "protocol/log.h"

static const char *k_schema =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "PRAGMA wal_autocheckpoint=8192;"
    "CREATE TABLE IF NOT EXISTS qgroup(grp TEXT NOT NULL, topic TEXT NOT "
    "NULL, cfg TEXT NOT NULL, PRIMARY KEY(grp, topic));"
    "CREATE TABLE IF NOT EXISTS qpart(grp TEXT NOT NULL, topic TEXT NOT "
    "NULL, part INTEGER NOT NULL, start INTEGER NOT NULL, cursor INTEGER "
    "NOT NULL, PRIMARY KEY(grp, topic, part));"
    "CREATE TABLE IF NOT EXISTS qrange(grp TEXT NOT NULL, topic TEXT NOT "
    "NULL, part INTEGER NOT NULL, first INTEGER NOT NULL, last INTEGER NOT "
    "NULL, state INTEGER NOT NULL, reason INTEGER NOT NULL, attempts "
    "INTEGER NOT NULL, failures INTEGER NOT NULL, due INTEGER NOT NULL, "
    "first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL, PRIMARY KEY(grp, "
    "topic, part, first)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS soffset(grp TEXT NOT NULL, topic TEXT NOT "
    "NULL, part INTEGER NOT NULL, off INTEGER NOT NULL, PRIMARY KEY(grp, "
    "topic, part));"
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT);"
    "INSERT OR IGNORE INTO meta(k, v) VALUES('schema', '1');";

int64_t sl_groups_now(sl_groups *g)
{
    struct timespec ts;
    if (g->env.now_ms)
        return g->env.now_ms(g->env.ctx);
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

sl_qgroup *sl_groups_qgroup_find(sl_groups *g, const char *group,
                                 const char *topic)
{
    for (sl_qgroup *qg = g->qgroups; qg; qg = qg->next)
        if (!strcmp(qg->name, group) && !strcmp(qg->topic, topic))
            return qg;
    return NULL;
}

sl_sgroup *sl_groups_sgroup_find(sl_groups *g, const char *name)
{
    for (sl_sgroup *sg = g->sgroups; sg; sg = sg->next)
        if (!strcmp(sg->name, name))
            return sg;
    return NULL;
}

/* Is a commit of what changed due now? At once when someone waits for
 * it (an answered ACK, an offset commit, a receipt) or when lazy commits
 * are off; otherwise once commit_interval_ms passed since the last
 * staging, so a stream of unanswered acks (STOMP ACK without a receipt)
 * costs one SQLite transaction per interval, not one per flusher round. */
static int stage_due(sl_groups *g)
{
    int64_t now;
    if (g->commit_interval_ms <= 0 || g->waiters)
        return 1;
    now = sl_groups_now(g);
    return now < g->last_stage_ms ||
           now - g->last_stage_ms >= g->commit_interval_ms;
}

/* Append a staged buffer (taking over *wb) to the queue, or merge it into
 * the newest one when that does not make the newest wait longer (a later
 * snapshot of a window supersedes an earlier one, applied in order).
 * Holds g->mu. */
static void stq_push(sl_groups *g, sl_wb *wb, uint64_t seq, uint64_t token)
{
    sl_stage *t = g->stq_tail, *n = NULL;
    if (!t || token > t->token)
        n = calloc(1, sizeof(*n));
    if (!n && t) { /* merge; out of memory too: then it waits longer */
        sl_wb_put(&t->buf, wb->p, wb->len);
        sl_wb_fini(wb);
        t->seq = seq;
        if (token > t->token)
            t->token = token;
        return;
    }
    if (!n) {
        sl_log(SL_ERROR, "groups", "out of memory staging state");
        sl_wb_fini(wb);
        return;
    }
    n->buf = *wb;
    n->seq = seq;
    n->token = token;
    if (t)
        t->next = n;
    else
        g->stq = n;
    g->stq_tail = n;
}

/* Is the oldest staged buffer ready to commit? Holds g->mu. */
static int stq_ready(sl_groups *g)
{
    return g->stq && (!g->flusher || g->stq->token == 0 ||
                      sl_flusher_covered(g->flusher) >= g->stq->token);
}

static int stq_pending(sl_groups *g)
{
    int pending;
    pthread_mutex_lock(&g->mu);
    pending = g->stq != NULL;
    pthread_mutex_unlock(&g->mu);
    return pending;
}

/* Serialize everything dirty into a staged buffer. When some of it refers
 * to records handed out (or, a stream offset, read) before their
 * fdatasync, its commit waits for the flusher round that covers them
 * (sl_flusher_token): group state never points past the durable end of a
 * log, or a crash that took that tail back would reuse the offsets and
 * find NEW records already acked.
 * @thread loop */
static void stage_now(sl_groups *g)
{
    sl_wb wb;
    uint64_t token = 0;
    int ready, early;
    g->last_stage_ms = sl_groups_now(g);
    sl_wb_init(&wb, 4096);
    early = sl_queue_stage(g, &wb);
    early |= sl_stream_stage(g, &wb);
    if (early && g->flusher) {
        /* after the stage functions' sl_flusher_request of each partition
         * it refers to ahead of its durable end: the token covers them */
        token = sl_flusher_token(g->flusher);
        sl_flusher_kick(g->flusher, 0); /* (inline mode: requests only queue) */
    }
    g->need_stage = 0;
    if (g->env.replicate)
        g->env.replicate(g->env.ctx, wb.p, wb.len, g->seq);
    pthread_mutex_lock(&g->mu);
    stq_push(g, &wb, g->seq, token);
    ready = stq_ready(g);
    pthread_mutex_unlock(&g->mu);
    g->staged_upto = g->seq;
    /* Not ready: the durable notify of its round wakes the hook
     * (sl_groups_on_durable), a wake-up now would find nothing to do. */
    if (g->flusher && ready)
        sl_flusher_wake(g->flusher);
}

/* Stage now unless a staged buffer still waits for the flusher (then
 * sl_groups_on_flushed stages after the round). */
static void stage_if_idle(sl_groups *g)
{
    if (!stq_pending(g))
        stage_now(g);
}

void sl_groups_stage_delete(sl_groups *g, int op, const char *group,
                            const char *topic)
{
    sl_wb wb;
    sl_wb_init(&wb, 64);
    sl_wb_u8(&wb, (uint8_t)op);
    sl_wb_str16(&wb, group, strlen(group));
    sl_wb_str16(&wb, topic, strlen(topic));
    if (g->env.replicate) /* the seq staged last: in order */
        g->env.replicate(g->env.ctx, wb.p, wb.len, g->staged_upto);
    pthread_mutex_lock(&g->mu);
    /* After everything staged so far, with the newest buffer's seq and
     * token (0 when none): ordered, never waiting on its own. */
    stq_push(g, &wb, g->stq_tail ? g->stq_tail->seq : g->staged_upto,
             g->stq_tail ? g->stq_tail->token : 0);
    pthread_mutex_unlock(&g->mu);
    sl_groups_mutated(g);
    if (g->flusher)
        sl_flusher_wake(g->flusher);
}

void sl_groups_deadline(sl_groups *g, int64_t at_ms)
{
    if (g->in_tick) { /* sl_groups_tick's answer will cover it */
        if (at_ms < g->tick_min)
            g->tick_min = at_ms;
        return;
    }
    if (at_ms >= g->wake_hint || !g->env.wake_at)
        return;
    g->wake_hint = at_ms;
    g->env.wake_at(g->env.ctx, at_ms);
}

/* A deferred (lazy) commit is pending: tick when it comes due. */
static void deadline_stage(sl_groups *g)
{
    if (g->need_stage && g->flusher && g->commit_interval_ms > 0)
        sl_groups_deadline(g, g->last_stage_ms + g->commit_interval_ms);
}

void sl_groups_mutated(sl_groups *g)
{
    g->seq++;
    g->need_stage = 1;
    if (!g->flusher || g->in_free)
        return;
    if (g->env.request_stage) {
        if (!g->stage_requested) {
            g->stage_requested = 1;
            g->env.request_stage(g->env.ctx);
        }
        return;
    }
    if (stage_due(g))
        stage_if_idle(g);
    else
        deadline_stage(g);
}

void sl_groups_stage(sl_groups *g)
{
    g->stage_requested = 0;
    if (g->need_stage && g->flusher && stage_due(g))
        stage_if_idle(g);
    else
        deadline_stage(g);
}

void sl_groups_set_early(sl_groups *g, int on)
{
    g->early = on != 0;
}

void sl_groups_set_commit_interval(sl_groups *g, int64_t ms)
{
    g->commit_interval_ms = ms > 0 ? ms : 0;
}

static sl_err db_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        sl_log(SL_ERROR, "groups", "groups.db: %s: %s",
               msg ? msg : sqlite3_errstr(rc), sql);
        sqlite3_free(msg);
        return SL_ERR_STORAGE;
    }
    return SL_OK;
}

static int bind_str(sqlite3_stmt *st, int i, const char *s, uint16_t n)
{
    return sqlite3_bind_text(st, i, s, n, SQLITE_STATIC);
}

/* Apply one staged buffer inside a transaction. @thread flusher */
static sl_err apply_ops(sl_groups *g, const uint8_t *p, size_t len)
{
    sl_rd rd;
    sl_err rc = SL_OK;
    sqlite3_stmt *up_part = NULL, *del_ranges = NULL, *ins_range = NULL,
                 *up_group = NULL, *up_off = NULL, *del_group = NULL,
                 *del_parts = NULL, *del_granges = NULL;
    sqlite3 *db = g->db;
#define PREP(st, sql)                                                          \
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {             \
        rc = SL_ERR_STORAGE;                                                   \
        goto out;                                                              \
    }
    PREP(up_part, "INSERT OR REPLACE INTO qpart(grp,topic,part,start,cursor) "
                  "VALUES(?,?,?,?,?)");
    PREP(del_ranges, "DELETE FROM qrange WHERE grp=? AND topic=? AND part=?");
    PREP(ins_range, "INSERT OR REPLACE INTO qrange(grp,topic,part,first,last,"
                    "state,reason,attempts,failures,due,first_ms,last_ms) "
                    "VALUES(?,?,?,?,?,?,?,?,?,?,?,?)");
    PREP(up_group, "INSERT OR REPLACE INTO qgroup(grp,topic,cfg) "
                   "VALUES(?,?,?)");
    PREP(up_off, "INSERT OR REPLACE INTO soffset(grp,topic,part,off) "
                 "VALUES(?,?,?,?)");
    PREP(del_group, "DELETE FROM qgroup WHERE grp=? AND topic=?");
    PREP(del_parts, "DELETE FROM qpart WHERE grp=? AND topic=?");
    PREP(del_granges, "DELETE FROM qrange WHERE grp=? AND topic=?");
#undef PREP

    sl_rd_init(&rd, p, len);
    while (sl_rd_left(&rd) > 0) {
        uint8_t op = sl_rd_u8(&rd);
        uint16_t gl, tl;
        const char *gn = sl_rd_str16(&rd, &gl);
        const char *tn = sl_rd_str16(&rd, &tl);
        SL_RD_CHECK(&rd);
        if (op == SL_OP_QPART) {
            int32_t part = (int32_t)sl_rd_u32(&rd);
            int64_t start = sl_rd_i64(&rd), cursor = sl_rd_i64(&rd);
            uint32_t n = sl_rd_u32(&rd);
            SL_RD_CHECK(&rd);
            sqlite3_reset(up_part);
            bind_str(up_part, 1, gn, gl);
            bind_str(up_part, 2, tn, tl);
            sqlite3_bind_int(up_part, 3, part);
            sqlite3_bind_int64(up_part, 4, start);
            sqlite3_bind_int64(up_part, 5, cursor);
            if (sqlite3_step(up_part) != SQLITE_DONE)
                goto err_db;
            sqlite3_reset(del_ranges);
            bind_str(del_ranges, 1, gn, gl);
            bind_str(del_ranges, 2, tn, tl);
            sqlite3_bind_int(del_ranges, 3, part);
            if (sqlite3_step(del_ranges) != SQLITE_DONE)
                goto err_db;
            for (uint32_t i = 0; i < n; i++) {
                int64_t first = sl_rd_i64(&rd), last = sl_rd_i64(&rd);
                uint8_t state = sl_rd_u8(&rd), reason = sl_rd_u8(&rd);
                uint16_t att = sl_rd_u16(&rd), fail = sl_rd_u16(&rd);
                int64_t due = sl_rd_i64(&rd), fms = sl_rd_i64(&rd),
                        lms = sl_rd_i64(&rd);
                SL_RD_CHECK(&rd);
                sqlite3_reset(ins_range);
                bind_str(ins_range, 1, gn, gl);
                bind_str(ins_range, 2, tn, tl);
                sqlite3_bind_int(ins_range, 3, part);
                sqlite3_bind_int64(ins_range, 4, first);
                sqlite3_bind_int64(ins_range, 5, last);
                sqlite3_bind_int(ins_range, 6, state);
                sqlite3_bind_int(ins_range, 7, reason);
                sqlite3_bind_int(ins_range, 8, att);
                sqlite3_bind_int(ins_range, 9, fail);
                sqlite3_bind_int64(ins_range, 10, due);
                sqlite3_bind_int64(ins_range, 11, fms);
                sqlite3_bind_int64(ins_range, 12, lms);
                if (sqlite3_step(ins_range) != SQLITE_DONE)
                    goto err_db;
            }
        } else if (op == SL_OP_QGROUP) {
            uint16_t cl;
            const char *cfg = sl_rd_str16(&rd, &cl);
            SL_RD_CHECK(&rd);
            sqlite3_reset(up_group);
            bind_str(up_group, 1, gn, gl);
            bind_str(up_group, 2, tn, tl);
            bind_str(up_group, 3, cfg, cl);
            if (sqlite3_step(up_group) != SQLITE_DONE)
                goto err_db;
        } else if (op == SL_OP_OFFSET) {
            int32_t part = (int32_t)sl_rd_u32(&rd);
            int64_t off = sl_rd_i64(&rd);
            SL_RD_CHECK(&rd);
            sqlite3_reset(up_off);
            bind_str(up_off, 1, gn, gl);
            bind_str(up_off, 2, tn, tl);
            sqlite3_bind_int(up_off, 3, part);
            sqlite3_bind_int64(up_off, 4, off);
            if (sqlite3_step(up_off) != SQLITE_DONE)
                goto err_db;
        } else if (op == SL_OP_TDEL) {
            static const char *const sqls[4] = {
                "DELETE FROM qgroup WHERE topic=?",
                "DELETE FROM qpart WHERE topic=?",
                "DELETE FROM qrange WHERE topic=?",
                "DELETE FROM soffset WHERE topic=?"};
            for (int i = 0; i < 4; i++) {
                sqlite3_stmt *st = NULL;
                int ok = sqlite3_prepare_v2(db, sqls[i], -1, &st, NULL) ==
                             SQLITE_OK &&
                         bind_str(st, 1, tn, tl) == SQLITE_OK &&
                         sqlite3_step(st) == SQLITE_DONE;
                sqlite3_finalize(st);
                if (!ok)
                    goto err_db;
            }
        } else if (op == SL_OP_SDEL) {
            sqlite3_stmt *st = NULL;
            int ok = sqlite3_prepare_v2(db, "DELETE FROM soffset WHERE grp=?",
                                        -1, &st, NULL) == SQLITE_OK &&
                     bind_str(st, 1, gn, gl) == SQLITE_OK &&
                     sqlite3_step(st) == SQLITE_DONE;
            sqlite3_finalize(st);
            if (!ok)
                goto err_db;
        } else if (op == SL_OP_SMEMBERS) {
            /* the state log's alone (sl_stream_load_members) */
            if (sl_stream_members_read(g, &rd, NULL) != SL_OK)
                goto err_parse;
        } else if (op == SL_OP_QDEL) {
            sqlite3_stmt *sts[3] = {del_group, del_parts, del_granges};
            for (int i = 0; i < 3; i++) {
                sqlite3_reset(sts[i]);
                bind_str(sts[i], 1, gn, gl);
                bind_str(sts[i], 2, tn, tl);
                if (sqlite3_step(sts[i]) != SQLITE_DONE)
                    goto err_db;
            }
        } else {
            goto err_parse;
        }
    }
    goto out;
err_db:
    sl_log(SL_ERROR, "groups", "groups.db write failed: %s",
           sqlite3_errmsg(db));
    rc = SL_ERR_STORAGE;
    goto out;
err_parse:
    sl_log(SL_ERROR, "groups", "internal: bad staged op buffer at %zu/%zu",
           rd.off, rd.len);
    rc = SL_ERR_UNKNOWN;
out:
    sqlite3_finalize(up_part);
    sqlite3_finalize(del_ranges);
    sqlite3_finalize(ins_range);
    sqlite3_finalize(up_group);
    sqlite3_finalize(up_off);
    sqlite3_finalize(del_group);
    sqlite3_finalize(del_parts);
    sqlite3_finalize(del_granges);
    return rc;
}

static void commit_observe(sl_groups *g, int64_t us)
{
    static const int64_t bounds[] = SL_GROUPS_COMMIT_BUCKETS_US;
    int i = 0;
    while (i < SL_GROUPS_HIST_NB - 1 && us > bounds[i])
        i++;
    __atomic_add_fetch(&g->commit_hist.count[i], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&g->commit_hist.sum_us, (uint64_t)us, __ATOMIC_RELAXED);
    __atomic_add_fetch(&g->commit_hist.n, 1, __ATOMIC_RELAXED);
}

void sl_groups_flush_hook(void *arg)
{
    sl_groups *g = arg;
    sl_stage *take = NULL, **tail = &take;
    uint64_t seq = 0;
    sl_err rc;

    /* db_mu first: buffers are applied in the order they were taken, also
     * when sl_groups_commit_now runs beside the hook thread. */
    pthread_mutex_lock(&g->db_mu);
    pthread_mutex_lock(&g->mu);
    while (stq_ready(g)) { /* the ready prefix, in one transaction */
        sl_stage *s = g->stq;
        g->stq = s->next;
        if (!g->stq)
            g->stq_tail = NULL;
        s->next = NULL;
        *tail = s;
        tail = &s->next;
        seq = s->seq;
    }
    pthread_mutex_unlock(&g->mu);
    if (!take) {
        pthread_mutex_unlock(&g->db_mu);
        return;
    }

    struct timespec t0, t1;
    size_t bytes = 0;
    for (sl_stage *s = take; s; s = s->next)
        bytes += s->buf.len;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = SL_OK;
    if (bytes > 0) /* else nothing changed: no transaction */
        rc = db_exec(g->db, "BEGIN IMMEDIATE");
    if (bytes > 0 && rc == SL_OK) {
        for (sl_stage *s = take; s && rc == SL_OK; s = s->next)
            rc = apply_ops(g, s->buf.p, s->buf.len);
        if (rc == SL_OK)
            rc = db_exec(g->db, "COMMIT");
        if (rc != SL_OK)
            db_exec(g->db, "ROLLBACK");
        else
            __atomic_add_fetch(&g->st.txns, 1, __ATOMIC_RELAXED);
    }
    if (bytes > 0 && rc == SL_OK) {
        struct timespec tc;
        clock_gettime(CLOCK_MONOTONIC, &tc);
        commit_observe(g, (int64_t)(tc.tv_sec - t0.tv_sec) * 1000000 +
                              (tc.tv_nsec - t0.tv_nsec) / 1000);
    }
    /* Published before db_mu is released: whoever takes db_mu next (the
     * hook thread, or sl_groups_commit_now) sees this commit's result. */
    pthread_mutex_lock(&g->mu);
    g->commit_err = rc;
    if (rc == SL_OK)
        g->committed_seq = seq;
    pthread_mutex_unlock(&g->mu);
    pthread_mutex_unlock(&g->db_mu);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    sl_log(SL_DEBUG, "groups", "commit: %zu bytes of state in %.2f ms: %s",
           bytes,
           (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
               (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
           sl_strerror(rc));
    while (take) {
        sl_stage *s = take;
        take = s->next;
        sl_wb_fini(&s->buf);
        free(s);
    }
}

static void complete_waiters(sl_groups *g)
{
    uint64_t committed;
    int err;
    pthread_mutex_lock(&g->mu);
    committed = g->committed_seq;
    err = g->commit_err;
    pthread_mutex_unlock(&g->mu);
    if (err) {
        g->st.commit_err = err;
        /* Failed: everything waiting fails; the state is re-staged. */
        while (g->waiters && g->waiters->seq <= g->staged_upto) {
            sl_waiter *w = g->waiters;
            g->waiters = w->next;
            w->cb(w->arg, (sl_err)err);
            free(w);
        }
        pthread_mutex_lock(&g->mu);
        g->commit_err = 0;
        pthread_mutex_unlock(&g->mu);
        g->need_stage = 1;
        sl_queue_mark_all_dirty(g);
    }
    if (g->env.replicate && g->repl_seq < committed)
        committed = g->repl_seq; /* and in the replicated state log */
    while (g->waiters && g->waiters->seq <= committed) {
        sl_waiter *w = g->waiters;
        g->waiters = w->next;
        w->cb(w->arg, SL_OK);
        free(w);
    }
    if (!g->waiters)
        g->waiters_tail = NULL;
}

void sl_groups_on_flushed(sl_groups *g)
{
    complete_waiters(g);
    sl_queue_on_flushed(g);
    /* Stage even if a buffer is still pending (appended: a later snapshot
     * of a window supersedes an earlier one), so what arrived during the
     * round makes the next round instead of the one after. At most once
     * per round, so the serialization cost stays per round. */
    if (g->need_stage && g->flusher && stage_due(g))
        stage_now(g);
}

void sl_groups_on_durable(sl_groups *g)
{
    int ready;
    sl_queue_on_flushed(g);
    pthread_mutex_lock(&g->mu);
    ready = g->stq && g->stq->token && stq_ready(g);
    pthread_mutex_unlock(&g->mu);
    if (ready && g->flusher) /* its round came: commit it now */
        sl_flusher_wake(g->flusher);
    if (g->need_stage && g->flusher && stage_due(g))
        stage_if_idle(g);
}

/* Wait until every staged buffer can commit (the rounds its records
 * need). @thread loop */
static void stq_wait_durable(sl_groups *g)
{
    uint64_t token;
    if (!g->flusher)
        return;
    pthread_mutex_lock(&g->mu);
    token = g->stq_tail ? g->stq_tail->token : 0;
    pthread_mutex_unlock(&g->mu);
    if (token)
        sl_flusher_wait_covered(g->flusher, token);
}

sl_err sl_groups_commit_now(sl_groups *g)
{
    sl_err rc;
    if (g->need_stage)
        stage_now(g);
    stq_wait_durable(g);
    sl_groups_flush_hook(g);
    pthread_mutex_lock(&g->mu);
    rc = g->commit_err;
    pthread_mutex_unlock(&g->mu);
    complete_waiters(g);
    sl_queue_on_flushed(g);
    if (g->need_stage) {
        stage_now(g);
        stq_wait_durable(g);
        sl_groups_flush_hook(g);
        complete_waiters(g);
    }
    return rc;
}

void sl_groups_wait(sl_groups *g, void (*cb)(void *arg, sl_err rc), void *arg)
{
    sl_waiter *w;
    uint64_t committed;
    pthread_mutex_lock(&g->mu);
    committed = g->committed_seq;
    pthread_mutex_unlock(&g->mu);
    if (g->env.replicate && g->repl_seq < committed)
        committed = g->repl_seq;
    if (committed >= g->seq && !g->waiters) {
        cb(arg, SL_OK);
        return;
    }
    w = calloc(1, sizeof(*w));
    if (!w) {
        cb(arg, SL_ERR_NOMEM);
        return;
    }
    w->seq = g->seq;
    w->cb = cb;
    w->arg = arg;
    if (g->waiters_tail)
        g->waiters_tail->next = w;
    else
        g->waiters = w;
    g->waiters_tail = w;
    if (g->need_stage && g->flusher) {
        if (!stq_pending(g))
            stage_now(g);
    } else if (g->flusher) {
        sl_flusher_wake(g->flusher);
    }
}

sl_err sl_groups_open(const char *data_dir, const sl_groups_env *env,
                      sl_flusher *flusher, sl_groups **out)
{
    sl_groups *g;
    sl_err rc;
    size_t n = strlen(data_dir) + 16;

    g = calloc(1, sizeof(*g));
    if (!g)
        return SL_ERR_NOMEM;
    pthread_mutex_init(&g->mu, NULL);
    pthread_mutex_init(&g->db_mu, NULL);
    g->env = *env;
    sl_qgroup_cfg_defaults(&g->qdefaults);
    g->flusher = flusher;
    g->wake_hint = INT64_MAX; /* until the first tick: report everything */
    g->next_consumer_id = 1;
    g->next_member_id = 1;
    g->path = malloc(n);
    if (!g->path) {
        rc = SL_ERR_NOMEM;
        goto out;
    }
    if (mkdir(data_dir, 0755) != 0 && errno != EEXIST) {
        rc = SL_ESYS(errno);
        sl_log(SL_ERROR, "groups", "mkdir %s: %s", data_dir, sl_strerror(rc));
        goto out;
    }
    snprintf(g->path, n, "%s/groups.db", data_dir);
    if (sqlite3_open_v2(g->path, &g->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                            SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        sl_log(SL_ERROR, "groups", "open %s: %s", g->path,
               g->db ? sqlite3_errmsg(g->db) : "out of memory");
        rc = SL_ERR_STORAGE;
        goto out;
    }
    sqlite3_busy_timeout(g->db, 5000);
    rc = db_exec(g->db, k_schema);
    if (rc != SL_OK)
        goto out;
    rc = sl_queue_load(g);
    if (rc != SL_OK)
        goto out;
    rc = sl_stream_load(g);
    if (rc != SL_OK)
        goto out;
    *out = g;
    return SL_OK;
out:
    sl_groups_free(g);
    return rc;
}

void sl_groups_free(sl_groups *g)
{
    if (!g)
        return;
    g->in_free = 1;
    while (g->waiters) {
        sl_waiter *w = g->waiters;
        g->waiters = w->next;
        w->cb(w->arg, SL_ERR_SHUTTING_DOWN);
        free(w);
    }
    sl_qgroup_free_all(g);
    sl_sgroup_free_all(g);
    free(g->dlqp);
    if (g->db)
        sqlite3_close(g->db);
    while (g->stq) {
        sl_stage *s = g->stq;
        g->stq = s->next;
        sl_wb_fini(&s->buf);
        free(s);
    }
    pthread_mutex_destroy(&g->mu);
    pthread_mutex_destroy(&g->db_mu);
    free(g->path);
    free(g);
}

void sl_groups_on_append(sl_groups *g, const char *topic, int32_t partition)
{
    sl_queue_on_append(g, topic, partition);
}

int64_t sl_groups_tick(sl_groups *g)
{
    int64_t now = sl_groups_now(g);
    int64_t a, b, r;
    g->in_tick = 1;
    g->tick_min = INT64_MAX;
    a = sl_queue_tick(g, now);
    b = sl_stream_tick(g, now);
    r = a < b ? a : b;
    /* Deferred (lazy) staging comes due. */
    if (g->need_stage && g->flusher && !g->stage_requested) {
        if (stage_due(g)) {
            stage_if_idle(g);
        } else {
            int64_t d = g->last_stage_ms + g->commit_interval_ms - now;
            if (d < r)
                r = d;
        }
    }
    g->in_tick = 0;
    if (g->tick_min - now < r)
        r = g->tick_min - now;
    if (r > 1000)
        r = 1000;
    if (r < 1)
        r = 1;
    g->wake_hint = now + r;
    return r;
}

void sl_groups_forget_topic(sl_groups *g, const char *topic)
{
    sl_queue_forget_topic(g, topic);
    sl_stream_forget_topic(g, topic);
    /* A topic re-created under the same name starts without group state,
     * also after a restart. */
    sl_groups_stage_delete(g, SL_OP_TDEL, "", topic);
}

void sl_groups_commit_hist(const sl_groups *g, sl_groups_hist *out)
{
    for (int i = 0; i < SL_GROUPS_HIST_NB; i++)
        out->count[i] =
            __atomic_load_n(&g->commit_hist.count[i], __ATOMIC_RELAXED);
    out->sum_us = __atomic_load_n(&g->commit_hist.sum_us, __ATOMIC_RELAXED);
    out->n = __atomic_load_n(&g->commit_hist.n, __ATOMIC_RELAXED);
}

void sl_groups_stats_get(const sl_groups *g, sl_groups_stats *out)
{
    *out = g->st;
    out->txns = __atomic_load_n(&g->st.txns, __ATOMIC_RELAXED);
}

sl_err sl_groups_describe(sl_groups *g, const char *group, sl_group_info **out)
{
    sl_group_info *info = calloc(1, sizeof(*info));
    sl_err rc;
    if (!info)
        return SL_ERR_NOMEM;
    snprintf(info->name, sizeof(info->name), "%s", group);
    rc = sl_queue_describe(g, group, info);
    if (rc == SL_ERR_UNKNOWN_GROUP)
        rc = sl_stream_describe(g, group, info);
    if (rc != SL_OK) {
        sl_group_info_free(info);
        return rc;
    }
    *out = info;
    return SL_OK;
}

void sl_group_info_free(sl_group_info *info)
{
    if (!info)
        return;
    for (size_t i = 0; i < info->nmembers; i++)
        free(info->members[i].assign);
    free(info->members);
    free(info->parts);
    free(info);
}

static int have_name(char **names, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], s))
            return 1;
    return 0;
}

sl_err sl_groups_list(sl_groups *g, char ***names_out, int **kinds_out,
                      size_t *count)
{
    size_t n = 0, cap = 0;
    char **names = NULL;
    int *kinds = NULL;
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < 2; k++) {
            sl_qgroup *qg = k == 1 ? g->qgroups : NULL;
            sl_sgroup *sg = k == 0 ? g->sgroups : NULL;
            while (qg || sg) {
                const char *nm = qg ? qg->name : sg->name;
                if (pass == 0) {
                    cap++;
                } else if (!have_name(names, n, nm)) {
                    names[n] = strdup(nm);
                    if (!names[n])
                        goto nomem;
                    kinds[n++] = k;
                }
                if (qg)
                    qg = qg->next;
                else
                    sg = sg->next;
            }
        }
        if (pass == 0) {
            names = calloc(cap + 1, sizeof(*names));
            kinds = calloc(cap + 1, sizeof(*kinds));
            if (!names || !kinds)
                goto nomem;
        }
    }
    *names_out = names;
    *kinds_out = kinds;
    *count = n;
    return SL_OK;
nomem:
    if (names)
        for (size_t i = 0; i < n; i++)
            free(names[i]);
    free(names);
    free(kinds);
    return SL_ERR_NOMEM;
}

/* ---- replication of group state (docs/cluster.md 6) -------------------- */

int sl_groups_ops_next(const uint8_t *ops, size_t len, size_t *off,
                       sl_gop *op)
{
    sl_rd rd;
    uint8_t code;
    if (*off >= len)
        return 0;
    sl_rd_init(&rd, ops + *off, len - *off);
    memset(op, 0, sizeof(*op));
    code = sl_rd_u8(&rd);
    op->group = sl_rd_str16(&rd, &op->group_len);
    op->topic = sl_rd_str16(&rd, &op->topic_len);
    op->partition = -1;
    switch (code) {
    case SL_OP_QPART: {
        uint32_t n;
        op->kind = 'q';
        op->partition = (int32_t)sl_rd_u32(&rd);
        sl_rd_i64(&rd);
        sl_rd_i64(&rd);
        n = sl_rd_u32(&rd);
        if (rd.err || n > (len - *off) / 46)
            return -1;
        sl_rd_bytes(&rd, (size_t)n * 46);
        break;
    }
    case SL_OP_QGROUP: {
        uint16_t cl;
        op->kind = 'q';
        sl_rd_str16(&rd, &cl);
        break;
    }
    case SL_OP_QDEL:
        op->kind = 'q';
        break;
    case SL_OP_OFFSET:
        op->kind = 's';
        op->partition = (int32_t)sl_rd_u32(&rd);
        sl_rd_i64(&rd);
        break;
    case SL_OP_SDEL:
        op->kind = 's';
        break;
    case SL_OP_TDEL:
        op->kind = 't';
        break;
    case SL_OP_SMEMBERS:
        op->kind = 'm';
        if (sl_stream_members_read(NULL, &rd, NULL) != SL_OK)
            return -1;
        break;
    default:
        return -1;
    }
    if (rd.err)
        return -1;
    op->p = ops + *off;
    op->len = rd.off;
    *off += rd.off;
    return 1;
}

void sl_groups_replicated(sl_groups *g, uint64_t seq, sl_err rc)
{
    if (seq > g->repl_seq)
        g->repl_seq = seq;
    if (rc != SL_OK) {
        /* Not in the replicated log: nobody is told it is done, and the
         * next round carries every window again in full. */
        while (g->waiters && g->waiters->seq <= seq) {
            sl_waiter *w = g->waiters;
            g->waiters = w->next;
            w->cb(w->arg, rc);
            free(w);
        }
        if (!g->waiters)
            g->waiters_tail = NULL;
        sl_queue_mark_all_dirty(g);
        for (sl_sgroup *sg = g->sgroups; sg; sg = sg->next)
            if (sg->generation > 0) /* a join answered with the error */
                sg->members_dirty = 1;
        sl_groups_mutated(g);
        return;
    }
    complete_waiters(g);
}

void sl_groups_fail_waiters(sl_groups *g, sl_err rc)
{
    while (g->waiters) {
        sl_waiter *w = g->waiters;
        g->waiters = w->next;
        w->cb(w->arg, rc);
        free(w);
    }
    g->waiters_tail = NULL;
}

void sl_groups_unload(sl_groups *g, int (*mine)(void *arg, const char *group),
                      void *arg)
{
    if (g->need_stage) /* refused by env.replicate: their waiters fail */
        stage_now(g);
    sl_qgroup_unload(g, mine, arg);
    sl_sgroup_unload(g, mine, arg);
}

/* The names of the groups that have rows in groups.db. */
static sl_err db_delete_mine(sl_groups *g,
                             int (*mine)(void *arg, const char *group),
                             void *arg)
{
    static const char *const dels[4] = {"DELETE FROM qgroup WHERE grp=?",
                                        "DELETE FROM qpart WHERE grp=?",
                                        "DELETE FROM qrange WHERE grp=?",
                                        "DELETE FROM soffset WHERE grp=?"};
    sqlite3_stmt *st = NULL;
    char **names = NULL;
    size_t n = 0, cap = 0;
    sl_err rc = SL_OK;
    if (sqlite3_prepare_v2(g->db,
                           "SELECT grp FROM qgroup UNION SELECT grp FROM "
                           "qpart UNION SELECT grp FROM qrange UNION SELECT "
                           "grp FROM soffset",
                           -1, &st, NULL) != SQLITE_OK)
        return SL_ERR_STORAGE;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *nm = (const char *)sqlite3_column_text(st, 0);
        if (!nm || !mine(arg, nm))
            continue;
        if (n == cap) {
            char **nn = realloc(names, (cap = cap ? cap * 2 : 16) *
                                           sizeof(*names));
            if (!nn) {
                rc = SL_ERR_NOMEM;
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(nm))) {
            rc = SL_ERR_NOMEM;
            break;
        }
        n++;
    }
    sqlite3_finalize(st);
    for (size_t i = 0; rc == SL_OK && i < n; i++)
        for (int k = 0; rc == SL_OK && k < 4; k++) {
            st = NULL;
            if (sqlite3_prepare_v2(g->db, dels[k], -1, &st, NULL) !=
                    SQLITE_OK ||
                sqlite3_bind_text(st, 1, names[i], -1, SQLITE_STATIC) !=
                    SQLITE_OK ||
                sqlite3_step(st) != SQLITE_DONE)
                rc = SL_ERR_STORAGE;
            sqlite3_finalize(st);
        }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

sl_err sl_groups_reload(sl_groups *g, int (*mine)(void *arg, const char *group),
                        void *arg, const uint8_t *ops, size_t len)
{
    sl_err rc;
    /* Whatever is staged reaches groups.db first, so nothing older can
     * overwrite the rows written here. */
    sl_groups_commit_now(g);
    pthread_mutex_lock(&g->db_mu);
    rc = db_exec(g->db, "BEGIN IMMEDIATE");
    if (rc == SL_OK) {
        rc = db_delete_mine(g, mine, arg);
        if (rc == SL_OK && len > 0)
            rc = apply_ops(g, ops, len);
        if (rc == SL_OK)
            rc = db_exec(g->db, "COMMIT");
        if (rc != SL_OK)
            db_exec(g->db, "ROLLBACK");
    }
    pthread_mutex_unlock(&g->db_mu);
    if (rc != SL_OK)
        return rc;
    g->load_mine = mine;
    g->load_arg = arg;
    rc = sl_queue_load(g);
    if (rc == SL_OK)
        rc = sl_stream_load(g);
    if (rc == SL_OK)
        rc = sl_stream_load_members(g, ops, len);
    g->load_mine = NULL;
    g->load_arg = NULL;
    return rc;
}
