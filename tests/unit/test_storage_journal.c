/* Unit tests: the shared write-ahead journal (storage/journal.c) under the
 * flusher. A child process appends to many partitions through a flusher
 * with the journal, waits until they are durable and dies without a clean
 * stop (_exit: no checkpoint); the parent then takes away what only the
 * page cache held of the segment files (it truncates them, or deletes a
 * file whose name was never fsynced) and checks that replay brings every
 * acknowledged record back, and that without the journal they would be
 * gone. No sleeps: the child's exit status is the synchronisation. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "storage/flusher.h"
#include "storage/fsutil.h"
#include "storage/journal.h"
#include "storage/partition.h"
#include "tests/unit/test_storage_util.h"

#define NPARTS 12
#define PER_PART 5 /* batches per partition, 3 records each */

static void part_dir(const char *data, int i, char *b, size_t n)
{
    snprintf(b, n, "%s/topics/t/%d", data, i);
}

/* A journal of jbytes files under data, a flusher that journals rounds
 * of two partitions or more, and n partitions opened with segbytes
 * segments (topics/t/0..n-1). */
static void open_rig(const char *data, uint64_t jbytes, uint64_t segbytes,
                     int n, sl_journal **j, sl_flusher **f, sl_part **p)
{
    sl_part_cfg cfg;
    char dir[1024];
    assert_int_equal(sl_journal_open(data, jbytes, j, NULL), SL_OK);
    assert_int_equal(sl_flusher_new(NULL, NULL, f), SL_OK);
    assert_int_equal(sl_flusher_set_journal(*f, *j, 2), SL_OK);
    tu_small_cfg(&cfg, segbytes);
    for (int i = 0; i < n; i++) {
        part_dir(data, i, dir, sizeof(dir));
        assert_int_equal(sl_fs_mkdirs(dir, 0755), SL_OK);
        assert_int_equal(sl_part_open(dir, &cfg, &p[i]), SL_OK);
    }
}

/* Child: journal + flusher (journal for rounds of >= 2 partitions),
 * PER_PART rounds of one batch to every partition, each waited for until
 * durable; then _exit without freeing anything. Exit status 0 = all
 * acked, and at least one round went through the journal. */
static unsigned child_flags; /* tu_append_ex flags of the child's appends */
#define MAXPARTS 100
static int child_nparts = NPARTS; /* at most MAXPARTS */

static void child(const char *data)
{
    sl_journal *j;
    sl_flusher *f;
    sl_part *p[MAXPARTS];
    int64_t e0[MAXPARTS];
    sl_part_cfg cfg;
    char dir[1024];
    if (sl_journal_open(data, 64u << 20, &j, NULL) != SL_OK)
        _exit(10);
    if (sl_flusher_new(NULL, NULL, &f) != SL_OK ||
        sl_flusher_set_journal(f, j, 2) != SL_OK)
        _exit(11);
    tu_small_cfg(&cfg, 1u << 20);
    for (int i = 0; i < child_nparts; i++) {
        part_dir(data, i, dir, sizeof(dir));
        if (sl_fs_mkdirs(dir, 0755) != SL_OK ||
            sl_part_open(dir, &cfg, &p[i]) != SL_OK)
            _exit(12);
        e0[i] = sl_part_end_offset(p[i]);
    }
    for (int r = 0; r < PER_PART; r++) {
        sl_flusher_hold(f, 1); /* all of them in one round */
        for (int i = 0; i < child_nparts; i++) {
            tu_append_ex(p[i], 3, 1000 + r, i * 100 + r * 3, 40, child_flags);
            sl_flusher_request(f, p[i]);
        }
        uint64_t t = sl_flusher_token(f);
        sl_flusher_hold(f, 0);
        sl_flusher_wait_covered(f, t);
        for (int i = 0; i < child_nparts; i++)
            if (sl_part_durable_offset(p[i]) != e0[i] + (r + 1) * 3)
                _exit(13);
    }
    if (sl_flusher_journal_rounds(f) < PER_PART)
        _exit(14);
    _exit(0); /* a crash: no checkpoint, the journal file stays */
}

static void run_child(const char *data)
{
    pid_t pid = fork();
    int st = 0;
    assert_true(pid >= 0);
    if (pid == 0)
        child(data);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* Open every partition and count its records (each must hold them all
 * with their original values). */
static int64_t count_all(const char *data)
{
    sl_part_cfg cfg;
    char dir[1024];
    int64_t total = 0;
    tu_small_cfg(&cfg, 1u << 20);
    for (int i = 0; i < NPARTS; i++) {
        sl_part *p;
        part_dir(data, i, dir, sizeof(dir));
        assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
        total += tu_count_records(p, 0);
        sl_part_free(p);
    }
    return total;
}

/* What the page cache alone held of the segments is lost: cut every .log
 * back to zero bytes (partition 0's file is deleted altogether, as if its
 * name had never reached the disk). */
static void lose_segments(const char *data)
{
    char dir[1024];
    for (int i = 0; i < NPARTS; i++) {
        part_dir(data, i, dir, sizeof(dir));
        const char *log = tu_seg_path(dir, 0, ".log");
        if (i == 0)
            assert_int_equal(unlink(log), 0);
        else
            assert_int_equal(truncate(log, 0), 0);
    }
}

static void test_replay_restores_acked(void **state)
{
    char *data = tu_tmpdir();
    char jdir[1024];
    sl_journal *j;
    uint64_t replayed = 0;
    (void)state;
    run_child(data);
    snprintf(jdir, sizeof(jdir), "%s/journal", data);
    assert_int_equal(tu_count_files(jdir, ".wal"), 1);
    lose_segments(data);
    assert_int_equal(sl_journal_open(data, 64u << 20, &j, &replayed), SL_OK);
    /* 12 partitions x 5 rounds, one entry each */
    assert_int_equal(replayed, NPARTS * PER_PART);
    /* the replayed file is gone, a new one started */
    assert_int_equal(tu_count_files(jdir, ".wal"), 1);
    assert_int_equal(count_all(data), NPARTS * PER_PART * 3);
    sl_journal_free(j);
    /* a second replay finds nothing to do */
    assert_int_equal(sl_journal_open(data, 64u << 20, &j, &replayed), SL_OK);
    assert_int_equal(replayed, 0);
    sl_journal_free(j);
    tu_rmrf(data);
}

/* The control: the same loss without the journal loses the records, so
 * the test above fails if replay does nothing. */
static void test_without_journal_lost(void **state)
{
    char *data = tu_tmpdir();
    char cmd[1200];
    (void)state;
    run_child(data);
    lose_segments(data);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s/journal'", data);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(count_all(data), 0);
    tu_rmrf(data);
}

/* A clean stop checkpoints the segments and leaves no journal behind;
 * replacing a segment by another file (as compaction does) makes replay
 * leave it alone. */
static void test_clean_stop_and_foreign_file(void **state)
{
    char *data = tu_tmpdir();
    char dir[1024], jdir[1024];
    sl_journal *j;
    sl_flusher *f;
    sl_part *p[NPARTS];
    uint64_t replayed = 1;
    (void)state;
    snprintf(jdir, sizeof(jdir), "%s/journal", data);
    open_rig(data, 64u << 20, 1u << 20, NPARTS, &j, &f, p);
    sl_flusher_hold(f, 1);
    for (int i = 0; i < NPARTS; i++) {
        tu_append(p[i], 3, 1000, i * 100, 40);
        sl_flusher_request(f, p[i]);
    }
    sl_flusher_hold(f, 0);
    sl_flusher_free(f); /* last round, checkpoint, journal deleted */
    sl_journal_free(j);
    assert_int_equal(tu_count_files(jdir, ".wal"), 0);
    for (int i = 0; i < NPARTS; i++) {
        assert_int_equal(sl_part_durable_offset(p[i]), 3);
        sl_part_free(p[i]);
    }
    assert_int_equal(count_all(data), NPARTS * 3);
    assert_int_equal(sl_journal_open(data, 64u << 20, &j, &replayed), SL_OK);
    assert_int_equal(replayed, 0);
    sl_journal_free(j);

    /* crash with a journal, then partition 1's segment is replaced by
     * another file of that name (a compacted copy: other inode) */
    run_child(data); /* appends 15 more records to each (after the 3) */
    part_dir(data, 1, dir, sizeof(dir));
    const char *log = tu_seg_path(dir, 0, ".log");
    size_t len = 0;
    uint8_t *b = tu_read_file(log, &len);
    assert_int_equal(unlink(log), 0);
    tu_write_file(log, b, len / 2); /* new inode, half the bytes */
    free(b);
    assert_int_equal(sl_journal_open(data, 64u << 20, &j, &replayed), SL_OK);
    assert_int_equal(replayed, 0); /* nothing written into the copy */
    assert_int_equal(tu_file_size(log), (long long)(len / 2));
    sl_journal_free(j);
    tu_rmrf(data);
}

/* p holds n records from offset 0, in order, their keys key-KEY0.. */
static void assert_keys(sl_part *p, int key0, int n)
{
    sl_part_iter *it;
    sl_record r;
    sl_err e = SL_OK;
    int k = 0;
    char want[32];
    assert_int_equal(sl_part_iter_new(p, 0, &it), SL_OK);
    while (sl_part_iter_next(it, &r, &e)) {
        int wl = snprintf(want, sizeof(want), "key-%d", key0 + k);
        assert_int_equal(r.offset, k);
        assert_int_equal(r.key_len, wl);
        assert_memory_equal(r.key, want, (size_t)wl);
        k++;
    }
    assert_int_equal(e, SL_OK);
    assert_int_equal(k, n);
    sl_part_iter_free(it);
}

/* THE TAIL (storage/partition.c): deferred appends stay out of the segment
 * files until something needs them there; a round copies them from memory
 * into the journal. After a crash the files hold nothing of them (no
 * checkpoint ran, nobody read), and replay brings every acked record
 * back, with its key in order. */
static void replay_syncs(int nparts, int want_fdatasync, int want_syncfs);

static void test_tail_acked_only_in_journal(void **state)
{
    (void)state;
    replay_syncs(NPARTS, NPARTS, 0);
}

/* Partition 0 of data (topics/t/0, made), opened with small segments;
 * dir and cfg are left for reopening it. */
static sl_part *open_part0(const char *data, char *dir, size_t dn,
                           sl_part_cfg *cfg)
{
    sl_part *p;
    part_dir(data, 0, dir, dn);
    assert_int_equal(sl_fs_mkdirs(dir, 0755), SL_OK);
    tu_small_cfg(cfg, 1u << 20);
    assert_int_equal(sl_part_open(dir, cfg, &p), SL_OK);
    return p;
}

/* Readers see deferred appends at once (the tail goes to the file first),
 * a write-through append after deferred ones keeps log order, and a
 * partition closed with a tail writes it. */
static void test_tail_readers_and_order(void **state)
{
    char *data = tu_tmpdir();
    char dir[1024];
    sl_part *p;
    sl_part_cfg cfg;
    sl_part_slice sl;
    const char *log;
    (void)state;
    p = open_part0(data, dir, sizeof(dir), &cfg);
    log = tu_seg_path(dir, 0, ".log");
    for (int i = 0; i < 10; i++)
        tu_append_ex(p, 2, 1000, i * 2, 30, SL_PART_APPEND_DEFER);
    assert_int_equal(tu_file_size(log), 0); /* all in the tail */
    assert_int_equal(tu_count_records(p, 0), 20);
    long long after_read = tu_file_size(log);
    assert_true(after_read > 0);
    tu_append_ex(p, 2, 1000, 20, 30, SL_PART_APPEND_DEFER);
    tu_append_ex(p, 2, 1000, 22, 30, 0); /* through: the tail goes first */
    assert_int_equal(sl_part_read(p, 20, 1 << 20, INT64_MAX, &sl), SL_OK);
    assert_int_equal(sl.first_offset, 20);
    assert_int_equal(sl.next_offset, 24);
    tu_append_ex(p, 2, 1000, 24, 30, SL_PART_APPEND_DEFER);
    sl_part_free(p); /* writes the tail */
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(sl_part_end_offset(p), 26);
    assert_keys(p, 0, 26);
    sl_part_free(p);
    tu_rmrf(data);
}

static ssize_t fail_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    (void)fd;
    (void)buf;
    (void)n;
    (void)off;
    errno = ENOSPC;
    return -1;
}

/* A tail that cannot be written (the disk full when a reader needs it)
 * fails its partition like a failed fdatasync: the read says so, later
 * appends are refused, nothing is half written. */
static void test_tail_write_fails_partition(void **state)
{
    char *data = tu_tmpdir();
    char dir[1024];
    sl_part *p;
    sl_part_cfg cfg;
    sl_part_slice sl;
    sl_fs_ops failing = sl_fs_posix;
    const sl_fs_ops *saved = sl_fs;
    size_t len;
    int64_t base;
    uint8_t *b;
    (void)state;
    p = open_part0(data, dir, sizeof(dir), &cfg);
    tu_append_ex(p, 2, 1000, 0, 30, SL_PART_APPEND_DEFER);
    failing.pwrite = fail_pwrite;
    sl_fs = &failing;
    assert_int_equal(sl_part_read(p, 0, 1 << 20, INT64_MAX, &sl),
                     SL_ESYS(ENOSPC));
    sl_fs = saved;
    assert_true(sl_part_failed(p));
    b = tu_batch(1, 1000, 2, 30, &len);
    assert_int_equal(sl_part_append_ex(p, b, len, 1000, SL_PART_APPEND_DEFER,
                                       &base, NULL, NULL),
                     SL_ERR_STORAGE);
    free(b);
    assert_int_equal(tu_file_size(tu_seg_path(dir, 0, ".log")), 0);
    sl_part_free(p);
    tu_rmrf(data);
}

/* sl_fs counting fdatasync and syncfs calls. */
static int n_fdatasync, n_syncfs;
static int fail_syncs; /* the counted calls fail with EIO */
static int count_fdatasync(int fd)
{
    n_fdatasync++;
    if (fail_syncs) {
        errno = EIO;
        return -1;
    }
    return sl_fs_posix.fdatasync(fd);
}
static int count_syncfs(int fd)
{
    n_syncfs++;
    if (fail_syncs) {
        errno = EIO;
        return -1;
    }
    return sl_fs_posix.syncfs(fd);
}

/* Every one of the child's nparts partitions holds all its records, keys
 * in order. */
static void child_keys_back(const char *data, int nparts)
{
    sl_part_cfg cfg;
    tu_small_cfg(&cfg, 1u << 20);
    for (int i = 0; i < nparts; i++) {
        char dir[1024];
        sl_part *p;
        part_dir(data, i, dir, sizeof(dir));
        assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
        assert_keys(p, i * 100, PER_PART * 3);
        sl_part_free(p);
    }
}

/* The child's deferred appends (PER_PART rounds to nparts partitions) are
 * in no segment file after the crash; replay writes every range back and
 * makes each file it wrote durable once, not once per range: up to 63
 * files, an fdatasync of each; 64 or more, one syncfs (after a kill -9 over
 * 10,000 partitions the fdatasync per range took 30 s of the restart:
 * docs/benchmarks.md, session 17). */
static void replay_syncs(int nparts, int want_fdatasync, int want_syncfs)
{
    char *data = tu_tmpdir();
    sl_journal *j;
    sl_fs_ops counted = sl_fs_posix;
    const sl_fs_ops *saved = sl_fs;
    uint64_t replayed = 0;
    counted.fdatasync = count_fdatasync;
    counted.syncfs = count_syncfs;
    child_flags = SL_PART_APPEND_DEFER;
    child_nparts = nparts;
    run_child(data);
    child_flags = 0;
    child_nparts = NPARTS;
    for (int i = 0; i < nparts; i++) {
        char dir[1024];
        part_dir(data, i, dir, sizeof(dir));
        assert_int_equal(tu_file_size(tu_seg_path(dir, 0, ".log")), 0);
    }
    sl_fs = &counted;
    n_fdatasync = n_syncfs = 0;
    assert_int_equal(sl_journal_open(data, 64u << 20, &j, &replayed), SL_OK);
    sl_fs = saved;
    assert_int_equal(replayed, nparts * PER_PART);
    assert_int_equal(n_fdatasync, want_fdatasync);
    assert_int_equal(n_syncfs, want_syncfs);
    sl_journal_free(j);
    child_keys_back(data, nparts);
    tu_rmrf(data);
}

static void test_replay_syncs_each_file_once(void **state)
{
    (void)state;
    replay_syncs(MAXPARTS, 0, 1);
}

/* When replay cannot make what it wrote durable (an fdatasync of each
 * file, or the one syncfs for many, fails), the start fails and the
 * journal files stay for the next one, which replays them. */
static void replay_sync_fails(int nparts)
{
    char *data = tu_tmpdir(), jdir[1024];
    sl_journal *j = NULL;
    sl_fs_ops failing = sl_fs_posix;
    const sl_fs_ops *saved = sl_fs;
    failing.fdatasync = count_fdatasync;
    failing.syncfs = count_syncfs;
    snprintf(jdir, sizeof(jdir), "%s/journal", data);
    child_flags = SL_PART_APPEND_DEFER;
    child_nparts = nparts;
    run_child(data);
    child_flags = 0;
    child_nparts = NPARTS;
    sl_fs = &failing;
    fail_syncs = 1;
    n_fdatasync = n_syncfs = 0;
    assert_int_equal(sl_journal_open(data, 64u << 20, &j, NULL), SL_ESYS(EIO));
    fail_syncs = 0;
    sl_fs = saved;
    assert_null(j);
    assert_int_equal(n_fdatasync + n_syncfs, 1); /* the first failure */
    assert_true(tu_count_files(jdir, ".wal") > 0);
    assert_int_equal(sl_journal_open(data, 64u << 20, &j, NULL), SL_OK);
    sl_journal_free(j);
    child_keys_back(data, nparts);
    tu_rmrf(data);
}

static void test_replay_sync_failure_keeps_journal(void **state)
{
    (void)state;
    replay_sync_fails(NPARTS);   /* fdatasync of each */
    replay_sync_fails(MAXPARTS); /* one syncfs */
}

/* The last checkpoint of many journaled partitions (a clean stop after a
 * topic of 100,000 partitions was written) is one syncfs, not an
 * fdatasync of every segment file; the journal is gone after it and the
 * records are durable (no replay needed). */
static void test_clean_stop_many_one_syncfs(void **state)
{
    enum { M = 100 };
    char *data = tu_tmpdir();
    char dir[1024], jdir[1024];
    sl_journal *j;
    sl_flusher *f;
    sl_part *p[M];
    sl_part_cfg cfg;
    sl_fs_ops counted = sl_fs_posix;
    const sl_fs_ops *saved = sl_fs;
    uint64_t replayed = 1;
    (void)state;
    counted.fdatasync = count_fdatasync;
    counted.syncfs = count_syncfs;
    snprintf(jdir, sizeof(jdir), "%s/journal", data);
    open_rig(data, 64u << 20, 1u << 20, M, &j, &f, p);
    sl_fs = &counted;
    n_fdatasync = n_syncfs = 0;
    sl_flusher_hold(f, 1);
    for (int i = 0; i < M; i++) {
        /* half of them deferred: their tails reach the files before the
         * syncfs (storage/partition.c, THE TAIL) */
        tu_append_ex(p[i], 2, 1000, i * 10, 40,
                     i % 2 ? SL_PART_APPEND_DEFER : 0);
        sl_flusher_request(f, p[i]);
    }
    sl_flusher_hold(f, 0);
    sl_flusher_free(f); /* one journal round, then the last checkpoint */
    sl_journal_free(j);
    sl_fs = saved;
    assert_int_equal(n_syncfs, 1);
    assert_true(n_fdatasync < 10); /* the journal's, not one per file */
    assert_int_equal(tu_count_files(jdir, ".wal"), 0);
    for (int i = 0; i < M; i++) {
        part_dir(data, i, dir, sizeof(dir));
        assert_true(tu_file_size(tu_seg_path(dir, 0, ".log")) > 0);
        assert_int_equal(sl_part_durable_offset(p[i]), 2);
        sl_part_free(p[i]);
    }
    assert_int_equal(sl_journal_open(data, 64u << 20, &j, &replayed), SL_OK);
    assert_int_equal(replayed, 0);
    sl_journal_free(j);
    for (int i = 0; i < M; i++) {
        part_dir(data, i, dir, sizeof(dir));
        assert_int_equal(sl_part_open(dir, &cfg, &p[i]), SL_OK);
        assert_int_equal(tu_count_records(p[i], 0), 2);
        sl_part_free(p[i]);
    }
    tu_rmrf(data);
}

/* The rule that lets a journal file covering many partitions grow
 * (journal.h, SL_JR_BYTES_PER_PART): 1 MiB files, entries of 1 MiB. */
static void test_full_stretches_with_partitions(void **state)
{
    enum { MIB = 1 << 20 };
    char *data = tu_tmpdir();
    sl_journal *j;
    (void)state;
    assert_int_equal(sl_journal_open(data, MIB, &j, NULL), SL_OK);
    for (int mib = 1; mib <= 8; mib++) {
        uint8_t *d = sl_journal__entry(j, "topics/t/0", 0, 1, 0,
                                       (uint64_t)(mib - 1) * MIB, MIB);
        assert_non_null(d);
        memset(d, mib, MIB);
        sl_journal__seal(j);
        assert_int_equal(sl_journal__commit(j), SL_OK);
        /* few partitions: full at the configured size */
        assert_int_equal(sl_journal__full(j, 1), 1);
        assert_int_equal(sl_journal__full(j, 32), 1);
        /* 100 partitions: full at 100 x 32 KiB = 3.2 MiB */
        assert_int_equal(sl_journal__full(j, 100), mib >= 4);
        /* a million: at most 8 x the configured size */
        assert_int_equal(sl_journal__full(j, 1000000), mib >= 8);
    }
    sl_journal_free(j);
    tu_rmrf(data);
}

/* Through the flusher: 100 partitions journaled in rounds, about 4.6 MiB
 * in all with 1 MiB files. The file is rotated once (at 3.2 MiB), not at
 * every MiB: four fewer checkpoints of 100 fdatasyncs. */
static void test_rotation_waits_for_many_partitions(void **state)
{
    enum { M = 100, ROUNDS = 20 };
    char *data = tu_tmpdir();
    sl_journal *j;
    sl_flusher *f;
    sl_part *p[M];
    uint64_t seq0;
    (void)state;
    open_rig(data, 1u << 20, 64u << 20, M, &j, &f, p);
    seq0 = sl_journal__seq(j);
    for (int r = 0; r < ROUNDS; r++) {
        sl_flusher_hold(f, 1);
        for (int i = 0; i < M; i++) {
            tu_append_ex(p[i], 20, 1000 + r, r * 20, 100, 0);
            sl_flusher_request(f, p[i]);
        }
        uint64_t t = sl_flusher_token(f);
        sl_flusher_hold(f, 0);
        sl_flusher_wait_covered(f, t);
    }
    assert_int_equal(sl_flusher_journal_rounds(f), ROUNDS);
    sl_flusher_free(f); /* the rotations are done; the last checkpoint */
    assert_int_equal(sl_journal__seq(j) - seq0, 1);
    sl_journal_free(j);
    for (int i = 0; i < M; i++) {
        assert_int_equal(sl_part_durable_offset(p[i]), 20 * ROUNDS);
        sl_part_free(p[i]);
    }
    tu_rmrf(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_restores_acked),
        cmocka_unit_test(test_without_journal_lost),
        cmocka_unit_test(test_clean_stop_and_foreign_file),
        cmocka_unit_test(test_clean_stop_many_one_syncfs),
        cmocka_unit_test(test_tail_acked_only_in_journal),
        cmocka_unit_test(test_tail_readers_and_order),
        cmocka_unit_test(test_tail_write_fails_partition),
        cmocka_unit_test(test_replay_syncs_each_file_once),
        cmocka_unit_test(test_replay_sync_failure_keeps_journal),
        cmocka_unit_test(test_full_stretches_with_partitions),
        cmocka_unit_test(test_rotation_waits_for_many_partitions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
