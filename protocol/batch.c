/*
 * batch.c - record batch codec. The layout is documented in batch.h and in
 * docs/storage.md; read untrusted bytes only through sl_rd.
 */
#include "protocol/batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "protocol/crc32c.h"

sl_err sl_batch_hdr_decode(const uint8_t *p, size_t avail, sl_batch_hdr *h)
{
    sl_batch_hdr t;
    sl_rd rd;

    sl_rd_init(&rd, p, avail);
    t.base_offset = sl_rd_i64(&rd);
    t.length = sl_rd_u32(&rd);
    t.crc = sl_rd_u32(&rd);
    t.magic = sl_rd_u8(&rd);
    t.attributes = sl_rd_u16(&rd);
    t.last_offset_delta = sl_rd_i32(&rd);
    t.first_timestamp = sl_rd_i64(&rd);
    t.max_timestamp = sl_rd_i64(&rd);
    t.producer_id = sl_rd_i64(&rd);
    t.producer_epoch = sl_rd_i16(&rd);
    t.base_sequence = sl_rd_i32(&rd);
    t.record_count = sl_rd_u32(&rd);
    SL_RD_CHECK(&rd);
    if (t.magic != SL_BATCH_MAGIC)
        return SL_ERR_MALFORMED;
    /* Room for every record offset (base + delta) without wrapping. */
    if (t.base_offset < 0 || t.base_offset > INT64_MAX - INT32_MAX)
        return SL_ERR_MALFORMED;
    if (t.length < SL_BATCH_HDR_SIZE - 12)
        return SL_ERR_MALFORMED;
    if (t.length > SL_BATCH_MAX_SIZE - 12)
        return SL_ERR_TOO_LARGE;
    if (t.record_count < 1 ||
        (int64_t)t.last_offset_delta != (int64_t)t.record_count - 1)
        return SL_ERR_MALFORMED;
    if ((t.attributes & SL_BATCH_ATTR_CODEC_MASK) > SL_CODEC_ZSTD)
        return SL_ERR_MALFORMED;
    *h = t;
    return SL_OK;
err_parse:
    return SL_ERR_MALFORMED;
}

uint32_t sl_batch_compute_crc(const uint8_t *p, size_t len)
{
    return sl_crc32c(0, p + SL_BATCH_CRC_START, len - SL_BATCH_CRC_START);
}

sl_err sl_batch_verify(const uint8_t *p, size_t len, sl_batch_hdr *h)
{
    sl_batch_hdr t;
    sl_err rc = sl_batch_hdr_decode(p, len, &t);
    if (rc != SL_OK)
        return rc;
    if (sl_batch_size(&t) != len)
        return SL_ERR_MALFORMED;
    if (sl_batch_compute_crc(p, len) != t.crc)
        return SL_ERR_CORRUPT;
    if (h)
        *h = t;
    return SL_OK;
}

/* ---- builder --------------------------------------------------------- */

void sl_bb_init(sl_batch_builder *bb, int codec)
{
    sl_wb_init(&bb->buf, 1024);
    bb->codec = codec;
    sl_bb_reset(bb);
}

void sl_bb_fini(sl_batch_builder *bb)
{
    sl_wb_fini(&bb->buf);
}

void sl_bb_reset(sl_batch_builder *bb)
{
    sl_wb_reset(&bb->buf);
    bb->count = 0;
    bb->first_ts = 0;
    bb->max_ts = 0;
    bb->producer_id = -1;
    bb->producer_epoch = -1;
    bb->base_sequence = -1;
    /* Header placeholder; filled by finish. */
    uint8_t *d = sl_wb_reserve(&bb->buf, SL_BATCH_HDR_SIZE);
    if (d) {
        memset(d, 0, SL_BATCH_HDR_SIZE);
        bb->buf.len = SL_BATCH_HDR_SIZE;
    }
}

static size_t bytes_field_size(const void *p, size_t len)
{
    return p ? sl_varint_size((int64_t)len) + len : 1;
}

static uint8_t *put_bytes_field(uint8_t *d, const void *p, size_t len)
{
    if (!p)
        return d + sl_varint_put(d, -1);
    d += sl_varint_put(d, (int64_t)len);
    if (len)
        memcpy(d, p, len);
    return d + len;
}

sl_err sl_bb_add(sl_batch_builder *bb, int64_t ts, const void *key,
                 size_t key_len, const void *value, size_t value_len,
                 const sl_header *headers, size_t header_count)
{
    size_t body;
    int64_t ts_delta;
    uint8_t *d;

    if (bb->count == 0)
        bb->first_ts = bb->max_ts = ts;
    /* The delta must fit (ts is the caller's; signed overflow is UB). */
    if (__builtin_sub_overflow(ts, bb->first_ts, &ts_delta))
        return SL_ERR_INVALID_ARG;
    if (ts > bb->max_ts)
        bb->max_ts = ts;

    body = 1 + sl_varint_size(ts_delta) + sl_varint_size(bb->count) +
           bytes_field_size(key, key_len) + bytes_field_size(value, value_len) +
           sl_varint_size((int64_t)header_count);
    for (size_t i = 0; i < header_count; i++)
        body += bytes_field_size(headers[i].key ? headers[i].key : "",
                                 headers[i].key_len) +
                bytes_field_size(headers[i].value, headers[i].value_len);

    d = sl_wb_reserve(&bb->buf, body + 10);
    if (!d)
        return SL_ERR_NOMEM;
    d += sl_varint_put(d, (int64_t)body);
    *d++ = 0; /* attributes */
    d += sl_varint_put(d, ts_delta);
    d += sl_varint_put(d, bb->count);
    d = put_bytes_field(d, key, key_len);
    d = put_bytes_field(d, value, value_len);
    d += sl_varint_put(d, (int64_t)header_count);
    for (size_t i = 0; i < header_count; i++) {
        d = put_bytes_field(d, headers[i].key ? headers[i].key : "",
                            headers[i].key_len);
        d = put_bytes_field(d, headers[i].value, headers[i].value_len);
    }
    bb->buf.len = (size_t)(d - bb->buf.p);
    bb->count++;
    return SL_OK;
}

sl_err sl_bb_finish(sl_batch_builder *bb, const uint8_t **out, size_t *len)
{
    uint8_t *p;
    size_t total;

    if (bb->count == 0)
        return SL_ERR_INVALID_ARG;
    if (bb->buf.err)
        return SL_ERR_NOMEM;

    if (bb->codec == SL_CODEC_ZSTD) {
        size_t raw = bb->buf.len - SL_BATCH_HDR_SIZE;
        size_t bound = ZSTD_compressBound(raw);
        uint8_t *z = malloc(SL_BATCH_HDR_SIZE + bound);
        size_t zn;
        if (!z)
            return SL_ERR_NOMEM;
        zn = ZSTD_compress(z + SL_BATCH_HDR_SIZE, bound,
                           bb->buf.p + SL_BATCH_HDR_SIZE, raw, 1);
        if (ZSTD_isError(zn)) {
            free(z);
            return SL_ERR_COMPRESSION;
        }
        /* Swap buffers: the builder now holds the compressed batch. A
         * later sl_bb_reset starts over in it. */
        free(bb->buf.p);
        bb->buf.p = z;
        bb->buf.cap = SL_BATCH_HDR_SIZE + bound;
        bb->buf.len = SL_BATCH_HDR_SIZE + zn;
    }

    p = bb->buf.p;
    total = bb->buf.len;
    if (total > SL_BATCH_MAX_SIZE)
        return SL_ERR_TOO_LARGE;
    sl_put_u64(p + 0, 0);
    sl_put_u32(p + 8, (uint32_t)(total - 12));
    p[16] = SL_BATCH_MAGIC;
    uint16_t attr = (uint16_t)(bb->codec & SL_BATCH_ATTR_CODEC_MASK);
    memcpy(p + 17, &attr, 2);
    int32_t lod = (int32_t)bb->count - 1;
    memcpy(p + 19, &lod, 4);
    memcpy(p + 23, &bb->first_ts, 8);
    memcpy(p + 31, &bb->max_ts, 8);
    memcpy(p + 39, &bb->producer_id, 8);
    memcpy(p + 47, &bb->producer_epoch, 2);
    memcpy(p + 49, &bb->base_sequence, 4);
    memcpy(p + 53, &bb->count, 4);
    sl_put_u32(p + SL_BATCH_CRC_OFF, sl_batch_compute_crc(p, total));
    *out = p;
    *len = total;
    return SL_OK;
}

/* ---- iterator -------------------------------------------------------- */

static sl_err iter_init(sl_batch_iter *it, const uint8_t *p, size_t len,
                        size_t max_decompressed)
{
    sl_err rc;

    memset(it, 0, sizeof(*it));
    rc = sl_batch_hdr_decode(p, len, &it->hdr);
    if (rc != SL_OK)
        return rc;
    if (sl_batch_size(&it->hdr) > len)
        return SL_ERR_MALFORMED;
    len = sl_batch_size(&it->hdr);
    it->left = it->hdr.record_count;

    if ((it->hdr.attributes & SL_BATCH_ATTR_CODEC_MASK) == SL_CODEC_ZSTD) {
        const uint8_t *z = p + SL_BATCH_HDR_SIZE;
        size_t zn = len - SL_BATCH_HDR_SIZE;
        unsigned long long n = ZSTD_getFrameContentSize(z, zn);
        size_t got;
        if (n == ZSTD_CONTENTSIZE_ERROR || n == ZSTD_CONTENTSIZE_UNKNOWN)
            return SL_ERR_COMPRESSION;
        /* Check the declared size before allocating; ZSTD_decompress
         * into exactly n bytes then fails if the frame inflates further
         * (a lying header cannot make it write more). */
        if (n > max_decompressed)
            return SL_ERR_TOO_LARGE;
        it->owned = malloc(n ? n : 1);
        if (!it->owned)
            return SL_ERR_NOMEM;
        it->owned_cap = n;
        got = ZSTD_decompress(it->owned, n, z, zn);
        if (ZSTD_isError(got) || got != n)
            return SL_ERR_COMPRESSION;
        sl_rd_init(&it->rd, it->owned, n);
    } else {
        sl_rd_init(&it->rd, p + SL_BATCH_HDR_SIZE, len - SL_BATCH_HDR_SIZE);
    }
    return SL_OK;
}

sl_err sl_batch_iter_init(sl_batch_iter *it, const uint8_t *p, size_t len)
{
    return iter_init(it, p, len, SL_BATCH_MAX_DECOMPRESSED);
}

static const uint8_t *rd_bytes_field(sl_rd *rd, int32_t *len)
{
    int64_t n = sl_rd_varint(rd);
    if (rd->err)
        return NULL;
    if (n == -1) {
        *len = -1;
        return NULL;
    }
    if (n < 0 || n > INT32_MAX) {
        rd->err = SL_ERR_MALFORMED;
        return NULL;
    }
    *len = (int32_t)n;
    return sl_rd_bytes(rd, (size_t)n);
}

int sl_batch_iter_next(sl_batch_iter *it, sl_record *rec, sl_err *err)
{
    int64_t rlen, hc, ts_delta, off_delta;
    sl_rd r;
    const uint8_t *body;
    size_t hstart;

    if (err)
        *err = SL_OK;
    if (it->left == 0)
        return 0;
    rlen = sl_rd_varint(&it->rd);
    if (it->rd.err || rlen < 1)
        goto err_parse;
    body = sl_rd_bytes(&it->rd, (size_t)rlen);
    if (!body)
        goto err_parse;
    sl_rd_init(&r, body, (size_t)rlen);
    (void)sl_rd_u8(&r); /* attributes */
    ts_delta = sl_rd_varint(&r);
    off_delta = sl_rd_varint(&r);
    SL_RD_CHECK(&r);
    /* Both deltas come from the producer: the sums may not wrap (signed
     * overflow is undefined), and record i must claim offset delta i, or a
     * reader would jump past (or back over) other batches' offsets. */
    if (__builtin_add_overflow(it->hdr.first_timestamp, ts_delta,
                               &rec->timestamp))
        goto err_parse;
    if (off_delta != (int64_t)(it->hdr.record_count - it->left))
        goto err_parse;
    rec->offset = it->hdr.base_offset + off_delta;
    rec->key = rd_bytes_field(&r, &rec->key_len);
    SL_RD_CHECK(&r);
    rec->value = rd_bytes_field(&r, &rec->value_len);
    SL_RD_CHECK(&r);
    hc = sl_rd_varint(&r);
    SL_RD_CHECK(&r);
    if (hc < 0 || hc > (int64_t)rlen)
        goto err_parse;
    rec->header_count = (uint32_t)hc;
    hstart = r.off;
    for (int64_t i = 0; i < hc; i++) {
        int32_t l = 0;
        rd_bytes_field(&r, &l);
        rd_bytes_field(&r, &l);
        SL_RD_CHECK(&r);
    }
    rec->headers = body + hstart;
    rec->headers_len = r.off - hstart;
    it->left--;
    return 1;
err_parse:
    it->left = 0;
    if (err)
        *err = SL_ERR_MALFORMED;
    return 0;
}

/* ---- validation of produced batches ----------------------------------- */

#define VFAIL(...)                                                             \
    do {                                                                       \
        if (errbuf && errlen)                                                  \
            snprintf(errbuf, errlen, __VA_ARGS__);                             \
        rc = SL_ERR_MALFORMED;                                                 \
        goto out;                                                              \
    } while (0)

/*
 * The records are read with a bare cursor and an inlined varint decoder:
 * the broker validates every record of every produced batch, and through
 * sl_rd's out-of-line calls (six per record) the decoding was 15-20% of
 * the event loop's samples (issue 20). The checks and their messages are
 * sl_rd's: a varint longer than 10 bytes or cut by the end is an error,
 * and a failed read reads as 0 in the message.
 */
typedef struct vcur {
    const uint8_t *p, *end;
} vcur;

static inline int vc_varint(vcur *c, int64_t *out)
{
    const uint8_t *p = c->p;
    uint64_t v = 0;
    unsigned shift = 0;

    /* the common cases: one or two bytes (a 100-byte record's length,
     * value length and timestamp delta take two) */
    if (p < c->end && p[0] < 0x80) {
        *out = sl_unzigzag(p[0]);
        c->p = p + 1;
        return 0;
    }
    if (p + 1 < c->end && p[1] < 0x80) {
        *out = sl_unzigzag((uint64_t)(p[0] & 0x7f) | (uint64_t)p[1] << 7);
        c->p = p + 2;
        return 0;
    }
    for (int i = 0; i < 10 && p < c->end; i++) {
        uint8_t b = *p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = sl_unzigzag(v);
            c->p = p;
            return 0;
        }
        shift += 7;
    }
    *out = 0;
    c->p = c->end;
    return -1;
}

/* One length-prefixed bytes field of record i; *n = its length (-1 null). */
static inline int val_bytes(vcur *r, int64_t *n)
{
    if (vc_varint(r, n) != 0 || *n < -1 || *n > r->end - r->p)
        return -1;
    if (*n > 0)
        r->p += *n;
    return 0;
}

sl_err sl_batch_validate(const uint8_t *p, size_t len, size_t max_decompressed,
                         char *errbuf, size_t errlen)
{
    sl_batch_iter it;
    sl_batch_hdr *h = &it.hdr;
    sl_err rc;
    uint32_t i;
    vcur rs;

    if (errbuf && errlen)
        errbuf[0] = '\0';
    rc = iter_init(&it, p, len, max_decompressed);
    if (rc != SL_OK) {
        if (errbuf && errlen) {
            if (rc == SL_ERR_TOO_LARGE)
                snprintf(errbuf, errlen,
                         "compressed batch inflates beyond %zu bytes",
                         max_decompressed);
            else if (rc == SL_ERR_COMPRESSION)
                snprintf(errbuf, errlen,
                         "zstd frame does not decompress to its declared "
                         "content size");
            else
                snprintf(errbuf, errlen, "bad batch header");
        }
        goto out;
    }
    if (h->first_timestamp > h->max_timestamp)
        VFAIL("first_timestamp %lld is after max_timestamp %lld",
              (long long)h->first_timestamp, (long long)h->max_timestamp);
    rs.p = it.rd.p + it.rd.off;
    rs.end = it.rd.p + it.rd.len;
    for (i = 0; i < h->record_count; i++) {
        int64_t rlen, tsd, offd, n, hc, ts;
        int bad;
        vcur r;

        if (vc_varint(&rs, &rlen) != 0)
            VFAIL("record %u of %u: missing (batch ends early)", i,
                  h->record_count);
        if (rlen < 1 || rlen > rs.end - rs.p)
            VFAIL("record %u: length %lld outside the batch", i,
                  (long long)rlen);
        r.p = rs.p + 1; /* the attributes byte */
        r.end = rs.p + rlen;
        rs.p += rlen;
        bad = vc_varint(&r, &tsd) != 0;
        bad |= vc_varint(&r, &offd) != 0;
        if (bad)
            VFAIL("record %u: truncated deltas", i);
        if (offd != (int64_t)i)
            VFAIL("record %u: offset delta %lld, expected %u", i,
                  (long long)offd, i);
        if (__builtin_add_overflow(h->first_timestamp, tsd, &ts))
            VFAIL("record %u: timestamp delta %lld overflows", i,
                  (long long)tsd);
        if (ts > h->max_timestamp)
            VFAIL("record %u: timestamp %lld after the batch's "
                  "max_timestamp %lld",
                  i, (long long)ts, (long long)h->max_timestamp);
        if (val_bytes(&r, &n) != 0)
            VFAIL("record %u: key length %lld outside the record", i,
                  (long long)n);
        if (val_bytes(&r, &n) != 0)
            VFAIL("record %u: value length %lld outside the record", i,
                  (long long)n);
        if (vc_varint(&r, &hc) != 0 || hc < 0 || hc > r.end - r.p)
            VFAIL("record %u: header count %lld impossible in %lld bytes", i,
                  (long long)hc, (long long)rlen);
        for (int64_t k = 0; k < hc; k++) {
            if (val_bytes(&r, &n) != 0 || n < 0)
                VFAIL("record %u header %lld: bad key length %lld", i,
                      (long long)k, (long long)n);
            if (val_bytes(&r, &n) != 0)
                VFAIL("record %u header %lld: value length %lld outside the "
                      "record",
                      i, (long long)k, (long long)n);
        }
        if (r.p != r.end)
            VFAIL("record %u: %zu bytes left over after its fields", i,
                  (size_t)(r.end - r.p));
    }
    if (rs.p != rs.end)
        VFAIL("%zu bytes after the last of %u records", (size_t)(rs.end - rs.p),
              h->record_count);
    rc = SL_OK;
out:
    sl_batch_iter_fini(&it);
    return rc;
}

void sl_batch_iter_fini(sl_batch_iter *it)
{
    free(it->owned);
    it->owned = NULL;
}

void sl_record_headers_begin(const sl_record *rec, sl_header_iter *it)
{
    sl_rd_init(&it->rd, rec->headers, rec->headers_len);
    it->left = rec->header_count;
}

sl_err sl_record_headers_next(sl_header_iter *it, sl_header *out)
{
    int32_t kl = -1, vl = -1;
    const uint8_t *kp, *vp;
    if (it->left == 0)
        return SL_ERR_NOT_FOUND;
    kp = rd_bytes_field(&it->rd, &kl);
    vp = rd_bytes_field(&it->rd, &vl);
    if (it->rd.err || kl < 0) {
        it->left = 0;
        return SL_ERR_MALFORMED;
    }
    it->left--;
    out->key = (const char *)kp;
    out->key_len = (size_t)kl;
    out->value = vp;
    out->value_len = vl < 0 ? 0 : (size_t)vl;
    return SL_OK;
}

sl_err sl_record_header(const sl_record *rec, uint32_t i, sl_header *out)
{
    sl_header_iter it;
    sl_err rc;
    if (i >= rec->header_count)
        return SL_ERR_NOT_FOUND;
    sl_record_headers_begin(rec, &it);
    do {
        rc = sl_record_headers_next(&it, out);
    } while (rc == SL_OK && i-- > 0);
    return rc;
}

sl_err sl_record_header_find(const sl_record *rec, const char *key,
                             sl_header *out)
{
    size_t kl = strlen(key);
    sl_header_iter it;
    sl_header h;
    sl_err rc;
    /* one pass (sl_record_header(i) would walk from the start each time) */
    sl_record_headers_begin(rec, &it);
    while ((rc = sl_record_headers_next(&it, &h)) == SL_OK) {
        if (h.key_len == kl && memcmp(h.key, key, kl) == 0) {
            *out = h;
            return SL_OK;
        }
    }
    return rc;
}
