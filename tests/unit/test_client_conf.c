/* Unit tests: libsluice configuration and error names. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sluice.h"

static void test_conf_set_get(void **state)
{
    sluice_conf *c = sluice_conf_new(), *d;
    char err[256];
    (void)state;
    assert_non_null(c);
    unsetenv("SLUICE_BOOTSTRAP");
    assert_string_equal(sluice_conf_get(c, "bootstrap"), "127.0.0.1:7410");
    assert_string_equal(sluice_conf_get(c, "acks"), "durable");
    assert_null(sluice_conf_get(c, "nope"));
    assert_int_equal(sluice_conf_set(c, "acks", "written", err, sizeof(err)),
                     SLUICE_OK);
    assert_string_equal(sluice_conf_get(c, "acks"), "written");
    assert_int_equal(sluice_conf_set(c, "linger.ms", "0", err, sizeof(err)),
                     SLUICE_OK);
    assert_int_equal(
        sluice_conf_set(c, "bootstrap", "[::1]:9000", err, sizeof(err)),
        SLUICE_OK);
    d = sluice_conf_dup(c);
    assert_non_null(d);
    assert_string_equal(sluice_conf_get(d, "acks"), "written");
    sluice_conf_free(c);
    assert_string_equal(sluice_conf_get(d, "bootstrap"), "[::1]:9000");
    sluice_conf_free(d);
    sluice_conf_free(NULL);
}

/* SLUICE_BOOTSTRAP is the default address; a set bootstrap wins. */
static void test_conf_bootstrap_environment(void **state)
{
    sluice_conf *c = sluice_conf_new();
    char err[256];
    (void)state;
    setenv("SLUICE_BOOTSTRAP", "10.1.2.3:9999", 1);
    assert_string_equal(sluice_conf_get(c, "bootstrap"), "10.1.2.3:9999");
    setenv("SLUICE_BOOTSTRAP", "", 1); /* empty: as if unset */
    assert_string_equal(sluice_conf_get(c, "bootstrap"), "127.0.0.1:7410");
    setenv("SLUICE_BOOTSTRAP", "10.1.2.3:9999", 1);
    assert_int_equal(
        sluice_conf_set(c, "bootstrap", "127.0.0.2:1", err, sizeof(err)),
        SLUICE_OK);
    assert_string_equal(sluice_conf_get(c, "bootstrap"), "127.0.0.2:1");
    unsetenv("SLUICE_BOOTSTRAP");
    sluice_conf_free(c);
}

/* Queue consumer defaults: the adaptive window, no unacked bound; the
 * new keys check their values. */
static void test_conf_queue_defaults(void **state)
{
    sluice_conf *c = sluice_conf_new();
    char err[256];
    (void)state;
    assert_string_equal(sluice_conf_get(c, "queue.credits"), "0");
    assert_string_equal(sluice_conf_get(c, "queue.credits.max"), "16384");
    assert_string_equal(sluice_conf_get(c, "queue.max.unacked"), "0");
    assert_string_equal(sluice_conf_get(c, "partitioner.null.key"), "sticky");
    assert_int_equal(
        sluice_conf_set(c, "queue.credits.max", "0", err, sizeof(err)),
        SLUICE_ERR_INVALID_CONFIG);
    assert_non_null(strstr(err, "queue.credits.max"));
    assert_int_equal(
        sluice_conf_set(c, "partitioner.null.key", "random", err, sizeof(err)),
        SLUICE_ERR_INVALID_CONFIG);
    assert_non_null(strstr(err, "round-robin"));
    assert_int_equal(sluice_conf_set(c, "partitioner.null.key", "round-robin",
                                     err, sizeof(err)),
                     SLUICE_OK);
    sluice_conf_free(c);
}

static void test_conf_errors_name_input(void **state)
{
    sluice_conf *c = sluice_conf_new();
    char err[256];
    (void)state;
    assert_int_equal(sluice_conf_set(c, "lingr.ms", "5", err, sizeof(err)),
                     SLUICE_ERR_INVALID_CONFIG);
    assert_non_null(strstr(err, "lingr.ms"));
    assert_int_equal(sluice_conf_set(c, "acks", "all", err, sizeof(err)),
                     SLUICE_ERR_INVALID_CONFIG);
    assert_non_null(strstr(err, "none|written|durable"));
    assert_int_equal(sluice_conf_set(c, "linger.ms", "-1", err, sizeof(err)),
                     SLUICE_ERR_INVALID_CONFIG);
    assert_int_equal(sluice_conf_set(c, "linger.ms", "5x", err, sizeof(err)),
                     SLUICE_ERR_INVALID_CONFIG);
    assert_int_equal(
        sluice_conf_set(c, "bootstrap", "localhost", err, sizeof(err)),
        SLUICE_ERR_INVALID_CONFIG);
    assert_non_null(strstr(err, "HOST:PORT"));
    assert_int_equal(
        sluice_conf_set(c, "bootstrap", "h:70000", err, sizeof(err)),
        SLUICE_ERR_INVALID_CONFIG);
    assert_non_null(strstr(sluice_errstr(), "bootstrap"));
    /* failed sets leave the old value */
    assert_string_equal(sluice_conf_get(c, "acks"), "durable");
    sluice_conf_free(c);
}

static void test_errors(void **state)
{
    (void)state;
    assert_string_equal(sluice_errname(SLUICE_ERR_UNKNOWN_TOPIC),
                        "SLUICE_ERR_UNKNOWN_TOPIC");
    assert_string_equal(sluice_strerror(SLUICE_ERR_UNKNOWN_TOPIC),
                        "unknown topic");
    assert_string_equal(sluice_errname(SLUICE_ERR_SYS(ECONNREFUSED)),
                        "ECONNREFUSED");
    assert_string_equal(sluice_strerror(SLUICE_ERR_SYS(ENOSPC)),
                        strerror(ENOSPC));
    assert_true(SLUICE_ERR_IS_SYS(SLUICE_ERR_SYS(EIO)));
    assert_int_equal(SLUICE_ERR_ERRNO(SLUICE_ERR_SYS(EIO)), EIO);
    assert_string_equal(sluice_errname(9999), "SLUICE_ERR_UNKNOWN_CODE");
    assert_string_equal(sluice_version(), SLUICE_VERSION_STR);
}

static void test_connect_refused(void **state)
{
    /* port 1 on loopback: nothing listens there */
    sluice_conf *c = sluice_conf_new();
    sluice_admin *a = NULL;
    char err[256];
    sluice_err rc;
    (void)state;
    sluice_conf_set(c, "bootstrap", "127.0.0.1:1", NULL, 0);
    rc = sluice_admin_new(c, &a, err, sizeof(err));
    assert_int_equal(rc, SLUICE_ERR_DISCONNECTED);
    assert_null(a);
    assert_non_null(strstr(err, "127.0.0.1:1"));
    sluice_conf_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conf_set_get),
        cmocka_unit_test(test_conf_bootstrap_environment),
        cmocka_unit_test(test_conf_queue_defaults),
        cmocka_unit_test(test_conf_errors_name_input),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_connect_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
