/*
 * Unit tests for the binary protocol codec (protocol/api.h, frame.h):
 * - every request and response round trips: encode -> frame checks ->
 *   decode -> re-encode gives the same bytes, plus field checks;
 * - every strict prefix of every body fails with SL_ERR_MALFORMED, and so
 *   does a body with a trailing byte (bodies are copied into exact-size heap
 *   buffers so ASan catches any over-read);
 * - huge counts are rejected before allocating; mutated bodies never crash;
 * - frames: peek, too large, partial, unknown api and version;
 * - the zero-copy FETCH / QUEUE_ACQUIRE encoders give the same bytes as the
 *   copying ones.
 *
 * `test_protocol_api --examples` prints the hex examples of
 * docs/protocol.md, `--errors` its error code table, instead of running
 * the tests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "protocol/api.h"
#include "protocol/batch.h"
#include "protocol/frame.h"

#define CORR 0x01020304u

/* ---- sample data ------------------------------------------------------ */

/* One record batch with two records, built once. */
static uint8_t *g_batch;
static size_t g_batch_len;

static void make_batch(void)
{
    sl_batch_builder bb;
    const uint8_t *p;
    size_t len;
    if (g_batch)
        return;
    sl_bb_init(&bb, SL_CODEC_NONE);
    assert_int_equal(sl_bb_add(&bb, 1700000000000, "k", 1, "v1", 2, NULL, 0),
                     SL_OK);
    assert_int_equal(sl_bb_add(&bb, 1700000000001, NULL, 0, "v2", 2, NULL, 0),
                     SL_OK);
    assert_int_equal(sl_bb_finish(&bb, &p, &len), SL_OK);
    g_batch = malloc(len);
    memcpy(g_batch, p, len);
    g_batch_len = len;
    sl_bb_fini(&bb);
}

/* Two batches back to back (records field of a produce request). */
static uint8_t g_two[1024];
static size_t g_two_len;

static void make_two(void)
{
    make_batch();
    memcpy(g_two, g_batch, g_batch_len);
    memcpy(g_two + g_batch_len, g_batch, g_batch_len);
    g_two_len = 2 * g_batch_len;
}

static sl_str S(const char *s)
{
    return sl_str_c(s);
}

/* Each builder appends one frame of its kind (with sample content) to wb. */

static sl_err b_handshake_req(sl_wb *wb)
{
    sl_api_range r[2] = {{SL_API_PRODUCE, 1, 1}, {SL_API_FETCH, 1, 3}};
    sl_handshake_req q = {S("sluice-cli"), 2, r};
    return sl_handshake_req_encode(wb, CORR, &q);
}

static sl_err b_handshake_resp(sl_wb *wb)
{
    sl_api_range r[2] = {{SL_API_HANDSHAKE, 1, 1}, {SL_API_PRODUCE, 1, 1}};
    sl_handshake_resp q = {0};
    q.server_name = S("sluiced");
    q.server_version = S("0.1.0");
    q.max_frame = SL_DEFAULT_MAX_FRAME;
    q.napis = 2;
    q.apis = r;
    return sl_handshake_resp_encode(wb, CORR, &q);
}

static sl_err b_metadata_req(sl_wb *wb)
{
    sl_str t[2] = {S("orders"), S("")};
    sl_metadata_req q = {2, t, 0};
    return sl_metadata_req_encode(wb, CORR, &q);
}

static sl_err b_metadata_resp(sl_wb *wb)
{
    sl_meta_part p[2] = {{0, 0, 10, 0, 0, 0, NULL, 0, NULL},
                         {1, 5, 7, 0, 0, 0, NULL, 0, NULL}};
    sl_kv kv[1] = {{S("retention.ms"), S("604800000")}};
    sl_meta_topic t[2] = {{S("orders"), SL_OK, 2, p, 1, kv},
                          {S("nope"), SL_ERR_UNKNOWN_TOPIC, 0, NULL, 0, NULL}};
    sl_metadata_resp q = {0};
    q.ntopics = 2;
    q.topics = t;
    return sl_metadata_resp_encode(wb, CORR, &q);
}

static sl_err b_create_topics_req(sl_wb *wb)
{
    sl_kv kv[2] = {{S("flush"), S("always")}, {S("x"), {NULL, 0}}};
    sl_create_topic t[2] = {{S("orders"), 3, 2, kv}, {S("b"), 0, 0, NULL}};
    sl_create_topics_req q = {2, t};
    return sl_create_topics_req_encode(wb, CORR, &q);
}

static sl_err b_topics_result_resp(sl_wb *wb)
{
    sl_topic_result t[2] = {
        {S("orders"), SL_OK, {NULL, 0}},
        {S("b"), SL_ERR_TOPIC_EXISTS, S("topic 'b' already exists")}};
    sl_create_topics_resp q = {0};
    q.ntopics = 2;
    q.topics = t;
    return sl_create_topics_resp_encode(wb, CORR, &q);
}

static sl_err b_delete_topics_req(sl_wb *wb)
{
    sl_str t[1] = {S("orders")};
    sl_delete_topics_req q = {1, t};
    return sl_delete_topics_req_encode(wb, CORR, &q);
}

static sl_err b_delete_topics_resp(sl_wb *wb)
{
    sl_topic_result t[1] = {{S("orders"), SL_OK, {NULL, 0}}};
    sl_delete_topics_resp q = {0};
    q.ntopics = 1;
    q.topics = t;
    return sl_delete_topics_resp_encode(wb, CORR, &q);
}

static sl_err b_list_topics_req(sl_wb *wb)
{
    return sl_list_topics_req_encode(wb, CORR);
}

static sl_err b_list_topics_resp(sl_wb *wb)
{
    sl_topic_entry t[2] = {{S("orders"), 3}, {S("orders.DLQ"), 1}};
    sl_list_topics_resp q = {0};
    q.ntopics = 2;
    q.topics = t;
    return sl_list_topics_resp_encode(wb, CORR, &q);
}

static sl_err b_produce_req(sl_wb *wb)
{
    sl_produce_part p[2] = {{0, g_two, g_two_len}, {2, g_batch, g_batch_len}};
    sl_produce_topic t[1] = {{S("orders"), 2, p}};
    sl_produce_req q = {SL_ACKS_DURABLE, 5000, 1, t};
    return sl_produce_req_encode(wb, CORR, &q);
}

static sl_err b_produce_resp(sl_wb *wb)
{
    sl_produce_part_resp p[2] = {{0, SL_OK, 100, 103, 104},
                                 {2, SL_ERR_CORRUPT, -1, -1, 7}};
    sl_produce_topic_resp t[1] = {{S("orders"), 2, p}};
    sl_produce_resp q = {0};
    q.ntopics = 1;
    q.topics = t;
    return sl_produce_resp_encode(wb, CORR, &q);
}

static sl_err b_fetch_req(sl_wb *wb)
{
    sl_fetch_part p[2] = {{0, 100, 1 << 20, 0, -1, 0}, {1, 0, 65536, 0, -1, 0}};
    sl_fetch_topic t[1] = {{S("orders"), 2, p}};
    sl_fetch_req q = {500, 1, 8 << 20, 1, t, 0, 0};
    return sl_fetch_req_encode(wb, CORR, &q);
}

static sl_err b_fetch_resp(sl_wb *wb)
{
    sl_fetch_part_resp p[2] = {
        {0, SL_OK, 102, 0, 102, g_batch, g_batch_len},
        {1, SL_ERR_OFFSET_OUT_OF_RANGE, 7, 5, 7, NULL, 0}};
    sl_fetch_topic_resp t[1] = {{S("orders"), 2, p}};
    sl_fetch_resp q = {0};
    q.ntopics = 1;
    q.topics = t;
    return sl_fetch_resp_encode(wb, CORR, &q);
}

static sl_err b_list_offsets_req(sl_wb *wb)
{
    sl_lo_part p[3] = {
        {0, SL_OFFSET_LATEST}, {1, SL_OFFSET_EARLIEST}, {2, 1700000000000}};
    sl_lo_topic t[1] = {{S("orders"), 3, p}};
    sl_list_offsets_req q = {1, t};
    return sl_list_offsets_req_encode(wb, CORR, &q);
}

static sl_err b_list_offsets_resp(sl_wb *wb)
{
    sl_lo_part_resp p[2] = {{0, SL_OK, 104}, {9, SL_ERR_UNKNOWN_PARTITION, -1}};
    sl_lo_topic_resp t[1] = {{S("orders"), 2, p}};
    sl_list_offsets_resp q = {0};
    q.ntopics = 1;
    q.topics = t;
    return sl_list_offsets_resp_encode(wb, CORR, &q);
}

static sl_err b_group_join_req(sl_wb *wb)
{
    sl_str t[2] = {S("orders"), S("payments")};
    sl_group_join_req q = {S("billing"),
                           {NULL, 0},
                           S("worker-1"),
                           10000,
                           30000,
                           SL_ASSIGN_RANGE,
                           2,
                           t};
    return sl_group_join_req_encode(wb, CORR, &q);
}

static uint32_t g_parts[3] = {0, 2, 5};

static sl_err b_group_join_resp(sl_wb *wb)
{
    sl_topic_parts a[2] = {{S("orders"), 2, g_parts}, {S("payments"), 0, NULL}};
    sl_group_join_resp q = {0};
    q.member_id = S("billing-7f3a");
    q.generation = 3;
    q.heartbeat_interval_ms = 3000;
    q.ntopics = 2;
    q.assignment = a;
    return sl_group_join_resp_encode(wb, CORR, &q);
}

static sl_err b_heartbeat_req(sl_wb *wb)
{
    sl_group_member_req q = {S("billing"), S("billing-7f3a"), 3};
    return sl_group_member_req_encode(wb, SL_API_GROUP_HEARTBEAT, CORR, &q);
}

static sl_err b_leave_req(sl_wb *wb)
{
    sl_group_member_req q = {S("billing"), S("billing-7f3a"), 0};
    return sl_group_member_req_encode(wb, SL_API_GROUP_LEAVE, CORR, &q);
}

static sl_err b_status_ok(sl_wb *wb)
{
    return sl_status_resp_encode(wb, CORR, SL_OK, NULL);
}

static sl_err b_status_rebalance(sl_wb *wb)
{
    return sl_status_resp_encode(wb, CORR, SL_ERR_REBALANCE,
                                 "group billing is rebalancing");
}

static sl_err b_offset_commit_req(sl_wb *wb)
{
    sl_commit_part p[2] = {{0, 104, S("")}, {2, 7, {NULL, 0}}};
    sl_commit_topic t[1] = {{S("orders"), 2, p}};
    sl_offset_commit_req q = {S("billing"), S("billing-7f3a"), 3, 1, t};
    return sl_offset_commit_req_encode(wb, CORR, &q);
}

static sl_err b_offset_commit_resp(sl_wb *wb)
{
    sl_part_err p[2] = {{0, SL_OK}, {2, SL_ERR_REBALANCE}};
    sl_part_err_topic t[1] = {{S("orders"), 2, p}};
    sl_offset_commit_resp q = {0};
    q.ntopics = 1;
    q.topics = t;
    return sl_offset_commit_resp_encode(wb, CORR, &q);
}

static sl_err b_offset_fetch_req(sl_wb *wb)
{
    sl_topic_parts t[1] = {{S("orders"), 3, g_parts}};
    sl_offset_fetch_req q = {S("billing"), 1, t};
    return sl_offset_fetch_req_encode(wb, CORR, &q);
}

static sl_err b_offset_fetch_resp(sl_wb *wb)
{
    sl_committed_part p[2] = {{0, SL_OK, 104, S("m")},
                              {2, SL_OK, -1, {NULL, 0}}};
    sl_committed_topic t[1] = {{S("orders"), 2, p}};
    sl_offset_fetch_resp q = {0};
    q.ntopics = 1;
    q.topics = t;
    return sl_offset_fetch_resp_encode(wb, CORR, &q);
}

static sl_err b_group_list_req(sl_wb *wb)
{
    return sl_group_list_req_encode(wb, CORR);
}

static sl_err b_group_list_resp(sl_wb *wb)
{
    sl_group_entry g[2] = {{S("billing"), SL_GROUP_STREAM, S("Stable"), 2},
                           {S("jobs"), SL_GROUP_QUEUE, S("Active"), 4}};
    sl_group_list_resp q = {0};
    q.ngroups = 2;
    q.groups = g;
    return sl_group_list_resp_encode(wb, CORR, &q);
}

static sl_err b_group_describe_req(sl_wb *wb)
{
    sl_group_describe_req q = {S("jobs")};
    return sl_group_describe_req_encode(wb, CORR, &q);
}

static sl_err b_group_describe_resp(sl_wb *wb)
{
    sl_tp as[2] = {{S("orders"), 0}, {S("orders"), 1}};
    sl_member_desc m[2] = {{S("billing-7f3a"), S("worker-1@127.0.0.1"), 2, as},
                           {S("billing-9c01"), S("worker-2"), 0, NULL}};
    sl_group_part_desc p[2] = {{S("orders"), 0, 100, 104, 4, 3},
                               {S("orders"), 1, 7, 7, 0, 0}};
    sl_group_describe_resp q = {0};
    q.group = S("billing");
    q.kind = SL_GROUP_QUEUE;
    q.state = S("Active");
    q.generation = 0;
    q.dlq_topic = S("orders.DLQ");
    q.dlq_depth = 12;
    q.nmembers = 2;
    q.members = m;
    q.nparts = 2;
    q.parts = p;
    return sl_group_describe_resp_encode(wb, CORR, &q);
}

static sl_err b_queue_acquire_req(sl_wb *wb)
{
    sl_queue_acquire_req q = {S("jobs"), S("orders"), S("c-1"), 100,
                              1 << 20,   0,           5000};
    return sl_queue_acquire_req_encode(wb, CORR, &q);
}

static sl_err b_queue_acquire_resp(sl_wb *wb)
{
    sl_qentry e[2] = {{0, 1, 0, 1700000030000}, {1, 3, 2, 1700000030000}};
    sl_qacq_part p[2] = {{0, 2, e, g_batch, g_batch_len},
                         {1, 0, NULL, NULL, 0}};
    sl_queue_acquire_resp q = {0};
    q.nparts = 2;
    q.parts = p;
    return sl_queue_acquire_resp_encode(wb, CORR, &q);
}

static sl_err settle(sl_wb *wb, uint16_t api)
{
    sl_qrange r[2] = {{0, 1, 1000, 30000, S("bad payload")},
                      {5, 5, -1, 1, {NULL, 0}}};
    sl_qsettle_part p[2] = {{0, 2, r}, {1, 1, r + 1}};
    sl_qsettle_req q = {S("jobs"), S("orders"), S("c-1"), 2, p};
    return sl_qsettle_req_encode(wb, api, CORR, &q);
}

static sl_err b_ack_req(sl_wb *wb)
{
    return settle(wb, SL_API_QUEUE_ACK);
}
static sl_err b_nack_req(sl_wb *wb)
{
    return settle(wb, SL_API_QUEUE_NACK);
}
static sl_err b_reject_req(sl_wb *wb)
{
    return settle(wb, SL_API_QUEUE_REJECT);
}
static sl_err b_touch_req(sl_wb *wb)
{
    return settle(wb, SL_API_QUEUE_TOUCH);
}

static sl_err b_qsettle_resp(sl_wb *wb)
{
    sl_qrange_result r[2] = {{0, 1, SL_OK}, {5, 5, SL_ERR_NOT_ACQUIRED}};
    sl_qsettle_part_resp p[2] = {{0, 1, r}, {1, 1, r + 1}};
    sl_qsettle_resp q = {0};
    q.nparts = 2;
    q.parts = p;
    return sl_qsettle_resp_encode(wb, CORR, &q);
}

static sl_err b_dlq_list_req(sl_wb *wb)
{
    sl_dlq_list_req q = {S("orders"), {NULL, 0}};
    return sl_dlq_list_req_encode(wb, CORR, &q);
}

static sl_err b_dlq_list_resp(sl_wb *wb)
{
    sl_dlq_entry d[1] = {{S("orders.DLQ"), S("orders"), S("jobs"), 12, 0, 12}};
    sl_dlq_list_resp q = {0};
    q.ndlqs = 1;
    q.dlqs = d;
    return sl_dlq_list_resp_encode(wb, CORR, &q);
}

static sl_err b_dlq_redrive_req(sl_wb *wb)
{
    sl_dlq_redrive_req q = {
        S("orders.DLQ"), {NULL, 0}, S("rejected"), 1000, 100};
    return sl_dlq_redrive_req_encode(wb, CORR, &q);
}

static sl_err b_dlq_redrive_resp(sl_wb *wb)
{
    sl_dlq_redrive_resp q = {0};
    q.moved = 10;
    q.skipped = 2;
    return sl_dlq_redrive_resp_encode(wb, CORR, &q);
}

static sl_err b_qgc_req(sl_wb *wb)
{
    sl_kv kv[2] = {{S("max_deliveries"), S("5")}, {S("lock_ms"), S("30000")}};
    sl_queue_group_config_req q = {S("jobs"), S("orders"), SL_QGC_UPSERT, 2,
                                   kv};
    return sl_queue_group_config_req_encode(wb, CORR, &q);
}

static sl_err b_qgc_resp(sl_wb *wb)
{
    sl_kv kv[2] = {{S("max_deliveries"), S("5")},
                   {S("dlq_topic"), S("orders.DLQ")}};
    sl_queue_group_config_resp q = {0};
    q.nconfigs = 2;
    q.configs = kv;
    return sl_queue_group_config_resp_encode(wb, CORR, &q);
}

static sl_err b_admin_req(sl_wb *wb)
{
    sl_kv kv[2] = {{S("topic"), S("orders")}, {S("group"), S("workers")}};
    sl_admin_req q = {S("queue.purge"), 2, kv};
    return sl_admin_req_encode(wb, CORR, &q);
}

static sl_err b_admin_resp(sl_wb *wb)
{
    static const char j[] = "{\"purged\":3}";
    sl_admin_resp q = {0};
    q.json = (const uint8_t *)j;
    q.json_len = sizeof(j) - 1;
    return sl_admin_resp_encode(wb, CORR, &q);
}

/* ---- decode (and re-encode) wrappers ---------------------------------- */

/* Decode body; when re != NULL, encode the result again into re. */
typedef sl_err (*rt_fn)(uint8_t *b, size_t n, sl_arena *a, sl_wb *re);

#define RT_A(fn, T)                                                            \
    static sl_err rt_##fn(uint8_t *b, size_t n, sl_arena *a, sl_wb *re)        \
    {                                                                          \
        T o;                                                                   \
        sl_err rc = sl_##fn##_decode(b, n, a, &o);                             \
        if (rc == SL_OK && re)                                                 \
            rc = sl_##fn##_encode(re, CORR, &o);                               \
        return rc;                                                             \
    }
#define RT_N(fn, T)                                                            \
    static sl_err rt_##fn(uint8_t *b, size_t n, sl_arena *a, sl_wb *re)        \
    {                                                                          \
        T o;                                                                   \
        sl_err rc = sl_##fn##_decode(b, n, &o);                                \
        (void)a;                                                               \
        if (rc == SL_OK && re)                                                 \
            rc = sl_##fn##_encode(re, CORR, &o);                               \
        return rc;                                                             \
    }

RT_A(handshake_req, sl_handshake_req)
RT_A(handshake_resp, sl_handshake_resp)
RT_A(metadata_req, sl_metadata_req)
RT_A(metadata_resp, sl_metadata_resp)
RT_A(create_topics_req, sl_create_topics_req)
RT_A(create_topics_resp, sl_create_topics_resp)
RT_A(delete_topics_req, sl_delete_topics_req)
RT_A(delete_topics_resp, sl_delete_topics_resp)
RT_A(list_topics_resp, sl_list_topics_resp)
RT_A(produce_req, sl_produce_req)
RT_A(produce_resp, sl_produce_resp)
RT_A(fetch_req, sl_fetch_req)
RT_A(fetch_resp, sl_fetch_resp)
RT_A(list_offsets_req, sl_list_offsets_req)
RT_A(list_offsets_resp, sl_list_offsets_resp)
RT_A(group_join_req, sl_group_join_req)
RT_A(group_join_resp, sl_group_join_resp)
RT_A(offset_commit_req, sl_offset_commit_req)
RT_A(offset_commit_resp, sl_offset_commit_resp)
RT_A(offset_fetch_req, sl_offset_fetch_req)
RT_A(offset_fetch_resp, sl_offset_fetch_resp)
RT_A(group_list_resp, sl_group_list_resp)
RT_N(group_describe_req, sl_group_describe_req)
RT_A(group_describe_resp, sl_group_describe_resp)
RT_N(queue_acquire_req, sl_queue_acquire_req)
RT_A(queue_acquire_resp, sl_queue_acquire_resp)
RT_A(qsettle_resp, sl_qsettle_resp)
RT_N(dlq_list_req, sl_dlq_list_req)
RT_A(dlq_list_resp, sl_dlq_list_resp)
RT_N(dlq_redrive_req, sl_dlq_redrive_req)
RT_N(dlq_redrive_resp, sl_dlq_redrive_resp)
RT_A(queue_group_config_req, sl_queue_group_config_req)
RT_A(queue_group_config_resp, sl_queue_group_config_resp)
RT_A(admin_req, sl_admin_req)
RT_N(admin_resp, sl_admin_resp)

static sl_err rt_list_topics_req(uint8_t *b, size_t n, sl_arena *a, sl_wb *re)
{
    sl_err rc = sl_list_topics_req_decode(b, n);
    (void)a;
    if (rc == SL_OK && re)
        rc = sl_list_topics_req_encode(re, CORR);
    return rc;
}

static sl_err rt_group_list_req(uint8_t *b, size_t n, sl_arena *a, sl_wb *re)
{
    sl_err rc = sl_group_list_req_decode(b, n);
    (void)a;
    if (rc == SL_OK && re)
        rc = sl_group_list_req_encode(re, CORR);
    return rc;
}

static sl_err rt_member(uint16_t api, uint8_t *b, size_t n, sl_wb *re)
{
    sl_group_member_req o;
    sl_err rc = sl_group_member_req_decode(api, b, n, &o);
    if (rc == SL_OK && re)
        rc = sl_group_member_req_encode(re, api, CORR, &o);
    return rc;
}
static sl_err rt_heartbeat_req(uint8_t *b, size_t n, sl_arena *a, sl_wb *re)
{
    (void)a;
    return rt_member(SL_API_GROUP_HEARTBEAT, b, n, re);
}
static sl_err rt_leave_req(uint8_t *b, size_t n, sl_arena *a, sl_wb *re)
{
    (void)a;
    return rt_member(SL_API_GROUP_LEAVE, b, n, re);
}

static sl_err rt_status(uint8_t *b, size_t n, sl_arena *a, sl_wb *re)
{
    int32_t err;
    sl_str msg;
    char buf[256];
    sl_err rc = sl_status_resp_decode(b, n, &err, &msg);
    (void)a;
    if (rc == SL_OK && re) {
        snprintf(buf, sizeof(buf), "%.*s", (int)msg.len, msg.p ? msg.p : "");
        rc = sl_status_resp_encode(re, CORR, err, msg.p ? buf : NULL);
    }
    return rc;
}

static sl_err rt_settle(uint16_t api, uint8_t *b, size_t n, sl_arena *a,
                        sl_wb *re)
{
    sl_qsettle_req o;
    sl_err rc = sl_qsettle_req_decode(api, b, n, a, &o);
    if (rc == SL_OK && re)
        rc = sl_qsettle_req_encode(re, api, CORR, &o);
    return rc;
}
static sl_err rt_ack_req(uint8_t *b, size_t n, sl_arena *a, sl_wb *re)
{
    return rt_settle(SL_API_QUEUE_ACK, b, n, a, re);
}
static sl_err rt_nack_req(uint8_t *b, size_t n, sl_arena *a, sl_wb *re)
{
    return rt_settle(SL_API_QUEUE_NACK, b, n, a, re);
}
static sl_err rt_reject_req(uint8_t *b, size_t n, sl_arena *a, sl_wb *re)
{
    return rt_settle(SL_API_QUEUE_REJECT, b, n, a, re);
}
static sl_err rt_touch_req(uint8_t *b, size_t n, sl_arena *a, sl_wb *re)
{
    return rt_settle(SL_API_QUEUE_TOUCH, b, n, a, re);
}

/* ---- the case table --------------------------------------------------- */

typedef struct tcase {
    const char *name;
    int is_req;
    uint16_t api;
    sl_err (*build)(sl_wb *wb);
    rt_fn rt;
} tcase;

#define REQ(api, b, r)                                                         \
    {                                                                          \
#b, 1, SL_API_##api, b_##b, rt_##r                                     \
    }
#define RESP(api, b, r)                                                        \
    {                                                                          \
#b, 0, SL_API_##api, b_##b, rt_##r                                     \
    }

static const tcase cases[] = {
    REQ(HANDSHAKE, handshake_req, handshake_req),
    RESP(HANDSHAKE, handshake_resp, handshake_resp),
    REQ(METADATA, metadata_req, metadata_req),
    RESP(METADATA, metadata_resp, metadata_resp),
    REQ(CREATE_TOPICS, create_topics_req, create_topics_req),
    RESP(CREATE_TOPICS, topics_result_resp, create_topics_resp),
    REQ(DELETE_TOPICS, delete_topics_req, delete_topics_req),
    RESP(DELETE_TOPICS, delete_topics_resp, delete_topics_resp),
    REQ(LIST_TOPICS, list_topics_req, list_topics_req),
    RESP(LIST_TOPICS, list_topics_resp, list_topics_resp),
    REQ(PRODUCE, produce_req, produce_req),
    RESP(PRODUCE, produce_resp, produce_resp),
    REQ(FETCH, fetch_req, fetch_req),
    RESP(FETCH, fetch_resp, fetch_resp),
    REQ(LIST_OFFSETS, list_offsets_req, list_offsets_req),
    RESP(LIST_OFFSETS, list_offsets_resp, list_offsets_resp),
    REQ(GROUP_JOIN, group_join_req, group_join_req),
    RESP(GROUP_JOIN, group_join_resp, group_join_resp),
    REQ(GROUP_HEARTBEAT, heartbeat_req, heartbeat_req),
    RESP(GROUP_HEARTBEAT, status_ok, status),
    RESP(GROUP_HEARTBEAT, status_rebalance, status),
    REQ(GROUP_LEAVE, leave_req, leave_req),
    REQ(OFFSET_COMMIT, offset_commit_req, offset_commit_req),
    RESP(OFFSET_COMMIT, offset_commit_resp, offset_commit_resp),
    REQ(OFFSET_FETCH, offset_fetch_req, offset_fetch_req),
    RESP(OFFSET_FETCH, offset_fetch_resp, offset_fetch_resp),
    REQ(GROUP_LIST, group_list_req, group_list_req),
    RESP(GROUP_LIST, group_list_resp, group_list_resp),
    REQ(GROUP_DESCRIBE, group_describe_req, group_describe_req),
    RESP(GROUP_DESCRIBE, group_describe_resp, group_describe_resp),
    REQ(QUEUE_ACQUIRE, queue_acquire_req, queue_acquire_req),
    RESP(QUEUE_ACQUIRE, queue_acquire_resp, queue_acquire_resp),
    REQ(QUEUE_ACK, ack_req, ack_req),
    REQ(QUEUE_NACK, nack_req, nack_req),
    REQ(QUEUE_REJECT, reject_req, reject_req),
    REQ(QUEUE_TOUCH, touch_req, touch_req),
    RESP(QUEUE_ACK, qsettle_resp, qsettle_resp),
    REQ(DLQ_LIST, dlq_list_req, dlq_list_req),
    RESP(DLQ_LIST, dlq_list_resp, dlq_list_resp),
    REQ(DLQ_REDRIVE, dlq_redrive_req, dlq_redrive_req),
    RESP(DLQ_REDRIVE, dlq_redrive_resp, dlq_redrive_resp),
    REQ(QUEUE_GROUP_CONFIG, qgc_req, queue_group_config_req),
    RESP(QUEUE_GROUP_CONFIG, qgc_resp, queue_group_config_resp),
    REQ(ADMIN, admin_req, admin_req),
    RESP(ADMIN, admin_resp, admin_resp),
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* Encode case c into wb (one frame); returns the body offset and length. */
static void frame_of(const tcase *c, sl_wb *wb, size_t *body_off,
                     size_t *body_len)
{
    size_t flen = 0;
    make_two();
    sl_wb_init(wb, 0);
    assert_int_equal(c->build(wb), SL_OK);
    assert_int_equal(sl_frame_peek(wb->p, wb->len, SL_DEFAULT_MAX_FRAME, &flen),
                     SL_OK);
    assert_int_equal(flen, wb->len);
    if (c->is_req) {
        sl_req_hdr h;
        assert_int_equal(sl_req_hdr_decode(wb->p, wb->len, &h), SL_OK);
        assert_int_equal(h.api_key, c->api);
        assert_int_equal(h.api_version, SL_API_V1);
        assert_int_equal(h.correlation_id, CORR);
        assert_int_equal(sl_api_check(h.api_key, h.api_version), SL_OK);
        *body_off = SL_REQ_HDR_SIZE;
    } else {
        uint32_t corr = 0;
        assert_int_equal(sl_resp_hdr_decode(wb->p, wb->len, &corr), SL_OK);
        assert_int_equal(corr, CORR);
        *body_off = SL_RESP_HDR_SIZE;
    }
    *body_len = wb->len - *body_off;
}

/* Run rt over an exact-size heap copy of body[0, n). */
static sl_err run_rt(const tcase *c, const uint8_t *body, size_t n, sl_wb *re)
{
    uint8_t *copy = malloc(n ? n : 1);
    sl_arena a;
    sl_err rc;
    assert_non_null(copy);
    if (n)
        memcpy(copy, body, n);
    sl_arena_init(&a);
    rc = c->rt(copy, n, &a, re);
    sl_arena_fini(&a);
    free(copy);
    return rc;
}

static void test_roundtrip_all(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        const tcase *c = &cases[i];
        sl_wb wb, re;
        size_t off, n;
        frame_of(c, &wb, &off, &n);
        sl_wb_init(&re, 0);
        if (run_rt(c, wb.p + off, n, &re) != SL_OK)
            fail_msg("%s: decode failed", c->name);
        if (re.len != wb.len || memcmp(re.p, wb.p, wb.len) != 0)
            fail_msg("%s: re-encoding differs (%zu vs %zu bytes)", c->name,
                     re.len, wb.len);
        sl_wb_fini(&re);
        sl_wb_fini(&wb);
    }
}

static void test_truncated_every_length(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        const tcase *c = &cases[i];
        sl_wb wb;
        size_t off, n;
        uint8_t *longer;
        frame_of(c, &wb, &off, &n);
        for (size_t l = 0; l < n; l++) {
            sl_err rc = run_rt(c, wb.p + off, l, NULL);
            if (rc != SL_ERR_MALFORMED)
                fail_msg("%s: prefix %zu/%zu gave %s", c->name, l, n,
                         sl_errname(rc));
        }
        /* And a trailing byte is malformed too. */
        longer = malloc(n + 1);
        memcpy(longer, wb.p + off, n);
        longer[n] = 0;
        if (run_rt(c, longer, n + 1, NULL) != SL_ERR_MALFORMED)
            fail_msg("%s: trailing byte accepted", c->name);
        /* The frame as a whole, cut short, is partial, never OK. */
        for (size_t l = 0; l < wb.len; l++) {
            size_t fl = 0;
            int r = sl_frame_peek(wb.p, l, SL_DEFAULT_MAX_FRAME, &fl);
            assert_int_equal(r, SL_FRAME_PARTIAL);
        }
        free(longer);
        sl_wb_fini(&wb);
    }
}

/* Overwrite every aligned-or-not 4-byte window with 0xFFFFFFFF and with
 * 0x7FFFFFFF, then flip single bytes: decoders must return cleanly. Under
 * ASan this is a small deterministic fuzz. */
static void test_mutations_never_crash(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        const tcase *c = &cases[i];
        sl_wb wb;
        size_t off, n;
        uint8_t *m;
        frame_of(c, &wb, &off, &n);
        m = malloc(n + 1);
        for (size_t at = 0; at + 4 <= n; at++) {
            static const uint32_t vals[] = {0xFFFFFFFFu, 0x7FFFFFFFu, 0x10000u};
            for (size_t v = 0; v < 3; v++) {
                sl_err rc;
                memcpy(m, wb.p + off, n);
                memcpy(m + at, &vals[v], 4);
                rc = run_rt(c, m, n, NULL);
                if (rc != SL_OK && rc != SL_ERR_MALFORMED)
                    fail_msg("%s: mutation at %zu gave %s", c->name, at,
                             sl_errname(rc));
            }
        }
        for (size_t at = 0; at < n; at++) {
            sl_err rc;
            memcpy(m, wb.p + off, n);
            m[at] ^= 0xA5;
            rc = run_rt(c, m, n, NULL);
            if (rc != SL_OK && rc != SL_ERR_MALFORMED)
                fail_msg("%s: flip at %zu gave %s", c->name, at,
                         sl_errname(rc));
        }
        free(m);
        sl_wb_fini(&wb);
    }
}

/* Random bodies (small, so counts are often plausible): every decoder
 * returns OK or MALFORMED and, under ASan, touches nothing outside. A
 * successful decode must re-encode without error. */
static void test_random_bodies(void **state)
{
    uint64_t x = 0x9E3779B97F4A7C15ull;
    uint8_t buf[96];
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        for (int it = 0; it < 3000; it++) {
            size_t n;
            sl_err rc;
            sl_wb re;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            n = (size_t)(x % sizeof(buf));
            for (size_t j = 0; j < n; j++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                /* Mostly small values, so lengths and counts fit. */
                buf[j] = (uint8_t)(x & 0x100 ? x & 0x3 : x >> 24);
            }
            sl_wb_init(&re, 0);
            rc = run_rt(&cases[i], buf, n, &re);
            if (rc != SL_OK && rc != SL_ERR_MALFORMED)
                fail_msg("%s: random body gave %s", cases[i].name,
                         sl_errname(rc));
            sl_wb_fini(&re);
        }
    }
}

/* Every response type carries a top-level error and message. */
/* FETCH versions 2 and 3 (a follower's): replica id, durable offsets and,
 * in 3, the leader epoch per partition, in request order. */
static void test_fetch_follower_versions(void **state)
{
    (void)state;
    sl_fetch_part p[2] = {{0, 100, 1 << 20, 90, 7, 0}, {1, 5, 65536, 5, 2, 0}};
    sl_fetch_topic t[1] = {{S("orders"), 2, p}};
    sl_fetch_req q = {250, 1, 8 << 20, 1, t, 3, 1}, o;
    sl_arena a;
    sl_wb wb;

    for (int v = 2; v <= 3; v++) {
        q.epochs = v == 3;
        sl_wb_init(&wb, 64);
        sl_arena_init(&a);
        assert_int_equal(sl_fetch_req_encode(&wb, CORR, &q), SL_OK);
        /* u32 length, u16 api, u16 version */
        assert_int_equal(wb.p[6] | wb.p[7] << 8, v);
        assert_int_equal(sl_fetch_req_decode(wb.p + 12, wb.len - 12, &a, &o),
                         SL_OK);
        assert_int_equal(o.replica_id, 3);
        assert_int_equal(o.epochs, v == 3);
        assert_int_equal(o.topics[0].parts[0].durable_offset, 90);
        assert_int_equal(o.topics[0].parts[1].durable_offset, 5);
        assert_int_equal(o.topics[0].parts[0].leader_epoch, v == 3 ? 7 : -1);
        assert_int_equal(o.topics[0].parts[1].leader_epoch, v == 3 ? 2 : -1);
        assert_int_equal(o.topics[0].parts[1].refused, 0);
        sl_arena_fini(&a);
        sl_wb_fini(&wb);
    }
}

static void test_error_responses(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        const tcase *c = &cases[i];
        sl_wb wb, re;
        int32_t err;
        sl_str msg;
        if (c->is_req)
            continue;
        sl_wb_init(&wb, 0);
        assert_int_equal(sl_resp_error_encode(&wb, CORR, SL_ERR_UNKNOWN_GROUP,
                                              "unknown group 'x'"),
                         SL_OK);
        sl_wb_init(&re, 0);
        if (run_rt(c, wb.p + SL_RESP_HDR_SIZE, wb.len - SL_RESP_HDR_SIZE,
                   &re) != SL_OK)
            fail_msg("%s: error response not decoded", c->name);
        if (re.len != wb.len || memcmp(re.p, wb.p, wb.len) != 0)
            fail_msg("%s: error response re-encoding differs", c->name);
        assert_int_equal(sl_resp_error_decode(wb.p + SL_RESP_HDR_SIZE,
                                              wb.len - SL_RESP_HDR_SIZE, &err,
                                              &msg),
                         SL_OK);
        assert_int_equal(err, SL_ERR_UNKNOWN_GROUP);
        assert_true(sl_str_eq(msg, "unknown group 'x'"));
        sl_wb_fini(&re);
        sl_wb_fini(&wb);
    }
}

/* ---- specific checks -------------------------------------------------- */

static void test_error_frame_bytes(void **state)
{
    sl_wb wb;
    static const uint8_t want[] = {
        0x0c, 0x00, 0x00, 0x00, /* length 12 */
        0x07, 0x00, 0x00, 0x00, /* corr 7 */
        0x05, 0x00, 0x00, 0x00, /* SL_ERR_UNSUPPORTED_API */
        0x02, 0x00, 'n',  'o',  /* str16 "no" */
    };
    (void)state;
    sl_wb_init(&wb, 0);
    assert_int_equal(sl_resp_error_encode(&wb, 7, SL_ERR_UNSUPPORTED_API, "no"),
                     SL_OK);
    assert_int_equal(wb.len, sizeof(want));
    assert_memory_equal(wb.p, want, sizeof(want));
    /* SL_OK is not an error response. */
    assert_int_equal(sl_resp_error_encode(&wb, 7, SL_OK, NULL),
                     SL_ERR_INVALID_ARG);
    assert_int_equal(wb.len, sizeof(want));
    sl_wb_fini(&wb);
}

static void test_frame_peek(void **state)
{
    uint8_t b[16] = {0};
    size_t fl = 0;
    uint32_t v;
    (void)state;
    assert_int_equal(sl_frame_peek(b, 3, 1024, &fl), SL_FRAME_PARTIAL);
    assert_int_equal(fl, 0); /* untouched: length not readable yet */
    v = 12;
    memcpy(b, &v, 4);
    assert_int_equal(sl_frame_peek(b, 4, 1024, &fl), SL_FRAME_PARTIAL);
    assert_int_equal(fl, 16);
    assert_int_equal(sl_frame_peek(b, 16, 1024, &fl), SL_OK);
    assert_int_equal(fl, 16);
    /* Too large is detected from the 4 length bytes alone. */
    v = 0xFFFFFFF0u;
    memcpy(b, &v, 4);
    assert_int_equal(sl_frame_peek(b, 4, SL_DEFAULT_MAX_FRAME, &fl),
                     SL_ERR_TOO_LARGE);
    v = 1021; /* 4 + 1021 = 1025 > 1024 */
    memcpy(b, &v, 4);
    assert_int_equal(sl_frame_peek(b, 4, 1024, &fl), SL_ERR_TOO_LARGE);
    v = 1020;
    memcpy(b, &v, 4);
    assert_int_equal(sl_frame_peek(b, 4, 1024, &fl), SL_FRAME_PARTIAL);
    /* Shorter than any header. */
    v = 7;
    memcpy(b, &v, 4);
    assert_int_equal(sl_frame_peek(b, 16, 1024, &fl), SL_ERR_MALFORMED);
    /* Header decode insists on a consistent length. */
    v = 8;
    memcpy(b, &v, 4);
    sl_req_hdr h;
    assert_int_equal(sl_req_hdr_decode(b, 12, &h), SL_OK);
    assert_int_equal(sl_req_hdr_decode(b, 13, &h), SL_ERR_MALFORMED);
    assert_int_equal(sl_req_hdr_decode(b, 11, &h), SL_ERR_MALFORMED);
    uint32_t corr;
    assert_int_equal(sl_resp_hdr_decode(b, 12, &corr), SL_OK);
    assert_int_equal(sl_resp_hdr_decode(b, 8, &corr), SL_ERR_MALFORMED);
}

static void test_api_table(void **state)
{
    size_t n;
    const sl_api_info *all = sl_api_all(&n);
    (void)state;
    assert_int_equal(n, 27);
    for (size_t i = 0; i < n; i++) {
        assert_ptr_equal(sl_api_lookup(all[i].key), &all[i]);
        assert_int_equal(sl_api_check(all[i].key, SL_API_V1), SL_OK);
        assert_int_equal(sl_api_check(all[i].key, 2),
                         SL_ERR_UNSUPPORTED_VERSION);
        assert_int_equal(sl_api_check(all[i].key, 0),
                         SL_ERR_UNSUPPORTED_VERSION);
        if (i)
            assert_true(all[i].key > all[i - 1].key);
    }
    assert_null(sl_api_lookup(8));
    assert_null(sl_api_lookup(9999));
    assert_int_equal(sl_api_check(8, 1), SL_ERR_UNSUPPORTED_API);
    assert_int_equal(sl_api_check(0xFFFF, 1), SL_ERR_UNSUPPORTED_API);
    assert_string_equal(sl_api_name(SL_API_PRODUCE), "PRODUCE");
    assert_string_equal(sl_api_name(SL_API_QUEUE_GROUP_CONFIG),
                        "QUEUE_GROUP_CONFIG");
    assert_string_equal(sl_api_name(SL_API_ADMIN), "ADMIN");
    assert_string_equal(sl_api_name(77), "UNKNOWN");
}

/* INIT_PRODUCER_ID (33): both directions, byte counts, bad bodies. */
static void test_init_producer_id_codec(void **state)
{
    sl_wb wb;
    sl_req_hdr h;
    sl_init_pid_req q = {-1, -1}, q2;
    sl_init_pid_resp s = {0}, s2;
    uint32_t corr;
    (void)state;
    sl_wb_init(&wb, 0);
    assert_int_equal(sl_init_pid_req_encode(&wb, 7, &q), SL_OK);
    assert_int_equal(wb.len, SL_REQ_HDR_SIZE + 10);
    assert_int_equal(sl_req_hdr_decode(wb.p, wb.len, &h), SL_OK);
    assert_int_equal(h.api_key, SL_API_INIT_PRODUCER_ID);
    assert_int_equal(sl_init_pid_req_decode(wb.p + SL_REQ_HDR_SIZE, 10, &q2),
                     SL_OK);
    assert_int_equal(q2.producer_id, -1);
    assert_int_equal(q2.producer_epoch, -1);
    assert_int_equal(sl_init_pid_req_decode(wb.p + SL_REQ_HDR_SIZE, 9, &q2),
                     SL_ERR_MALFORMED);
    sl_wb_reset(&wb);
    s.producer_id = (int64_t)3 << 42 | 12345;
    s.producer_epoch = 4;
    assert_int_equal(sl_init_pid_resp_encode(&wb, 9, &s), SL_OK);
    assert_int_equal(sl_resp_hdr_decode(wb.p, wb.len, &corr), SL_OK);
    assert_int_equal(corr, 9);
    assert_int_equal(sl_init_pid_resp_decode(wb.p + 8, wb.len - 8, &s2), SL_OK);
    assert_int_equal(s2.error, 0);
    assert_int_equal(s2.producer_id, s.producer_id);
    assert_int_equal(s2.producer_epoch, 4);
    assert_int_equal(sl_init_pid_resp_decode(wb.p + 8, wb.len - 9, &s2),
                     SL_ERR_MALFORMED);
    sl_wb_fini(&wb);
}

static void test_unknown_api_frame(void **state)
{
    /* A client sends api 99: the frame decodes, the key is rejected, and
     * the reply is an error-only frame with the same correlation id. */
    sl_wb wb, out;
    sl_req_hdr h;
    uint32_t corr;
    int32_t err;
    sl_str msg;
    size_t st;
    (void)state;
    sl_wb_init(&wb, 0);
    st = sl_req_begin(&wb, 99, 1, 42);
    sl_wb_u32(&wb, 0xdeadbeef);
    assert_int_equal(sl_frame_finish(&wb, st), SL_OK);
    assert_int_equal(sl_req_hdr_decode(wb.p, wb.len, &h), SL_OK);
    assert_int_equal(h.api_key, 99);
    assert_int_equal(sl_api_check(h.api_key, h.api_version),
                     SL_ERR_UNSUPPORTED_API);
    sl_wb_init(&out, 0);
    assert_int_equal(sl_resp_error_encode(&out, h.correlation_id,
                                          SL_ERR_UNSUPPORTED_API,
                                          "unknown api key 99"),
                     SL_OK);
    assert_int_equal(sl_resp_hdr_decode(out.p, out.len, &corr), SL_OK);
    assert_int_equal(corr, 42);
    assert_int_equal(sl_resp_error_decode(out.p + SL_RESP_HDR_SIZE,
                                          out.len - SL_RESP_HDR_SIZE, &err,
                                          &msg),
                     SL_OK);
    assert_int_equal(err, SL_ERR_UNSUPPORTED_API);
    assert_true(sl_str_eq(msg, "unknown api key 99"));
    sl_wb_fini(&wb);
    sl_wb_fini(&out);
}

static void test_huge_counts(void **state)
{
    /* Bodies that claim 4 billion elements in a few bytes. */
    uint8_t b[64];
    sl_arena a;
    uint32_t big = 0xFFFFFFFFu;
    sl_metadata_req mr;
    sl_produce_req pr;
    sl_fetch_resp fr;
    sl_qsettle_req sr;
    (void)state;
    sl_arena_init(&a);
    memset(b, 0, sizeof(b));
    memcpy(b, &big, 4);
    assert_int_equal(sl_metadata_req_decode(b, sizeof(b), &a, &mr),
                     SL_ERR_MALFORMED);
    assert_null(a.head); /* nothing was allocated */
    /* produce: acks, timeout, ntopics = 1, topic "t", nparts = huge */
    memset(b, 0, sizeof(b));
    b[0] = 1;
    b[5] = 1;
    b[9] = 1;
    b[11] = 't';
    memcpy(b + 12, &big, 4);
    assert_int_equal(sl_produce_req_decode(b, 16, &a, &pr), SL_ERR_MALFORMED);
    /* the records length is bigger than what is left */
    uint32_t one = 1;
    memcpy(b + 12, &one, 4);
    memcpy(b + 20, &big, 4);
    assert_int_equal(sl_produce_req_decode(b, 40, &a, &pr), SL_ERR_MALFORMED);
    /* fetch response: error OK, ntopics huge */
    memset(b, 0, sizeof(b));
    memcpy(b + 4, &big, 4);
    assert_int_equal(sl_fetch_resp_decode(b, 8, &a, &fr), SL_ERR_MALFORMED);
    /* A count that exactly fits the bytes is fine: 2 empty strings. */
    uint32_t two = 2;
    memset(b, 0, sizeof(b));
    memcpy(b, &two, 4);
    assert_int_equal(sl_metadata_req_decode(b, 8, &a, &mr), SL_OK);
    assert_int_equal(mr.ntopics, 2);
    assert_non_null(mr.topics[1].p);
    assert_int_equal(mr.topics[1].len, 0);
    /* ...one more is not. */
    uint32_t three = 3;
    memcpy(b, &three, 4);
    assert_int_equal(sl_metadata_req_decode(b, 8, &a, &mr), SL_ERR_MALFORMED);
    /* settle: a range with last < first is malformed */
    sl_wb wb;
    sl_qrange r = {10, 9, 0, 0, {NULL, 0}};
    sl_qsettle_part p = {0, 1, &r};
    sl_qsettle_req q = {S("g"), S("t"), S("c"), 1, &p};
    sl_wb_init(&wb, 0);
    assert_int_equal(sl_qsettle_req_encode(&wb, SL_API_QUEUE_ACK, 1, &q),
                     SL_ERR_INVALID_ARG);
    assert_int_equal(wb.len, 0);
    r.last = 10;
    assert_int_equal(sl_qsettle_req_encode(&wb, SL_API_QUEUE_ACK, 1, &q),
                     SL_OK);
    r.last = 9;
    memcpy(wb.p + wb.len - 8, &r.last, 8);
    assert_int_equal(sl_qsettle_req_decode(SL_API_QUEUE_ACK,
                                           wb.p + SL_REQ_HDR_SIZE,
                                           wb.len - SL_REQ_HDR_SIZE, &a, &sr),
                     SL_ERR_MALFORMED);
    assert_int_equal(sl_qsettle_req_decode(SL_API_PRODUCE,
                                           wb.p + SL_REQ_HDR_SIZE,
                                           wb.len - SL_REQ_HDR_SIZE, &a, &sr),
                     SL_ERR_MALFORMED);
    sl_wb_fini(&wb);
    sl_arena_fini(&a);
}

static void test_bad_enums(void **state)
{
    sl_wb wb;
    sl_arena a;
    sl_produce_req pr;
    sl_produce_topic t = {S("t"), 0, NULL};
    sl_produce_req q = {3, 0, 1, &t};
    (void)state;
    sl_wb_init(&wb, 0);
    sl_arena_init(&a);
    assert_int_equal(sl_produce_req_encode(&wb, 1, &q), SL_ERR_INVALID_ARG);
    assert_int_equal(wb.len, 0);
    q.acks = SL_ACKS_NONE;
    assert_int_equal(sl_produce_req_encode(&wb, 1, &q), SL_OK);
    wb.p[SL_REQ_HDR_SIZE] = 3; /* acks = 3 */
    assert_int_equal(sl_produce_req_decode(wb.p + SL_REQ_HDR_SIZE,
                                           wb.len - SL_REQ_HDR_SIZE, &a, &pr),
                     SL_ERR_MALFORMED);
    wb.p[SL_REQ_HDR_SIZE] = SL_ACKS_NONE;
    assert_int_equal(sl_produce_req_decode(wb.p + SL_REQ_HDR_SIZE,
                                           wb.len - SL_REQ_HDR_SIZE, &a, &pr),
                     SL_OK);
    assert_int_equal(pr.acks, SL_ACKS_NONE);
    /* A string of 65535 bytes cannot be encoded; the buffer is restored. */
    char *big = malloc(70000);
    memset(big, 'x', 70000);
    sl_str bs = {big, 65535};
    sl_metadata_req mq = {1, &bs, 0};
    size_t before = wb.len;
    assert_int_equal(sl_metadata_req_encode(&wb, 1, &mq), SL_ERR_TOO_LARGE);
    assert_int_equal(wb.len, before);
    assert_int_equal(wb.err, SL_OK);
    bs.len = 65534;
    assert_int_equal(sl_metadata_req_encode(&wb, 1, &mq), SL_OK);
    free(big);
    sl_wb_fini(&wb);
    sl_arena_fini(&a);
}

static void test_produce_in_place(void **state)
{
    /* The broker decodes a produce request, walks the batches of each
     * partition and writes base offsets into the request buffer. */
    sl_wb wb;
    sl_arena a;
    sl_produce_req r;
    size_t off = 0, boff, blen, nb = 0;
    sl_err e;
    (void)state;
    make_two();
    sl_wb_init(&wb, 0);
    sl_arena_init(&a);
    assert_int_equal(b_produce_req(&wb), SL_OK);
    uint8_t *body = wb.p + SL_REQ_HDR_SIZE;
    size_t blen_body = wb.len - SL_REQ_HDR_SIZE;
    assert_int_equal(sl_produce_req_decode(body, blen_body, &a, &r), SL_OK);
    assert_int_equal(r.acks, SL_ACKS_DURABLE);
    assert_int_equal(r.timeout_ms, 5000);
    assert_int_equal(r.ntopics, 1);
    assert_true(sl_str_eq(r.topics[0].topic, "orders"));
    assert_int_equal(r.topics[0].nparts, 2);
    sl_produce_part *p = &r.topics[0].parts[0];
    assert_int_equal(p->partition, 0);
    assert_true(p->records > body && p->records < body + blen_body);
    assert_int_equal(p->records_len, g_two_len);
    while (
        sl_records_next(p->records, p->records_len, &off, &boff, &blen, &e)) {
        sl_batch_hdr h;
        assert_int_equal(sl_batch_verify(p->records + boff, blen, &h), SL_OK);
        assert_int_equal(h.record_count, 2);
        sl_batch_set_base_offset(p->records + boff, 100 + 2 * (int64_t)nb);
        nb++;
    }
    assert_int_equal(e, SL_OK);
    assert_int_equal(nb, 2);
    /* The writes landed in the request buffer itself. */
    int64_t base;
    memcpy(&base, body + (p->records - body) + g_batch_len, 8);
    assert_int_equal(base, 102);
    /* A records field cut inside a batch is malformed. */
    off = 0;
    assert_int_equal(
        sl_records_next(p->records, p->records_len - 1, &off, &boff, &blen, &e),
        1);
    assert_int_equal(
        sl_records_next(p->records, p->records_len - 1, &off, &boff, &blen, &e),
        0);
    assert_int_equal(e, SL_ERR_MALFORMED);
    off = 0;
    assert_int_equal(sl_records_next(p->records, 10, &off, &boff, &blen, &e),
                     0);
    assert_int_equal(e, SL_ERR_MALFORMED);
    sl_wb_fini(&wb);
    sl_arena_fini(&a);
}

static void test_fetch_fields(void **state)
{
    sl_wb wb;
    sl_arena a;
    sl_fetch_resp r;
    (void)state;
    make_batch();
    sl_wb_init(&wb, 0);
    sl_arena_init(&a);
    assert_int_equal(b_fetch_resp(&wb), SL_OK);
    assert_int_equal(sl_fetch_resp_decode(wb.p + SL_RESP_HDR_SIZE,
                                          wb.len - SL_RESP_HDR_SIZE, &a, &r),
                     SL_OK);
    assert_int_equal(r.error, SL_OK);
    assert_null(r.error_msg.p);
    assert_int_equal(r.ntopics, 1);
    assert_true(sl_str_eq(r.topics[0].topic, "orders"));
    assert_int_equal(r.topics[0].nparts, 2);
    sl_fetch_part_resp *p0 = &r.topics[0].parts[0];
    sl_fetch_part_resp *p1 = &r.topics[0].parts[1];
    assert_int_equal(p0->high_watermark, 102);
    assert_int_equal(p0->records_len, g_batch_len);
    assert_memory_equal(p0->records, g_batch, g_batch_len);
    assert_int_equal(p1->partition, 1);
    assert_int_equal(p1->error, SL_ERR_OFFSET_OUT_OF_RANGE);
    assert_int_equal(p1->log_start_offset, 5);
    assert_int_equal(p1->records_len, 0);
    /* Iterate the records of the fetched batch. */
    sl_batch_iter it;
    sl_record rec;
    assert_int_equal(sl_batch_iter_init(&it, p0->records, p0->records_len),
                     SL_OK);
    assert_int_equal(sl_batch_iter_next(&it, &rec, NULL), 1);
    assert_int_equal(rec.value_len, 2);
    assert_memory_equal(rec.value, "v1", 2);
    sl_batch_iter_fini(&it);
    sl_wb_fini(&wb);
    sl_arena_fini(&a);
}

/* METADATA version 2: the placement section after the version 1 body
 * (docs/protocol.md 4.1) survives a round trip; version 1 has none. */
static void test_metadata_v2_placement(void **state)
{
    sl_wb wb;
    sl_arena a;
    sl_metadata_resp r;
    int32_t rep[3] = {2, 3, 1}, isr[2] = {2, 3};
    sl_meta_part p[2] = {{0, 0, 10, 2, 7, 3, rep, 2, isr},
                         {1, 5, 7, SL_META_LEADER_NONE, 4, 3, rep, 0, NULL}};
    sl_meta_topic t[1] = {{S("orders"), SL_OK, 2, p, 0, NULL}};
    sl_meta_broker br[2] = {{1, S("127.0.0.1:9001"), 1, S("127.0.0.1:9101")},
                            {2, S("127.0.0.1:9002"), 0, S("")}};
    sl_metadata_resp q = {0};
    (void)state;
    q.ntopics = 1;
    q.topics = t;
    q.version = 2;
    q.node_id = 3;
    q.nbrokers = 2;
    q.brokers = br;
    sl_wb_init(&wb, 0);
    sl_arena_init(&a);
    assert_int_equal(sl_metadata_resp_encode(&wb, CORR, &q), SL_OK);
    assert_int_equal(sl_metadata_resp_decode(wb.p + SL_RESP_HDR_SIZE,
                                             wb.len - SL_RESP_HDR_SIZE, &a, &r),
                     SL_OK);
    assert_int_equal(r.version, 2);
    assert_int_equal(r.node_id, 3);
    assert_int_equal(r.nbrokers, 2);
    assert_true(sl_str_eq(r.brokers[1].addr, "127.0.0.1:9002"));
    assert_int_equal(r.brokers[1].up, 0);
    assert_int_equal(r.topics[0].parts[0].leader, 2);
    assert_int_equal(r.topics[0].parts[0].leader_epoch, 7);
    assert_int_equal(r.topics[0].parts[0].nreplicas, 3);
    assert_int_equal(r.topics[0].parts[0].replicas[2], 1);
    assert_int_equal(r.topics[0].parts[0].nisr, 2);
    assert_int_equal(r.topics[0].parts[1].leader, SL_META_LEADER_NONE);
    assert_int_equal(r.topics[0].parts[1].nisr, 0);
    assert_int_equal(r.brokers[0].tls_addr.len, 0); /* not in version 2 */
    /* version 3: and the brokers' TLS addresses */
    q.version = 3;
    sl_wb_reset(&wb);
    sl_arena_reset(&a);
    assert_int_equal(sl_metadata_resp_encode(&wb, CORR, &q), SL_OK);
    assert_int_equal(sl_metadata_resp_decode(wb.p + SL_RESP_HDR_SIZE,
                                             wb.len - SL_RESP_HDR_SIZE, &a, &r),
                     SL_OK);
    assert_int_equal(r.version, 3);
    assert_int_equal(r.nbrokers, 2);
    assert_true(sl_str_eq(r.brokers[0].addr, "127.0.0.1:9001"));
    assert_true(sl_str_eq(r.brokers[0].tls_addr, "127.0.0.1:9101"));
    assert_int_equal(r.brokers[1].tls_addr.len, 0);
    assert_int_equal(r.topics[0].parts[0].leader, 2);
    /* version 1: no section, nothing decoded */
    q.version = 1;
    sl_wb_reset(&wb);
    sl_arena_reset(&a);
    assert_int_equal(sl_metadata_resp_encode(&wb, CORR, &q), SL_OK);
    assert_int_equal(sl_metadata_resp_decode(wb.p + SL_RESP_HDR_SIZE,
                                             wb.len - SL_RESP_HDR_SIZE, &a, &r),
                     SL_OK);
    assert_int_equal(r.version, 0);
    assert_int_equal(r.nbrokers, 0);
    sl_wb_fini(&wb);
    sl_arena_fini(&a);
}

static void test_fetch_zero_copy(void **state)
{
    /* Encode with external records, then splice the records in at the
     * split points: the bytes equal the copying encoder's. */
    sl_wb ext, inl, spliced;
    sl_resp_enc e;
    size_t split[3];
    sl_fetch_part_resp ph[3] = {{0, SL_OK, 102, 0, 102, g_batch, g_batch_len},
                                {1, SL_OK, 9, 0, 9, g_two, 0},
                                {0, SL_OK, 5, 0, 5, g_two, 0}};
    (void)state;
    make_two();
    ph[1].records_len = g_two_len;
    sl_wb_init(&ext, 0);
    sl_fetch_resp_begin(&e, &ext, CORR);
    sl_resp_enc_topic(&e, S("orders"));
    split[0] = sl_fetch_resp_part(&e, &ph[0], 1);
    split[1] = sl_fetch_resp_part(&e, &ph[1], 1);
    sl_resp_enc_topic(&e, S("other"));
    split[2] = sl_fetch_resp_part(&e, &ph[2], 1);
    assert_int_equal(sl_resp_enc_finish(&e), SL_OK);
    assert_int_equal(sl_resp_enc_frame_size(&e),
                     ext.len + g_batch_len + g_two_len);
    /* The length field counts the external bytes. */
    assert_int_equal(sl_get_u32(ext.p), ext.len - 4 + g_batch_len + g_two_len);

    sl_fetch_part_resp t1[2] = {ph[0], ph[1]};
    sl_fetch_topic_resp topics[2] = {{S("orders"), 2, t1},
                                     {S("other"), 1, &ph[2]}};
    sl_fetch_resp whole = {0};
    whole.ntopics = 2;
    whole.topics = topics;
    sl_wb_init(&inl, 0);
    assert_int_equal(sl_fetch_resp_encode(&inl, CORR, &whole), SL_OK);

    sl_wb_init(&spliced, 0);
    sl_wb_put(&spliced, ext.p, split[0]);
    sl_wb_put(&spliced, g_batch, g_batch_len);
    sl_wb_put(&spliced, ext.p + split[0], split[1] - split[0]);
    sl_wb_put(&spliced, g_two, g_two_len);
    sl_wb_put(&spliced, ext.p + split[1], split[2] - split[1]);
    sl_wb_put(&spliced, ext.p + split[2], ext.len - split[2]);
    assert_int_equal(spliced.len, inl.len);
    assert_memory_equal(spliced.p, inl.p, inl.len);

    /* Misuse: a partition before any topic. */
    sl_wb_reset(&ext);
    sl_fetch_resp_begin(&e, &ext, CORR);
    sl_fetch_resp_part(&e, &ph[0], 1);
    assert_int_equal(sl_resp_enc_finish(&e), SL_ERR_INVALID_ARG);
    assert_int_equal(ext.len, 0);
    sl_wb_fini(&ext);
    sl_wb_fini(&inl);
    sl_wb_fini(&spliced);
}

static void test_acquire_zero_copy(void **state)
{
    sl_wb ext, inl;
    sl_resp_enc e;
    size_t split;
    sl_qentry en[1] = {{1, 2, 1, 99}};
    sl_qacq_part p = {3, 1, en, g_batch, g_batch_len};
    sl_queue_acquire_resp whole = {0};
    (void)state;
    make_batch();
    sl_wb_init(&ext, 0);
    sl_queue_acquire_resp_begin(&e, &ext, CORR);
    split = sl_queue_acquire_resp_part(&e, &p, 1);
    assert_int_equal(split, ext.len); /* records go at the end */
    assert_int_equal(sl_resp_enc_finish(&e), SL_OK);
    sl_wb_put(&ext, g_batch, g_batch_len);
    whole.nparts = 1;
    whole.parts = &p;
    sl_wb_init(&inl, 0);
    assert_int_equal(sl_queue_acquire_resp_encode(&inl, CORR, &whole), SL_OK);
    assert_int_equal(ext.len, inl.len);
    assert_memory_equal(ext.p, inl.p, inl.len);
    /* No topic level in QUEUE_ACQUIRE. */
    sl_wb_reset(&ext);
    sl_queue_acquire_resp_begin(&e, &ext, CORR);
    sl_resp_enc_topic(&e, S("x"));
    assert_int_equal(sl_resp_enc_finish(&e), SL_ERR_INVALID_ARG);
    sl_wb_fini(&ext);
    sl_wb_fini(&inl);
}

static void test_handshake_pick(void **state)
{
    sl_api_range r[3] = {
        {SL_API_PRODUCE, 1, 4}, {SL_API_FETCH, 2, 3}, {999, 1, 1}};
    sl_handshake_resp h = {0};
    uint16_t v = 0;
    (void)state;
    h.napis = 3;
    h.apis = r;
    assert_int_equal(sl_api_version_pick(&h, SL_API_PRODUCE, &v), SL_OK);
    assert_int_equal(v, 1);
    assert_int_equal(sl_api_version_pick(&h, SL_API_FETCH, &v),
                     SL_ERR_UNSUPPORTED_VERSION);
    assert_int_equal(sl_api_version_pick(&h, SL_API_QUEUE_ACK, &v),
                     SL_ERR_UNSUPPORTED_API);
    assert_int_equal(sl_api_version_pick(&h, 999, &v), SL_ERR_UNSUPPORTED_API);
}

static void test_pipelined_frames(void **state)
{
    /* Two requests in one buffer; a failed encode in between leaves the
     * earlier frame intact. */
    sl_wb wb;
    size_t fl;
    sl_req_hdr h;
    sl_produce_topic t = {S("t"), 0, NULL};
    sl_produce_req bad = {9, 0, 1, &t};
    (void)state;
    sl_wb_init(&wb, 0);
    assert_int_equal(b_metadata_req(&wb), SL_OK);
    size_t first = wb.len;
    assert_int_equal(sl_produce_req_encode(&wb, 2, &bad), SL_ERR_INVALID_ARG);
    assert_int_equal(wb.len, first);
    assert_int_equal(b_list_topics_req(&wb), SL_OK);
    assert_int_equal(sl_frame_peek(wb.p, wb.len, 1 << 20, &fl), SL_OK);
    assert_int_equal(fl, first);
    assert_int_equal(sl_frame_peek(wb.p + first, wb.len - first, 1 << 20, &fl),
                     SL_OK);
    assert_int_equal(sl_req_hdr_decode(wb.p + first, fl, &h), SL_OK);
    assert_int_equal(h.api_key, SL_API_LIST_TOPICS);
    assert_int_equal(first + fl, wb.len);
    sl_wb_fini(&wb);
}

static void test_arena(void **state)
{
    sl_arena a;
    (void)state;
    sl_arena_init(&a);
    for (int i = 0; i < 1000; i++) {
        uint64_t *p = sl_arena_alloc(&a, 24);
        assert_non_null(p);
        assert_int_equal(((uintptr_t)p) % 8, 0);
        assert_int_equal(p[0] | p[1] | p[2], 0);
        p[0] = (uint64_t)i;
    }
    assert_non_null(sl_arena_alloc(&a, 100000)); /* big chunk */
    assert_non_null(sl_arena_alloc(&a, 8));
    sl_arena_reset(&a);
    assert_non_null(sl_arena_alloc(&a, 8));
    sl_arena_fini(&a);
    sl_arena_fini(&a); /* twice is fine */

    /* A limit turns a large decode into SL_ERR_TOO_LARGE. */
    uint8_t b[4 + 2 * 100];
    uint32_t n = 100;
    sl_metadata_req mr;
    memset(b, 0, sizeof(b));
    memcpy(b, &n, 4);
    sl_arena_init(&a);
    sl_arena_set_limit(&a, 100 * sizeof(sl_str) - 1);
    assert_int_equal(sl_metadata_req_decode(b, sizeof(b), &a, &mr),
                     SL_ERR_TOO_LARGE);
    sl_arena_reset(&a);
    sl_arena_set_limit(&a, 100 * sizeof(sl_str));
    assert_int_equal(sl_metadata_req_decode(b, sizeof(b), &a, &mr), SL_OK);
    assert_int_equal(mr.ntopics, 100);
    assert_int_equal(a.used, 100 * sizeof(sl_str));
    sl_arena_fini(&a);
}

/* ---- hex examples for docs/protocol.md -------------------------------- */

static void print_hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i += 16) {
        printf("    %04zx ", i);
        for (size_t j = i; j < i + 16 && j < n; j++)
            printf(" %02x", p[j]);
        printf("\n");
    }
}

static int print_examples(void)
{
    make_two();
    printf("Examples generated by `test_protocol_api --examples`; "
           "correlation id 0x%08x.\n\n",
           CORR);
    for (size_t i = 0; i < NCASES; i++) {
        sl_wb wb;
        sl_wb_init(&wb, 0);
        if (cases[i].build(&wb) != SL_OK)
            return 1;
        printf("%s %s (%s), %zu bytes:\n\n", sl_api_name(cases[i].api),
               cases[i].is_req ? "request" : "response", cases[i].name, wb.len);
        print_hex(wb.p, wb.len);
        printf("\n");
        sl_wb_fini(&wb);
    }
    {
        sl_wb wb;
        sl_wb_init(&wb, 0);
        sl_resp_error_encode(&wb, CORR, SL_ERR_UNSUPPORTED_VERSION,
                             "PRODUCE v2 not supported (1..1)");
        printf("error-only response (any api), %zu bytes:\n\n", wb.len);
        print_hex(wb.p, wb.len);
        printf("\nrecord batch used above, %zu bytes:\n\n", g_batch_len);
        print_hex(g_batch, g_batch_len);
        sl_wb_fini(&wb);
    }
    return 0;
}

/* docs/protocol.md must show what the encoder produces today: every hex
 * line of every example (and every error table row) must appear in it. */
static void test_docs_current(void **state)
{
    const char *src = getenv("SLUICE_SOURCE_DIR");
    char path[4096], line[256];
    FILE *f;
    char *doc;
    long n;
    (void)state;
    if (!src)
        skip();
    snprintf(path, sizeof(path), "%s/docs/protocol.md", src);
    f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    doc = malloc((size_t)n + 1);
    assert_int_equal(fread(doc, 1, (size_t)n, f), (size_t)n);
    doc[n] = 0;
    fclose(f);
    make_two();
    for (size_t i = 0; i < NCASES; i++) {
        sl_wb wb;
        sl_wb_init(&wb, 0);
        assert_int_equal(cases[i].build(&wb), SL_OK);
        for (size_t o = 0; o < wb.len; o += 16) {
            int k = snprintf(line, sizeof(line), "\n%04zx ", o);
            for (size_t j = o; j < o + 16 && j < wb.len; j++)
                k += snprintf(line + k, sizeof(line) - (size_t)k, " %02x",
                              wb.p[j]);
            snprintf(line + k, sizeof(line) - (size_t)k, "\n");
            if (!strstr(doc, line))
                fail_msg("docs/protocol.md: example %s is stale at %04zx "
                         "(regenerate with test_protocol_api --examples)",
                         cases[i].name, o);
        }
        sl_wb_fini(&wb);
    }
    for (int e = 0; e < SL_ERR__END; e++) {
        snprintf(line, sizeof(line), "| %d | `%s` | %s |", e, sl_errname(e),
                 sl_strerror(e));
        if (!strstr(doc, line))
            fail_msg("docs/protocol.md: error table lacks \"%s\"", line);
    }
    free(doc);
}

/* The error code table of docs/protocol.md, from protocol/err.c. */
static int print_errors(void)
{
    printf("| code | name | meaning |\n|---:|---|---|\n");
    for (int i = 0; i < SL_ERR__END; i++)
        printf("| %d | `%s` | %s |\n", i, sl_errname(i), sl_strerror(i));
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_all),
        cmocka_unit_test(test_truncated_every_length),
        cmocka_unit_test(test_mutations_never_crash),
        cmocka_unit_test(test_random_bodies),
        cmocka_unit_test(test_error_responses),
        cmocka_unit_test(test_fetch_follower_versions),
        cmocka_unit_test(test_error_frame_bytes),
        cmocka_unit_test(test_frame_peek),
        cmocka_unit_test(test_api_table),
        cmocka_unit_test(test_unknown_api_frame),
        cmocka_unit_test(test_huge_counts),
        cmocka_unit_test(test_bad_enums),
        cmocka_unit_test(test_produce_in_place),
        cmocka_unit_test(test_fetch_fields),
        cmocka_unit_test(test_metadata_v2_placement),
        cmocka_unit_test(test_fetch_zero_copy),
        cmocka_unit_test(test_acquire_zero_copy),
        cmocka_unit_test(test_handshake_pick),
        cmocka_unit_test(test_pipelined_frames),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_init_producer_id_codec),
        cmocka_unit_test(test_docs_current),
    };
    if (argc > 1 && strcmp(argv[1], "--examples") == 0)
        return print_examples();
    if (argc > 1 && strcmp(argv[1], "--errors") == 0)
        return print_errors();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
