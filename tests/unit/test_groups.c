/* Unit tests: queue-group state machine (every transition), persistence,
 * batched commits, stream groups. Real partitions in a temp dir, a fake
 * clock, no flusher thread (sl_groups_commit_now instead). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "groups/groups.h"
#include "groups/visible.h"

#define MAXP 4

typedef struct fx {
    char dir[256];
    char pdir[512];
    sl_part *parts[MAXP]; /* topic "t" */
    int32_t np;
    sl_part *dlq; /* topic "t.DLQ" */
    int64_t now;
    int64_t wake; /* earliest env.wake_at since the test reset it */
    sl_groups *g;
    sl_flusher *fl; /* when set, produce() asks it to cover each append */
} fx;

static fx F;

static sl_part *env_get_part(void *ctx, const char *topic, int32_t p)
{
    fx *f = ctx;
    if (!strcmp(topic, "t") && p >= 0 && p < f->np)
        return f->parts[p];
    if (!strcmp(topic, "t.DLQ") && p == 0)
        return f->dlq;
    return NULL;
}

static int32_t env_partitions(void *ctx, const char *topic)
{
    fx *f = ctx;
    if (!strcmp(topic, "t"))
        return f->np;
    if (!strcmp(topic, "t.DLQ"))
        return f->dlq ? 1 : -1;
    return -1;
}

static sl_err env_append(void *ctx, const char *topic, int32_t p,
                         uint8_t *batch, size_t len, int64_t *base,
                         sl_part **out)
{
    fx *f = ctx;
    sl_part_cfg cfg;
    char d[600];
    if (strcmp(topic, "t.DLQ") || p != 0)
        return SL_ERR_UNKNOWN_TOPIC;
    if (!f->dlq) {
        sl_part_cfg_defaults(&cfg);
        snprintf(d, sizeof(d), "%s/t.DLQ-0", f->dir);
        if (sl_part_open(d, &cfg, &f->dlq) != SL_OK)
            return SL_ERR_STORAGE;
    }
    *out = f->dlq;
    return sl_part_append(f->dlq, batch, len, f->now, base);
}

static int64_t env_now(void *ctx)
{
    return ((fx *)ctx)->now;
}

static void env_wake_at(void *ctx, int64_t at)
{
    fx *f = ctx;
    if (at < f->wake)
        f->wake = at;
}

static const sl_groups_env k_env = {
    &F,   env_get_part, env_partitions, env_append, env_now, NULL,
    NULL, env_wake_at,  NULL,           NULL,       NULL,    NULL};

static void open_parts(int np)
{
    sl_part_cfg cfg;
    sl_part_cfg_defaults(&cfg);
    F.np = np;
    for (int i = 0; i < np; i++) {
        snprintf(F.pdir, sizeof(F.pdir), "%s/t-%d", F.dir, i);
        assert_int_equal(sl_part_open(F.pdir, &cfg, &F.parts[i]), SL_OK);
    }
}

static int setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof(F));
    snprintf(F.dir, sizeof(F.dir), "/tmp/sl-test-groups-XXXXXX");
    assert_non_null(mkdtemp(F.dir));
    F.now = 1000000;
    open_parts(1);
    assert_int_equal(sl_groups_open(F.dir, &k_env, NULL, &F.g), SL_OK);
    return 0;
}

static void close_all(void)
{
    sl_groups_free(F.g);
    F.g = NULL;
    for (int i = 0; i < F.np; i++) {
        sl_part_free(F.parts[i]);
        F.parts[i] = NULL;
    }
    sl_part_free(F.dlq);
    F.dlq = NULL;
}

static int teardown(void **state)
{
    char cmd[300];
    (void)state;
    close_all();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", F.dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* Reopen groups (and partitions) from disk, as after a restart. */
static void reopen(void)
{
    int np = F.np;
    int had_dlq = F.dlq != NULL;
    close_all();
    open_parts(np);
    if (had_dlq) {
        sl_part_cfg cfg;
        char d[600];
        sl_part_cfg_defaults(&cfg);
        snprintf(d, sizeof(d), "%s/t.DLQ-0", F.dir);
        assert_int_equal(sl_part_open(d, &cfg, &F.dlq), SL_OK);
    }
    assert_int_equal(sl_groups_open(F.dir, &k_env, NULL, &F.g), SL_OK);
}

/* Append n records to partition p: key (may be NULL), value "v<i>",
 * optional one header. Syncs (durable) when sync. */
static void produce(int p, int n, const char *key, const char *hkey,
                    const char *hval, int sync)
{
    sl_batch_builder bb;
    const uint8_t *b;
    size_t len;
    int64_t base;
    sl_header h = {hkey, hkey ? strlen(hkey) : 0, hval,
                   hval ? strlen(hval) : 0};
    sl_bb_init(&bb, SL_CODEC_NONE);
    for (int i = 0; i < n; i++) {
        char v[32];
        snprintf(v, sizeof(v), "v%d", i);
        assert_int_equal(sl_bb_add(&bb, F.now, key, key ? strlen(key) : 0, v,
                                   strlen(v), hkey ? &h : NULL, hkey ? 1 : 0),
                         SL_OK);
    }
    assert_int_equal(sl_bb_finish(&bb, &b, &len), SL_OK);
    uint8_t *copy = malloc(len);
    memcpy(copy, b, len);
    assert_int_equal(sl_part_append(F.parts[p], copy, len, F.now, &base),
                     SL_OK);
    free(copy);
    sl_bb_fini(&bb);
    if (F.fl) /* as the broker does, before anyone hears of the append */
        sl_flusher_request(F.fl, F.parts[p]);
    if (sync) {
        assert_int_equal(sl_part_sync(F.parts[p]), SL_OK);
        sl_groups_on_flushed(F.g);
    }
    sl_groups_on_append(F.g, "t", p);
}

/* A consumer recording what it got. */
typedef struct rx {
    sl_qconsumer *c;
    int n;
    int32_t part[256];
    int64_t off[256];
    uint32_t att[256];
    uint32_t fail[256];
    char key[256][8];
    int flushes;
    int auto_ack;
} rx;

static void rx_deliver(void *arg, const sl_qdelivery *d)
{
    rx *r = arg;
    assert_true(r->n < 256);
    r->part[r->n] = d->partition;
    r->off[r->n] = d->offset;
    r->att[r->n] = d->attempts;
    r->fail[r->n] = d->failures;
    r->key[r->n][0] = 0;
    if (d->rec->key && d->rec->key_len < 8) {
        memcpy(r->key[r->n], d->rec->key, (size_t)d->rec->key_len);
        r->key[r->n][d->rec->key_len] = 0;
    }
    assert_int_equal(d->rec->offset, d->offset);
    r->n++;
    if (r->auto_ack)
        assert_int_equal(
            sl_qconsumer_ack(r->c, d->partition, d->offset, d->offset, NULL),
            SL_OK);
}

static void rx_flush(void *arg)
{
    ((rx *)arg)->flushes++;
}

static void rx_new(rx *r, const char *group, int64_t lock_ms)
{
    sl_qconsumer_cb cb = {rx_deliver, rx_flush, r};
    memset(r, 0, sizeof(*r));
    assert_int_equal(
        sl_qconsumer_new(F.g, group, "t", lock_ms, "test", &cb, &r->c), SL_OK);
}

static void declare(const char *group, const char *k1, const char *v1,
                    const char *k2, const char *v2)
{
    sl_qgroup_cfg cfg;
    char err[128];
    sl_qgroup_cfg_defaults(&cfg);
    if (k1)
        assert_int_equal(sl_qgroup_cfg_set(&cfg, k1, v1, err, sizeof(err)),
                         SL_OK);
    if (k2)
        assert_int_equal(sl_qgroup_cfg_set(&cfg, k2, v2, err, sizeof(err)),
                         SL_OK);
    assert_int_equal(sl_qgroup_declare(F.g, group, "t", &cfg), SL_OK);
}

static sl_gpart_info part_info(const char *group, int p)
{
    sl_group_info *info;
    sl_gpart_info r;
    assert_int_equal(sl_groups_describe(F.g, group, &info), SL_OK);
    assert_true((size_t)p < info->nparts);
    r = info->parts[p];
    sl_group_info_free(info);
    return r;
}

static int waited;
static sl_err waited_rc;
static void wait_cb(void *arg, sl_err rc)
{
    (void)arg;
    waited++;
    waited_rc = rc;
}

/* ---- tests ------------------------------------------------------------ */

static void test_acquire_ack_advances_start(void **state)
{
    rx a;
    (void)state;
    produce(0, 10, NULL, NULL, NULL, 1);
    rx_new(&a, "g", 0);
    sl_qconsumer_credit(a.c, 4);
    assert_int_equal(a.n, 4);
    assert_int_equal(a.flushes, 1);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(a.off[i], i);
        assert_int_equal(a.att[i], 1);
        assert_int_equal(a.fail[i], 0);
    }
    assert_int_equal(sl_qconsumer_held(a.c), 4);
    assert_int_equal(sl_qconsumer_credits(a.c), 0);
    /* Ack out of order: start moves only over the done prefix. */
    int64_t cnt = 0;
    assert_int_equal(sl_qconsumer_ack(a.c, 0, 1, 2, &cnt), SL_OK);
    assert_int_equal(cnt, 2);
    assert_int_equal(part_info("g", 0).start, 0);
    assert_int_equal(sl_qconsumer_ack(a.c, 0, 0, 0, NULL), SL_OK);
    assert_int_equal(part_info("g", 0).start, 3);
    /* Idempotent ack; ack of something not held. */
    assert_int_equal(sl_qconsumer_ack(a.c, 0, 0, 0, &cnt), SL_OK);
    assert_int_equal(cnt, 1);
    assert_int_equal(sl_qconsumer_ack(a.c, 0, 5, 5, &cnt), SL_ERR_NOT_ACQUIRED);
    assert_int_equal(sl_qconsumer_ack(a.c, 7, 0, 0, NULL),
                     SL_ERR_UNKNOWN_PARTITION);
    /* Durable only after the commit. */
    waited = 0;
    sl_groups_wait(F.g, wait_cb, NULL);
    assert_int_equal(waited, 0);
    assert_int_equal(sl_groups_commit_now(F.g), SL_OK);
    assert_int_equal(waited, 1);
    assert_int_equal(waited_rc, SL_OK);
    sl_qconsumer_free(a.c);
}

static void test_only_durable_records_delivered(void **state)
{
    rx a;
    (void)state;
    rx_new(&a, "g", 0);
    sl_qconsumer_credit(a.c, 10);
    produce(0, 3, NULL, NULL, NULL, 0);
    assert_int_equal(a.n, 0);
    assert_int_equal(sl_part_sync(F.parts[0]), SL_OK);
    sl_groups_on_flushed(F.g);
    assert_int_equal(a.n, 3);
    sl_qconsumer_free(a.c);
}

static void test_release_delay_and_counts(void **state)
{
    rx a, b;
    (void)state;
    produce(0, 2, NULL, NULL, NULL, 1);
    rx_new(&a, "g", 0);
    rx_new(&b, "g", 0);
    sl_qconsumer_credit(a.c, 1);
    assert_int_equal(a.n, 1);
    /* nack with an explicit delay: not available before it. */
    assert_int_equal(sl_qconsumer_release(a.c, 0, 0, 0, 500, 1, NULL), SL_OK);
    sl_qconsumer_credit(b.c, 5);
    assert_int_equal(b.n, 1); /* offset 1 only */
    assert_int_equal(b.off[0], 1);
    F.now += 499;
    sl_groups_tick(F.g);
    assert_int_equal(b.n, 1);
    F.now += 1;
    sl_groups_tick(F.g);
    assert_int_equal(b.n, 2);
    assert_int_equal(b.off[1], 0);
    assert_int_equal(b.att[1], 2);
    assert_int_equal(b.fail[1], 1);
    /* release without failure (e.g. consumer shutdown) keeps failures */
    assert_int_equal(sl_qconsumer_release(b.c, 0, 0, 0, 0, 0, NULL), SL_OK);
    assert_int_equal(b.n, 3); /* b still had credits: redelivered at once */
    assert_int_equal(b.att[2], 3);
    assert_int_equal(b.fail[2], 1);
    sl_qconsumer_free(a.c);
    sl_qconsumer_free(b.c);
}

static void test_backoff_policy(void **state)
{
    rx a;
    (void)state;
    declare("g", "backoff_initial_ms", "100", "backoff_max_ms", "250");
    produce(0, 1, NULL, NULL, NULL, 1);
    rx_new(&a, "g", 0);
    int64_t expect[] = {100, 200, 250, 250};
    for (int i = 0; i < 4; i++) {
        sl_qconsumer_credit(a.c, 1);
        assert_int_equal(a.n, i + 1);
        assert_int_equal(sl_qconsumer_release(a.c, 0, 0, 0, -1, 1, NULL),
                         SL_OK);
        F.now += expect[i] - 1;
        sl_groups_tick(F.g);
        assert_int_equal(a.n, i + 1); /* not yet */
        F.now += 1;
        sl_groups_tick(F.g);
    }
    sl_qconsumer_credit(a.c, 1);
    assert_int_equal(a.n, 5);
    assert_int_equal(a.fail[4], 4);
    sl_qconsumer_free(a.c);
}

/* The tick asks for the clock only when something comes due later: a
 * record that is due now but has no consumer with credit waits for credit
 * (which pumps by itself), not for a 1 ms tick; and a deadline that
 * appears between ticks, earlier than the one asked for, is reported
 * through env.wake_at. */
static void test_tick_deadlines(void **state)
{
    rx a;
    (void)state;
    produce(0, 3, NULL, NULL, NULL, 1);
    rx_new(&a, "g", 5000);
    sl_qconsumer_credit(a.c, 1);
    assert_int_equal(a.n, 1);
    /* offset 0 back, due now; a has no credit left */
    assert_int_equal(sl_qconsumer_release(a.c, 0, 0, 0, 0, 0, NULL), SL_OK);
    assert_int_equal(sl_qconsumer_credits(a.c), 0);
    assert_int_equal(sl_groups_tick(F.g), 1000); /* was 1 ms, forever */
    assert_int_equal(a.n, 1);
    /* credit alone delivers it, no tick needed */
    sl_qconsumer_credit(a.c, 1);
    assert_int_equal(a.n, 2);
    assert_int_equal(a.off[1], 0);
    /* a backoff due in 300 ms: earlier than the tick asked for (1 s) */
    F.wake = INT64_MAX;
    assert_int_equal(sl_qconsumer_release(a.c, 0, 0, 0, 300, 1, NULL), SL_OK);
    assert_int_equal(F.wake, F.now + 300);
    assert_int_equal(sl_groups_tick(F.g), 300);
    /* a lock of 200 ms taken between ticks */
    sl_qconsumer_free(a.c);
    rx_new(&a, "g", 200);
    F.wake = INT64_MAX;
    sl_qconsumer_credit(a.c, 1);
    assert_int_equal(a.n, 1);
    assert_int_equal(F.wake, F.now + 200);
    /* a later deadline than the one asked for is not reported */
    F.wake = INT64_MAX;
    sl_qconsumer_free(a.c);
    rx_new(&a, "g", 60000);
    sl_qconsumer_credit(a.c, 1);
    assert_int_equal(a.n, 1);
    assert_int_equal(F.wake, INT64_MAX);
    sl_qconsumer_free(a.c);
}

static void test_lock_expiry_and_touch(void **state)
{
    rx a, b;
    int64_t dl = 0;
    (void)state;
    produce(0, 2, NULL, NULL, NULL, 1);
    rx_new(&a, "g", 1000);
    rx_new(&b, "g", 0);
    sl_qconsumer_credit(a.c, 2);
    assert_int_equal(a.n, 2);
    F.now += 600;
    assert_int_equal(sl_qconsumer_touch(a.c, 0, 1, 1, 0, &dl, NULL), SL_OK);
    assert_int_equal(dl, F.now + 1000);
    F.now += 400; /* offset 0 expires, offset 1 was touched */
    sl_groups_tick(F.g);
    sl_qconsumer_credit(b.c, 5);
    assert_int_equal(b.n, 1);
    assert_int_equal(b.off[0], 0);
    assert_int_equal(b.att[0], 2);
    assert_int_equal(b.fail[0], 1); /* the expiry counted */
    assert_int_equal(sl_qconsumer_held(a.c), 1);
    /* The old holder's late ack fails; the new holder's works. */
    assert_int_equal(sl_qconsumer_ack(a.c, 0, 0, 0, NULL), SL_ERR_NOT_ACQUIRED);
    assert_int_equal(sl_qconsumer_ack(b.c, 0, 0, 0, NULL), SL_OK);
    assert_int_equal(sl_qconsumer_ack(a.c, 0, 1, 1, NULL), SL_OK);
    assert_int_equal(part_info("g", 0).start, 2);
    sl_groups_stats st;
    sl_groups_stats_get(F.g, &st);
    assert_int_equal(st.lock_expiries, 1);
    sl_qconsumer_free(a.c);
    sl_qconsumer_free(b.c);
}

/* Read the single DLQ record at offset off; check a header. */
static void dlq_expect(int64_t off, const char *k, const char *v)
{
    sl_part_iter *it;
    sl_record rec;
    sl_header h;
    assert_non_null(F.dlq);
    assert_int_equal(sl_part_iter_new(F.dlq, off, &it), SL_OK);
    assert_int_equal(sl_part_iter_next(it, &rec, NULL), 1);
    assert_int_equal(rec.offset, off);
    assert_int_equal(sl_record_header_find(&rec, k, &h), SL_OK);
    if (strlen(v) != h.value_len || memcmp(h.value, v, h.value_len)) {
        fail_msg("header %s = '%.*s', expected '%s'", k, (int)h.value_len,
                 (const char *)h.value, v);
    }
    sl_part_iter_free(it);
}

static void test_max_deliveries_dead_letters(void **state)
{
    rx a;
    char buf[32];
    (void)state;
    declare("g", "max_deliveries", "3", NULL, NULL);
    produce(0, 1, "k1", "h1", "x", 1);
    rx_new(&a, "g", 0);
    for (int i = 0; i < 3; i++) {
        sl_qconsumer_credit(a.c, 1);
        assert_int_equal(a.n, i + 1);
        F.now += 10;
        assert_int_equal(sl_qconsumer_release(a.c, 0, 0, 0, 0, 1, NULL), SL_OK);
    }
    sl_qconsumer_credit(a.c, 1);
    assert_int_equal(a.n, 3); /* never a 4th time */
    assert_non_null(F.dlq);
    assert_int_equal(sl_part_end_offset(F.dlq), 1);
    dlq_expect(0, "dlq.topic", "t");
    dlq_expect(0, "dlq.partition", "0");
    dlq_expect(0, "dlq.offset", "0");
    dlq_expect(0, "dlq.group", "g");
    dlq_expect(0, "dlq.attempts", "3");
    dlq_expect(0, "dlq.failures", "3");
    dlq_expect(0, "dlq.reason", "max_deliveries");
    snprintf(buf, sizeof(buf), "%lld", (long long)(1000000));
    dlq_expect(0, "dlq.first-delivery-ms", buf);
    snprintf(buf, sizeof(buf), "%lld", (long long)(1000000 + 20));
    dlq_expect(0, "dlq.last-delivery-ms", buf);
    dlq_expect(0, "h1", "x"); /* original headers kept */
    /* Not archived until the DLQ append is durable. */
    assert_int_equal(part_info("g", 0).start, 0);
    sl_groups_on_flushed(F.g);
    assert_int_equal(part_info("g", 0).start, 0);
    assert_int_equal(sl_part_sync(F.dlq), SL_OK);
    sl_groups_on_flushed(F.g);
    assert_int_equal(part_info("g", 0).start, 1);
    assert_int_equal(part_info("g", 0).archived, 1);
    sl_qconsumer_free(a.c);
}

static void test_reject_dead_letters(void **state)
{
    rx a;
    (void)state;
    produce(0, 2, NULL, NULL, NULL, 1);
    rx_new(&a, "g", 0);
    sl_qconsumer_credit(a.c, 2);
    assert_int_equal(sl_qconsumer_reject(a.c, 0, 1, 1, "bad json", NULL),
                     SL_OK);
    dlq_expect(0, "dlq.reason", "rejected");
    dlq_expect(0, "dlq.reason-text", "bad json");
    dlq_expect(0, "dlq.offset", "1");
    dlq_expect(0, "dlq.failures", "1");
    dlq_expect(0, "dlq.attempts", "1");
    assert_int_equal(sl_qconsumer_ack(a.c, 0, 0, 0, NULL), SL_OK);
    assert_int_equal(sl_part_sync(F.dlq), SL_OK);
    sl_groups_on_flushed(F.g);
    assert_int_equal(part_info("g", 0).start, 2);
    sl_qconsumer_free(a.c);
}

static void test_ttl_drop_and_dead_letter(void **state)
{
    rx a, b;
    (void)state;
    produce(0, 1, NULL, "ttl-ms", "100", 1);
    produce(0, 1, NULL, NULL, NULL, 1);
    F.now += 100;
    rx_new(&a, "g", 0);
    sl_qconsumer_credit(a.c, 5);
    assert_int_equal(a.n, 1); /* the expired one was skipped */
    assert_int_equal(a.off[0], 1);
    assert_int_equal(part_info("g", 0).archived, 1);
    assert_null(F.dlq); /* dropped, not dead-lettered by default */
    /* A group asking for it gets expired records in the DLQ, and the
     * group ttl applies to records without a header. */
    declare("g2", "dlq_expired", "true", "ttl_ms", "50");
    F.now += 10;
    rx_new(&b, "g2", 0);
    sl_qconsumer_credit(b.c, 5);
    assert_int_equal(b.n, 0);
    assert_int_equal(sl_part_end_offset(F.dlq), 2);
    dlq_expect(0, "dlq.reason", "expired");
    dlq_expect(1, "dlq.reason", "expired");
    dlq_expect(1, "dlq.attempts", "0");
    sl_qconsumer_free(a.c);
    sl_qconsumer_free(b.c);
}

static void test_delayed_delivery(void **state)
{
    rx a;
    char nb[32];
    (void)state;
    snprintf(nb, sizeof(nb), "%lld", (long long)(F.now + 300));
    produce(0, 1, NULL, "not-before", nb, 1);
    produce(0, 1, NULL, "delay-ms", "100", 1);
    produce(0, 1, NULL, NULL, NULL, 1);
    rx_new(&a, "g", 0);
    sl_qconsumer_credit(a.c, 5);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.off[0], 2);
    assert_int_equal(part_info("g", 0).delayed, 2);
    F.now += 100;
    sl_groups_tick(F.g);
    assert_int_equal(a.n, 2);
    assert_int_equal(a.off[1], 1);
    /* The due time survives a restart (the durable due-time index). */
    assert_int_equal(sl_groups_commit_now(F.g), SL_OK);
    sl_qconsumer *old = a.c;
    reopen();
    sl_qconsumer_free(old); /* an orphan now: just freed */
    rx_new(&a, "g", 0);
    sl_qconsumer_credit(a.c, 5);
    /* offsets 1 and 2 were acquired, not acked: available again now */
    assert_int_equal(a.n, 2);
    assert_int_equal(a.off[0], 1);
    assert_int_equal(a.att[0], 2);
    assert_int_equal(a.off[1], 2);
    F.now += 199;
    sl_groups_tick(F.g);
    assert_int_equal(a.n, 2);
    F.now += 1;
    sl_groups_tick(F.g);
    assert_int_equal(a.n, 3);
    assert_int_equal(a.off[2], 0);
    assert_int_equal(a.att[2], 1);
    sl_qconsumer_free(a.c);
}

static void test_key_ordered(void **state)
{
    rx a, b;
    (void)state;
    declare("g", "key_ordered", "1", NULL, NULL);
    produce(0, 1, "A", NULL, NULL, 1);  /* 0 */
    produce(0, 1, "A", NULL, NULL, 1);  /* 1 */
    produce(0, 1, "B", NULL, NULL, 1);  /* 2 */
    produce(0, 1, NULL, NULL, NULL, 1); /* 3: no key, unordered */
    produce(0, 1, "A", NULL, NULL, 1);  /* 4 */
    rx_new(&a, "g", 0);
    rx_new(&b, "g", 0);
    sl_qconsumer_credit(a.c, 1);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.off[0], 0);
    sl_qconsumer_credit(b.c, 10);
    assert_int_equal(b.n, 2); /* B@2 and null@3; A@1 waits for A@0 */
    assert_int_equal(b.off[0], 2);
    assert_int_equal(b.off[1], 3);
    /* nack A@0: it comes back before A@1 (order kept) */
    assert_int_equal(sl_qconsumer_release(a.c, 0, 0, 0, 0, 1, NULL), SL_OK);
    assert_int_equal(b.n, 3);
    assert_int_equal(b.off[2], 0);
    assert_int_equal(sl_qconsumer_ack(b.c, 0, 0, 0, NULL), SL_OK);
    assert_int_equal(b.n, 4);
    assert_int_equal(b.off[3], 1);
    assert_string_equal(b.key[3], "A");
    assert_int_equal(sl_qconsumer_ack(b.c, 0, 1, 1, NULL), SL_OK);
    assert_int_equal(b.n, 5);
    assert_int_equal(b.off[4], 4);
    sl_qconsumer_free(a.c);
    sl_qconsumer_free(b.c);
}

static int only_red(void *arg, const sl_record *rec)
{
    sl_header h;
    (void)arg;
    return sl_record_header_find(rec, "color", &h) == SL_OK &&
           h.value_len == 3 && memcmp(h.value, "red", 3) == 0;
}

/* A consumer's filter (a JMS selector on a queue): what it does not take
 * stays available, in order, for the others; new records go to whoever
 * takes them; a filter does not hold the others back. */
static void test_consumer_filter(void **state)
{
    rx a, b;
    (void)state;
    declare("g", NULL, NULL, NULL, NULL);
    produce(0, 1, NULL, "color", "blue", 1); /* 0 */
    produce(0, 1, NULL, "color", "red", 1);  /* 1 */
    produce(0, 1, NULL, "color", "blue", 1); /* 2 */
    produce(0, 1, NULL, NULL, NULL, 1);      /* 3 */
    produce(0, 1, NULL, "color", "red", 1);  /* 4 */
    rx_new(&a, "g", 0);
    sl_qconsumer_set_filter(a.c, only_red, NULL);
    sl_qconsumer_credit(a.c, 10);
    assert_int_equal(a.n, 2);
    assert_int_equal(a.off[0], 1);
    assert_int_equal(a.off[1], 4);
    rx_new(&b, "g", 0);
    sl_qconsumer_credit(b.c, 10);
    assert_int_equal(b.n, 3);
    assert_int_equal(b.off[0], 0);
    assert_int_equal(b.off[1], 2);
    assert_int_equal(b.off[2], 3);
    produce(0, 1, NULL, "color", "red", 1);  /* 5 */
    produce(0, 1, NULL, "color", "blue", 1); /* 6 */
    assert_int_equal(a.n, 3);
    assert_int_equal(a.off[2], 5);
    assert_int_equal(b.n, 4);
    assert_int_equal(b.off[3], 6);
    /* released by b, a record a's filter refuses goes back to b only */
    assert_int_equal(sl_qconsumer_release(b.c, 0, 6, 6, 0, 1, NULL), SL_OK);
    assert_int_equal(a.n, 3);
    assert_int_equal(b.n, 5);
    assert_int_equal(b.off[4], 6);
    sl_qconsumer_free(a.c);
    sl_qconsumer_free(b.c);
}

/* max_priority: what is available goes out highest priority first, by
 * offset within one; absent = 4; above the maximum = the maximum; a record
 * arriving later with a higher priority overtakes the ones waiting; a nack
 * puts a record back in its place by priority. */
static void test_priority(void **state)
{
    rx a;
    (void)state;
    declare("g", "max_priority", "9", NULL, NULL);
    produce(0, 1, NULL, "priority", "1", 1);  /* 0 */
    produce(0, 1, NULL, "priority", "5", 1);  /* 1 */
    produce(0, 1, NULL, "priority", "9", 1);  /* 2 */
    produce(0, 1, NULL, NULL, NULL, 1);       /* 3: absent = 4 */
    produce(0, 1, NULL, "priority", "50", 1); /* 4: = 9 */
    produce(0, 1, NULL, "priority", "x", 1);  /* 5: not a number = 4 */
    rx_new(&a, "g", 0);
    sl_qconsumer_credit(a.c, 2);
    assert_int_equal(a.n, 2);
    assert_int_equal(a.off[0], 2);
    assert_int_equal(a.off[1], 4);
    produce(0, 1, NULL, "priority", "7", 1); /* 6 */
    assert_int_equal(sl_qconsumer_release(a.c, 0, 4, 4, 0, 1, NULL), SL_OK);
    sl_qconsumer_credit(a.c, 10);
    int64_t want[] = {2, 4, 4, 6, 1, 3, 5, 0};
    assert_int_equal(a.n, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(a.off[i], want[i]);
    assert_int_equal(a.att[2], 2); /* the nacked one again */
    sl_qconsumer_free(a.c);
}

/* Without max_priority the header changes nothing: log order. */
static void test_priority_off_is_log_order(void **state)
{
    rx a;
    (void)state;
    declare("g", NULL, NULL, NULL, NULL);
    produce(0, 1, NULL, "priority", "1", 1);
    produce(0, 1, NULL, "priority", "9", 1);
    rx_new(&a, "g", 0);
    sl_qconsumer_credit(a.c, 10);
    assert_int_equal(a.n, 2);
    assert_int_equal(a.off[0], 0);
    assert_int_equal(a.off[1], 1);
    sl_qconsumer_free(a.c);
}

/* Priority and key order: a record waits behind a pending one of its key
 * whatever its priority; keys apart, the higher priority goes first. After
 * a restart the priorities are read again from the records. */
static void test_priority_with_keys_and_restart(void **state)
{
    rx a, b;
    sl_qgroup_cfg cfg;
    char err[128];
    (void)state;
    sl_qgroup_cfg_defaults(&cfg);
    assert_int_equal(
        sl_qgroup_cfg_set(&cfg, "max-priority", "9", err, sizeof(err)), SL_OK);
    assert_int_equal(
        sl_qgroup_cfg_set(&cfg, "key_ordered", "1", err, sizeof(err)), SL_OK);
    assert_int_equal(sl_qgroup_declare(F.g, "g", "t", &cfg), SL_OK);
    produce(0, 1, "A", "priority", "1", 1);  /* 0 */
    produce(0, 1, "A", "priority", "9", 1);  /* 1: behind A@0 */
    produce(0, 1, "B", "priority", "5", 1);  /* 2 */
    produce(0, 1, NULL, "priority", "8", 1); /* 3 */
    rx_new(&a, "g", 0);
    sl_qconsumer_credit(a.c, 10);
    assert_int_equal(a.n, 3);
    assert_int_equal(a.off[0], 3);
    assert_int_equal(a.off[1], 2);
    assert_int_equal(a.off[2], 0);
    assert_int_equal(sl_groups_commit_now(F.g), SL_OK);
    sl_qconsumer_free(a.c);
    reopen();
    assert_int_equal(sl_qgroup_get_cfg(F.g, "g", "t", &cfg), SL_OK);
    assert_int_equal(cfg.max_priority, 9); /* stored */
    rx_new(&b, "g", 0);
    sl_qconsumer_credit(b.c, 2);
    assert_int_equal(b.n, 2);
    assert_int_equal(b.off[0], 3); /* 8 */
    assert_int_equal(b.off[1], 2); /* 5; A@1 still behind A@0 */
    sl_qconsumer_free(b.c);
}

/* Many distinct keys in one delivery pass (the key set grows past its
 * first size), then a key still held blocks a later record of that key
 * while keyless records flow. */
static void test_key_ordered_many_keys(void **state)
{
    rx a;
    char k[16];
    (void)state;
    declare("g", "key_ordered", "1", NULL, NULL);
    for (int i = 0; i < 200; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        produce(0, 1, k, NULL, NULL, i == 199); /* 0..199 */
    }
    rx_new(&a, "g", 0);
    sl_qconsumer_credit(a.c, 1000);
    assert_int_equal(a.n, 200);
    for (int i = 0; i < 200; i++)
        assert_int_equal(a.off[i], i);
    produce(0, 1, "k7", NULL, NULL, 0); /* 200: waits for k7@7 */
    produce(0, 1, NULL, NULL, NULL, 1); /* 201: no key */
    assert_int_equal(a.n, 201);
    assert_int_equal(a.off[200], 201);
    assert_int_equal(sl_qconsumer_ack(a.c, 0, 7, 7, NULL), SL_OK);
    assert_int_equal(a.n, 202);
    assert_int_equal(a.off[201], 200);
    assert_string_equal(a.key[201], "k7");
    sl_qconsumer_free(a.c);
}

/* After a restart the keys of pending records are unknown until re-read;
 * order per key still holds, also for records that arrive afterwards. */
static void test_key_ordered_after_restart(void **state)
{
    rx a, b;
    (void)state;
    declare("g", "key_ordered", "1", NULL, NULL);
    produce(0, 1, "A", NULL, NULL, 0); /* 0 */
    produce(0, 1, "A", NULL, NULL, 0); /* 1 */
    produce(0, 1, "B", NULL, NULL, 1); /* 2 */
    rx_new(&a, "g", 0);
    sl_qconsumer_credit(a.c, 10);
    assert_int_equal(a.n, 2); /* A@0, B@2 */
    assert_int_equal(sl_groups_commit_now(F.g), SL_OK);
    sl_qconsumer_free(a.c);
    reopen();
    rx_new(&b, "g", 0);
    sl_qconsumer_credit(b.c, 1);
    assert_int_equal(b.n, 1);
    assert_int_equal(b.off[0], 0);
    produce(0, 1, "A", NULL, NULL, 1); /* 3: behind A@0 and A@1 */
    sl_qconsumer_credit(b.c, 10);
    assert_int_equal(b.n, 2);
    assert_int_equal(b.off[1], 2);
    assert_int_equal(b.att[1], 2); /* delivered before the restart too */
    assert_int_equal(sl_qconsumer_ack(b.c, 0, 0, 0, NULL), SL_OK);
    assert_int_equal(b.n, 3);
    assert_int_equal(b.off[2], 1);
    assert_int_equal(sl_qconsumer_ack(b.c, 0, 1, 1, NULL), SL_OK);
    assert_int_equal(b.n, 4);
    assert_int_equal(b.off[3], 3);
    sl_qconsumer_free(b.c);
}

static void test_window_bound(void **state)
{
    rx a;
    (void)state;
    /* max_delayed 0: the span itself is capped at max_inflight */
    declare("g", "max_inflight", "4", "max_delayed", "0");
    produce(0, 10, NULL, NULL, NULL, 1);
    rx_new(&a, "g", 0);
    sl_qconsumer_credit(a.c, 100);
    assert_int_equal(a.n, 4);
    assert_int_equal(part_info("g", 0).cursor, 4);
    assert_int_equal(sl_qconsumer_ack(a.c, 0, 1, 3, NULL), SL_OK);
    assert_int_equal(a.n, 4); /* offset 0 still holds the window */
    assert_int_equal(sl_qconsumer_ack(a.c, 0, 0, 0, NULL), SL_OK);
    assert_int_equal(a.n, 8);
    sl_qconsumer_free(a.c);
}

/* In-flight records are bounded by max_inflight; done records behind a
 * slow head and records waiting for their not-before time only by the
 * span cap (max_inflight + max_delayed). */
static void test_window_inflight_vs_span(void **state)
{
    rx a;
    char nb[32];
    (void)state;
    declare("g", "max_inflight", "4", "max_delayed", "20");
    snprintf(nb, sizeof(nb), "%lld", (long long)(F.now + 100000));
    produce(0, 10, NULL, "not-before", nb, 1); /* 0-9 delayed */
    produce(0, 20, NULL, NULL, NULL, 1);       /* 10-29 */
    rx_new(&a, "g", 10000000);                 /* locks outlive the test */
    sl_qconsumer_credit(a.c, 100);
    /* the delayed records do not block: 4 in flight */
    assert_int_equal(a.n, 4);
    assert_int_equal(a.off[0], 10);
    assert_int_equal(part_info("g", 0).delayed, 10);
    /* acked records behind the delayed head free in-flight slots */
    assert_int_equal(sl_qconsumer_ack(a.c, 0, 10, 13, NULL), SL_OK);
    assert_int_equal(a.n, 8);
    assert_int_equal(sl_qconsumer_ack(a.c, 0, 14, 17, NULL), SL_OK);
    assert_int_equal(a.n, 12);
    assert_int_equal(sl_qconsumer_ack(a.c, 0, 18, 21, NULL), SL_OK);
    /* the span cap: cursor - start <= 4 + 20 = 24 */
    assert_int_equal(a.n, 14);
    assert_int_equal(part_info("g", 0).cursor, 24);
    assert_int_equal(part_info("g", 0).start, 0);
    /* once due, the delayed ones go out first (lowest offsets) */
    F.now += 100000;
    sl_groups_tick(F.g);
    assert_int_equal(a.n, 16); /* 22, 23 held + 2 more = 4 in flight */
    assert_int_equal(a.off[14], 0);
    assert_int_equal(a.off[15], 1);
    sl_qconsumer_free(a.c);
}

/* The ring grows with the window (64 -> 1024 entries) and keeps states. */
/* start=latest on a log here that is a copy behind its leader's
 * (broker/observer.c, env.latest): while env.latest does not know where
 * the group starts, nothing is handed out; then it starts where
 * env.latest says, not at the end of the copy when the group was made. */
static int64_t g_latest = -1;
static int64_t env_latest(void *ctx, const char *topic, int32_t p,
                          int64_t since_ms)
{
    (void)ctx;
    (void)topic;
    (void)p;
    assert_int_equal(since_ms, 1000000); /* the group's creation (F.now) */
    return g_latest;
}

static void test_latest_waits_for_env_latest(void **state)
{
    sl_groups_env env = k_env;
    rx a;
    (void)state;
    sl_groups_free(F.g);
    env.latest = env_latest;
    assert_int_equal(sl_groups_open(F.dir, &env, NULL, &F.g), SL_OK);
    produce(0, 3, NULL, NULL, NULL, 1); /* the copy: 0..2 */
    g_latest = -1;
    declare("g", "start", "latest", NULL, NULL);
    rx_new(&a, "g", 0);
    sl_qconsumer_credit(a.c, 10);
    F.now += 1000;
    produce(0, 4, NULL, NULL, NULL, 1); /* 3..6 */
    assert_int_equal(a.n, 0);
    assert_int_equal(sl_groups_commit_now(F.g), SL_OK);
    g_latest = 5; /* the leader's end when the group was created */
    produce(0, 1, NULL, NULL, NULL, 1); /* 7 */
    assert_int_equal(a.n, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(a.off[i], 5 + i);
    sl_qconsumer_free(a.c);
    g_latest = -1;
}

static void test_window_grows(void **state)
{
    rx a;
    (void)state;
    declare("g", "max_inflight", "1000", NULL, NULL);
    produce(0, 250, NULL, NULL, NULL, 1);
    produce(0, 250, NULL, NULL, NULL, 1);
    produce(0, 250, NULL, NULL, NULL, 1);
    rx_new(&a, "g", 0);
    sl_qconsumer_credit(a.c, 200);
    assert_int_equal(a.n, 200);
    /* ack every other one, then the rest after more deliveries */
    for (int64_t o = 1; o < 200; o += 2)
        assert_int_equal(sl_qconsumer_ack(a.c, 0, o, o, NULL), SL_OK);
    a.n = 0;
    sl_qconsumer_credit(a.c, 56); /* window now 256 wide */
    assert_int_equal(a.n, 56);
    assert_int_equal(a.off[0], 200);
    for (int64_t o = 0; o < 200; o += 2)
        assert_int_equal(sl_qconsumer_ack(a.c, 0, o, o, NULL), SL_OK);
    assert_int_equal(part_info("g", 0).start, 200);
    assert_int_equal(sl_qconsumer_ack(a.c, 0, 200, 255, NULL), SL_OK);
    assert_int_equal(part_info("g", 0).start, 256);
    sl_qconsumer_free(a.c);
}

static void test_consumer_free_releases(void **state)
{
    rx a, b;
    (void)state;
    produce(0, 3, NULL, NULL, NULL, 1);
    rx_new(&a, "g", 0);
    rx_new(&b, "g", 0);
    sl_qconsumer_credit(a.c, 3);
    sl_qconsumer_credit(b.c, 3);
    assert_int_equal(b.n, 0);
    sl_qconsumer_free(a.c);
    assert_int_equal(b.n, 3);
    assert_int_equal(b.att[0], 2);
    assert_int_equal(b.fail[0], 0);
    sl_qconsumer_free(b.c);
}

static void test_competing_consumers_exactly_once(void **state)
{
    rx r[4];
    int seen[200] = {0};
    (void)state;
    produce(0, 200, NULL, NULL, NULL, 1);
    for (int i = 0; i < 4; i++) {
        rx_new(&r[i], "g", 0);
        r[i].auto_ack = 1;
    }
    for (int round = 0; round < 20; round++)
        for (int i = 0; i < 4; i++)
            sl_qconsumer_credit(r[i].c, 3);
    int total = 0;
    for (int i = 0; i < 4; i++) {
        assert_true(r[i].n > 0);
        for (int k = 0; k < r[i].n; k++)
            seen[r[i].off[k]]++;
        total += r[i].n;
    }
    assert_int_equal(total, 200);
    for (int k = 0; k < 200; k++)
        assert_int_equal(seen[k], 1);
    assert_int_equal(part_info("g", 0).start, 200);
    for (int i = 0; i < 4; i++)
        sl_qconsumer_free(r[i].c);
}

static void test_persistence_rules(void **state)
{
    rx a;
    (void)state;
    declare("g", "max_deliveries", "5", NULL, NULL);
    produce(0, 6, NULL, NULL, NULL, 1);
    rx_new(&a, "g", 0);
    sl_qconsumer_credit(a.c, 6);
    assert_int_equal(a.n, 6);
    assert_int_equal(sl_qconsumer_ack(a.c, 0, 0, 1, NULL), SL_OK); /* done */
    assert_int_equal(sl_qconsumer_ack(a.c, 0, 3, 3, NULL), SL_OK);
    assert_int_equal(sl_qconsumer_release(a.c, 0, 4, 4, 0, 1, NULL), SL_OK);
    /* 2 and 5 held, 4 released (attempts 1, failures 1); 4 redelivered
     * at once to a (credits left? no: 6 used) */
    assert_int_equal(sl_groups_commit_now(F.g), SL_OK);
    /* An ack after the last commit is not durable: lost in the crash. */
    assert_int_equal(sl_qconsumer_ack(a.c, 0, 5, 5, NULL), SL_OK);
    sl_qconsumer *old = a.c;
    reopen(); /* "crash": the last ack never committed */
    assert_int_equal(sl_qconsumer_ack(old, 0, 2, 2, NULL),
                     SL_ERR_UNKNOWN_GROUP); /* orphaned */
    sl_qconsumer_free(old);
    assert_int_equal(part_info("g", 0).start, 2);
    rx_new(&a, "g", 0);
    sl_qconsumer_credit(a.c, 10);
    assert_int_equal(a.n, 3);
    assert_int_equal(a.off[0], 2);
    assert_int_equal(a.att[0], 2);
    assert_int_equal(a.fail[0], 0);
    assert_int_equal(a.off[1], 4);
    assert_int_equal(a.att[1], 2);
    assert_int_equal(a.fail[1], 1);
    assert_int_equal(a.off[2], 5);
    assert_int_equal(a.att[2], 2);
    /* config survived too */
    sl_group_info *info;
    assert_int_equal(sl_groups_describe(F.g, "g", &info), SL_OK);
    assert_int_equal(info->cfg.max_deliveries, 5);
    assert_string_equal(info->dlq_topic, "t.DLQ");
    sl_group_info_free(info);
    sl_qconsumer_free(a.c);
}

static void test_dlq_crash_redoes_append(void **state)
{
    rx a;
    (void)state;
    produce(0, 1, NULL, NULL, NULL, 1);
    rx_new(&a, "g", 0);
    sl_qconsumer_credit(a.c, 1);
    assert_int_equal(sl_qconsumer_reject(a.c, 0, 0, 0, NULL, NULL), SL_OK);
    assert_int_equal(sl_groups_commit_now(F.g), SL_OK); /* state DLQ */
    /* crash before the DLQ append was durable (and before archive) */
    sl_qconsumer *old = a.c;
    reopen();
    sl_qconsumer_free(old);
    sl_groups_tick(F.g); /* redoes the dead-letter */
    assert_non_null(F.dlq);
    assert_true(sl_part_end_offset(F.dlq) >= 1);
    dlq_expect(sl_part_end_offset(F.dlq) - 1, "dlq.reason", "rejected");
    assert_int_equal(sl_part_sync(F.dlq), SL_OK);
    sl_groups_on_flushed(F.g);
    assert_int_equal(part_info("g", 0).start, 1);
    assert_int_equal(sl_groups_commit_now(F.g), SL_OK);
    reopen();
    int64_t end = sl_part_end_offset(F.dlq);
    sl_groups_tick(F.g);
    assert_int_equal(sl_part_end_offset(F.dlq), end); /* not again */
    assert_int_equal(part_info("g", 0).start, 1);
}

static void test_commits_are_batched(void **state)
{
    rx a;
    sl_groups_stats st0, st;
    (void)state;
    produce(0, 100, NULL, NULL, NULL, 1);
    rx_new(&a, "g", 0);
    a.auto_ack = 1;
    sl_groups_stats_get(F.g, &st0);
    sl_qconsumer_credit(a.c, 100);
    assert_int_equal(a.n, 100);
    assert_int_equal(sl_groups_commit_now(F.g), SL_OK);
    sl_groups_stats_get(F.g, &st);
    assert_int_equal(st.acks - st0.acks, 100);
    assert_true(st.txns - st0.txns <= 2);
    sl_qconsumer_free(a.c);
}

static void test_cfg_errors_name_input(void **state)
{
    sl_qgroup_cfg cfg;
    char err[128];
    (void)state;
    sl_qgroup_cfg_defaults(&cfg);
    assert_int_equal(cfg.max_deliveries, 10);
    assert_int_equal(cfg.lock_ms, 30000);
    assert_int_equal(
        sl_qgroup_cfg_set(&cfg, "max_deliveries", "0", err, sizeof(err)),
        SL_ERR_INVALID_CONFIG);
    assert_non_null(strstr(err, "max_deliveries"));
    assert_int_equal(sl_qgroup_cfg_set(&cfg, "bogus", "1", err, sizeof(err)),
                     SL_ERR_INVALID_CONFIG);
    assert_non_null(strstr(err, "bogus"));
    assert_int_equal(sl_qgroup_declare(F.g, "g", "nope", NULL),
                     SL_ERR_UNKNOWN_TOPIC);
}

static void test_multi_partition(void **state)
{
    rx a;
    (void)state;
    close_all();
    open_parts(3);
    assert_int_equal(sl_groups_open(F.dir, &k_env, NULL, &F.g), SL_OK);
    for (int p = 0; p < 3; p++)
        produce(p, 2, NULL, NULL, NULL, 1);
    rx_new(&a, "g", 0);
    a.auto_ack = 1;
    sl_qconsumer_credit(a.c, 100);
    assert_int_equal(a.n, 6);
    int perp[3] = {0};
    for (int i = 0; i < 6; i++)
        perp[a.part[i]]++;
    for (int p = 0; p < 3; p++)
        assert_int_equal(perp[p], 2);
    sl_qconsumer_free(a.c);
}

/* ---- stream groups ---------------------------------------------------- */

/* Rejoin member *m of group "s" under its id. */
static void rejoin(char **m, int32_t *gen, sl_gtp **as, size_t *n)
{
    const char *topics[] = {"t"};
    char *nm;
    assert_int_equal(
        sl_sgroup_join(F.g, "s", *m, "c1", topics, 1, 1000, &nm, gen, as, n),
        SL_OK);
    assert_string_equal(nm, *m);
    free(*m);
    *m = nm;
}

static void test_stream_group_assignment_and_fencing(void **state)
{
    const char *topics[] = {"t"};
    char *m1, *m2;
    int32_t gen1, gen2;
    sl_gtp *as1, *as2;
    size_t n1, n2;
    (void)state;
    close_all();
    open_parts(3);
    assert_int_equal(sl_groups_open(F.dir, &k_env, NULL, &F.g), SL_OK);
    assert_int_equal(sl_sgroup_join(F.g, "s", NULL, "c1", topics, 1, 1000, &m1,
                                    &gen1, &as1, &n1),
                     SL_OK);
    assert_int_equal(n1, 3);
    assert_int_equal(sl_sgroup_join(F.g, "s", NULL, "c2", topics, 1, 1000, &m2,
                                    &gen2, &as2, &n2),
                     SL_OK);
    assert_true(gen2 > gen1);
    assert_int_equal(sl_sgroup_heartbeat(F.g, "s", m1, gen1), SL_ERR_REBALANCE);
    /* A stale commit is fenced. */
    assert_int_equal(sl_sgroup_commit(F.g, "s", m1, gen1, "t", 0, 5),
                     SL_ERR_REBALANCE);
    free(as1);
    rejoin(&m1, &gen1, &as1, &n1);
    assert_int_equal(gen1, gen2); /* no new rebalance: already assigned */
    assert_int_equal(n1 + n2, 3);
    assert_int_equal(sl_sgroup_heartbeat(F.g, "s", m1, gen1), SL_OK);
    assert_int_equal(sl_sgroup_commit(F.g, "s", m1, gen1, as1[0].topic,
                                      as1[0].partition, 42),
                     SL_OK);
    assert_int_equal(sl_sgroup_committed(F.g, "s", "t", as1[0].partition), 42);
    /* Standalone commit (no membership). */
    assert_int_equal(sl_sgroup_commit(F.g, "solo", NULL, -1, "t", 2, 7), SL_OK);
    int32_t p0 = as1[0].partition;
    /* Session timeout removes m2: m1 gets everything after rejoin. */
    F.now += 600;
    assert_int_equal(sl_sgroup_heartbeat(F.g, "s", m1, gen1), SL_OK);
    F.now += 401;
    sl_groups_tick(F.g);
    assert_int_equal(sl_sgroup_heartbeat(F.g, "s", m1, gen1), SL_ERR_REBALANCE);
    assert_int_equal(sl_sgroup_heartbeat(F.g, "s", m2, gen2),
                     SL_ERR_UNKNOWN_MEMBER);
    free(as1);
    rejoin(&m1, &gen1, &as1, &n1);
    assert_int_equal(n1, 3);
    sl_group_info *info;
    assert_int_equal(sl_groups_describe(F.g, "s", &info), SL_OK);
    assert_int_equal(info->kind, 0);
    assert_int_equal(info->nmembers, 1);
    assert_int_equal(info->members[0].nassign, 3);
    sl_group_info_free(info);
    assert_int_equal(sl_sgroup_leave(F.g, "s", m1), SL_OK);
    free(m1);
    free(m2);
    free(as1);
    free(as2);
    /* Offsets persist. */
    assert_int_equal(sl_groups_commit_now(F.g), SL_OK);
    reopen();
    assert_int_equal(sl_sgroup_committed(F.g, "s", "t", p0), 42);
    assert_int_equal(sl_sgroup_committed(F.g, "solo", "t", 2), 7);
    assert_int_equal(sl_sgroup_committed(F.g, "none", "t", 2), -1);
    char **names;
    int *kinds;
    size_t n;
    assert_int_equal(sl_groups_list(F.g, &names, &kinds, &n), SL_OK);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(kinds);
}

/* Every staged buffer, as env.replicate hands it to the state log. */
static sl_wb g_repl;

static void env_replicate(void *ctx, const uint8_t *ops, size_t len,
                          uint64_t seq)
{
    (void)ctx;
    (void)seq;
    sl_wb_put(&g_repl, ops, len);
}

static const sl_groups_env k_env_repl = {.ctx = &F,
                                         .get_part = env_get_part,
                                         .partitions = env_partitions,
                                         .append = env_append,
                                         .now_ms = env_now,
                                         .wake_at = env_wake_at,
                                         .replicate = env_replicate};

static int mine_all(void *arg, const char *group)
{
    (void)arg;
    (void)group;
    return 1;
}

/* A stream group's generation and members are state ops (issue 14): a
 * node rebuilding from the state log (a new coordinator) knows them, so
 * a commit from a member of the current generation is accepted there,
 * a stale generation is still fenced, and a member joining again with
 * the same topics is not a rebalance. */
static void test_stream_members_replicated(void **state)
{
    const char *topics[] = {"t"};
    char *m1, *m2, *m3;
    int32_t gen1, gen2, gen3;
    sl_gtp *as1, *as2, *as3;
    size_t n1, n2, n3, off = 0;
    sl_gop op;
    int nm = 0;
    (void)state;
    close_all();
    open_parts(3);
    sl_wb_init(&g_repl, 256);
    assert_int_equal(sl_groups_open(F.dir, &k_env_repl, NULL, &F.g), SL_OK);
    assert_int_equal(sl_sgroup_join(F.g, "s", NULL, "c1", topics, 1, 1000, &m1,
                                    &gen1, &as1, &n1),
                     SL_OK);
    assert_int_equal(sl_sgroup_join(F.g, "s", NULL, "c2", topics, 1, 1000, &m2,
                                    &gen2, &as2, &n2),
                     SL_OK);
    free(as1);
    rejoin(&m1, &gen1, &as1, &n1);
    assert_int_equal(gen1, gen2);
    assert_int_equal(n1 + n2, 3);
    assert_int_equal(sl_sgroup_commit(F.g, "s", m1, gen1, as1[0].topic,
                                      as1[0].partition, 11),
                     SL_OK);
    assert_int_equal(sl_groups_commit_now(F.g), SL_OK);
    while (sl_groups_ops_next(g_repl.p, g_repl.len, &off, &op) == 1)
        nm += op.kind == 'm';
    assert_int_equal(off, g_repl.len);
    assert_int_equal(nm, 1); /* one round: the membership after both joins */
    /* a new coordinator: its rows of the group replaced by the state
     * log's, its members from the log alone */
    sl_groups_free(F.g);
    F.g = NULL;
    assert_int_equal(sl_groups_open(F.dir, &k_env, NULL, &F.g), SL_OK);
    assert_int_equal(
        sl_groups_reload(F.g, mine_all, NULL, g_repl.p, g_repl.len), SL_OK);
    assert_int_equal(
        sl_sgroup_committed(F.g, "s", as1[0].topic, as1[0].partition), 11);
    assert_int_equal(sl_sgroup_heartbeat(F.g, "s", m2, gen2), SL_OK);
    assert_int_equal(
        sl_sgroup_commit(F.g, "s", m2, gen2, as2[0].topic, as2[0].partition, 5),
        SL_OK);
    assert_int_equal(sl_sgroup_commit(F.g, "s", m1, gen1 - 1, as1[0].topic,
                                      as1[0].partition, 3),
                     SL_ERR_REBALANCE);
    assert_int_equal(
        sl_sgroup_commit(F.g, "s", m1, gen1, as2[0].topic, as2[0].partition, 3),
        SL_ERR_REBALANCE);
    /* a new member is not given a loaded member's id */
    assert_int_equal(sl_sgroup_join(F.g, "s", NULL, "c1", topics, 1, 1000, &m3,
                                    &gen3, &as3, &n3),
                     SL_OK);
    assert_string_not_equal(m3, m1);
    assert_string_not_equal(m3, m2);
    assert_int_equal(gen3, gen2 + 1);
    free(m1);
    free(m2);
    free(m3);
    free(as1);
    free(as2);
    free(as3);
    sl_wb_fini(&g_repl);
}

/* (start, cursor) of group g's partition 0 as committed in groups.db. */
static void db_qpart(int64_t *start, int64_t *cursor)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    char path[600];
    snprintf(path, sizeof(path), "%s/groups.db", F.dir);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT start, cursor FROM qpart "
                                        "WHERE grp='g' AND part=0",
                                        -1, &st, NULL),
                     SQLITE_OK);
    *start = *cursor = -1;
    if (sqlite3_step(st) == SQLITE_ROW) {
        *start = sqlite3_column_int64(st, 0);
        *cursor = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* Early dispatch: records are handed out before their fdatasync, but an
 * ack of them is committed (and answered) only after the round that made
 * them durable. Committed earlier, a crash that took the tail back would
 * leave NEW records at those offsets marked acked. */
static void test_early_dispatch_commit_waits_for_fsync(void **state)
{
    rx a;
    sl_flusher *fl;
    int64_t start, cursor;
    (void)state;
    sl_groups_free(F.g);
    assert_int_equal(sl_flusher_new(NULL, NULL, &fl), SL_OK);
    sl_flusher_hold(fl, 1);
    assert_int_equal(sl_groups_open(F.dir, &k_env, fl, &F.g), SL_OK);
    sl_flusher_add_hook(fl, sl_groups_flush_hook, F.g);
    sl_groups_set_early(F.g, 1);
    rx_new(&a, "g", 0);
    sl_qconsumer_credit(a.c, 10);
    assert_int_equal(sl_groups_commit_now(F.g), SL_OK); /* the group row */

    F.fl = fl;
    produce(0, 3, NULL, NULL, NULL, 0);
    assert_int_equal(sl_part_durable_offset(F.parts[0]), 0);
    assert_int_equal(a.n, 3); /* handed out before the fdatasync */
    for (int i = 0; i < 3; i++)
        assert_int_equal(a.off[i], i);
    assert_int_equal(sl_qconsumer_ack(a.c, 0, 0, 2, NULL), SL_OK);
    assert_int_equal(part_info("g", 0).start, 3);
    waited = 0;
    sl_groups_wait(F.g, wait_cb, NULL);
    sl_groups_flush_hook(F.g); /* as the hook thread would: too early */
    sl_groups_on_flushed(F.g);
    assert_int_equal(waited, 0);
    db_qpart(&start, &cursor);
    assert_true(cursor <= 0); /* nothing past the durable end committed */
    assert_true(start <= 0);

    sl_flusher_hold(fl, 0);
    sl_flusher_wait_covered(fl, sl_flusher_token(fl));
    assert_int_equal(sl_part_durable_offset(F.parts[0]), 3);
    sl_groups_on_durable(F.g);
    sl_groups_flush_hook(F.g);
    sl_groups_on_flushed(F.g);
    assert_int_equal(waited, 1);
    assert_int_equal(waited_rc, SL_OK);
    db_qpart(&start, &cursor);
    assert_int_equal(start, 3);
    assert_int_equal(cursor, 3);

    /* Early dispatch off: records wait for the fdatasync again. */
    sl_groups_set_early(F.g, 0);
    sl_flusher_hold(fl, 1);
    produce(0, 2, NULL, NULL, NULL, 0);
    assert_int_equal(a.n, 3);
    sl_flusher_hold(fl, 0);
    sl_flusher_wait_covered(fl, sl_flusher_token(fl));
    sl_groups_on_durable(F.g);
    assert_int_equal(a.n, 5);
    sl_qconsumer_free(a.c);
    assert_int_equal(sl_groups_commit_now(F.g), SL_OK);
    sl_flusher_forget(fl, F.parts[0]);
    sl_flusher_free(fl);
    F.fl = NULL;
}

/* A stream group's committed offset of partition 0 of "t" in groups.db,
 * or -1. */
static int64_t db_soffset(const char *grp)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    char path[600];
    int64_t off = -1;
    snprintf(path, sizeof(path), "%s/groups.db", F.dir);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT off FROM soffset WHERE grp=?1 "
                                        "AND topic='t' AND part=0",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, grp, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        off = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return off;
}

/* A stream consumer reads records before their fdatasync
 * (groups/visible.c, queue-dispatch written): an offset it commits past
 * the durable end of a flush=always partition is committed (and
 * answered) only after the round that covers those records, as a queue
 * ack is, so after a power loss it never points past the log. */
static void test_stream_commit_past_durable_waits_for_fsync(void **state)
{
    sl_flusher *fl;
    (void)state;
    sl_groups_free(F.g);
    assert_int_equal(sl_flusher_new(NULL, NULL, &fl), SL_OK);
    sl_flusher_hold(fl, 1);
    assert_int_equal(sl_groups_open(F.dir, &k_env, fl, &F.g), SL_OK);
    sl_flusher_add_hook(fl, sl_groups_flush_hook, F.g);
    F.fl = fl;
    produce(0, 3, NULL, NULL, NULL, 0);
    assert_int_equal(sl_part_durable_offset(F.parts[0]), 0);
    assert_int_equal(sl_sgroup_commit(F.g, "s", NULL, -1, "t", 0, 3), SL_OK);
    waited = 0;
    sl_groups_wait(F.g, wait_cb, NULL);
    sl_groups_flush_hook(F.g); /* as the hook thread would: too early */
    sl_groups_on_flushed(F.g);
    assert_int_equal(waited, 0);
    assert_int_equal(db_soffset("s"), -1); /* not past the durable end */

    sl_flusher_hold(fl, 0);
    sl_flusher_wait_covered(fl, sl_flusher_token(fl));
    assert_int_equal(sl_part_durable_offset(F.parts[0]), 3);
    sl_groups_on_durable(F.g);
    sl_groups_flush_hook(F.g);
    sl_groups_on_flushed(F.g);
    assert_int_equal(waited, 1);
    assert_int_equal(waited_rc, SL_OK);
    assert_int_equal(db_soffset("s"), 3);
    sl_flusher_forget(fl, F.parts[0]);
    sl_flusher_free(fl);
    F.fl = NULL;
}

/* The one visibility rule (groups/visible.c), cell by cell: 3 records
 * appended, 2 of them fsynced. */
static void test_visible_rule(void **state)
{
    sl_part *p = F.parts[0];
    sl_part_cfg cfg = *sl_part_get_cfg(p);
    (void)state;
    produce(0, 2, NULL, NULL, NULL, 1);
    produce(0, 1, NULL, NULL, NULL, 0);
    assert_int_equal(sl_part_durable_offset(p), 2);
    assert_int_equal(sl_part_end_offset(p), 3);
    /* flush=always: queue-dispatch decides for every reader */
    assert_int_equal(sl_visible_offset(p, 1, SL_VISIBLE_STREAM), 3);
    assert_int_equal(sl_visible_offset(p, 1, SL_VISIBLE_QUEUE), 3);
    assert_int_equal(sl_visible_offset(p, 0, SL_VISIBLE_STREAM), 2);
    assert_int_equal(sl_visible_offset(p, 0, SL_VISIBLE_QUEUE), 2);
    /* flush=interval: queues wait for the timed fsync */
    cfg.flush = SL_FLUSH_INTERVAL;
    sl_part_set_cfg(p, &cfg);
    assert_int_equal(sl_visible_offset(p, 1, SL_VISIBLE_STREAM), 3);
    assert_int_equal(sl_visible_offset(p, 1, SL_VISIBLE_QUEUE), 2);
    assert_int_equal(sl_visible_offset(p, 0, SL_VISIBLE_STREAM), 2);
    /* flush=never: the log end */
    cfg.flush = SL_FLUSH_NEVER;
    sl_part_set_cfg(p, &cfg);
    assert_int_equal(sl_visible_offset(p, 0, SL_VISIBLE_STREAM), 3);
    assert_int_equal(sl_visible_offset(p, 0, SL_VISIBLE_QUEUE), 3);
    /* a cluster's high-water mark caps every reader */
    sl_part_set_read_cap(p, 1);
    assert_int_equal(sl_visible_offset(p, 1, SL_VISIBLE_STREAM), 1);
    sl_part_set_read_cap(p, INT64_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_acquire_ack_advances_start),
        T(test_only_durable_records_delivered),
        T(test_early_dispatch_commit_waits_for_fsync),
        T(test_stream_commit_past_durable_waits_for_fsync),
        T(test_visible_rule),
        T(test_release_delay_and_counts),
        T(test_backoff_policy),
        T(test_tick_deadlines),
        T(test_lock_expiry_and_touch),
        T(test_max_deliveries_dead_letters),
        T(test_reject_dead_letters),
        T(test_ttl_drop_and_dead_letter),
        T(test_delayed_delivery),
        T(test_key_ordered),
        T(test_key_ordered_many_keys),
        T(test_key_ordered_after_restart),
        T(test_consumer_filter),
        T(test_priority),
        T(test_priority_off_is_log_order),
        T(test_priority_with_keys_and_restart),
        T(test_window_bound),
        T(test_window_grows),
        T(test_latest_waits_for_env_latest),
        T(test_window_inflight_vs_span),
        T(test_consumer_free_releases),
        T(test_competing_consumers_exactly_once),
        T(test_persistence_rules),
        T(test_dlq_crash_redoes_append),
        T(test_commits_are_batched),
        T(test_cfg_errors_name_input),
        T(test_multi_partition),
        T(test_stream_group_assignment_and_fencing),
        T(test_stream_members_replicated),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
