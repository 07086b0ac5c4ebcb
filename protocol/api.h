/*
 * api.h - the Sluice binary protocol: api keys, versions, request and
 * response structures, encoders and decoders. Pure codec: no I/O.
 *
 * The wire format is specified byte by byte in docs/protocol.md; this header
 * is the C view of it. Shared by the broker (decode requests, encode
 * responses) and libsluice (encode requests, decode responses).
 *
 * Framing (protocol/frame.h):
 *
 *   request  = u32 length | u16 api_key | u16 api_version | u32 corr_id | body
 *   response = u32 length | u32 corr_id | i32 error | body
 *
 * `length` counts the bytes after itself. Everything is little-endian.
 * Strings are "str16": u16 length + bytes (no NUL); 0xFFFF = null.
 * Byte strings are "bytes32": u32 length + bytes. Arrays are a u32 count
 * followed by the elements.
 *
 * Top-level response error: every response body starts with an i32 error
 * (an sl_err). When it is not SL_OK, a str16 message naming the problem
 * follows and the body ENDS there (no API-specific fields). This is also the
 * shape of the replies to unknown api keys (SL_ERR_UNSUPPORTED_API),
 * unsupported versions (SL_ERR_UNSUPPORTED_VERSION) and malformed requests
 * (SL_ERR_MALFORMED). Per-item errors (per topic, partition, range) are
 * i32 fields inside a successful body.
 *
 * This header includes every part of the codec; each api family has its
 * own header and source file:
 *   api_common.h   api keys and versions, sl_str, sl_arena, result types,
 *                  error-only and status responses, the records field,
 *                  the zero-copy response encoder (sl_resp_enc)
 *   api_admin.h    HANDSHAKE, METADATA, CREATE/DELETE/LIST_TOPICS, ADMIN
 *   api_produce.h  PRODUCE, INIT_PRODUCER_ID
 *   api_fetch.h    FETCH, LIST_OFFSETS
 *   api_group.h    stream groups (GROUP_*, OFFSET_COMMIT, OFFSET_FETCH)
 *   api_queue.h    queue groups (QUEUE_*, DLQ_LIST, DLQ_REDRIVE)
 *   api_cluster.h  CLUSTER_STATUS, CLUSTER_FORWARD
 *   api_sasl.h     SASL_HANDSHAKE, SASL_AUTHENTICATE
 * Code outside protocol/ includes this header.
 *
 * C conventions of these headers:
 * - sl_str: a borrowed, length-counted string, NOT NUL-terminated. p == NULL
 *   is the null string (encoded as 0xFFFF); {"" , 0} is the empty string.
 * - Encoders (`*_encode`) append ONE WHOLE FRAME (length prefix included) to
 *   wb at wb->len, so several requests can be pipelined in one buffer. They
 *   return SL_OK, SL_ERR_NOMEM, SL_ERR_TOO_LARGE (a string >= 65535 bytes,
 *   or a frame >= 4 GiB) or SL_ERR_INVALID_ARG; on failure wb->len is
 *   restored to what it was and wb->err cleared.
 * - Request decoders (`*_req_decode`) take the request BODY: the bytes after
 *   the 12-byte request header (frame + SL_REQ_HDR_SIZE). Response decoders
 *   (`*_resp_decode`) take the response BODY starting at the i32 error
 *   (frame + SL_RESP_HDR_SIZE). They read only through sl_rd and return
 *   SL_OK, SL_ERR_MALFORMED (truncated input, trailing bytes, counts larger
 *   than the remaining bytes could hold, bad enum values), SL_ERR_NOMEM,
 *   or SL_ERR_TOO_LARGE (the arena's limit, see sl_arena).
 *   *out is written only on success.
 * - Decoded structures BORROW from the input buffer (strings, record bytes)
 *   and from the arena (arrays): both must outlive the structure. Arrays are
 *   allocated in the caller's sl_arena; before allocating, every count is
 *   checked against the bytes left (count * minimum element size), so the
 *   memory a decoder uses is bounded by a small multiple of the frame size.
 *   On error the arena may hold partial allocations: reset or fini it.
 * - A response decoder that reads a non-zero top-level error fills only
 *   out->error and out->error_msg (other fields zero) and returns SL_OK.
 * - All functions are @thread any (no shared state).
 */
#ifndef SL_API_H
#define SL_API_H

#include "protocol/api_common.h"
#include "protocol/api_admin.h"
#include "protocol/api_produce.h"
#include "protocol/api_fetch.h"
#include "protocol/api_group.h"
#include "protocol/api_queue.h"
#include "protocol/api_cluster.h"
#include "protocol/api_sasl.h"

#endif
