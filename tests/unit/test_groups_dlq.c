/* Unit tests: groups/dlq.c (the dlq.* headers and their one filter and
 * cap, the dead-letter append, listing and depth, redrive with its rate
 * limit and resumable progress). Real partitions in a temp dir, a fake
 * clock, no flusher thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "groups/dlq.h"
#include "groups/groups.h"

typedef struct fx {
    char dir[256];
    sl_part *t, *dlq, *other; /* topics "t", "t.DLQ", "other" */
    int64_t now;
    sl_groups *g;
    int appends_to_t;
} fx;

static fx F;

static sl_part **slot(fx *f, const char *topic)
{
    if (!strcmp(topic, "t"))
        return &f->t;
    if (!strcmp(topic, "t.DLQ"))
        return &f->dlq;
    if (!strcmp(topic, "other"))
        return &f->other;
    return NULL;
}

static sl_part *open_part(const char *topic)
{
    sl_part **s = slot(&F, topic);
    char d[600];
    sl_part_cfg cfg;
    if (!s)
        return NULL;
    if (!*s) {
        sl_part_cfg_defaults(&cfg);
        snprintf(d, sizeof(d), "%s/%s-0", F.dir, topic);
        assert_int_equal(sl_part_open(d, &cfg, s), SL_OK);
    }
    return *s;
}

static sl_part *env_get_part(void *ctx, const char *topic, int32_t p)
{
    sl_part **s = slot(ctx, topic);
    return s && p == 0 ? *s : NULL;
}

static int32_t env_partitions(void *ctx, const char *topic)
{
    sl_part **s = slot(ctx, topic);
    return s && *s ? 1 : -1;
}

static sl_err env_append(void *ctx, const char *topic, int32_t p,
                         uint8_t *batch, size_t len, int64_t *base,
                         sl_part **out)
{
    sl_part *part;
    (void)ctx;
    if (p != 0 || !(part = open_part(topic)))
        return SL_ERR_UNKNOWN_TOPIC;
    *out = part;
    return sl_part_append(part, batch, len, F.now, base);
}

static int64_t env_now(void *ctx)
{
    return ((fx *)ctx)->now;
}

static const sl_groups_env k_env = {
    &F,   env_get_part, env_partitions, env_append, env_now, NULL,
    NULL, NULL,         NULL,           NULL,       NULL,    NULL};

/* The redrive's sink: topics "t" and "other" exist (created on demand). */
static int32_t sink_partitions(void *ctx, const char *topic)
{
    (void)ctx;
    if (strcmp(topic, "t") && strcmp(topic, "other"))
        return -1;
    open_part(topic);
    return 1;
}

static sl_err sink_append(void *ctx, const char *topic, int32_t partition,
                          uint8_t *batch, size_t len)
{
    int64_t base;
    (void)ctx;
    if (!strcmp(topic, "t"))
        F.appends_to_t++;
    return sl_part_append(open_part(topic), batch, len, F.now, &base);
}

static const sl_dlq_sink k_sink = {&F, sink_partitions, sink_append};

static int setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof(F));
    snprintf(F.dir, sizeof(F.dir), "/tmp/sl-test-dlq-XXXXXX");
    assert_non_null(mkdtemp(F.dir));
    F.now = 5000000;
    open_part("t");
    assert_int_equal(sl_groups_open(F.dir, &k_env, NULL, &F.g), SL_OK);
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];
    (void)state;
    sl_groups_free(F.g);
    sl_part_free(F.t);
    sl_part_free(F.dlq);
    sl_part_free(F.other);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", F.dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* A record with nh headers h<i>=x<i>, plus extra (may be NULL). */
static void make_record(int nh, const sl_header *extra, size_t nextra,
                        sl_batch_builder *bb, sl_record *rec)
{
    sl_header hs[200];
    static char names[200][8], vals[200][8];
    const uint8_t *b;
    size_t len;
    sl_batch_iter it;
    assert_true(nh + nextra <= 200);
    for (int i = 0; i < nh; i++) {
        snprintf(names[i], 8, "h%d", i);
        snprintf(vals[i], 8, "x%d", i);
        hs[i] =
            (sl_header){names[i], strlen(names[i]), vals[i], strlen(vals[i])};
    }
    for (size_t i = 0; i < nextra; i++)
        hs[nh + i] = extra[i];
    sl_bb_init(bb, SL_CODEC_NONE);
    assert_int_equal(
        sl_bb_add(bb, 1234, "k", 1, "value", 5, hs, (size_t)nh + nextra),
        SL_OK);
    assert_int_equal(sl_bb_finish(bb, &b, &len), SL_OK);
    assert_int_equal(sl_batch_iter_init(&it, b, len), SL_OK);
    assert_int_equal(sl_batch_iter_next(&it, rec, NULL), 1);
    sl_batch_iter_fini(&it); /* uncompressed: rec points into bb */
}

static int has(const sl_record *rec, const char *k, const char *v)
{
    sl_header h;
    if (sl_record_header_find(rec, k, &h) != SL_OK)
        return 0;
    return !v || (h.value_len == strlen(v) && !memcmp(h.value, v, h.value_len));
}

static size_t nheaders(const sl_record *rec)
{
    sl_header_iter hi;
    sl_header h;
    size_t n = 0;
    sl_record_headers_begin(rec, &hi);
    while (sl_record_headers_next(&hi, &h) == SL_OK)
        n++;
    return n;
}

/* The one filter and its one cap. */
static void test_keep_headers_filter_and_cap(void **state)
{
    sl_batch_builder bb;
    sl_record rec;
    sl_header hs[SL_DLQ_MAX_HEADERS];
    sl_header old[] = {{"dlq.topic", 9, "x", 1}, {"dlq.reason", 10, "y", 1}};
    size_t n;
    (void)state;
    make_record(3, old, 2, &bb, &rec);
    n = sl_dlq_keep_headers(&rec, hs);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++)
        assert_false(sl_dlq_is_dlq_header(&hs[i]));
    sl_bb_fini(&bb);

    make_record(SL_DLQ_KEEP_HEADERS + 20, NULL, 0, &bb, &rec);
    n = sl_dlq_keep_headers(&rec, hs);
    assert_int_equal(n, SL_DLQ_KEEP_HEADERS);
    assert_int_equal(hs[0].key_len, 2);
    assert_memory_equal(hs[0].key, "h0", 2); /* in order */
    sl_bb_fini(&bb);
}

static void test_topic_name(void **state)
{
    sl_qgroup_cfg cfg;
    char buf[300];
    (void)state;
    sl_qgroup_cfg_defaults(&cfg);
    assert_string_equal(sl_dlq_topic_name(&cfg, "orders", buf, sizeof(buf)),
                        "orders.DLQ");
    snprintf(cfg.dlq_topic, sizeof(cfg.dlq_topic), "dead");
    assert_string_equal(sl_dlq_topic_name(&cfg, "orders", buf, sizeof(buf)),
                        "dead");
    snprintf(cfg.dlq_topic, sizeof(cfg.dlq_topic), "-");
    assert_null(sl_dlq_topic_name(&cfg, "orders", buf, sizeof(buf)));
}

static void read_one(sl_part *p, int64_t off, sl_record *rec, sl_part_iter **it)
{
    assert_int_equal(sl_part_iter_new(p, off, it), SL_OK);
    assert_int_equal(sl_part_iter_next(*it, rec, NULL), 1);
}

/* A record dead-lettered twice names only its latest origin; the
 * original headers come first, then the dlq.* ones. */
static void test_append_headers(void **state)
{
    sl_batch_builder bb;
    sl_record rec, out;
    sl_part *dp = NULL;
    sl_part_iter *it;
    int64_t base = -1;
    sl_header old[] = {{"dlq.group", 9, "earlier", 7}};
    sl_dlq_origin o = {.topic = "t",
                       .group = "g1",
                       .partition = 0,
                       .offset = 42,
                       .attempts = 3,
                       .failures = 2,
                       .reason = "rejected",
                       .first_ms = 100,
                       .last_ms = 200,
                       .time_ms = 300,
                       .reason_text = "bad input"};
    sl_groups_stats st;
    (void)state;
    make_record(2, old, 1, &bb, &rec);
    assert_int_equal(sl_dlq_append(F.g, "t.DLQ", &rec, &o, &dp, &base), SL_OK);
    sl_bb_fini(&bb);
    assert_ptr_equal(dp, F.dlq);
    assert_int_equal(base, 0);
    sl_groups_stats_get(F.g, &st);
    assert_int_equal(st.dlq_appends, 1);
    read_one(F.dlq, 0, &out, &it);
    assert_int_equal(out.value_len, 5);
    assert_memory_equal(out.value, "value", 5);
    assert_int_equal(out.timestamp, 1234);
    assert_true(has(&out, "h0", "x0"));
    assert_true(has(&out, "h1", "x1"));
    assert_true(has(&out, SL_DLQ_HDR_GROUP, "g1")); /* not "earlier" */
    assert_true(has(&out, SL_DLQ_HDR_TOPIC, "t"));
    assert_true(has(&out, SL_DLQ_HDR_PARTITION, "0"));
    assert_true(has(&out, SL_DLQ_HDR_OFFSET, "42"));
    assert_true(has(&out, SL_DLQ_HDR_ATTEMPTS, "3"));
    assert_true(has(&out, SL_DLQ_HDR_FAILURES, "2"));
    assert_true(has(&out, SL_DLQ_HDR_REASON, "rejected"));
    assert_true(has(&out, SL_DLQ_HDR_FIRST_DELIVERY, "100"));
    assert_true(has(&out, SL_DLQ_HDR_LAST_DELIVERY, "200"));
    assert_true(has(&out, SL_DLQ_HDR_TIME, "300"));
    assert_true(has(&out, SL_DLQ_HDR_REASON_TEXT, "bad input"));
    assert_int_equal(nheaders(&out), 2 + 11);
    sl_part_iter_free(it);
}

/* Dead-lettering a record with many headers keeps the same number of
 * them as redrive does (one cap, not 50 here and 60 there). */
static void test_append_cap(void **state)
{
    sl_batch_builder bb;
    sl_record rec, out;
    sl_part *dp = NULL;
    sl_part_iter *it;
    int64_t base;
    sl_dlq_origin o = {.topic = "t", .group = "g", .reason = "expired"};
    (void)state;
    make_record(100, NULL, 0, &bb, &rec);
    assert_int_equal(sl_dlq_append(F.g, "t.DLQ", &rec, &o, &dp, &base), SL_OK);
    sl_bb_fini(&bb);
    read_one(F.dlq, base, &out, &it);
    /* 10 dlq.* headers: no reason text */
    assert_int_equal(nheaders(&out), SL_DLQ_KEEP_HEADERS + 10);
    assert_true(has(&out, "h59", "x59"));
    assert_false(has(&out, "h60", NULL));
    sl_part_iter_free(it);
}

static void dead_letter_n(int n, const char *reason)
{
    for (int i = 0; i < n; i++) {
        sl_batch_builder bb;
        sl_record rec;
        sl_part *dp;
        int64_t base;
        sl_dlq_origin o = {.topic = "t",
                           .group = "g",
                           .partition = 0,
                           .offset = i,
                           .reason = reason};
        make_record(1, NULL, 0, &bb, &rec);
        assert_int_equal(sl_dlq_append(F.g, "t.DLQ", &rec, &o, &dp, &base),
                         SL_OK);
        sl_bb_fini(&bb);
    }
}

/* rate 40/s = 2 records per 50 ms step; progress survives a new redrive
 * (the "<DLQ>.redrive" stream group). */
static void test_redrive_rate_and_resume(void **state)
{
    sl_dlq_redrive *rd;
    sl_dlq_redrive_opts o = {.dlq_topic = "t.DLQ", .max = -1, .rate = 40};
    sl_record out;
    sl_part_iter *it;
    int steps = 0;
    (void)state;
    dead_letter_n(7, "rejected");
    assert_int_equal(sl_dlq_redrive_new(F.g, &o, &k_sink, &rd), SL_OK);
    while (!sl_dlq_redrive_step(rd, F.g)) {
        steps++;
        assert_int_equal(sl_dlq_redrive_moved(rd), 2 * steps);
        assert_true(steps < 10);
        if (steps == 2)
            break; /* stop half way, as a closed connection does */
    }
    assert_int_equal(sl_dlq_redrive_moved(rd), 4);
    sl_dlq_redrive_free(rd);
    assert_int_equal(sl_dlq_redrive_new(F.g, &o, &k_sink, &rd), SL_OK);
    steps = 0;
    while (!sl_dlq_redrive_step(rd, F.g))
        steps++;
    assert_int_equal(steps, 1); /* 2 + 1: the second step has budget left */
    assert_int_equal(sl_dlq_redrive_moved(rd), 3);
    assert_int_equal(sl_dlq_redrive_skipped(rd), 0);
    sl_dlq_redrive_free(rd);
    assert_int_equal(F.appends_to_t, 7);
    /* back without dlq.*, with redrive.* */
    read_one(F.t, 0, &out, &it);
    assert_false(has(&out, SL_DLQ_HDR_TOPIC, NULL));
    assert_true(has(&out, "h0", "x0"));
    assert_true(has(&out, SL_DLQ_HDR_REDRIVE_FROM, "t.DLQ"));
    assert_true(has(&out, SL_DLQ_HDR_REDRIVE_TIME, "5000000"));
    sl_part_iter_free(it);
    /* nothing left to move */
    assert_int_equal(sl_dlq_redrive_new(F.g, &o, &k_sink, &rd), SL_OK);
    assert_int_equal(sl_dlq_redrive_step(rd, F.g), 1);
    assert_int_equal(sl_dlq_redrive_moved(rd), 0);
    sl_dlq_redrive_free(rd);
}

static void test_redrive_reason_target_max(void **state)
{
    sl_dlq_redrive *rd;
    sl_dlq_redrive_opts o = {
        .dlq_topic = "t.DLQ", .target = "other", .reason = "expired", .max = 2};
    (void)state;
    dead_letter_n(2, "rejected");
    dead_letter_n(3, "expired");
    assert_int_equal(sl_dlq_redrive_new(F.g, &o, &k_sink, &rd), SL_OK);
    assert_int_equal(sl_dlq_redrive_step(rd, F.g), 1); /* no rate: one step */
    assert_int_equal(sl_dlq_redrive_moved(rd), 2);     /* max */
    assert_int_equal(sl_dlq_redrive_skipped(rd), 2);   /* rejected ones */
    sl_dlq_redrive_free(rd);
    assert_int_equal(F.appends_to_t, 0);
    assert_int_equal(sl_part_end_offset(F.other), 2);
    o.dlq_topic = "missing";
    assert_int_equal(sl_dlq_redrive_new(F.g, &o, &k_sink, &rd),
                     SL_ERR_UNKNOWN_TOPIC);
}

typedef struct seen {
    int n;
    char dlq[4][32], topic[4][32], group[4][32];
} seen;

static void list_cb(void *arg, const char *dlq, const char *topic,
                    const char *group)
{
    seen *s = arg;
    assert_true(s->n < 4);
    snprintf(s->dlq[s->n], 32, "%s", dlq);
    snprintf(s->topic[s->n], 32, "%s", topic);
    snprintf(s->group[s->n], 32, "%s", group);
    s->n++;
}

static void test_list_and_depth(void **state)
{
    sl_qgroup_cfg none;
    seen s;
    int64_t start = -1, end = -1;
    (void)state;
    assert_int_equal(sl_qgroup_declare(F.g, "g1", "t", NULL), SL_OK);
    sl_qgroup_cfg_defaults(&none);
    snprintf(none.dlq_topic, sizeof(none.dlq_topic), "-");
    assert_int_equal(sl_qgroup_declare(F.g, "g2", "t", &none), SL_OK);
    memset(&s, 0, sizeof(s));
    sl_dlq_list(F.g, NULL, NULL, list_cb, &s);
    assert_int_equal(s.n, 1); /* g2 has no dead-letter topic */
    assert_string_equal(s.dlq[0], "t.DLQ");
    assert_string_equal(s.topic[0], "t");
    assert_string_equal(s.group[0], "g1");
    memset(&s, 0, sizeof(s));
    sl_dlq_list(F.g, "t", "g2", list_cb, &s);
    assert_int_equal(s.n, 0);
    memset(&s, 0, sizeof(s));
    sl_dlq_list(F.g, "nope", NULL, list_cb, &s);
    assert_int_equal(s.n, 0);
    assert_int_equal(sl_dlq_depth(F.g, "t.DLQ", &start, &end), -1);
    assert_int_equal(start, -1); /* untouched */
    dead_letter_n(4, "rejected");
    assert_int_equal(sl_dlq_depth(F.g, "t.DLQ", &start, &end), 4);
    assert_int_equal(start, 0);
    assert_int_equal(end, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keep_headers_filter_and_cap, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_topic_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redrive_rate_and_resume, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_redrive_reason_target_max, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_list_and_depth, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
