/*
 * Unit tests: corruption in the middle of a log (issue 18, finding 2).
 *
 * A torn write can only be the last thing in a log; a batch that fails its
 * checks with intact batches after it is corruption of acknowledged data.
 * Recovery must keep everything after it (never cut, never reuse its
 * offsets), report the damaged range, and readers must get past it.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "protocol/log.h"
#include "storage/partition.h"
#include "tests/unit/test_storage_util.h"

/* Offsets the record iterator yields from start, into offs (max n). */
static int64_t collect(sl_part *p, int64_t start, int64_t *offs, int64_t n)
{
    sl_part_iter *it;
    sl_record r;
    sl_err e = SL_OK;
    int64_t k = 0;
    assert_int_equal(sl_part_iter_new(p, start, &it), SL_OK);
    while (sl_part_iter_next(it, &r, &e)) {
        assert_true(k < n);
        offs[k++] = r.offset;
    }
    assert_int_equal(e, SL_OK);
    sl_part_iter_free(it);
    return k;
}

/* Byte position of the batch with base offset `want` in a .log file. */
static size_t batch_pos(const uint8_t *log, size_t len, int64_t want)
{
    size_t pos = 0;
    while (pos + 12 <= len) {
        int64_t base = (int64_t)sl_get_u64(log + pos);
        if (base == want)
            return pos;
        pos += 12 + sl_get_u32(log + pos + 8);
    }
    fail_msg("no batch at offset %lld", (long long)want);
    return 0;
}

/* The scenario in storage terms: 300 one-record batches, one bit
 * flipped inside batch 50 (in its value, or in its length field), the
 * index files gone as after a kill -9 before they were written. */
static void mid_log(int damage_header, int drop_index)
{
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    size_t len;
    int64_t offs[400];
    sl_part_bad bad[4];
    uint64_t total = 0;

    tu_small_cfg(&cfg, 1 << 20);
    cfg.index_interval_bytes = 4096;
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    for (int i = 0; i < 300; i++)
        assert_int_equal(tu_append(p, 1, 1000 + i, i, 10), i);
    assert_int_equal(sl_part_sync(p), SL_OK);
    sl_part_free(p);

    const char *path = tu_seg_path(dir, 0, ".log");
    uint8_t *log = tu_read_file(path, &len);
    size_t at = batch_pos(log, len, 50);
    if (damage_header)
        log[at + 9] ^= 0x01; /* length += 256: runs into later batches */
    else
        log[at + 12 + sl_get_u32(log + at + 8) - 2] ^= 0x04; /* value byte */
    tu_write_file(path, log, len);
    if (drop_index) {
        unlink(tu_seg_path(dir, 0, ".index"));
        unlink(tu_seg_path(dir, 0, ".timeindex"));
    }

    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    /* nothing cut */
    assert_int_equal(tu_file_size(path), (long long)len);
    assert_int_equal(sl_part_end_offset(p), 300);
    if (drop_index) {
        /* recovery scanned it: reported before any reader came */
        assert_int_equal(sl_part_bad_ranges(p, bad, 4, &total), 1);
        assert_int_equal(bad[0].first, 50);
        assert_int_equal(bad[0].last, 50);
    }
    /* readers get past it: every offset but 50, in order */
    assert_int_equal(collect(p, 0, offs, 400), 299);
    for (int64_t i = 0; i < 299; i++)
        assert_int_equal(offs[i], i < 50 ? i : i + 1);
    assert_int_equal(collect(p, 50, offs, 400), 249);
    assert_int_equal(offs[0], 51);
    assert_int_equal(sl_part_bad_ranges(p, bad, 4, &total), 1);
    assert_int_equal(bad[0].first, 50);
    assert_int_equal(bad[0].last, 50);
    assert_int_equal(total, 1);
    /* offsets are never reused */
    assert_int_equal(tu_append(p, 1, 5000, 0, 10), 300);
    /* a stream read from 51 starts at the batch after the damage */
    sl_part_slice sl;
    assert_int_equal(sl_part_read(p, 51, 1 << 20, 301, &sl), SL_OK);
    assert_int_equal(sl.first_offset, 51);
    if (sl.fd >= 0)
        close(sl.fd);
    sl_part_free(p);

    /* and again after a second restart */
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(sl_part_end_offset(p), 301);
    assert_int_equal(collect(p, 0, offs, 400), 300);
    sl_part_free(p);
    free(log);
    tu_rmrf(dir);
}

static void test_mid_log_bitflip(void **state)
{
    (void)state;
    mid_log(0, 1);
    mid_log(0, 0);
}

static void test_mid_log_damaged_header(void **state)
{
    (void)state;
    mid_log(1, 1);
    mid_log(1, 0);
}

/* The last batch of a closed segment flipped, the next segment intact:
 * corruption (kept), not a torn tail (which would delete the later
 * segments). */
static void test_closed_segment_last_batch_flipped(void **state)
{
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    size_t len;
    int64_t offs[100];
    (void)state;
    tu_small_cfg(&cfg, 600);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    for (int i = 0; i < 20; i++)
        tu_append(p, 2, 100 + i, 2 * i, 30);
    sl_part_free(p);
    int nseg = tu_count_files(dir, ".log");
    int64_t b1 = -1;
    for (int64_t b = 1; b < 40 && b1 < 0; b++)
        if (tu_file_size(tu_seg_path(dir, b, ".log")) >= 0)
            b1 = b;
    const char *path = tu_seg_path(dir, 0, ".log");
    uint8_t *log = tu_read_file(path, &len);
    log[len - 3] ^= 0x10;
    tu_write_file(path, log, len);
    free(log);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(tu_count_files(dir, ".log"), nseg);
    assert_int_equal(sl_part_end_offset(p), 40);
    assert_int_equal(collect(p, 0, offs, 100), 38);
    assert_int_equal(offs[b1 - 2], b1); /* b1-2, b1-1 skipped */
    sl_part_free(p);
    tu_rmrf(dir);
}

/* A damaged batch whose header (not covered by the CRC) claims the
 * offset the next append gets: the reader must still yield that append
 * (found by the segment fuzz target). */
static void test_damaged_header_claims_later_offsets(void **state)
{
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    size_t len;
    int64_t offs[20];
    (void)state;
    tu_small_cfg(&cfg, 1 << 20);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tu_append(p, 1, 1000 + i, i, 10), i);
    sl_part_free(p);
    const char *path = tu_seg_path(dir, 0, ".log");
    uint8_t *log = tu_read_file(path, &len);
    size_t at = batch_pos(log, len, 1);
    sl_put_u64(log + at, 3); /* claims offset 3: the next append */
    log[at + 12 + sl_get_u32(log + at + 8) - 2] ^= 0x04; /* and bad CRC */
    tu_write_file(path, log, len);
    free(log);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(sl_part_end_offset(p), 3);
    assert_int_equal(collect(p, 0, offs, 20), 2); /* 0 and 2 */
    assert_int_equal(tu_append(p, 1, 2000, 0, 10), 3);
    assert_int_equal(collect(p, 0, offs, 20), 3);
    assert_int_equal(offs[0], 0);
    assert_int_equal(offs[1], 2);
    assert_int_equal(offs[2], 3);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* Checked-in fixtures (tests/fixtures/storage/make_fixtures.c): 3 batches
 * of 2 records, the second damaged. Nothing is cut, offsets 2-3 are
 * skipped. */
static void fixture(const char *name)
{
    const char *src = getenv("SLUICE_SOURCE_DIR");
    char path[1024];
    size_t len;
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    int64_t offs[10];
    sl_part_bad bad[2];
    snprintf(path, sizeof(path), "%s/tests/fixtures/storage/%s",
             src ? src : ".", name);
    if (access(path, R_OK) != 0)
        fail_msg("fixture %s missing (SLUICE_SOURCE_DIR=%s)", path,
                 src ? src : "unset");
    uint8_t *b = tu_read_file(path, &len);
    tu_write_file(tu_seg_path(dir, 0, ".log"), b, len);
    free(b);
    tu_small_cfg(&cfg, 1 << 20);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(sl_part_end_offset(p), 6);
    assert_int_equal(sl_part_bad_ranges(p, bad, 2, NULL), 1);
    assert_int_equal(bad[0].first, 2);
    assert_int_equal(bad[0].last, 3);
    assert_int_equal(collect(p, 0, offs, 10), 4);
    assert_int_equal(offs[0], 0);
    assert_int_equal(offs[1], 1);
    assert_int_equal(offs[2], 4);
    assert_int_equal(offs[3], 5);
    sl_part_free(p);
    assert_int_equal(tu_file_size(tu_seg_path(dir, 0, ".log")), (long long)len);
    tu_rmrf(dir);
}

static void test_fixtures_mid_log(void **state)
{
    (void)state;
    fixture("mid-crc.log");
    fixture("mid-header.log");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mid_log_bitflip),
        cmocka_unit_test(test_mid_log_damaged_header),
        cmocka_unit_test(test_closed_segment_last_batch_flipped),
        cmocka_unit_test(test_damaged_header_claims_later_offsets),
        cmocka_unit_test(test_fixtures_mid_log),
    };
    sl_log_level = getenv("SL_TEST_VERBOSE") ? SL_DEBUG : SL_ERROR;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
