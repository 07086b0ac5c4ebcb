/*
 * frame.h - length-prefixed frames of the binary protocol.
 *
 *   request  frame: u32 length | u16 api_key | u16 api_version |
 *                   u32 correlation_id | body
 *   response frame: u32 length | u32 correlation_id | i32 error | rest
 *
 * length = bytes after the length field. Little-endian. A reader must check
 * the length against its max frame size BEFORE buffering the frame
 * (sl_frame_peek does). Pure functions, @thread any.
 */
#ifndef SL_FRAME_H
#define SL_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/err.h"
#include "protocol/rd.h"

#define SL_FRAME_LEN_SIZE 4
/* length prefix + api_key + api_version + correlation_id */
#define SL_REQ_HDR_SIZE 12
/* length prefix + correlation_id (the body then starts with i32 error) */
#define SL_RESP_HDR_SIZE 8
/* Default broker setting for the largest accepted frame (whole frame). */
#define SL_DEFAULT_MAX_FRAME (64u * 1024 * 1024)

/* sl_frame_peek: not a whole frame yet; read more bytes. */
#define SL_FRAME_PARTIAL 1

/*
 * Look at the start of a byte stream. Returns:
 *   SL_OK            a whole frame is available; *frame_len = 4 + length
 *                    (<= avail).
 *   SL_FRAME_PARTIAL fewer bytes than a whole frame. If the length prefix is
 *                    readable (avail >= 4), *frame_len is set to the size the
 *                    frame will have, so the caller knows how much to wait
 *                    for; otherwise *frame_len is untouched.
 *   SL_ERR_TOO_LARGE 4 + length > max_frame (*frame_len set, to name it in
 *                    an error message). The caller should answer with an
 *                    error and close: the stream cannot be resynchronised.
 *   SL_ERR_MALFORMED length < 8 (shorter than any request or response
 *                    header).
 */
int sl_frame_peek(const uint8_t *p, size_t avail, uint32_t max_frame,
                  size_t *frame_len);

typedef struct sl_req_hdr {
    uint16_t api_key;
    uint16_t api_version;
    uint32_t correlation_id;
} sl_req_hdr;

/*
 * Decode the request header of a whole frame (frame_len as returned by
 * sl_frame_peek). The body is frame + SL_REQ_HDR_SIZE, of
 * frame_len - SL_REQ_HDR_SIZE bytes. SL_OK or SL_ERR_MALFORMED (frame
 * shorter than the header or length field disagreeing with frame_len).
 * Does not check the api key or version: see sl_api_check (api.h).
 */
sl_err sl_req_hdr_decode(const uint8_t *frame, size_t frame_len,
                         sl_req_hdr *out);

/*
 * Response frame: SL_OK with *corr; body = frame + SL_RESP_HDR_SIZE,
 * frame_len - SL_RESP_HDR_SIZE bytes (>= 4: it starts with the i32 error).
 * SL_ERR_MALFORMED otherwise.
 */
sl_err sl_resp_hdr_decode(const uint8_t *frame, size_t frame_len,
                          uint32_t *corr);

/*
 * Writing frames. sl_req_begin appends a request header with a length
 * placeholder and returns the frame's start offset in wb; the caller appends
 * the body and calls sl_frame_finish(wb, start), which patches the length.
 * sl_resp_begin does the same for a response and writes the i32 error.
 * sl_frame_finish returns SL_OK, wb->err (SL_ERR_NOMEM / SL_ERR_TOO_LARGE
 * from a string), or SL_ERR_TOO_LARGE if the frame exceeds 4 GiB; on
 * failure it sets wb->len back to start and clears wb->err.
 */
size_t sl_req_begin(sl_wb *wb, uint16_t api_key, uint16_t api_version,
                    uint32_t corr);
size_t sl_resp_begin(sl_wb *wb, uint32_t corr, int32_t err);
sl_err sl_frame_finish(sl_wb *wb, size_t start);
/* Like sl_frame_finish for a frame whose last `external` bytes are not in
 * wb (zero-copy sends): length = wb->len - start - 4 + external. */
sl_err sl_frame_finish_ext(sl_wb *wb, size_t start, uint64_t external);

#endif
