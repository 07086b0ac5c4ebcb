/* Unit tests: damaged batches whose headers lie about their offsets, found
 * by the segment fuzz target (tests/fuzz/fuzz_segment.c; the inputs are in
 * tests/fuzz/corpus/segment/regress-*). Recovery must be stable (a second
 * open keeps what the first one served and acknowledged), and the record
 * iterator must never take offsets from a batch outside its segment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "protocol/batch.h"
#include "protocol/log.h"
#include "storage/partition.h"
#include "tests/unit/test_storage_util.h"

#define FAR_OFFSET ((int64_t)1 << 40) /* beyond any segment's 2^32 range */

/* A batch of n records with base offset base (CRC stays right: it does not
 * cover the base); *len its size. malloc'ed. */
static uint8_t *batch_at(int n, int64_t base, size_t *len)
{
    uint8_t *b = tu_batch(n, 1000, 0, 16, len);
    sl_batch_set_base_offset(b, base);
    return b;
}

static uint8_t *cat(uint8_t *a, size_t *alen, const uint8_t *b, size_t blen)
{
    a = realloc(a, *alen + blen);
    assert_non_null(a);
    memcpy(a + *alen, b, blen);
    *alen += blen;
    return a;
}

/* Open dir, check the iterator yields exactly [0, want_end), append one
 * batch (must get offset want_end), reopen: the end must be want_end + 1
 * and every record still there. */
static void open_append_reopen(const char *dir, int64_t want_end)
{
    sl_part_cfg cfg;
    sl_part *p;
    int64_t base;
    tu_small_cfg(&cfg, 1 << 20);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(sl_part_end_offset(p), want_end);
    assert_int_equal(tu_count_records(p, 0), want_end);
    base = tu_append(p, 1, 2000, 99, 8);
    assert_int_equal(base, want_end);
    assert_int_equal(tu_count_records(p, 0), want_end + 1);
    sl_part_free(p);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(sl_part_end_offset(p), want_end + 1);
    assert_int_equal(tu_count_records(p, 0), want_end + 1);
    sl_part_free(p);
}

/*
 * Junk at the head of the segment, then an intact batch whose offsets lie
 * beyond the segment's range. Recovery used to resynchronise on that batch
 * (counting its offsets into a kept damaged range, end = 2^40 + 1), then
 * refuse the same batch as out of sequence and cut the file just after the
 * junk; the next open saw the junk as a torn tail and deleted the segment
 * appended after it, acknowledged records included.
 */
static void test_recovery_ignores_far_batch(void **state)
{
    char *dir = tu_tmpdir();
    size_t len = 8, blen;
    uint8_t *log = malloc(8), *b = batch_at(2, FAR_OFFSET, &blen);
    memset(log, 0xab, 8);
    log = cat(log, &len, b, blen);
    tu_write_file(tu_seg_path(dir, 0, ".log"), log, len);
    open_append_reopen(dir, 0);
    free(b);
    free(log);
    tu_rmrf(dir);
}

/* A segment of `head` (taken: freed here) and then intact batches 0..4:
 * recovery, the iterator and an append must all see exactly 0..4. */
static void head_then_five(uint8_t *head, size_t hlen)
{
    char *dir = tu_tmpdir();
    size_t len = 0, blen;
    uint8_t *log = cat(NULL, &len, head, hlen), *b;
    free(head);
    b = batch_at(2, 0, &blen);
    log = cat(log, &len, b, blen);
    free(b);
    b = batch_at(3, 2, &blen);
    log = cat(log, &len, b, blen);
    free(b);
    tu_write_file(tu_seg_path(dir, 0, ".log"), log, len);
    open_append_reopen(dir, 5);
    free(log);
    tu_rmrf(dir);
}

/*
 * An intact batch (right CRC) with an out-of-sequence base at the head of
 * the segment, then batches 0..4. Recovery keeps the first as damaged; the
 * iterator used to yield its records at offset 2^40.
 */
static void test_iter_skips_out_of_range_batch(void **state)
{
    size_t blen;
    uint8_t *b = batch_at(1, FAR_OFFSET, &blen);
    head_then_five(b, blen);
}

/*
 * A batch with a broken CRC whose header claims offsets far ahead, then
 * batches 0..4. The iterator skipped "offsets 2^40..2^40" and with them
 * every record after the damaged batch.
 */
static void test_iter_distrusts_damaged_header(void **state)
{
    size_t blen;
    uint8_t *b = batch_at(1, FAR_OFFSET, &blen);
    b[blen - 1] ^= 0x55; /* CRC mismatch */
    head_then_five(b, blen);
}

/*
 * A damaged batch whose header claims a base near INT64_MIN and a negative
 * record count, then batches 0..4 (the segment fuzz target, CI run of
 * db00606). The offset lookup computed base + delta from it, a signed
 * overflow (UBSan: segment_index.c); such offsets now mark the header
 * damaged, and the batches after it are served.
 */
static void test_find_refuses_overflowing_header(void **state)
{
    size_t blen;
    int32_t lod = -1325400064;
    uint8_t *b = batch_at(1, INT64_MIN + 6, &blen);
    memcpy(b + 19, &lod, 4); /* breaks the CRC too */
    head_then_five(b, blen);
}

/*
 * A damaged batch (CRC mismatch) whose length field reaches exactly the
 * end of the file once the test's append is in: before the append it
 * runs past the end, so recovery finds the intact batches 0..4 after it
 * and keeps them. The iterator trusted that length as the damaged
 * batch's end when it landed on the file's end, and so skipped 0..4 and
 * the append (the segment fuzz target, session 17:
 * regress-length-to-end). The CRC covers neither base nor length.
 */
static void test_iter_distrusts_length_to_end(void **state)
{
    size_t blen, l1, l2, la;
    uint8_t *b = batch_at(1, 0, &blen), *x;
    free(batch_at(2, 0, &l1));
    free(batch_at(3, 2, &l2));
    free(tu_batch(1, 2000, 99, 8, &la)); /* open_append_reopen's append */
    b[blen - 1] ^= 0x55;                 /* CRC mismatch */
    x = b + SL_BATCH_LEN_OFF;
    sl_put_u32(x, (uint32_t)(blen + l1 + l2 + la - 12));
    head_then_five(b, blen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recovery_ignores_far_batch),
        cmocka_unit_test(test_iter_skips_out_of_range_batch),
        cmocka_unit_test(test_iter_distrusts_damaged_header),
        cmocka_unit_test(test_find_refuses_overflowing_header),
        cmocka_unit_test(test_iter_distrusts_length_to_end),
    };
    sl_log_level = SL_ERROR + 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
