/*
 * binary.h - the binary-protocol dispatch table, and how handlers answer.
 *
 * Frames (docs/protocol.md): u32 length, then u16 api_key, u16 api_version,
 * u32 correlation_id, body. Responses: u32 length, u32 correlation_id, body
 * (which starts with an i32 error). The connection (broker/conn.c) cuts
 * frames, enforces max-frame-bytes, and keeps a FIFO of response slots so
 * pipelined requests are answered in order even when some complete later.
 *
 * Adding an API (e.g. broker/binary_groups.c):
 *
 *     static void h_join(sl_broker *b, sl_conn *c, const sl_req *req,
 *                        sl_resp *resp)
 *     {
 *         struct evbuffer *out = sl_resp_body(resp);
 *         ... decode req->body/req->len with protocol/api.h ...
 *         ... encode the response body (i32 error first) into out ...
 *         sl_resp_done(resp);          // now, or later from a callback
 *     }
 *     void sl_groups_module_init(sl_broker *b)
 *     {
 *         sl_binary_register(b, SL_API_JOIN_GROUP, 0, 0, "join_group",
 *                            h_join);
 *     }
 *
 * A handler must eventually call exactly one of sl_resp_done /
 * sl_resp_error / sl_resp_drop on its slot, or register a cancel function
 * (sl_resp_set_cancel) for the case that the connection closes first.
 * req->body is valid only during the handler call (copy what you keep).
 * Unknown api keys get SL_ERR_UNSUPPORTED_API; versions outside
 * [min_version, max_version] get SL_ERR_UNSUPPORTED_VERSION (the reply body
 * is then just the error code); the connection stays open in both cases.
 */
#ifndef SL_BINARY_H
#define SL_BINARY_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "broker/ops.h"
#include "protocol/err.h"

typedef struct sl_conn sl_conn;
typedef struct sl_resp sl_resp;

typedef struct sl_req {
    uint16_t api_key;
    uint16_t api_version;
    uint32_t correlation_id;
    const uint8_t *body; /* borrowed: valid during the handler call only;
                            writable (produce writes base offsets in place) */
    size_t len;
    const char *peer;    /* "IP:PORT" of the client, for log lines */
} sl_req;

typedef void (*sl_binary_handler)(sl_broker *b, sl_conn *c, const sl_req *req,
                                  sl_resp *resp);

/* Register (or replace) the handler for api_key. name is a static string
 * used in logs and metrics. SL_OK or SL_ERR_INVALID_ARG. @thread loop
 * (module init) */
sl_err sl_binary_register(sl_broker *b, uint16_t api_key,
                          uint16_t min_version, uint16_t max_version,
                          const char *name, sl_binary_handler fn);

/* The body buffer of the response: append the body (starting with the i32
 * error). The frame header is prepended by sl_resp_done. May hold file
 * segments (evbuffer_add_file) for zero-copy fetches. */
struct evbuffer *sl_resp_body(sl_resp *r);
/* The response is complete: it is sent once every earlier response of the
 * connection is sent. r must not be used afterwards. */
void sl_resp_done(sl_resp *r);
/* Discard whatever the body holds, answer with just the i32 error code, and
 * done. r must not be used afterwards. */
void sl_resp_error(sl_resp *r, sl_err err);
/* No response at all (acks = none): the slot is removed silently. */
void sl_resp_drop(sl_resp *r);
/* If the connection closes while r is pending, fn(arg) runs once (cancel
 * timers, waits, watches) and r is freed by the connection; r and the
 * connection must not be used after fn. Pass fn = NULL to unregister. */
void sl_resp_set_cancel(sl_resp *r, void (*fn)(void *arg), void *arg);

/* Peer "IP:PORT" of the connection (for logs). */
const char *sl_conn_peer(const sl_conn *c);
/* Ask the connection to close after the responses queued so far are
 * sent (protocol errors). Reading stops at once. */
void sl_conn_close_after_reply(sl_conn *c);

#endif
