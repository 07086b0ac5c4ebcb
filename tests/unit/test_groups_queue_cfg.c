/* Unit tests: groups/queue_cfg.c, the one table of queue-group settings
 * and bounds (binary QUEUE_GROUP_CONFIG, the broker's queue-* defaults,
 * STOMP's SUBSCRIBE arguments and groups.db's text all go through it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "groups/queue_cfg.h"

static void test_defaults(void **state)
{
    sl_qgroup_cfg c;
    (void)state;
    sl_qgroup_cfg_defaults(&c);
    assert_int_equal(c.max_deliveries, 10);
    assert_int_equal(c.lock_ms, 30000);
    assert_int_equal(c.backoff_ms, 0);
    assert_int_equal(c.backoff_max_ms, 60000);
    assert_int_equal(c.backoff_factor, 2);
    assert_int_equal(c.ttl_ms, -1);
    assert_int_equal(c.max_inflight, 10000);
    assert_int_equal(c.max_delayed, 100000);
    assert_int_equal(c.start_latest, 0);
    assert_string_equal(c.dlq_topic, "");
}

/* One set of bounds, the same whichever spelling of the key. */
static void test_bounds(void **state)
{
    int64_t lo = 0, hi = 0;
    (void)state;
    assert_int_equal(sl_qgroup_cfg_bounds("max-deliveries", &lo, &hi), 0);
    assert_int_equal(lo, 1);
    assert_int_equal(hi, SL_QCFG_MAX_DELIVERIES_MAX);
    assert_int_equal(hi, 65535);
    assert_int_equal(sl_qgroup_cfg_bounds("max.deliveries", &lo, &hi), 0);
    assert_int_equal(hi, 65535);
    assert_int_equal(sl_qgroup_cfg_bounds("lock_ms", &lo, &hi), 0);
    assert_true(hi == SL_QCFG_LOCK_MS_MAX);
    assert_int_equal(sl_qgroup_cfg_bounds("max-in-flight", &lo, &hi), 0);
    assert_int_equal(hi, SL_QCFG_MAX_INFLIGHT_MAX);
    assert_int_equal(sl_qgroup_cfg_bounds("key-ordered", &lo, &hi), -1);
    assert_int_equal(sl_qgroup_cfg_bounds("nope", &lo, &hi), -1);
}

static void test_set_int_refuses_out_of_bounds(void **state)
{
    sl_qgroup_cfg c;
    char err[160];
    (void)state;
    sl_qgroup_cfg_defaults(&c);
    assert_int_equal(
        sl_qgroup_cfg_set_int(&c, "max-deliveries", 65535, err, sizeof(err)),
        SL_OK);
    assert_int_equal(c.max_deliveries, 65535);
    /* what STOMP's x-delivery-limit 100000 used to set */
    assert_int_equal(
        sl_qgroup_cfg_set_int(&c, "max-deliveries", 100001, err, sizeof(err)),
        SL_ERR_INVALID_CONFIG);
    assert_int_equal(c.max_deliveries, 65535); /* untouched */
    assert_non_null(strstr(err, "max-deliveries"));
    assert_non_null(strstr(err, "100001"));
    assert_non_null(strstr(err, "1..65535"));
    assert_int_equal(sl_qgroup_cfg_set_int(&c, "max-deliveries", 0, NULL, 0),
                     SL_ERR_INVALID_CONFIG);
    assert_int_equal(sl_qgroup_cfg_set_int(&c, "ttl-ms", -1, NULL, 0), SL_OK);
    assert_int_equal(sl_qgroup_cfg_set_int(&c, "ttl-ms", -2, NULL, 0),
                     SL_ERR_INVALID_CONFIG);
    assert_int_equal(sl_qgroup_cfg_set_int(&c, "start", 1, err, sizeof(err)),
                     SL_ERR_INVALID_CONFIG); /* not an integer setting */
    assert_non_null(strstr(err, "start"));
}

static void test_set_text(void **state)
{
    sl_qgroup_cfg c;
    char err[160], big[300];
    (void)state;
    sl_qgroup_cfg_defaults(&c);
    assert_int_equal(sl_qgroup_cfg_set(&c, "lock.ms", "5000", err, sizeof(err)),
                     SL_OK);
    assert_int_equal(c.lock_ms, 5000);
    assert_int_equal(
        sl_qgroup_cfg_set(&c, "backoff-multiplier", "3", err, sizeof(err)),
        SL_OK);
    assert_int_equal(c.backoff_factor, 3);
    assert_int_equal(
        sl_qgroup_cfg_set(&c, "key-ordered", "yes", err, sizeof(err)), SL_OK);
    assert_int_equal(c.key_ordered, 1);
    assert_int_equal(sl_qgroup_cfg_set(&c, "start", "latest", err, sizeof(err)),
                     SL_OK);
    assert_int_equal(c.start_latest, 1);
    assert_int_equal(
        sl_qgroup_cfg_set(&c, "dlq-topic", "dead", err, sizeof(err)), SL_OK);
    assert_string_equal(c.dlq_topic, "dead");
    /* refusals name key and value, and leave the setting */
    assert_int_equal(
        sl_qgroup_cfg_set(&c, "lock-ms", "9999999999", err, sizeof(err)),
        SL_ERR_INVALID_CONFIG);
    assert_non_null(strstr(err, "lock-ms"));
    assert_non_null(strstr(err, "9999999999"));
    assert_int_equal(c.lock_ms, 5000);
    assert_int_equal(sl_qgroup_cfg_set(&c, "lock-ms", "5s", NULL, 0),
                     SL_ERR_INVALID_CONFIG);
    assert_int_equal(
        sl_qgroup_cfg_set(&c, "key-ordered", "maybe", err, sizeof(err)),
        SL_ERR_INVALID_CONFIG);
    assert_int_equal(sl_qgroup_cfg_set(&c, "start", "middle", NULL, 0),
                     SL_ERR_INVALID_CONFIG);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    assert_int_equal(sl_qgroup_cfg_set(&c, "dlq_topic", big, NULL, 0),
                     SL_ERR_INVALID_CONFIG);
    assert_string_equal(c.dlq_topic, "dead");
    assert_int_equal(sl_qgroup_cfg_set(&c, "bogus", "1", err, sizeof(err)),
                     SL_ERR_INVALID_CONFIG);
    assert_non_null(strstr(err, "bogus"));
}

/* What groups.db stores reads back the same. */
static void test_text_roundtrip(void **state)
{
    sl_qgroup_cfg a, b;
    char text[1024];
    (void)state;
    sl_qgroup_cfg_defaults(&a);
    a.max_deliveries = 7;
    a.lock_ms = 1234;
    a.backoff_ms = 10;
    a.backoff_max_ms = 999;
    a.backoff_factor = 5;
    a.ttl_ms = 60000;
    a.dlq_expired = 1;
    a.key_ordered = 1;
    a.max_inflight = 321;
    a.max_delayed = 0;
    a.start_latest = 1;
    snprintf(a.dlq_topic, sizeof(a.dlq_topic), "orders.dead");
    sl_qgroup_cfg_text(&a, text, sizeof(text));
    sl_qgroup_cfg_defaults(&b);
    sl_qgroup_cfg_from_text(&b, text);
    assert_memory_equal(&a, &b, sizeof(a));
    /* a stored value out of bounds is ignored, the rest applies */
    sl_qgroup_cfg_defaults(&b);
    sl_qgroup_cfg_from_text(&b, "max_deliveries=100001\nlock_ms=77\n");
    assert_int_equal(b.max_deliveries, 10);
    assert_int_equal(b.lock_ms, 77);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_set_int_refuses_out_of_bounds),
        cmocka_unit_test(test_set_text),
        cmocka_unit_test(test_text_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
