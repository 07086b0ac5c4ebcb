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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_cache_bound),
        cmocka_unit_test(test_startup_one_syncfs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
