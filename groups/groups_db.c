/*
 * groups_db.c - groups.db, the flusher's side of the groups object
 * (groups.c has the design: one SQLite transaction per flusher round):
 * the hook that takes the ready prefix of the staged buffers and applies
 * them in one transaction, the op buffer applied as SQL, and the commit
 * time histogram. @thread flusher (the hook), under g->db_mu
 */
#include <stdlib.h>
#include <time.h>

#include "groups/internal.h"
#include "protocol/log.h"

sl_err sl_groups_db_exec(sqlite3 *db, const char *sql)
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
sl_err sl_groups_apply_ops(sl_groups *g, const uint8_t *p, size_t len)
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
    while (sl_groups_stq_ready(g)) { /* the ready prefix, in one transaction */
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
        rc = sl_groups_db_exec(g->db, "BEGIN IMMEDIATE");
    if (bytes > 0 && rc == SL_OK) {
        for (sl_stage *s = take; s && rc == SL_OK; s = s->next)
            rc = sl_groups_apply_ops(g, s->buf.p, s->buf.len);
        if (rc == SL_OK)
            rc = sl_groups_db_exec(g->db, "COMMIT");
        if (rc != SL_OK)
            sl_groups_db_exec(g->db, "ROLLBACK");
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
