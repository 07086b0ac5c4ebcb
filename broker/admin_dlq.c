/*
 * admin_dlq.c - the admin verbs of dead-letter topics: dlq.list,
 * dlq.show, dlq.purge, dlq.redrive (rate-limited, in steps).

 *
 * DLQ records are marked handled by the committed offsets of the stream
 * group "<dlq>.redrive" on the DLQ topic (what DLQ_REDRIVE already moved
 * past). dlq.purge commits that group to the log end: every record of the
 * DLQ counts as handled, the records stay until retention removes them.
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

/* ---- DLQ bookkeeping ----------------------------------------------------- */

void adm_redrive_group(const char *dlq, char *buf, size_t len)
{
    snprintf(buf, len, "%s.redrive", dlq);
}

/* Totals of a DLQ topic: records stored, and those not yet handled. */
int adm_dlq_counts(sl_broker *b, const char *dlq, int64_t *total,
                   int64_t *pending)
{
    sl_topic *t = dlq ? sl_topics_find(b->topics, dlq) : NULL;
    sl_groups *g = sl_ops_groups(b);
    char rg[300];
    *total = *pending = 0;
    if (!t)
        return 0;
    adm_redrive_group(dlq, rg, sizeof(rg));
    for (int32_t p = 0; p < t->nparts; p++) {
        sl_part *part = t->parts[p]->part;
        int64_t s = sl_part_start_offset(part), e = sl_part_end_offset(part);
        int64_t h = g ? sl_sgroup_committed(g, rg, dlq, p) : -1;
        *total += e - s;
        *pending += e - (h > s ? (h < e ? h : e) : s);
    }
    return 1;
}

/* ---- dead-letter topics -------------------------------------------------- */

sl_err v_dlq_list(sl_admin_call *x)
{
    sl_groups *g = adm_groups(x);
    const char *topic = adm_arg(x, "topic");
    qrows r;
    sl_err rc;
    if (adm_route(x, "dlq.list", &rc))
        return rc;
    rc = adm_queue_rows(g, &r);
    if (rc != SL_OK)
        return rc;
    sl_jw_obj(&x->j);
    sl_jw_key(&x->j, "dlqs");
    sl_jw_arr(&x->j);
    for (size_t i = 0; i < r.n; i++) {
        int64_t total, pending;
        if (!r.v[i].dlq[0] || (topic && *topic && strcmp(topic, r.v[i].topic)))
            continue;
        if (!adm_may_list(x, SL_RES_GROUP, r.v[i].group) &&
            !adm_may_list(x, SL_RES_TOPIC, r.v[i].dlq))
            continue;
        sl_jw_obj(&x->j);
        sl_jw_kstr(&x->j, "dlq_topic", r.v[i].dlq);
        sl_jw_kstr(&x->j, "source_topic", r.v[i].topic);
        sl_jw_kstr(&x->j, "group", r.v[i].group);
        sl_jw_key(&x->j, "exists");
        sl_jw_bool(&x->j, adm_dlq_counts(x->b, r.v[i].dlq, &total, &pending));
        sl_jw_ki64(&x->j, "pending", pending);
        sl_jw_ki64(&x->j, "total", total);
        sl_jw_end(&x->j);
    }
    sl_jw_end(&x->j);
    sl_jw_end(&x->j);
    free(r.v);
    return SL_OK;
}

sl_err v_dlq_purge(sl_admin_call *x)
{
    sl_groups *g = adm_groups(x);
    const char *dlq;
    sl_topic *t;
    char rg[300];
    int64_t total = 0, pending = 0;
    sl_err rc;
    if (adm_route(x, "dlq.purge", &rc))
        return rc;
    if (!g)
        return SL_ERR_UNKNOWN;
    if ((rc = adm_need(x, "dlq", &dlq)) != SL_OK ||
        (rc = adm_topic_or_fail(x, dlq, &t)) != SL_OK)
        return rc;
    adm_dlq_counts(x->b, dlq, &total, &pending);
    adm_redrive_group(dlq, rg, sizeof(rg));
    for (int32_t p = 0; p < t->nparts; p++) {
        rc = sl_sgroup_commit(g, rg, NULL, -1, dlq, p,
                              sl_part_end_offset(t->parts[p]->part));
        if (rc != SL_OK)
            return rc;
    }
    sl_log(SL_INFO, "admin", "purged DLQ %s: %lld record(s) marked handled",
           dlq, (long long)pending);
    x->wait = 1;
    sl_jw_obj(&x->j);
    sl_jw_kstr(&x->j, "dlq_topic", dlq);
    sl_jw_ki64(&x->j, "purged", pending);
    sl_jw_end(&x->j);
    return SL_OK;
}

/* The pending records of a DLQ (from the handled mark on), with headers. */
sl_err v_dlq_show(sl_admin_call *x)
{
    sl_groups *g = adm_groups(x);
    const char *dlq;
    sl_topic *t;
    char rg[300];
    int64_t count, n = 0, all;
    sl_err rc;
    if (adm_route(x, "dlq.show", &rc))
        return rc;
    if (!g)
        return SL_ERR_UNKNOWN;
    if ((rc = adm_need(x, "dlq", &dlq)) != SL_OK ||
        (rc = adm_topic_or_fail(x, dlq, &t)) != SL_OK ||
        (rc = adm_int_arg(x, "count", 1, PEEK_MAX, 100, &count)) != SL_OK ||
        (rc = adm_int_arg(x, "all", 0, 1, 0, &all)) != SL_OK)
        return rc;
    adm_redrive_group(dlq, rg, sizeof(rg));
    sl_jw_obj(&x->j);
    sl_jw_kstr(&x->j, "dlq_topic", dlq);
    {
        int64_t total, pending;
        adm_dlq_counts(x->b, dlq, &total, &pending);
        sl_jw_ki64(&x->j, "pending", pending);
        sl_jw_ki64(&x->j, "total", total);
    }
    sl_jw_key(&x->j, "records");
    sl_jw_arr(&x->j);
    for (int32_t p = 0; p < t->nparts && n < count; p++) {
        sl_part *part = t->parts[p]->part;
        sl_part_iter *it = NULL;
        sl_record rec;
        int64_t from = all ? -1 : sl_sgroup_committed(g, rg, dlq, p);
        int64_t end = sl_part_end_offset(part);
        if (from < sl_part_start_offset(part))
            from = sl_part_start_offset(part);
        if (from >= end || sl_part_iter_new(part, from, &it) != SL_OK)
            continue;
        while (n < count && sl_part_iter_next(it, &rec, NULL) &&
               rec.offset < end) {
            if (rec.offset < from)
                continue;
            adm_record_json(&x->j, p, &rec, -1);
            n++;
        }
        sl_part_iter_free(it);
    }
    sl_jw_end(&x->j);
    sl_jw_ki64(&x->j, "count", n);
    sl_jw_end(&x->j);
    return SL_OK;
}

void adm_finish(sl_admin_call *x, sl_err rc);

static void redrive_json(sl_admin_call *x)
{
    sl_jw_obj(&x->j);
    sl_jw_ki64(&x->j, "moved", x->moved);
    sl_jw_ki64(&x->j, "skipped", x->skipped);
    sl_jw_end(&x->j);
}

/* dlq.redrive: groups/dlq.c's engine, stepped on a timer for the rate
 * limit (as DLQ_REDRIVE does), answered once its progress is durable. */
typedef struct aredrive {
    sl_admin_call *x;
    sl_dlq_redrive *rd;
    struct event *timer;
} aredrive;

static void aredrive_free(aredrive *ar)
{
    if (ar->timer)
        event_free(ar->timer);
    sl_dlq_redrive_free(ar->rd);
    free(ar);
}

static void aredrive_committed(void *arg, sl_err rc)
{
    aredrive *ar = arg;
    sl_admin_call *x = ar->x;
    x->moved = sl_dlq_redrive_moved(ar->rd);
    x->skipped = sl_dlq_redrive_skipped(ar->rd);
    aredrive_free(ar);
    if (rc == SL_OK)
        redrive_json(x);
    else
        snprintf(x->msg, sizeof(x->msg), "redrive: progress not durable: %s",
                 sl_strerror(rc));
    adm_finish(x, rc);
}

static void aredrive_step(evutil_socket_t fd, short what, void *arg)
{
    aredrive *ar = arg;
    sl_groups *g = sl_ops_groups(ar->x->b);
    struct timeval tv = {0, SL_DLQ_REDRIVE_STEP_MS * 1000};
    (void)fd;
    (void)what;
    if (!g) {
        aredrive_committed(ar, SL_ERR_SHUTTING_DOWN);
        return;
    }
    if (sl_dlq_redrive_step(ar->rd, g)) {
        sl_groups_wait(g, aredrive_committed, ar);
        return;
    }
    evtimer_add(ar->timer, &tv);
}

sl_err v_dlq_redrive(sl_admin_call *x)
{
    sl_groups *g = adm_groups(x);
    sl_dlq_redrive_opts o;
    sl_dlq_sink sink = sl_ops_dlq_sink(x->b);
    const char *dlq;
    int64_t max, rate;
    aredrive *ar;
    sl_err rc;
    if (adm_route(x, "dlq.redrive", &rc))
        return rc;
    if (!g)
        return SL_ERR_UNKNOWN;
    if ((rc = adm_need(x, "dlq", &dlq)) != SL_OK ||
        (rc = adm_int_arg(x, "max", 0, INT64_MAX, 0, &max)) != SL_OK ||
        (rc = adm_int_arg(x, "rate", 0, UINT32_MAX, 0, &rate)) != SL_OK)
        return rc;
    memset(&o, 0, sizeof(o));
    o.dlq_topic = dlq;
    o.target = adm_arg(x, "to");
    o.reason = adm_arg(x, "reason");
    o.max = max > 0 ? max : -1;
    o.rate = (uint32_t)rate;
    ar = calloc(1, sizeof(*ar));
    if (!ar)
        return SL_ERR_NOMEM;
    ar->x = x;
    rc = sl_dlq_redrive_new(g, &o, &sink, &ar->rd);
    if (rc == SL_OK) {
        ar->timer = evtimer_new(sl_broker_base(x->b), aredrive_step, ar);
        if (!ar->timer)
            rc = SL_ERR_NOMEM;
    }
    if (rc != SL_OK) {
        if (rc == SL_ERR_UNKNOWN_TOPIC)
            snprintf(x->msg, sizeof(x->msg), "unknown topic '%.249s'", dlq);
        aredrive_free(ar);
        return rc;
    }
    /* The first step runs from the loop, so the answer never comes back
     * inside this call. */
    event_active(ar->timer, EV_TIMEOUT, 0);
    x->pending = 1;
    return SL_OK;
}
