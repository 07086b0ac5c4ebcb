/*
 * test_storage_producers.c - the idempotent producer's state
 * (storage/producer_state.c, docs/cluster.md section 4): duplicates,
 * out-of-order sequences, fenced epochs, producer id -1 untouched, the
 * state rebuilt from the log and from a snapshot plus the log after it,
 * a follower's copies, truncation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "storage/fsutil.h"
#include "storage/offset_files.h"
#include "storage/partition.h"
#include "storage/producer_state.h"
#include "tests/unit/test_storage_util.h"

/* A batch of n records from producer (pid, epoch) starting at seq. */
static uint8_t *pbatch(int64_t pid, int16_t epoch, int32_t seq, int n,
                       size_t *len)
{
    sl_batch_builder bb;
    const uint8_t *b;
    uint8_t *copy;
    char v[32];
    sl_bb_init(&bb, SL_CODEC_NONE);
    for (int i = 0; i < n; i++) {
        int vl = snprintf(v, sizeof(v), "p%lld-s%d", (long long)pid, seq + i);
        assert_int_equal(
            sl_bb_add(&bb, 1000 + i, NULL, 0, v, (size_t)vl, NULL, 0), SL_OK);
    }
    bb.producer_id = pid;
    bb.producer_epoch = epoch;
    bb.base_sequence = seq;
    assert_int_equal(sl_bb_finish(&bb, &b, len), SL_OK);
    copy = malloc(*len);
    assert_non_null(copy);
    memcpy(copy, b, *len);
    sl_bb_fini(&bb);
    return copy;
}

/* Append; returns the sl_err, *base and *dup set. */
static sl_err papp(sl_part *p, int64_t pid, int16_t epoch, int32_t seq, int n,
                   unsigned flags, int64_t *base, int *dup)
{
    size_t len;
    int64_t next = -1;
    uint8_t *b = pbatch(pid, epoch, seq, n, &len);
    sl_err rc = sl_part_append_ex(p, b, len, 5000, flags, base, &next, dup);
    if (rc == SL_OK)
        assert_int_equal(next, *base + n);
    free(b);
    return rc;
}

static sl_batch_hdr hdr(int64_t pid, int16_t epoch, int32_t seq, uint32_t n,
                        int64_t base)
{
    sl_batch_hdr h;
    memset(&h, 0, sizeof(h));
    h.producer_id = pid;
    h.producer_epoch = epoch;
    h.base_sequence = seq;
    h.record_count = n;
    h.last_offset_delta = (int32_t)n - 1;
    h.base_offset = base;
    return h;
}

/* ---- the table alone ---------------------------------------------------- */

static void test_pstate_rules(void **state)
{
    (void)state;
    sl_pstate *ps = sl_pstate_new();
    int dup;
    int64_t base = -1, next = -1;
    sl_batch_hdr h;

    /* unknown producer: not at sequence 0, its state was lost (KIP-360) */
    h = hdr(7, 0, 5, 3, 100);
    assert_int_equal(sl_pstate_check(ps, &h, &dup, &base, &next),
                     SL_ERR_UNKNOWN_PRODUCER_ID);
    /* unknown producer: sequence 0 starts it */
    h = hdr(7, 0, 0, 3, 100);
    assert_int_equal(sl_pstate_check(ps, &h, &dup, &base, &next), SL_OK);
    assert_int_equal(dup, 0);
    sl_pstate_record(ps, &h, 1);
    /* the same range again: a duplicate, answered with its offsets */
    assert_int_equal(sl_pstate_check(ps, &h, &dup, &base, &next), SL_OK);
    assert_int_equal(dup, 1);
    assert_int_equal(base, 100);
    assert_int_equal(next, 103);
    /* a gap */
    h = hdr(7, 0, 4, 1, 0);
    assert_int_equal(sl_pstate_check(ps, &h, &dup, &base, &next),
                     SL_ERR_OUT_OF_ORDER_SEQUENCE);
    /* an overlapping range that is not a remembered one */
    h = hdr(7, 0, 1, 2, 0);
    assert_int_equal(sl_pstate_check(ps, &h, &dup, &base, &next),
                     SL_ERR_OUT_OF_ORDER_SEQUENCE);
    /* WINDOW + 2 more batches: the window keeps the last WINDOW */
    for (int i = 0; i < SL_PSTATE_WINDOW + 2; i++) {
        h = hdr(7, 0, 3 + i, 1, 103 + i);
        assert_int_equal(sl_pstate_check(ps, &h, &dup, &base, &next), SL_OK);
        assert_int_equal(dup, 0);
        sl_pstate_record(ps, &h, 2);
    }
    h = hdr(7, 0, 5, 1, 0); /* seq 5 = offset 105, first of the window */
    assert_int_equal(sl_pstate_check(ps, &h, &dup, &base, &next), SL_OK);
    assert_int_equal(dup, 1);
    assert_int_equal(base, 105);
    /* seq 0..2 is older than the window: stored, offset unknown */
    h = hdr(7, 0, 0, 3, 0);
    assert_int_equal(sl_pstate_check(ps, &h, &dup, &base, &next),
                     SL_ERR_DUPLICATE_SEQUENCE);
    assert_int_equal(next, 105);
    /* an older epoch is fenced; a newer one must start at 0 */
    h = hdr(7, -1, 10, 1, 0);
    assert_int_equal(sl_pstate_check(ps, &h, &dup, &base, &next),
                     SL_ERR_MALFORMED);
    sl_pstate_record(ps,
                     &(sl_batch_hdr){.producer_id = 7,
                                     .producer_epoch = 2,
                                     .base_sequence = 0,
                                     .record_count = 1,
                                     .base_offset = 200},
                     3);
    h = hdr(7, 1, 10, 1, 0);
    assert_int_equal(sl_pstate_check(ps, &h, &dup, &base, &next),
                     SL_ERR_PRODUCER_FENCED);
    h = hdr(7, 3, 5, 1, 0);
    assert_int_equal(sl_pstate_check(ps, &h, &dup, &base, &next),
                     SL_ERR_OUT_OF_ORDER_SEQUENCE);
    h = hdr(7, 3, 0, 1, 0);
    assert_int_equal(sl_pstate_check(ps, &h, &dup, &base, &next), SL_OK);
    assert_int_equal(dup, 0);
    /* sequence numbers wrap at INT32_MAX as Kafka's */
    assert_int_equal(sl_seq_add(INT32_MAX, 1), 0);
    assert_int_equal(sl_seq_add(INT32_MAX - 1, 3), 1);
    sl_pstate_free(ps);
}

/* ---- on a partition ----------------------------------------------------- */

static void test_duplicate_appends_nothing(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    int64_t base, b0;
    int dup;

    tu_small_cfg(&cfg, 1 << 20);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    tu_append(p, 2, 1000, 0, 8); /* a non-idempotent batch first */
    assert_int_equal(papp(p, 42, 0, 0, 3, 0, &b0, &dup), SL_OK);
    assert_int_equal(b0, 2);
    assert_int_equal(dup, 0);
    assert_int_equal(papp(p, 42, 0, 3, 2, 0, &base, &dup), SL_OK);
    assert_int_equal(base, 5);
    /* the retry of the first batch: nothing appended, original offset */
    assert_int_equal(papp(p, 42, 0, 0, 3, 0, &base, &dup), SL_OK);
    assert_int_equal(dup, 1);
    assert_int_equal(base, b0);
    assert_int_equal(sl_part_end_offset(p), 7);
    assert_int_equal(tu_count_records(p, 0), 7);
    /* out of order and fenced: refused, nothing appended */
    assert_int_equal(papp(p, 42, 0, 9, 1, 0, &base, &dup),
                     SL_ERR_OUT_OF_ORDER_SEQUENCE);
    assert_int_equal(papp(p, 42, 1, 0, 1, 0, &base, &dup), SL_OK);
    assert_int_equal(papp(p, 42, 0, 5, 1, 0, &base, &dup),
                     SL_ERR_PRODUCER_FENCED);
    assert_int_equal(sl_part_end_offset(p), 8);
    /* producer id -1: the same batch twice is stored twice */
    tu_append(p, 1, 1000, 0, 8);
    tu_append(p, 1, 1000, 0, 8);
    assert_int_equal(sl_part_end_offset(p), 10);
    /* a follower's copy is recorded, never refused */
    assert_int_equal(papp(p, 42, 1, 5, 1, 0, &base, &dup),
                     SL_ERR_OUT_OF_ORDER_SEQUENCE);
    assert_int_equal(papp(p, 42, 1, 5, 1, SL_PART_APPEND_REPLICA, &base, &dup),
                     SL_OK);
    assert_int_equal(dup, 0);
    assert_int_equal(papp(p, 42, 1, 5, 1, 0, &base, &dup), SL_OK);
    assert_int_equal(dup, 1);
    assert_int_equal(base, 10);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* Reopened: the state comes back from the log (no roll, no snapshot). */
static void test_rebuilt_from_log(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    int64_t base;
    int dup;
    int16_t ep;
    int32_t last;

    tu_small_cfg(&cfg, 1 << 20);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    for (int i = 0; i < 4; i++)
        assert_int_equal(papp(p, 5, 2, i * 10, 10, 0, &base, &dup), SL_OK);
    tu_append(p, 3, 1000, 0, 8);
    sl_part_free(p);
    /* the first idempotent batch left the (empty) snapshot at offset 0 */
    assert_int_equal(tu_count_files(dir, SL_PSTATE_EXT), 1);

    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(sl_part_producer(p, 5, &ep, &last), SL_OK);
    assert_int_equal(ep, 2);
    assert_int_equal(last, 39);
    assert_int_equal(papp(p, 5, 2, 30, 10, 0, &base, &dup), SL_OK);
    assert_int_equal(dup, 1);
    assert_int_equal(base, 30);
    assert_int_equal(papp(p, 5, 2, 41, 1, 0, &base, &dup),
                     SL_ERR_OUT_OF_ORDER_SEQUENCE);
    assert_int_equal(papp(p, 5, 1, 40, 1, 0, &base, &dup),
                     SL_ERR_PRODUCER_FENCED);
    assert_int_equal(papp(p, 5, 2, 40, 1, 0, &base, &dup), SL_OK);
    assert_int_equal(dup, 0);
    assert_int_equal(base, 43);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* Rolled segments leave snapshots; reopened with the first segment gone
 * (retention), producer A's batch is known only through the snapshot,
 * producer B's last ones through the tail after it. */
static void test_rebuilt_from_snapshot_and_tail(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    int64_t base, a_base, start;
    int dup;
    int32_t seq = 0;

    tu_small_cfg(&cfg, 2048);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(papp(p, 1, 0, 0, 2, 0, &a_base, &dup), SL_OK);
    while (sl_part_end_offset(p) < 200) {
        assert_int_equal(papp(p, 2, 0, seq, 4, 0, &base, &dup), SL_OK);
        seq += 4;
    }
    assert_true(tu_count_files(dir, ".log") >= 3);
    /* the newest two snapshots are kept */
    assert_int_equal(tu_count_files(dir, SL_PSTATE_EXT), 2);
    sl_part_free(p);
    /* retention deleted the first segment (A's batch is gone) */
    unlink(tu_seg_path(dir, 0, ".log"));
    unlink(tu_seg_path(dir, 0, ".index"));
    unlink(tu_seg_path(dir, 0, ".timeindex"));

    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    start = sl_part_start_offset(p);
    assert_true(start > a_base);
    assert_int_equal(papp(p, 1, 0, 0, 2, 0, &base, &dup), SL_OK);
    assert_int_equal(dup, 1); /* without the snapshot: appended again */
    assert_int_equal(base, a_base);
    assert_int_equal(papp(p, 2, 0, seq - 4, 4, 0, &base, &dup), SL_OK);
    assert_int_equal(dup, 1);
    assert_int_equal(papp(p, 2, 0, seq, 4, 0, &base, &dup), SL_OK);
    assert_int_equal(dup, 0);
    sl_part_free(p);

    /* a damaged newest snapshot: the older one and a longer scan */
    {
        int64_t snaps[2] = {-1, -1};
        for (int64_t o = 0; o < 400; o++) {
            if (access(tu_seg_path(dir, o, SL_PSTATE_EXT), F_OK) == 0) {
                snaps[0] = snaps[1];
                snaps[1] = o;
            }
        }
        assert_true(snaps[0] >= 0);
        tu_write_file(tu_seg_path(dir, snaps[1], SL_PSTATE_EXT), "junk", 4);
        assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
        assert_int_equal(papp(p, 1, 0, 0, 2, 0, &base, &dup), SL_OK);
        assert_int_equal(dup, 1);
        assert_int_equal(base, a_base);
        assert_int_equal(papp(p, 2, 0, seq, 4, 0, &base, &dup), SL_OK);
        assert_int_equal(dup, 1);
        sl_part_free(p);
    }
    tu_rmrf(dir);
}

/* Producer id -1 only: rolls write no snapshot (nothing is built). */
static void test_plain_partition_has_no_snapshots(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;

    tu_small_cfg(&cfg, 1024);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    for (int i = 0; i < 40; i++)
        tu_append(p, 2, 1000, i, 40);
    assert_true(tu_count_files(dir, ".log") >= 3);
    assert_int_equal(tu_count_files(dir, SL_PSTATE_EXT), 0);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* A follower cuts its divergent tail: the producer state forgets what was
 * cut, so the new leader's copy of that range is appended. */
static void test_truncate_forgets_cut_batches(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    int64_t base, b1;
    int dup;

    tu_small_cfg(&cfg, 1 << 20);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_int_equal(papp(p, 9, 0, 0, 2, 0, &base, &dup), SL_OK);
    assert_int_equal(papp(p, 9, 0, 2, 2, 0, &b1, &dup), SL_OK);
    assert_int_equal(sl_part_truncate(p, b1), SL_OK);
    assert_int_equal(papp(p, 9, 0, 2, 2, 0, &base, &dup), SL_OK);
    assert_int_equal(dup, 0);
    assert_int_equal(base, b1);
    assert_int_equal(sl_part_end_offset(p), 4);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* A snapshot covering more than the recovered log (a torn tail cut at
 * open) is deleted before the first append, not trusted. */
static void test_snapshot_past_the_end_is_dropped(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    sl_pstate *ps = sl_pstate_new();
    sl_batch_hdr h = hdr(11, 0, 0, 1, 0);
    int64_t base;
    int dup;

    tu_small_cfg(&cfg, 1 << 20);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    tu_append(p, 1, 1000, 0, 8);
    sl_part_free(p);
    sl_pstate_record(ps, &h, 1);
    assert_int_equal(sl_pstate_write(ps, dir, 50, 1, 0), SL_OK);
    sl_pstate_free(ps);
    assert_int_equal(tu_count_files(dir, SL_PSTATE_EXT), 1);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    /* opening reads nothing more; the first append (of any producer)
     * removes it, before the log grows past its offset */
    assert_int_equal(tu_count_files(dir, SL_PSTATE_EXT), 1);
    tu_append(p, 1, 1000, 0, 8);
    assert_int_equal(tu_count_files(dir, SL_PSTATE_EXT), 0);
    assert_int_equal(papp(p, 11, 0, 0, 1, 0, &base, &dup), SL_OK);
    assert_int_equal(dup, 0);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* A batch of a producer the partition does not know, refused before it was
 * stored (NOT_ENOUGH_REPLICAS): a later batch of it that comes first is
 * out of order, not a new producer's first; the refused one, resent, is
 * stored first. A known producer, or one never refused, is unchanged. */
static void test_refused_first_batch_is_expected(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    sl_batch_hdr h = hdr(21, 0, 0, 2, -1);
    int64_t base;
    int dup;

    tu_small_cfg(&cfg, 1 << 20);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    sl_part_idem_refused(p, &h);
    assert_int_equal(papp(p, 21, 0, 2, 2, 0, &base, &dup),
                     SL_ERR_OUT_OF_ORDER_SEQUENCE);
    assert_int_equal(sl_part_end_offset(p), 0);
    assert_int_equal(papp(p, 21, 0, 0, 2, 0, &base, &dup), SL_OK);
    assert_int_equal(base, 0);
    assert_int_equal(papp(p, 21, 0, 2, 2, 0, &base, &dup), SL_OK);
    assert_int_equal(base, 2);
    /* known: a refusal changes nothing */
    assert_int_equal(papp(p, 22, 0, 0, 2, 0, &base, &dup), SL_OK);
    h = hdr(22, 0, 7, 1, -1);
    sl_part_idem_refused(p, &h);
    assert_int_equal(papp(p, 22, 0, 2, 1, 0, &base, &dup), SL_OK);
    /* never refused: a producer the partition does not know, not at
     * sequence 0, lost its state here (KIP-360): nothing stored */
    assert_int_equal(papp(p, 23, 0, 5, 1, 0, &base, &dup),
                     SL_ERR_UNKNOWN_PRODUCER_ID);
    assert_int_equal(papp(p, 23, 1, 0, 1, 0, &base, &dup), SL_OK);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* The seam records which files and directories get fsynced. */
static char synced[64][512];
static int nsynced;
static char opened[1024][512]; /* by fd */

static int rec_open(const char *path, int flags, mode_t mode)
{
    int fd = sl_fs_posix.open(path, flags, mode);
    if (fd >= 0 && fd < 1024)
        snprintf(opened[fd], sizeof(opened[fd]), "%s", path);
    return fd;
}

static int rec_fsync(int fd)
{
    if (fd >= 0 && fd < 1024 && nsynced < 64)
        snprintf(synced[nsynced++], sizeof(synced[0]), "%s", opened[fd]);
    return sl_fs_posix.fsync(fd);
}

static int synced_suffix(const char *suffix)
{
    for (int i = 0; i < nsynced; i++) {
        size_t a = strlen(synced[i]), b = strlen(suffix);
        if (a >= b && strcmp(synced[i] + a - b, suffix) == 0)
            return i;
    }
    return -1;
}

/* The snapshot a roll writes is fsynced, then its directory, so a power
 * loss cannot take it (producer_state.c, DURABILITY). */
static void test_roll_snapshot_is_durable(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    sl_part_cfg cfg;
    sl_part *p;
    sl_fs_ops ops = sl_fs_posix;
    int64_t base, *snaps = NULL;
    size_t n = 0;
    int dup, f, d;
    int32_t seq = 0;

    ops.open = rec_open;
    ops.fsync = rec_fsync;
    tu_small_cfg(&cfg, 2048);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    sl_fs = &ops;
    nsynced = 0;
    while (tu_count_files(dir, ".log") < 2) {
        assert_int_equal(papp(p, 2, 0, seq, 4, 0, &base, &dup), SL_OK);
        seq += 4;
    }
    sl_fs = &sl_fs_posix;
    /* the marker (first batch) and the roll's snapshot */
    assert_int_equal(
        sl_offset_files(dir, SL_PSTATE_EXT, NULL, NULL, &snaps, &n), SL_OK);
    assert_int_equal(n, 2);
    assert_int_equal(snaps[0], 0);
    assert_true(snaps[1] > 0);
    f = synced_suffix(SL_PSTATE_EXT ".tmp");
    assert_true(f >= 0);
    assert_non_null(strstr(synced[f], tu_seg_path(dir, snaps[1], "")));
    d = synced_suffix(dir);
    assert_true(d > f);
    free(snaps);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* The listing behind segments and snapshots: exact names only, sorted,
 * everything else handed to the callback. */
static void count_other(const char *d, const char *name, void *arg)
{
    (void)d;
    if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0)
        (*(int *)arg)++;
}

static void test_offset_files_listing(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    const char *names[] = {
        "00000000000000000300.log",     "00000000000000000007.log",
        "00000000000000000100.log",     "0000000000000000010.log",
        "00000000000000000100.log.tmp", "0000000000000000x100.log",
        "00000000000000000100.index"};
    char path[1024];
    int64_t *v = NULL;
    size_t n = 0;
    int others = 0;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        tu_write_file(path, "x", 1);
    }
    assert_int_equal(sl_offset_files(dir, ".log", count_other, &others, &v, &n),
                     SL_OK);
    assert_int_equal(n, 3);
    assert_int_equal(v[0], 7);
    assert_int_equal(v[1], 100);
    assert_int_equal(v[2], 300);
    assert_int_equal(others, 4);
    free(v);
    assert_int_equal(
        sl_offset_name("00000000000000000042.producers", ".producers"), 42);
    assert_int_equal(sl_offset_name("00000000000000000042.log", ".index"), -1);
    tu_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pstate_rules),
        cmocka_unit_test(test_duplicate_appends_nothing),
        cmocka_unit_test(test_rebuilt_from_log),
        cmocka_unit_test(test_rebuilt_from_snapshot_and_tail),
        cmocka_unit_test(test_plain_partition_has_no_snapshots),
        cmocka_unit_test(test_truncate_forgets_cut_batches),
        cmocka_unit_test(test_snapshot_past_the_end_is_dropped),
        cmocka_unit_test(test_roll_snapshot_is_durable),
        cmocka_unit_test(test_refused_first_batch_is_expected),
        cmocka_unit_test(test_offset_files_listing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
