/*
 * gen_seeds.c - writes the seed corpora of tests/fuzz/corpus/ with the
 * project's own encoders (so seeds stay valid when the formats change:
 * rerun it and commit what changed). Usage: gen_seeds CORPUS_DIR
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster/meta.h"
#include "protocol/api.h"
#include "protocol/batch.h"

static const char *root;

static void put(const char *target, const char *name, const void *p, size_t n)
{
    char path[512];
    FILE *f;
    snprintf(path, sizeof(path), "%s/%s", root, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        abort();
    snprintf(path, sizeof(path), "%s/%s/%s", root, target, name);
    f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n)
        abort();
    fclose(f);
}

static void put_wb(const char *target, const char *name, sl_wb *wb)
{
    put(target, name, wb->p, wb->len);
    sl_wb_reset(wb);
}

/* A batch of n records (codec), copied into *out (caller frees). */
static size_t batch(int codec, int n, int64_t base, uint8_t **out)
{
    sl_batch_builder bb;
    const uint8_t *p;
    size_t len;
    sl_header h[2] = {{"dlq.reason", 10, "expired", 7},
                      {"content-type", 12, NULL, 0}};
    sl_bb_init(&bb, codec);
    for (int i = 0; i < n; i++) {
        char v[32];
        int vl = snprintf(v, sizeof(v), "value-%d", i);
        if (sl_bb_add(&bb, 1700000000000 + i, i % 2 ? "key" : NULL, 3, v,
                      (size_t)vl, i == 1 ? h : NULL, i == 1 ? 2 : 0) != SL_OK)
            abort();
    }
    if (sl_bb_finish(&bb, &p, &len) != SL_OK)
        abort();
    *out = malloc(len);
    memcpy(*out, p, len);
    sl_batch_set_base_offset(*out, base);
    sl_bb_fini(&bb);
    return len;
}

static void requests(sl_wb *wb)
{
    uint8_t *b;
    size_t bl = batch(SL_CODEC_NONE, 3, 0, &b);
    sl_kv kv = {SL_STR_LIT("segment-bytes"), SL_STR_LIT("64k")};
    sl_str topic = SL_STR_LIT("orders");
    uint32_t part0 = 0;

    sl_handshake_req hs = {SL_STR_LIT("fuzz"), 0, NULL};
    sl_handshake_req_encode(wb, 1, &hs);
    put_wb("request", "handshake", wb);
    sl_metadata_req md = {.ntopics = 1, .topics = &topic};
    sl_metadata_req_encode(wb, 2, &md);
    put_wb("request", "metadata", wb);
    sl_create_topic ct = {topic, 3, 1, &kv};
    sl_create_topics_req ctr = {1, &ct};
    sl_create_topics_req_encode(wb, 3, &ctr);
    put_wb("request", "create_topics", wb);
    sl_delete_topics_req dt = {1, &topic};
    sl_delete_topics_req_encode(wb, 4, &dt);
    put_wb("request", "delete_topics", wb);
    sl_list_topics_req_encode(wb, 5);
    put_wb("request", "list_topics", wb);
    sl_produce_part pp = {0, b, bl};
    sl_produce_topic pt = {topic, 1, &pp};
    sl_produce_req pr = {SL_ACKS_DURABLE, 1000, 1, &pt};
    sl_produce_req_encode(wb, 6, &pr);
    put_wb("request", "produce", wb);
    sl_fetch_part fp = {
        .partition = 0, .fetch_offset = 0, .max_bytes = 1 << 20};
    sl_fetch_topic ft = {topic, 1, &fp};
    sl_fetch_req fr = {.max_wait_ms = 100,
                       .min_bytes = 1,
                       .max_bytes = 1 << 20,
                       .ntopics = 1,
                       .topics = &ft};
    sl_fetch_req_encode(wb, 7, &fr);
    put_wb("request", "fetch", wb);
    sl_lo_part lp = {0, SL_OFFSET_LATEST};
    sl_lo_topic lt = {topic, 1, &lp};
    sl_list_offsets_req lo = {1, &lt};
    sl_list_offsets_req_encode(wb, 8, &lo);
    put_wb("request", "list_offsets", wb);
    sl_group_join_req gj = {
        SL_STR_LIT("g"), {NULL, 0}, SL_STR_LIT("c"), 10000, 10000, 0, 1,
        &topic};
    sl_group_join_req_encode(wb, 9, &gj);
    put_wb("request", "group_join", wb);
    sl_group_member_req gm = {SL_STR_LIT("g"), SL_STR_LIT("m-1"), 1};
    sl_group_member_req_encode(wb, SL_API_GROUP_HEARTBEAT, 10, &gm);
    put_wb("request", "group_heartbeat", wb);
    sl_group_member_req_encode(wb, SL_API_GROUP_LEAVE, 11, &gm);
    put_wb("request", "group_leave", wb);
    sl_commit_part cp = {0, 42, SL_STR_LIT("meta")};
    sl_commit_topic ctp = {topic, 1, &cp};
    sl_offset_commit_req oc = {SL_STR_LIT("g"), {NULL, 0}, -1, 1, &ctp};
    sl_offset_commit_req_encode(wb, 12, &oc);
    put_wb("request", "offset_commit", wb);
    sl_topic_parts tp = {topic, 1, &part0};
    sl_offset_fetch_req of = {SL_STR_LIT("g"), 1, &tp};
    sl_offset_fetch_req_encode(wb, 13, &of);
    put_wb("request", "offset_fetch", wb);
    sl_group_list_req_encode(wb, 14);
    put_wb("request", "group_list", wb);
    sl_group_describe_req gd = {SL_STR_LIT("g")};
    sl_group_describe_req_encode(wb, 15, &gd);
    put_wb("request", "group_describe", wb);
    sl_queue_acquire_req qa = {
        SL_STR_LIT("g"), topic, SL_STR_LIT("c1"), 10, 1 << 20, 30000, 100};
    sl_queue_acquire_req_encode(wb, 16, &qa);
    put_wb("request", "queue_acquire", wb);
    sl_qrange qr = {0, 9, -1, 5000, SL_STR_LIT("bad")};
    sl_qsettle_part qp = {0, 1, &qr};
    sl_qsettle_req qs = {SL_STR_LIT("g"), topic, SL_STR_LIT("c1"), 1, &qp};
    const uint16_t settle[] = {SL_API_QUEUE_ACK, SL_API_QUEUE_NACK,
                               SL_API_QUEUE_REJECT, SL_API_QUEUE_TOUCH};
    const char *sn[] = {"queue_ack", "queue_nack", "queue_reject",
                        "queue_touch"};
    for (int i = 0; i < 4; i++) {
        sl_qsettle_req_encode(wb, settle[i], 17, &qs);
        put_wb("request", sn[i], wb);
    }
    sl_dlq_list_req dl = {topic, {NULL, 0}};
    sl_dlq_list_req_encode(wb, 18, &dl);
    put_wb("request", "dlq_list", wb);
    sl_dlq_redrive_req dr = {
        SL_STR_LIT("orders.DLQ"), {NULL, 0}, SL_STR_LIT("expired"), 10, 0};
    sl_dlq_redrive_req_encode(wb, 19, &dr);
    put_wb("request", "dlq_redrive", wb);
    sl_kv qkv = {SL_STR_LIT("max_deliveries"), SL_STR_LIT("3")};
    sl_queue_group_config_req qg = {SL_STR_LIT("g"), topic, SL_QGC_UPSERT, 1,
                                    &qkv};
    sl_queue_group_config_req_encode(wb, 20, &qg);
    put_wb("request", "queue_group_config", wb);
    sl_str cst = topic;
    sl_cluster_status_req csq = {1, &cst};
    sl_cluster_status_req_encode(wb, 23, &csq);
    put_wb("request", "cluster_status", wb);
    sl_kv akv = {SL_STR_LIT("group"), SL_STR_LIT("g")};
    sl_admin_req ad = {SL_STR_LIT("queue.purge"), 1, &akv};
    sl_admin_req_encode(wb, 24, &ad);
    put_wb("request", "admin", wb);
    sl_cluster_forward_req_encode(wb, 25, "\x01\x02cmd", 5);
    put_wb("request", "cluster_forward", wb);
    sl_sasl_handshake_req sh = {SL_STR_LIT("SCRAM-SHA-256")};
    sl_sasl_handshake_req_encode(wb, 26, &sh);
    put_wb("request", "sasl_handshake", wb);
    static const char first[] = "n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL";
    sl_sasl_auth_req sa = {(const uint8_t *)first, sizeof(first) - 1};
    sl_sasl_auth_req_encode(wb, 27, &sa);
    put_wb("request", "sasl_authenticate", wb);
    sl_init_pid_req ip = {-1, -1};
    sl_init_pid_req_encode(wb, 28, &ip);
    put_wb("request", "init_producer_id", wb);
    /* pipelined: two frames in one read */
    sl_list_topics_req_encode(wb, 21);
    sl_produce_req_encode(wb, 22, &pr);
    put_wb("request", "pipelined", wb);
    free(b);
}

static void response(sl_wb *wb, int api_index, const char *name)
{
    /* the response target's first byte picks the api (index in its table) */
    uint8_t *p = malloc(wb->len + 1);
    p[0] = (uint8_t)api_index;
    memcpy(p + 1, wb->p, wb->len);
    put("response", name, p, wb->len + 1);
    free(p);
    sl_wb_reset(wb);
}

static void responses(sl_wb *wb)
{
    uint8_t *b, *z;
    size_t bl = batch(SL_CODEC_NONE, 3, 5, &b);
    size_t zl = batch(SL_CODEC_ZSTD, 4, 8, &z);
    sl_str topic = SL_STR_LIT("orders");
    sl_api_range ar = {SL_API_FETCH, 1, 1};
    sl_handshake_resp hs = {
        0, {NULL, 0}, SL_STR_LIT("sluiced"), SL_STR_LIT("0.1.0"), 1 << 26,
        1, &ar};
    sl_handshake_resp_encode(wb, 1, &hs);
    response(wb, 0, "handshake");
    sl_meta_part mp = {.partition = 0, .start_offset = 0, .end_offset = 10};
    sl_kv kv = {SL_STR_LIT("flush"), SL_STR_LIT("always")};
    sl_meta_topic mt = {topic, 0, 1, &mp, 1, &kv};
    sl_metadata_resp md = {
        .error = 0, .error_msg = {NULL, 0}, .ntopics = 1, .topics = &mt};
    sl_metadata_resp_encode(wb, 2, &md);
    response(wb, 1, "metadata");
    sl_topic_result tr = {topic, 36, SL_STR_LIT("topic exists")};
    sl_topics_result_resp trr = {0, {NULL, 0}, 1, &tr};
    sl_create_topics_resp_encode(wb, 3, &trr);
    response(wb, 2, "create_topics");
    sl_produce_part_resp ppr = {0, 0, 5, 7, 8};
    sl_produce_topic_resp ptr = {topic, 1, &ppr};
    sl_produce_resp pr = {0, {NULL, 0}, 1, &ptr};
    sl_produce_resp_encode(wb, 4, &pr);
    response(wb, 5, "produce");
    uint8_t both[4096];
    memcpy(both, b, bl);
    memcpy(both + bl, z, zl);
    sl_fetch_part_resp fpr = {0, 0, 12, 0, 12, both, bl + zl};
    sl_fetch_topic_resp ftr = {topic, 1, &fpr};
    sl_fetch_resp fr = {0, {NULL, 0}, 1, &ftr};
    sl_fetch_resp_encode(wb, 5, &fr);
    response(wb, 6, "fetch");
    sl_qentry qe[2] = {{5, 1, 0, 1700000030000}, {6, 2, 1, 1700000030000}};
    sl_qacq_part qp = {0, 2, qe, b, bl};
    sl_queue_acquire_resp qa = {0, {NULL, 0}, 1, &qp};
    sl_queue_acquire_resp_encode(wb, 6, &qa);
    response(wb, 14, "queue_acquire");
    sl_qrange_result rr = {5, 6, 0};
    sl_qsettle_part_resp sp = {0, 1, &rr};
    sl_qsettle_resp sr = {0, {NULL, 0}, 1, &sp};
    sl_qsettle_resp_encode(wb, 7, &sr);
    response(wb, 15, "queue_ack");
    sl_tp tp = {topic, 0};
    sl_member_desc m = {SL_STR_LIT("m-1"), SL_STR_LIT("127.0.0.1"), 1, &tp};
    sl_group_part_desc gp = {topic, 0, 3, 10, 7, 2};
    sl_group_describe_resp gd = {0,
                                 {NULL, 0},
                                 SL_STR_LIT("g"),
                                 1,
                                 SL_STR_LIT("Active"),
                                 0,
                                 SL_STR_LIT("orders.DLQ"),
                                 4,
                                 1,
                                 &m,
                                 1,
                                 &gp};
    sl_group_describe_resp_encode(wb, 8, &gd);
    response(wb, 13, "group_describe");
    sl_dlq_entry de = {
        SL_STR_LIT("orders.DLQ"), topic, SL_STR_LIT("g"), 4, 0, 4};
    sl_dlq_list_resp dl = {0, {NULL, 0}, 1, &de};
    sl_dlq_list_resp_encode(wb, 9, &dl);
    response(wb, 16, "dlq_list");
    sl_resp_error_encode(wb, 10, SL_ERR_UNKNOWN_TOPIC, "unknown topic 'x'");
    response(wb, 7, "error");
    /* indices 19-23: the apis appended to fuzz_response.c's table */
    static const char json[] = "{\"purged\":3}";
    sl_admin_resp ar2 = {0, {NULL, 0}, (const uint8_t *)json, sizeof(json) - 1};
    sl_admin_resp_encode(wb, 11, &ar2);
    response(wb, 19, "admin");
    int32_t reps[3] = {1, 2, 3};
    sl_cl_node cn = {1, 1, SL_STR_LIT("127.0.0.1:7400"),
                     SL_STR_LIT("127.0.0.1:7401"),
                     SL_STR_LIT("127.0.0.1:7402")};
    sl_cl_part cp = {0, 1, 4, 3, reps, 2, reps};
    sl_cl_topic clt = {topic, 0, 1, &cp};
    sl_cluster_status_resp cs = {0, {NULL, 0}, 1, 1, 7, 42, 1, &cn, 1, &clt};
    sl_cluster_status_resp_encode(wb, 12, &cs);
    response(wb, 20, "cluster_status");
    sl_init_pid_resp ipr = {0, {NULL, 0}, 1000, 0};
    sl_init_pid_resp_encode(wb, 13, &ipr);
    response(wb, 21, "init_producer_id");
    sl_str mechs[2] = {SL_STR_LIT("SCRAM-SHA-256"), SL_STR_LIT("PLAIN")};
    sl_sasl_handshake_resp shr = {0, {NULL, 0}, 2, mechs};
    sl_sasl_handshake_resp_encode(wb, 14, &shr);
    response(wb, 22, "sasl_handshake");
    static const char srv[] = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
                              "s=QSXCR+Q6sek8bf92,i=4096";
    sl_sasl_auth_resp sar = {
        0, {NULL, 0}, (const uint8_t *)srv, sizeof(srv) - 1, 0};
    sl_sasl_auth_resp_encode(wb, 15, &sar);
    response(wb, 23, "sasl_authenticate");
    free(b);
    free(z);
}

static void batches(void)
{
    uint8_t *a, *b, *z, *seg;
    size_t al = batch(SL_CODEC_NONE, 1, 0, &a);
    size_t bl = batch(SL_CODEC_NONE, 5, 1, &b);
    size_t zl = batch(SL_CODEC_ZSTD, 6, 6, &z);
    put("batch", "one", a, al);
    put("batch", "headers", b, bl);
    put("batch", "zstd", z, zl);
    /* zstd target: count byte + the compressed payload */
    z[SL_BATCH_HDR_SIZE - 1] = 6;
    put("zstd", "six", z + SL_BATCH_HDR_SIZE - 1, zl - SL_BATCH_HDR_SIZE + 1);
    /* segment target: flags, u16 index length (0), then a log */
    seg = calloc(1, 3 + al + bl + zl);
    seg[0] = 0;
    memcpy(seg + 3, a, al);
    memcpy(seg + 3 + al, b, bl);
    memcpy(seg + 3 + al + bl, z, zl);
    put("segment", "three", seg, 3 + al + bl + zl);
    seg[0] = 1; /* no index file */
    put("segment", "three-noindex", seg, 3 + al + bl + zl - 7);
    free(seg);
    /* A damaged head whose header claims a base near INT64_MIN and a
     * negative record count, then intact batches: the CI run of db00606
     * found base + delta overflowing in the offset lookup
     * (test_storage_damaged.c has the same log). */
    {
        uint8_t *d;
        size_t dl = batch(SL_CODEC_NONE, 1, INT64_MIN + 6, &d);
        int32_t lod = -1325400064;
        memcpy(d + 19, &lod, 4);
        seg = calloc(1, 3 + dl + al + bl);
        seg[0] = 1; /* no index file */
        memcpy(seg + 3, d, dl);
        memcpy(seg + 3 + dl, a, al);
        memcpy(seg + 3 + dl + al, b, bl);
        put("segment", "regress-overflowing-header", seg, 3 + dl + al + bl);
        free(seg);
        free(d);
    }
    free(a);
    free(b);
    free(z);
}

/* meta_cmd: commands as fuzz_meta_cmd.c reads them (a 2-byte little-endian
 * length, then the command), one kind per seed and one sequence. */
static void meta_seed(const char *name, sl_wb *cmd, sl_wb *out)
{
    sl_wb_u8(out, (uint8_t)(cmd->len & 0xff));
    sl_wb_u8(out, (uint8_t)(cmd->len >> 8));
    sl_wb_put(out, cmd->p, cmd->len);
    sl_wb_reset(cmd);
    if (name)
        put_wb("meta_cmd", name, out);
}

static void meta_cmds(void)
{
    static const int32_t reps[] = {1, 2, 3, 3, 1, 2, 2, 3, 1};
    static const int32_t isr12[] = {1, 2}, to4[] = {1, 2, 4};
    static const char *const keys[] = {"retention-ms", "cleanup-policy"};
    static const char *const vals[] = {"60000", "compact"};
    sl_mi_user u;
    sl_wb c, o;
    sl_wb_init(&c, 256);
    sl_wb_init(&o, 256);
    sl_meta_enc_register(&c, 4, "127.0.0.1:7004", "127.0.0.1:9004",
                         "127.0.0.1:6004");
    meta_seed("register", &c, &o);
    sl_meta_enc_register_tls(&c, 2, "127.0.0.1:7002", "127.0.0.1:9002",
                             "127.0.0.1:6002", "127.0.0.1:9102");
    meta_seed("register_tls", &c, &o);
    sl_meta_enc_fence(&c, 2, 1);
    meta_seed("fence", &c, &o);
    sl_meta_enc_fence(&c, 3, SL_MI_STOPPED);
    meta_seed("stopped", &c, &o);
    sl_meta_enc_fence(&c, 2, 0);
    meta_seed("unfence", &c, &o);
    sl_meta_enc_create_topic(&c, "u", 3, 3, keys, vals, 2, reps);
    meta_seed("create_topic", &c, &o);
    sl_meta_enc_delete_topic(&c, "t");
    meta_seed("delete_topic", &c, &o);
    sl_meta_enc_partition_change(&c, "t", 0, 0, 2, isr12, 2);
    meta_seed("partition_change", &c, &o);
    memset(&u, 0, sizeof(u));
    u.name = "bob";
    u.saltlen = 16;
    u.iter = 4096;
    sl_meta_enc_user_upsert(&c, &u, SL_META_USER_NEW);
    meta_seed("user_upsert", &c, &o);
    sl_meta_enc_user_delete(&c, "alice");
    meta_seed("user_delete", &c, &o);
    sl_meta_enc_acl_change(&c, "alice", 2, "g", 1, 4, 1);
    meta_seed("acl_change", &c, &o);
    sl_meta_enc_reassign(&c, "t", 1, to4, 3);
    meta_seed("reassign", &c, &o);
    sl_meta_enc_reassign_done(&c, "t", 1, 0);
    meta_seed("reassign_done", &c, &o);
    sl_meta_enc_unregister(&c, 3);
    meta_seed("unregister", &c, &o);
    sl_meta_enc_alter_topic(&c, "t", keys, vals, 2);
    meta_seed("alter_topic", &c, &o);
    sl_meta_enc_add_partitions(&c, "t", 3, 3, reps, 1);
    meta_seed("add_partitions", &c, &o);
    /* A node joins, the topic moves a partition onto it, the move ends,
     * the old replica is fenced and leaves. */
    sl_meta_enc_register(&c, 4, "127.0.0.1:7004", "127.0.0.1:9004",
                         "127.0.0.1:6004");
    meta_seed(NULL, &c, &o);
    sl_meta_enc_reassign(&c, "t", 1, to4, 3);
    meta_seed(NULL, &c, &o);
    sl_meta_enc_partition_change(&c, "t", 1, 1, 2, to4, 3);
    meta_seed(NULL, &c, &o);
    sl_meta_enc_reassign_done(&c, "t", 1, 2);
    meta_seed(NULL, &c, &o);
    sl_meta_enc_fence(&c, 3, 1);
    meta_seed("sequence", &c, &o);
    sl_wb_fini(&c);
    sl_wb_fini(&o);
}

int main(int argc, char **argv)
{
    sl_wb wb;
    if (argc != 2) {
        fprintf(stderr, "usage: gen_seeds CORPUS_DIR\n");
        return 2;
    }
    root = argv[1];
    sl_wb_init(&wb, 4096);
    requests(&wb);
    responses(&wb);
    batches();
    meta_cmds();
    sl_wb_fini(&wb);
    return 0;
}
