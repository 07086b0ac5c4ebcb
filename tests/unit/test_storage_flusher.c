/* Unit tests: the group-commit flusher. Synchronisation with the flusher
 * thread is by condition variables (notify, a gate inside the fdatasync
 * seam), never by sleeping. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
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
#include "storage/flusher.h"
#include "storage/fsutil.h"
#include "storage/partition.h"
#include "tests/unit/test_storage_util.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

/* notify/hook state */
static sl_part *watched;
static sl_flusher *flusher;
static uint64_t notifies, hooks;
static uint64_t hook_seen_rounds, notified_rounds; /* see hook, notify */
static int64_t last_durable;
static int not_monotonic, hook_order_bad;

/* fdatasync seam: gate + record of synced files */
static sl_fs_ops seam;
static int gate_armed, gate_entered, gate_open;
static int sync_fail;
#define MAXSEEN 256
static char seen[MAXSEEN][256];
static int nseen;

/* order of events in a round (test_early_notify): S = fdatasync,
 * D = durable notify, H = hook, N = notify */
static char evlog[1024];
static size_t nev;
static int hook_block, hook_entered, hook_open;
static int hook_active, hook_concurrent; /* hooks never overlap */
static int64_t dn_durable;
static int dn_failed;

static void ev_add(char c) /* holds mu */
{
    if (nev + 1 < sizeof(evlog)) {
        evlog[nev++] = c;
        evlog[nev] = 0;
    }
}

static void record_fd(int fd)
{
    char link[64], target[256];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n <= 0)
        return;
    target[n] = 0;
    const char *base = strrchr(target, '/');
    base = base ? base + 1 : target;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < nseen; i++)
        if (!strcmp(seen[i], base))
            goto out;
    if (nseen < MAXSEEN)
        snprintf(seen[nseen++], sizeof(seen[0]), "%s", base);
out:
    pthread_mutex_unlock(&mu);
}

static int s_fdatasync(int fd)
{
    pthread_mutex_lock(&mu);
    if (gate_armed) {
        gate_armed = 0;
        gate_entered = 1;
        pthread_cond_broadcast(&cv);
        while (!gate_open)
            pthread_cond_wait(&cv, &mu);
    }
    int fail = sync_fail;
    ev_add('S');
    pthread_mutex_unlock(&mu);
    if (fail) {
        errno = fail;
        return -1;
    }
    record_fd(fd);
    return sl_fs_posix.fdatasync(fd);
}

static int s_fsync(int fd)
{
    record_fd(fd);
    return sl_fs_posix.fsync(fd);
}

static void notify(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    notifies++;
    if (watched) {
        int64_t d = sl_part_durable_offset(watched);
        if (d < last_durable)
            not_monotonic = 1;
        last_durable = d;
    }
    /* notify follows each run of the (one) hook, on the same thread */
    if (flusher && hooks != notifies)
        hook_order_bad = 1;
    notified_rounds = hook_seen_rounds;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void hook(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    hooks++;
    if (flusher)
        hook_seen_rounds = sl_flusher_rounds(flusher);
    pthread_mutex_unlock(&mu);
}

static int setup(void **state)
{
    (void)state;
    seam = sl_fs_posix;
    seam.fdatasync = s_fdatasync;
    seam.fsync = s_fsync;
    sl_fs = &seam;
    watched = NULL;
    flusher = NULL;
    notifies = hooks = 0;
    hook_seen_rounds = notified_rounds = 0;
    last_durable = 0;
    not_monotonic = hook_order_bad = 0;
    gate_armed = gate_entered = gate_open = 0;
    sync_fail = 0;
    nseen = 0;
    nev = 0;
    evlog[0] = 0;
    hook_block = hook_entered = hook_open = 0;
    hook_active = hook_concurrent = 0;
    dn_durable = -1;
    dn_failed = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sl_fs = &sl_fs_posix;
    return 0;
}

static void wait_durable(sl_part *p, int64_t target)
{
    pthread_mutex_lock(&mu);
    while (sl_part_durable_offset(p) < target)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

/* Wait for a notify after a hook run that began once `rounds` rounds had
 * ended (guarantees 2 and 3: every round is followed by a hook run, then
 * notify). */
static void wait_hooks_after(uint64_t rounds)
{
    pthread_mutex_lock(&mu);
    while (notified_rounds < rounds)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static void wait_notifies(uint64_t n)
{
    pthread_mutex_lock(&mu);
    while (notifies < n)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static void gate_wait_entered(void)
{
    pthread_mutex_lock(&mu);
    while (!gate_entered)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static void gate_release(void)
{
    pthread_mutex_lock(&mu);
    gate_open = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void check_key(const sl_record *r, int64_t k)
{
    char key[32];
    int kl = snprintf(key, sizeof(key), "key-%lld", (long long)k);
    assert_int_equal(r->key_len, kl);
    assert_memory_equal(r->key, key, (size_t)kl);
}

static sl_part *open_part(const char *dir, uint64_t seg_bytes, int policy)
{
    sl_part_cfg cfg;
    sl_part *p;
    tu_small_cfg(&cfg, seg_bytes);
    cfg.flush = policy;
    cfg.flush_interval_ms = 20;
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    pthread_mutex_lock(&mu);
    watched = p;
    pthread_mutex_unlock(&mu);
    return p;
}

/* Many appends while a round is in progress: one more round covers them
 * all with one fdatasync. */
static void test_group_commit(void **state)
{
    char *dir = tu_tmpdir();
    sl_part *p = open_part(dir, 1 << 30, SL_FLUSH_ALWAYS);
    sl_flusher *f;
    const int N = 2000;
    (void)state;
    assert_int_equal(sl_flusher_new(notify, NULL, &f), SL_OK);
    pthread_mutex_lock(&mu);
    flusher = f;
    pthread_mutex_unlock(&mu);
    sl_flusher_add_hook(f, hook, NULL);

    gate_armed = 1;
    tu_append(p, 1, 1, 0, 100);
    sl_flusher_request(f, p);
    gate_wait_entered(); /* round 1 is inside fdatasync */
    int64_t prev = sl_part_durable_offset(p);
    for (int i = 1; i < N; i++) {
        assert_int_equal(tu_append(p, 1, 1, i, 100), i);
        sl_flusher_request(f, p);
        int64_t d = sl_part_durable_offset(p);
        assert_true(d >= prev);
        prev = d;
    }
    assert_true(sl_part_durable_offset(p) < N); /* nothing waited on disk */
    gate_release();
    wait_durable(p, N);
    assert_int_equal(sl_part_durable_offset(p), N);
    assert_false(sl_part_dirty(p));
    uint64_t syncs = sl_flusher_syncs(f), rounds = sl_flusher_rounds(f);
    assert_true(syncs < (uint64_t)N);
    assert_true(syncs <= 3); /* round 1 + round 2 (+ nothing else) */
    assert_true(rounds <= 3);
    assert_true(rounds >= 2);
    wait_hooks_after(rounds); /* hook runs may be coalesced, not skipped */
    pthread_mutex_lock(&mu);
    assert_true(notifies >= 1);
    assert_int_equal(not_monotonic, 0);
    assert_int_equal(hook_order_bad, 0);
    assert_true(hooks >= 1);
    assert_true(hooks <= rounds); /* no run nobody asked for */
    flusher = NULL;
    watched = NULL;
    pthread_mutex_unlock(&mu);
    sl_flusher_forget(f, p);
    sl_flusher_free(f);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* Free-running: many appends, every one eventually durable, in order. */
static void test_free_running(void **state)
{
    char *dir = tu_tmpdir();
    sl_part *p = open_part(dir, 64 * 1024, SL_FLUSH_ALWAYS);
    sl_flusher *f;
    const int N = 3000;
    (void)state;
    assert_int_equal(sl_flusher_new(notify, NULL, &f), SL_OK);
    for (int i = 0; i < N; i++) {
        tu_append(p, 1, 1, i, 50);
        sl_flusher_request(f, p);
    }
    wait_durable(p, N);
    assert_true(sl_flusher_syncs(f) > 0);
    pthread_mutex_lock(&mu);
    assert_int_equal(not_monotonic, 0);
    assert_int_equal(last_durable <= N, 1);
    watched = NULL;
    pthread_mutex_unlock(&mu);
    sl_flusher_free(f);
    assert_int_equal(tu_count_records(p, 0), N);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* Segments rolled while a sync is pending are synced (log and indexes,
 * and the directory) before the durable offset passes them. */
static void test_roll_during_sync(void **state)
{
    char *dir = tu_tmpdir();
    sl_part *p = open_part(dir, 500, SL_FLUSH_ALWAYS);
    sl_flusher *f;
    (void)state;
    assert_int_equal(sl_flusher_new(notify, NULL, &f), SL_OK);
    gate_armed = 1;
    tu_append(p, 1, 1, 0, 100);
    sl_flusher_request(f, p);
    gate_wait_entered();
    for (int i = 1; i < 40; i++) {
        tu_append(p, 1, 1, i, 100);
        sl_flusher_request(f, p);
    }
    int nseg = tu_count_files(dir, ".log");
    assert_true(nseg >= 5);
    assert_true(sl_part_durable_offset(p) < 40);
    gate_release();
    wait_durable(p, 40);
    /* every segment file was fdatasynced; rolled ones with indexes */
    pthread_mutex_lock(&mu);
    int logs = 0, idx = 0, dirs = 0;
    for (int i = 0; i < nseen; i++) {
        size_t l = strlen(seen[i]);
        if (l > 4 && !strcmp(seen[i] + l - 4, ".log"))
            logs++;
        else if (l > 6 && !strcmp(seen[i] + l - 6, ".index"))
            idx++;
        else if (strstr(dir, seen[i]))
            dirs++;
    }
    pthread_mutex_unlock(&mu);
    assert_int_equal(logs, nseg);
    assert_int_equal(idx, nseg - 1);
    assert_int_equal(dirs, 1);
    sl_flusher_free(f);
    pthread_mutex_lock(&mu);
    watched = NULL;
    pthread_mutex_unlock(&mu);
    sl_part_free(p);
    tu_rmrf(dir);
}

static void test_policies(void **state)
{
    char *dir = tu_tmpdir();
    sl_part *p = open_part(dir, 1 << 20, SL_FLUSH_INTERVAL);
    sl_flusher *f;
    (void)state;
    assert_int_equal(sl_flusher_new(notify, NULL, &f), SL_OK);
    for (int i = 0; i < 10; i++) {
        tu_append(p, 1, 1, i, 10);
        sl_flusher_request(f, p);
    }
    wait_durable(p, 10); /* within flush_interval_ms, by the timer */
    assert_true(sl_flusher_rounds(f) >= 1);

    /* NEVER: requests are ignored; a wake-up round does not sync it */
    sl_part_cfg cfg = *sl_part_get_cfg(p);
    cfg.flush = SL_FLUSH_NEVER;
    sl_part_set_cfg(p, &cfg);
    tu_append(p, 1, 1, 10, 10);
    sl_flusher_request(f, p);
    pthread_mutex_lock(&mu);
    uint64_t n = notifies;
    pthread_mutex_unlock(&mu);
    sl_flusher_wake(f);
    wait_notifies(n + 1);
    assert_int_equal(sl_part_durable_offset(p), 10);
    assert_true(sl_part_dirty(p));
    /* an explicit sync does it */
    assert_int_equal(sl_part_sync(p), SL_OK);
    assert_int_equal(sl_part_durable_offset(p), 11);
    sl_flusher_forget(f, p);
    pthread_mutex_lock(&mu);
    watched = NULL;
    pthread_mutex_unlock(&mu);
    sl_part_free(p);
    sl_flusher_free(f);
    tu_rmrf(dir);
}

static void test_sync_failure(void **state)
{
    char *dir = tu_tmpdir();
    sl_part *p = open_part(dir, 1 << 20, SL_FLUSH_ALWAYS);
    sl_flusher *f;
    (void)state;
    assert_int_equal(sl_flusher_new(notify, NULL, &f), SL_OK);
    tu_append(p, 1, 1, 0, 10);
    sl_flusher_request(f, p);
    wait_durable(p, 1);
    pthread_mutex_lock(&mu);
    sync_fail = EIO;
    uint64_t n = notifies;
    pthread_mutex_unlock(&mu);
    tu_append(p, 1, 1, 1, 10);
    sl_flusher_request(f, p);
    wait_notifies(n + 1);
    assert_int_equal(sl_part_failed(p), 1);
    assert_int_equal(sl_part_durable_offset(p), 1);
    pthread_mutex_lock(&mu);
    sync_fail = 0;
    n = notifies;
    pthread_mutex_unlock(&mu);
    /* later rounds never declare it durable */
    sl_flusher_request(f, p);
    sl_flusher_wake(f);
    wait_notifies(n + 1);
    assert_int_equal(sl_part_durable_offset(p), 1);
    size_t len;
    int64_t base;
    uint8_t *b = tu_batch(1, 1, 5, 10, &len);
    assert_int_equal(sl_part_append(p, b, len, 1, &base), SL_ERR_STORAGE);
    free(b);
    sl_flusher_forget(f, p);
    pthread_mutex_lock(&mu);
    watched = NULL;
    pthread_mutex_unlock(&mu);
    sl_part_free(p);
    sl_flusher_free(f);
    tu_rmrf(dir);
}

/* forget while a round holds the partition, then free it */
static void test_forget(void **state)
{
    char *dir = tu_tmpdir();
    sl_part *p = open_part(dir, 1 << 20, SL_FLUSH_ALWAYS);
    sl_flusher *f;
    (void)state;
    pthread_mutex_lock(&mu);
    watched = NULL;
    pthread_mutex_unlock(&mu);
    assert_int_equal(sl_flusher_new(NULL, NULL, &f), SL_OK);
    for (int i = 0; i < 100; i++) {
        tu_append(p, 1, 1, i, 10);
        sl_flusher_request(f, p);
    }
    sl_flusher_forget(f, p);
    sl_part_free(p); /* ASan would catch a flusher touching it now */
    sl_flusher_wake(f);
    sl_flusher_free(f);
    /* free runs a last round and a last hook run even when nothing is
     * pending, and notifies after it */
    assert_int_equal(sl_flusher_new(notify, NULL, &f), SL_OK);
    sl_flusher_add_hook(f, hook, NULL);
    pthread_mutex_lock(&mu);
    uint64_t n = notifies, h = hooks;
    pthread_mutex_unlock(&mu);
    sl_flusher_free(f);
    assert_true(notifies >= n + 1);
    assert_true(hooks >= h + 1);
    tu_rmrf(dir);
}

/* kill -9 while appending: every offset reported durable is there after
 * reopening, with the right content, and the log is clean. */
static int kill_pipe = -1;
static sl_part *kill_part;

static void kill_notify(void *arg)
{
    (void)arg;
    int64_t d = sl_part_durable_offset(kill_part);
    if (write(kill_pipe, &d, sizeof(d)) != (ssize_t)sizeof(d))
        _exit(3);
}

static void test_kill9(void **state)
{
    char *dir = tu_tmpdir();
    int fds[2];
    (void)state;
    sl_fs = &sl_fs_posix;
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sl_part_cfg cfg;
        sl_flusher *f;
        close(fds[0]);
        kill_pipe = fds[1];
        tu_small_cfg(&cfg, 16 * 1024);
        if (sl_part_open(dir, &cfg, &kill_part) != SL_OK ||
            sl_flusher_new(kill_notify, NULL, &f) != SL_OK)
            _exit(2);
        for (int i = 0;; i++) {
            size_t len;
            int64_t base;
            uint8_t *b = tu_batch(1, i, i, 50, &len);
            if (sl_part_append(kill_part, b, len, i, &base) != SL_OK)
                _exit(4);
            free(b);
            sl_flusher_request(f, kill_part);
        }
    }
    close(fds[1]);
    int64_t d = 0, acked = 0;
    while (acked < 500 && read(fds[0], &d, sizeof(d)) == (ssize_t)sizeof(d))
        if (d > acked)
            acked = d;
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    close(fds[0]);
    assert_true(WIFSIGNALED(st));
    assert_true(acked >= 500);

    sl_part_cfg cfg;
    sl_part *p;
    sl_part_iter *it;
    sl_record r;
    sl_err e;
    tu_small_cfg(&cfg, 16 * 1024);
    assert_int_equal(sl_part_open(dir, &cfg, &p), SL_OK);
    assert_true(sl_part_end_offset(p) >= acked);
    assert_int_equal(sl_part_iter_new(p, 0, &it), SL_OK);
    int64_t n = 0;
    while (sl_part_iter_next(it, &r, &e)) {
        assert_int_equal(r.offset, n);
        check_key(&r, n);
        n++;
    }
    assert_int_equal(e, SL_OK);
    assert_int_equal(n, sl_part_end_offset(p));
    sl_part_iter_free(it);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* ---- early durable notify ------------------------------------------- */

static void o_dnotify(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    ev_add('D');
    if (watched) {
        dn_durable = sl_part_durable_offset(watched);
        dn_failed = sl_part_failed(watched);
    }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void o_hook(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    if (hook_active++)
        hook_concurrent = 1;
    ev_add('H');
    hook_entered = 1;
    pthread_cond_broadcast(&cv);
    while (hook_block && !hook_open)
        pthread_cond_wait(&cv, &mu);
    hook_active--;
    pthread_mutex_unlock(&mu);
}

static void o_notify(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    ev_add('N');
    notifies++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void wait_ev(char c, size_t count)
{
    pthread_mutex_lock(&mu);
    for (;;) {
        size_t k = 0;
        for (size_t i = 0; i < nev; i++)
            k += evlog[i] == c;
        if (k >= count)
            break;
        pthread_cond_wait(&cv, &mu);
    }
    pthread_mutex_unlock(&mu);
}

/* Like wait_ev, but gives up after secs seconds (a deadlock detector for
 * the overlap test, not synchronization): 0 = seen, -1 = timed out. */
static int wait_ev_timed(char c, size_t count, int secs)
{
    struct timespec ts;
    int rc = 0;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += secs;
    pthread_mutex_lock(&mu);
    for (;;) {
        size_t k = 0;
        for (size_t i = 0; i < nev; i++)
            k += evlog[i] == c;
        if (k >= count)
            break;
        if (pthread_cond_timedwait(&cv, &mu, &ts) == ETIMEDOUT) {
            rc = -1;
            break;
        }
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

/* evlog with each run of S collapsed to one S; clears it. */
static void take_log(char *out, size_t cap)
{
    size_t k = 0;
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < nev && k + 1 < cap; i++)
        if (!(evlog[i] == 'S' && k > 0 && out[k - 1] == 'S'))
            out[k++] = evlog[i];
    out[k] = 0;
    nev = 0;
    evlog[0] = 0;
    pthread_mutex_unlock(&mu);
}

/* evlog must be one or more S, then rest exactly (holds nothing). */
static void assert_log(const char *rest)
{
    char got[sizeof(evlog)];
    pthread_mutex_lock(&mu);
    snprintf(got, sizeof(got), "%s", evlog);
    nev = 0;
    evlog[0] = 0;
    pthread_mutex_unlock(&mu);
    size_t s = strspn(got, "S");
    if (rest[0] != 'S' && (s == 0 || strcmp(got + s, rest) != 0))
        fail_msg("round order: got \"%s\", want S+\"%s\"", got, rest);
    if (rest[0] == 'S' && strcmp(got, rest + 1) != 0)
        fail_msg("round order: got \"%s\", want \"%s\"", got, rest + 1);
}

/* A round publishes the logs' durability right after its fdatasyncs,
 * before the hooks (whose own work, e.g. a SQLite commit, may take an
 * fsync): fsync -> durable notify -> hooks -> notify. Without other work
 * the order is exact. */
static void test_early_notify(void **state)
{
    char *dir = tu_tmpdir();
    sl_part *p = open_part(dir, 1 << 20, SL_FLUSH_ALWAYS);
    sl_flusher *f;
    (void)state;
    assert_int_equal(sl_flusher_new(o_notify, NULL, &f), SL_OK);
    sl_flusher_set_durable_notify(f, o_dnotify, NULL);
    sl_flusher_add_hook(f, o_hook, NULL);

    /* the hook blocks: the durable notify has already told the loop */
    pthread_mutex_lock(&mu);
    hook_block = 1;
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < 10; i++)
        tu_append(p, 1, 1, i, 100);
    sl_flusher_request(f, p);
    wait_ev('H', 1);
    pthread_mutex_lock(&mu);
    assert_non_null(strchr(evlog, 'D'));
    assert_null(strchr(evlog, 'N'));
    assert_int_equal(dn_durable, 10); /* published before the notify */
    assert_int_equal(dn_failed, 0);
    assert_int_equal(notifies, 0);
    hook_open = 1;
    hook_block = 0;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    wait_ev('N', 1);
    assert_log("DHN");
    assert_int_equal(sl_flusher_rounds(f), 1);

    /* a wake-up for the hooks only: no fsync round, no durable notify */
    sl_flusher_wake(f);
    wait_ev('N', 1);
    assert_log("SHN");
    assert_int_equal(sl_flusher_rounds(f), 1);

    /* one round at a time: each one S+ D H N */
    for (int r = 0; r < 3; r++) {
        tu_append(p, 1, 1, 10 + r, 100);
        sl_flusher_request(f, p);
        wait_ev('N', 1);
        assert_log("DHN");
        assert_int_equal(sl_part_durable_offset(p), 11 + r);
    }

    /* a failed fdatasync is reported by the durable notify too */
    pthread_mutex_lock(&mu);
    sync_fail = EIO;
    pthread_mutex_unlock(&mu);
    tu_append(p, 1, 1, 13, 100);
    sl_flusher_request(f, p);
    wait_ev('N', 1);
    assert_log("DHN");
    pthread_mutex_lock(&mu);
    assert_int_equal(dn_failed, 1);
    assert_int_equal(dn_durable, 13);
    sync_fail = 0;
    pthread_mutex_unlock(&mu);

    /* removed: back to fsync -> hooks -> notify */
    sl_flusher_forget(f, p);
    sl_part_free(p);
    p = open_part(dir, 1 << 20, SL_FLUSH_ALWAYS); /* reopens, recovers */
    sl_flusher_set_durable_notify(f, NULL, NULL);
    pthread_mutex_lock(&mu);
    nev = 0;
    evlog[0] = 0;
    pthread_mutex_unlock(&mu);
    int64_t end = sl_part_end_offset(p);
    tu_append(p, 1, 1, (int)end, 100);
    sl_flusher_request(f, p);
    wait_ev('N', 1);
    assert_log("HN");
    assert_int_equal(sl_part_durable_offset(p), end + 1);
    pthread_mutex_lock(&mu);
    assert_int_equal(hook_concurrent, 0);
    pthread_mutex_unlock(&mu);

    sl_flusher_forget(f, p);
    pthread_mutex_lock(&mu);
    watched = NULL;
    pthread_mutex_unlock(&mu);
    sl_flusher_free(f);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* The hooks run on their own thread: while a hook blocks (a slow SQLite
 * commit), a new append is still fsynced and durably notified, and the
 * wake-ups and rounds that asked for hooks meanwhile get one more hook
 * run (coalesced), never a concurrent one; notify follows each run. With
 * the hooks on the flusher thread the second durable notify never comes
 * (wait_ev_timed gives up instead of hanging). */
static void test_hooks_overlap_round(void **state)
{
    char *dir = tu_tmpdir();
    sl_part *p = open_part(dir, 1 << 20, SL_FLUSH_ALWAYS);
    sl_flusher *f;
    char got[sizeof(evlog)];
    (void)state;
    assert_int_equal(sl_flusher_new(o_notify, NULL, &f), SL_OK);
    sl_flusher_set_durable_notify(f, o_dnotify, NULL);
    sl_flusher_add_hook(f, o_hook, NULL);

    pthread_mutex_lock(&mu);
    hook_block = 1;
    pthread_mutex_unlock(&mu);
    tu_append(p, 1, 1, 0, 100);
    sl_flusher_request(f, p);
    wait_ev('H', 1); /* round 1 done, its hook run blocks */
    pthread_mutex_lock(&mu);
    assert_int_equal(dn_durable, 1);
    pthread_mutex_unlock(&mu);

    /* round 2 while the hook blocks */
    tu_append(p, 1, 1, 1, 100);
    sl_flusher_request(f, p);
    assert_int_equal(wait_ev_timed('D', 2, 20), 0);
    assert_int_equal(sl_part_durable_offset(p), 2);
    /* forget waits for round 2 to end (it asked for hooks by then), even
     * while a hook blocks */
    sl_flusher_forget(f, p);
    sl_flusher_wake(f);
    sl_flusher_wake(f);
    pthread_mutex_lock(&mu);
    assert_int_equal(dn_durable, 2);
    assert_int_equal(notifies, 0); /* notify waits for the hooks */
    assert_int_equal(sl_flusher_rounds(f), 2);
    hook_open = 1;
    hook_block = 0;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);

    /* run 1 ends (N), then exactly one more run for round 2 + wakes */
    wait_ev('N', 2);
    take_log(got, sizeof(got));
    if (strcmp(got, "SDHSDNHN") != 0)
        fail_msg("order: got \"%s\", want \"SDHSDNHN\"", got);
    sl_flusher_free(f); /* a last round (nothing to sync), hooks, notify */
    take_log(got, sizeof(got));
    if (strlen(got) < 2 || strcmp(got + strlen(got) - 2, "HN") != 0 ||
        strspn(got, "HN") != strlen(got))
        fail_msg("free: got \"%s\", want (HN)+", got);
    pthread_mutex_lock(&mu);
    assert_int_equal(hook_concurrent, 0);
    assert_true(notifies >= 3);
    watched = NULL;
    pthread_mutex_unlock(&mu);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* Without hooks both notifies still come, durable first, once a round. */
static void test_early_notify_no_hooks(void **state)
{
    char *dir = tu_tmpdir();
    sl_part *p = open_part(dir, 1 << 20, SL_FLUSH_ALWAYS);
    sl_flusher *f;
    (void)state;
    assert_int_equal(sl_flusher_new(NULL, NULL, &f), SL_OK);
    sl_flusher_set_durable_notify(f, o_dnotify, NULL);
    for (int r = 0; r < 3; r++) {
        tu_append(p, 1, 1, r, 100);
        sl_flusher_request(f, p);
        wait_ev('D', 1);
        assert_log("D");
        pthread_mutex_lock(&mu);
        assert_int_equal(dn_durable, r + 1);
        pthread_mutex_unlock(&mu);
    }
    sl_flusher_free(f);
    pthread_mutex_lock(&mu);
    assert_int_equal(nev, 0); /* the last round had nothing to sync */
    watched = NULL;
    pthread_mutex_unlock(&mu);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* The broker's set-up: no hook run after rounds (only when woken), and a
 * spin for the next request after each round. One durable write at a
 * time (each waits for the previous one, as a client waiting for every
 * receipt does): every one gets its own round, the hooks never run until
 * sl_flusher_wake. */
static int dn_count;
static void bcast_dnotify(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    dn_count++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void test_wake_only_hooks_and_spin(void **state)
{
    char *dir = tu_tmpdir();
    sl_part *p = open_part(dir, 1 << 30, SL_FLUSH_ALWAYS);
    sl_flusher *f;
    const int N = 200;
    (void)state;
    dn_count = 0;
    assert_int_equal(sl_flusher_new(notify, NULL, &f), SL_OK);
    sl_flusher_add_hook(f, hook, NULL);
    sl_flusher_set_durable_notify(f, bcast_dnotify, NULL);
    sl_flusher_set_round_hooks(f, 0);
    sl_flusher_set_spin_us(f, 5000);
    for (int i = 0; i < N; i++) {
        assert_int_equal(tu_append(p, 1, 1, i, 20), i);
        sl_flusher_request(f, p);
        wait_durable(p, i + 1);
    }
    assert_int_equal(sl_flusher_rounds(f), N);
    pthread_mutex_lock(&mu);
    assert_int_equal(dn_count, N);
    assert_int_equal(hooks, 0); /* nobody asked */
    assert_int_equal(notifies, 0);
    pthread_mutex_unlock(&mu);
    sl_flusher_wake(f);
    wait_notifies(1);
    pthread_mutex_lock(&mu);
    assert_int_equal(hooks, 1);
    watched = NULL;
    pthread_mutex_unlock(&mu);
    sl_flusher_forget(f, p);
    sl_flusher_free(f);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* Adaptive spinning (flusher.c, spin_wait): a client that waits 5 ms
 * between its durable appends (a gap longer than a spin can pay for)
 * makes the flusher sleep after its rounds instead of spinning: at most
 * the first rounds spin, while the average gap is still being learnt.
 * Before, every round was followed by a spin of up to spin_us (20 here,
 * for 20 rounds). The gaps only get longer on a loaded machine, so the
 * bound holds whatever the load. */
static void test_spin_adapts_to_long_gaps(void **state)
{
    char *dir = tu_tmpdir();
    sl_part *p = open_part(dir, 1 << 30, SL_FLUSH_ALWAYS);
    sl_flusher *f;
    uint64_t spins = 0, hits = 0;
    const int N = 20;
    (void)state;
    assert_int_equal(sl_flusher_new(notify, NULL, &f), SL_OK);
    sl_flusher_set_durable_notify(f, bcast_dnotify, NULL);
    sl_flusher_set_round_hooks(f, 0);
    sl_flusher_set_spin_us(f, 10000);
    for (int i = 0; i < N; i++) {
        struct timespec gap = {0, 5 * 1000 * 1000};
        assert_int_equal(tu_append(p, 1, 1, i, 20), i);
        sl_flusher_request(f, p);
        wait_durable(p, i + 1);
        nanosleep(&gap, NULL); /* the client's think time */
    }
    sl_flusher_spin_stats(f, &spins, &hits);
    assert_true(spins <= 3);
    assert_true(hits <= spins);
    pthread_mutex_lock(&mu);
    watched = NULL;
    pthread_mutex_unlock(&mu);
    sl_flusher_forget(f, p);
    sl_flusher_free(f);
    sl_part_free(p);
    tu_rmrf(dir);
}

/* Coverage tokens: covered reaches a token only once a round that took
 * every SL_FLUSH_ALWAYS request before it ended (durable offsets
 * published); interval requests do not count; a forgotten partition does
 * not leave a waiter hanging. */
static void test_tokens(void **state)
{
    char *dir = tu_tmpdir(), sub[600];
    sl_part *p = open_part(dir, 1 << 30, SL_FLUSH_ALWAYS), *q;
    sl_flusher *f;
    uint64_t t0, t1, t2;
    (void)state;
    snprintf(sub, sizeof(sub), "%s/interval", dir);
    q = open_part(sub, 1 << 30, SL_FLUSH_INTERVAL);
    assert_int_equal(sl_flusher_new(NULL, NULL, &f), SL_OK);
    t0 = sl_flusher_token(f);
    sl_flusher_wait_covered(f, t0); /* nothing asked: returns at once */

    sl_flusher_hold(f, 1);
    tu_append(p, 1, 1, 0, 100);
    sl_flusher_request(f, p);
    t1 = sl_flusher_token(f);
    assert_int_equal(t1, t0 + 1);
    tu_append(q, 1, 1, 0, 100); /* interval: no new token */
    sl_flusher_request(f, q);
    assert_int_equal(sl_flusher_token(f), t1);
    assert_true(sl_flusher_covered(f) < t1);
    assert_int_equal(sl_part_durable_offset(p), 0);
    sl_flusher_hold(f, 0);
    sl_flusher_wait_covered(f, t1);
    assert_true(sl_flusher_covered(f) >= t1);
    assert_int_equal(sl_part_durable_offset(p), 1); /* covered = durable */

    /* A request dropped by sl_flusher_forget still gets covered. */
    sl_flusher_hold(f, 1);
    tu_append(p, 1, 1, 1, 100);
    sl_flusher_request(f, p);
    t2 = sl_flusher_token(f);
    sl_flusher_forget(f, p);
    sl_flusher_hold(f, 0);
    sl_flusher_wait_covered(f, t2);
    assert_int_equal(sl_part_durable_offset(p), 1); /* never synced */

    sl_flusher_forget(f, q);
    sl_flusher_free(f);
    sl_part_free(p);
    sl_part_free(q);
    tu_rmrf(dir);
}

/* Inline rounds (flusher.c, INLINE ROUNDS): a deferred request does not
 * wake the flusher thread; with sl_flusher_set_inline_us,
 * sl_flusher_kick(f, 1) runs the round on the calling thread: fdatasync,
 * durable offset published, durable notify (on this thread), token
 * covered, all before it returns. It leaves the round to the thread when
 * told not to (0), when more than one partition is pending, when held, or
 * when the recent fdatasyncs were slower than the bound. A plain request
 * still wakes the thread. */
static pthread_t dn_thread;
static int dn_calls;
static void self_dnotify(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    dn_thread = pthread_self();
    dn_calls++;
    ev_add('D');
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void test_inline_kick(void **state)
{
    char *dir = tu_tmpdir(), sub[600];
    sl_part *p = open_part(dir, 1 << 30, SL_FLUSH_ALWAYS), *q;
    sl_flusher *f;
    uint64_t t, inl = 0;
    const int N = 20;
    char got[sizeof(evlog)];
    (void)state;
    snprintf(sub, sizeof(sub), "%s/second", dir);
    q = open_part(sub, 1 << 30, SL_FLUSH_ALWAYS);
    dn_calls = 0;
    assert_int_equal(sl_flusher_new(NULL, NULL, &f), SL_OK);
    sl_flusher_set_durable_notify(f, self_dnotify, NULL);
    sl_flusher_set_round_hooks(f, 0);
    sl_flusher_set_inline_us(f, 60 * 1000000); /* any disk */
    /* The flusher thread may still be starting, or finishing its loop
     * after a round, and take a request itself before the kick: such a
     * round is the thread's, and the kick then has nothing to do. */
    for (int i = 0; i < N; i++) {
        int r;
        assert_int_equal(tu_append(p, 1, 1, i, 20), i);
        sl_flusher_request_deferred(f, p);
        t = sl_flusher_token(f);
        pthread_mutex_lock(&mu);
        dn_calls = 0;
        pthread_mutex_unlock(&mu);
        r = sl_flusher_kick(f, 1);
        inl += (uint64_t)r;
        if (!r) {
            wait_durable(p, i + 1);
            wait_ev('D', 1);
            take_log(got, sizeof(got));
            continue;
        }
        /* done when the kick returns, on this thread, in order */
        assert_int_equal(sl_part_durable_offset(p), i + 1);
        assert_true(sl_flusher_covered(f) >= t);
        pthread_mutex_lock(&mu);
        assert_int_equal(dn_calls, 1);
        assert_true(pthread_equal(dn_thread, pthread_self()));
        pthread_mutex_unlock(&mu);
        assert_log("D");
    }
    assert_int_equal(sl_flusher_inline_rounds(f), inl);
    assert_true(inl >= (uint64_t)N / 2);

    /* two partitions pending: the kick leaves them to the thread (unless
     * the thread took one of them before the kick: see above) */
    tu_append(p, 1, 1, N, 20);
    sl_flusher_request_deferred(f, p);
    tu_append(q, 1, 1, 0, 20);
    sl_flusher_request_deferred(f, q);
    inl += (uint64_t)sl_flusher_kick(f, 1);
    wait_durable(p, N + 1);
    wait_durable(q, 1);
    assert_int_equal(sl_flusher_inline_rounds(f), inl);

    /* not allowed by the caller: the thread's round */
    tu_append(p, 1, 1, N + 1, 20);
    sl_flusher_request_deferred(f, p);
    assert_int_equal(sl_flusher_kick(f, 0), 0);
    wait_durable(p, N + 2);

    /* held: no round at all until released */
    sl_flusher_hold(f, 1);
    tu_append(p, 1, 1, N + 2, 20);
    sl_flusher_request_deferred(f, p);
    assert_int_equal(sl_flusher_kick(f, 1), 0);
    assert_int_equal(sl_part_durable_offset(p), N + 2);
    sl_flusher_hold(f, 0);
    wait_durable(p, N + 3);

    /* a plain request still wakes the thread, no kick needed */
    tu_append(p, 1, 1, N + 3, 20);
    sl_flusher_request(f, p);
    wait_durable(p, N + 4);

    /* the recent fdatasyncs took longer than the bound: the thread's */
    sl_flusher_set_inline_us(f, 1);
    tu_append(p, 1, 1, N + 4, 20);
    sl_flusher_request_deferred(f, p);
    if (sl_flusher_sync_avg_us(f) > 1)
        assert_int_equal(sl_flusher_kick(f, 1), 0);
    else
        sl_flusher_kick(f, 0);
    wait_durable(p, N + 5);
    assert_int_equal(sl_flusher_inline_rounds(f), inl);

    pthread_mutex_lock(&mu);
    watched = NULL;
    pthread_mutex_unlock(&mu);
    sl_flusher_forget(f, p);
    sl_flusher_forget(f, q);
    sl_flusher_free(f);
    sl_part_free(p);
    sl_part_free(q);
    tu_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roll_during_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9, setup, teardown),
        cmocka_unit_test_setup_teardown(test_early_notify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wake_only_hooks_and_spin, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_early_notify_no_hooks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hooks_overlap_round, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spin_adapts_to_long_gaps, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_inline_kick, setup, teardown),
    };
    const char *only = getenv("SL_TEST_FILTER"); /* e.g. "*overlap*" */
    if (only)
        cmocka_set_test_filter(only);
    sl_log_level = SL_NONE; /* the failure test logs errors on purpose */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
