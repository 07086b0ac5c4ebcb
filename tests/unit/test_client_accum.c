/* Unit tests: libsluice partitioner and producer batching accumulator. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "client/src/accum.h"
#include "sluice.h"

static void test_partitioner_fnv1a(void **state)
{
    (void)state;
    /* FNV-1a 32-bit reference values: "" = 0x811c9dc5, "a" = 0xe40c292c,
     * "foobar" = 0xbf9cf968. */
    assert_int_equal(sluice_partition_for_key("", 0, 1000003),
                     (int32_t)(0x811c9dc5u % 1000003u));
    assert_int_equal(sluice_partition_for_key("a", 1, 1000003),
                     (int32_t)(0xe40c292cu % 1000003u));
    assert_int_equal(sluice_partition_for_key("foobar", 6, 7),
                     (int32_t)(0xbf9cf968u % 7u));
    assert_int_equal(sluice_partition_for_key("x", 1, 0), -1);
    assert_int_equal(sluice_partition_for_key("x", 1, 1), 0);
}

static void test_partitioner_spreads(void **state)
{
    int counts[8] = {0};
    char key[32];
    int i;
    (void)state;
    for (i = 0; i < 8000; i++) {
        int n = snprintf(key, sizeof(key), "key-%d", i);
        int32_t p = sluice_partition_for_key(key, (size_t)n, 8);
        assert_true(p >= 0 && p < 8);
        counts[p]++;
        /* same key, same partition */
        assert_int_equal(p, sluice_partition_for_key(key, (size_t)n, 8));
    }
    for (i = 0; i < 8; i++)
        assert_true(counts[i] > 700 && counts[i] < 1300);
}

/* Decode a finished batch and check its values are v0..v(n-1). */
static void check_batch(sl_pbatch *b, const char *prefix, int first, int n)
{
    sl_batch_iter it;
    sl_record r;
    sl_err e;
    char want[64];
    int i = 0;
    assert_int_equal(sl_batch_verify(b->enc, b->enc_len, &it.hdr), SL_OK);
    assert_int_equal(sl_batch_iter_init(&it, b->enc, b->enc_len), SL_OK);
    while (sl_batch_iter_next(&it, &r, &e) == 1) {
        int wl = snprintf(want, sizeof(want), "%s%d", prefix, first + i);
        assert_int_equal(r.value_len, wl);
        assert_memory_equal(r.value, want, (size_t)wl);
        assert_int_equal(r.offset, i);
        i++;
    }
    assert_int_equal(e, SL_OK);
    assert_int_equal(i, n);
    assert_int_equal(b->n, (uint32_t)n);
    sl_batch_iter_fini(&it);
}

static void test_batch_by_records_and_linger(void **state)
{
    sl_accum a;
    sl_pbatch *b;
    sl_err e;
    int t, full, i;
    char v[32];
    (void)state;

    sl_accum_init(&a, 1 << 20, 4, 10, SL_CODEC_NONE);
    t = sl_accum_add_topic(&a, "t", 2);
    assert_int_equal(t, 0);
    assert_int_equal(sl_accum_find(&a, "t"), 0);
    assert_int_equal(sl_accum_find(&a, "u"), -1);
    assert_int_equal(sl_accum_next_due(&a), INT64_MAX);
    for (i = 0; i < 5; i++) {
        int n = snprintf(v, sizeof(v), "v%d", i);
        assert_int_equal(sl_accum_add(&a, t, 1, 1000 + i, NULL, 0, v, (size_t)n,
                                      NULL, 0, (void *)(intptr_t)(i + 1), 100,
                                      &full),
                         SL_OK);
        assert_int_equal(full, i == 3); /* batch.records = 4 */
    }
    assert_int_equal(a.records, 5);
    /* the full batch first, whatever the time */
    b = sl_accum_take(&a, 100, 0, &e);
    assert_non_null(b);
    assert_int_equal(e, SL_OK);
    assert_int_equal(b->partition, 1);
    check_batch(b, "v", 0, 4);
    assert_ptr_equal(b->opaque[0], (void *)1);
    assert_ptr_equal(b->opaque[3], (void *)4);
    assert_int_equal(b->ts[2], 1002);
    sl_accum_release(&a, b);
    /* the open one lingers until 100 + 10 */
    assert_int_equal(sl_accum_next_due(&a), 110);
    assert_null(sl_accum_take(&a, 109, 0, &e));
    b = sl_accum_take(&a, 110, 0, &e);
    assert_non_null(b);
    check_batch(b, "v", 4, 1);
    sl_accum_release(&a, b);
    assert_null(sl_accum_take(&a, 1000, 1, &e));
    assert_int_equal(a.records, 0);
    /* unknown partition */
    assert_int_equal(
        sl_accum_add(&a, t, 2, 0, NULL, 0, "x", 1, NULL, 0, NULL, 0, &full),
        SL_ERR_UNKNOWN_PARTITION);
    sl_accum_fini(&a);
}

/* Idempotence: each batch is stamped once with the producer id, epoch and
 * its partition's next sequence; a batch put back and taken again keeps
 * its bytes; a new epoch restarts every partition at 0. */
static void test_sequences_stamped_once(void **state)
{
    sl_accum a;
    sl_pbatch *b, *b2;
    sl_batch_hdr h;
    sl_err e;
    int t, full;
    (void)state;

    sl_accum_init(&a, 1 << 20, 3, 0, SL_CODEC_NONE);
    t = sl_accum_add_topic(&a, "t", 2);
    /* not idempotent: -1 everywhere */
    assert_int_equal(
        sl_accum_add(&a, t, 0, 1, NULL, 0, "x", 1, NULL, 0, NULL, 0, &full),
        SL_OK);
    b = sl_accum_take(&a, 0, 1, &e);
    assert_int_equal(sl_batch_verify(b->enc, b->enc_len, &h), SL_OK);
    assert_int_equal(h.producer_id, -1);
    assert_int_equal(h.base_sequence, -1);
    sl_accum_release(&a, b);
    sl_accum_set_producer(&a, 77, 2);
    for (int i = 0; i < 8; i++) /* partition 0: 3 + 3 + 2 records */
        assert_int_equal(
            sl_accum_add(&a, t, 0, 1, NULL, 0, "x", 1, NULL, 0, NULL, 0, &full),
            SL_OK);
    assert_int_equal(
        sl_accum_add(&a, t, 1, 1, NULL, 0, "y", 1, NULL, 0, NULL, 0, &full),
        SL_OK);
    int32_t want[] = {0, 3}; /* the two full batches of partition 0 */
    for (int i = 0; i < 2; i++) {
        b = sl_accum_take(&a, 0, 0, &e);
        assert_int_equal(sl_batch_verify(b->enc, b->enc_len, &h), SL_OK);
        assert_int_equal(h.producer_id, 77);
        assert_int_equal(h.producer_epoch, 2);
        assert_int_equal(h.base_sequence, want[i]);
        if (i == 0) { /* put back, taken again: the same bytes */
            const uint8_t *enc = b->enc;
            sl_accum_unget(&a, b);
            b2 = sl_accum_take(&a, 0, 0, &e);
            assert_ptr_equal(b2, b);
            assert_ptr_equal(b2->enc, enc);
        }
        sl_accum_release(&a, b);
    }
    /* partition 1 has its own series; partition 0 goes on at 6 */
    for (int i = 0; i < 2; i++) {
        b = sl_accum_take(&a, 0, 1, &e);
        assert_int_equal(sl_batch_verify(b->enc, b->enc_len, &h), SL_OK);
        assert_int_equal(h.base_sequence, b->partition == 0 ? 6 : 0);
        sl_accum_release(&a, b);
    }
    sl_accum_set_producer(&a, 77, 3);
    assert_int_equal(
        sl_accum_add(&a, t, 0, 1, NULL, 0, "x", 1, NULL, 0, NULL, 0, &full),
        SL_OK);
    b = sl_accum_take(&a, 0, 1, &e);
    assert_int_equal(sl_batch_verify(b->enc, b->enc_len, &h), SL_OK);
    assert_int_equal(h.producer_epoch, 3);
    assert_int_equal(h.base_sequence, 0);
    sl_accum_release(&a, b);
    sl_accum_fini(&a);
}

static void test_batch_by_size_and_flush_all(void **state)
{
    sl_accum a;
    sl_pbatch *b;
    sl_err e;
    int t, full, i, nfull = 0;
    char v[200];
    (void)state;

    sl_accum_init(&a, 1000, 100000, 1000, SL_CODEC_ZSTD);
    t = sl_accum_add_topic(&a, "t", 1);
    memset(v, 'a', sizeof(v));
    for (i = 0; i < 20; i++) {
        assert_int_equal(sl_accum_add(&a, t, 0, 1, NULL, 0, v, sizeof(v), NULL,
                                      0, NULL, 0, &full),
                         SL_OK);
        nfull += full;
    }
    /* ~210 bytes per record, 1000-byte batches: a batch every 5 records
     * (the header counts too) */
    assert_true(nfull >= 3 && nfull <= 5);
    i = 0;
    while ((b = sl_accum_take(&a, 0, 1, &e))) {
        assert_int_equal(e, SL_OK);
        /* compressed: much smaller than the raw records */
        assert_true(b->enc_len < 200);
        i += (int)b->n;
        sl_accum_release(&a, b);
    }
    assert_int_equal(i, 20);
    sl_accum_fini(&a);
}

static void test_sticky_and_keys(void **state)
{
    sl_accum a;
    sl_pbatch *b;
    sl_err e;
    int t, full;
    int32_t p1, p2;
    (void)state;

    sl_accum_init(&a, 1 << 20, 2, 1000, SL_CODEC_NONE);
    t = sl_accum_add_topic(&a, "t", 4);
    /* keyed: the hash */
    assert_int_equal(sl_accum_pick(&a, t, "foobar", 6),
                     sluice_partition_for_key("foobar", 6, 4));
    /* null key: sticky until its batch leaves */
    p1 = sl_accum_pick(&a, t, NULL, 0);
    assert_int_equal(sl_accum_pick(&a, t, NULL, 0), p1);
    assert_int_equal(
        sl_accum_add(&a, t, p1, 1, NULL, 0, "a", 1, NULL, 0, NULL, 0, &full),
        SL_OK);
    assert_int_equal(sl_accum_pick(&a, t, NULL, 0), p1);
    assert_int_equal(
        sl_accum_add(&a, t, p1, 1, NULL, 0, "b", 1, NULL, 0, NULL, 0, &full),
        SL_OK);
    assert_int_equal(full, 1);
    p2 = sl_accum_pick(&a, t, NULL, 0);
    assert_int_equal(p2, (p1 + 1) % 4);
    b = sl_accum_take(&a, 0, 0, &e);
    assert_non_null(b);
    /* unget puts it back first */
    sl_accum_unget(&a, b);
    assert_int_equal(a.records, 2);
    assert_ptr_equal(sl_accum_take(&a, 0, 0, &e), b);
    sl_accum_release(&a, b);
    /* growing the partition count keeps the topic */
    assert_int_equal(sl_accum_add_topic(&a, "t", 8), t);
    assert_int_equal(a.topics[t].nparts, 8);
    sl_accum_fini(&a);
}

/* partitioner.null.key round-robin: every keyless record goes to the next
 * partition, also when a batch leaves early (linger or flush) between
 * records; `seq 1 1000 | sluice produce` into 4 partitions gives 250 each. */
static void test_null_key_round_robin_survives_early_take(void **state)
{
    sl_accum a;
    sl_pbatch *b;
    sl_err e;
    int t, full, i;
    int counts[4] = {0};
    (void)state;

    sl_accum_init(&a, 1 << 20, 1000, 1000, SL_CODEC_NONE);
    a.null_rr = 1;
    t = sl_accum_add_topic(&a, "t", 4);
    for (i = 0; i < 1000; i++) {
        int32_t p = sl_accum_pick(&a, t, NULL, 0);
        assert_int_equal(p, i % 4);
        counts[p]++;
        assert_int_equal(
            sl_accum_add(&a, t, p, 1, NULL, 0, "v", 1, NULL, 0, NULL, 0, &full),
            SL_OK);
        if (i % 7 == 3) { /* a flush takes every open batch */
            while ((b = sl_accum_take(&a, 0, 1, &e)) != NULL)
                sl_accum_release(&a, b);
        }
    }
    for (i = 0; i < 4; i++)
        assert_int_equal(counts[i], 250);
    while ((b = sl_accum_take(&a, 0, 1, &e)) != NULL)
        sl_accum_release(&a, b);
    sl_accum_fini(&a);
}

/* Recycling (accum.c): an accumulator keeps two released batches of its
 * own; a third goes to the process's pool, and another accumulator's next
 * new batch takes it (its buffer, resident, for new records) instead of
 * allocating; an accumulator's spares go to the pool when it is freed. */
static void test_released_batches_go_to_other_accumulators(void **state)
{
    sl_accum a, b;
    sl_pbatch *x[3], *y;
    sl_err e;
    int t, u, full, i;
    size_t n0, bytes0, n1, bytes1;
    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    skip(); /* no pool under ASan (accum.c) */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    skip();
#endif
#endif

    sl_accum_init(&a, 1 << 20, 1, 0, SL_CODEC_NONE);
    sl_accum_init(&b, 1 << 20, 1, 0, SL_CODEC_NONE);
    t = sl_accum_add_topic(&a, "t", 1);
    u = sl_accum_add_topic(&b, "u", 1);
    for (i = 0; i < 3; i++) {
        assert_int_equal(
            sl_accum_add(&a, t, 0, 1, NULL, 0, "a", 1, NULL, 0, NULL, 0, &full),
            SL_OK);
        x[i] = sl_accum_take(&a, 0, 1, &e);
        assert_non_null(x[i]);
    }
    sl_accum_pool_stats(&n0, &bytes0);
    for (i = 0; i < 3; i++)
        sl_accum_release(&a, x[i]);
    sl_accum_pool_stats(&n1, &bytes1);
    assert_int_equal(n1, n0 + 1); /* x[2]: a keeps x[0] and x[1] */
    assert_true(bytes1 > bytes0);
    assert_int_equal(
        sl_accum_add(&b, u, 0, 1, NULL, 0, "b0", 2, NULL, 0, NULL, 0, &full),
        SL_OK);
    y = sl_accum_take(&b, 0, 1, &e);
    assert_ptr_equal(y, x[2]);
    check_batch(y, "b", 0, 1);
    assert_int_equal(y->tidx, u);
    sl_accum_pool_stats(&n1, &bytes1);
    assert_int_equal(n1, n0);
    sl_accum_release(&b, y);
    sl_accum_fini(&a); /* x[0], x[1] to the pool */
    sl_accum_pool_stats(&n1, &bytes1);
    assert_int_equal(n1, n0 + 2);
    sl_accum_fini(&b); /* the last accumulator: the pool is emptied */
    sl_accum_pool_stats(&n1, &bytes1);
    assert_int_equal(n1, 0);
    assert_int_equal(bytes1, 0);
}

/* A batch whose result is known (sl_accum_done) gives its buffer to the
 * next batch at once, before its report is delivered and the batch
 * released: the report's records and opaques stay; a released batch
 * without a buffer takes one back. */
static void test_done_batch_hands_its_buffer_on(void **state)
{
    sl_accum a;
    sl_pbatch *x, *y;
    const uint8_t *buf;
    sl_err e;
    int t, full;
    int tag = 7;
    (void)state;

    sl_accum_init(&a, 1 << 20, 1, 0, SL_CODEC_NONE);
    t = sl_accum_add_topic(&a, "t", 1);
    assert_int_equal(
        sl_accum_add(&a, t, 0, 1, NULL, 0, "a", 1, NULL, 0, &tag, 0, &full),
        SL_OK);
    x = sl_accum_take(&a, 0, 1, &e);
    assert_non_null(x);
    buf = x->bb.buf.p;
    sl_accum_done(&a, x);
    assert_null(x->bb.buf.p);
    assert_int_equal(x->n, 1); /* what the report needs stays */
    assert_ptr_equal(x->opaque[0], &tag);
    assert_int_equal(
        sl_accum_add(&a, t, 0, 2, NULL, 0, "b0", 2, NULL, 0, NULL, 0, &full),
        SL_OK);
    y = sl_accum_take(&a, 0, 1, &e);
    assert_non_null(y);
    assert_ptr_not_equal(y, x);
    assert_ptr_equal(y->bb.buf.p, buf); /* x's buffer, not a new one */
    check_batch(y, "b", 0, 1);
    sl_accum_done(&a, y);
    sl_accum_release(&a, x); /* takes y's buffer back from the bank */
    assert_ptr_equal(x->bb.buf.p, buf);
    assert_int_equal(a.nbank, 0);
    sl_accum_release(&a, y);
    sl_accum_fini(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partitioner_fnv1a),
        cmocka_unit_test(test_partitioner_spreads),
        cmocka_unit_test(test_batch_by_records_and_linger),
        cmocka_unit_test(test_batch_by_size_and_flush_all),
        cmocka_unit_test(test_sticky_and_keys),
        cmocka_unit_test(test_sequences_stamped_once),
        cmocka_unit_test(test_null_key_round_robin_survives_early_take),
        cmocka_unit_test(test_released_batches_go_to_other_accumulators),
        cmocka_unit_test(test_done_batch_hands_its_buffer_on),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
