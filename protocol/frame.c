/*
 * frame.c - length-prefixed frames (see frame.h and docs/protocol.md).
 */
#include "protocol/frame.h"

int sl_frame_peek(const uint8_t *p, size_t avail, uint32_t max_frame,
                  size_t *frame_len)
{
    uint32_t len;
    size_t total;

    if (avail < SL_FRAME_LEN_SIZE)
        return SL_FRAME_PARTIAL;
    len = sl_get_u32(p);
    total = (size_t)len + SL_FRAME_LEN_SIZE;
    *frame_len = total;
    /* Check the size before anyone buffers the frame: a peer must not be
     * able to make us allocate 4 GiB by sending 4 bytes. */
    if (total > max_frame)
        return SL_ERR_TOO_LARGE;
    if (len < 8)
        return SL_ERR_MALFORMED;
    if (avail < total)
        return SL_FRAME_PARTIAL;
    return SL_OK;
}

sl_err sl_req_hdr_decode(const uint8_t *frame, size_t frame_len,
                         sl_req_hdr *out)
{
    sl_rd rd;
    sl_req_hdr h;
    uint32_t len;

    sl_rd_init(&rd, frame, frame_len);
    len = sl_rd_u32(&rd);
    h.api_key = sl_rd_u16(&rd);
    h.api_version = sl_rd_u16(&rd);
    h.correlation_id = sl_rd_u32(&rd);
    if (rd.err || (size_t)len + SL_FRAME_LEN_SIZE != frame_len)
        return SL_ERR_MALFORMED;
    *out = h;
    return SL_OK;
}

sl_err sl_resp_hdr_decode(const uint8_t *frame, size_t frame_len,
                          uint32_t *corr)
{
    sl_rd rd;
    uint32_t len, c;

    sl_rd_init(&rd, frame, frame_len);
    len = sl_rd_u32(&rd);
    c = sl_rd_u32(&rd);
    sl_rd_i32(&rd); /* the error: the body must hold at least that */
    if (rd.err || (size_t)len + SL_FRAME_LEN_SIZE != frame_len)
        return SL_ERR_MALFORMED;
    *corr = c;
    return SL_OK;
}

size_t sl_req_begin(sl_wb *wb, uint16_t api_key, uint16_t api_version,
                    uint32_t corr)
{
    size_t start = wb->len;
    sl_wb_u32(wb, 0); /* patched by sl_frame_finish */
    sl_wb_u16(wb, api_key);
    sl_wb_u16(wb, api_version);
    sl_wb_u32(wb, corr);
    return start;
}

size_t sl_resp_begin(sl_wb *wb, uint32_t corr, int32_t err)
{
    size_t start = wb->len;
    sl_wb_u32(wb, 0);
    sl_wb_u32(wb, corr);
    sl_wb_u32(wb, (uint32_t)err);
    return start;
}

sl_err sl_frame_finish_ext(sl_wb *wb, size_t start, uint64_t external)
{
    sl_err rc = SL_OK;
    uint64_t len;

    if (wb->err) {
        rc = (sl_err)wb->err;
        goto out;
    }
    len = (uint64_t)(wb->len - start - SL_FRAME_LEN_SIZE) + external;
    if (len > UINT32_MAX) {
        rc = SL_ERR_TOO_LARGE;
        goto out;
    }
    sl_wb_patch_u32(wb, start, (uint32_t)len);
out:
    if (rc != SL_OK) {
        /* Leave no half frame behind: earlier pipelined frames stay. */
        if (wb->len > start)
            wb->len = start;
        wb->err = SL_OK;
    }
    return rc;
}

sl_err sl_frame_finish(sl_wb *wb, size_t start)
{
    return sl_frame_finish_ext(wb, start, 0);
}
