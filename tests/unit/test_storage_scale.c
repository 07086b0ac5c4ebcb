/* Unit tests: storage at scale. The open-file cache (storage/fdcache.c)
 * keeps at most its bound of .log descriptors open however many
 * partitions are written, read, synced and reopened; and a start-up
 * through sl_part_startup_begin/end makes recovered data durable with one
 * syncfs (none after a clean stop, whose marker it consumes) instead of an
 * fdatasync per partition. System calls are counted through the sl_fs
 * seam; descriptors through /proc/self/fd. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "storage/fsutil.h"
#include "storage/partition.h"
#include "tests/unit/test_storage_util.h"

#define NPARTS 200
#define BOUND 8

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the DIR's own */
}

static void part_dir(const char *data, int i, char *b, size_t n)
{
    snprintf(b, n, "%s/topics/t/%d", data, i);
}

static void open_all(const char *data, sl_part **p, int n)
{
    sl_part_cfg cfg;
    char dir[1024];
    tu_small_cfg(&cfg, 1u << 20);
    for (int i = 0; i < n; i++) {
        part_dir(data, i, dir, sizeof(dir));
        assert_int_equal(sl_part_open(dir, &cfg, &p[i]), SL_OK);
    }
}

static void free_all(sl_part **p, int n)
{
    for (int i = 0; i < n; i++)
        sl_part_free(p[i]);
}

static void test_fd_cache_bound(void **state)
{
    (void)state;
    char *data = tu_tmpdir();
    sl_part *p[NPARTS];
    size_t open = 0, max = 0;
    uint64_t opens = 0, evictions = 0;
    int base;

    sl_part_set_max_open_files(BOUND);
    base = open_fds();
    open_all(data, p, NPARTS);
    /* Two rounds over every partition: append, then read back through
     * both read paths (a dup for sendfile, and the record iterator). */
    for (int r = 0; r < 2; r++) {
        for (int i = 0; i < NPARTS; i++)
            assert_int_equal(tu_append(p[i], 3, 1000 + r, i, 20), 3 * r);
        for (int i = 0; i < NPARTS; i++) {
            sl_part_slice sl;
            assert_int_equal(
                sl_part_read(p[i], 0, 1 << 20, sl_part_end_offset(p[i]), &sl),
                SL_OK);
            assert_true(sl.fd >= 0);
            assert_int_equal(sl.next_offset, 3 * (r + 1));
            close(sl.fd);
            assert_int_equal(tu_count_records(p[i], 0), 3 * (r + 1));
        }
        assert_true(open_fds() - base <= BOUND);
    }
    /* The flusher's path: most segments are closed, so the sync opens
     * them by name; every partition becomes durable. */
    for (int i = 0; i < NPARTS; i++) {
        assert_int_equal(sl_part_sync(p[i]), SL_OK);
        assert_int_equal(sl_part_durable_offset(p[i]), 6);
    }
    assert_true(open_fds() - base <= BOUND);
    sl_part_open_files(&open, &max, &opens, &evictions);
    assert_int_equal(max, BOUND);
    assert_true(open <= BOUND);
    assert_true(evictions >= 2 * NPARTS); /* they really were closed */
    free_all(p, NPARTS);
    assert_int_equal(open_fds(), base);

    /* Reopened (recovery reads every segment), all records are there. */
    open_all(data, p, NPARTS);
    assert_true(open_fds() - base <= BOUND);
    for (int i = 0; i < NPARTS; i++)
        assert_int_equal(tu_count_records(p[i], 0), 6);
    free_all(p, NPARTS);
    sl_part_set_max_open_files(0);
    tu_rmrf(data);
}

/* sl_fs with counted fdatasync and syncfs. */
static int n_fdatasync, n_syncfs;
static int count_fdatasync(int fd)
{
    n_fdatasync++;
    return sl_fs_posix.fdatasync(fd);
}
static int count_syncfs(int fd)
{
    n_syncfs++;
    return sl_fs_posix.syncfs(fd);
}

static void test_startup_one_syncfs(void **state)
{
    (void)state;
    enum { N = 40 };
    char *data = tu_tmpdir();
    char marker[1024];
    sl_part *p[N];
    sl_fs_ops counted = sl_fs_posix;
    const sl_fs_ops *saved = sl_fs;
    int clean = -1;

    counted.fdatasync = count_fdatasync;
    counted.syncfs = count_syncfs;
    snprintf(marker, sizeof(marker), "%s/%s", data, SL_PART_CLEAN_MARKER);
    open_all(data, p, N);
    for (int i = 0; i < N; i++)
        tu_append(p[i], 2, 1000, i, 10);
    free_all(p, N); /* as after a kill -9: nothing synced */
    sl_fs = &counted;

    /* Opened on their own (as storage tests and tools do): each
     * partition's fresh active segment is fdatasynced. */
    n_fdatasync = n_syncfs = 0;
    open_all(data, p, N);
    assert_true(n_fdatasync >= N);
    free_all(p, N);

    /* The broker's start-up without the marker: no fdatasync per
     * partition, one syncfs at the end. */
    n_fdatasync = n_syncfs = 0;
    assert_int_equal(sl_part_startup_begin(data, &clean), SL_OK);
    assert_int_equal(clean, 0);
    open_all(data, p, N);
    assert_int_equal(n_fdatasync, 0);
    assert_int_equal(n_syncfs, 0);
    assert_int_equal(sl_part_startup_end(data), SL_OK);
    assert_int_equal(n_syncfs, 1);
    for (int i = 0; i < N; i++) {
        assert_int_equal(tu_count_records(p[i], 0), 2);
        assert_int_equal(sl_part_durable_offset(p[i]), 2);
    }

    /* A clean stop leaves the marker; the next start consumes it and
     * syncs nothing at all. */
    free_all(p, N);
    assert_int_equal(tu_file_size(marker), -1);
    assert_int_equal(sl_part_shutdown_mark(data), SL_OK);
    assert_true(tu_file_size(marker) > 0);
    n_fdatasync = n_syncfs = 0;
    assert_int_equal(sl_part_startup_begin(data, &clean), SL_OK);
    assert_int_equal(clean, 1);
    assert_int_equal(tu_file_size(marker), -1); /* gone before serving */
    open_all(data, p, N);
    assert_int_equal(sl_part_startup_end(data), SL_OK);
    assert_int_equal(n_fdatasync, 0);
    assert_int_equal(n_syncfs, 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(tu_count_records(p[i], 0), 2);
    free_all(p, N);

    /* The marker is used once: the start after this one (a crash of
     * this run, say) recovers and syncs again. */
    n_syncfs = 0;
    assert_int_equal(sl_part_startup_begin(data, &clean), SL_OK);
    assert_int_equal(clean, 0);
    assert_int_equal(sl_part_startup_end(data), SL_OK);
    assert_int_equal(n_syncfs, 1);
    sl_fs = saved;
    tu_rmrf(data);
}

/* Lazy partitions (sl_part_open_lazy): opened from the summary of a
 * clean stop, a partition answers its offsets and size, a read at its
 * end and a caught-up iterator without opening anything; the first read
 * or append loads it (no fdatasync: the stop synced it) and it goes on
 * where it was. Retention that is due loads it; one that is not does
 * not. */
static void test_lazy_partitions(void **state)
{
    (void)state;
    enum { N = 30 };
    char *data = tu_tmpdir();
    char dir[1024];
    sl_part *p[N];
    sl_part_summary sum[N];
    sl_fs_ops counted = sl_fs_posix;
    const sl_fs_ops *saved = sl_fs;
    sl_part_cfg cfg;
    int base;

    counted.fdatasync = count_fdatasync;
    tu_small_cfg(&cfg, 1u << 20);
    open_all(data, p, N);
    for (int i = 0; i < N; i++) {
        tu_append(p[i], 2 + i % 3, 1000, i, 10);
        assert_int_equal(sl_part_sync(p[i]), SL_OK);
        sl_part_summary_get(p[i], &sum[i]);
        assert_int_equal(sum[i].start, 0);
        assert_int_equal(sum[i].end, 2 + i % 3);
        assert_int_equal(sum[i].nsegs, 1);
        assert_true(sum[i].bytes > 0);
    }
    free_all(p, N);

    sl_fs = &counted;
    n_fdatasync = 0;
    base = open_fds();
    for (int i = 0; i < N; i++) {
        part_dir(data, i, dir, sizeof(dir));
        assert_int_equal(sl_part_open_lazy(dir, &cfg, &sum[i], &p[i]), SL_OK);
    }
    assert_int_equal(open_fds(), base); /* no descriptor per partition */
    for (int i = 0; i < N; i++) {
        sl_part_slice sl;
        sl_part_iter *it;
        sl_record rec;
        sl_err e = SL_OK;
        size_t nsegs = 0;
        int deleted = -1;
        int64_t end = 2 + i % 3;
        assert_int_equal(sl_part_start_offset(p[i]), 0);
        assert_int_equal(sl_part_end_offset(p[i]), end);
        assert_int_equal(sl_part_durable_offset(p[i]), end);
        assert_int_equal(sl_part_size_bytes(p[i], &nsegs), sum[i].bytes);
        assert_int_equal(nsegs, 1);
        assert_false(sl_part_dirty(p[i]));
        assert_int_equal(sl_part_sync(p[i]), SL_OK); /* nothing to sync */
        assert_int_equal(sl_part_read(p[i], end, 1 << 20, end, &sl), SL_OK);
        assert_int_equal(sl.len, 0);
        assert_int_equal(sl_part_iter_new(p[i], end, &it), SL_OK);
        assert_int_equal(sl_part_iter_next(it, &rec, &e), 0);
        assert_int_equal(e, SL_OK);
        sl_part_iter_free(it);
        assert_int_equal(sl_part_maintain(p[i], 2000, &deleted), SL_OK);
        assert_int_equal(deleted, 0);
        assert_false(sl_part_loaded(p[i]));
    }
    assert_int_equal(open_fds(), base);
    /* First use: the records are there, appends continue after them. */
    for (int i = 0; i < N; i++) {
        int64_t end = 2 + i % 3;
        if (i % 2) {
            assert_int_equal(tu_count_records(p[i], 0), end);
        } else {
            assert_int_equal(tu_append(p[i], 1, 3000, i, 10), end);
            assert_int_equal(sl_part_sync(p[i]), SL_OK);
            assert_int_equal(sl_part_durable_offset(p[i]), end + 1);
            assert_int_equal(tu_count_records(p[i], 0), end + 1);
        }
        assert_true(sl_part_loaded(p[i]));
    }
    /* Loading synced nothing (only the appends' own syncs). */
    assert_int_equal(n_fdatasync, N / 2);
    free_all(p, N);
    sl_fs = saved;

    /* Asking an unopened partition for a producer's state loads it first
     * (building that state reads the log from the last segment's base). */
    {
        sl_part *q;
        sl_part_summary m;
        int16_t ep = 0;
        int32_t last = 0;
        part_dir(data, 0, dir, sizeof(dir));
        assert_int_equal(sl_part_open(dir, &cfg, &q), SL_OK);
        sl_part_summary_get(q, &m);
        sl_part_free(q);
        assert_int_equal(sl_part_open_lazy(dir, &cfg, &m, &q), SL_OK);
        assert_false(sl_part_loaded(q));
        assert_int_equal(sl_part_producer(q, 77, &ep, &last), SL_ERR_NOT_FOUND);
        assert_true(sl_part_loaded(q));
        sl_part_free(q);
    }

    /* Retention that is due loads the partition and deletes: a summary
     * of two segments whose first is older than retention_ms. */
    {
        sl_part *q;
        sl_part_summary m;
        int deleted = 0;
        cfg.segment_bytes = 200;
        part_dir(data, N, dir, sizeof(dir));
        assert_int_equal(sl_part_open(dir, &cfg, &q), SL_OK);
        for (int k = 0; k < 6; k++)
            tu_append(q, 2, 1000 + k, k, 40);
        sl_part_summary_get(q, &m);
        assert_true(m.nsegs >= 2);
        assert_true(m.second_base > 0);
        assert_int_equal(m.first_max_ts, 1001);
        sl_part_free(q);
        cfg.retention_ms = 100000;
        assert_int_equal(sl_part_open_lazy(dir, &cfg, &m, &q), SL_OK);
        assert_int_equal(sl_part_maintain(q, 50000, &deleted), SL_OK);
        assert_false(sl_part_loaded(q)); /* not due yet */
        assert_int_equal(sl_part_maintain(q, 1000000, &deleted), SL_OK);
        assert_true(sl_part_loaded(q));
        assert_true(deleted >= 1);
        assert_true(sl_part_start_offset(q) >= m.second_base);
        sl_part_free(q);
    }
    tu_rmrf(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_cache_bound),
        cmocka_unit_test(test_startup_one_syncfs),
        cmocka_unit_test(test_lazy_partitions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
