/*
 * admin_groups.c - the admin verbs of stream and queue groups: groups,
 * group, queues, queue.purge, queue.peek, group.reset, group.delete.

 * @thread loop
 */
#include "broker/admin_int.h"

#include <event2/event.h>

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/acl.h"
#include "broker/auth.h"
#include "broker/binary.h"
#include "broker/broker.h"
#include "broker/json.h"
#include "broker/ops_groups.h"
#include "broker/topic.h"
#include "groups/dlq.h"
#include "protocol/api.h"
#include "protocol/log.h"

/* ---- groups -------------------------------------------------------------- */

static const char *kind_name(int kind)
{
    return kind == 1 ? "queue" : "stream";
}

static void group_json(sl_broker *b, sl_jw *j, const sl_group_info *gi,
                       int detail)
{
    int64_t lag = 0, inflight = 0;
    sl_jw_obj(j);
    sl_jw_kstr(j, "name", gi->name);
    sl_jw_kstr(j, "kind", kind_name(gi->kind));
    sl_jw_kstr(j, "state", gi->state);
    sl_jw_ki64(j, "members", (int64_t)gi->nmembers);
    for (size_t i = 0; i < gi->nparts; i++) {
        lag += gi->parts[i].lag;
        if (gi->parts[i].acquired > 0)
            inflight += gi->parts[i].acquired;
    }
    sl_jw_ki64(j, "lag", lag);
    if (gi->kind == 1) {
        int64_t total, pending;
        sl_jw_ki64(j, "in_flight", inflight);
        sl_jw_kstr(j, "dlq_topic", gi->dlq_topic[0] ? gi->dlq_topic : NULL);
        if (adm_dlq_counts(b, gi->dlq_topic, &total, &pending)) {
            sl_jw_ki64(j, "dlq_total", total);
            sl_jw_ki64(j, "dlq_pending", pending);
        }
    } else {
        sl_jw_ki64(j, "generation", gi->generation);
    }
    if (detail) {
        sl_jw_key(j, "member_list");
        sl_jw_arr(j);
        for (size_t i = 0; i < gi->nmembers; i++) {
            const sl_gmember_info *m = &gi->members[i];
            sl_jw_obj(j);
            sl_jw_kstr(j, "id", m->id);
            sl_jw_kstr(j, "client", m->name);
            if (gi->kind == 1) {
                sl_jw_ki64(j, "held", m->held);
                sl_jw_ki64(j, "credits", m->credits);
            } else {
                sl_jw_key(j, "assignment");
                sl_jw_arr(j);
                for (size_t k = 0; k < m->nassign; k++) {
                    char tp[300];
                    snprintf(tp, sizeof(tp), "%s/%d", m->assign[k].topic,
                             (int)m->assign[k].partition);
                    sl_jw_str(j, tp);
                }
                sl_jw_end(j);
            }
            sl_jw_end(j);
        }
        sl_jw_end(j);
        sl_jw_key(j, "partitions");
        sl_jw_arr(j);
        for (size_t i = 0; i < gi->nparts; i++) {
            const sl_gpart_info *p = &gi->parts[i];
            sl_jw_obj(j);
            sl_jw_kstr(j, "topic", p->topic);
            sl_jw_ki64(j, "partition", p->partition);
            sl_jw_ki64(j, gi->kind == 1 ? "start_offset" : "committed",
                       p->start);
            sl_jw_ki64(j, "log_end", p->log_end);
            sl_jw_ki64(j, "lag", p->lag);
            if (gi->kind == 1) {
                sl_jw_ki64(j, "in_flight", p->acquired);
                sl_jw_ki64(j, "available", p->available);
                sl_jw_ki64(j, "delayed", p->delayed);
                sl_jw_ki64(j, "cursor", p->cursor);
            }
            sl_jw_end(j);
        }
        sl_jw_end(j);
    }
    sl_jw_end(j);
}

sl_err v_groups(sl_admin_call *x)
{
    sl_groups *g = adm_groups(x);
    char **names = NULL;
    int *kinds = NULL;
    size_t n = 0;
    sl_err rc;
    if (adm_route(x, "groups", &rc))
        return rc;
    if (!g)
        return SL_ERR_UNKNOWN;
    rc = sl_groups_list(g, &names, &kinds, &n);
    if (rc != SL_OK)
        return rc;
    sl_jw_obj(&x->j);
    sl_jw_key(&x->j, "groups");
    sl_jw_arr(&x->j);
    for (size_t i = 0; i < n; i++) {
        sl_group_info *gi = NULL;
        if (adm_may_list(x, SL_RES_GROUP, names[i]) &&
            sl_groups_describe(g, names[i], &gi) == SL_OK) {
            group_json(x->b, &x->j, gi, 0);
            sl_group_info_free(gi);
        }
        free(names[i]);
    }
    sl_jw_end(&x->j);
    sl_jw_end(&x->j);
    free(names);
    free(kinds);
    return SL_OK;
}

sl_err v_group(sl_admin_call *x)
{
    sl_groups *g = adm_groups(x);
    const char *name;
    sl_group_info *gi = NULL;
    sl_err rc;
    if (adm_route(x, "group", &rc))
        return rc;
    if (!g)
        return SL_ERR_UNKNOWN;
    rc = adm_need(x, "group", &name);
    if (rc != SL_OK)
        return rc;
    rc = sl_groups_describe(g, name, &gi);
    if (rc == SL_ERR_UNKNOWN_GROUP)
        snprintf(x->msg, sizeof(x->msg), "unknown group '%.249s'", name);
    if (rc != SL_OK)
        return rc;
    group_json(x->b, &x->j, gi, 1);
    sl_group_info_free(gi);
    return SL_OK;
}

/* ---- queues: every queue group x topic ----------------------------------- */

static void collect_q(void *arg, const char *group, const char *topic,
                      const char *dlq)
{
    qrows *r = arg;
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 16;
        qrow *nv = realloc(r->v, nc * sizeof(*nv));
        if (!nv) {
            r->nomem = 1;
            return;
        }
        r->v = nv;
        r->cap = nc;
    }
    snprintf(r->v[r->n].group, sizeof(r->v[r->n].group), "%s", group);
    snprintf(r->v[r->n].topic, sizeof(r->v[r->n].topic), "%s", topic);
    snprintf(r->v[r->n].dlq, sizeof(r->v[r->n].dlq), "%s", dlq ? dlq : "");
    r->n++;
}

static int cmp_qrow(const void *a, const void *b)
{
    const qrow *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    return c ? c : strcmp(x->group, y->group);
}

/* Every queue group x topic, sorted by topic then group; the caller frees
 * r->v (on success only). */
sl_err adm_queue_rows(sl_groups *g, qrows *r)
{
    if (!g)
        return SL_ERR_UNKNOWN;
    memset(r, 0, sizeof(*r));
    sl_groups_qgroup_foreach(g, collect_q, r);
    if (r->nomem) {
        free(r->v);
        return SL_ERR_NOMEM;
    }
    if (r->n)
        qsort(r->v, r->n, sizeof(*r->v), cmp_qrow);
    return SL_OK;
}

sl_err v_queues(sl_admin_call *x)
{
    sl_groups *g = adm_groups(x);
    qrows r;
    int64_t now = sl_now_ms();
    sl_err rc;
    if (adm_route(x, "queues", &rc))
        return rc;
    rc = adm_queue_rows(g, &r);
    if (rc != SL_OK)
        return rc;
    sl_jw_obj(&x->j);
    sl_jw_key(&x->j, "queues");
    sl_jw_arr(&x->j);
    for (size_t i = 0; i < r.n; i++) {
        sl_qgroup_summary s;
        int64_t total = 0, pending = 0;
        if (!adm_may_list(x, SL_RES_GROUP, r.v[i].group) ||
            sl_qgroup_summary_get(g, r.v[i].group, r.v[i].topic, &s) != SL_OK)
            continue;
        sl_jw_obj(&x->j);
        sl_jw_kstr(&x->j, "topic", r.v[i].topic);
        sl_jw_kstr(&x->j, "group", r.v[i].group);
        sl_jw_ki64(&x->j, "ready", s.ready);
        sl_jw_ki64(&x->j, "in_flight", s.in_flight);
        sl_jw_ki64(&x->j, "delayed", s.delayed);
        sl_jw_ki64(&x->j, "backlog", s.backlog);
        sl_jw_ki64(&x->j, "consumers", s.consumers);
        sl_jw_key(&x->j, "oldest_ready_age_ms");
        if (s.oldest_ready_ts >= 0)
            sl_jw_i64(&x->j,
                      now > s.oldest_ready_ts ? now - s.oldest_ready_ts : 0);
        else
            sl_jw_null(&x->j);
        sl_jw_kstr(&x->j, "dlq_topic", r.v[i].dlq[0] ? r.v[i].dlq : NULL);
        adm_dlq_counts(x->b, r.v[i].dlq[0] ? r.v[i].dlq : NULL, &total,
                       &pending);
        sl_jw_ki64(&x->j, "dlq_pending", pending);
        sl_jw_ki64(&x->j, "dlq_total", total);
        sl_jw_end(&x->j);
    }
    sl_jw_end(&x->j);
    sl_jw_end(&x->j);
    free(r.v);
    return SL_OK;
}

/* ---- purge, reset, delete, peek ------------------------------------------ */

/* Is (group, topic) a queue group? */
static int is_queue(sl_groups *g, const char *group, const char *topic)
{
    sl_qgroup_cfg cfg;
    return sl_qgroup_get_cfg(g, group, topic, &cfg) == SL_OK;
}

sl_err v_queue_purge(sl_admin_call *x)
{
    sl_groups *g = adm_groups(x);
    const char *topic, *group;
    sl_topic *t;
    int64_t dropped = 0;
    sl_err rc;
    if (adm_route(x, "queue.purge", &rc))
        return rc;
    if (!g)
        return SL_ERR_UNKNOWN;
    if ((rc = adm_need(x, "topic", &topic)) != SL_OK ||
        (rc = adm_need(x, "group", &group)) != SL_OK ||
        (rc = adm_topic_or_fail(x, topic, &t)) != SL_OK)
        return rc;
    if (!is_queue(g, group, topic)) {
        snprintf(x->msg, sizeof(x->msg),
                 "'%.200s' is not a queue group of topic '%.200s'", group,
                 topic);
        return SL_ERR_UNKNOWN_GROUP;
    }
    {
        sl_qgroup_summary s;
        if (sl_qgroup_summary_get(g, group, topic, &s) == SL_OK)
            dropped = s.backlog;
    }
    for (int32_t p = 0; p < t->nparts; p++) {
        rc = sl_qgroup_seek(g, group, topic, p,
                            sl_part_end_offset(t->parts[p]->part));
        if (rc != SL_OK)
            return rc;
    }
    sl_log(SL_INFO, "admin", "purged queue group %s on %s (%lld record(s))",
           group, topic, (long long)dropped);
    x->wait = 1;
    sl_jw_obj(&x->j);
    sl_jw_kstr(&x->j, "topic", topic);
    sl_jw_kstr(&x->j, "group", group);
    sl_jw_ki64(&x->j, "purged", dropped);
    sl_jw_end(&x->j);
    return SL_OK;
}

/* The offset of partition p that a reset "to" names. */
static sl_err reset_target(sl_admin_call *x, sl_part *part, const char *to,
                           int64_t value, int64_t *out)
{
    if (!strcmp(to, "earliest")) {
        *out = sl_part_start_offset(part);
    } else if (!strcmp(to, "latest")) {
        *out = sl_part_end_offset(part);
    } else if (!strcmp(to, "offset")) {
        *out = value;
    } else if (!strcmp(to, "time")) {
        sl_err rc = sl_part_offset_for_time(part, value, out);
        if (rc != SL_OK)
            return rc;
    } else {
        snprintf(x->msg, sizeof(x->msg),
                 "argument 'to': expected earliest, latest, offset or time, "
                 "not '%.64s'",
                 to);
        return SL_ERR_INVALID_ARG;
    }
    if (*out < sl_part_start_offset(part))
        *out = sl_part_start_offset(part);
    if (*out > sl_part_end_offset(part))
        *out = sl_part_end_offset(part);
    return SL_OK;
}

sl_err v_group_reset(sl_admin_call *x)
{
    sl_groups *g = adm_groups(x);
    const char *group, *topic, *to;
    sl_topic *t;
    int64_t value = 0;
    int queue;
    sl_err rc;
    if (adm_route(x, "group.reset", &rc))
        return rc;
    if (!g)
        return SL_ERR_UNKNOWN;
    if ((rc = adm_need(x, "group", &group)) != SL_OK ||
        (rc = adm_need(x, "topic", &topic)) != SL_OK ||
        (rc = adm_need(x, "to", &to)) != SL_OK ||
        (rc = adm_topic_or_fail(x, topic, &t)) != SL_OK)
        return rc;
    if (!strcmp(to, "offset") || !strcmp(to, "time")) {
        if (!adm_arg(x, "value")) {
            snprintf(x->msg, sizeof(x->msg),
                     "reset to %s needs argument 'value'", to);
            return SL_ERR_INVALID_ARG;
        }
        rc = adm_int_arg(x, "value", 0, INT64_MAX, 0, &value);
        if (rc != SL_OK)
            return rc;
    }
    queue = is_queue(g, group, topic);
    if (!queue) {
        sl_group_info *gi = NULL;
        if (sl_groups_describe(g, group, &gi) != SL_OK) {
            snprintf(x->msg, sizeof(x->msg), "unknown group '%.249s'", group);
            return SL_ERR_UNKNOWN_GROUP;
        }
        sl_group_info_free(gi);
        if (sl_sgroup_members(g, group) > 0) {
            snprintf(x->msg, sizeof(x->msg),
                     "stream group '%.200s' has %zu active member(s): stop "
                     "its consumers first (as Kafka requires)",
                     group, sl_sgroup_members(g, group));
            return SL_ERR_BUSY;
        }
    }
    sl_jw_obj(&x->j);
    sl_jw_kstr(&x->j, "group", group);
    sl_jw_kstr(&x->j, "topic", topic);
    sl_jw_kstr(&x->j, "kind", queue ? "queue" : "stream");
    sl_jw_key(&x->j, "partitions");
    sl_jw_arr(&x->j);
    for (int32_t p = 0; p < t->nparts; p++) {
        int64_t off;
        rc = reset_target(x, t->parts[p]->part, to, value, &off);
        if (rc != SL_OK)
            return rc;
        rc = queue ? sl_qgroup_seek(g, group, topic, p, off)
                   : sl_sgroup_commit(g, group, NULL, -1, topic, p, off);
        if (rc != SL_OK) {
            snprintf(x->msg, sizeof(x->msg), "reset of %.200s/%d: %s", topic,
                     (int)p, sl_strerror(rc));
            return rc;
        }
        sl_jw_obj(&x->j);
        sl_jw_ki64(&x->j, "partition", p);
        sl_jw_ki64(&x->j, "offset", off);
        sl_jw_end(&x->j);
    }
    sl_jw_end(&x->j);
    sl_jw_end(&x->j);
    sl_log(SL_INFO, "admin", "reset %s group %s on %s to %s",
           queue ? "queue" : "stream", group, topic, to);
    x->wait = 1;
    return SL_OK;
}

sl_err v_group_delete(sl_admin_call *x)
{
    sl_groups *g = adm_groups(x);
    const char *group;
    sl_err rq, rs;
    if (adm_route(x, "group.delete", &rq))
        return rq;
    if (!g)
        return SL_ERR_UNKNOWN;
    if ((rq = adm_need(x, "group", &group)) != SL_OK)
        return rq;
    rs = sl_sgroup_delete(g, group);
    if (rs == SL_ERR_BUSY) {
        snprintf(x->msg, sizeof(x->msg),
                 "stream group '%.200s' has active members: stop its "
                 "consumers first",
                 group);
        return rs;
    }
    rq = sl_qgroup_delete(g, group, NULL);
    if (rq != SL_OK && rs != SL_OK) {
        snprintf(x->msg, sizeof(x->msg), "unknown group '%.249s'", group);
        return SL_ERR_UNKNOWN_GROUP;
    }
    sl_log(SL_INFO, "admin", "deleted group %s", group);
    x->wait = 1;
    sl_jw_obj(&x->j);
    sl_jw_kstr(&x->j, "deleted", group);
    sl_jw_end(&x->j);
    return SL_OK;
}

static void peek_one(void *arg, int32_t partition, int64_t offset,
                     uint32_t attempts, const sl_record *rec)
{
    (void)offset;
    adm_record_json(arg, partition, rec, attempts);
}

sl_err v_queue_peek(sl_admin_call *x)
{
    sl_groups *g = adm_groups(x);
    const char *topic, *group;
    int64_t count, n;
    sl_err rc;
    if (adm_route(x, "queue.peek", &rc))
        return rc;
    if (!g)
        return SL_ERR_UNKNOWN;
    if ((rc = adm_need(x, "topic", &topic)) != SL_OK ||
        (rc = adm_need(x, "group", &group)) != SL_OK ||
        (rc = adm_int_arg(x, "count", 1, PEEK_MAX, 10, &count)) != SL_OK)
        return rc;
    sl_jw_obj(&x->j);
    sl_jw_key(&x->j, "records");
    sl_jw_arr(&x->j);
    n = sl_qgroup_peek(g, group, topic, count, peek_one, &x->j);
    if (n < 0) {
        snprintf(x->msg, sizeof(x->msg),
                 "'%.200s' is not a queue group of topic '%.200s'", group,
                 topic);
        return SL_ERR_UNKNOWN_GROUP;
    }
    sl_jw_end(&x->j);
    sl_jw_ki64(&x->j, "count", n);
    sl_jw_end(&x->j);
    return SL_OK;
}
