/*
 * fuzz_zstd.c - zstd-compressed batches. The input is the compressed
 * payload (after the 57-byte header); the target wraps it in a valid
 * header (codec zstd, a record count taken from the first input byte, a
 * correct CRC) so every input reaches the decompressor and the record
 * parser behind it: lying frame content sizes, truncated frames, frames
 * that inflate to more than the limits, records that do not match the
 * count. A payload the broker's validator accepts (sl_batch_validate
 * with a 1 MiB inflation limit) must iterate to exactly `count` records.
 */
#include "tests/fuzz/fuzz_common.h"

#include "protocol/batch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t len;
    uint8_t *b;
    uint32_t count;
    sl_batch_iter it;
    sl_batch_hdr h;
    sl_record rec;
    sl_err e = SL_OK;
    uint32_t n = 0;
    int valid;

    memset(&it, 0, sizeof(it)); /* fini runs also when init did not */

    if (size < 1)
        return 0;
    count = 1u + data[0] % 64;
    data++;
    size--;
    len = SL_BATCH_HDR_SIZE + size;
    b = calloc(1, len);
    if (!b)
        return 0;
    sl_put_u32(b + SL_BATCH_LEN_OFF, (uint32_t)(len - 12));
    b[16] = SL_BATCH_MAGIC;
    b[17] = SL_CODEC_ZSTD;
    sl_put_u32(b + 19, count - 1);
    sl_put_u64(b + 39, (uint64_t)-1); /* producer id */
    sl_put_u32(b + 53, count);
    memcpy(b + SL_BATCH_HDR_SIZE, data, size);
    sl_put_u32(b + SL_BATCH_CRC_OFF, sl_batch_compute_crc(b, len));
    valid = sl_batch_validate(b, len, 1u << 20, NULL, 0) == SL_OK;
    if (sl_batch_verify(b, len, &h) == SL_OK &&
        sl_batch_iter_init(&it, b, len) == SL_OK) {
        while (sl_batch_iter_next(&it, &rec, &e) == 1) {
            if (valid && rec.offset != n)
                abort();
            n++;
            fz_touch(rec.key, rec.key_len > 0 ? (size_t)rec.key_len : 0);
            fz_touch(rec.value, rec.value_len > 0 ? (size_t)rec.value_len : 0);
            fz_touch(rec.headers, rec.headers_len);
        }
        if (n > count || (valid && (n != count || e)))
            abort();
    } else if (valid) {
        abort(); /* validated but unreadable */
    }
    sl_batch_iter_fini(&it);
    free(b);
    return 0;
}
