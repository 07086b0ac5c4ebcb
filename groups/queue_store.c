/*
 * queue_store.c - queue groups: writing the window to groups.db and
 * loading it at start (the row layout is described under "Persistence" at
 * the top of queue.c; groups.c batches the commits).
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
            if (qp && qp->dirty && !qp->latest_pending) {
                sl_part *p = sl_q__qp_part(qp);
                stage_qpart(qp, wb);
                qp->dirty = 0;
                if (p && sl_part_get_cfg(p)->flush != SL_FLUSH_NEVER &&
                    qp->cursor > sl_part_durable_offset(p)) {
                    early = 1;
                    /* the round may not be started yet (a lazy append,
                     * sl_flusher_request_lazy): start it now */
                    if (g->flusher)
                        sl_flusher_request(g->flusher, p);
                }
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
    qp = sl_q__qp_new(qg, part, start);
    if (!qp)
        return NULL;
    if (cursor - start > 0 &&
        sl_q__qp_resize(qp, (int32_t)(cursor - start)) != SL_OK) {
        sl_q__qp_free(qp);
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
        const char *gn = (const char *)sqlite3_column_text(st, 0);
        const char *tn = (const char *)sqlite3_column_text(st, 1);
        if (g->load_mine && /* a reload: these groups only, existing topics */
            (!g->load_mine(g->load_arg, gn) ||
             g->env.partitions(g->env.ctx, tn) < 0 ||
             sl_groups_qgroup_find(g, gn, tn)))
            continue;
        sl_qgroup_cfg_from_text(&cfg, (const char *)sqlite3_column_text(st, 2));
        if (!sl_q__qg_new(g, (const char *)sqlite3_column_text(st, 0),
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
        if (!qg || (g->load_mine && !g->load_mine(g->load_arg, qg->name)))
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
        if (!qg || part < 0 || part >= qg->nparts || !qg->parts[part] ||
            (g->load_mine && !g->load_mine(g->load_arg, qg->name)))
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
            if (qg->parts[i] &&
                (!g->load_mine || g->load_mine(g->load_arg, qg->name))) {
                sl_qpart *qp = qg->parts[i];
                sl_part *p = sl_q__qp_part(qp);
                /* (not on a reload in a cluster: this replica of the log
                 * may still be catching up with its leader) */
                if (p && !g->load_mine && qp->cursor > sl_part_end_offset(p)) {
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
                sl_q__recount_keyed(qp);
                sl_q__advance_start(qp);
                sl_q__update_low_water(qg, qp);
            }
out:
    sqlite3_finalize(st);
    return rc;
}
