/*
 * rd.h - bounded reader and growable writer; the only way Sluice code reads
 * untrusted bytes.
 *
 * All multi-byte integers of Sluice (on disk and on the wire) are
 * little-endian. Varints are zigzag LEB128 as in protobuf/Kafka.
 *
 * Reader: every sl_rd_* call checks the remaining length. On underflow (or a
 * malformed varint) it sets rd->err = SL_ERR_MALFORMED, leaves the position,
 * and returns 0 / NULL; later calls keep failing. So a decoder reads a whole
 * structure and checks rd->err once, or uses SL_RD_CHECK(rd) to jump to its
 * err_parse label:
 *
 *     v = sl_rd_u32(&rd);
 *     SL_RD_CHECK(&rd);          // goto err_parse on underflow
 *
 * Writer: sl_wb is a growable buffer (malloc). sl_wb_* never fail silently:
 * on allocation failure wb->err = SL_ERR_NOMEM and further writes are no-ops.
 */
#ifndef SL_RD_H
#define SL_RD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "protocol/err.h"

typedef struct sl_rd {
    const uint8_t *p; /* borrowed; start of the buffer */
    size_t len;       /* total bytes */
    size_t off;       /* read position */
    int err;          /* SL_OK or first error */
} sl_rd;

static inline void sl_rd_init(sl_rd *rd, const void *p, size_t len)
{
    rd->p = (const uint8_t *)p;
    rd->len = len;
    rd->off = 0;
    rd->err = SL_OK;
}

static inline size_t sl_rd_left(const sl_rd *rd)
{
    return rd->err ? 0 : rd->len - rd->off;
}

#define SL_RD_CHECK(rd)                                                        \
    do {                                                                       \
        if ((rd)->err)                                                         \
            goto err_parse;                                                    \
    } while (0)

/* Returns a pointer to n bytes and advances, or NULL on underflow. */
static inline const uint8_t *sl_rd_bytes(sl_rd *rd, size_t n)
{
    const uint8_t *r;
    if (rd->err || rd->len - rd->off < n) {
        rd->err = SL_ERR_MALFORMED;
        return NULL;
    }
    r = rd->p + rd->off;
    rd->off += n;
    return r;
}

static inline uint8_t sl_rd_u8(sl_rd *rd)
{
    const uint8_t *b = sl_rd_bytes(rd, 1);
    return b ? b[0] : 0;
}

static inline uint16_t sl_rd_u16(sl_rd *rd)
{
    uint16_t v = 0;
    const uint8_t *b = sl_rd_bytes(rd, 2);
    if (b)
        memcpy(&v, b, 2);
    return v;
}

static inline uint32_t sl_rd_u32(sl_rd *rd)
{
    uint32_t v = 0;
    const uint8_t *b = sl_rd_bytes(rd, 4);
    if (b)
        memcpy(&v, b, 4);
    return v;
}

static inline uint64_t sl_rd_u64(sl_rd *rd)
{
    uint64_t v = 0;
    const uint8_t *b = sl_rd_bytes(rd, 8);
    if (b)
        memcpy(&v, b, 8);
    return v;
}

#define sl_rd_i16(rd) ((int16_t)sl_rd_u16(rd))
#define sl_rd_i32(rd) ((int32_t)sl_rd_u32(rd))
#define sl_rd_i64(rd) ((int64_t)sl_rd_u64(rd))

/* Unsigned LEB128, at most 10 bytes. */
uint64_t sl_rd_uvarint(sl_rd *rd);
/* Zigzag signed varint. */
int64_t sl_rd_varint(sl_rd *rd);

/* A u16-length-prefixed string (not NUL-terminated); sets *len.
 * Returns NULL on underflow. A length of 0xFFFF means NULL (len = 0) and
 * is not an error: check rd->err to tell them apart. */
const char *sl_rd_str16(sl_rd *rd, uint16_t *len);
/* A u32-length-prefixed byte string; 0xFFFFFFFF means NULL (see above). */
const uint8_t *sl_rd_bytes32(sl_rd *rd, uint32_t *len);

/* ---- writer ---------------------------------------------------------- */

typedef struct sl_wb {
    uint8_t *p; /* owned; free with sl_wb_fini */
    size_t len;
    size_t cap;
    int err;
} sl_wb;

void sl_wb_init(sl_wb *wb, size_t cap_hint);
void sl_wb_fini(sl_wb *wb);  /* accepts a zeroed wb */
void sl_wb_reset(sl_wb *wb); /* len = 0, keeps memory */
/* Ensure room for n more bytes; returns pointer to the write position or
 * NULL (wb->err set). Does not advance len. */
uint8_t *sl_wb_reserve(sl_wb *wb, size_t n);
void sl_wb_put(sl_wb *wb, const void *p, size_t n);
void sl_wb_u8(sl_wb *wb, uint8_t v);
void sl_wb_u16(sl_wb *wb, uint16_t v);
void sl_wb_u32(sl_wb *wb, uint32_t v);
void sl_wb_u64(sl_wb *wb, uint64_t v);
void sl_wb_uvarint(sl_wb *wb, uint64_t v);
void sl_wb_varint(sl_wb *wb, int64_t v);
/* s may be NULL (written as 0xFFFF). len must be < 0xFFFF. */
void sl_wb_str16(sl_wb *wb, const char *s, size_t len);
void sl_wb_bytes32(sl_wb *wb, const void *p, size_t len); /* p NULL -> null */
/* Overwrite 4 bytes at an earlier position (for length prefixes). */
void sl_wb_patch_u32(sl_wb *wb, size_t at, uint32_t v);

/* Varint encode into dst (>= 10 bytes); returns bytes written. */
size_t sl_uvarint_put(uint8_t *dst, uint64_t v);
size_t sl_varint_put(uint8_t *dst, int64_t v);
size_t sl_varint_size(int64_t v);

static inline uint64_t sl_zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}
static inline int64_t sl_unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* Little-endian helpers for fixed positions in a buffer already checked. */
static inline uint32_t sl_get_u32(const uint8_t *b)
{
    uint32_t v;
    memcpy(&v, b, 4);
    return v;
}
static inline uint64_t sl_get_u64(const uint8_t *b)
{
    uint64_t v;
    memcpy(&v, b, 8);
    return v;
}
static inline void sl_put_u32(uint8_t *b, uint32_t v)
{
    memcpy(b, &v, 4);
}
static inline void sl_put_u64(uint8_t *b, uint64_t v)
{
    memcpy(b, &v, 8);
}

#endif
