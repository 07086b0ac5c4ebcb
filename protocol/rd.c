#include "protocol/rd.h"

#include <stdlib.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "Sluice's codecs assume a little-endian host"
#endif

uint64_t sl_rd_uvarint(sl_rd *rd)
{
    uint64_t v = 0;
    unsigned shift = 0;

    if (rd->err)
        return 0;
    for (int i = 0; i < 10; i++) {
        uint8_t b;
        if (rd->off >= rd->len)
            break;
        b = rd->p[rd->off++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
        shift += 7;
    }
    rd->err = SL_ERR_MALFORMED;
    return 0;
}

int64_t sl_rd_varint(sl_rd *rd)
{
    return sl_unzigzag(sl_rd_uvarint(rd));
}

const char *sl_rd_str16(sl_rd *rd, uint16_t *len)
{
    uint16_t n = sl_rd_u16(rd);
    if (rd->err)
        return NULL;
    if (n == 0xFFFF) {
        *len = 0;
        return NULL;
    }
    *len = n;
    return (const char *)sl_rd_bytes(rd, n);
}

const uint8_t *sl_rd_bytes32(sl_rd *rd, uint32_t *len)
{
    uint32_t n = sl_rd_u32(rd);
    if (rd->err)
        return NULL;
    if (n == 0xFFFFFFFFu) {
        *len = 0;
        return NULL;
    }
    *len = n;
    return sl_rd_bytes(rd, n);
}

void sl_wb_init(sl_wb *wb, size_t cap_hint)
{
    wb->p = NULL;
    wb->len = 0;
    wb->cap = 0;
    wb->err = SL_OK;
    if (cap_hint)
        sl_wb_reserve(wb, cap_hint);
}

void sl_wb_fini(sl_wb *wb)
{
    free(wb->p);
    wb->p = NULL;
    wb->len = wb->cap = 0;
}

void sl_wb_reset(sl_wb *wb)
{
    wb->len = 0;
    wb->err = SL_OK;
}

uint8_t *sl_wb_reserve(sl_wb *wb, size_t n)
{
    if (wb->err)
        return NULL;
    if (wb->cap - wb->len < n) {
        size_t ncap = wb->cap ? wb->cap * 2 : 256;
        uint8_t *np;
        while (ncap - wb->len < n)
            ncap *= 2;
        np = realloc(wb->p, ncap);
        if (!np) {
            wb->err = SL_ERR_NOMEM;
            return NULL;
        }
        wb->p = np;
        wb->cap = ncap;
    }
    return wb->p + wb->len;
}

void sl_wb_put(sl_wb *wb, const void *p, size_t n)
{
    uint8_t *d = sl_wb_reserve(wb, n);
    if (!d)
        return;
    if (n)
        memcpy(d, p, n);
    wb->len += n;
}

void sl_wb_u8(sl_wb *wb, uint8_t v)
{
    sl_wb_put(wb, &v, 1);
}
void sl_wb_u16(sl_wb *wb, uint16_t v)
{
    sl_wb_put(wb, &v, 2);
}
void sl_wb_u32(sl_wb *wb, uint32_t v)
{
    sl_wb_put(wb, &v, 4);
}
void sl_wb_u64(sl_wb *wb, uint64_t v)
{
    sl_wb_put(wb, &v, 8);
}

size_t sl_uvarint_put(uint8_t *dst, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        dst[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    dst[n++] = (uint8_t)v;
    return n;
}

size_t sl_varint_put(uint8_t *dst, int64_t v)
{
    return sl_uvarint_put(dst, sl_zigzag(v));
}

size_t sl_varint_size(int64_t v)
{
    uint64_t u = sl_zigzag(v);
    size_t n = 1;
    while (u >= 0x80) {
        u >>= 7;
        n++;
    }
    return n;
}

void sl_wb_uvarint(sl_wb *wb, uint64_t v)
{
    uint8_t *d = sl_wb_reserve(wb, 10);
    if (d)
        wb->len += sl_uvarint_put(d, v);
}

void sl_wb_varint(sl_wb *wb, int64_t v)
{
    sl_wb_uvarint(wb, sl_zigzag(v));
}

void sl_wb_str16(sl_wb *wb, const char *s, size_t len)
{
    if (!s) {
        sl_wb_u16(wb, 0xFFFF);
        return;
    }
    if (len >= 0xFFFF) {
        wb->err = SL_ERR_TOO_LARGE;
        return;
    }
    sl_wb_u16(wb, (uint16_t)len);
    sl_wb_put(wb, s, len);
}

void sl_wb_bytes32(sl_wb *wb, const void *p, size_t len)
{
    if (!p) {
        sl_wb_u32(wb, 0xFFFFFFFFu);
        return;
    }
    sl_wb_u32(wb, (uint32_t)len);
    sl_wb_put(wb, p, len);
}

void sl_wb_patch_u32(sl_wb *wb, size_t at, uint32_t v)
{
    if (!wb->err && at + 4 <= wb->len)
        memcpy(wb->p + at, &v, 4);
}
