/* Unit tests of broker/: the config table and the internal operations
 * (durable waits in FIFO order, fsync failure, watches, topic deletion),
 * on a real broker object started in-process on port 0. */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "broker/config.h"
#include "broker/ops.h"
#include "broker/server.h"
#include "broker/topic.h"
#include "protocol/batch.h"
#include "protocol/log.h"
#include "storage/flusher.h"
#include "storage/fsutil.h"

/* ---- config ---------------------------------------------------------- */

static void test_config_defaults_and_parse(void **state)
{
    sl_config c;
    char err[256];
    (void)state;

    sl_config_init(&c);
    assert_string_equal(c.listen, "127.0.0.1:7410");
    assert_string_equal(c.stomp_listen, "127.0.0.1:61613");
    assert_string_equal(c.data, "./sluice-data");
    assert_int_equal(c.default_partitions, 1);
    assert_int_equal(c.flush, SL_FLUSH_ALWAYS);
    assert_int_equal(c.segment_bytes, 1024LL * 1024 * 1024);
    assert_int_equal(c.segment_ms, 7LL * 86400000);

    assert_int_equal(sl_config_set(&c, "flush", "interval", err, sizeof(err)),
                     SL_OK);
    assert_int_equal(c.flush, SL_FLUSH_INTERVAL);
    assert_int_equal(
        sl_config_set(&c, "segment-bytes", "64k", err, sizeof(err)), SL_OK);
    assert_int_equal(c.segment_bytes, 65536);
    assert_int_equal(sl_config_set(&c, "retention-ms", "2h", err, sizeof(err)),
                     SL_OK);
    assert_int_equal(c.retention_ms, 7200000);
    assert_int_equal(
        sl_config_set(&c, "auto-create-topics", "off", err, sizeof(err)),
        SL_OK);
    assert_int_equal(c.auto_create_topics, 0);

    assert_int_equal(sl_config_set(&c, "flush", "maybe", err, sizeof(err)),
                     SL_ERR_INVALID_CONFIG);
    assert_non_null(strstr(err, "flush"));
    assert_non_null(strstr(err, "always|interval|never"));
    assert_int_equal(
        sl_config_set(&c, "default-partitions", "0", err, sizeof(err)),
        SL_ERR_INVALID_CONFIG);
    assert_non_null(strstr(err, "out of range"));
    assert_int_equal(
        sl_config_set(&c, "segment-bytes", "12q", err, sizeof(err)),
        SL_ERR_INVALID_CONFIG);
    assert_int_equal(
        sl_config_set(&c, "listen", "nohostport", err, sizeof(err)),
        SL_ERR_INVALID_CONFIG);
    assert_int_equal(sl_config_set(&c, "nope", "1", err, sizeof(err)),
                     SL_ERR_INVALID_CONFIG);
    assert_non_null(strstr(err, "nope"));
    sl_config_fini(&c);
}

/* A flush=never topic's registry commits run with synchronous=OFF, and
 * every other commit with FULL again: after creating and deleting one,
 * and after a failed create, meta.db is back to FULL; the topics were
 * stored (they survive a reopen) or removed. */
static void test_topics_lazy_registry(void **state)
{
    char dir[64], err[256];
    const char *k[] = {"flush"}, *never[] = {"never"}, *bad[] = {"sometimes"};
    sl_config c;
    sl_topics *ts;
    sl_topic *t;
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/sl-topics-XXXXXX");
    assert_non_null(mkdtemp(dir));
    sl_config_init(&c);
    assert_int_equal(sl_topics_open(dir, &c, &ts, err, sizeof(err)), SL_OK);
    assert_int_equal(sl_topics_synchronous(ts), 2);
    assert_int_equal(
        sl_topics_create(ts, "tmp", 1, k, never, 1, &t, err, sizeof(err)),
        SL_OK);
    assert_int_equal(sl_topics_synchronous(ts), 2);
    assert_int_equal(
        sl_topics_create(ts, "kept", 1, NULL, NULL, 0, &t, err, sizeof(err)),
        SL_OK);
    assert_int_not_equal(
        sl_topics_create(ts, "bad", 1, k, bad, 1, &t, err, sizeof(err)), SL_OK);
    assert_int_equal(sl_topics_synchronous(ts), 2);
    sl_topics_free(ts);
    assert_int_equal(sl_topics_open(dir, &c, &ts, err, sizeof(err)), SL_OK);
    assert_non_null(sl_topics_find(ts, "tmp"));
    assert_non_null(sl_topics_find(ts, "kept"));
    assert_int_equal(sl_topics_delete(ts, sl_topics_find(ts, "tmp")), SL_OK);
    assert_int_equal(sl_topics_synchronous(ts), 2);
    assert_null(sl_topics_find(ts, "tmp"));
    sl_topics_free(ts);
    assert_int_equal(sl_topics_open(dir, &c, &ts, err, sizeof(err)), SL_OK);
    assert_null(sl_topics_find(ts, "tmp"));
    assert_non_null(sl_topics_find(ts, "kept"));
    sl_topics_free(ts);
    sl_config_fini(&c);
    snprintf(err, sizeof(err), "rm -rf %s", dir);
    assert_int_equal(system(err), 0);
}

/* Found by tests/fuzz/fuzz_config.c (corpus: config/regress-quoted-space):
 * a value that keeps blanks or quotes only because it was quoted lost them
 * in --dump-config, so the dump loaded back to other settings. */
static void test_config_dump_quotes(void **state)
{
    const char *vals[] = {"'adata '", "\"  lead\"", "'\"q\"'", "plain"};
    const char *want[] = {"adata ", "  lead", "\"q\"", "plain"};
    (void)state;
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        char path[] = "/tmp/sl-cfg-XXXXXX", err[256], *buf = NULL;
        size_t len = 0;
        sl_config c, d;
        FILE *f;
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        f = fdopen(fd, "w");
        fprintf(f, "data %s\n", vals[i]);
        fclose(f);
        sl_config_init(&c);
        assert_int_equal(sl_config_load_file(&c, path, err, sizeof(err)),
                         SL_OK);
        assert_string_equal(c.data, want[i]);
        f = fopen(path, "w");
        sl_config_dump_conf(f, &c);
        fclose(f);
        sl_config_init(&d);
        assert_int_equal(sl_config_load_file(&d, path, err, sizeof(err)),
                         SL_OK);
        assert_string_equal(d.data, want[i]);
        f = open_memstream(&buf, &len);
        sl_config_dump_conf(f, &d);
        fclose(f);
        free(buf);
        sl_config_fini(&c);
        sl_config_fini(&d);
        unlink(path);
    }
}

static void test_config_args_and_part_cfg(void **state)
{
    sl_config c;
    char err[256];
    enum sl_config_action act;
    char *argv[] = {"sluiced", "--flush=never", "--segment-bytes",
                    "1m",      "--data",        "/tmp/x",
                    NULL};
    const char *keys[] = {"retention-bytes", "cleanup-policy"};
    const char *vals[] = {"10m", "compact"};
    const char *bad[] = {"listen"};
    sl_part_cfg pc;
    (void)state;

    sl_config_init(&c);
    assert_int_equal(sl_config_parse_args(&c, 6, argv, &act, err, sizeof(err)),
                     SL_OK);
    assert_int_equal(act, SL_CONFIG_RUN);
    assert_int_equal(c.flush, SL_FLUSH_NEVER);
    assert_string_equal(c.data, "/tmp/x");
    assert_int_equal(
        sl_config_part_cfg(&c, keys, vals, 2, &pc, err, sizeof(err)), SL_OK);
    assert_int_equal(pc.segment_bytes, 1024 * 1024);
    assert_int_equal(pc.retention_bytes, 10 * 1024 * 1024);
    assert_int_equal(pc.flush, SL_FLUSH_NEVER);
    assert_int_equal(pc.compact, 1);
    assert_int_equal(
        sl_config_part_cfg(&c, bad, vals, 1, &pc, err, sizeof(err)),
        SL_ERR_INVALID_CONFIG);
    assert_non_null(strstr(err, "listen"));
    sl_config_fini(&c);
}

/* ---- a broker in-process ----------------------------------------------- */

typedef struct fixture {
    char dir[64];
    sl_broker *b;
} fixture;

static int setup_with2(void **state, const char *key, const char *value,
                       const char *key2, const char *value2)
{
    fixture *f = calloc(1, sizeof(*f));
    sl_config c;
    char err[512];

    snprintf(f->dir, sizeof(f->dir), "/tmp/sl-ops-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    sl_config_init(&c);
    assert_int_equal(sl_config_set(&c, "data", f->dir, err, sizeof(err)), 0);
    assert_int_equal(
        sl_config_set(&c, "listen", "127.0.0.1:0", err, sizeof(err)), 0);
    assert_int_equal(
        sl_config_set(&c, "stomp-listen", "127.0.0.1:0", err, sizeof(err)), 0);
    assert_int_equal(
        sl_config_set(&c, "http-listen", "127.0.0.1:0", err, sizeof(err)), 0);
    if (key)
        assert_int_equal(sl_config_set(&c, key, value, err, sizeof(err)), 0);
    if (key2)
        assert_int_equal(sl_config_set(&c, key2, value2, err, sizeof(err)), 0);
    sl_log_level = SL_ERROR;
    if (sl_server_start(&c, &f->b, err, sizeof(err)) != SL_OK)
        fail_msg("start: %s", err);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with2(state, NULL, NULL, NULL, NULL);
}

/* loop-spin-us long enough for any fsync round of the test below, and no
 * inline rounds (they need no polling) */
static int setup_spin(void **state)
{
    return setup_with2(state, "loop-spin-us", "100000", "flush-inline-us", "0");
}

/* inline rounds whatever the disk's fdatasync time */
static int setup_inline(void **state)
{
    return setup_with2(state, "flush-inline-us", "100000", NULL, NULL);
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[128];

    /* SIGTERM makes the loop stop cleanly; run() frees the broker */
    raise(SIGTERM);
    assert_int_equal(sl_server_run(f->b), 0);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static uint8_t *make_batch(const char *value, size_t *len)
{
    sl_batch_builder bb;
    const uint8_t *p;
    uint8_t *copy;

    sl_bb_init(&bb, SL_CODEC_NONE);
    assert_int_equal(
        sl_bb_add(&bb, 1000, NULL, 0, value, strlen(value), NULL, 0), SL_OK);
    assert_int_equal(sl_bb_finish(&bb, &p, len), SL_OK);
    copy = malloc(*len);
    memcpy(copy, p, *len);
    sl_bb_fini(&bb);
    return copy;
}

static int64_t append(sl_broker *b, const char *topic, int32_t part,
                      const char *value)
{
    size_t len;
    uint8_t *batch = make_batch(value, &len);
    int64_t base, next;
    assert_int_equal(sl_ops_append(b, topic, part, SL_OPS_AUTO_CREATE, batch,
                                   len, &base, &next),
                     SL_OK);
    assert_int_equal(next, base + 1);
    free(batch);
    return next;
}

typedef struct waits {
    int order[16];
    sl_err errs[16];
    int n;
} waits;

typedef struct wait_arg {
    waits *w;
    int id;
} wait_arg;

static void on_durable(void *arg, sl_err err)
{
    wait_arg *a = arg;
    a->w->order[a->w->n] = a->id;
    a->w->errs[a->w->n] = err;
    a->w->n++;
}

static void loop_until(sl_broker *b, const int *counter, int want)
{
    for (int i = 0; i < 100000 && *counter < want; i++)
        event_base_loop(sl_broker_base(b), EVLOOP_ONCE);
    assert_int_equal(*counter, want);
}

static void test_durable_waits_fifo(void **state)
{
    fixture *f = *state;
    waits w = {{0}, {0}, 0};
    wait_arg args[3];
    sl_ops_wait *h[3];
    int64_t next[3];
    int pending = 0;

    for (int i = 0; i < 3; i++)
        next[i] = append(f->b, "d", 0, "v");
    for (int i = 0; i < 3; i++) {
        args[i].w = &w;
        args[i].id = i;
        assert_int_equal(sl_ops_wait_durable(f->b, "d", 0, next[i], on_durable,
                                             &args[i], &h[i]),
                         SL_OK);
        pending += h[i] != NULL;
    }
    loop_until(f->b, &w.n, pending);
    for (int i = 0; i < w.n; i++) {
        assert_int_equal(w.errs[i], SL_OK);
        if (i > 0)
            assert_true(w.order[i] > w.order[i - 1]);
    }
    /* now durable: no wait handle, no callback */
    assert_int_equal(
        sl_ops_wait_durable(f->b, "d", 0, next[2], on_durable, &args[0], &h[0]),
        SL_OK);
    assert_null(h[0]);
    int64_t vis = -1;
    assert_int_equal(sl_ops_visible_offset(f->b, "d", 0, &vis), SL_OK);
    assert_int_equal(vis, next[2]);
}

/* fdatasync that returns as soon as the test opens the gate: a round
 * then takes microseconds, far less than the loop-spin-us of setup_spin,
 * on any disk */
static atomic_int sync_gate;
static int gated_datasync(int fd)
{
    (void)fd;
    while (!atomic_load(&sync_gate))
        sched_yield();
    return 0;
}

/* A lone durable waiter is answered by the loop's polling (loop-spin-us)
 * as soon as the flusher's round ends, with no cross-thread wake-up: the
 * flusher's durable notify is switched off here, so without the polling
 * the waiter would stay pending (the test waits for each answer up to a
 * generous deadline, then fails). Five answers are asked for.
 *
 * The polling has two limits (broker/ops.c, loop-spin-us): it does not
 * start while the flusher's average round is longer than loop-spin-us,
 * and it gives up loop-spin-us after it started. A gated round takes
 * microseconds once the gate opens, but on a loaded machine the flusher
 * thread may not run at all for longer than that (a landing saw a waiter
 * left unanswered). So a round the test still saw unfinished loop-spin-us
 * after the wait started, or an average above loop-spin-us, is the
 * polling's give-up, not a failure: that waiter is cancelled and the
 * round tried again (at most SPIN_TRIES rounds). Any other round that is
 * not answered fails the test. */
#define SPIN_US 100000 /* setup_spin's loop-spin-us */
#define SPIN_TRIES 40
static void test_lone_waiter_spin(void **state)
{
    fixture *f = *state;
    /* static: a failed assertion leaves the waiter to the teardown */
    static waits w;
    static wait_arg a;
    sl_ops_wait *h = NULL;
    sl_flusher *fl = sl_broker_flusher(f->b);
    const sl_fs_ops *saved = sl_fs;
    static sl_fs_ops fast;
    int answered = 0;

    memset(&w, 0, sizeof(w));
    a.w = &w;
    a.id = 1;

    /* every fdatasync is the gated one, open while the topic is created
     * (its creation syncs on this thread), so no real disk's time counts
     * in the flusher's average */
    atomic_store(&sync_gate, 1);
    fast = sl_fs_posix;
    fast.fdatasync = gated_datasync;
    sl_fs = &fast;
    append(f->b, "spin", 0, "first");
    sl_flusher_set_durable_notify(fl, NULL, NULL);
    for (int t = 0; t < SPIN_TRIES && answered < 5; t++) {
        int64_t vis = -1, next, avg, t0, now;
        uint64_t r0;
        int late = 0;
        atomic_store(&sync_gate, 0);
        next = append(f->b, "spin", 0, "v");
        h = NULL;
        avg = sl_flusher_sync_avg_us(fl);
        r0 = sl_flusher_rounds(fl);
        t0 = sl_fs_mono_us();
        assert_int_equal(
            sl_ops_wait_durable(f->b, "spin", 0, next, on_durable, &a, &h),
            SL_OK);
        if (sl_flusher_sync_avg_us(fl) > avg)
            avg = sl_flusher_sync_avg_us(fl);
        atomic_store(&sync_gate, 1);
        assert_non_null(h);
        /* poll the loop without blocking until the answer, for 10 s (2 s
         * once the polling may have given up) */
        while (w.n == answered) {
            int unfinished;
            assert_int_equal(sl_ops_visible_offset(f->b, "spin", 0, &vis),
                             SL_OK);
            unfinished = vis < next || sl_flusher_rounds(fl) == r0;
            event_base_loop(sl_broker_base(f->b), EVLOOP_NONBLOCK);
            now = sl_fs_mono_us();
            if (unfinished && now - t0 >= SPIN_US)
                late = 1;
            if (now - t0 >= (late ? 2000000 : 10000000))
                break;
        }
        if (w.n == answered && (late || avg > SPIN_US)) {
            sl_ops_wait_cancel(h); /* the polling gave up: try again */
            continue;
        }
        assert_int_equal(w.n, answered + 1);
        assert_int_equal(w.errs[answered], SL_OK);
        answered++;
    }
    assert_int_equal(answered, 5);
    atomic_store(&sync_gate, 1);
    sl_fs = saved;
}

/* flush-inline-us (ops.c, request_durable): one append and its lone waiter are
 * synced by the loop itself (no flusher thread round), and answered only
 * once durable; a batch of two appends goes to the flusher thread. The
 * loop's round waits for the loop to be idle, at most SL_KICK_GUARD_US
 * (then it is the thread's): on a loaded machine some of the lone rounds
 * may be the thread's, so it appends until 5 were inline (at most 400
 * appends). */
static waits inl_w;
static int64_t inl_durable_at_answer[32];
static sl_broker *inl_b;
static void on_durable_inline(void *arg, sl_err err)
{
    wait_arg *a = arg;
    int64_t vis = -1;
    assert_int_equal(sl_ops_visible_offset(inl_b, "inl", 0, &vis), SL_OK);
    inl_durable_at_answer[inl_w.n] = vis;
    on_durable(a, err);
}

static void test_lone_waiter_inline(void **state)
{
    fixture *f = *state;
    sl_flusher *fl = sl_broker_flusher(f->b);
    static wait_arg a;
    sl_ops_wait *h = NULL;
    uint64_t inl0, thr0;
    const int N = 20, TRIES = 400;
    int64_t next[32];

    memset(&inl_w, 0, sizeof(inl_w));
    inl_b = f->b;
    a.w = &inl_w;
    a.id = 1;
    append(f->b, "inl", 0, "first"); /* creates the topic */
    inl0 = sl_flusher_inline_rounds(fl);
    /* until N/4 rounds were inline (a loaded machine gives some to the
     * thread: how many is timing, so the test asks for a count, not a
     * share; TRIES bounds it) */
    for (int t = 0;
         t < TRIES && sl_flusher_inline_rounds(fl) - inl0 < (uint64_t)N / 4;
         t++) {
        int i = t % N;
        inl_w.n = 0;
        next[i] = append(f->b, "inl", 0, "v");
        assert_int_equal(sl_ops_wait_durable(f->b, "inl", 0, next[i],
                                             on_durable_inline, &a, &h),
                         SL_OK);
        if (!h)
            continue; /* a round of the thread's made it durable already */
        loop_until(f->b, &inl_w.n, 1);
        assert_int_equal(inl_w.errs[0], SL_OK);
        assert_true(inl_durable_at_answer[0] >= next[i]); /* on disk */
    }
    assert_true(sl_flusher_inline_rounds(fl) - inl0 >= (uint64_t)N / 4);

    /* two appends before the loop runs: the flusher thread's round */
    inl0 = sl_flusher_inline_rounds(fl);
    thr0 = sl_flusher_rounds(fl);
    inl_w.n = 0;
    append(f->b, "inl", 0, "a");
    next[0] = append(f->b, "inl", 0, "b");
    assert_int_equal(
        sl_ops_wait_durable(f->b, "inl", 0, next[0], on_durable_inline, &a, &h),
        SL_OK);
    if (h)
        loop_until(f->b, &inl_w.n, 1);
    assert_int_equal(sl_flusher_inline_rounds(fl), inl0);
    assert_true(sl_flusher_rounds(fl) > thr0);
}

static sl_fs_ops failing;
static int fail_datasync(int fd)
{
    errno = EIO;
    return -1;
}

static void test_fsync_failure_fails_waiter(void **state)
{
    fixture *f = *state;
    waits w = {{0}, {0}, 0};
    wait_arg a = {&w, 7};
    sl_ops_wait *h = NULL;
    const sl_fs_ops *saved = sl_fs;
    int64_t next;
    size_t len;
    uint8_t *batch;
    sl_err rc1, rc2;

    /* make "first" durable before the seam fails every fsync, so the
     * failure hits exactly the append below */
    next = append(f->b, "ff", 0, "first");
    assert_int_equal(
        sl_ops_wait_durable(f->b, "ff", 0, next, on_durable, &a, &h), SL_OK);
    if (h)
        loop_until(f->b, &w.n, 1);
    w.n = 0;
    failing = sl_fs_posix;
    failing.fdatasync = fail_datasync;
    failing.fsync = fail_datasync;
    sl_fs = &failing;
    batch = make_batch("doomed", &len);
    rc1 =
        sl_ops_append(f->b, "ff", 0, SL_OPS_NO_CREATE, batch, len, NULL, &next);
    free(batch);
    h = NULL;
    rc2 = rc1 == SL_OK
              ? sl_ops_wait_durable(f->b, "ff", 0, next, on_durable, &a, &h)
              : rc1;
    if (rc2 == SL_OK && h) {
        for (int i = 0; i < 100000 && w.n < 1; i++)
            event_base_loop(sl_broker_base(f->b), EVLOOP_ONCE);
    }
    sl_fs = saved; /* before any assertion can jump out */
    assert_int_equal(rc1, SL_OK);
    assert_int_equal(rc2, SL_OK);
    assert_non_null(h);
    assert_int_equal(w.n, 1);
    assert_int_equal(w.errs[0], SL_ERR_STORAGE);
    /* the partition refuses further appends */
    batch = make_batch("after", &len);
    assert_int_equal(
        sl_ops_append(f->b, "ff", 0, SL_OPS_NO_CREATE, batch, len, NULL, NULL),
        SL_ERR_STORAGE);
    free(batch);
}

typedef struct watch_state {
    int fired;
    int timed_out;
    sl_ops_watch *w;
} watch_state;

static void on_watch(void *arg, int timed_out)
{
    watch_state *s = arg;
    s->fired++;
    s->timed_out = timed_out;
    sl_ops_watch_free(s->w); /* allowed inside the callback */
    s->w = NULL;
}

static void test_watch_append_and_timeout(void **state)
{
    fixture *f = *state;
    watch_state s1 = {0, -1, NULL}, s2 = {0, -1, NULL};
    char err[128];

    assert_int_equal(
        sl_ops_topic_create(f->b, "w", 2, NULL, NULL, 0, err, sizeof(err)),
        SL_OK);
    assert_int_equal(sl_ops_watch_new(f->b, 60000, on_watch, &s1, &s1.w),
                     SL_OK);
    assert_int_equal(sl_ops_watch_add(s1.w, "w", 1), SL_OK);
    assert_int_equal(sl_ops_watch_add(s1.w, "w", 7), SL_ERR_UNKNOWN_PARTITION);
    assert_int_equal(sl_ops_watch_new(f->b, 5, on_watch, &s2, &s2.w), SL_OK);
    assert_int_equal(sl_ops_watch_add(s2.w, "w", 0), SL_OK);
    append(f->b, "w", 1, "x");
    loop_until(f->b, &s1.fired, 1);
    assert_int_equal(s1.timed_out, 0);
    loop_until(f->b, &s2.fired, 1);
    assert_int_equal(s2.timed_out, 1);
}

static void test_delete_topic_with_waiters_and_watches(void **state)
{
    fixture *f = *state;
    const char *k[] = {"flush", "flush-interval-ms"};
    const char *v[] = {"interval", "1h"};
    waits w = {{0}, {0}, 0};
    wait_arg a = {&w, 1};
    sl_ops_wait *h = NULL;
    watch_state s = {0, -1, NULL};
    int32_t n = 0;
    char err[128];
    int64_t next;

    assert_int_equal(
        sl_ops_topic_create(f->b, "del", 3, k, v, 2, err, sizeof(err)), SL_OK);
    assert_int_equal(
        sl_ops_topic_create(f->b, "del", 3, NULL, NULL, 0, err, sizeof(err)),
        SL_ERR_TOPIC_EXISTS);
    next = append(f->b, "del", 2, "x");
    assert_int_equal(
        sl_ops_wait_durable(f->b, "del", 2, next, on_durable, &a, &h), SL_OK);
    assert_non_null(h); /* interval of an hour: still pending */
    assert_int_equal(sl_ops_watch_new(f->b, -1, on_watch, &s, &s.w), SL_OK);
    assert_int_equal(sl_ops_watch_add(s.w, "del", 0), SL_OK);
    assert_int_equal(sl_ops_topic_delete(f->b, "del"), SL_OK);
    assert_int_equal(w.n, 1);
    assert_int_equal(w.errs[0], SL_ERR_UNKNOWN_TOPIC);
    assert_int_equal(sl_ops_topic_get(f->b, "del", SL_OPS_NO_CREATE, &n),
                     SL_ERR_UNKNOWN_TOPIC);
    sl_ops_watch_free(s.w);
    /* re-created empty */
    assert_int_equal(sl_ops_topic_get(f->b, "del", SL_OPS_CREATE, &n), SL_OK);
    assert_int_equal(n, 1);
    int64_t end = -1;
    assert_int_equal(sl_ops_list_offset(f->b, "del", 0, SL_OFFSET_LATEST, &end),
                     SL_OK);
    assert_int_equal(end, 0);
    assert_int_equal(sl_ops_topic_get(f->b, "bad name", SL_OPS_CREATE, &n),
                     SL_ERR_INVALID_TOPIC);
}

typedef struct stop_state {
    sl_broker *b;
    int hooked;
    int released;
} stop_state;

static void release_cb(evutil_socket_t fd, short what, void *arg)
{
    stop_state *s = arg;
    s->released = 1;
    sl_broker_release(s->b);
}

static void on_stop(void *arg)
{
    stop_state *s = arg;
    struct timeval tv = {0, 1000};
    s->hooked = 1;
    /* the module finishes its work a little later */
    event_base_once(sl_broker_base(s->b), -1, EV_TIMEOUT, release_cb, s, &tv);
}

static void test_stop_hooks_and_holds(void **state)
{
    fixture *f = *state;
    stop_state s = {f->b, 0, 0};
    char cmd[128];

    sl_broker_on_stop(f->b, on_stop, &s);
    sl_broker_hold(f->b);
    raise(SIGTERM);
    /* the loop runs until the hold is released, then shuts down */
    assert_int_equal(sl_server_run(f->b), 0);
    assert_int_equal(s.hooked, 1);
    assert_int_equal(s.released, 1);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults_and_parse),
        cmocka_unit_test(test_config_args_and_part_cfg),
        cmocka_unit_test(test_config_dump_quotes),
        cmocka_unit_test(test_topics_lazy_registry),
        cmocka_unit_test_setup_teardown(test_durable_waits_fifo, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fsync_failure_fails_waiter, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_watch_append_and_timeout, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_delete_topic_with_waiters_and_watches, setup, teardown),
        cmocka_unit_test_setup(test_stop_hooks_and_holds, setup),
        cmocka_unit_test_setup_teardown(test_lone_waiter_inline, setup_inline,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lone_waiter_spin, setup_spin,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
