/*
 * Unit tests: records that lie (issue 18, findings 1, 5 and 8).
 *
 * A batch can carry a valid CRC and a sane header while its records claim
 * impossible offset deltas, lengths or timestamps. sl_batch_validate must
 * refuse it with a message naming the record, and the record iterator every
 * reader uses must neither jump offsets nor overflow (run under UBSan in
 * the ASan build: the timestamp case was signed overflow).
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <zstd.h>

#include "protocol/batch.h"
#include "protocol/rd.h"

/* One uncompressed batch of n records with the given offset and timestamp
 * deltas, "v<i>" values, a valid CRC. Returns its size. */
static size_t craft(uint8_t *out, size_t cap, int n, const int64_t *offd,
                    const int64_t *tsd, int64_t first_ts, int64_t max_ts)
{
    size_t pos = SL_BATCH_HDR_SIZE;
    int32_t lod = n - 1;
    uint32_t cnt = (uint32_t)n;
    int64_t pid = -1;
    int16_t ep = -1;
    int32_t seq = -1;
    uint16_t attr = 0;

    for (int i = 0; i < n; i++) {
        uint8_t body[64];
        size_t b = 0;
        body[b++] = 0;
        b += sl_varint_put(body + b, tsd ? tsd[i] : 0);
        b += sl_varint_put(body + b, offd[i]);
        b += sl_varint_put(body + b, -1); /* null key */
        b += sl_varint_put(body + b, 2);
        body[b++] = 'v';
        body[b++] = (uint8_t)('0' + i % 10);
        b += sl_varint_put(body + b, 0); /* no headers */
        assert_true(pos + b + 10 <= cap);
        pos += sl_varint_put(out + pos, (int64_t)b);
        memcpy(out + pos, body, b);
        pos += b;
    }
    memset(out, 0, SL_BATCH_HDR_SIZE);
    sl_put_u32(out + 8, (uint32_t)(pos - 12));
    out[16] = SL_BATCH_MAGIC;
    memcpy(out + 17, &attr, 2);
    memcpy(out + 19, &lod, 4);
    memcpy(out + 23, &first_ts, 8);
    memcpy(out + 31, &max_ts, 8);
    memcpy(out + 39, &pid, 8);
    memcpy(out + 47, &ep, 2);
    memcpy(out + 49, &seq, 4);
    memcpy(out + 53, &cnt, 4);
    sl_put_u32(out + SL_BATCH_CRC_OFF, sl_batch_compute_crc(out, pos));
    return pos;
}

/* Offsets the iterator yields before it stops; *err its verdict. */
static int iterate(const uint8_t *b, size_t len, int64_t *offs, sl_err *err)
{
    sl_batch_iter it;
    sl_record rec;
    int n = 0;
    assert_int_equal(sl_batch_iter_init(&it, b, len), SL_OK);
    while (sl_batch_iter_next(&it, &rec, err) == 1)
        offs[n++] = rec.offset;
    sl_batch_iter_fini(&it);
    return n;
}

static void test_good_batches_pass(void **state)
{
    uint8_t b[512];
    int64_t offd[3] = {0, 1, 2}, tsd[3] = {0, 5, -3};
    char why[200];
    size_t len = craft(b, sizeof(b), 3, offd, tsd, 1000, 1005);
    (void)state;
    assert_int_equal(sl_batch_verify(b, len, NULL), SL_OK);
    assert_int_equal(sl_batch_validate(b, len, 1 << 20, why, sizeof(why)),
                     SL_OK);
    for (int codec = SL_CODEC_NONE; codec <= SL_CODEC_ZSTD; codec++) {
        sl_batch_builder bb;
        const uint8_t *p;
        sl_header hs[1] = {{"h", 1, NULL, 0}};
        sl_bb_init(&bb, codec);
        for (int i = 0; i < 50; i++)
            assert_int_equal(sl_bb_add(&bb, 2000 - i, i % 2 ? "k" : NULL, 1,
                                       "value", 5, hs, (size_t)(i % 2)),
                             SL_OK);
        assert_int_equal(sl_bb_finish(&bb, &p, &len), SL_OK);
        assert_int_equal(sl_batch_validate(p, len, 1 << 20, why, sizeof(why)),
                         SL_OK);
        sl_bb_fini(&bb);
    }
}

/* The crafted batches: deltas 0 and 1,000,000; -5 and -5. */
static void test_lying_offset_deltas(void **state)
{
    uint8_t b[512];
    int64_t jump[2] = {0, 1000000}, back[2] = {-5, -5}, swap[2] = {1, 0};
    int64_t offs[4];
    char why[200];
    sl_err e;
    size_t len;
    (void)state;

    len = craft(b, sizeof(b), 2, jump, NULL, 1000, 1000);
    assert_int_equal(sl_batch_verify(b, len, NULL), SL_OK); /* CRC is fine */
    assert_int_equal(sl_batch_validate(b, len, 1 << 20, why, sizeof(why)),
                     SL_ERR_MALFORMED);
    assert_non_null(strstr(why, "record 1: offset delta 1000000, expected 1"));
    /* A reader of such a batch already on disk: record 0, then an error;
     * never offset 1000000. */
    sl_batch_set_base_offset(b, 7);
    assert_int_equal(iterate(b, len, offs, &e), 1);
    assert_int_equal(offs[0], 7);
    assert_int_equal(e, SL_ERR_MALFORMED);

    len = craft(b, sizeof(b), 2, back, NULL, 1000, 1000);
    assert_int_equal(sl_batch_validate(b, len, 1 << 20, why, sizeof(why)),
                     SL_ERR_MALFORMED);
    assert_non_null(strstr(why, "record 0: offset delta -5, expected 0"));
    assert_int_equal(iterate(b, len, offs, &e), 0);
    assert_int_equal(e, SL_ERR_MALFORMED);

    len = craft(b, sizeof(b), 2, swap, NULL, 1000, 1000);
    assert_int_equal(sl_batch_validate(b, len, 1 << 20, why, sizeof(why)),
                     SL_ERR_MALFORMED);
}

/* Finding 8: first_timestamp near INT64_MAX plus a positive delta was
 * signed overflow in sl_batch_iter_next (UBSan aborts the old code). */
static void test_timestamp_overflow(void **state)
{
    uint8_t b[512];
    int64_t offd[2] = {0, 1}, tsd[2] = {0, INT64_MAX};
    int64_t neg[2] = {0, INT64_MIN};
    int64_t offs[4];
    char why[200];
    sl_err e;
    size_t len;
    (void)state;

    len = craft(b, sizeof(b), 2, offd, tsd, INT64_MAX - 10, INT64_MAX);
    assert_int_equal(iterate(b, len, offs, &e), 1);
    assert_int_equal(e, SL_ERR_MALFORMED);
    assert_int_equal(sl_batch_validate(b, len, 1 << 20, why, sizeof(why)),
                     SL_ERR_MALFORMED);
    assert_non_null(strstr(why, "record 1: timestamp delta"));

    len = craft(b, sizeof(b), 2, offd, neg, -10, 0);
    assert_int_equal(iterate(b, len, offs, &e), 1);
    assert_int_equal(e, SL_ERR_MALFORMED);

    /* A timestamp above the header's max_timestamp is refused on produce. */
    int64_t late[2] = {0, 50};
    len = craft(b, sizeof(b), 2, offd, late, 1000, 1010);
    assert_int_equal(sl_batch_validate(b, len, 1 << 20, why, sizeof(why)),
                     SL_ERR_MALFORMED);
    assert_non_null(strstr(why, "after the batch's max_timestamp"));

    /* The builder refuses a delta it cannot store instead of wrapping. */
    sl_batch_builder bb;
    sl_bb_init(&bb, SL_CODEC_NONE);
    assert_int_equal(sl_bb_add(&bb, INT64_MIN, NULL, 0, "a", 1, NULL, 0),
                     SL_OK);
    assert_int_equal(sl_bb_add(&bb, INT64_MAX, NULL, 0, "b", 1, NULL, 0),
                     SL_ERR_INVALID_ARG);
    sl_bb_fini(&bb);
}

/* Lengths and counts that do not add up. */
static void test_lengths_and_counts(void **state)
{
    uint8_t b[512];
    int64_t offd[2] = {0, 1};
    char why[200];
    size_t len;
    (void)state;

    /* Trailing garbage after the last record. */
    len = craft(b, sizeof(b), 2, offd, NULL, 1000, 1000);
    b[len] = 0x55;
    sl_put_u32(b + 8, (uint32_t)(len + 1 - 12));
    sl_put_u32(b + SL_BATCH_CRC_OFF, sl_batch_compute_crc(b, len + 1));
    assert_int_equal(sl_batch_verify(b, len + 1, NULL), SL_OK);
    assert_int_equal(sl_batch_validate(b, len + 1, 1 << 20, why, sizeof(why)),
                     SL_ERR_MALFORMED);
    assert_non_null(strstr(why, "after the last of 2 records"));

    /* record_count 3 (and last_offset_delta 2) with only 2 records. */
    len = craft(b, sizeof(b), 2, offd, NULL, 1000, 1000);
    uint32_t three = 3;
    int32_t two = 2;
    memcpy(b + 53, &three, 4);
    memcpy(b + 19, &two, 4);
    sl_put_u32(b + SL_BATCH_CRC_OFF, sl_batch_compute_crc(b, len));
    assert_int_equal(sl_batch_validate(b, len, 1 << 20, why, sizeof(why)),
                     SL_ERR_MALFORMED);
    assert_non_null(strstr(why, "record 2 of 3: missing"));

    /* A header count the record cannot hold: the last varint of record 0
     * (its header count, 0) becomes 60. */
    len = craft(b, sizeof(b), 2, offd, NULL, 1000, 1000);
    size_t r0len = (size_t)b[SL_BATCH_HDR_SIZE] / 2; /* zigzag, 1 byte */
    b[SL_BATCH_HDR_SIZE + r0len] = 120;              /* zigzag(60) */
    sl_put_u32(b + SL_BATCH_CRC_OFF, sl_batch_compute_crc(b, len));
    assert_int_equal(sl_batch_validate(b, len, 1 << 20, why, sizeof(why)),
                     SL_ERR_MALFORMED);
    assert_non_null(strstr(why, "record 0: header count 60"));
}

/* Finding 5: a small zstd batch that inflates beyond the limit is refused
 * from its declared size, before the memory is allocated. */
static void test_zstd_bomb(void **state)
{
    sl_batch_builder bb;
    const uint8_t *p;
    size_t len;
    char why[200];
    size_t big = 8u << 20;
    char *zeros = calloc(1, big);
    (void)state;

    sl_bb_init(&bb, SL_CODEC_ZSTD);
    assert_int_equal(sl_bb_add(&bb, 1, NULL, 0, zeros, big, NULL, 0), SL_OK);
    assert_int_equal(sl_bb_finish(&bb, &p, &len), SL_OK);
    assert_true(len < 4096); /* 8 MiB of zeros compress to almost nothing */
    assert_int_equal(sl_batch_validate(p, len, 1 << 20, why, sizeof(why)),
                     SL_ERR_TOO_LARGE);
    assert_non_null(strstr(why, "inflates beyond 1048576 bytes"));
    assert_int_equal(sl_batch_validate(p, len, 16u << 20, why, sizeof(why)),
                     SL_OK);
    sl_bb_fini(&bb);
    free(zeros);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_batches_pass),
        cmocka_unit_test(test_lying_offset_deltas),
        cmocka_unit_test(test_timestamp_overflow),
        cmocka_unit_test(test_lengths_and_counts),
        cmocka_unit_test(test_zstd_bomb),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
