/*
 * binary_dlq.c - binary protocol handlers for dead-letter topics: 25
 * DLQ_LIST and 26 DLQ_REDRIVE (what `sluice dlq list|redrive` sends).
 * They only translate: the rules (which topics are dead-letter topics,
 * their depth, what a redrive moves, its rate limit and its progress)
 * are groups/dlq.c's. A redrive runs on a timer in steps of
 * SL_DLQ_REDRIVE_STEP_MS and is answered once its progress is durable.
 * @thread loop
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "broker/acl.h"
#include "broker/binary.h"
#include "broker/binary_groups.h"
#include "broker/broker.h"
#include "broker/config.h"
#include "broker/ops_groups.h"
#include "groups/dlq.h"
#include "protocol/api.h"
#include "protocol/log.h"

/* ---- 25 DLQ_LIST
 * -------------------------------------------------------------- */

typedef struct dlq_collect {
    sl_groups *g;
    sl_dlq_entry *e;
    char (*names)[3][SL_BG_NAME_MAX];
    size_t n, cap;
    int nomem;
} dlq_collect;

static void dlq_each(void *arg, const char *dlq, const char *topic,
                     const char *group)
{
    dlq_collect *dc = arg;
    if (dc->n == dc->cap) {
        size_t nc = dc->cap ? dc->cap * 2 : 16;
        sl_dlq_entry *ne = realloc(dc->e, nc * sizeof(*ne));
        if (!ne) {
            dc->nomem = 1;
            return;
        }
        dc->e = ne;
        char(*nn)[3][SL_BG_NAME_MAX] = realloc(dc->names, nc * sizeof(*nn));
        if (!nn) {
            dc->nomem = 1;
            return;
        }
        dc->names = nn;
        dc->cap = nc;
    }
    sl_dlq_entry *e = &dc->e[dc->n];
    snprintf(dc->names[dc->n][0], SL_BG_NAME_MAX, "%s", dlq);
    snprintf(dc->names[dc->n][1], SL_BG_NAME_MAX, "%s", topic);
    snprintf(dc->names[dc->n][2], SL_BG_NAME_MAX, "%s", group);
    memset(e, 0, sizeof(*e));
    e->depth = sl_dlq_depth(dc->g, dlq, &e->start_offset, &e->end_offset);
    if (e->depth < 0)
        e->depth = 0;
    dc->n++;
}

static void h_dlq_list(sl_broker *b, sl_conn *c, const sl_req *req, sl_reply *r)
{
    sl_dlq_list_req q;
    sl_dlq_list_resp resp;
    dlq_collect dc;
    char topic[SL_BG_NAME_MAX], group[SL_BG_NAME_MAX];
    int ftopic, fgroup;
    sl_groups *g = sl_bg_groups(b, r);
    sl_wb wb;
    size_t k = 0;
    if (!g)
        return;
    memset(&dc, 0, sizeof(dc));
    dc.g = g;
    sl_wb_init(&wb, 256);
    if (sl_dlq_list_req_decode(req->body, req->len, &q) != SL_OK) {
        sl_reply_error(r, SL_ERR_MALFORMED, "DLQ_LIST: malformed body");
        goto out;
    }
    ftopic = q.topic.p != NULL;
    fgroup = q.group.p != NULL;
    if ((ftopic && sl_bg_cstr(q.topic, topic, sizeof(topic))) ||
        (fgroup && sl_bg_cstr(q.group, group, sizeof(group)))) {
        sl_reply_error(r, SL_ERR_INVALID_ARG, "DLQ_LIST: bad filter");
        goto out;
    }
    sl_dlq_list(g, ftopic ? topic : NULL, fgroup ? group : NULL, dlq_each, &dc);
    if (dc.nomem) {
        sl_reply_error(r, SL_ERR_NOMEM, "DLQ_LIST: out of memory");
        goto out;
    }
    for (size_t i = 0; i < dc.n; i++) {
        /* the user's to see: describe on its group or on the DLQ topic */
        if (!sl_acl_conn_may_list(b, c, SL_RES_GROUP, dc.names[i][2]) &&
            !sl_acl_conn_may_list(b, c, SL_RES_TOPIC, dc.names[i][0]))
            continue;
        dc.e[k] = dc.e[i];
        dc.e[k].dlq_topic = sl_str_c(dc.names[i][0]);
        dc.e[k].source_topic = sl_str_c(dc.names[i][1]);
        dc.e[k].group = sl_str_c(dc.names[i][2]);
        k++;
    }
    memset(&resp, 0, sizeof(resp));
    resp.ndlqs = (uint32_t)k;
    resp.dlqs = dc.e;
    if (sl_dlq_list_resp_encode(&wb, req->correlation_id, &resp) != SL_OK)
        sl_reply_error(r, SL_ERR_NOMEM, "DLQ_LIST: encode failed");
    else
        sl_bg_reply_frame(r, &wb);
out:
    free(dc.e);
    free(dc.names);
    sl_wb_fini(&wb);
}

/* ---- 26 DLQ_REDRIVE
 * ------------------------------------------------------------ */

/* The engine is groups/dlq.c; this runs its steps on a timer (the rate
 * limit) and answers once its progress is durable. */
typedef struct redrive {
    sl_broker *b;
    sl_reply *r;
    uint32_t corr;
    sl_dlq_redrive *rd;
    struct event *timer;
    int cancelled;
} redrive;

static void redrive_finish(redrive *rd, sl_err rc);

static void redrive_step(evutil_socket_t fd, short what, void *arg)
{
    redrive *rd = arg;
    sl_groups *g = sl_ops_groups(rd->b);
    (void)fd;
    (void)what;
    if (!g) {
        redrive_finish(rd, SL_ERR_SHUTTING_DOWN);
        return;
    }
    if (sl_dlq_redrive_step(rd->rd, g)) {
        redrive_finish(rd, SL_OK);
        return;
    }
    struct timeval tv = {0, SL_DLQ_REDRIVE_STEP_MS * 1000};
    evtimer_add(rd->timer, &tv);
}

static void redrive_sent(void *arg, sl_err rc)
{
    redrive *rd = arg;
    if (!rd->cancelled) {
        sl_reply_set_cancel(rd->r, NULL, NULL);
        if (rc != SL_OK) {
            sl_reply_error(rd->r, rc, "DLQ_REDRIVE: progress not durable");
        } else {
            sl_dlq_redrive_resp resp;
            sl_wb wb;
            memset(&resp, 0, sizeof(resp));
            resp.moved = sl_dlq_redrive_moved(rd->rd);
            resp.skipped = sl_dlq_redrive_skipped(rd->rd);
            sl_wb_init(&wb, 64);
            sl_dlq_redrive_resp_encode(&wb, rd->corr, &resp);
            sl_bg_reply_frame(rd->r, &wb);
            sl_wb_fini(&wb);
        }
    }
    if (rd->timer)
        event_free(rd->timer);
    sl_dlq_redrive_free(rd->rd);
    free(rd);
}

static void redrive_finish(redrive *rd, sl_err rc)
{
    sl_groups *g = sl_ops_groups(rd->b);
    if (rc != SL_OK || !g) {
        redrive_sent(rd, rc != SL_OK ? rc : SL_ERR_SHUTTING_DOWN);
        return;
    }
    sl_groups_wait(g, redrive_sent, rd);
}

static void redrive_cancel(void *arg)
{
    redrive *rd = arg;
    rd->cancelled = 1;
    if (rd->timer && evtimer_pending(rd->timer, NULL)) {
        evtimer_del(rd->timer);
        redrive_sent(rd, SL_ERR_CLOSED);
    }
}

static void h_redrive(sl_broker *b, sl_conn *c, const sl_req *req, sl_reply *r)
{
    sl_dlq_redrive_req q;
    sl_dlq_redrive_opts o;
    sl_dlq_sink sink = sl_ops_dlq_sink(b);
    char dlq[SL_BG_NAME_MAX], target[SL_BG_NAME_MAX], reason[64];
    redrive *rd;
    char msg[400];
    sl_groups *g = sl_bg_groups(b, r);
    sl_err rc;
    (void)c;
    if (!g)
        return;
    if (sl_dlq_redrive_req_decode(req->body, req->len, &q) != SL_OK) {
        sl_reply_error(r, SL_ERR_MALFORMED, "DLQ_REDRIVE: malformed body");
        return;
    }
    memset(&o, 0, sizeof(o));
    target[0] = reason[0] = 0;
    if (sl_bg_cstr(q.dlq_topic, dlq, sizeof(dlq)) ||
        (q.target_topic.p &&
         sl_bg_cstr(q.target_topic, target, sizeof(target))) ||
        (q.reason.p && sl_bg_cstr(q.reason, reason, sizeof(reason)))) {
        sl_reply_error(r, SL_ERR_INVALID_ARG,
                       "DLQ_REDRIVE: bad topic, target or reason");
        return;
    }
    o.dlq_topic = dlq;
    o.target = target;
    o.reason = reason;
    o.max = q.max_records ? (int64_t)q.max_records : -1;
    o.rate = q.rate_per_sec;
    rd = calloc(1, sizeof(*rd));
    if (!rd) {
        sl_reply_error(r, SL_ERR_NOMEM, "DLQ_REDRIVE: out of memory");
        return;
    }
    rd->b = b;
    rd->r = r;
    rd->corr = req->correlation_id;
    rc = sl_dlq_redrive_new(g, &o, &sink, &rd->rd);
    if (rc == SL_ERR_UNKNOWN_TOPIC) {
        free(rd);
        snprintf(msg, sizeof(msg), "DLQ_REDRIVE: unknown topic %.*s",
                 (int)q.dlq_topic.len, q.dlq_topic.p);
        sl_reply_error(r, SL_ERR_UNKNOWN_TOPIC, msg);
        return;
    }
    if (rc == SL_OK)
        rd->timer = evtimer_new(sl_broker_base(b), redrive_step, rd);
    if (rc != SL_OK || !rd->timer) {
        sl_dlq_redrive_free(rd->rd);
        free(rd);
        sl_reply_error(r, SL_ERR_NOMEM, "DLQ_REDRIVE: out of memory");
        return;
    }
    sl_reply_set_cancel(r, redrive_cancel, rd);
    redrive_step(-1, 0, rd);
}

void sl_bg_dlq_register(sl_broker *b)
{
    sl_binary_register(b, SL_API_DLQ_LIST, 1, 1, h_dlq_list);
    sl_binary_register(b, SL_API_DLQ_REDRIVE, 1, 1, h_redrive);
}
