/*
 * binary_topics.c - the binary protocol's HANDSHAKE (api 0), METADATA (1:
 * version 2 adds a cluster's leaders, replicas and ISR) and
 * CREATE_TOPICS, DELETE_TOPICS, LIST_TOPICS (2-4).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/acl.h"
#include "broker/auth.h"
#include "broker/binary_int.h"
#include "broker/broker.h"
#include "broker/cluster.h"
#include "broker/topic.h"
#include "protocol/api.h"
#include "protocol/log.h"

#define SERVER_VERSION "0.1.0"

/* ---- 0 HANDSHAKE
 * ------------------------------------------------------------- */

static void h_handshake(sl_broker *b, sl_conn *c, const sl_req *req,
                        sl_reply *r)
{
    sl_arena a;
    sl_wb wb;
    sl_handshake_req q;
    sl_handshake_resp s;
    sl_api_range ranges[SL_MAX_API];
    uint32_t n = 0;

    sl_arena_init(&a);
    sl_wb_init(&wb, 256);
    if (sl_handshake_req_decode(req->body, req->len, &a, &q) != SL_OK) {
        sl_bin_malformed(c, r, "HANDSHAKE");
        goto out;
    }
    for (uint16_t k = 0; k < SL_MAX_API; k++) {
        if (!b->apis[k].fn)
            continue;
        ranges[n].api_key = k;
        ranges[n].min_version = b->apis[k].min_version;
        ranges[n].max_version = b->apis[k].max_version;
        n++;
    }
    memset(&s, 0, sizeof(s));
    s.server_name = SL_STR_LIT("sluiced");
    s.server_version = SL_STR_LIT(SERVER_VERSION);
    s.max_frame = (uint32_t)b->cfg.max_frame_bytes;
    s.napis = n;
    s.apis = ranges;
    sl_bin_reply_wb(r, &wb,
                    sl_handshake_resp_encode(&wb, req->correlation_id, &s),
                    "HANDSHAKE");
out:
    sl_wb_fini(&wb);
    sl_arena_fini(&a);
}

/* ---- 1 METADATA
 * -------------------------------------------------------------- */

typedef struct cfg_collect {
    sl_arena *a;
    sl_kv *kv;
    uint32_t n, cap;
} cfg_collect;

static void collect_cfg(void *arg, const char *key, const char *value)
{
    cfg_collect *cc = arg;
    if (cc->n < cc->cap) {
        cc->kv[cc->n].key = sl_str_c(key);
        cc->kv[cc->n].value = sl_str_c(value);
        cc->n++;
    }
}

static void fill_meta_topic(sl_broker *b, sl_arena *a, sl_topic *t,
                            sl_meta_topic *mt)
{
    cfg_collect cc = {a, NULL, 0, 0};

    mt->name = sl_str_c(t->name);
    mt->error = SL_OK;
    mt->nparts = (uint32_t)t->nparts;
    mt->parts = sl_arena_alloc(a, sizeof(sl_meta_part) * (size_t)t->nparts);
    if (!mt->parts) {
        mt->nparts = 0;
        mt->error = SL_ERR_NOMEM;
        return;
    }
    for (int32_t i = 0; i < t->nparts; i++) {
        mt->parts[i].partition = (uint32_t)i;
        mt->parts[i].start_offset = sl_part_start_offset(t->parts[i]->part);
        mt->parts[i].end_offset = sl_part_end_offset(t->parts[i]->part);
        mt->parts[i].leader = SL_META_LEADER_ANY;
        mt->parts[i].leader_epoch = 0;
        mt->parts[i].nreplicas = mt->parts[i].nisr = 0;
        mt->parts[i].replicas = mt->parts[i].isr = NULL;
    }
    cc.cap = (uint32_t)t->ncfg + (uint32_t)t->nparts;
    cc.kv = sl_arena_alloc(a, sizeof(sl_kv) * (cc.cap + 1));
    if (cc.kv)
        sl_ops_topic_configs(b, t->name, collect_cfg, &cc);
    /* Damaged ranges (issue 18, finding 2) as read-only entries
     * "damaged.<partition>" = "FIRST..LAST (why)[, ...][; N ranges]":
     * `sluice topic describe` shows them; they are not settings. */
    for (int32_t i = 0; cc.kv && i < t->nparts; i++) {
        sl_part_bad bad[4];
        uint64_t total = 0;
        size_t nb = sl_part_bad_ranges(t->parts[i]->part, bad, 4, &total);
        char key[32], val[512];
        size_t o = 0;
        if (total == 0)
            continue;
        for (size_t k = 0; k < nb && o < sizeof(val); k++)
            o += (size_t)snprintf(val + o, sizeof(val) - o, "%s%lld..%lld (%s)",
                                  k ? ", " : "", (long long)bad[k].first,
                                  (long long)bad[k].last, bad[k].why);
        if (total > nb && o < sizeof(val))
            snprintf(val + o, sizeof(val) - o, "; %llu ranges in all",
                     (unsigned long long)total);
        snprintf(key, sizeof(key), "damaged.%d", (int)i);
        char *kp = sl_arena_alloc(a, strlen(key) + 1);
        char *vp = sl_arena_alloc(a, strlen(val) + 1);
        if (kp && vp) {
            strcpy(kp, key);
            strcpy(vp, val);
            collect_cfg(&cc, kp, vp);
        }
    }
    mt->nconfigs = cc.n;
    mt->configs = cc.kv;
}

static void h_metadata(sl_broker *b, sl_conn *c, const sl_req *req, sl_reply *r)
{
    sl_arena a;
    sl_wb wb;
    sl_metadata_req q;
    sl_metadata_resp s;
    sl_topic **all = NULL;
    size_t n = 0;

    sl_arena_init(&a);
    sl_wb_init(&wb, 1024);
    if (sl_metadata_req_decode(req->body, req->len, &a, &q) != SL_OK) {
        sl_bin_malformed(c, r, "METADATA");
        goto out;
    }
    memset(&s, 0, sizeof(s));
    if (q.ntopics == 0) {
        all = sl_topics_sorted(b->topics, &n);
        s.topics = sl_arena_alloc(&a, sizeof(sl_meta_topic) * (n + 1));
        if (!s.topics) {
            sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
            goto out;
        }
        /* only the topics the user may describe (Kafka does the same) */
        for (size_t i = 0; i < n; i++)
            if (sl_acl_conn_may_list(b, c, SL_RES_TOPIC, all[i]->name))
                fill_meta_topic(b, &a, all[i], &s.topics[s.ntopics++]);
    } else {
        s.topics = sl_arena_alloc(&a, sizeof(sl_meta_topic) * q.ntopics);
        if (!s.topics) {
            sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
            goto out;
        }
        for (uint32_t i = 0; i < q.ntopics; i++) {
            char name[SL_TOPIC_NAME_MAX + 1];
            sl_topic *t = NULL;
            sl_err rc = sl_bin_topic_cstr(q.topics[i], name, sizeof(name));
            if (rc == SL_OK) {
                t = sl_topics_find(b->topics, name);
                if (!t)
                    rc = SL_ERR_UNKNOWN_TOPIC;
            }
            if (t) {
                fill_meta_topic(b, &a, t, &s.topics[i]);
            } else {
                s.topics[i].name = q.topics[i];
                s.topics[i].error = rc;
            }
        }
        s.ntopics = q.ntopics;
    }
    /* version 2: leaders, replicas, ISR and the brokers (cluster.c); 3:
     * and the brokers' TLS addresses */
    s.version = req->api_version;
    if (s.version >= 2)
        sl_bcluster_meta_fill(b, &a, &s);
    sl_bin_reply_wb(r, &wb,
                    sl_metadata_resp_encode(&wb, req->correlation_id, &s),
                    "METADATA");
out:
    free(all);
    sl_wb_fini(&wb);
    sl_arena_fini(&a);
}

/* ---- 2 CREATE_TOPICS, 3 DELETE_TOPICS, 4 LIST_TOPICS
 * ------------------------- */

/* One CREATE_TOPICS entry: create it (with its configs) and say how it
 * went. */
static sl_topic_result create_one(sl_broker *b, sl_arena *a,
                                  const sl_create_topic *ct)
{
    sl_topic_result res = {.name = ct->name};
    char name[SL_TOPIC_NAME_MAX + 1], err[256] = "";
    const char **keys, **vals;
    sl_err rc;

    keys = sl_arena_alloc(a, sizeof(char *) * (ct->nconfigs + 1));
    vals = sl_arena_alloc(a, sizeof(char *) * (ct->nconfigs + 1));
    rc = sl_bin_topic_cstr(ct->name, name, sizeof(name));
    if (rc != SL_OK) {
        snprintf(err, sizeof(err),
                 "invalid topic name: use 1..249 of [A-Za-z0-9._-]");
    } else if (!keys || !vals) {
        rc = SL_ERR_NOMEM;
    } else if (ct->partitions > 10000) {
        rc = SL_ERR_INVALID_CONFIG;
        snprintf(err, sizeof(err), "%u partitions is more than 10000",
                 ct->partitions);
    } else {
        for (uint32_t k = 0; k < ct->nconfigs; k++) {
            keys[k] = sl_bin_arena_str(a, ct->configs[k].key).p;
            vals[k] = sl_bin_arena_str(a, ct->configs[k].value).p;
            if (!keys[k] || !vals[k]) {
                rc = SL_ERR_INVALID_CONFIG;
                snprintf(err, sizeof(err), "config %u: null key/value", k);
            }
        }
        if (rc == SL_OK)
            rc = sl_ops_topic_create(b, name, (int32_t)ct->partitions, keys,
                                     vals, ct->nconfigs, err, sizeof(err));
    }
    res.error = rc;
    if (rc != SL_OK)
        res.message =
            sl_bin_arena_str(a, sl_str_c(err[0] ? err : sl_strerror(rc)));
    return res;
}

/* One DELETE_TOPICS entry. */
static sl_topic_result delete_one(sl_broker *b, sl_str topic)
{
    sl_topic_result res = {.name = topic};
    char name[SL_TOPIC_NAME_MAX + 1];
    sl_err rc = sl_bin_topic_cstr(topic, name, sizeof(name));
    if (rc == SL_OK)
        rc = sl_ops_topic_delete(b, name);
    res.error = rc;
    if (rc != SL_OK)
        res.message = sl_str_c(sl_strerror(rc));
    return res;
}

/* CREATE_TOPICS and DELETE_TOPICS: one result per topic, in request
 * order (sl_topics_result_resp, the same shape for both). */
static void h_topics_change(sl_broker *b, sl_conn *c, const sl_req *req,
                            sl_reply *r)
{
    int create = req->api_key == SL_API_CREATE_TOPICS;
    const char *api = create ? "CREATE_TOPICS" : "DELETE_TOPICS";
    sl_arena a;
    sl_wb wb;
    sl_create_topics_req cq;
    sl_delete_topics_req dq;
    sl_topics_result_resp s;
    sl_err rc;

    sl_arena_init(&a);
    sl_wb_init(&wb, 256);
    rc = create ? sl_create_topics_req_decode(req->body, req->len, &a, &cq)
                : sl_delete_topics_req_decode(req->body, req->len, &a, &dq);
    if (rc != SL_OK) {
        sl_bin_malformed(c, r, api);
        goto out;
    }
    memset(&s, 0, sizeof(s));
    s.ntopics = create ? cq.ntopics : dq.ntopics;
    s.topics = sl_arena_alloc(&a, sizeof(sl_topic_result) * (s.ntopics + 1));
    if (!s.topics) {
        sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < s.ntopics; i++)
        s.topics[i] = create ? create_one(b, &a, &cq.topics[i])
                             : delete_one(b, dq.topics[i]);
    rc = create ? sl_create_topics_resp_encode(&wb, req->correlation_id, &s)
                : sl_delete_topics_resp_encode(&wb, req->correlation_id, &s);
    sl_bin_reply_wb(r, &wb, rc, api);
out:
    sl_wb_fini(&wb);
    sl_arena_fini(&a);
}

static void h_list_topics(sl_broker *b, sl_conn *c, const sl_req *req,
                          sl_reply *r)
{
    sl_wb wb;
    sl_list_topics_resp s;
    sl_topic **all;
    size_t n = 0;

    if (sl_list_topics_req_decode(req->body, req->len) != SL_OK) {
        sl_bin_malformed(c, r, "LIST_TOPICS");
        return;
    }
    sl_wb_init(&wb, 256);
    all = sl_topics_sorted(b->topics, &n);
    memset(&s, 0, sizeof(s));
    s.topics = calloc(n + 1, sizeof(sl_topic_entry));
    if (!all || !s.topics) {
        sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (!sl_acl_conn_may_list(b, c, SL_RES_TOPIC, all[i]->name))
            continue; /* not the user's to see */
        s.topics[s.ntopics].name = sl_str_c(all[i]->name);
        s.topics[s.ntopics].partitions = (uint32_t)all[i]->nparts;
        s.ntopics++;
    }
    sl_bin_reply_wb(r, &wb,
                    sl_list_topics_resp_encode(&wb, req->correlation_id, &s),
                    "LIST_TOPICS");
out:
    free(s.topics);
    free(all);
    sl_wb_fini(&wb);
}

void sl_binary_topics_register(sl_broker *b)
{
    sl_binary_register(b, SL_API_HANDSHAKE, 1, 1, h_handshake);
    sl_binary_register(b, SL_API_METADATA, 1, 3, h_metadata);
    sl_binary_register(b, SL_API_CREATE_TOPICS, 1, 1, h_topics_change);
    sl_binary_register(b, SL_API_DELETE_TOPICS, 1, 1, h_topics_change);
    sl_binary_register(b, SL_API_LIST_TOPICS, 1, 1, h_list_topics);
}
