/*
 * dlq.c - dead-letter topics: the dlq.* headers, the dead-letter append,
 * listing and the rate-limited redrive. See dlq.h for the rules; the
 * state machine that decides WHEN a record is dead-lettered (and archives
 * it once its copy is durable) is in queue.c.
 */
#include "groups/dlq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "groups/internal.h"
#include "protocol/hash.h"
#include "protocol/parse.h"

#define NAME_MAX_LEN 256

void sl_groups_dlq_name(const char *topic, char *buf, size_t len)
{
    size_t tl = strlen(topic);
    if (tl + 4 <= SL_GROUPS_TOPIC_MAX) {
        snprintf(buf, len, "%s.DLQ", topic);
        return;
    }
    /* too long for ".DLQ": a prefix and a hash of the whole name */
    snprintf(buf, len, "%.236s-%08x.DLQ", topic,
             (unsigned)sl_fnv1a32(topic, tl));
}

const char *sl_dlq_topic_name(const sl_qgroup_cfg *cfg, const char *topic,
                              char *buf, size_t len)
{
    if (!strcmp(cfg->dlq_topic, "-"))
        return NULL;
    if (cfg->dlq_topic[0])
        return cfg->dlq_topic;
    sl_groups_dlq_name(topic, buf, len);
    return buf;
}

int sl_dlq_is_dlq_header(const sl_header *h)
{
    return h->key_len >= 4 && !memcmp(h->key, SL_DLQ_HDR_PREFIX, 4);
}

size_t sl_dlq_keep_headers(const sl_record *rec, sl_header *hs)
{
    sl_header_iter hi;
    sl_header h;
    size_t nh = 0;
    sl_record_headers_begin(rec, &hi);
    while (nh < SL_DLQ_KEEP_HEADERS && sl_record_headers_next(&hi, &h) == SL_OK)
        if (!sl_dlq_is_dlq_header(&h))
            hs[nh++] = h;
    return nh;
}

static void hdr(sl_header *hs, size_t *nh, const char *k, const char *v)
{
    hs[*nh].key = k;
    hs[*nh].key_len = strlen(k);
    hs[*nh].value = v;
    hs[*nh].value_len = strlen(v);
    (*nh)++;
}

/* One record with headers hs into a new batch, appended by fn. */
static sl_err copy_record(const sl_record *rec, const sl_header *hs, size_t nh,
                          sl_err (*fn)(void *arg, uint8_t *b, size_t len),
                          void *arg)
{
    sl_batch_builder bb;
    const uint8_t *bp;
    size_t blen;
    sl_err rc;
    sl_bb_init(&bb, SL_CODEC_NONE);
    rc = sl_bb_add(&bb, rec->timestamp, rec->key,
                   rec->key_len < 0 ? 0 : (size_t)rec->key_len, rec->value,
                   rec->value_len < 0 ? 0 : (size_t)rec->value_len, hs, nh);
    if (rc == SL_OK)
        rc = sl_bb_finish(&bb, &bp, &blen);
    if (rc == SL_OK)
        rc = fn(arg, (uint8_t *)bp, blen);
    sl_bb_fini(&bb);
    return rc;
}

/* ---- dead-letter append ------------------------------------------------ */

typedef struct dl_append {
    sl_groups *g;
    const char *topic;
    sl_part *part;
    int64_t base;
} dl_append;

static sl_err dl_append_fn(void *arg, uint8_t *b, size_t len)
{
    dl_append *a = arg;
    return a->g->env.append(a->g->env.ctx, a->topic, 0, b, len, &a->base,
                            &a->part);
}

sl_err sl_dlq_append(sl_groups *g, const char *dlq_topic, const sl_record *rec,
                     const sl_dlq_origin *o, sl_part **part_out,
                     int64_t *base_out)
{
    sl_header hs[SL_DLQ_MAX_HEADERS];
    char vals[7][32];
    dl_append a = {g, dlq_topic, NULL, -1};
    size_t nh = sl_dlq_keep_headers(rec, hs);
    sl_err rc;

    snprintf(vals[0], 32, "%d", o->partition);
    snprintf(vals[1], 32, "%lld", (long long)o->offset);
    snprintf(vals[2], 32, "%u", o->attempts);
    snprintf(vals[3], 32, "%u", o->failures);
    snprintf(vals[4], 32, "%lld", (long long)o->first_ms);
    snprintf(vals[5], 32, "%lld", (long long)o->last_ms);
    snprintf(vals[6], 32, "%lld", (long long)o->time_ms);
    hdr(hs, &nh, SL_DLQ_HDR_TOPIC, o->topic);
    hdr(hs, &nh, SL_DLQ_HDR_PARTITION, vals[0]);
    hdr(hs, &nh, SL_DLQ_HDR_OFFSET, vals[1]);
    hdr(hs, &nh, SL_DLQ_HDR_GROUP, o->group);
    hdr(hs, &nh, SL_DLQ_HDR_ATTEMPTS, vals[2]);
    hdr(hs, &nh, SL_DLQ_HDR_FAILURES, vals[3]);
    hdr(hs, &nh, SL_DLQ_HDR_REASON, o->reason);
    hdr(hs, &nh, SL_DLQ_HDR_FIRST_DELIVERY, vals[4]);
    hdr(hs, &nh, SL_DLQ_HDR_LAST_DELIVERY, vals[5]);
    hdr(hs, &nh, SL_DLQ_HDR_TIME, vals[6]);
    if (o->reason_text && *o->reason_text &&
        strlen(o->reason_text) <= SL_DLQ_REASON_TEXT_MAX)
        hdr(hs, &nh, SL_DLQ_HDR_REASON_TEXT, o->reason_text);
    rc = copy_record(rec, hs, nh, dl_append_fn, &a);
    if (rc != SL_OK)
        return rc;
    g->st.dlq_appends++;
    *part_out = a.part;
    *base_out = a.base;
    return SL_OK;
}

/* ---- listing ----------------------------------------------------------- */

int64_t sl_dlq_depth(sl_groups *g, const char *topic, int64_t *start0,
                     int64_t *end0)
{
    int32_t n;
    int64_t d = 0;
    if (!topic)
        return -1;
    n = g->env.partitions(g->env.ctx, topic);
    if (n < 0)
        return -1;
    for (int32_t i = 0; i < n; i++) {
        sl_part *p = g->env.get_part(g->env.ctx, topic, i);
        if (!p)
            continue;
        if (i == 0) {
            if (start0)
                *start0 = sl_part_start_offset(p);
            if (end0)
                *end0 = sl_part_end_offset(p);
        }
        d += sl_part_end_offset(p) - sl_part_start_offset(p);
    }
    return d;
}

typedef struct list_filter {
    const char *topic, *group;
    void (*fn)(void *arg, const char *dlq_topic, const char *source_topic,
               const char *group);
    void *arg;
} list_filter;

static void list_each(void *arg, const char *group, const char *topic,
                      const char *dlq)
{
    list_filter *lf = arg;
    if (!dlq || (lf->topic && strcmp(lf->topic, topic)) ||
        (lf->group && strcmp(lf->group, group)))
        return;
    lf->fn(lf->arg, dlq, topic, group);
}

void sl_dlq_list(sl_groups *g, const char *topic, const char *group,
                 void (*fn)(void *arg, const char *dlq_topic,
                            const char *source_topic, const char *group),
                 void *arg)
{
    list_filter lf = {topic, group, fn, arg};
    sl_groups_qgroup_foreach(g, list_each, &lf);
}

/* ---- redrive ----------------------------------------------------------- */

struct sl_dlq_redrive {
    sl_dlq_sink sink;
    char dlq[NAME_MAX_LEN], target[NAME_MAX_LEN], reason[64];
    char group[NAME_MAX_LEN + 16]; /* "<DLQ>.redrive": the progress */
    int has_target, has_reason;
    int64_t max, moved, skipped;
    uint32_t rate;
    int32_t nparts;
    int64_t *ends; /* per DLQ partition: stop here (what was there) */
};

static int hdr_str(const sl_record *rec, const char *k, char *buf, size_t size)
{
    sl_header h;
    if (sl_record_header_find(rec, k, &h) != SL_OK || !h.value ||
        h.value_len >= size)
        return -1;
    memcpy(buf, h.value, h.value_len);
    buf[h.value_len] = 0;
    return 0;
}

typedef struct rd_append {
    sl_dlq_redrive *rd;
    const char *topic;
    int32_t part;
} rd_append;

static sl_err rd_append_fn(void *arg, uint8_t *b, size_t len)
{
    rd_append *a = arg;
    return a->rd->sink.append(a->rd->sink.ctx, a->topic, a->part, b, len);
}

/* Move one record; 1 moved, 0 skipped, <0 error. */
static int redrive_one(sl_dlq_redrive *rd, const sl_record *rec, int64_t now)
{
    char reason[64], otopic[NAME_MAX_LEN], opart[32], nowbuf[32];
    sl_header hs[SL_DLQ_MAX_HEADERS];
    rd_append a = {rd, NULL, 0};
    size_t nh;
    int64_t pv;
    int32_t np;

    if (rd->has_reason &&
        (hdr_str(rec, SL_DLQ_HDR_REASON, reason, sizeof(reason)) ||
         strcmp(reason, rd->reason)))
        return 0;
    if (rd->has_target) {
        a.topic = rd->target;
    } else {
        if (hdr_str(rec, SL_DLQ_HDR_TOPIC, otopic, sizeof(otopic)))
            return 0; /* not a dead-lettered record: leave it */
        a.topic = otopic;
        if (hdr_str(rec, SL_DLQ_HDR_PARTITION, opart, sizeof(opart)) == 0 &&
            sl_parse_i64(opart, &pv) == 0 && pv >= 0 && pv <= INT32_MAX)
            a.part = (int32_t)pv;
    }
    np = rd->sink.partitions(rd->sink.ctx, a.topic);
    if (np < 1)
        return -1;
    if (a.part < 0 || a.part >= np)
        a.part = 0;
    nh = sl_dlq_keep_headers(rec, hs);
    snprintf(nowbuf, sizeof(nowbuf), "%lld", (long long)now);
    hdr(hs, &nh, SL_DLQ_HDR_REDRIVE_FROM, rd->dlq);
    hdr(hs, &nh, SL_DLQ_HDR_REDRIVE_TIME, nowbuf);
    return copy_record(rec, hs, nh, rd_append_fn, &a) == SL_OK ? 1 : -1;
}

typedef struct dlq_known {
    const char *name;
    int found;
} dlq_known;

static void dlq_known_each(void *arg, const char *group, const char *topic,
                           const char *dlq)
{
    dlq_known *k = arg;
    (void)group;
    (void)topic;
    if (dlq && !strcmp(dlq, k->name))
        k->found = 1;
}

sl_err sl_dlq_redrive_new(sl_groups *g, const sl_dlq_redrive_opts *o,
                          const sl_dlq_sink *sink, sl_dlq_redrive **out)
{
    sl_dlq_redrive *rd;
    if (!o->dlq_topic || strlen(o->dlq_topic) >= NAME_MAX_LEN ||
        (o->target && strlen(o->target) >= NAME_MAX_LEN) ||
        (o->reason && strlen(o->reason) >= 64))
        return SL_ERR_INVALID_ARG;
    rd = calloc(1, sizeof(*rd));
    if (!rd)
        return SL_ERR_NOMEM;
    rd->sink = *sink;
    snprintf(rd->dlq, sizeof(rd->dlq), "%s", o->dlq_topic);
    snprintf(rd->target, sizeof(rd->target), "%s", o->target ? o->target : "");
    snprintf(rd->reason, sizeof(rd->reason), "%s", o->reason ? o->reason : "");
    rd->has_target = rd->target[0] != 0;
    rd->has_reason = rd->reason[0] != 0;
    rd->max = o->max;
    rd->rate = o->rate;
    snprintf(rd->group, sizeof(rd->group), "%s.redrive", rd->dlq);
    rd->nparts = g->env.partitions(g->env.ctx, rd->dlq);
    if (rd->nparts < 0) {
        /* a queue group's dead-letter topic is created on its first dead
         * letter: listing shows it with depth 0, so redriving it moves
         * nothing rather than failing */
        dlq_known k = {rd->dlq, 0};
        sl_groups_qgroup_foreach(g, dlq_known_each, &k);
        if (!k.found) {
            free(rd);
            return SL_ERR_UNKNOWN_TOPIC;
        }
        rd->nparts = 0;
    }
    rd->ends = calloc((size_t)rd->nparts + 1, sizeof(int64_t));
    if (!rd->ends) {
        free(rd);
        return SL_ERR_NOMEM;
    }
    for (int32_t p = 0; p < rd->nparts; p++) {
        sl_part *part = g->env.get_part(g->env.ctx, rd->dlq, p);
        if (part)
            rd->ends[p] = sl_part_end_offset(part);
    }
    *out = rd;
    return SL_OK;
}

int sl_dlq_redrive_step(sl_dlq_redrive *rd, sl_groups *g)
{
    /* the rate limit: rate/s in steps of SL_DLQ_REDRIVE_STEP_MS */
    int64_t budget = rd->rate
                         ? (rd->rate + (1000 / SL_DLQ_REDRIVE_STEP_MS) - 1) /
                               (1000 / SL_DLQ_REDRIVE_STEP_MS)
                         : INT64_MAX;
    int64_t now = sl_groups_now(g);
    int done = 1;
    for (int32_t p = 0; p < rd->nparts && budget > 0; p++) {
        sl_part *part = g->env.get_part(g->env.ctx, rd->dlq, p);
        sl_part_iter *it = NULL;
        sl_record rec;
        int64_t from = sl_sgroup_committed(g, rd->group, rd->dlq, p);
        if (!part)
            continue;
        if (from < sl_part_start_offset(part))
            from = sl_part_start_offset(part);
        if (from >= rd->ends[p])
            continue;
        if (sl_part_iter_new(part, from, &it) != SL_OK)
            continue;
        while (budget > 0 && (rd->max < 0 || rd->moved < rd->max) &&
               sl_part_iter_next(it, &rec, NULL) && rec.offset < rd->ends[p]) {
            int m = redrive_one(rd, &rec, now);
            if (m < 0)
                break;
            if (m > 0) {
                rd->moved++;
                budget--;
            } else {
                rd->skipped++;
            }
            sl_sgroup_commit(g, rd->group, NULL, -1, rd->dlq, p,
                             rec.offset + 1);
        }
        sl_part_iter_free(it);
        if (sl_sgroup_committed(g, rd->group, rd->dlq, p) < rd->ends[p] &&
            (rd->max < 0 || rd->moved < rd->max))
            done = 0;
    }
    /* budget left: everything there was to move is moved (or failed) */
    return done || budget > 0;
}

int64_t sl_dlq_redrive_moved(const sl_dlq_redrive *rd)
{
    return rd->moved;
}

int64_t sl_dlq_redrive_skipped(const sl_dlq_redrive *rd)
{
    return rd->skipped;
}

void sl_dlq_redrive_free(sl_dlq_redrive *rd)
{
    if (!rd)
        return;
    free(rd->ends);
    free(rd);
}

/* (groups.h) every queue group with its DLQ topic */
void sl_groups_qgroup_foreach(sl_groups *g,
                              void (*fn)(void *arg, const char *group,
                                         const char *topic,
                                         const char *dlq_topic),
                              void *arg)
{
    for (sl_qgroup *qg = g->qgroups; qg; qg = qg->next) {
        char buf[300];
        const char *dt =
            sl_dlq_topic_name(&qg->cfg, qg->topic, buf, sizeof(buf));
        fn(arg, qg->name, qg->topic, dt);
    }
}
