/* Unit tests: protocol/hash.c (FNV-1a, the key partitioner shared by the
 * client library and the broker) and protocol/parse.c (sl_parse_i64). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "client/include/sluice.h"
#include "protocol/hash.h"
#include "protocol/parse.h"

static void test_fnv1a_reference_values(void **state)
{
    (void)state;
    /* published FNV-1a test vectors */
    assert_int_equal(sl_fnv1a32("", 0), 0x811c9dc5u);
    assert_int_equal(sl_fnv1a32("a", 1), 0xe40c292cu);
    assert_int_equal(sl_fnv1a32("foobar", 6), 0xbf9cf968u);
    assert_true(sl_fnv1a64("", 0) == 0xcbf29ce484222325ull);
    assert_true(sl_fnv1a64("a", 1) == 0xaf63dc4c8601ec8cull);
    assert_true(sl_fnv1a64("foobar", 6) == 0x85944171f73967e8ull);
}

static void test_partition_for_key(void **state)
{
    (void)state;
    assert_int_equal(sl_partition_for_key("foobar", 6, 7),
                     (int32_t)(0xbf9cf968u % 7u));
    assert_int_equal(sl_partition_for_key("", 0, 1000003),
                     (int32_t)(0x811c9dc5u % 1000003u));
    assert_int_equal(sl_partition_for_key("x", 1, 1), 0);
    assert_int_equal(sl_partition_for_key("x", 1, 0), -1);
    assert_int_equal(sl_partition_for_key("x", 1, -3), -1);
    /* bytes, not C strings: a NUL inside the key counts */
    assert_int_not_equal(sl_fnv1a32("a\0b", 3), sl_fnv1a32("a", 1));
}

/* The client library's public partitioner is the same function, so a
 * producer and the broker (STOMP SEND with a key) pick the same
 * partition for every key. */
static void test_client_agrees(void **state)
{
    char key[32];
    (void)state;
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(key, sizeof(key), "order-%d", i);
        for (int32_t parts = 1; parts <= 64; parts *= 2)
            assert_int_equal(sluice_partition_for_key(key, (size_t)n, parts),
                             sl_partition_for_key(key, (size_t)n, parts));
    }
}

static void test_parse_i64(void **state)
{
    int64_t v = 7;
    (void)state;
    assert_int_equal(sl_parse_i64("0", &v), 0);
    assert_true(v == 0);
    assert_int_equal(sl_parse_i64("-42", &v), 0);
    assert_true(v == -42);
    assert_int_equal(sl_parse_i64("9223372036854775807", &v), 0);
    assert_true(v == INT64_MAX);
    assert_int_equal(sl_parse_i64("-9223372036854775808", &v), 0);
    assert_true(v == INT64_MIN);
    v = 7;
    /* refused, *out untouched */
    assert_int_equal(sl_parse_i64(NULL, &v), -1);
    assert_int_equal(sl_parse_i64("", &v), -1);
    assert_int_equal(sl_parse_i64("12x", &v), -1);
    assert_int_equal(sl_parse_i64("x", &v), -1);
    assert_int_equal(sl_parse_i64("1.5", &v), -1);
    assert_int_equal(sl_parse_i64("9223372036854775808", &v), -1);
    assert_int_equal(sl_parse_i64("-9223372036854775809", &v), -1);
    assert_true(v == 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fnv1a_reference_values),
        cmocka_unit_test(test_partition_for_key),
        cmocka_unit_test(test_client_agrees),
        cmocka_unit_test(test_parse_i64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
