/* Unit tests: partition log append/read/iterate, indexes, time lookup,
 * retention, compaction, fault injection, reopen, fsutil. */
#include <errno.h>
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

#include "protocol/batch.h"
#include "storage/fsutil.h"
#include "storage/partition.h"
#include "storage/partition_int.h"
#include "tests/unit/test_storage_util.h"

/* Check the record at r is key-k with value "val-k..." */
static void check_rec(const sl_record *r, int k, size_t vlen)
{
    char key[32], val[32];
    int kl = snprintf(key, sizeof(key), "key-%d", k);
    int vl = snprintf(val, sizeof(val), "val-%d", k);
    assert_int_equal(r->key_len, kl);
    assert_memory_equal(r->key, key, (size_t)kl);
    assert_int_equal(r->value_len, (int)vlen);
    assert_memory_equal(r->value, val, (size_t)vl < vlen ? (size_t)vl : vlen);
}

/* 50 batches of 3 records (key = offset) over 700-byte segments. */
static sl_part *fill(const char *dir, int nb)
{
    sl_part_cfg cfg;
    sl_part *p;
    tu_small_cfg(&cfg, 700);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    for (int i = 0; i < nb; i++)
        assert_int_equal(tu_append(p, 3, 1000 + 10 * i, 3 * i, 20), 3 * i);
    return p;
}

static void test_append_read_rolls(void **state)
{
    char *dir = tu_tmpdir();
    sl_part *p = fill(dir, 50);
    (void)state;

    assert_int_equal(sl_part_start_offset(p), 0);
    assert_int_equal(sl_part_end_offset(p), 150);
    assert_true(tu_count_files(dir, ".log") > 5);
    assert_int_equal(tu_count_files(dir, ".log"),
                     tu_count_files(dir, ".index"));

    /* Every offset: the slice starts with the batch holding it, holds
     * whole verified batches, and stays within one segment file. */
    for (int64_t off = 0; off < 150; off++) {
        sl_part_slice sl;
        assert_int_equal(sl_part_read(p, off, 1 << 20, 150, &sl), SL_OK);
        assert_true(sl.fd >= 0);
        assert_int_equal(sl.first_offset, off - off % 3);
        assert_true(sl.next_offset > off);
        uint8_t *b = malloc(sl.len);
        assert_int_equal(pread(sl.fd, b, sl.len, (off_t)sl.file_pos),
                         (ssize_t)sl.len);
        size_t pos = 0;
        int64_t expect = sl.first_offset;
        while (pos < sl.len) {
            sl_batch_hdr h;
            size_t sz = 12 + sl_get_u32(b + pos + 8);
            assert_int_equal(sl_batch_verify(b + pos, sz, &h), SL_OK);
            assert_int_equal(h.base_offset, expect);
            expect += h.record_count;
            pos += sz;
        }
        assert_int_equal(pos, sl.len);
        assert_int_equal(expect, sl.next_offset);
        free(b);
        close(sl.fd);
    }
    /* max_bytes smaller than a batch still returns one whole batch. */
    sl_part_slice sl;
    assert_int_equal(sl_part_read(p, 4, 1, 150, &sl), SL_OK);
    assert_int_equal(sl.first_offset, 3);
    assert_int_equal(sl.next_offset, 6);
    close(sl.fd);
    /* upto: nothing at or beyond it. */
    assert_int_equal(sl_part_read(p, 9, 1 << 20, 9, &sl), SL_OK);
    assert_int_equal(sl.len, 0);
    assert_int_equal(sl.fd, -1);
    assert_int_equal(sl_part_read(p, 3, 1 << 20, 9, &sl), SL_OK);
    assert_int_equal(sl.first_offset, 3);
    assert_int_equal(sl.next_offset, 9);
    close(sl.fd);
    /* end of log: empty; beyond: out of range. */
    assert_int_equal(sl_part_read(p, 150, 1 << 20, 150, &sl), SL_OK);
    assert_int_equal(sl.len, 0);
    assert_int_equal(sl_part_read(p, 151, 1 << 20, 151, &sl),
                     SL_ERR_OFFSET_OUT_OF_RANGE);
    assert_int_equal(sl_part_read(p, -1, 1 << 20, 151, &sl),
                     SL_ERR_OFFSET_OUT_OF_RANGE);

    /* read_buf: walk the whole log, records in order with right content. */
    sl_wb wb;
    int64_t off = 0;
    int seen = 0;
    sl_wb_init(&wb, 0);
    while (off < 150) {
        int64_t next;
        sl_wb_reset(&wb);
        assert_int_equal(sl_part_read_buf(p, off, 300, 150, &wb, &next), SL_OK);
        assert_true(next > off);
        assert_true(wb.len > 0);
        size_t pos = 0;
        while (pos < wb.len) {
            size_t sz = 12 + sl_get_u32(wb.p + pos + 8);
            sl_batch_iter bi;
            sl_record r;
            assert_int_equal(sl_batch_verify(wb.p + pos, sz, NULL), SL_OK);
            assert_int_equal(sl_batch_iter_init(&bi, wb.p + pos, sz), SL_OK);
            while (sl_batch_iter_next(&bi, &r, NULL)) {
                assert_int_equal(r.offset, seen);
                check_rec(&r, seen, 20);
                seen++;
            }
            sl_batch_iter_fini(&bi);
            pos += sz;
        }
        off = next;
    }
    assert_int_equal(seen, 150);
    /* read_buf at the end appends nothing */
    int64_t next = -1;
    sl_wb_reset(&wb);
    assert_int_equal(sl_part_read_buf(p, 150, 300, 150, &wb, &next), SL_OK);
    assert_int_equal(wb.len, 0);
    assert_int_equal(next, 150);
    sl_wb_fini(&wb);
    sl_part_free(p);
    tu_rmrf(dir);
}

static void test_iterator(void **state)
{
    char *dir = tu_tmpdir();
    sl_part *p = fill(dir, 40);
    sl_part_iter *it;
    sl_record r;
    sl_err e;
    (void)state;

    assert_int_equal(sl_part_iter_new(p, 0, &it), SL_OK);
    for (int i = 0; i < 120; i++) {
        assert_int_equal(sl_part_iter_next(it, &r, &e), 1);
        assert_int_equal(r.offset, i);
        assert_int_equal(r.timestamp, 1000 + 10 * (i / 3) + i % 3);
        check_rec(&r, i, 20);
    }
    assert_int_equal(sl_part_iter_next(it, &r, &e), 0);
    assert_int_equal(e, SL_OK);
    assert_int_equal(sl_part_iter_next(it, &r, &e), 0);
    /* resumes after more appends (and across a roll) */
    for (int i = 40; i < 45; i++)
        tu_append(p, 3, 5000, 3 * i, 20);
    for (int i = 120; i < 135; i++) {
        assert_int_equal(sl_part_iter_next(it, &r, &e), 1);
        assert_int_equal(r.offset, i);
        check_rec(&r, i, 20);
    }
    assert_int_equal(sl_part_iter_next(it, &r, &e), 0);
    /* seek into the middle of a batch, and back */
    assert_int_equal(sl_part_iter_seek(it, 64), SL_OK);
    assert_int_equal(sl_part_iter_next(it, &r, &e), 1);
    assert_int_equal(r.offset, 64);
    assert_int_equal(sl_part_iter_next(it, &r, &e), 1);
    assert_int_equal(r.offset, 65);
    assert_int_equal(sl_part_iter_seek(it, 0), SL_OK);
    assert_int_equal(sl_part_iter_next(it, &r, &e), 1);
    assert_int_equal(r.offset, 0);
    assert_int_equal(sl_part_iter_seek(it, 136), SL_ERR_OFFSET_OUT_OF_RANGE);
    assert_int_equal(sl_part_iter_seek(it, 135), SL_OK);
    assert_int_equal(sl_part_iter_next(it, &r, &e), 0);
    sl_part_iter_free(it);
    assert_int_equal(tu_count_records(p, 0), 135);
    assert_int_equal(tu_count_records(p, 100), 35);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* A record just appended is read from memory (partition.c, the recent
 * appends), not from the file: bytes changed in the file behind the
 * partition's back are not seen, which is how this test tells (issue 20:
 * a consumer that waits for each message used to pread every one). After
 * a truncation (a new generation) an append of the same size at the same
 * position is read as the new record, not the old copy. */
static void test_recent_appends_from_memory(void **state)
{
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    sl_part_iter *it;
    sl_record r;
    sl_err e;
    uint8_t junk[4096], keep[4096];
    size_t first;
    int fd;
    (void)state;

    tu_small_cfg(&cfg, 1 << 20);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(tu_append(p, 3, 1000, 0, 20), 0);
    first = (size_t)p->segs[0]->size;
    assert_int_equal(tu_append(p, 3, 1001, 3, 20), 3);
    /* the first batch's bytes in the file become junk */
    assert_true(first <= sizeof(junk));
    memset(junk, 'Z', sizeof(junk));
    fd = open(tu_seg_path(dir, 0, ".log"), O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, keep, first, 0), (ssize_t)first);
    assert_int_equal(pwrite(fd, junk, first, 0), (ssize_t)first);
    assert_int_equal(sl_part_iter_new(p, 0, &it), SL_OK);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(sl_part_iter_next(it, &r, &e), 1);
        assert_int_equal(r.offset, i);
        check_rec(&r, i, 20);
    }
    assert_int_equal(sl_part_iter_next(it, &r, &e), 0);
    sl_part_iter_free(it);
    assert_int_equal(pwrite(fd, keep, first, 0), (ssize_t)first);
    close(fd);
    /* cut the second batch, append one of its size where it was */
    assert_int_equal(sl_part_truncate(p, 3), SL_OK);
    assert_int_equal(tu_append(p, 3, 2000, 6, 20), 3);
    assert_int_equal(sl_part_iter_new(p, 0, &it), SL_OK);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(sl_part_iter_next(it, &r, &e), 1);
        assert_int_equal(r.offset, i);
        check_rec(&r, i < 3 ? i : i + 3, 20);
    }
    sl_part_iter_free(it);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* Cluster followers: sl_part_truncate cuts back to a batch boundary of
 * the active segment (and nothing else), durably; the read cap stops
 * iterators at a batch boundary (docs/cluster.md 3.2, 3.4). */
static void test_truncate_and_read_cap(void **state)
{
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    sl_part_iter *it;
    sl_record r;
    sl_err e;
    uint8_t hdr[SL_BATCH_HDR_SIZE];
    int64_t base = -1;
    (void)state;

    tu_small_cfg(&cfg, 1 << 20);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(tu_append(p, 3, 1000 + i, 3 * i, 20), 3 * i);
    assert_int_equal(sl_part_batch_header(p, 14, hdr, &base), SL_OK);
    assert_int_equal(base, 12);
    assert_int_equal(sl_part_batch_header(p, 15, hdr, &base),
                     SL_ERR_OFFSET_OUT_OF_RANGE);
    assert_int_equal(sl_part_truncate(p, 7), SL_ERR_INVALID_ARG);
    assert_int_equal(sl_part_end_offset(p), 15);
    assert_int_equal(sl_part_sync(p), SL_OK);
    assert_int_equal(sl_part_durable_offset(p), 15);
    assert_int_equal(sl_part_truncate(p, 9), SL_OK);
    assert_int_equal(sl_part_end_offset(p), 9);
    assert_int_equal(sl_part_durable_offset(p), 9);
    assert_int_equal(tu_count_records(p, 0), 9);
    /* appends continue at the cut, with new records */
    assert_int_equal(tu_append(p, 3, 2000, 100, 20), 9);
    assert_int_equal(sl_part_end_offset(p), 12);
    /* the read cap stops an iterator before the first batch at or above
     * it, and it resumes once the cap rises */
    sl_part_set_read_cap(p, 6);
    assert_int_equal(sl_part_iter_new(p, 0, &it), SL_OK);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(sl_part_iter_next(it, &r, &e), 1);
        assert_int_equal(r.offset, i);
    }
    assert_int_equal(sl_part_iter_next(it, &r, &e), 0);
    assert_int_equal(e, SL_OK);
    sl_part_set_read_cap(p, INT64_MAX);
    for (int i = 6; i < 12; i++) {
        assert_int_equal(sl_part_iter_next(it, &r, &e), 1);
        assert_int_equal(r.offset, i);
        if (i >= 9)
            check_rec(&r, 100 + i - 9, 20);
        else
            check_rec(&r, i, 20);
    }
    sl_part_iter_free(it);
    /* durable: after a reopen the cut stays cut */
    assert_int_equal(sl_part_sync(p), SL_OK);
    sl_part_free(p);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(sl_part_end_offset(p), 12);
    assert_int_equal(tu_count_records(p, 0), 12);
    sl_part_free(p);
    tu_rmrf(dir);

    /* only the active segment can be cut */
    dir = tu_tmpdir();
    p = fill(dir, 40);
    assert_int_equal(sl_part_truncate(p, 3), SL_ERR_INVALID_ARG);
    assert_int_equal(sl_part_end_offset(p), 120);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* A replica moved off a node: sl_part_reset deletes every segment (many
 * here), the log starts again at 0, an open iterator sees no deleted
 * record past the batch it held, and a reopen finds the new log only
 * (docs/cluster.md 10.3). */
static void test_reset(void **state)
{
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p = fill(dir, 40);
    sl_part_iter *it;
    sl_record r;
    sl_err e;
    uint64_t bytes = 0;
    (void)state;

    tu_small_cfg(&cfg, 1 << 20);
    assert_int_equal(sl_part_end_offset(p), 120);
    assert_int_equal(sl_part_iter_new(p, 0, &it), SL_OK);
    assert_int_equal(sl_part_iter_next(it, &r, &e), 1);
    assert_int_equal(sl_part_reset(p, &bytes), SL_OK);
    assert_true(bytes > 0);
    assert_int_equal(sl_part_start_offset(p), 0);
    assert_int_equal(sl_part_end_offset(p), 0);
    assert_int_equal(sl_part_durable_offset(p), 0);
    /* the iterator ends with the batch it had read (offsets 0-2) */
    while (sl_part_iter_next(it, &r, &e) == 1)
        assert_true(r.offset < 3);
    assert_int_equal(e, SL_OK);
    sl_part_iter_free(it);
    assert_int_equal(tu_append(p, 3, 2000, 100, 20), 0);
    assert_int_equal(tu_count_records(p, 0), 3);
    assert_int_equal(sl_part_reset(p, &bytes), SL_OK);
    assert_int_equal(tu_append(p, 3, 3000, 200, 20), 0);
    assert_int_equal(sl_part_sync(p), SL_OK);
    sl_part_free(p);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(sl_part_start_offset(p), 0);
    assert_int_equal(sl_part_end_offset(p), 3);
    assert_int_equal(tu_count_records(p, 0), 3);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* An observer's copy (broker/observer.c): an empty log that starts at an
 * offset, kept across a reopen; segments below what its groups need are
 * trimmed, never the active one. */
static void test_reset_at_and_trim_below(void **state)
{
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p = fill(dir, 10);
    uint64_t bytes = 0;
    int deleted = -1;
    (void)state;

    tu_small_cfg(&cfg, 700);
    assert_int_equal(sl_part_reset_at(p, 1000, &bytes), SL_OK);
    assert_true(bytes > 0);
    assert_int_equal(sl_part_start_offset(p), 1000);
    assert_int_equal(sl_part_end_offset(p), 1000);
    assert_int_equal(sl_part_durable_offset(p), 1000);
    assert_int_equal(tu_count_files(dir, ".log"), 1);
    for (int i = 0; i < 20; i++)
        assert_int_equal(tu_append(p, 3, 5000 + i, 0, 20), 1000 + 3 * i);
    assert_int_equal(sl_part_sync(p), SL_OK);
    sl_part_free(p);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(sl_part_start_offset(p), 1000);
    assert_int_equal(sl_part_end_offset(p), 1060);
    assert_int_equal(tu_count_records(p, 1000), 60);

    /* below the first segment's end: nothing goes */
    assert_int_equal(sl_part_trim_below(p, 1001, 0, 9000, &deleted, &bytes),
                     SL_OK);
    assert_int_equal(deleted, 0);
    assert_int_equal(sl_part_start_offset(p), 1000);
    /* every segment that ends at or below 1030 goes */
    assert_int_equal(sl_part_trim_below(p, 1030, 0, 9000, &deleted, &bytes),
                     SL_OK);
    assert_true(deleted > 0 && bytes > 0);
    assert_true(sl_part_start_offset(p) > 1000);
    assert_true(sl_part_start_offset(p) <= 1030);
    assert_int_equal(tu_count_records(p, 0), 1060 - sl_part_start_offset(p));
    /* past the end: the active segment stays; with roll_bytes it is rolled
     * first, then it goes too */
    assert_int_equal(sl_part_trim_below(p, 5000, 0, 9000, &deleted, NULL),
                     SL_OK);
    assert_int_equal(tu_count_files(dir, ".log"), 1);
    assert_true(sl_part_start_offset(p) < 1060);
    assert_int_equal(sl_part_trim_below(p, 5000, 1, 9000, &deleted, NULL),
                     SL_OK);
    assert_int_equal(deleted, 1);
    assert_int_equal(sl_part_start_offset(p), 1060);
    assert_int_equal(sl_part_end_offset(p), 1060);
    assert_int_equal(tu_append(p, 3, 6000, 0, 20), 1060);
    assert_int_equal(sl_part_reset_at(p, -1, NULL), SL_ERR_INVALID_ARG);
    sl_part_free(p);
    tu_rmrf(dir);
}

static void test_index_entries(void **state)
{
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    (void)state;
    tu_small_cfg(&cfg, 1 << 20);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    for (int i = 0; i < 100; i++)
        tu_append(p, 2, 2000 + i, 2 * i, 30);
    /* Every entry points at a batch header with base = rel. */
    size_t ilen, llen;
    uint8_t *idx = tu_read_file(tu_seg_path(dir, 0, ".index"), &ilen);
    uint8_t *log = tu_read_file(tu_seg_path(dir, 0, ".log"), &llen);
    assert_true(ilen >= 8 * 20);
    assert_int_equal(ilen % 8, 0);
    uint32_t prev = 0;
    for (size_t i = 0; i < ilen; i += 8) {
        uint32_t rel = sl_get_u32(idx + i), pos = sl_get_u32(idx + i + 4);
        assert_true(pos < llen);
        assert_true(pos > prev);
        prev = pos;
        assert_int_equal((int64_t)sl_get_u64(log + pos), rel);
    }
    /* The time index: strictly increasing ts and rel. */
    size_t tlen;
    uint8_t *t = tu_read_file(tu_seg_path(dir, 0, ".timeindex"), &tlen);
    assert_true(tlen >= 12 * 10);
    assert_int_equal(tlen % 12, 0);
    for (size_t i = 12; i < tlen; i += 12) {
        assert_true((int64_t)sl_get_u64(t + i) >
                    (int64_t)sl_get_u64(t + i - 12));
        assert_true(sl_get_u32(t + i + 8) > sl_get_u32(t + i - 4));
    }
    free(idx);
    free(log);
    free(t);
    /* Index-driven reads land on the right batch for every offset. */
    for (int64_t off = 0; off < 200; off++) {
        sl_part_slice sl;
        assert_int_equal(sl_part_read(p, off, 1, 200, &sl), SL_OK);
        assert_int_equal(sl.first_offset, off & ~1);
        close(sl.fd);
    }
    sl_part_free(p);
    tu_rmrf(dir);
}

static void test_time_lookup(void **state)
{
    char *dir = tu_tmpdir();
    sl_part *p = fill(dir, 50); /* batch i: ts 1000+10i .. +2 */
    int64_t off;
    (void)state;
    assert_int_equal(sl_part_offset_for_time(p, 0, &off), SL_OK);
    assert_int_equal(off, 0);
    assert_int_equal(sl_part_offset_for_time(p, 1000, &off), SL_OK);
    assert_int_equal(off, 0);
    assert_int_equal(sl_part_offset_for_time(p, 1001, &off), SL_OK);
    assert_int_equal(off, 1);
    assert_int_equal(sl_part_offset_for_time(p, 1003, &off), SL_OK);
    assert_int_equal(off, 3); /* first record of batch 1 (ts 1010) */
    for (int i = 0; i < 50; i++) {
        assert_int_equal(sl_part_offset_for_time(p, 1000 + 10 * i + 2, &off),
                         SL_OK);
        assert_int_equal(off, 3 * i + 2);
        assert_int_equal(sl_part_offset_for_time(p, 1000 + 10 * i + 5, &off),
                         SL_OK);
        assert_int_equal(off, i < 49 ? 3 * i + 3 : 150);
    }
    assert_int_equal(sl_part_offset_for_time(p, 999999, &off), SL_OK);
    assert_int_equal(off, 150);
    sl_part_free(p);
    tu_rmrf(dir);
}

static void test_retention_size_and_low_water(void **state)
{
    char *dir = tu_tmpdir();
    sl_part *p = fill(dir, 50);
    sl_part_cfg cfg = *sl_part_get_cfg(p);
    int deleted = -1, nseg = tu_count_files(dir, ".log");
    (void)state;

    /* No retention configured: nothing goes. */
    assert_int_equal(sl_part_maintain(p, 10000, &deleted), SL_OK);
    assert_int_equal(deleted, 0);

    /* Low-water mark at offset 30 holds everything from the segment that
     * contains 30 on. */
    cfg.retention_bytes = 0;
    sl_part_set_cfg(p, &cfg);
    sl_part_set_low_water(p, 30);
    assert_int_equal(sl_part_maintain(p, 10000, &deleted), SL_OK);
    assert_true(deleted > 0);
    assert_true(sl_part_start_offset(p) <= 30);
    assert_true(sl_part_start_offset(p) > 0);
    assert_int_equal(tu_count_files(dir, ".log"), nseg - deleted);
    assert_int_equal(tu_count_records(p, sl_part_start_offset(p)),
                     150 - sl_part_start_offset(p));
    /* Reading below the start is out of range; iterators clamp. */
    sl_part_slice sl;
    assert_int_equal(sl_part_read(p, 0, 100, 150, &sl),
                     SL_ERR_OFFSET_OUT_OF_RANGE);

    /* Without the mark, size 0 deletes all but the active segment. */
    sl_part_set_low_water(p, -1);
    assert_int_equal(sl_part_maintain(p, 10000, &deleted), SL_OK);
    assert_int_equal(tu_count_files(dir, ".log"), 1);
    assert_int_equal(sl_part_end_offset(p), 150);
    assert_true(sl_part_start_offset(p) > 100);
    /* Still appendable and readable. */
    assert_int_equal(tu_append(p, 3, 9000, 150, 20), 150);
    assert_int_equal(tu_count_records(p, 0), 153 - sl_part_start_offset(p));
    sl_part_free(p);

    /* Size retention keeps at least retention_bytes. */
    tu_rmrf(dir);
    dir = tu_tmpdir();
    p = fill(dir, 50);
    cfg = *sl_part_get_cfg(p);
    cfg.retention_bytes = 2000;
    sl_part_set_cfg(p, &cfg);
    assert_int_equal(sl_part_maintain(p, 10000, &deleted), SL_OK);
    assert_true(deleted > 0);
    long long total = 0;
    for (int64_t b = 0; b < 150; b++)
        if (tu_file_size(tu_seg_path(dir, b, ".log")) > 0)
            total += tu_file_size(tu_seg_path(dir, b, ".log"));
    assert_true(total >= 2000);
    assert_true(total < 2000 + 700);
    sl_part_free(p);
    tu_rmrf(dir);
}

static void test_retention_time(void **state)
{
    char *dir = tu_tmpdir();
    sl_part *p = fill(dir, 50); /* timestamps 1000..1492 */
    sl_part_cfg cfg = *sl_part_get_cfg(p);
    int deleted;
    (void)state;
    cfg.retention_ms = 1000;
    sl_part_set_cfg(p, &cfg);
    /* now = 2200: segments whose max ts < 1200 go (batches 0..19). */
    assert_int_equal(sl_part_maintain(p, 2200, &deleted), SL_OK);
    assert_true(deleted > 0);
    int64_t start = sl_part_start_offset(p);
    assert_true(start > 0 && start <= 60);
    /* the first kept record is no older than the cutoff's segment */
    sl_part_iter *it;
    sl_record r;
    assert_int_equal(sl_part_iter_new(p, 0, &it), SL_OK);
    assert_int_equal(sl_part_iter_next(it, &r, NULL), 1);
    assert_int_equal(r.offset, start);
    sl_part_iter_free(it);
    /* far future: all but the active one */
    assert_int_equal(sl_part_maintain(p, 1000000, &deleted), SL_OK);
    assert_int_equal(tu_count_files(dir, ".log"), 1);
    assert_int_equal(sl_part_end_offset(p), 150);
    sl_part_free(p);
    tu_rmrf(dir);
}

static void test_roll_by_age(void **state)
{
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    uint8_t *b;
    size_t len;
    int64_t base;
    (void)state;
    tu_small_cfg(&cfg, 1 << 20);
    cfg.segment_ms = 100;
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    b = tu_batch(1, 1, 0, 10, &len);
    assert_int_equal(sl_part_append(p, b, len, 1000, &base), SL_OK);
    assert_int_equal(sl_part_append(p, b, len, 1050, &base), SL_OK);
    assert_int_equal(tu_count_files(dir, ".log"), 1);
    assert_int_equal(sl_part_append(p, b, len, 1100, &base), SL_OK);
    assert_int_equal(base, 2);
    assert_int_equal(tu_count_files(dir, ".log"), 2);
    assert_true(tu_file_size(tu_seg_path(dir, 2, ".log")) > 0);
    /* maintain rolls an old non-empty active segment */
    assert_int_equal(sl_part_maintain(p, 1300, NULL), SL_OK);
    assert_int_equal(tu_count_files(dir, ".log"), 3);
    assert_int_equal(tu_file_size(tu_seg_path(dir, 3, ".log")), 0);
    /* ... but not an empty one */
    assert_int_equal(sl_part_maintain(p, 5000, NULL), SL_OK);
    assert_int_equal(tu_count_files(dir, ".log"), 3);
    free(b);
    sl_part_free(p);
    tu_rmrf(dir);
}

static void test_compaction(void **state)
{
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    int64_t off[16];
    size_t len;
    uint8_t *b;
    (void)state;
    tu_small_cfg(&cfg, 400);
    cfg.compact = 1;
    cfg.delete_retention_ms = 1000;
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    /* key-0..key-4 written 3 times; key-1 deleted (tombstone at ts 5000);
     * key-3 deleted at ts 100 (old tombstone); records without key. */
    int n = 0;
    for (int round = 0; round < 3; round++)
        off[n++] = tu_append(p, 5, 10 + round, 0, 8); /* 5 records */
    off[n++] = tu_append(p, 4, 30, -1, 8);            /* null keys */
    b = tu_batch(1, 5000, 1, (size_t)-1, &len);       /* tombstone key-1 */
    assert_int_equal(sl_part_append(p, b, len, 5000, &off[n++]), SL_OK);
    free(b);
    b = tu_batch(1, 100, 3, (size_t)-1, &len); /* tombstone key-3 */
    assert_int_equal(sl_part_append(p, b, len, 100, &off[n++]), SL_OK);
    free(b);
    /* a final batch so the tombstones sit in closed segments */
    uint8_t *big = tu_batch(1, 6000, 100, 300, &len);
    int64_t lastoff;
    assert_int_equal(sl_part_append(p, big, len, 6000, &lastoff), SL_OK);
    free(big);
    assert_int_equal(lastoff, 21);
    int64_t end = sl_part_end_offset(p);
    assert_true(tu_count_files(dir, ".log") >= 3);

    assert_int_equal(sl_part_compact(p, 5500), SL_OK);
    assert_int_equal(sl_part_end_offset(p), end);
    /* Expected survivors: key-0,2,4 of round 2 (offsets 10,12,14), the
     * null-key records 15..18, the key-1 tombstone (19, young), not the
     * key-3 tombstone (20, old), and 21. */
    int64_t want[] = {10, 12, 14, 15, 16, 17, 18, 19, 21};
    sl_part_iter *it;
    sl_record r;
    sl_err e;
    size_t k = 0;
    assert_int_equal(sl_part_iter_new(p, 0, &it), SL_OK);
    while (sl_part_iter_next(it, &r, &e)) {
        assert_true(k < sizeof(want) / sizeof(want[0]));
        assert_int_equal(r.offset, want[k]);
        if (r.offset <= 14) {
            check_rec(&r, (int)(r.offset - 10), 8);
            assert_int_equal(r.timestamp, 12 + (r.offset - 10));
        }
        if (r.offset == 19) {
            assert_null(r.value);
            assert_int_equal(r.value_len, -1);
        }
        if (r.offset >= 15 && r.offset <= 18)
            assert_null(r.key);
        k++;
    }
    assert_int_equal(e, SL_OK);
    assert_int_equal(k, sizeof(want) / sizeof(want[0]));
    sl_part_iter_free(it);
    /* Reads of a compacted-away offset land on the next survivor. */
    sl_part_slice sl;
    assert_int_equal(sl_part_read(p, 1, 1 << 20, end, &sl), SL_OK);
    assert_int_equal(sl.first_offset, 10);
    close(sl.fd);
    /* Later: the young tombstone expires too; survives a reopen. */
    assert_int_equal(sl_part_compact(p, 7000), SL_OK);
    sl_part_free(p);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(sl_part_end_offset(p), end);
    assert_int_equal(tu_count_records(p, 0), 8);
    assert_int_equal(tu_count_files(dir, ".cleaned"), 0);
    /* offsets keep counting from the end */
    assert_int_equal(tu_append(p, 1, 8000, 7, 8), end);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* ---- fault injection -------------------------------------------------- */

static sl_fs_ops faulty;
static int fail_pwrite;    /* errno to fail with, 0 = pass */
static int partial_pwrite; /* write half, then fail */
static int fail_fdatasync;

static ssize_t f_pwrite(int fd, const void *b, size_t n, off_t off)
{
    if (partial_pwrite && n > 1) {
        partial_pwrite = 0;
        return sl_fs_posix.pwrite(fd, b, n / 2, off);
    }
    if (fail_pwrite) {
        errno = fail_pwrite;
        return -1;
    }
    return sl_fs_posix.pwrite(fd, b, n, off);
}

static int f_fdatasync(int fd)
{
    if (fail_fdatasync) {
        errno = fail_fdatasync;
        return -1;
    }
    return sl_fs_posix.fdatasync(fd);
}

static void install_faults(void)
{
    faulty = sl_fs_posix;
    faulty.pwrite = f_pwrite;
    faulty.fdatasync = f_fdatasync;
    fail_pwrite = partial_pwrite = fail_fdatasync = 0;
    sl_fs = &faulty;
}

static void test_enospc(void **state)
{
    char *dir = tu_tmpdir();
    sl_part *p = fill(dir, 10);
    uint8_t *b;
    size_t len;
    int64_t base = -7;
    (void)state;
    install_faults();
    int64_t end = sl_part_end_offset(p);
    int64_t last = 0;
    for (int64_t s = 0; s < end; s++)
        if (tu_file_size(tu_seg_path(dir, s, ".log")) >= 0)
            last = s;
    char active[1024];
    snprintf(active, sizeof(active), "%s", tu_seg_path(dir, last, ".log"));
    long long before = tu_file_size(active);
    assert_true(before > 0);

    b = tu_batch(3, 5000, 500, 20, &len);
    fail_pwrite = ENOSPC;
    assert_int_equal(sl_part_append(p, b, len, 5000, &base), SL_ESYS(ENOSPC));
    assert_int_equal(base, -7);
    assert_int_equal(sl_part_end_offset(p), end);
    assert_int_equal(tu_file_size(active), before);
    /* a partial write is cut off again */
    fail_pwrite = EIO;
    partial_pwrite = 1;
    assert_int_equal(sl_part_append(p, b, len, 5000, &base), SL_ESYS(EIO));
    assert_int_equal(tu_file_size(active), before);
    assert_int_equal(sl_part_failed(p), 0);
    /* acknowledged data intact */
    assert_int_equal(tu_count_records(p, 0), end);
    /* space returns: appends work, at the next offset */
    fail_pwrite = 0;
    assert_int_equal(sl_part_append(p, b, len, 5000, &base), SL_OK);
    assert_int_equal(base, end);
    assert_int_equal(tu_count_records(p, 0), end + 3);
    sl_fs = &sl_fs_posix;
    free(b);
    sl_part_free(p);
    /* and the log is clean on reopen */
    sl_part_cfg cfg;
    tu_small_cfg(&cfg, 700);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(sl_part_end_offset(p), end + 3);
    assert_int_equal(tu_count_records(p, 0), end + 3);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* Fail only writes of index entries: whole batches of offset (8 bytes)
 * or time (12 bytes) index entries. */
static ssize_t f_pwrite_idx(int fd, const void *b, size_t n, off_t off)
{
    if (n == SL_IDX_BATCH * 8 || n == SL_IDX_BATCH * 12) {
        errno = ENOSPC;
        return -1;
    }
    return sl_fs_posix.pwrite(fd, b, n, off);
}

static void test_enospc_on_index(void **state)
{
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    int64_t base;
    size_t len;
    int k = 0;
    sl_err rc = SL_OK;
    (void)state;
    tu_small_cfg(&cfg, 1 << 20);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    tu_append(p, 3, 1, 0, 60); /* > index interval: each next one indexes */
    install_faults();
    faulty.pwrite = f_pwrite_idx;
    uint8_t *b = tu_batch(3, 2, 3, 60, &len);
    /* Index entries are written SL_IDX_BATCH at a time: the appends before
     * the one that writes them do not touch the index file. */
    long long logsz = 0;
    for (k = 0; k < 2 * SL_IDX_BATCH; k++) {
        logsz = tu_file_size(tu_seg_path(dir, 0, ".log"));
        rc = sl_part_append(p, b, len, 2, &base);
        if (rc != SL_OK)
            break;
        assert_int_equal(base, 3 + 3 * k);
    }
    assert_int_equal(rc, SL_ESYS(ENOSPC));
    assert_true(k >= SL_IDX_BATCH - 2 && k < SL_IDX_BATCH + 2);
    /* the log write that succeeded was cut back with it */
    assert_int_equal(tu_file_size(tu_seg_path(dir, 0, ".log")), logsz);
    assert_int_equal(tu_file_size(tu_seg_path(dir, 0, ".index")), 0);
    assert_int_equal(sl_part_end_offset(p), 3 + 3 * k);
    sl_fs = &sl_fs_posix;
    assert_int_equal(sl_part_append(p, b, len, 2, &base), SL_OK);
    assert_int_equal(base, 3 + 3 * k);
    assert_int_equal(tu_file_size(tu_seg_path(dir, 0, ".index")),
                     SL_IDX_BATCH * 8);
    free(b);
    sl_part_free(p);
    /* closing writes the rest */
    assert_int_equal(tu_file_size(tu_seg_path(dir, 0, ".index")),
                     (long long)(k + 1) * 8);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(tu_count_records(p, 0), 3 + 3 * (k + 1));
    sl_part_free(p);
    tu_rmrf(dir);
}

/* zstd batches are stored compressed, iterated, and compacted. */
static void test_zstd(void **state)
{
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    sl_batch_builder bb;
    const uint8_t *b;
    size_t len;
    int64_t base;
    char val[200];
    (void)state;
    tu_small_cfg(&cfg, 300);
    cfg.compact = 1;
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    memset(val, 'z', sizeof(val));
    for (int round = 0; round < 2; round++) {
        sl_bb_init(&bb, SL_CODEC_ZSTD);
        for (int i = 0; i < 10; i++) {
            char key[8];
            int kl = snprintf(key, sizeof(key), "k%d",
                              i % 5 == 0 ? 0
                              : i == 7   ? 2
                                         : i);
            val[0] = (char)('a' + round);
            assert_int_equal(sl_bb_add(&bb, 100 + i, key, (size_t)kl, val,
                                       sizeof(val), NULL, 0),
                             SL_OK);
        }
        assert_int_equal(sl_bb_finish(&bb, &b, &len), SL_OK);
        assert_true(len < 10 * sizeof(val) / 2); /* really compressed */
        uint8_t *copy = malloc(len);
        memcpy(copy, b, len);
        assert_int_equal(sl_part_append(p, copy, len, 100, &base), SL_OK);
        assert_int_equal(base, 10 * round);
        free(copy);
        sl_bb_fini(&bb);
    }
    tu_append(p, 1, 500, 99, 400); /* rolls: closes the zstd segments */
    long long sz0 = tu_file_size(tu_seg_path(dir, 0, ".log"));
    assert_true(sz0 > 0 && sz0 < 1000); /* stored compressed */
    assert_int_equal(tu_count_records(p, 0), 21);
    /* Round 1 shadows all of round 0: round 0's segment empties. Within
     * round 1, k0 is at 10 and 15 and k2 at 12 and 17: 10 and 12 go, so the
     * batch is rewritten as runs [11] and [13..19], zstd again. */
    assert_int_equal(sl_part_compact(p, 1000), SL_OK);
    sl_part_iter *it;
    sl_record r;
    sl_err e;
    int64_t want[] = {11, 13, 14, 15, 16, 17, 18, 19, 20};
    size_t k = 0;
    assert_int_equal(sl_part_iter_new(p, 0, &it), SL_OK);
    while (sl_part_iter_next(it, &r, &e)) {
        assert_true(k < sizeof(want) / sizeof(want[0]));
        assert_int_equal(r.offset, want[k]);
        if (r.offset < 20) {
            assert_int_equal(r.value_len, (int)sizeof(val));
            assert_int_equal(r.value[0], 'b');
            assert_int_equal(r.timestamp, 100 + (r.offset - 10));
        }
        k++;
    }
    assert_int_equal(e, SL_OK);
    assert_int_equal(k, sizeof(want) / sizeof(want[0]));
    sl_part_iter_free(it);
    /* the rewritten batches are still zstd */
    size_t ll;
    uint8_t *log = tu_read_file(tu_seg_path(dir, 10, ".log"), &ll);
    size_t pos = 0;
    int batches = 0;
    while (pos < ll) {
        sl_batch_hdr h;
        size_t bsz = 12 + sl_get_u32(log + pos + 8);
        assert_int_equal(sl_batch_verify(log + pos, bsz, &h), SL_OK);
        assert_int_equal(h.attributes & SL_BATCH_ATTR_CODEC_MASK,
                         SL_CODEC_ZSTD);
        pos += bsz;
        batches++;
    }
    assert_int_equal(batches, 2);
    free(log);
    sl_part_free(p);
    tu_rmrf(dir);
}

static void test_fdatasync_failure(void **state)
{
    char *dir = tu_tmpdir();
    sl_part *p = fill(dir, 3);
    (void)state;
    install_faults();
    assert_int_equal(sl_part_sync(p), SL_OK);
    int64_t durable = sl_part_durable_offset(p);
    assert_int_equal(durable, 9);
    tu_append(p, 3, 5000, 9, 20);
    assert_true(sl_part_dirty(p));
    fail_fdatasync = EIO;
    assert_int_equal(sl_part_sync(p), SL_ESYS(EIO));
    assert_int_equal(sl_part_durable_offset(p), durable);
    assert_int_equal(sl_part_failed(p), 1);
    fail_fdatasync = 0;
    /* never retried into success, appends refused */
    assert_int_equal(sl_part_sync(p), SL_ERR_STORAGE);
    assert_int_equal(sl_part_durable_offset(p), durable);
    size_t len;
    int64_t base;
    uint8_t *b = tu_batch(1, 1, 0, 4, &len);
    assert_int_equal(sl_part_append(p, b, len, 1, &base), SL_ERR_STORAGE);
    free(b);
    /* reads still work */
    assert_int_equal(tu_count_records(p, 0), 12);
    sl_fs = &sl_fs_posix;
    sl_part_free(p);
    tu_rmrf(dir);
}

static void test_bad_batches(void **state)
{
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    size_t len;
    int64_t base;
    (void)state;
    tu_small_cfg(&cfg, 1 << 20);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    uint8_t *b = tu_batch(2, 1, 0, 10, &len);
    b[len - 1] ^= 1;
    assert_int_equal(sl_part_append(p, b, len, 1, &base), SL_ERR_CORRUPT);
    b[len - 1] ^= 1;
    assert_int_equal(sl_part_append(p, b, len - 1, 1, &base), SL_ERR_MALFORMED);
    assert_int_equal(sl_part_append(p, b, 10, 1, &base), SL_ERR_MALFORMED);
    assert_int_equal(sl_part_end_offset(p), 0);
    assert_int_equal(tu_file_size(tu_seg_path(dir, 0, ".log")), 0);
    assert_int_equal(sl_part_append(p, b, len, 1, &base), SL_OK);
    assert_int_equal(base, 0);
    free(b);
    sl_part_free(p);
    tu_rmrf(dir);
}

static void test_reopen(void **state)
{
    char *dir = tu_tmpdir();
    sl_part *p = fill(dir, 50);
    sl_part_cfg cfg;
    int64_t off;
    (void)state;
    int nseg = tu_count_files(dir, ".log");
    assert_int_equal(sl_part_sync(p), SL_OK);
    sl_part_free(p);
    tu_small_cfg(&cfg, 700);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(tu_count_files(dir, ".log"), nseg);
    assert_int_equal(sl_part_start_offset(p), 0);
    assert_int_equal(sl_part_end_offset(p), 150);
    assert_int_equal(sl_part_durable_offset(p), 150);
    assert_int_equal(tu_count_records(p, 0), 150);
    assert_int_equal(sl_part_offset_for_time(p, 1000 + 10 * 33 + 1, &off),
                     SL_OK);
    assert_int_equal(off, 100);
    assert_int_equal(tu_append(p, 3, 9999, 150, 20), 150);
    sl_part_free(p);
    /* destroy removes the directory */
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(sl_part_end_offset(p), 153);
    assert_int_equal(sl_part_destroy(p), SL_OK);
    assert_int_equal(access(dir, F_OK), -1);
    free(dir);
}

static int nsyncs;
static int counting_fdatasync(int fd)
{
    nsyncs++;
    return sl_fs_posix.fdatasync(fd);
}
static int counting_fsync(int fd)
{
    nsyncs++;
    return sl_fs_posix.fsync(fd);
}

/* Opening a new flush=never partition (a STOMP temp queue's) fsyncs
 * nothing; a new flush=always one makes its first segment durable; an
 * existing flush=never one is recovered as always. */
static void test_new_flush_never_open_is_not_synced(void **state)
{
    static sl_fs_ops counting;
    char *dir = tu_tmpdir(), *dir2 = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    (void)state;
    counting = sl_fs_posix;
    counting.fdatasync = counting_fdatasync;
    counting.fsync = counting_fsync;
    sl_fs = &counting;
    tu_small_cfg(&cfg, 700);
    cfg.flush = SL_FLUSH_NEVER;
    nsyncs = 0;
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(nsyncs, 0);
    assert_int_equal(tu_append(p, 3, 1000, 0, 20), 0);
    sl_part_free(p);
    nsyncs = 0;
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_true(nsyncs > 0); /* had a segment: the recovery syncs it */
    assert_int_equal(sl_part_end_offset(p), 3);
    sl_part_free(p);
    cfg.flush = SL_FLUSH_ALWAYS;
    nsyncs = 0;
    assert_int_equal(sl_part_open(dir2, &cfg, &p), SL_OK);
    /* An empty partition's new segment name is made durable by the first
     * sync (before anything in it is acked), not at open. */
    assert_int_equal(sl_part_sync(p), SL_OK);
    assert_true(nsyncs > 0);
    sl_part_free(p);
    sl_fs = &sl_fs_posix;
    tu_rmrf(dir); /* frees dir */
    tu_rmrf(dir2);
}

static void test_fsutil(void **state)
{
    char *dir = tu_tmpdir();
    char err[256], path[512];
    int fd1 = -1, fd2 = -1;
    (void)state;
    assert_int_equal(sl_fs_lock_dir(dir, &fd1, err, sizeof(err)), SL_OK);
    assert_true(fd1 >= 0);
    /* A second lock (another open file description) is refused. */
    assert_int_equal(sl_fs_lock_dir(dir, &fd2, err, sizeof(err)), SL_ERR_BUSY);
    assert_int_equal(fd2, -1);
    char want[64];
    snprintf(want, sizeof(want), "(pid %ld)", (long)getpid());
    assert_non_null(strstr(err, "another sluiced"));
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, dir));
    sl_fs_unlock_dir(fd1);
    assert_int_equal(sl_fs_lock_dir(dir, &fd2, err, sizeof(err)), SL_OK);
    sl_fs_unlock_dir(fd2);
    /* missing directory: a clear error naming the path */
    snprintf(path, sizeof(path), "%s/nope/deeper", dir);
    assert_true(SL_IS_ESYS(sl_fs_lock_dir(path, &fd2, err, sizeof(err))));
    assert_non_null(strstr(err, path));

    /* durable write replaces atomically */
    snprintf(path, sizeof(path), "%s/meta", dir);
    assert_int_equal(sl_fs_write_durable(path, "one", 3), SL_OK);
    assert_int_equal(sl_fs_write_durable(path, "second", 6), SL_OK);
    size_t len;
    uint8_t *b = tu_read_file(path, &len);
    assert_int_equal(len, 6);
    assert_memory_equal(b, "second", 6);
    free(b);
    snprintf(path, sizeof(path), "%s/meta.tmp", dir);
    assert_int_equal(access(path, F_OK), -1);
    /* a failing fsync leaves the old contents */
    install_faults();
    faulty.fsync = f_fdatasync;
    fail_fdatasync = EIO;
    snprintf(path, sizeof(path), "%s/meta", dir);
    assert_int_equal(sl_fs_write_durable(path, "third", 5), SL_ESYS(EIO));
    sl_fs = &sl_fs_posix;
    b = tu_read_file(path, &len);
    assert_int_equal(len, 6);
    free(b);
    /* mkdirs */
    snprintf(path, sizeof(path), "%s/a/b/c", dir);
    assert_int_equal(sl_fs_mkdirs(path, 0755), SL_OK);
    assert_int_equal(sl_fs_mkdirs(path, 0755), SL_OK);
    tu_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_read_rolls),
        cmocka_unit_test(test_new_flush_never_open_is_not_synced),
        cmocka_unit_test(test_iterator),
        cmocka_unit_test(test_index_entries),
        cmocka_unit_test(test_time_lookup),
        cmocka_unit_test(test_retention_size_and_low_water),
        cmocka_unit_test(test_reset_at_and_trim_below),
        cmocka_unit_test(test_retention_time),
        cmocka_unit_test(test_roll_by_age),
        cmocka_unit_test(test_compaction),
        cmocka_unit_test(test_enospc),
        cmocka_unit_test(test_enospc_on_index),
        cmocka_unit_test(test_zstd),
        cmocka_unit_test(test_fdatasync_failure),
        cmocka_unit_test(test_bad_batches),
        cmocka_unit_test(test_reopen),
        cmocka_unit_test(test_truncate_and_read_cap),
        cmocka_unit_test(test_recent_appends_from_memory),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_fsutil),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
