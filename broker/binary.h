/*
 * binary.h - the binary-protocol dispatch table, and how handlers reply.
 *
 * Frames (protocol/frame.h, docs/protocol.md): u32 length, u16 api_key,
 * u16 api_version, u32 correlation_id, body. The connection (broker/conn.c)
 * cuts frames, enforces max-frame-bytes, checks api key and version against
 * the registered range, and keeps a FIFO of reply slots (sl_reply) so
 * pipelined requests are answered in order even when some complete later
 * (durable produce, long-poll fetch, queue acquire).
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

#include "broker/ops.h"
#include "protocol/err.h"

typedef struct sl_conn sl_conn;
typedef struct sl_reply sl_reply;

typedef struct sl_req {
    uint16_t api_key;
    uint16_t api_version;
    uint32_t correlation_id;
    uint8_t *body; /* borrowed: valid during the handler call only;
                      writable (produce writes base offsets in place) */
    size_t len;
    const char *peer; /* "IP:PORT" of the client, for log lines */
} sl_req;

typedef void (*sl_binary_handler)(sl_broker *b, sl_conn *c, const sl_req *req,
                                  sl_reply *r);

/* Register (or replace) the handler for api_key (< SL_API__MAX or up to
 * 1023). SL_OK or SL_ERR_INVALID_ARG. @thread loop (module init) */
sl_err sl_binary_register(sl_broker *b, uint16_t api_key, uint16_t min_version,
                          uint16_t max_version, sl_binary_handler fn);

/* Append bytes of the reply (whole frames as the api.h encoders write
 * them; a zero-copy reply interleaves sl_reply_add and sl_reply_add_file).
 * Copies. SL_OK or SL_ERR_NOMEM. */
sl_err sl_reply_add(sl_reply *r, const void *p, size_t len);
/* Append len bytes of file fd at off, sent with sendfile. Takes ownership
 * of fd (closed when sent or dropped, also on error). */
sl_err sl_reply_add_file(sl_reply *r, int fd, uint64_t off, size_t len);
/* The reply's buffer itself, for callers that build with libevent. */
struct evbuffer *sl_reply_evbuffer(sl_reply *r);
/* The correlation id the reply must carry. */
uint32_t sl_reply_corr(const sl_reply *r);
/* The reply is complete: it is sent once every earlier reply of the
 * connection is sent. r must not be used afterwards. */
void sl_reply_done(sl_reply *r);
/* Discard what the reply holds and answer with an error-only frame
 * (i32 err + str16 msg; msg may be NULL), then done. */
void sl_reply_error(sl_reply *r, sl_err err, const char *msg);
/* No reply at all (acks = none): the slot is removed silently. */
void sl_reply_drop(sl_reply *r);
/* If the connection closes while r is pending, fn(arg) runs once (cancel
 * timers, waits, watches) and r is freed by the connection: neither r nor
 * the connection may be used after fn. fn = NULL unregisters. */
void sl_reply_set_cancel(sl_reply *r, void (*fn)(void *arg), void *arg);

/*
 * Close hooks: fn(arg, c) runs once, from the loop, when the connection
 * stops taking requests, whichever comes first:
 *  - the peer ended its input (EOF), after the requests it had sent were
 *    dispatched: nothing more can be asked or settled on this connection,
 *    though replies still pending (a parked long poll) are sent before it
 *    closes; replies completed in fn (or later) are still delivered;
 *  - the connection closed (reset, idle timeout, protocol error,
 *    shutdown), right after the cancel functions of its pending replies
 *    ran (sl_reply_set_cancel), before the connection is freed (deferred,
 *    never inside its own callbacks).
 * Inside fn, c may be used for sl_conn_peer and as a key (compare
 * pointers) only; it must not be used after fn returns (the address may
 * be reused by a later connection). Registering the same (fn, arg) again
 * is a no-op, so a handler may register on every request. Hooks run in
 * registration order. SL_OK, SL_ERR_NOMEM, or SL_ERR_CLOSED when the
 * hooks already ran (fn will not run). @thread loop
 */
typedef void (*sl_conn_close_fn)(void *arg, sl_conn *c);
sl_err sl_conn_on_close(sl_conn *c, sl_conn_close_fn fn, void *arg);
/* Unregister (fn, arg), e.g. before freeing arg; no-op if absent or if the
 * hooks already ran. */
void sl_conn_off_close(sl_conn *c, sl_conn_close_fn fn, void *arg);

/* Peer "IP:PORT" of the connection (for logs). */
const char *sl_conn_peer(const sl_conn *c);
/* Close the connection after the replies queued so far are sent (for
 * protocol errors). Reading stops at once. */
void sl_conn_close_after_reply(sl_conn *c);

#endif
