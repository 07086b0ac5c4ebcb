/*
 * fuzz_batch.c - record batches and varints, as a producer could send them.
 *
 * 1. The input is a "records" field: walk it with sl_records_next and
 *    sl_batch_verify as the broker does before an append.
 * 2. Each batch is copied, its CRC recomputed (so the fuzzer gets past the
 *    checksum), validated (sl_batch_validate, the broker's check on
 *    produce), verified and iterated record by record, headers included:
 *    this is what the broker's readers (queue delivery, STOMP, DLQ,
 *    compaction) run on stored batches. A batch the validator accepts
 *    must iterate to exactly record_count records at offsets base + i,
 *    timestamps <= max_timestamp, without an error.
 * 3. Varints: every zigzag varint read from the input is re-encoded and
 *    must read back equal, with the size sl_varint_size predicts.
 */
#include "tests/fuzz/fuzz_common.h"

#include "protocol/batch.h"

static void walk_batch(const uint8_t *p, size_t len)
{
    uint8_t *c = malloc(len ? len : 1);
    sl_batch_iter it;
    sl_batch_hdr h;
    sl_record rec;
    sl_err e = SL_OK;
    uint32_t n = 0;
    int valid;
    char why[256];

    memset(&it, 0, sizeof(it)); /* fini runs also when init did not */
    if (!c)
        return;
    memcpy(c, p, len);
    if (len >= SL_BATCH_HDR_SIZE)
        sl_put_u32(c + SL_BATCH_CRC_OFF, sl_batch_compute_crc(c, len));
    /* What the broker runs on produce: if it accepts the batch, every
     * reader must be able to read it exactly as announced. */
    valid = sl_batch_validate(c, len, 1u << 20, why, sizeof(why)) == SL_OK;
    if (sl_batch_verify(c, len, &h) == SL_OK &&
        sl_batch_iter_init(&it, c, len) == SL_OK) {
        while (sl_batch_iter_next(&it, &rec, &e) == 1) {
            sl_header_iter hi;
            sl_header hd;
            if (valid && (rec.offset != h.base_offset + n ||
                          rec.timestamp > h.max_timestamp))
                abort(); /* validated, yet a record lies */
            n++;
            fz_touch(rec.key, rec.key_len > 0 ? (size_t)rec.key_len : 0);
            fz_touch(rec.value, rec.value_len > 0 ? (size_t)rec.value_len : 0);
            sl_record_headers_begin(&rec, &hi);
            while (sl_record_headers_next(&hi, &hd) == SL_OK) {
                fz_touch(hd.key, hd.key_len);
                fz_touch(hd.value, hd.value_len);
            }
            (void)sl_record_header_find(&rec, "dlq.reason", &hd);
        }
        /* Never more records than the header announces; exactly as many
         * and no error when the batch was validated. */
        if (n > h.record_count || (valid && (n != h.record_count || e)))
            abort();
    } else if (valid) {
        abort(); /* validated but unreadable */
    }
    sl_batch_iter_fini(&it);
    free(c);
}

static void varints(const uint8_t *p, size_t len)
{
    sl_rd rd;
    sl_rd_init(&rd, p, len);
    while (sl_rd_left(&rd) > 0) {
        size_t before = rd.off;
        int64_t v = sl_rd_varint(&rd);
        uint8_t b[16];
        size_t n;
        sl_rd r2;
        if (rd.err)
            break;
        n = sl_varint_put(b, v);
        if (n != sl_varint_size(v) || n > 10)
            abort();
        sl_rd_init(&r2, b, n);
        if (sl_rd_varint(&r2) != v || r2.err || r2.off != n)
            abort();
        if (rd.off <= before)
            abort(); /* a read that succeeds consumes bytes */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0, boff, blen;
    sl_batch_hdr h;
    sl_err e;
    int nb = 0;

    while (sl_records_next(data, size, &off, &boff, &blen, &e)) {
        if (boff + blen > size)
            abort();
        (void)sl_batch_verify(data + boff, blen, &h);
        if (nb++ < 8)
            walk_batch(data + boff, blen);
    }
    /* A lone batch whose length field lies: iterate what is there. */
    if (nb == 0 && size >= SL_BATCH_HDR_SIZE &&
        sl_batch_hdr_decode(data, size, &h) == SL_OK &&
        sl_batch_size(&h) <= size)
        walk_batch(data, sl_batch_size(&h));
    varints(data, size);
    return 0;
}
