/*
 * batch.h - the record batch: the unit on disk and on the wire.
 *
 * The batch a producer encodes is the batch that is stored and the batch
 * stream consumers receive. The broker checks its CRC and writes its base
 * offset; it never re-encodes it. All integers little-endian.
 *
 * Batch header (SL_BATCH_HDR_SIZE = 57 bytes):
 *
 *   off size field
 *     0    8 base_offset        i64  assigned by the broker on append
 *     8    4 length             u32  bytes after this field (batch = 12+length)
 *    12    4 crc                u32  CRC-32C of bytes [16, 12+length)
 *    16    1 magic              u8   = 2 (SL_BATCH_MAGIC)
 *    17    2 attributes         u16  bits 0-2 codec (0 none, 1 zstd),
 *                                    bit 5 control batch, others zero
 *    19    4 last_offset_delta  i32  record_count - 1
 *    23    8 first_timestamp    i64  ms since the epoch
 *    31    8 max_timestamp      i64
 *    39    8 producer_id        i64  -1 when not idempotent
 *    47    2 producer_epoch     i16
 *    49    4 base_sequence      i32
 *    53    4 record_count       u32  >= 1
 *    57      records (zstd frame of them when codec = zstd)
 *
 * The CRC excludes base_offset and length, so the broker can assign offsets
 * without recomputing it.
 *
 * Record (varints are zigzag LEB128):
 *   varint length           bytes of the record after this varint
 *   u8     attributes       0
 *   varint timestamp_delta  from first_timestamp
 *   varint offset_delta     from base_offset (0, 1, 2, ...)
 *   varint key_length       -1 = null key
 *   bytes  key
 *   varint value_length     -1 = null value (a tombstone for compaction)
 *   bytes  value
 *   varint header_count
 *   header_count x { varint key_length, key, varint value_length, value }
 *     (header value_length may be -1 = null)
 */
#ifndef SL_BATCH_H
#define SL_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/err.h"
#include "protocol/rd.h"

#define SL_BATCH_HDR_SIZE 57
#define SL_BATCH_MAGIC 2
#define SL_BATCH_LEN_OFF 8 /* where the u32 length is */
#define SL_BATCH_CRC_OFF 12
#define SL_BATCH_CRC_START 16
/* A batch may not exceed this (whole batch, bytes). */
#define SL_BATCH_MAX_SIZE (64u * 1024 * 1024)
/* Decompressed records of one batch may not exceed this when read (a
 * reader skips a batch that declares more as corrupt). The broker refuses
 * to store one declaring more than its max-frame-bytes (sl_batch_validate):
 * a compressed batch may not inflate beyond what an uncompressed one could
 * carry. */
#define SL_BATCH_MAX_DECOMPRESSED (64u * 1024 * 1024)

enum sl_codec { SL_CODEC_NONE = 0, SL_CODEC_ZSTD = 1 };
#define SL_BATCH_ATTR_CODEC_MASK 0x7
#define SL_BATCH_ATTR_CONTROL 0x20

typedef struct sl_batch_hdr {
    int64_t base_offset;
    uint32_t length; /* bytes after the length field */
    uint32_t crc;
    uint8_t magic;
    uint16_t attributes;
    int32_t last_offset_delta;
    int64_t first_timestamp;
    int64_t max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    uint32_t record_count;
} sl_batch_hdr;

/* Total size of the batch in bytes (12 + length). */
static inline size_t sl_batch_size(const sl_batch_hdr *h)
{
    return 12 + (size_t)h->length;
}
static inline int64_t sl_batch_last_offset(const sl_batch_hdr *h)
{
    return h->base_offset + h->last_offset_delta;
}

/*
 * Decode the header at p (avail bytes available). Checks magic, that the
 * length is sane (>= header, <= SL_BATCH_MAX_SIZE), record_count >= 1 and
 * last_offset_delta == record_count - 1, and codec known. Does NOT check that
 * the whole batch is within avail, nor the CRC.
 * Returns SL_OK, SL_ERR_MALFORMED (avail < header: need more bytes; or bad
 * fields), SL_ERR_TOO_LARGE. *h written only on success.
 */
sl_err sl_batch_hdr_decode(const uint8_t *p, size_t avail, sl_batch_hdr *h);

/* Check the header and the CRC of the batch at p, which must be exactly
 * len bytes (len == sl_batch_size). SL_OK, SL_ERR_MALFORMED,
 * SL_ERR_TOO_LARGE, SL_ERR_CORRUPT (CRC mismatch). */
sl_err sl_batch_verify(const uint8_t *p, size_t len, sl_batch_hdr *h);

/* Compute the CRC the batch at p (of total size len) should carry. */
uint32_t sl_batch_compute_crc(const uint8_t *p, size_t len);

/* Idempotent producer sequences (docs/protocol.md 4.5): seq + n in
 * sequence space, 0..INT32_MAX wrapping to 0 as Kafka's. */
static inline int32_t sl_seq_add(int32_t seq, int64_t n)
{
    return (int32_t)(((int64_t)seq + n) % ((int64_t)INT32_MAX + 1));
}

/* The base and last offsets the raw header at h claims (bytes [0, 8) and
 * [19, 23)), for walkers that read headers without a full decode. 0 when
 * no batch can have them, by sl_batch_hdr_decode's rule: a base outside
 * [0, INT64_MAX - INT32_MAX] or a negative last_offset_delta. Such a
 * header is damaged (its length is not to be trusted either); computing
 * base + delta from it would overflow. */
static inline int sl_batch_raw_offsets(const uint8_t *h, int64_t *base,
                                       int64_t *last)
{
    int64_t b = (int64_t)sl_get_u64(h);
    int32_t lod = (int32_t)sl_get_u32(h + 19);
    if (b < 0 || b > INT64_MAX - INT32_MAX || lod < 0)
        return 0;
    *base = b;
    *last = b + lod;
    return 1;
}

/* Write the base offset into a batch buffer (does not touch the CRC). */
static inline void sl_batch_set_base_offset(uint8_t *p, int64_t off)
{
    sl_put_u64(p, (uint64_t)off);
}

/* ---- building batches (producers, tests, the DLQ) --------------------- */

typedef struct sl_header {
    const char *key;
    size_t key_len;
    const void *value; /* NULL = null value */
    size_t value_len;
} sl_header;

typedef struct sl_batch_builder {
    sl_wb buf; /* header + uncompressed records */
    int codec;
    uint32_t count;
    int64_t first_ts;
    int64_t max_ts;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
} sl_batch_builder;

/* Start a batch. codec: SL_CODEC_NONE or SL_CODEC_ZSTD. */
void sl_bb_init(sl_batch_builder *bb, int codec);
void sl_bb_fini(sl_batch_builder *bb);
/* Drop the records, keep the memory and codec. */
void sl_bb_reset(sl_batch_builder *bb);
/* Append one record. key/value may be NULL (null). ts in ms.
 * Returns SL_OK, SL_ERR_NOMEM, or SL_ERR_INVALID_ARG when ts is too far
 * from the first record's to be stored as a delta. Data is copied. */
sl_err sl_bb_add(sl_batch_builder *bb, int64_t ts, const void *key,
                 size_t key_len, const void *value, size_t value_len,
                 const sl_header *headers, size_t header_count);
/* Bytes the batch will take uncompressed (header included). */
static inline size_t sl_bb_size(const sl_batch_builder *bb)
{
    return bb->buf.len;
}
/*
 * Finish: fill the header, compress if asked, compute the CRC. On success
 * *out points at the batch (owned by bb, valid until the next call on bb) and
 * *len is its size; base_offset is 0. Fails with SL_ERR_INVALID_ARG when
 * the batch is empty, SL_ERR_COMPRESSION, SL_ERR_NOMEM.
 */
sl_err sl_bb_finish(sl_batch_builder *bb, const uint8_t **out, size_t *len);

/* ---- reading records ------------------------------------------------- */

typedef struct sl_record {
    int64_t offset;
    int64_t timestamp;
    const uint8_t *key;   /* NULL when null; borrowed from the iterator */
    int32_t key_len;      /* -1 when null */
    const uint8_t *value; /* NULL when null */
    int32_t value_len;    /* -1 when null */
    uint32_t header_count;
    const uint8_t *headers; /* raw encoded headers; see sl_record_header */
    size_t headers_len;
} sl_record;

typedef struct sl_batch_iter {
    sl_batch_hdr hdr;
    sl_rd rd;       /* over the (decompressed) records */
    uint32_t left;  /* records not yet returned */
    uint8_t *owned; /* decompressed records, freed by fini */
    size_t owned_cap;
} sl_batch_iter;

/*
 * Iterate the records of one complete batch (p, len = its exact size). The
 * batch must stay valid while iterating (records borrow from it or from the
 * iterator's decompression buffer). Does not check the CRC (call
 * sl_batch_verify for untrusted input). Decompresses zstd batches.
 * Returns SL_OK, SL_ERR_MALFORMED, SL_ERR_COMPRESSION, SL_ERR_NOMEM.
 * Call sl_batch_iter_fini afterwards, also on error.
 */
sl_err sl_batch_iter_init(sl_batch_iter *it, const uint8_t *p, size_t len);
/* 1 = *rec filled; 0 = no more records; <0 never; on a malformed record
 * returns 0 with *err = SL_ERR_MALFORMED (err may be NULL). */
int sl_batch_iter_next(sl_batch_iter *it, sl_record *rec, sl_err *err);
void sl_batch_iter_fini(sl_batch_iter *it);

/*
 * Check every record of a batch the way readers will decode it (the broker
 * calls it on produce: a CRC only proves the producer meant these bytes).
 * record_count records with offset deltas 0..n-1 in order; each record's
 * fields exactly fill its length; key, value and header lengths inside the
 * record; header counts possible, header keys not null; timestamps that
 * do not overflow and do not exceed max_timestamp (first_timestamp <=
 * max_timestamp); nothing after the last record; a zstd batch's declared
 * content size at most max_decompressed, and the frame inflating to
 * exactly that size. Does not check the CRC (sl_batch_verify).
 * Returns SL_OK, SL_ERR_MALFORMED, SL_ERR_TOO_LARGE, SL_ERR_COMPRESSION or
 * SL_ERR_NOMEM; errbuf (may be NULL) names the record and the problem.
 * Memory: one decompression buffer of at most max_decompressed bytes.
 */
sl_err sl_batch_validate(const uint8_t *p, size_t len, size_t max_decompressed,
                         char *errbuf, size_t errlen);

/* Header i of rec (0-based, i < header_count), by scanning. Returns SL_OK
 * or SL_ERR_MALFORMED / SL_ERR_NOT_FOUND. Pointers borrow from rec. */
sl_err sl_record_header(const sl_record *rec, uint32_t i, sl_header *out);
/* First header with this key; SL_ERR_NOT_FOUND if none. */
/* Walk the headers once, in order: begin, then next until it returns
 * SL_ERR_NOT_FOUND (the end) or SL_ERR_MALFORMED. */
typedef struct sl_header_iter {
    sl_rd rd;
    uint32_t left;
} sl_header_iter;
void sl_record_headers_begin(const sl_record *rec, sl_header_iter *it);
sl_err sl_record_headers_next(sl_header_iter *it, sl_header *out);
sl_err sl_record_header_find(const sl_record *rec, const char *key,
                             sl_header *out);

#endif
