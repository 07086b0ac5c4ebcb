/*
 * test_cluster_lease.c - the coordinator lease rules (cluster/lease.c)
 * with made-up CLOCK_MONOTONIC times.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cluster/lease.h"

/* Election 1000, heartbeat 100, session 3000 (the defaults). */
static void init(sl_lease *l, int32_t self)
{
    sl_lease_init(l, self, 1000, 100, 3000);
}

static const int32_t voters3[] = {1, 2, 3};

static void test_length(void **state)
{
    int short_ = -1;
    (void)state;
    /* min(1000 - 100 - 20, 3000 - 1000 - 200 - 60) */
    assert_int_equal(sl_lease_ms(1000, 100, 3000, &short_), 880);
    assert_int_equal(short_, 0);
    /* the test cluster's timings: min(500 - 50 - 10, 1500 - 500 - 100 -
     * 30) */
    assert_int_equal(sl_lease_ms(500, 50, 1500, NULL), 440);
    /* a long session does not shorten it (2% of 20 s is not a margin the
     * election bound needs) */
    assert_int_equal(sl_lease_ms(500, 50, 20000, NULL), 440);
    /* shorter than a heartbeat: floored, and said */
    assert_int_equal(sl_lease_ms(1000, 100, 1100, &short_), 100);
    assert_int_equal(short_, 1);
}

static void test_follower_heartbeats_extend(void **state)
{
    sl_lease l;
    (void)state;
    init(&l, 2);
    /* nothing heard yet: no lease */
    assert_int_equal(
        sl_lease_tick(&l, 1000, SL_LEASE_FOLLOWER, 1, 5, 10, voters3, 3), 0);
    /* a heartbeat read at 1050: anchored at the tick before it (1000) */
    sl_lease_on_msg(&l, 1050, SL_LEASE_MSG_APPEND, 1, 5, 10);
    assert_int_equal(
        sl_lease_tick(&l, 1100, SL_LEASE_FOLLOWER, 1, 5, 10, voters3, 3),
        1000 + 880);
    /* a heartbeat of another node (a deposed leader's) does not count */
    sl_lease_on_msg(&l, 1150, SL_LEASE_MSG_APPEND, 3, 5, 10);
    assert_int_equal(
        sl_lease_tick(&l, 1200, SL_LEASE_FOLLOWER, 1, 5, 10, voters3, 3), 1880);
    /* silence: the lease is not extended and runs out */
    for (int64_t t = 1300; t <= 2000; t += 100)
        sl_lease_tick(&l, t, SL_LEASE_FOLLOWER, 1, 5, 10, voters3, 3);
    assert_true(l.until <= 2000);
}

static void test_follower_waits_for_applied_commit(void **state)
{
    sl_lease l;
    (void)state;
    init(&l, 2);
    sl_lease_tick(&l, 1000, SL_LEASE_FOLLOWER, 1, 5, 10, voters3, 3);
    /* the leader committed 12 (a fence?): applied 10 is not enough */
    sl_lease_on_msg(&l, 1050, SL_LEASE_MSG_APPEND, 1, 5, 12);
    assert_int_equal(
        sl_lease_tick(&l, 1100, SL_LEASE_FOLLOWER, 1, 5, 10, voters3, 3), 0);
    assert_int_equal(
        sl_lease_tick(&l, 1200, SL_LEASE_FOLLOWER, 1, 5, 12, voters3, 3),
        1000 + 880);
}

static void test_stall_distrusts_queued_messages(void **state)
{
    sl_lease l;
    (void)state;
    init(&l, 2);
    sl_lease_on_msg(&l, 1000, SL_LEASE_MSG_APPEND, 1, 5, 10);
    sl_lease_tick(&l, 1050, SL_LEASE_FOLLOWER, 1, 5, 10, voters3, 3);
    /* SIGSTOP for 5 s: what waited in the socket is read at 6050; it is
     * anchored at 1050 at best, and the guard ignores it anyway */
    sl_lease_on_msg(&l, 6050, SL_LEASE_MSG_APPEND, 1, 5, 10);
    sl_lease_on_msg(&l, 6051, SL_LEASE_MSG_APPEND, 1, 5, 10);
    assert_true(sl_lease_tick(&l, 6060, SL_LEASE_FOLLOWER, 1, 5, 10, voters3,
                              3) < 6060);
    /* fresh heartbeats after the guard (lease_ms) extend it again */
    for (int64_t t = 6100; t <= 7000; t += 100) {
        sl_lease_on_msg(&l, t, SL_LEASE_MSG_APPEND, 1, 5, 10);
        sl_lease_tick(&l, t + 50, SL_LEASE_FOLLOWER, 1, 5, 10, voters3, 3);
    }
    assert_true(l.until > 7000);
}

static void test_term_change_keeps_it(void **state)
{
    sl_lease l;
    (void)state;
    init(&l, 2);
    sl_lease_on_msg(&l, 1000, SL_LEASE_MSG_APPEND, 1, 5, 10);
    assert_int_equal(
        sl_lease_tick(&l, 1050, SL_LEASE_FOLLOWER, 1, 5, 10, voters3, 3),
        1000 + 880);
    /* an election (a leadership transfer): the lease runs on, not
     * extended by the old leader's heartbeats of the old term */
    assert_int_equal(
        sl_lease_tick(&l, 1100, SL_LEASE_CANDIDATE, 0, 6, 10, voters3, 3),
        1880);
    assert_int_equal(
        sl_lease_tick(&l, 1150, SL_LEASE_FOLLOWER, 3, 6, 10, voters3, 3), 1880);
    /* the new leader's heartbeats extend it */
    sl_lease_on_msg(&l, 1160, SL_LEASE_MSG_APPEND, 3, 6, 11);
    assert_int_equal(
        sl_lease_tick(&l, 1200, SL_LEASE_FOLLOWER, 3, 6, 11, voters3, 3),
        1150 + 880);
}

static void test_leader_needs_a_majority(void **state)
{
    sl_lease l;
    static const int32_t voters5[] = {1, 2, 3, 4, 5};
    (void)state;
    init(&l, 1);
    sl_lease_tick(&l, 1000, SL_LEASE_LEADER, 1, 7, 20, voters3, 3);
    assert_int_equal(l.until, 0);
    sl_lease_on_msg(&l, 1040, SL_LEASE_MSG_RESULT, 2, 7, 0);
    /* 3 voters: itself and one more are a majority */
    assert_int_equal(
        sl_lease_tick(&l, 1100, SL_LEASE_LEADER, 1, 7, 20, voters3, 3),
        1000 + 880);
    /* 5 voters: two others needed; the older of the two latest counts */
    init(&l, 1);
    sl_lease_tick(&l, 1000, SL_LEASE_LEADER, 1, 7, 20, voters5, 5);
    sl_lease_on_msg(&l, 1010, SL_LEASE_MSG_RESULT, 2, 7, 0);
    assert_int_equal(
        sl_lease_tick(&l, 1100, SL_LEASE_LEADER, 1, 7, 20, voters5, 5), 0);
    sl_lease_on_msg(&l, 1150, SL_LEASE_MSG_RESULT, 3, 7, 0);
    sl_lease_on_msg(&l, 1160, SL_LEASE_MSG_RESULT, 2, 7, 0);
    assert_int_equal(
        sl_lease_tick(&l, 1200, SL_LEASE_LEADER, 1, 7, 20, voters5, 5),
        1100 + 880);
    /* a result of an older term does not count */
    init(&l, 1);
    sl_lease_on_msg(&l, 1000, SL_LEASE_MSG_RESULT, 2, 6, 0);
    assert_int_equal(
        sl_lease_tick(&l, 1100, SL_LEASE_LEADER, 1, 7, 20, voters3, 3), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_length),
        cmocka_unit_test(test_follower_heartbeats_extend),
        cmocka_unit_test(test_follower_waits_for_applied_commit),
        cmocka_unit_test(test_stall_distrusts_queued_messages),
        cmocka_unit_test(test_term_change_keeps_it),
        cmocka_unit_test(test_leader_needs_a_majority),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
