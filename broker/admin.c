/*
 * admin.c - the management verbs (admin.h) and the ADMIN binary api.
 *
 * Vocabulary for operators coming from RabbitMQ or Kafka:
 *   ready      records a consumer of the queue group could get now
 *              (RabbitMQ "messages_ready")
 *   in_flight  acquired and not yet settled ("messages_unacknowledged")
 *   delayed    available but not due yet (not-before header, nack backoff)
 *   dlq        the dead-letter topic: total records in it, and pending
 *              ones (not yet redriven or purged: the depth to alert on)
 *
 * DLQ records are marked handled by the committed offsets of the stream
 * group "<dlq>.redrive" on the DLQ topic (what DLQ_REDRIVE already moved
 * past). dlq.purge commits that group to the log end: every record of the
 * DLQ counts as handled, the records stay until retention removes them.
 * @thread loop
 */
#include "broker/admin.h"

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
#include "groups/dlq.h"
#include "protocol/api.h"
#include "protocol/log.h"

#define PEEK_MAX 1000

/* Calls still running (waiting for a commit or a redrive) are on
 * b->admin_calls: cancelled at module fini, so nothing answers into a
 * freed HTTP request or reply. */
struct sl_admin_call {
    sl_admin_call *next, *prev; /* b->admin_calls */
    sl_broker *b;
    const sl_admin_args *args;
    struct evbuffer *out;
    sl_jw j;
    char msg[512];
    int wait;      /* answer after the groups commit */
    int pending;   /* the verb answers later itself (finish) */
    int in_verb;   /* inside the verb function */
    sl_err later_rc;
    int64_t moved, skipped;
    int later_done;
    int cancelled; /* the requester went away */
    sl_admin_done_fn done;
    void *arg;
};

typedef sl_err (*verb_fn)(sl_admin_call *x);

/* Listings show what the caller may describe (broker/acl.c). */
static int may_list(const sl_admin_call *x, int kind, const char *name)
{
    return sl_acl_may_list(x->b, x->args->user, x->args->admin, kind, name);
}

/* ---- arguments ----------------------------------------------------------- */

static const char *arg(const sl_admin_call *x, const char *k)
{
    for (size_t i = 0; i < x->args->n; i++)
        if (!strcmp(x->args->keys[i], k))
            return x->args->values[i];
    return NULL;
}

static sl_err need(sl_admin_call *x, const char *k, const char **out)
{
    const char *v = arg(x, k);
    if (!v || !*v) {
        snprintf(x->msg, sizeof(x->msg), "missing argument '%s'", k);
        return SL_ERR_INVALID_ARG;
    }
    *out = v;
    return SL_OK;
}

static sl_err int_arg(sl_admin_call *x, const char *k, int64_t lo, int64_t hi,
                      int64_t dflt, int64_t *out)
{
    const char *v = arg(x, k);
    char *end;
    long long n;
    if (!v || !*v) {
        *out = dflt;
        return SL_OK;
    }
    n = strtoll(v, &end, 10);
    if (*end || n < lo || n > hi) {
        snprintf(x->msg, sizeof(x->msg),
                 "argument '%s': expected a number in %lld..%lld, not '%.64s'",
                 k, (long long)lo, (long long)hi, v);
        return SL_ERR_INVALID_ARG;
    }
    *out = n;
    return SL_OK;
}

static sl_groups *groups(sl_admin_call *x)
{
    sl_groups *g = sl_ops_groups(x->b);
    if (!g)
        snprintf(x->msg, sizeof(x->msg), "groups are not available");
    return g;
}

static sl_err topic_or_fail(sl_admin_call *x, const char *name, sl_topic **t)
{
    *t = sl_topics_find(x->b->topics, name);
    if (!*t) {
        snprintf(x->msg, sizeof(x->msg), "unknown topic '%.249s'", name);
        return SL_ERR_UNKNOWN_TOPIC;
    }
    return SL_OK;
}

/* ---- records as JSON ------------------------------------------------------ */

static void record_json(sl_jw *j, int32_t partition, const sl_record *rec,
                        int64_t attempts)
{
    sl_header_iter hi;
    sl_header h;
    sl_jw_obj(j);
    sl_jw_ki64(j, "partition", partition);
    sl_jw_ki64(j, "offset", rec->offset);
    sl_jw_ki64(j, "timestamp", rec->timestamp);
    sl_jw_key(j, "key");
    if (rec->key)
        sl_jw_strn(j, rec->key, (size_t)rec->key_len);
    else
        sl_jw_null(j);
    sl_jw_key(j, "value");
    if (rec->value)
        sl_jw_strn(j, rec->value, (size_t)rec->value_len);
    else
        sl_jw_null(j);
    sl_jw_key(j, "headers");
    sl_jw_obj(j);
    sl_record_headers_begin(rec, &hi);
    while (sl_record_headers_next(&hi, &h) == SL_OK) {
        char k[256];
        snprintf(k, sizeof(k), "%.*s", (int)h.key_len, h.key);
        sl_jw_key(j, k);
        if (h.value)
            sl_jw_strn(j, h.value, h.value_len);
        else
            sl_jw_null(j);
    }
    sl_jw_end(j);
    if (attempts >= 0)
        sl_jw_ki64(j, "attempts", attempts);
    sl_jw_end(j);
}

/* ---- DLQ bookkeeping -------------------------------------------------------
 */

static void redrive_group(const char *dlq, char *buf, size_t len)
{
    snprintf(buf, len, "%s.redrive", dlq);
}

/* Totals of a DLQ topic: records stored, and those not yet handled. */
static int dlq_counts(sl_broker *b, const char *dlq, int64_t *total,
                      int64_t *pending)
{
    sl_topic *t = dlq ? sl_topics_find(b->topics, dlq) : NULL;
    sl_groups *g = sl_ops_groups(b);
    char rg[300];
    *total = *pending = 0;
    if (!t)
        return 0;
    redrive_group(dlq, rg, sizeof(rg));
    for (int32_t p = 0; p < t->nparts; p++) {
        sl_part *part = t->parts[p]->part;
        int64_t s = sl_part_start_offset(part), e = sl_part_end_offset(part);
        int64_t h = g ? sl_sgroup_committed(g, rg, dlq, p) : -1;
        *total += e - s;
        *pending += e - (h > s ? (h < e ? h : e) : s);
    }
    return 1;
}

/* ---- status and version ------------------------------------------------- */

static sl_err v_version(sl_admin_call *x)
{
    sl_jw_obj(&x->j);
    sl_jw_kstr(&x->j, "version", SL_BROKER_VERSION);
    sl_jw_kstr(&x->j, "server", "sluiced");
    sl_jw_end(&x->j);
    return SL_OK;
}

static sl_err v_status(sl_admin_call *x)
{
    sl_broker *b = x->b;
    char host[256] = "";
    int64_t now = sl_now_ms();
    gethostname(host, sizeof(host) - 1);
    sl_jw_obj(&x->j);
    sl_jw_kstr(&x->j, "version", SL_BROKER_VERSION);
    sl_jw_ki64(&x->j, "started_ms", x->b->started_ms);
    sl_jw_ki64(&x->j, "uptime_s", (now - x->b->started_ms) / 1000);
    sl_jw_kstr(&x->j, "data_dir", b->cfg.data);
    sl_jw_key(&x->j, "listeners");
    sl_jw_obj(&x->j);
    sl_jw_kstr(&x->j, "binary", b->bin_addr);
    sl_jw_kstr(&x->j, "stomp", b->stomp_addr);
    sl_jw_kstr(&x->j, "http", sl_broker_http_addr(b));
    sl_jw_end(&x->j);
    sl_jw_key(&x->j, "node");
    sl_jw_obj(&x->j);
    sl_jw_kstr(&x->j, "hostname", host);
    sl_jw_ki64(&x->j, "pid", (int64_t)getpid());
    sl_jw_kstr(&x->j, "role", "standalone");
    sl_jw_end(&x->j);
    sl_jw_ki64(&x->j, "topics", (int64_t)sl_topics_count(b->topics));
    sl_jw_ki64(&x->j, "connections", (int64_t)b->nconns);
    sl_jw_key(&x->j, "ready");
    sl_jw_bool(&x->j, !b->stopping);
    sl_jw_end(&x->j);
    return SL_OK;
}

/* ---- topics --------------------------------------------------------------- */

static void topic_json(sl_jw *j, sl_topic *t, int detail)
{
    int64_t records = 0, bytes = 0;
    sl_jw_obj(j);
    sl_jw_kstr(j, "name", t->name);
    sl_jw_ki64(j, "partition_count", t->nparts);
    if (detail) {
        sl_jw_key(j, "partitions");
        sl_jw_arr(j);
    }
    for (int32_t p = 0; p < t->nparts; p++) {
        sl_part *part = t->parts[p]->part;
        size_t nsegs = 0;
        int64_t s = sl_part_start_offset(part), e = sl_part_end_offset(part);
        int64_t sz = (int64_t)sl_part_size_bytes(part, &nsegs);
        records += e - s;
        bytes += sz;
        if (detail) {
            sl_jw_obj(j);
            sl_jw_ki64(j, "partition", p);
            sl_jw_ki64(j, "start_offset", s);
            sl_jw_ki64(j, "end_offset", e);
            sl_jw_ki64(j, "durable_offset", sl_part_durable_offset(part));
            sl_jw_ki64(j, "records", e - s);
            sl_jw_ki64(j, "bytes", sz);
            sl_jw_ki64(j, "segments", (int64_t)nsegs);
            sl_jw_end(j);
        }
    }
    if (detail)
        sl_jw_end(j);
    sl_jw_ki64(j, "records", records);
    sl_jw_ki64(j, "bytes", bytes);
    sl_jw_key(j, "configs");
    sl_jw_obj(j);
    for (size_t i = 0; i < t->ncfg; i++)
        sl_jw_kstr(j, t->cfg_keys[i], t->cfg_values[i]);
    sl_jw_end(j);
    sl_jw_end(j);
}

static sl_err v_topics(sl_admin_call *x)
{
    size_t n;
    sl_topic **all = sl_topics_sorted(x->b->topics, &n);
    sl_jw_obj(&x->j);
    sl_jw_key(&x->j, "topics");
    sl_jw_arr(&x->j);
    for (size_t i = 0; i < n; i++)
        if (may_list(x, SL_RES_TOPIC, all[i]->name))
            topic_json(&x->j, all[i], 0);
    sl_jw_end(&x->j);
    sl_jw_end(&x->j);
    free(all);
    return SL_OK;
}

static sl_err v_topic(sl_admin_call *x)
{
    const char *name;
    sl_topic *t;
    sl_err rc = need(x, "topic", &name);
    if (rc == SL_OK)
        rc = topic_or_fail(x, name, &t);
    if (rc == SL_OK)
        topic_json(&x->j, t, 1);
    return rc;
}

/* "config" arguments: k=v each. Fills parallel arrays (borrowing into
 * copies the caller frees with free(*buf)). */
static sl_err config_args(sl_admin_call *x, const char ***keys,
                          const char ***values, size_t *n, char **buf)
{
    size_t cnt = 0, total = 0, k = 0;
    char *p;
    for (size_t i = 0; i < x->args->n; i++)
        if (!strcmp(x->args->keys[i], "config")) {
            cnt++;
            total += strlen(x->args->values[i]) + 1;
        }
    *keys = calloc(cnt + 1, sizeof(char *));
    *values = calloc(cnt + 1, sizeof(char *));
    *buf = p = malloc(total + 1);
    if (!*keys || !*values || !p)
        return SL_ERR_NOMEM;
    for (size_t i = 0; i < x->args->n; i++) {
        char *eq;
        if (strcmp(x->args->keys[i], "config"))
            continue;
        strcpy(p, x->args->values[i]);
        eq = strchr(p, '=');
        if (!eq || eq == p) {
            snprintf(x->msg, sizeof(x->msg),
                     "config '%.200s': expected key=value", p);
            return SL_ERR_INVALID_CONFIG;
        }
        *eq = 0;
        (*keys)[k] = p;
        (*values)[k] = eq + 1;
        k++;
        p = eq + 1 + strlen(eq + 1) + 1;
    }
    *n = k;
    return SL_OK;
}

static sl_err v_topic_create(sl_admin_call *x)
{
    const char *name, **keys = NULL, **values = NULL;
    char *buf = NULL;
    size_t n = 0;
    int64_t parts;
    sl_err rc = need(x, "topic", &name);
    if (rc == SL_OK)
        rc = int_arg(x, "partitions", 0, 10000, 0, &parts);
    if (rc == SL_OK)
        rc = config_args(x, &keys, &values, &n, &buf);
    if (rc == SL_OK)
        rc = sl_ops_topic_create(x->b, name, (int32_t)parts, keys, values, n,
                                 x->msg, sizeof(x->msg));
    if (rc == SL_OK)
        topic_json(&x->j, sl_topics_find(x->b->topics, name), 1);
    free(keys);
    free(values);
    free(buf);
    return rc;
}

static sl_err v_topic_delete(sl_admin_call *x)
{
    const char *name;
    sl_topic *t;
    sl_err rc = need(x, "topic", &name);
    if (rc == SL_OK)
        rc = topic_or_fail(x, name, &t);
    if (rc == SL_OK)
        rc = sl_ops_topic_delete(x->b, name);
    if (rc == SL_OK) {
        sl_jw_obj(&x->j);
        sl_jw_kstr(&x->j, "deleted", name);
        sl_jw_end(&x->j);
    }
    return rc;
}

static sl_err v_topic_alter(sl_admin_call *x)
{
    const char *name, **keys = NULL, **values = NULL;
    char *buf = NULL;
    size_t n = 0;
    sl_topic *t;
    sl_err rc = need(x, "topic", &name);
    if (rc == SL_OK)
        rc = topic_or_fail(x, name, &t);
    if (rc == SL_OK)
        rc = config_args(x, &keys, &values, &n, &buf);
    if (rc == SL_OK && n == 0) {
        snprintf(x->msg, sizeof(x->msg), "topic.alter: no config=k=v given");
        rc = SL_ERR_INVALID_ARG;
    }
    if (rc == SL_OK)
        rc = sl_topics_alter(x->b->topics, t, keys, values, n, x->msg,
                             sizeof(x->msg));
    if (rc == SL_OK)
        topic_json(&x->j, t, 1);
    free(keys);
    free(values);
    free(buf);
    return rc;
}

static sl_err v_topic_add_partitions(sl_admin_call *x)
{
    const char *name;
    sl_topic *t;
    int64_t count;
    sl_err rc = need(x, "topic", &name);
    if (rc == SL_OK)
        rc = topic_or_fail(x, name, &t);
    if (rc == SL_OK)
        rc = int_arg(x, "count", 1, 10000, -1, &count);
    if (rc == SL_OK && count < 0) {
        snprintf(x->msg, sizeof(x->msg), "missing argument 'count'");
        rc = SL_ERR_INVALID_ARG;
    }
    if (rc == SL_OK)
        rc = sl_topics_add_partitions(x->b->topics, t, (int32_t)count, x->msg,
                                      sizeof(x->msg));
    if (rc == SL_OK)
        topic_json(&x->j, t, 1);
    return rc;
}

/* ---- groups ----------------------------------------------------------------
 */

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
        if (dlq_counts(b, gi->dlq_topic, &total, &pending)) {
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

static sl_err v_groups(sl_admin_call *x)
{
    sl_groups *g = groups(x);
    char **names = NULL;
    int *kinds = NULL;
    size_t n = 0;
    sl_err rc;
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
        if (may_list(x, SL_RES_GROUP, names[i]) &&
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

static sl_err v_group(sl_admin_call *x)
{
    sl_groups *g = groups(x);
    const char *name;
    sl_group_info *gi = NULL;
    sl_err rc;
    if (!g)
        return SL_ERR_UNKNOWN;
    rc = need(x, "group", &name);
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

/* ---- queues: every queue group x topic -------------------------------------
 */

typedef struct qrow {
    char group[256], topic[256], dlq[256];
} qrow;

typedef struct qrows {
    qrow *v;
    size_t n, cap;
    int nomem;
} qrows;

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
static sl_err queue_rows(sl_groups *g, qrows *r)
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

static sl_err v_queues(sl_admin_call *x)
{
    sl_groups *g = groups(x);
    qrows r;
    int64_t now = sl_now_ms();
    sl_err rc = queue_rows(g, &r);
    if (rc != SL_OK)
        return rc;
    sl_jw_obj(&x->j);
    sl_jw_key(&x->j, "queues");
    sl_jw_arr(&x->j);
    for (size_t i = 0; i < r.n; i++) {
        sl_qgroup_summary s;
        int64_t total = 0, pending = 0;
        if (!may_list(x, SL_RES_GROUP, r.v[i].group) ||
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
        dlq_counts(x->b, r.v[i].dlq[0] ? r.v[i].dlq : NULL, &total, &pending);
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

static sl_err v_queue_purge(sl_admin_call *x)
{
    sl_groups *g = groups(x);
    const char *topic, *group;
    sl_topic *t;
    int64_t dropped = 0;
    sl_err rc;
    if (!g)
        return SL_ERR_UNKNOWN;
    if ((rc = need(x, "topic", &topic)) != SL_OK ||
        (rc = need(x, "group", &group)) != SL_OK ||
        (rc = topic_or_fail(x, topic, &t)) != SL_OK)
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

static sl_err v_group_reset(sl_admin_call *x)
{
    sl_groups *g = groups(x);
    const char *group, *topic, *to;
    sl_topic *t;
    int64_t value = 0;
    int queue;
    sl_err rc;
    if (!g)
        return SL_ERR_UNKNOWN;
    if ((rc = need(x, "group", &group)) != SL_OK ||
        (rc = need(x, "topic", &topic)) != SL_OK ||
        (rc = need(x, "to", &to)) != SL_OK ||
        (rc = topic_or_fail(x, topic, &t)) != SL_OK)
        return rc;
    if (!strcmp(to, "offset") || !strcmp(to, "time")) {
        if (!arg(x, "value")) {
            snprintf(x->msg, sizeof(x->msg),
                     "reset to %s needs argument 'value'", to);
            return SL_ERR_INVALID_ARG;
        }
        rc = int_arg(x, "value", 0, INT64_MAX, 0, &value);
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

static sl_err v_group_delete(sl_admin_call *x)
{
    sl_groups *g = groups(x);
    const char *group;
    sl_err rq, rs;
    if (!g)
        return SL_ERR_UNKNOWN;
    if ((rq = need(x, "group", &group)) != SL_OK)
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
    record_json(arg, partition, rec, attempts);
}

static sl_err v_queue_peek(sl_admin_call *x)
{
    sl_groups *g = groups(x);
    const char *topic, *group;
    int64_t count, n;
    sl_err rc;
    if (!g)
        return SL_ERR_UNKNOWN;
    if ((rc = need(x, "topic", &topic)) != SL_OK ||
        (rc = need(x, "group", &group)) != SL_OK ||
        (rc = int_arg(x, "count", 1, PEEK_MAX, 10, &count)) != SL_OK)
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

/* ---- dead-letter topics ---------------------------------------------------
 */

static sl_err v_dlq_list(sl_admin_call *x)
{
    sl_groups *g = groups(x);
    const char *topic = arg(x, "topic");
    qrows r;
    sl_err rc = queue_rows(g, &r);
    if (rc != SL_OK)
        return rc;
    sl_jw_obj(&x->j);
    sl_jw_key(&x->j, "dlqs");
    sl_jw_arr(&x->j);
    for (size_t i = 0; i < r.n; i++) {
        int64_t total, pending;
        if (!r.v[i].dlq[0] || (topic && *topic && strcmp(topic, r.v[i].topic)))
            continue;
        if (!may_list(x, SL_RES_GROUP, r.v[i].group) &&
            !may_list(x, SL_RES_TOPIC, r.v[i].dlq))
            continue;
        sl_jw_obj(&x->j);
        sl_jw_kstr(&x->j, "dlq_topic", r.v[i].dlq);
        sl_jw_kstr(&x->j, "source_topic", r.v[i].topic);
        sl_jw_kstr(&x->j, "group", r.v[i].group);
        sl_jw_key(&x->j, "exists");
        sl_jw_bool(&x->j, dlq_counts(x->b, r.v[i].dlq, &total, &pending));
        sl_jw_ki64(&x->j, "pending", pending);
        sl_jw_ki64(&x->j, "total", total);
        sl_jw_end(&x->j);
    }
    sl_jw_end(&x->j);
    sl_jw_end(&x->j);
    free(r.v);
    return SL_OK;
}

static sl_err v_dlq_purge(sl_admin_call *x)
{
    sl_groups *g = groups(x);
    const char *dlq;
    sl_topic *t;
    char rg[300];
    int64_t total = 0, pending = 0;
    sl_err rc;
    if (!g)
        return SL_ERR_UNKNOWN;
    if ((rc = need(x, "dlq", &dlq)) != SL_OK ||
        (rc = topic_or_fail(x, dlq, &t)) != SL_OK)
        return rc;
    dlq_counts(x->b, dlq, &total, &pending);
    redrive_group(dlq, rg, sizeof(rg));
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
static sl_err v_dlq_show(sl_admin_call *x)
{
    sl_groups *g = groups(x);
    const char *dlq;
    sl_topic *t;
    char rg[300];
    int64_t count, n = 0, all;
    sl_err rc;
    if (!g)
        return SL_ERR_UNKNOWN;
    if ((rc = need(x, "dlq", &dlq)) != SL_OK ||
        (rc = topic_or_fail(x, dlq, &t)) != SL_OK ||
        (rc = int_arg(x, "count", 1, PEEK_MAX, 100, &count)) != SL_OK ||
        (rc = int_arg(x, "all", 0, 1, 0, &all)) != SL_OK)
        return rc;
    redrive_group(dlq, rg, sizeof(rg));
    sl_jw_obj(&x->j);
    sl_jw_kstr(&x->j, "dlq_topic", dlq);
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
            record_json(&x->j, p, &rec, -1);
            n++;
        }
        sl_part_iter_free(it);
    }
    sl_jw_end(&x->j);
    sl_jw_ki64(&x->j, "count", n);
    sl_jw_end(&x->j);
    return SL_OK;
}

static void finish(sl_admin_call *x, sl_err rc);

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
    finish(x, rc);
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

static sl_err v_dlq_redrive(sl_admin_call *x)
{
    sl_groups *g = groups(x);
    sl_dlq_redrive_opts o;
    sl_dlq_sink sink = sl_ops_dlq_sink(x->b);
    const char *dlq;
    int64_t max, rate;
    aredrive *ar;
    sl_err rc;
    if (!g)
        return SL_ERR_UNKNOWN;
    if ((rc = need(x, "dlq", &dlq)) != SL_OK ||
        (rc = int_arg(x, "max", 0, INT64_MAX, 0, &max)) != SL_OK ||
        (rc = int_arg(x, "rate", 0, UINT32_MAX, 0, &rate)) != SL_OK)
        return rc;
    memset(&o, 0, sizeof(o));
    o.dlq_topic = dlq;
    o.target = arg(x, "to");
    o.reason = arg(x, "reason");
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

/* ---- connections ------------------------------------------------------------ */

static void conn_row(void *arg, sl_conn *c, const sl_conn_stat *st)
{
    sl_admin_call *x = arg;
    int64_t now = sl_now_ms();
    const char *u = sl_conn_user(c);
    /* the user's own connections, unless admin or describe on the cluster
     * (RabbitMQ shows a user without the monitoring tag only its own) */
    if (!sl_acl_may_list_all_conns(x->b, x->args->user, x->args->admin) &&
        (!u || !x->args->user || strcmp(u, x->args->user) != 0))
        return;
    sl_jw_obj(&x->j);
    sl_jw_ki64(&x->j, "id", (int64_t)st->id);
    sl_jw_kstr(&x->j, "protocol", st->protocol);
    sl_jw_kstr(&x->j, "listener", st->listener);
    sl_jw_key(&x->j, "tls");
    sl_jw_bool(&x->j, sl_conn_transport(c) == SL_TRANSPORT_TLS);
    /* a verified client certificate's subject (mutual TLS), or null */
    sl_jw_kstr(&x->j, "tls_subject", sl_conn_tls_subject(c));
    sl_jw_kstr(&x->j, "peer", st->peer);
    sl_jw_ki64(&x->j, "opened_ms", st->opened_ms);
    sl_jw_ki64(&x->j, "age_ms", now > st->opened_ms ? now - st->opened_ms : 0);
    sl_jw_ki64(&x->j, "bytes_in", (int64_t)st->bytes_in);
    sl_jw_ki64(&x->j, "bytes_out", (int64_t)st->bytes_out);
    sl_jw_ki64(&x->j, "requests", (int64_t)st->replies);
    sl_jw_ki64(&x->j, "replies_owed", (int64_t)st->replies_owed);
    sl_jw_ki64(&x->j, "output_bytes", (int64_t)st->out_bytes);
    sl_jw_key(&x->j, "closing");
    sl_jw_bool(&x->j, st->closing);
    sl_jw_kstr(&x->j, "user", sl_conn_user(c)); /* null: none yet */
    /* the protocol's keys: client, in_flight, subscriptions or groups */
    sl_conn_describe(c, &x->j);
    sl_jw_end(&x->j);
}

static sl_err v_connections(sl_admin_call *x)
{
    sl_jw_obj(&x->j);
    sl_jw_key(&x->j, "connections");
    sl_jw_arr(&x->j);
    sl_conn_foreach(x->b, conn_row, x);
    sl_jw_end(&x->j);
    sl_jw_end(&x->j);
    return SL_OK;
}

/* Close one connection now (RabbitMQ's close_connection): its pending
 * replies are dropped, what its consumers held is available again. */
static sl_err v_connection_close(sl_admin_call *x)
{
    const char *v, *reason = arg(x, "reason");
    int64_t id;
    sl_conn *c;
    sl_err rc = need(x, "id", &v);
    char why[160];
    if (rc != SL_OK || (rc = int_arg(x, "id", 1, INT64_MAX, 0, &id)) != SL_OK)
        return rc;
    c = sl_conn_find(x->b, (uint64_t)id);
    if (!c) {
        snprintf(x->msg, sizeof(x->msg), "no open connection with id %lld",
                 (long long)id);
        return SL_ERR_NOT_FOUND;
    }
    snprintf(why, sizeof(why), "closed by an operator%s%.120s",
             reason && *reason ? ": " : "", reason ? reason : "");
    sl_jw_obj(&x->j);
    sl_jw_ki64(&x->j, "id", id);
    sl_jw_kstr(&x->j, "peer", sl_conn_peer(c));
    sl_jw_key(&x->j, "closed");
    sl_jw_bool(&x->j, 1);
    sl_jw_end(&x->j);
    sl_conn_abort(c, why);
    return SL_OK;
}

/* ---- the verb table ------------------------------------------------------- */

static const struct verb {
    const char *name;
    verb_fn fn;
} verbs[] = {
    {"version", v_version},
    {"status", v_status},
    {"topics", v_topics},
    {"topic", v_topic},
    {"topic.create", v_topic_create},
    {"topic.delete", v_topic_delete},
    {"topic.alter", v_topic_alter},
    {"topic.add_partitions", v_topic_add_partitions},
    {"groups", v_groups},
    {"group", v_group},
    {"group.delete", v_group_delete},
    {"group.reset", v_group_reset},
    {"queues", v_queues},
    {"queue.purge", v_queue_purge},
    {"queue.peek", v_queue_peek},
    {"dlq.list", v_dlq_list},
    {"dlq.show", v_dlq_show},
    {"dlq.purge", v_dlq_purge},
    {"dlq.redrive", v_dlq_redrive},
    {"connections", v_connections},
    {"connection.close", v_connection_close},
};

const char *const *sl_admin_verbs(void)
{
    static const char *names[sizeof(verbs) / sizeof(verbs[0]) + 1];
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        names[i] = verbs[i].name;
    return names;
}

static void call_free(sl_admin_call *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        x->b->admin_calls = x->next;
    if (x->next)
        x->next->prev = x->prev;
    evbuffer_free(x->out);
    free(x);
}

static void finish(sl_admin_call *x, sl_err rc)
{
    if (!x->cancelled) {
        if (rc != SL_OK) {
            if (!x->msg[0])
                snprintf(x->msg, sizeof(x->msg), "%s", sl_strerror(rc));
            evbuffer_drain(x->out, evbuffer_get_length(x->out));
        }
        x->done(x->arg, rc, rc == SL_OK ? NULL : x->msg, x->out);
    }
    call_free(x);
}

static void committed(void *arg, sl_err rc)
{
    sl_admin_call *x = arg;
    if (x->in_verb) { /* sl_groups_wait ran it at once: sl_admin_run ends */
        x->later_rc = rc;
        x->later_done = 1;
        return;
    }
    if (rc != SL_OK)
        snprintf(x->msg, sizeof(x->msg),
                 "the change could not be made durable: %s", sl_strerror(rc));
    finish(x, rc);
}

sl_admin_call *sl_admin_run(sl_broker *b, const char *verb,
                            const sl_admin_args *args, sl_admin_done_fn done,
                            void *arg)
{
    sl_admin_call *x = calloc(1, sizeof(*x));
    const struct verb *v = NULL;
    sl_err rc;
    if (x)
        x->out = evbuffer_new();
    if (!x || !x->out) {
        if (x)
            free(x);
        done(arg, SL_ERR_NOMEM, "out of memory", NULL);
        return NULL;
    }
    x->next = b->admin_calls;
    if (b->admin_calls)
        b->admin_calls->prev = x;
    b->admin_calls = x;
    x->b = b;
    x->args = args;
    x->done = done;
    x->arg = arg;
    sl_jw_init(&x->j, x->out);
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (!strcmp(verbs[i].name, verb))
            v = &verbs[i];
    rc = sl_acl_check_verb(b, args->user, args->admin, verb, args->n,
                           args->keys, args->values, x->msg, sizeof(x->msg));
    if (rc != SL_OK) {
        finish(x, rc);
        return NULL;
    }
    if (!v) { /* users and permissions: broker/auth.c, broker/acl.c */
        rc = sl_auth_verb(b, verb, args->n, args->keys, args->values,
                          args->user, args->peer, &x->j, x->msg,
                          sizeof(x->msg));
        finish(x, rc);
        return NULL;
    }
    x->in_verb = 1;
    rc = v->fn(x);
    x->in_verb = 0;
    x->args = NULL; /* borrowed for the call only */
    if (rc == SL_OK && x->pending)
        return x; /* the verb calls finish */
    if (rc == SL_OK && x->wait && sl_ops_groups(b)) {
        x->in_verb = 1;
        x->later_done = 0;
        sl_groups_wait(sl_ops_groups(b), committed, x);
        x->in_verb = 0;
        if (!x->later_done)
            return x;
        rc = x->later_rc;
        if (rc != SL_OK)
            snprintf(x->msg, sizeof(x->msg),
                     "the change could not be made durable: %s",
                     sl_strerror(rc));
    }
    finish(x, rc);
    return NULL;
}

void sl_admin_cancel(sl_admin_call *x)
{
    if (x)
        x->cancelled = 1;
}

/* ---- the ADMIN binary api -------------------------------------------------
 */

typedef struct bin_call {
    sl_reply *r;
    uint32_t corr;
    sl_admin_call *x;
    int answered;
} bin_call;

static void bin_done(void *arg, sl_err rc, const char *msg,
                     struct evbuffer *json)
{
    bin_call *bc = arg;
    bc->answered = 1;
    if (bc->x) /* completed later: the cancel hook is ours no more */
        sl_reply_set_cancel(bc->r, NULL, NULL);
    if (rc != SL_OK) {
        sl_reply_error(bc->r, rc, msg);
    } else {
        sl_admin_resp resp;
        sl_wb wb;
        memset(&resp, 0, sizeof(resp));
        resp.json_len = evbuffer_get_length(json);
        resp.json = evbuffer_pullup(json, -1);
        sl_wb_init(&wb, resp.json_len + 64);
        if (sl_admin_resp_encode(&wb, bc->corr, &resp) != SL_OK ||
            sl_reply_add(bc->r, wb.p, wb.len) != SL_OK)
            sl_reply_error(bc->r, SL_ERR_NOMEM, "ADMIN: reply too large");
        else
            sl_reply_done(bc->r);
        sl_wb_fini(&wb);
    }
    if (bc->x)
        free(bc);
}

static void bin_cancel(void *arg)
{
    bin_call *bc = arg;
    sl_admin_cancel(bc->x);
    free(bc);
}

static void h_admin(sl_broker *b, sl_conn *c, const sl_req *req, sl_reply *r)
{
    sl_arena a;
    sl_admin_req q = {0};
    bin_call *bc;
    char verb[128];
    char **kv = NULL;
    sl_admin_args args;
    sl_arena_init(&a);
    sl_arena_set_limit(&a, 8 * req->len + 4096);
    if (sl_admin_req_decode(req->body, req->len, &a, &q) != SL_OK) {
        sl_reply_error(r, SL_ERR_MALFORMED, "ADMIN: malformed body");
        goto out;
    }
    if (q.verb.len >= sizeof(verb)) {
        sl_reply_error(r, SL_ERR_INVALID_ARG, "ADMIN: verb too long");
        goto out;
    }
    memcpy(verb, q.verb.p, q.verb.len);
    verb[q.verb.len] = 0;
    kv = calloc(2 * (size_t)q.nargs + 2, sizeof(char *));
    bc = calloc(1, sizeof(*bc));
    if (!kv || !bc) {
        free(bc);
        sl_reply_error(r, SL_ERR_NOMEM, "ADMIN: out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < q.nargs; i++) {
        sl_kv *p = &q.args[i];
        kv[i] = strndup(p->key.p ? p->key.p : "", p->key.len);
        kv[q.nargs + i] = strndup(p->value.p ? p->value.p : "", p->value.len);
        if (!kv[i] || !kv[q.nargs + i]) {
            free(bc);
            sl_reply_error(r, SL_ERR_NOMEM, "ADMIN: out of memory");
            goto out;
        }
    }
    args.n = q.nargs;
    args.keys = (const char *const *)kv;
    args.values = (const char *const *)kv + q.nargs;
    args.user = sl_auth_conn_user(c);
    args.admin = sl_auth_conn_admin(c);
    args.peer = sl_conn_peer(c);
    bc->r = r;
    bc->corr = req->correlation_id;
    bc->x = sl_admin_run(b, verb, &args, bin_done, bc);
    if (!bc->answered)
        sl_reply_set_cancel(r, bin_cancel, bc);
    else if (!bc->x)
        free(bc);
out:
    if (kv)
        for (uint32_t i = 0; i < 2 * q.nargs; i++)
            free(kv[i]);
    free(kv);
    sl_arena_fini(&a);
}

void sl_admin_module_init(sl_broker *b)
{
    b->started_ms = sl_now_ms();
    sl_binary_register(b, SL_API_ADMIN, 1, 1, h_admin);
}

void sl_admin_module_fini(sl_broker *b)
{
    /* Calls still waiting answer nobody: their requests (binary and
     * HTTP) went with the connections, which are freed before. */
    for (sl_admin_call *x = b->admin_calls; x; x = x->next)
        x->cancelled = 1;
}
