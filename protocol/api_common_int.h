/*
 * api_common_int.h - helpers shared by the protocol/api_*.c codecs
 * (defined in api_common.c). Internal to protocol/: not for the broker or
 * the client.
 */
#ifndef SL_API_COMMON_INT_H
#define SL_API_COMMON_INT_H

#include "protocol/api_common.h"

/* Minimum encoded sizes, used to bound counts before allocating. */
#define SL_MIN_STR 2

/* A str16 as an sl_str (p NULL for a null string or on underflow). */
static inline sl_str sl__rd_str(sl_rd *rd)
{
    uint16_t n = 0;
    const char *p = sl_rd_str16(rd, &n);
    sl_str s;
    s.p = p;
    s.len = p ? n : 0;
    return s;
}

static inline void sl__wb_str(sl_wb *wb, sl_str s)
{
    sl_wb_str16(wb, s.p, s.len);
}

/*
 * Read a u32 count of elements that each take at least min_size bytes on
 * the wire. A count the remaining bytes cannot hold is malformed (so a
 * decoder never allocates for elements that are not there).
 */
uint32_t sl__rd_count(sl_rd *rd, size_t min_size);

/* count * size zeroed bytes from the arena (NULL when count == 0); on
 * allocation failure sets rd->err = SL_ERR_NOMEM and returns NULL. */
void *sl__rd_array(sl_rd *rd, sl_arena *a, uint32_t count, size_t size);

/* End of a decode: rd->err, or SL_ERR_MALFORMED when bytes are left over. */
sl_err sl__rd_end(sl_rd *rd);

/* Read `u32 length + bytes` into (*p, *len); no null allowed. */
const uint8_t *sl__rd_blob(sl_rd *rd, size_t *len);

/* u32 count + str16s. */
void sl__put_strs(sl_wb *wb, uint32_t n, const sl_str *s);
sl_str *sl__get_strs(sl_rd *rd, sl_arena *a, uint32_t *n);

/* u32 count + {str16 key, str16 value} pairs. */
void sl__put_kvs(sl_wb *wb, uint32_t n, const sl_kv *kv);
sl_kv *sl__get_kvs(sl_rd *rd, sl_arena *a, uint32_t *n);

/* An error-only response frame with an sl_str message. */
sl_err sl__resp_error(sl_wb *wb, uint32_t corr, int32_t err, sl_str msg);

/*
 * Start decoding a response body: reads the i32 error, and when it is not
 * SL_OK the message. Returns 1 when the body continues (error == SL_OK).
 */
static inline int sl__rd_resp_status(sl_rd *rd, int32_t *err, sl_str *msg)
{
    *err = sl_rd_i32(rd);
    if (rd->err || *err == SL_OK)
        return !rd->err;
    *msg = sl__rd_str(rd);
    return 0;
}

#endif
