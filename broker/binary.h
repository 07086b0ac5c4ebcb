/*
 * binary.h - the binary-protocol dispatch table, and how handlers reply.
 *
 * Frames (protocol/frame.h, docs/protocol.md): u32 length, u16 api_key,
 * u16 api_version, u32 correlation_id, body. binary.c cuts frames (the
 * on_input of its connection ops, broker/conn.h), enforces max-frame-bytes
 * and checks api key and version against the registered range; the
 * connection layer keeps a FIFO of reply slots (sl_reply) so pipelined
 * requests are answered in order even when some complete later (durable
 * produce, long-poll fetch, queue acquire).
 *
 * Adding an API (e.g. broker/binary_groups.c):
 *
 *     static void h_join(sl_broker *b, sl_conn *c, const sl_req *req,
 *                        sl_reply *r)
 *     {
 *         sl_wb wb;  sl_arena a;  sl_group_join_req q;  ...
 *         if (sl_group_join_req_decode(req->body, req->len, &a, &q)) {
 *             sl_reply_error(r, SL_ERR_MALFORMED, "GROUP_JOIN: bad body");
 *             return;
 *         }
 *         sl_group_join_resp_encode(&wb, req->correlation_id, &resp);
 *         sl_reply_add(r, wb.p, wb.len);   // whole frame, as encoded
 *         sl_reply_done(r);                // now, or later from a callback
 *     }
 *     void sl_groups_module_init(sl_broker *b)
 *     {
 *         sl_binary_register(b, SL_API_GROUP_JOIN, 1, 1, h_join);
 *     }
 *
 * The protocol encoders (protocol/api.h) write whole frames (length and
 * correlation id included): a handler adds those bytes to its reply as is.
 * A handler must eventually call exactly one of sl_reply_done /
 * sl_reply_error / sl_reply_drop, or be told by its cancel function
 * (sl_reply_set_cancel) that the connection closed first.
 * req->body is valid only during the handler call (copy what you keep).
 * Unknown api keys get SL_ERR_UNSUPPORTED_API; versions outside the
 * registered [min_version, max_version] get SL_ERR_UNSUPPORTED_VERSION
 * (error-only replies, sl_resp_error_encode); the connection stays open.
 */
#ifndef SL_BINARY_H
#define SL_BINARY_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "broker/conn.h"
#include "broker/ops.h"
#include "broker/types.h"
#include "protocol/err.h"

struct sl_req {
    uint16_t api_key;
    uint16_t api_version;
    uint32_t correlation_id;
    uint8_t *body; /* borrowed: valid during the handler call only;
                      writable (produce writes base offsets in place) */
    size_t len;
    const char *peer; /* "IP:PORT" of the client, for log lines */
};

/* typedef sl_binary_handler: broker/types.h */

/* Register (or replace) the handler for api_key (< SL_API__MAX or up to
 * 1023). SL_OK or SL_ERR_INVALID_ARG. @thread loop (module init) */
sl_err sl_binary_register(sl_broker *b, uint16_t api_key, uint16_t min_version,
                          uint16_t max_version, sl_binary_handler fn);

/* Discard what the reply holds and answer with an error-only frame
 * (i32 err + str16 msg; msg may be NULL), then done. */
void sl_reply_error(sl_reply *r, sl_err err, const char *msg);
/* The reply API (sl_reply_add, sl_reply_add_file, sl_reply_done,
 * sl_reply_drop, sl_reply_set_cancel), close hooks (sl_conn_on_close) and
 * sl_conn_peer / sl_conn_close_after_reply are in broker/conn.h. */

#endif
