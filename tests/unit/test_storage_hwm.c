/*
 * Unit tests: the high-water mark checkpoint file (issue 14,
 * storage/hwm_checkpoint.c). What is written reads back sorted; a file
 * cut anywhere, with a byte changed, a count that does not match, a
 * duplicate entry or bytes after the CRC line is refused whole
 * (SL_ERR_CORRUPT), never half-trusted: a mark read too high would let a
 * follower skip part of the check that finds a divergent tail.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "protocol/crc32c.h"
#include "protocol/log.h"
#include "storage/hwm_checkpoint.h"
#include "tests/unit/test_storage_util.h"

static const sl_hwm_entry entries[] = {
    {"orders", 1, 1498},
    {"orders", 0, 1530},
    {"a.b_c-d", 7, 0},
    {"z", 2147483647, 9223372036854775807LL},
};
#define NE (sizeof(entries) / sizeof(entries[0]))

static sl_err read_back(const char *path, sl_hwm_entry **e, size_t *n)
{
    char why[160];
    return sl_hwm_ckpt_read(path, e, n, why, sizeof(why));
}

static void test_round_trip(void **state)
{
    char *dir = tu_tmpdir(), path[4096];
    sl_hwm_entry *e;
    size_t n;
    (void)state;
    snprintf(path, sizeof(path), "%s/%s", dir, SL_HWM_CKPT_FILE);
    assert_int_equal(read_back(path, &e, &n), SL_ERR_NOT_FOUND);
    assert_int_equal(sl_hwm_ckpt_write(path, entries, NE), SL_OK);
    assert_int_equal(read_back(path, &e, &n), SL_OK);
    assert_int_equal(n, NE);
    /* sorted by (topic, partition) */
    assert_string_equal(e[0].topic, "a.b_c-d");
    assert_string_equal(e[1].topic, "orders");
    assert_int_equal(e[1].partition, 0);
    assert_int_equal(e[1].hwm, 1530);
    assert_int_equal(e[2].partition, 1);
    assert_int_equal(e[2].hwm, 1498);
    assert_int_equal(e[3].hwm, INT64_MAX);
    assert_non_null(sl_hwm_ckpt_find(e, n, "orders", 1));
    assert_null(sl_hwm_ckpt_find(e, n, "orders", 2));
    assert_null(sl_hwm_ckpt_find(e, n, "order", 0));
    sl_hwm_ckpt_free(e, n);
    /* an empty list is a valid file too */
    assert_int_equal(sl_hwm_ckpt_write(path, NULL, 0), SL_OK);
    assert_int_equal(read_back(path, &e, &n), SL_OK);
    assert_int_equal(n, 0);
    sl_hwm_ckpt_free(e, n);
    tu_rmrf(dir);
}

/* Write text with a correct CRC line after it. */
static void write_with_crc(const char *path, const char *body)
{
    char buf[1024];
    int k = snprintf(buf, sizeof(buf), "%scrc %08x\n", body,
                     (unsigned)sl_crc32c(0, body, strlen(body)));
    tu_write_file(path, buf, (size_t)k);
}

static void test_damaged_files_are_refused(void **state)
{
    char *dir = tu_tmpdir(), path[4096];
    sl_hwm_entry *e;
    size_t n, len;
    uint8_t *good;
    (void)state;
    snprintf(path, sizeof(path), "%s/%s", dir, SL_HWM_CKPT_FILE);
    assert_int_equal(sl_hwm_ckpt_write(path, entries, NE), SL_OK);
    good = tu_read_file(path, &len);
    /* cut at every length */
    for (size_t cut = 0; cut < len; cut++) {
        tu_write_file(path, good, cut);
        assert_int_equal(read_back(path, &e, &n), SL_ERR_CORRUPT);
        assert_null(e);
        assert_int_equal(n, 0);
    }
    /* one byte changed anywhere */
    for (size_t i = 0; i < len; i++) {
        good[i] ^= 0x01;
        tu_write_file(path, good, len);
        assert_int_equal(read_back(path, &e, &n), SL_ERR_CORRUPT);
        good[i] ^= 0x01;
    }
    /* bytes after the crc line */
    {
        uint8_t *more = malloc(len + 4);
        assert_non_null(more);
        memcpy(more, good, len);
        memcpy(more + len, "x 0\n", 4);
        tu_write_file(path, more, len + 4);
        assert_int_equal(read_back(path, &e, &n), SL_ERR_CORRUPT);
        free(more);
    }
    /* a right CRC over wrong contents */
    write_with_crc(path, "sluice-hwm 1\n2\nt 0 5\n");
    assert_int_equal(read_back(path, &e, &n), SL_ERR_CORRUPT);
    write_with_crc(path, "sluice-hwm 1\n1\nt 0 5\nt 1 6\n");
    assert_int_equal(read_back(path, &e, &n), SL_ERR_CORRUPT);
    write_with_crc(path, "sluice-hwm 1\n2\nt 0 5\nt 0 6\n");
    assert_int_equal(read_back(path, &e, &n), SL_ERR_CORRUPT);
    write_with_crc(path, "sluice-hwm 1\n1\nt 0 -5\n");
    assert_int_equal(read_back(path, &e, &n), SL_ERR_CORRUPT);
    write_with_crc(path, "sluice-hwm 1\n1\nt 0 5 9\n");
    assert_int_equal(read_back(path, &e, &n), SL_ERR_CORRUPT);
    write_with_crc(path, "sluice-hwm 2\n1\nt 0 5\n");
    assert_int_equal(read_back(path, &e, &n), SL_ERR_CORRUPT);
    /* and the same shape, right: read */
    write_with_crc(path, "sluice-hwm 1\n2\nt 0 5\nt 1 6\n");
    assert_int_equal(read_back(path, &e, &n), SL_OK);
    assert_int_equal(n, 2);
    sl_hwm_ckpt_free(e, n);
    free(good);
    tu_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_damaged_files_are_refused),
    };
    sl_log_level = getenv("SL_TEST_VERBOSE") ? SL_DEBUG : SL_ERROR;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
