/* Unit tests: recovery on open. Torn and bit-flipped tails at every byte,
 * missing and garbled indexes, empty segments, a torn closed segment,
 * preallocated tails (sized to the rate, zero-filled), and the checked-in
 * fixtures in tests/fixtures/storage/. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <cmocka.h>

#include "protocol/batch.h"
#include "protocol/log.h"
#include "storage/partition.h"
#include "tests/unit/test_storage_util.h"

static void open_cfg(sl_part_cfg *cfg)
{
    tu_small_cfg(cfg, 1 << 20);
}

/*
 * A log of 4 batches: three of 3 records, then one small batch of 1
 * record (the victim). Returns the files' contents.
 */
static char *make_log(uint8_t **log, size_t *loglen, size_t *prefix)
{
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    open_cfg(&cfg);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    for (int i = 0; i < 3; i++)
        tu_append(p, 3, 100 + i, 3 * i, 40);
    *prefix = (size_t)tu_file_size(tu_seg_path(dir, 0, ".log"));
    assert_int_equal(tu_append(p, 1, 200, 9, 3), 9);
    sl_part_free(p);
    *log = tu_read_file(tu_seg_path(dir, 0, ".log"), loglen);
    return dir;
}

/* After recovery: exactly offsets 0..8, file cut to prefix, appendable. */
static void expect_prefix(const char *dir, size_t prefix)
{
    sl_part_cfg cfg;
    sl_part *p;
    open_cfg(&cfg);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(sl_part_end_offset(p), 9);
    assert_int_equal(sl_part_durable_offset(p), 9);
    assert_int_equal(tu_file_size(tu_seg_path(dir, 0, ".log")),
                     (long long)prefix);
    assert_int_equal(tu_count_records(p, 0), 9);
    sl_part_free(p);
}

static void test_torn_every_byte(void **state)
{
    uint8_t *log;
    size_t len, prefix;
    char *dir = make_log(&log, &len, &prefix);
    const char *path = tu_seg_path(dir, 0, ".log");
    (void)state;
    assert_true(len - prefix < 120); /* keep the loop small */
    for (size_t cut = prefix; cut < len; cut++) {
        tu_write_file(path, log, cut);
        expect_prefix(dir, prefix);
    }
    /* the intact file keeps all 10 */
    tu_write_file(path, log, len);
    sl_part_cfg cfg;
    sl_part *p;
    open_cfg(&cfg);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(sl_part_end_offset(p), 10);
    sl_part_free(p);
    free(log);
    tu_rmrf(dir);
}

static void test_bitflip_every_byte(void **state)
{
    uint8_t *log;
    size_t len, prefix;
    char *dir = make_log(&log, &len, &prefix);
    const char *path = tu_seg_path(dir, 0, ".log");
    (void)state;
    for (size_t i = prefix; i < len; i++) {
        log[i] ^= (uint8_t)(1u << (i % 8));
        tu_write_file(path, log, len);
        expect_prefix(dir, prefix);
        log[i] ^= (uint8_t)(1u << (i % 8));
    }
    free(log);
    tu_rmrf(dir);
}

/* Torn tail after the last index entry (a larger log with entries). */
static void test_torn_after_index_entry(void **state)
{
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    (void)state;
    open_cfg(&cfg);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    for (int i = 0; i < 30; i++)
        tu_append(p, 2, 100 + i, 2 * i, 30);
    sl_part_free(p);
    assert_true(tu_file_size(tu_seg_path(dir, 0, ".index")) >= 8 * 10);
    long long sz = tu_file_size(tu_seg_path(dir, 0, ".log"));
    assert_int_equal(truncate(tu_seg_path(dir, 0, ".log"), sz - 5), 0);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(sl_part_end_offset(p), 58);
    assert_int_equal(tu_count_records(p, 0), 58);
    /* reads through the index still land right */
    for (int64_t off = 0; off < 58; off++) {
        sl_part_slice sl;
        assert_int_equal(sl_part_read(p, off, 1, 58, &sl), SL_OK);
        assert_int_equal(sl.first_offset, off & ~1);
        close(sl.fd);
    }
    assert_int_equal(tu_append(p, 2, 500, 58, 30), 58);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* Index files: missing, garbled (bad size), plausible but wrong. */
static void check_index_rebuilt(const char *dir, int64_t end, int nseg)
{
    sl_part_cfg cfg;
    sl_part *p;
    open_cfg(&cfg);
    cfg.segment_bytes = 1500;
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(sl_part_end_offset(p), end);
    assert_int_equal(tu_count_files(dir, ".log"), nseg);
    assert_int_equal(tu_count_files(dir, ".index"), nseg);
    assert_int_equal(tu_count_records(p, 0), end);
    for (int64_t off = 0; off < end; off++) {
        sl_part_slice sl;
        assert_int_equal(sl_part_read(p, off, 1, end, &sl), SL_OK);
        assert_int_equal(sl.first_offset, off & ~1);
        close(sl.fd);
    }
    int64_t t;
    assert_int_equal(sl_part_offset_for_time(p, 100 + 20, &t), SL_OK);
    assert_int_equal(t, 39); /* batch 19: ts 119, 120 */
    sl_part_free(p);
    /* the rebuilt index entries point at real batches */
    size_t ilen, llen;
    uint8_t *idx = tu_read_file(tu_seg_path(dir, 0, ".index"), &ilen);
    uint8_t *log = tu_read_file(tu_seg_path(dir, 0, ".log"), &llen);
    assert_true(ilen > 0);
    assert_int_equal(ilen % 8, 0);
    for (size_t i = 0; i < ilen; i += 8)
        assert_int_equal((int64_t)sl_get_u64(log + sl_get_u32(idx + i + 4)),
                         sl_get_u32(idx + i));
    free(idx);
    free(log);
}

static void test_indexes_rebuilt(void **state)
{
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    (void)state;
    open_cfg(&cfg);
    cfg.segment_bytes = 1500;
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    for (int i = 0; i < 40; i++)
        tu_append(p, 2, 100 + i, 2 * i,
                  30); /* offsets 2i, 2i+1: ts 100+i, 101+i */
    sl_part_free(p);
    int nseg = tu_count_files(dir, ".log");
    assert_true(nseg >= 3);
    check_index_rebuilt(dir, 80, nseg);

    /* missing */
    unlink(tu_seg_path(dir, 0, ".index"));
    unlink(tu_seg_path(dir, 0, ".timeindex"));
    check_index_rebuilt(dir, 80, nseg);
    /* bad size */
    tu_write_file(tu_seg_path(dir, 0, ".index"), "garbage", 7);
    tu_write_file(tu_seg_path(dir, 0, ".timeindex"), "garbage", 7);
    check_index_rebuilt(dir, 80, nseg);
    /* right size, wrong content: entries pointing at the wrong batch */
    size_t ilen;
    uint8_t *idx = tu_read_file(tu_seg_path(dir, 0, ".index"), &ilen);
    for (size_t i = 0; i < ilen; i += 8)
        sl_put_u32(idx + i, sl_get_u32(idx + i) + 1);
    tu_write_file(tu_seg_path(dir, 0, ".index"), idx, ilen);
    check_index_rebuilt(dir, 80, nseg);
    /* decreasing entries */
    memset(idx, 0xff, 8);
    tu_write_file(tu_seg_path(dir, 0, ".index"), idx, ilen);
    check_index_rebuilt(dir, 80, nseg);
    free(idx);
    /* time index decreasing */
    uint8_t junk[24] = {0};
    sl_put_u64(junk, 500);
    sl_put_u64(junk + 12, 400);
    tu_write_file(tu_seg_path(dir, 0, ".timeindex"), junk, sizeof(junk));
    check_index_rebuilt(dir, 80, nseg);
    /* the active segment's index garbled too */
    unlink(tu_seg_path(dir, 0, ".index"));
    char last[1024];
    int64_t lastbase = -1;
    for (int64_t b = 0; b < 80; b++)
        if (tu_file_size(tu_seg_path(dir, b, ".log")) >= 0)
            lastbase = b;
    snprintf(last, sizeof(last), "%s", tu_seg_path(dir, lastbase, ".index"));
    tu_write_file(last, "xxxxxxxxxxxxxxxx", 16);
    check_index_rebuilt(dir, 80, nseg);
    /* leftovers of interrupted writes are removed */
    tu_write_file(tu_seg_path(dir, 0, ".log.cleaned"), "x", 1);
    tu_write_file(tu_seg_path(dir, 0, ".log.tmp"), "x", 1);
    tu_write_file(tu_seg_path(dir, 99999, ".index"), "x", 1);
    check_index_rebuilt(dir, 80, nseg);
    assert_int_equal(tu_count_files(dir, ".cleaned"), 0);
    assert_int_equal(tu_count_files(dir, ".tmp"), 0);
    tu_rmrf(dir);
}

static void test_empty_segments(void **state)
{
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    (void)state;
    open_cfg(&cfg);
    /* a brand-new partition */
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(sl_part_end_offset(p), 0);
    assert_int_equal(tu_count_records(p, 0), 0);
    sl_part_free(p);
    /* reopen an empty one */
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(sl_part_end_offset(p), 0);
    for (int i = 0; i < 3; i++)
        tu_append(p, 2, 100, 2 * i, 10);
    sl_part_free(p);
    /* a crash right after a roll: an empty last segment file (no index
     * files at all) */
    tu_write_file(tu_seg_path(dir, 6, ".log"), "", 0);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(sl_part_end_offset(p), 6);
    assert_int_equal(tu_count_records(p, 0), 6);
    assert_int_equal(tu_append(p, 1, 100, 6, 10), 6);
    assert_int_equal(tu_file_size(tu_seg_path(dir, 6, ".log")) > 0, 1);
    sl_part_free(p);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(tu_count_records(p, 0), 7);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* A roll, then a crash before the old segment was synced: its tail is
 * torn, and the newer segment holds never-acknowledged data. */
static void test_torn_closed_segment(void **state)
{
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    (void)state;
    open_cfg(&cfg);
    cfg.segment_bytes = 600;
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    for (int i = 0; i < 20; i++)
        tu_append(p, 2, 100 + i, 2 * i, 30);
    sl_part_free(p);
    int nseg = tu_count_files(dir, ".log");
    assert_true(nseg >= 4);
    /* find the second segment and tear its last batch */
    int64_t b1 = -1, b2 = -1;
    for (int64_t b = 1; b < 40; b++) {
        if (tu_file_size(tu_seg_path(dir, b, ".log")) >= 0) {
            if (b1 < 0)
                b1 = b;
            else if (b2 < 0)
                b2 = b;
        }
    }
    long long sz = tu_file_size(tu_seg_path(dir, b1, ".log"));
    assert_int_equal(truncate(tu_seg_path(dir, b1, ".log"), sz - 3), 0);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    /* the torn batch (2 records) is gone and nothing after it remains */
    assert_int_equal(sl_part_end_offset(p), b2 - 2);
    /* segments 0 and b1 remain, plus a fresh active one at the new end
     * (b1 stays closed: it may have compaction gaps) */
    assert_int_equal(tu_count_files(dir, ".log"), 3);
    assert_int_equal(tu_file_size(tu_seg_path(dir, b2 - 2, ".log")), 0);
    assert_int_equal(tu_count_records(p, 0), b2 - 2);
    assert_int_equal(tu_append(p, 2, 999, 0, 30), b2 - 2);
    sl_part_free(p);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(sl_part_end_offset(p), b2);
    assert_int_equal(tu_count_records(p, 0), b2);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* Preallocation is sized to the partition's rate: a partition written
 * once holds no unused space (before: 64 KiB, and at first
 * segment-preallocate-bytes, 4 MiB by default: 4,900 such partitions took
 * 20 GB), one written again after its own fdatasync 64 KiB ahead; each
 * extension doubles the last. */
static void test_prealloc_sized_to_rate(void **state)
{
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    (void)state;
    open_cfg(&cfg);
    cfg.segment_bytes = 64u << 20;
    cfg.preallocate_bytes = 4u << 20;
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    tu_append(p, 1, 100, 0, 30);
    long long one = tu_file_size(tu_seg_path(dir, 0, ".log"));
    assert_true(one > 0 && one < 1024);
    assert_int_equal(sl_part_sync(p), SL_OK);
    tu_append(p, 1, 101, 1, 30);
    long long two = tu_file_size(tu_seg_path(dir, 0, ".log"));
    assert_true(two > 64 * 1024 && two < 65 * 1024);
    /* ~600 KiB more, synced as it goes (the latency-bound regime) */
    for (int i = 2; i <= 200; i++) {
        tu_append(p, 1, 100 + i, i, 3000);
        assert_int_equal(sl_part_sync(p), SL_OK);
    }
    long long more = tu_file_size(tu_seg_path(dir, 0, ".log"));
    assert_true(more > 600 * 1024 && more < 2 * 1024 * 1024);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* Preallocated space is zero-filled, not left as unwritten extents: an
 * fdatasync after an append into unwritten blocks must also write the
 * extent tree (one more write and wait per round of several KiB;
 * storage/segment.c, "Zero-filled"). After the append that preallocates
 * and one sync, no byte of the file is an unwritten extent. Skipped on
 * file systems without fallocate or FIEMAP. */
static void test_prealloc_zero_filled(void **state)
{
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    struct {
        struct fiemap fm;
        struct fiemap_extent ext[64];
    } map;
    long long size;
    int fd;
    (void)state;
    open_cfg(&cfg);
    cfg.segment_bytes = 64u << 20;
    cfg.preallocate_bytes = 4u << 20;
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    tu_append(p, 1, 100, 0, 30);
    assert_int_equal(sl_part_sync(p), SL_OK);
    tu_append(p, 1, 101, 1, 30); /* preallocates 64 KiB ahead */
    assert_int_equal(sl_part_sync(p), SL_OK);
    size = tu_file_size(tu_seg_path(dir, 0, ".log"));
    fd = open(tu_seg_path(dir, 0, ".log"), O_RDONLY);
    assert_true(fd >= 0);
    memset(&map, 0, sizeof(map));
    map.fm.fm_length = FIEMAP_MAX_OFFSET;
    map.fm.fm_flags = FIEMAP_FLAG_SYNC;
    map.fm.fm_extent_count = 64;
    if (size < 64 * 1024 || ioctl(fd, FS_IOC_FIEMAP, &map.fm) != 0) {
        close(fd);
        sl_part_free(p);
        tu_rmrf(dir);
        skip(); /* no fallocate (the file was not extended) or no FIEMAP */
    }
    close(fd);
    assert_true(map.fm.fm_mapped_extents > 0);
    for (unsigned i = 0; i < map.fm.fm_mapped_extents; i++)
        if (map.ext[i].fe_flags & FIEMAP_EXTENT_UNWRITTEN)
            fail_msg("bytes %llu..%llu of %lld are unwritten",
                     (unsigned long long)map.ext[i].fe_logical,
                     (unsigned long long)(map.ext[i].fe_logical +
                                          map.ext[i].fe_length),
                     size);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* Preallocation: the active .log is longer than its batches while open,
 * cut back to them on roll and on close; a crash leaves zeros after the
 * last batch, which recovery treats as the clean end of the log. */
static void test_preallocated_tail(void **state)
{
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    (void)state;
    open_cfg(&cfg);
    cfg.segment_bytes = 4000;
    cfg.preallocate_bytes = 64 * 1024;
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(tu_append(p, 2, 100, 0, 30), 0);
    /* written once: nothing says it is written again, no preallocation */
    assert_true(tu_file_size(tu_seg_path(dir, 0, ".log")) < 4000);
    assert_int_equal(sl_part_sync(p), SL_OK);
    assert_int_equal(tu_append(p, 2, 101, 2, 30), 2);
    /* written again after its own fdatasync: extended ahead (capped at
     * the segment size) */
    assert_int_equal(tu_file_size(tu_seg_path(dir, 0, ".log")), 4000);
    for (int i = 2; i < 40; i++)
        tu_append(p, 2, 100 + i, 2 * i, 30);
    int nseg = tu_count_files(dir, ".log");
    assert_true(nseg >= 2);
    /* rolled segment: cut to its batches, so it ends on a whole batch */
    long long s0 = tu_file_size(tu_seg_path(dir, 0, ".log"));
    assert_true(s0 > 0 && s0 < 4000);
    assert_int_equal(sl_part_sync(p), SL_OK);
    assert_int_equal(tu_append(p, 2, 200, 80, 30), 80);
    /* a kill -9 now leaves the active file preallocated: copy it as is */
    int64_t last = -1;
    for (int64_t b = 81; b > 0 && last < 0; b--)
        if (tu_file_size(tu_seg_path(dir, b, ".log")) >= 0)
            last = b;
    assert_true(last > 0);
    size_t alen;
    uint8_t *active = tu_read_file(tu_seg_path(dir, last, ".log"), &alen);
    assert_int_equal(alen, 4000);
    sl_part_free(p);
    long long closed = tu_file_size(tu_seg_path(dir, last, ".log"));
    assert_true(closed > 0 && closed < 4000); /* close cut it back */
    /* the crash image: batches then zeros */
    tu_write_file(tu_seg_path(dir, last, ".log"), active, alen);
    free(active);
    /* and a closed segment left long by a crash between roll and the sync
     * of its cut: zeros there are no torn tail, later segments stay */
    assert_int_equal(truncate(tu_seg_path(dir, 0, ".log"), 4000), 0);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(sl_part_end_offset(p), 82);
    assert_int_equal(tu_count_records(p, 0), 82);
    assert_int_equal(tu_count_files(dir, ".log"), nseg);
    assert_int_equal(tu_file_size(tu_seg_path(dir, 0, ".log")), s0);
    assert_int_equal(tu_file_size(tu_seg_path(dir, last, ".log")), closed);
    assert_int_equal(tu_append(p, 2, 999, 0, 30), 82);
    sl_part_free(p);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(tu_count_records(p, 0), 84);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* Checked-in fixtures: a segment whose tail is torn, one with a corrupt
 * CRC in the last batch (tests/fixtures/storage/make_fixtures.c
 * describes and regenerates them). */
static void fixture(const char *name, int64_t want_end, long long want_size)
{
    const char *src = getenv("SLUICE_SOURCE_DIR");
    char path[1024];
    size_t len;
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    snprintf(path, sizeof(path), "%s/tests/fixtures/storage/%s",
             src ? src : ".", name);
    if (access(path, R_OK) != 0)
        fail_msg("fixture %s missing (SLUICE_SOURCE_DIR=%s)", path,
                 src ? src : "unset");
    uint8_t *b = tu_read_file(path, &len);
    tu_write_file(tu_seg_path(dir, 0, ".log"), b, len);
    free(b);
    open_cfg(&cfg);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(sl_part_end_offset(p), want_end);
    assert_int_equal(tu_count_records(p, 0), want_end);
    sl_part_free(p);
    assert_int_equal(tu_file_size(tu_seg_path(dir, 0, ".log")), want_size);
    tu_rmrf(dir);
}

static void test_fixtures(void **state)
{
    (void)state;
    fixture("good.log", 6, 285);
    fixture("torn-tail.log", 4, 190);
    fixture("bad-crc.log", 4, 190);
    fixture("garbage.log", 0, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torn_every_byte),
        cmocka_unit_test(test_bitflip_every_byte),
        cmocka_unit_test(test_torn_after_index_entry),
        cmocka_unit_test(test_indexes_rebuilt),
        cmocka_unit_test(test_empty_segments),
        cmocka_unit_test(test_torn_closed_segment),
        cmocka_unit_test(test_preallocated_tail),
        cmocka_unit_test(test_prealloc_sized_to_rate),
        cmocka_unit_test(test_prealloc_zero_filled),
        cmocka_unit_test(test_fixtures),
    };
    sl_log_level = getenv("SL_TEST_VERBOSE") ? SL_DEBUG : SL_ERROR;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
