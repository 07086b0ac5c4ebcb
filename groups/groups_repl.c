/*
 * groups_repl.c - the groups object in a cluster (docs/cluster.md 6): the
 * staged op buffers as the replicated group-state log carries them
 * (sl_groups_ops_next), their replication result completing or failing
 * the waiters, and a partition's groups unloaded when this node stops
 * coordinating them or reloaded from the log when it starts. The commits
 * themselves are groups.c's and groups_db.c's. @thread loop
 */
#include <stdlib.h>
#include <string.h>

#include "groups/internal.h"

/* ---- replication of group state (docs/cluster.md 6) -------------------- */

int sl_groups_ops_next(const uint8_t *ops, size_t len, size_t *off, sl_gop *op)
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
    sl_groups_complete_waiters(g);
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
        sl_groups_stage_now(g);
    sl_qgroup_unload(g, mine, arg);
    sl_sgroup_unload(g, mine, arg);
}

/* The names of the groups that have rows in groups.db. */
static sl_err db_delete_mine(sl_groups *g,
                             int (*mine)(void *arg, const char *group),
                             void *arg)
{
    static const char *const dels[4] = {
        "DELETE FROM qgroup WHERE grp=?", "DELETE FROM qpart WHERE grp=?",
        "DELETE FROM qrange WHERE grp=?", "DELETE FROM soffset WHERE grp=?"};
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
            char **nn =
                realloc(names, (cap = cap ? cap * 2 : 16) * sizeof(*names));
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
    rc = sl_groups_db_exec(g->db, "BEGIN IMMEDIATE");
    if (rc == SL_OK) {
        rc = db_delete_mine(g, mine, arg);
        if (rc == SL_OK && len > 0)
            rc = sl_groups_apply_ops(g, ops, len);
        if (rc == SL_OK)
            rc = sl_groups_db_exec(g->db, "COMMIT");
        if (rc != SL_OK)
            sl_groups_db_exec(g->db, "ROLLBACK");
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
