/* Unit tests: the metadata state machine (cluster/fsm.c) driven by libraft
 * through its deterministic in-memory cluster (raft/fixture.h): elections,
 * a crashed leader, a partitioned leader whose writes must not commit,
 * message loss, crash and revive with catch-up through snapshots. The
 * fixture itself checks Election Safety and Leader Append-Only on every
 * step; each test ends by checking that every live server holds a
 * byte-identical image. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <raft.h>
#include <raft/fixture.h>

#include "cluster/fsm.h"

#define MAXN 5

typedef struct cl {
    struct raft_fixture f;
    sl_meta_fsm fsm[MAXN];
    unsigned n;
} cl;

typedef struct req {
    struct raft_apply a;
    int done, status;
    sl_err rc;
} req;

static void start(cl *c, unsigned n, unsigned snap_threshold)
{
    struct raft_configuration conf;
    memset(c, 0, sizeof(*c));
    c->n = n;
    assert_int_equal(raft_fixture_initialize(&c->f), 0);
    for (unsigned i = 0; i < n; i++) {
        sl_meta_fsm_init(&c->fsm[i]);
        assert_int_equal(raft_fixture_grow(&c->f, &c->fsm[i].fsm), 0);
        c->fsm[i].raft = raft_fixture_get(&c->f, i);
        if (snap_threshold) {
            raft_set_snapshot_threshold(c->fsm[i].raft, snap_threshold);
            raft_set_snapshot_trailing(c->fsm[i].raft, 2);
        }
    }
    assert_int_equal(raft_fixture_configuration(&c->f, n, &conf), 0);
    assert_int_equal(raft_fixture_bootstrap(&c->f, &conf), 0);
    raft_configuration_close(&conf);
    assert_int_equal(raft_fixture_start(&c->f), 0);
}

static void stop(cl *c)
{
    raft_fixture_close(&c->f);
    for (unsigned i = 0; i < c->n; i++)
        sl_meta_fsm_fini(&c->fsm[i]);
}

static void apply_cb(struct raft_apply *a, int status, void *result)
{
    req *r = a->data;
    r->done = 1;
    r->status = status;
    r->rc = status == 0 ? (sl_err)(intptr_t)result : SL_ERR_UNKNOWN;
}

/* Propose wb's command on server i; returns 0 or the raft_apply error. */
static int propose(cl *c, unsigned i, sl_wb *wb, req *r)
{
    struct raft_buffer buf;
    int rv;
    memset(r, 0, sizeof(*r));
    r->a.data = r;
    /* padded with zeros to a multiple of 8, as raft_uv stores entries:
     * the framing (cluster/fsm.h) must make that harmless */
    {
        size_t padded = (4 + wb->len + 7) / 8 * 8;
        uint8_t *p = raft_calloc(1, padded);
        assert_non_null(p);
        sl_put_u32(p, (uint32_t)wb->len);
        memcpy(p + 4, wb->p, wb->len);
        buf.base = p;
        buf.len = padded;
    }
    sl_wb_reset(wb);
    rv = raft_apply(raft_fixture_get(&c->f, i), &r->a, &buf, 1, apply_cb);
    if (rv != 0)
        raft_free(buf.base);
    return rv;
}

static bool req_done(struct raft_fixture *f, void *arg)
{
    (void)f;
    return ((req *)arg)->done;
}

static unsigned leader(cl *c)
{
    assert_true(raft_fixture_step_until_has_leader(&c->f, 20000));
    return raft_fixture_leader_index(&c->f);
}

/* Propose on the current leader and wait for the result. */
static sl_err commit(cl *c, sl_wb *wb)
{
    req r;
    unsigned l = leader(c);
    assert_int_equal(propose(c, l, wb, &r), 0);
    assert_true(raft_fixture_step_until(&c->f, req_done, &r, 20000));
    assert_int_equal(r.status, 0);
    return r.rc;
}

typedef struct bar {
    struct raft_barrier b;
    int done, status;
} bar;

static void barrier_cb(struct raft_barrier *b, int status)
{
    bar *x = b->data;
    x->done = 1;
    x->status = status;
}

static bool bar_done(struct raft_fixture *f, void *arg)
{
    (void)f;
    return ((bar *)arg)->done;
}

/* A new leader's image may lag what was committed before it won; a barrier
 * in its own term applies everything first (cluster/node.c does the same
 * before the controller acts). */
static void barrier(cl *c)
{
    bar x;
    memset(&x, 0, sizeof(x));
    x.b.data = &x;
    assert_int_equal(
        raft_barrier(raft_fixture_get(&c->f, leader(c)), &x.b, barrier_cb), 0);
    assert_true(raft_fixture_step_until(&c->f, bar_done, &x, 20000));
    assert_int_equal(x.status, 0);
}

static void register_all(cl *c)
{
    sl_wb wb;
    sl_wb_init(&wb, 64);
    for (unsigned i = 1; i <= c->n; i++) {
        char a[16];
        snprintf(a, sizeof(a), "%u", i);
        sl_meta_enc_register(&wb, (int32_t)i, a, a, a);
        assert_int_equal(commit(c, &wb), SL_OK);
        sl_meta_enc_fence(&wb, (int32_t)i, 0);
        assert_int_equal(commit(c, &wb), SL_OK);
    }
    sl_wb_fini(&wb);
}

static sl_err create_topic(cl *c, const char *name, int32_t np, int32_t rf)
{
    int32_t rep[64];
    char err[128];
    sl_wb wb;
    sl_err rc;
    unsigned l = leader(c);
    assert_int_equal(
        sl_meta_place(&c->fsm[l].meta, name, np, rf, rep, err, sizeof(err)),
        SL_OK);
    sl_wb_init(&wb, 64);
    sl_meta_enc_create_topic(&wb, name, np, rf, NULL, NULL, 0, rep);
    rc = commit(c, &wb);
    sl_wb_fini(&wb);
    return rc;
}

/* Every live server applied everything the leader committed and holds a
 * byte-identical image. */
static void converge(cl *c)
{
    unsigned l = leader(c);
    raft_index idx = raft_last_applied(raft_fixture_get(&c->f, l));
    sl_wb s0, s;
    int first = 1;
    for (unsigned i = 0; i < c->n; i++)
        if (raft_fixture_alive(&c->f, i))
            assert_true(raft_fixture_step_until_applied(&c->f, i, idx, 20000));
    sl_wb_init(&s0, 256);
    sl_wb_init(&s, 256);
    for (unsigned i = 0; i < c->n; i++) {
        char err[256];
        if (!raft_fixture_alive(&c->f, i))
            continue;
        if (sl_meta_check(&c->fsm[i].meta, err, sizeof(err)) != 0)
            fail_msg("server %u: %s", i, err);
        sl_wb_reset(&s);
        /* compare the tables, not the applied index (it may be ahead on
         * one that also applied a barrier), so snapshot with applied 0 */
        {
            uint64_t keep = c->fsm[i].meta.applied;
            c->fsm[i].meta.applied = 0;
            sl_meta_snapshot(&c->fsm[i].meta, first ? &s0 : &s);
            c->fsm[i].meta.applied = keep;
        }
        if (!first) {
            assert_int_equal(s.len, s0.len);
            assert_memory_equal(s.p, s0.p, s0.len);
        }
        first = 0;
    }
    sl_wb_fini(&s0);
    sl_wb_fini(&s);
}

static void test_elect_and_replicate(void **state)
{
    cl *c = calloc(1, sizeof(*c));
    (void)state;
    start(c, 3, 0);
    register_all(c);
    assert_int_equal(create_topic(c, "orders", 6, 3), SL_OK);
    assert_int_equal(create_topic(c, "orders", 6, 3), SL_ERR_TOPIC_EXISTS);
    converge(c);
    for (unsigned i = 0; i < 3; i++)
        assert_non_null(sl_meta_topic_find(&c->fsm[i].meta, "orders"));
    stop(c);
    free(c);
}

static void test_leader_crash(void **state)
{
    cl *c = calloc(1, sizeof(*c));
    unsigned l, l2;
    raft_term t;
    (void)state;
    start(c, 5, 0);
    register_all(c);
    assert_int_equal(create_topic(c, "a", 3, 3), SL_OK);
    l = leader(c);
    t = raft_fixture_get(&c->f, l)->current_term;
    raft_fixture_kill(&c->f, l);
    assert_true(raft_fixture_step_until_has_no_leader(&c->f, 10000));
    l2 = leader(c);
    assert_int_not_equal(l2, l);
    assert_true(raft_fixture_get(&c->f, l2)->current_term > t);
    /* the new leader has everything the old one committed (applied once
     * it commits an entry of its own term) */
    assert_int_equal(create_topic(c, "b", 2, 3), SL_OK);
    assert_non_null(sl_meta_topic_find(&c->fsm[l2].meta, "a"));
    converge(c);
    /* the old leader comes back and catches up */
    raft_fixture_revive(&c->f, l);
    converge(c);
    assert_non_null(sl_meta_topic_find(&c->fsm[l].meta, "b"));
    stop(c);
    free(c);
}

static void test_partitioned_leader_cannot_commit(void **state)
{
    cl *c = calloc(1, sizeof(*c));
    unsigned l, l2;
    sl_wb wb;
    req lost;
    int32_t rep[1];
    char err[64];
    (void)state;
    start(c, 3, 0);
    register_all(c);
    l = leader(c);
    /* cut the leader off from both followers (saturate: messages are
     * dropped silently, which the fixture's leader detection understands
     * as a partition; disconnect would fail sends instead) */
    for (unsigned i = 0; i < 3; i++)
        if (i != l) {
            raft_fixture_saturate(&c->f, l, i);
            raft_fixture_saturate(&c->f, i, l);
        }
    /* it accepts a proposal but can never commit it */
    sl_wb_init(&wb, 64);
    assert_int_equal(
        sl_meta_place(&c->fsm[l].meta, "lost", 1, 1, rep, err, sizeof(err)),
        SL_OK);
    sl_meta_enc_create_topic(&wb, "lost", 1, 1, NULL, NULL, 0, rep);
    assert_int_equal(propose(c, l, &wb, &lost), 0);
    /* the majority elects another leader and commits without it */
    assert_true(raft_fixture_step_until_has_no_leader(&c->f, 10000));
    l2 = leader(c);
    assert_int_not_equal(l2, l);
    barrier(c);
    assert_int_equal(create_topic(c, "kept", 1, 3), SL_OK);
    /* heal: the old leader steps down, its entry is discarded */
    for (unsigned i = 0; i < 3; i++)
        if (i != l) {
            raft_fixture_desaturate(&c->f, l, i);
            raft_fixture_desaturate(&c->f, i, l);
        }
    converge(c);
    assert_true(lost.done);
    assert_int_not_equal(lost.status, 0);
    for (unsigned i = 0; i < 3; i++) {
        assert_null(sl_meta_topic_find(&c->fsm[i].meta, "lost"));
        assert_non_null(sl_meta_topic_find(&c->fsm[i].meta, "kept"));
    }
    sl_wb_fini(&wb);
    stop(c);
    free(c);
}

static void test_message_loss(void **state)
{
    cl *c = calloc(1, sizeof(*c));
    unsigned seed = 12345, created = 0;
    (void)state;
    start(c, 5, 16);
    register_all(c);
    for (int round = 0; round < 40; round++) {
        char name[32];
        req r;
        sl_wb wb;
        int32_t rep[3];
        char err[64];
        unsigned l;
        /* saturate (drop silently) a few random links each round */
        for (unsigned i = 0; i < 5; i++)
            for (unsigned j = 0; j < 5; j++) {
                if (i == j)
                    continue;
                seed = seed * 1103515245u + 12345u;
                if ((seed >> 16) % 5 == 0)
                    raft_fixture_saturate(&c->f, i, j);
                else if (raft_fixture_saturated(&c->f, i, j))
                    raft_fixture_desaturate(&c->f, i, j);
            }
        if (!raft_fixture_step_until_has_leader(&c->f, 3000))
            continue;
        l = raft_fixture_leader_index(&c->f);
        snprintf(name, sizeof(name), "t%d", round);
        if (sl_meta_place(&c->fsm[l].meta, name, 1, 3, rep, err, sizeof(err)) !=
            SL_OK)
            continue;
        sl_wb_init(&wb, 64);
        sl_meta_enc_create_topic(&wb, name, 1, 3, NULL, NULL, 0, rep);
        if (propose(c, l, &wb, &r) == 0 &&
            raft_fixture_step_until(&c->f, req_done, &r, 3000) &&
            r.status == 0 && r.rc == SL_OK)
            created++;
        sl_wb_fini(&wb);
        raft_fixture_step_until_elapsed(&c->f, 200);
    }
    for (unsigned i = 0; i < 5; i++)
        for (unsigned j = 0; j < 5; j++)
            if (i != j && raft_fixture_saturated(&c->f, i, j))
                raft_fixture_desaturate(&c->f, i, j);
    converge(c);
    /* every proposal answered OK is in every image */
    assert_true(created >= 10);
    assert_true(c->fsm[0].meta.ntopics >= created);
    stop(c);
    free(c);
}

static void count_restore(void *arg, const void *snap, size_t len)
{
    (void)snap;
    (void)len;
    (*(int *)arg)++;
}

static void test_revive_through_snapshot(void **state)
{
    cl *c = calloc(1, sizeof(*c));
    unsigned victim;
    int restored = 0;
    (void)state;
    start(c, 3, 8); /* a snapshot every 8 entries, 2 kept */
    register_all(c);
    victim = (leader(c) + 1) % 3;
    c->fsm[victim].on_restore = count_restore;
    c->fsm[victim].arg = &restored;
    raft_fixture_kill(&c->f, victim);
    for (int i = 0; i < 30; i++) {
        char name[16];
        snprintf(name, sizeof(name), "s%02d", i);
        assert_int_equal(create_topic(c, name, 1, 2), SL_OK);
    }
    /* the leader's log no longer holds what the victim misses: it gets an
     * InstallSnapshot, which restores the image on the victim */
    assert_true(raft_fixture_get(&c->f, leader(c))->log.offset > 0);
    raft_fixture_revive(&c->f, victim);
    converge(c);
    assert_int_equal(c->fsm[victim].meta.ntopics, 30);
    assert_true(restored >= 1);
    stop(c);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_elect_and_replicate),
        cmocka_unit_test(test_leader_crash),
        cmocka_unit_test(test_partitioned_leader_cannot_commit),
        cmocka_unit_test(test_message_loss),
        cmocka_unit_test(test_revive_through_snapshot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
