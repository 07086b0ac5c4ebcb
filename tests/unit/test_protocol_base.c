/* Unit tests: error strings, bounded reader, varints, CRC-32C, batches. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "protocol/batch.h"
#include "protocol/crc32c.h"
#include "protocol/err.h"
#include "protocol/rd.h"

static void test_strerror_wraps_errno(void **state)
{
    (void)state;
    assert_string_equal(sl_strerror(SL_ESYS(ENOSPC)), strerror(ENOSPC));
    assert_string_equal(sl_errname(SL_ESYS(ENOSPC)), "ENOSPC");
    assert_true(SL_IS_ESYS(SL_ESYS(EIO)));
    assert_int_equal(SL_ERRNO(SL_ESYS(EIO)), EIO);
    assert_string_equal(sl_errname(SL_ERR_CORRUPT), "SL_ERR_CORRUPT");
    for (int i = 0; i < SL_ERR__END; i++)
        assert_non_null(sl_strerror(i));
}

static void test_reader_underflow(void **state)
{
    uint8_t b[3] = {1, 2, 3};
    sl_rd rd;
    (void)state;
    sl_rd_init(&rd, b, sizeof(b));
    assert_int_equal(sl_rd_u16(&rd), 0x0201);
    assert_int_equal(sl_rd_u32(&rd), 0);
    assert_int_equal(rd.err, SL_ERR_MALFORMED);
    assert_int_equal(sl_rd_u8(&rd), 0); /* sticky */
}

static void test_varint_roundtrip(void **state)
{
    int64_t vals[] = {0,   1,    -1,        63,        -64,      64,
                      300, -300, INT32_MAX, INT64_MIN, INT64_MAX};
    sl_wb wb;
    sl_rd rd;
    (void)state;
    sl_wb_init(&wb, 0);
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
        sl_wb_varint(&wb, vals[i]);
    sl_rd_init(&rd, wb.p, wb.len);
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
        assert_true(sl_rd_varint(&rd) == vals[i]);
    assert_int_equal(sl_rd_left(&rd), 0);
    /* An unterminated varint is malformed. */
    uint8_t bad[11];
    memset(bad, 0xff, sizeof(bad));
    sl_rd_init(&rd, bad, sizeof(bad));
    sl_rd_uvarint(&rd);
    assert_int_equal(rd.err, SL_ERR_MALFORMED);
    sl_wb_fini(&wb);
}

static void test_crc32c_known_vector(void **state)
{
    (void)state;
    /* RFC 3720 check value. */
    assert_int_equal(sl_crc32c(0, "123456789", 9), 0xE3069283u);
    /* Incremental equals one-shot. */
    uint32_t c = sl_crc32c(0, "1234", 4);
    assert_int_equal(sl_crc32c(c, "56789", 5), 0xE3069283u);
}

/* Bit by bit, as RFC 3720 defines it: what every faster path must give. */
static uint32_t crc32c_ref(uint32_t crc, const uint8_t *p, size_t len)
{
    crc = ~crc;
    while (len--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = crc & 1 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    return ~crc;
}

/* Long buffers go as three interleaved streams joined by a shift over
 * zeros (protocol/crc32c.c): every length around the block sizes (256 and
 * 8192 bytes, three at a time), odd starts, and chained calls. */
static void test_crc32c_long_buffers(void **state)
{
    enum { MAX = 3 * 8192 * 2 + 3 * 256 * 3 + 64 };
    static uint8_t buf[MAX + 8];
    static const size_t lens[] = {
        0,           1,           7,           8,
        255,         256,         767,         768,
        769,         3 * 256 + 8, 3 * 256 * 2, 8191,
        8192,        24575,       24576,       24577,
        24576 + 768, 24576 + 775, 2 * 24576,   2 * 24576 + 3 * 256 * 3 + 7,
        MAX};
    uint32_t seed = 12345;
    (void)state;
    for (size_t i = 0; i < sizeof(buf); i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (uint8_t)(seed >> 16);
    }
    for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++)
        for (size_t off = 0; off < 8; off += 3) {
            size_t n = lens[l] + off > MAX ? MAX - off : lens[l];
            uint32_t want = crc32c_ref(0, buf + off, n);
            assert_int_equal(sl_crc32c(0, buf + off, n), want);
            /* in two calls, split anywhere */
            uint32_t c = sl_crc32c(0, buf + off, n / 3);
            assert_int_equal(sl_crc32c(c, buf + off + n / 3, n - n / 3), want);
            /* and from a nonzero start */
            assert_int_equal(sl_crc32c(0xdeadbeefu, buf + off, n),
                             crc32c_ref(0xdeadbeefu, buf + off, n));
        }
}

static void roundtrip(int codec)
{
    sl_batch_builder bb;
    const uint8_t *p;
    size_t len;
    sl_batch_iter it;
    sl_record rec;
    sl_header hs[2] = {{"h1", 2, "v1", 2}, {"h2", 2, NULL, 0}};
    sl_batch_hdr h;
    char val[64];
    uint8_t *copy;
    int n = 0;

    sl_bb_init(&bb, codec);
    for (int i = 0; i < 100; i++) {
        snprintf(val, sizeof(val), "value-%d", i);
        assert_int_equal(sl_bb_add(&bb, 1000 + i, i % 2 ? "k" : NULL, 1, val,
                                   strlen(val), hs, i % 3 ? 2 : 0),
                         SL_OK);
    }
    assert_int_equal(sl_bb_finish(&bb, &p, &len), SL_OK);
    copy = malloc(len);
    memcpy(copy, p, len);
    assert_int_equal(sl_batch_verify(copy, len, &h), SL_OK);
    assert_int_equal(h.record_count, 100);
    assert_int_equal(h.first_timestamp, 1000);
    assert_int_equal(h.max_timestamp, 1099);
    assert_int_equal(h.attributes & SL_BATCH_ATTR_CODEC_MASK, codec);
    /* Setting the base offset keeps the CRC valid. */
    sl_batch_set_base_offset(copy, 5000);
    assert_int_equal(sl_batch_verify(copy, len, &h), SL_OK);
    assert_int_equal(sl_batch_iter_init(&it, copy, len), SL_OK);
    while (sl_batch_iter_next(&it, &rec, NULL)) {
        snprintf(val, sizeof(val), "value-%d", n);
        assert_int_equal(rec.offset, 5000 + n);
        assert_int_equal(rec.timestamp, 1000 + n);
        assert_int_equal(rec.value_len, (int)strlen(val));
        assert_memory_equal(rec.value, val, strlen(val));
        if (n % 2)
            assert_int_equal(rec.key_len, 1);
        else
            assert_int_equal(rec.key_len, -1);
        assert_int_equal(rec.header_count, n % 3 ? 2 : 0);
        if (n % 3) {
            sl_header out;
            assert_int_equal(sl_record_header_find(&rec, "h1", &out), SL_OK);
            assert_memory_equal(out.value, "v1", 2);
            assert_int_equal(sl_record_header(&rec, 1, &out), SL_OK);
            assert_null(out.value);
            /* one pass over all headers, in order, then the end */
            sl_header_iter hi;
            sl_record_headers_begin(&rec, &hi);
            for (int k = 0; k < 2; k++) {
                assert_int_equal(sl_record_headers_next(&hi, &out), SL_OK);
                assert_int_equal(out.key_len, hs[k].key_len);
                assert_memory_equal(out.key, hs[k].key, hs[k].key_len);
            }
            assert_int_equal(sl_record_headers_next(&hi, &out),
                             SL_ERR_NOT_FOUND);
            assert_int_equal(sl_record_header_find(&rec, "h9", &out),
                             SL_ERR_NOT_FOUND);
        }
        n++;
    }
    assert_int_equal(n, 100);
    sl_batch_iter_fini(&it);
    /* A flipped bit anywhere after the CRC start is detected. */
    for (size_t i = SL_BATCH_CRC_START; i < len; i += 7) {
        copy[i] ^= 0x10;
        assert_int_not_equal(sl_batch_verify(copy, len, NULL), SL_OK);
        copy[i] ^= 0x10;
    }
    /* Truncation is detected. */
    assert_int_equal(sl_batch_verify(copy, len - 1, NULL), SL_ERR_MALFORMED);
    free(copy);
    sl_bb_fini(&bb);
}

static void test_batch_roundtrip_plain(void **state)
{
    (void)state;
    roundtrip(SL_CODEC_NONE);
}

static void test_batch_roundtrip_zstd(void **state)
{
    (void)state;
    roundtrip(SL_CODEC_ZSTD);
}

static void test_batch_empty_refused(void **state)
{
    sl_batch_builder bb;
    const uint8_t *p;
    size_t len;
    (void)state;
    sl_bb_init(&bb, SL_CODEC_NONE);
    assert_int_equal(sl_bb_finish(&bb, &p, &len), SL_ERR_INVALID_ARG);
    sl_bb_fini(&bb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror_wraps_errno),
        cmocka_unit_test(test_reader_underflow),
        cmocka_unit_test(test_varint_roundtrip),
        cmocka_unit_test(test_crc32c_known_vector),
        cmocka_unit_test(test_crc32c_long_buffers),
        cmocka_unit_test(test_batch_roundtrip_plain),
        cmocka_unit_test(test_batch_roundtrip_zstd),
        cmocka_unit_test(test_batch_empty_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
