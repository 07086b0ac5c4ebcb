/*
 * queue_mgmt.c - queue groups: describe, summaries, seek and peek for the
 * management verbs (admin API, HTTP, CLI).
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
            const char *dt = sl_q__dlq_topic(qg, tb, sizeof(tb));
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
            sp = sl_q__qp_part(qp);
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
    return e->state == SL_Q_AVAIL && e->t <= now && !(e->flags & SL_QE_DELAYED);
}

sl_err sl_qgroup_summary_get(sl_groups *g, const char *group, const char *topic,
                             sl_qgroup_summary *out)
{
    sl_qgroup *qg = sl_groups_qgroup_find(g, group, topic);
    sl_qgroup_summary s;
    int64_t now = sl_groups_now(g);
    if (!qg)
        return SL_ERR_UNKNOWN_GROUP;
    sl_q__qg_sync_parts(qg);
    memset(&s, 0, sizeof(s));
    s.oldest_ready_ts = -1;
    s.st = qg->st;
    for (sl_qconsumer *c = qg->consumers; c; c = c->next)
        s.consumers++;
    for (int32_t i = 0; i < qg->nparts; i++) {
        sl_qpart *qp = qg->parts[i];
        sl_part *p;
        int64_t first = -1, upto;
        sl_record rec;
        if (!qp || !(p = sl_q__qp_part(qp)))
            continue;
        upto = sl_q__qp_upto(qp);
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
        if (first >= 0 && sl_q__reread(qp, first, &rec) == 1 &&
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
    sl_q__qg_sync_parts(qg);
    if (partition < 0 || partition >= qg->nparts || !qg->parts[partition])
        return SL_ERR_UNKNOWN_PARTITION;
    qp = qg->parts[partition];
    if (!(p = sl_q__qp_part(qp)))
        return SL_ERR_UNKNOWN_PARTITION;
    if (g->env.need_from && offset < sl_part_start_offset(p))
        g->env.need_from(g->env.ctx, topic, partition, offset);
    if (offset < sl_part_start_offset(p))
        offset = sl_part_start_offset(p);
    if (offset > sl_part_end_offset(p))
        offset = sl_part_end_offset(p);
    /* Records held by consumers are forgotten: their settlements fail
     * with NOT_ACQUIRED from now on (the offsets left the window). */
    for (int64_t o = qp->start; o < qp->cursor; o++) {
        sl_qent *e = ent(qp, o);
        if (e->state == SL_Q_ACQ) {
            sl_qconsumer *c = sl_q__consumer_by_id(qg, e->consumer);
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
    sl_q__update_low_water(qg, qp);
    sl_q__qp_dirty(qp);
    sl_log(SL_INFO, "groups", "queue group %s on %s/%d moved to offset %lld",
           qg->name, qg->topic, partition, (long long)offset);
    if (sl_q__qg_wants(qg))
        sl_q__pump(qg);
    return SL_OK;
}

int64_t sl_qgroup_peek(sl_groups *g, const char *group, const char *topic,
                       int64_t max, sl_qpeek_fn fn, void *arg)
{
    sl_qgroup *qg = sl_groups_qgroup_find(g, group, topic);
    int64_t n = 0, now = sl_groups_now(g);
    if (!qg)
        return -1;
    sl_q__qg_sync_parts(qg);
    for (int32_t i = 0; i < qg->nparts && n < max; i++) {
        sl_qpart *qp = qg->parts[i];
        sl_part *p;
        sl_part_iter *it = NULL;
        sl_record rec;
        int64_t upto, from;
        if (!qp || !(p = sl_q__qp_part(qp)))
            continue;
        for (int64_t o = qp->start; o < qp->cursor && n < max; o++) {
            sl_qent *e = ent(qp, o);
            if (ent_ready(e, now) && sl_q__reread(qp, o, &rec) == 1) {
                fn(arg, i, o, e->attempts, &rec);
                n++;
            }
        }
        upto = sl_q__qp_upto(qp);
        from = qp->cursor;
        if (from < sl_part_start_offset(p))
            from = sl_part_start_offset(p);
        if (n >= max || from >= upto || sl_part_iter_new(p, from, &it) != SL_OK)
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

void sl_groups_set_draining(sl_groups *g, int on)
{
    g->draining = on != 0;
    if (!on)
        for (sl_qgroup *qg = g->qgroups; qg; qg = qg->next)
            sl_q__pump(qg);
}

int64_t sl_groups_in_flight(sl_groups *g)
{
    int64_t n = 0;
    for (sl_qgroup *qg = g->qgroups; qg; qg = qg->next)
        for (int32_t i = 0; i < qg->nparts; i++)
            if (qg->parts[i])
                n += qg->parts[i]->n_acq;
    return n;
}
