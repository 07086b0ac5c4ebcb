/*
 * conn.h - the connection layer: one sl_conn per client socket, whatever
 * protocol it speaks (broker/conn.c has the design essay).
 *
 * A protocol plugs in with an ops table and sl_conn_set_proto():
 *
 *     static const sl_conn_ops stomp_ops = {
 *         .name = "stomp", .flags = SL_CONN_HANDSHAKE,
 *         .read_max = 128 * 1024,
 *         .on_open = st_open, .on_input = st_input,
 *         .on_drain = st_drain, .on_close = st_close,
 *     };
 *     sl_conn_set_proto(b, SL_LISTENER_STOMP, &stomp_ops, srv);
 *
 * Every accepted socket of that listener then gets on_open (make the
 * protocol's state), on_input whenever bytes can be taken, on_drain when
 * it may write more, and on_close once, when the connection is freed.
 * The layer does the rest: the shared connection limits, reading (with
 * priorities), the ordered reply queue, back-pressure by memory, timeouts,
 * closing and reaping.
 * @thread loop (everything here)
 */
#ifndef SL_CONN_H
#define SL_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/util.h>

#include "broker/ops.h"
#include "broker/types.h"
#include "protocol/err.h"

typedef struct sl_conn sl_conn;
typedef struct sl_reply sl_reply;
typedef struct sl_wait sl_wait;
struct sl_jw;

/* The listeners a protocol can be attached to: enum sl_listener
 * (broker/types.h). */

/* The transport under a connection (conn_bev_new in conn.c): what the
 * listener that accepted it speaks below the protocol. */
enum sl_transport { SL_TRANSPORT_TCP = 0, SL_TRANSPORT_TLS = 1 };

/* sl_conn_ops.flags */
#define SL_CONN_IDLE 1u /* close after idle-timeout-ms of silence */
#define SL_CONN_HANDSHAKE                                                      \
    2u /* close unless sl_conn_handshake_done within                           \
          handshake-timeout-ms */
#define SL_CONN_QUIET                                                          \
    4u /* open and close lines at DEBUG, not INFO                              \
          (HTTP: one connection per scrape) */

typedef struct sl_conn_ops {
    const char *name; /* "binary", "stomp", "http": log lines */
    unsigned flags;   /* SL_CONN_* */
    size_t read_max;  /* bytes per read call (0: libevent's 16 KiB) */
    size_t write_max; /* bytes per write call (0: libevent's 16 KiB) */
    int64_t idle_ms;  /* SL_CONN_IDLE after this long instead of
                         idle-timeout-ms (0: the setting) */
    /* A connection was accepted: set *state. Anything but SL_OK closes
     * the socket (on_close is not called then). */
    sl_err (*on_open)(void *arg, sl_conn *c, void **state);
    /* Bytes are waiting in `in`: handle whole units (frames), draining
     * what was used; after each unit, stop once sl_conn_reading(c) is
     * false (paused, closing). Never called re-entrantly, nor while
     * paused or closing. A partial unit left in `in` is offered again
     * with more bytes. */
    void (*on_input)(void *state, sl_conn *c, struct evbuffer *in);
    /* The connection may write more: its output drained below half the
     * high-water mark, or sl_conn_kick asked for it; also once when it
     * starts closing (sl_conn_closing true: stop delivering, give back
     * what deliveries hold). Optional. */
    void (*on_drain)(void *state, sl_conn *c);
    /* Once, when the connection is freed (deferred: never inside another
     * of its callbacks). Release the state. Replies were cancelled and
     * close hooks ran before; c may be used for sl_conn_peer only. */
    void (*on_close)(void *state, sl_conn *c);
    /* Optional: the user the connection logged in as (NULL while none),
     * for the close log line and the listing. */
    const char *(*user)(void *state, sl_conn *c);
    /* Optional: add the protocol's keys to the connection's JSON object
     * in the admin listing (sl_conn_foreach): "user", "client",
     * "in_flight", "subscriptions". */
    void (*describe)(void *state, sl_conn *c, struct sl_jw *j);
} sl_conn_ops;

/* Attach a protocol to a listener (module init, before the listeners
 * accept). arg goes to on_open. */
void sl_conn_set_proto(sl_broker *b, enum sl_listener l, const sl_conn_ops *ops,
                       void *arg);
/*
 * A transport between the socket and the protocol (WebSocket; TLS): each
 * connection accepted on listener l gets its socket bufferevent wrapped
 * by wrap(arg, c, sock), which returns a filtering bufferevent over sock
 * (bufferevent_filter_new with BEV_OPT_CLOSE_ON_FREE), or NULL to refuse
 * the connection. The protocol then reads and writes the filtered bytes.
 * On close the layer flushes the filter with BEV_FINISHED (the transport
 * writes its goodbye: a WebSocket Close frame) and shuts the socket down
 * once the socket's own output has drained. c may be used with the
 * sl_conn_* calls from the filter's callbacks (sl_conn_warn,
 * sl_conn_close_after_reply).
 */
typedef struct bufferevent *(*sl_conn_wrap_fn)(void *arg, sl_conn *c,
                                               struct bufferevent *sock);
void sl_conn_set_transport(sl_broker *b, enum sl_listener l,
                           sl_conn_wrap_fn wrap, void *arg);
/* The arg registered for listener l with these ops (NULL if none, or if
 * other ops are attached): a module's state. */
void *sl_conn_proto_arg(sl_broker *b, enum sl_listener l,
                        const sl_conn_ops *ops);
/* The ops attached to listener l (NULL if none). */
const sl_conn_ops *sl_conn_proto_ops(sl_broker *b, enum sl_listener l);

/* ---- the connection ------------------------------------------------------ */

/* Peer "IP:PORT" of the connection (for logs). */
const char *sl_conn_peer(const sl_conn *c);
/* The connection's transport (SL_TRANSPORT_*). */
enum sl_transport sl_conn_transport(const sl_conn *c);
/* The subject of the client certificate a TLS connection presented and
 * that verified against tls-ca (tls-client-auth request|require), as an
 * RFC 2253 string ("CN=alice,O=Example"); NULL when there is none (plain
 * TCP, no certificate, handshake not finished). For the auth layer: the
 * TLS identity of the peer. */
const char *sl_conn_tls_subject(const sl_conn *c);
/* The commonName of that subject (NULL when none): the user name a
 * verified client certificate names. */
const char *sl_conn_tls_cn(const sl_conn *c);
/* Its first subjectAltName that is a DNS name or an email address, in
 * the certificate's order (NULL when none): tls-cert-login san. */
const char *sl_conn_tls_san(const sl_conn *c);
/* True while on_input may take more: not paused, not closing. */
int sl_conn_reading(const sl_conn *c);
/* True once the connection is closing or closed: write nothing more of
 * one's own accord (deliveries); owed replies still go out. */
int sl_conn_closing(const sl_conn *c);
/* True while the queued output (and replies) pass the high-water mark:
 * a protocol stops delivering until on_drain. */
int sl_conn_out_high(const sl_conn *c);
/* Bytes queued in the socket's output buffer. */
size_t sl_conn_out_len(const sl_conn *c);
/* Write bytes to the output now, outside the reply queue (deliveries,
 * heart-beats, the answer to a handshake). Copies. No-op once closed. */
void sl_conn_write(sl_conn *c, const void *p, size_t n);
/* sl_conn_write, but sent on the socket in this call when nothing is
 * queued before it (plain TCP only; conn_reply.c). */
void sl_conn_write_direct(sl_conn *c, const void *p, size_t n);
/* Bytes per write call on this connection from now on (its protocol's
 * write_max otherwise; conn_reply.c). */
void sl_conn_set_write_max(sl_conn *c, size_t n);
/* Send what the output holds now instead of on the next writable event
 * (small outputs only; see conn.c). */
void sl_conn_write_now(sl_conn *c);
/* Run on_drain (and take buffered input) from the loop, soon: deferred,
 * at most once per loop iteration however often it is asked. */
void sl_conn_kick(sl_conn *c);
/* 1 when the connection runs over TLS (sl_conn_transport; PLAIN logins
 * are refused otherwise). */
int sl_conn_is_tls(const sl_conn *c);
/* The login state of the connection (broker/auth.c): an object the
 * connection frees with free_fn when it is freed (after on_close). */
void *sl_conn_auth(const sl_conn *c);
void sl_conn_set_auth(sl_conn *c, void *auth, void (*free_fn)(void *));
/* Start the handshake timer and its input limit now, for a protocol
 * whose ops lack SL_CONN_HANDSHAKE but that needs a login on this
 * connection (binary, while authentication is on). */
void sl_conn_handshake_begin(sl_conn *c, size_t input_limit);
/* Stop reading until sl_conn_resume (e.g. while a password is checked).
 * Nested calls are not counted: one resume undoes them. */
void sl_conn_pause(sl_conn *c);
void sl_conn_resume(sl_conn *c);
/* Handshake finished (SL_CONN_HANDSHAKE): the handshake timer stops and
 * the input limit set by sl_conn_limit_input is lifted. */
void sl_conn_handshake_done(sl_conn *c);
/* The peer did its part of the handshake and the rest is the broker's (a
 * password check on another thread): the handshake timer stops; the input
 * limit stays until sl_conn_handshake_done. */
void sl_conn_handshake_wait(sl_conn *c);
/* Buffer at most `bytes` of input at a time (0 = no limit besides the
 * protocol's own): before a login, a peer may make the broker hold only
 * this much. */
void sl_conn_limit_input(sl_conn *c, size_t bytes);
/* The protocol cannot go on before `more` bytes beyond its input buffer
 * have come (the rest of a large frame; 0 = any byte will do). See
 * conn.c, "2. Reading": the kernel wakes the loop for a plain TCP
 * connection only once they are there. Call it on every return from
 * on_input (0 when nothing is missing). */
void sl_conn_want_input(sl_conn *c, size_t more);
/* A producer-only connection may be paced (SL_PRI_INGRESS, ops.h) when it
 * streams; 0 for one that also consumes. */
void sl_conn_set_pace(sl_conn *c, int may_pace);
/* Close once the replies queued so far are sent (protocol errors,
 * DISCONNECT): reading stops at once. Idempotent. */
void sl_conn_close_after_reply(sl_conn *c);
/* Close now: pending replies are cancelled, output is dropped. For a
 * peer that stopped answering. Safe inside callbacks (freed later). */
void sl_conn_abort(sl_conn *c, const char *why);

/*
 * WARN lines about a connection, rate-limited per connection and per kind
 * (a static string, e.g. "malformed"): the first of a kind in 10 s is
 * logged, the rest are counted and summed up by the next line of that
 * kind after the window ("... and 212 more like this in the last 10 s"),
 * or when the connection closes.
 */
void sl_conn_warn(sl_conn *c, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Close hooks: fn(arg, c) runs once, from the loop, when the connection
 * stops taking requests, whichever comes first:
 *  - the peer ended its input (EOF), after the requests it had sent were
 *    handled: nothing more can be asked or settled on this connection,
 *    though replies still pending (a parked long poll) are sent before it
 *    closes; replies completed in fn (or later) are still delivered;
 *  - the connection closed (reset, timeout, protocol error, shutdown),
 *    right after the cancel functions of its pending replies ran
 *    (sl_reply_set_cancel), before the connection is freed (deferred,
 *    never inside its own callbacks).
 * Inside fn, c may be used for sl_conn_peer and as a key (compare
 * pointers) only; it must not be used after fn returns (the address may
 * be reused by a later connection). Registering the same (fn, arg) again
 * is a no-op, so a handler may register on every request. Hooks run in
 * registration order. SL_OK, SL_ERR_NOMEM, or SL_ERR_CLOSED when the
 * hooks already ran (fn will not run).
 */
typedef void (*sl_conn_close_fn)(void *arg, sl_conn *c);
sl_err sl_conn_on_close(sl_conn *c, sl_conn_close_fn fn, void *arg);
/* Unregister (fn, arg), e.g. before freeing arg; no-op if absent or if the
 * hooks already ran. */
void sl_conn_off_close(sl_conn *c, sl_conn_close_fn fn, void *arg);

/* ---- the ordered reply queue --------------------------------------------- */

/*
 * A reply slot, appended to the connection's FIFO. Slots complete in any
 * order and are sent strictly in FIFO order. `tag` is the protocol's
 * (the binary correlation id). NULL when out of memory.
 */
sl_reply *sl_reply_new(sl_conn *c, uint32_t tag);
/* Append bytes to the reply. Copies. SL_OK or SL_ERR_NOMEM. */
sl_err sl_reply_add(sl_reply *r, const void *p, size_t len);
/* Append len bytes of file fd at off, sent with sendfile. Takes ownership
 * of fd (closed when sent or dropped, also on error). */
sl_err sl_reply_add_file(sl_reply *r, int fd, uint64_t off, size_t len);
/* The reply's buffer itself, for callers that build with libevent. */
struct evbuffer *sl_reply_evbuffer(sl_reply *r);
/* The tag given to sl_reply_new. */
uint32_t sl_reply_corr(const sl_reply *r);
/* The reply is complete: it is sent once every earlier reply of the
 * connection is sent (and its wait, if any, completed). r must not be
 * used afterwards. */
void sl_reply_done(sl_reply *r);
/* No reply at all: the slot is removed silently. */
void sl_reply_drop(sl_reply *r);
/* If the connection closes while r is pending, fn(arg) runs once (cancel
 * timers, waits, watches) and r is freed by the connection: neither r nor
 * the connection may be used after fn. fn = NULL unregisters. */
void sl_reply_set_cancel(sl_reply *r, void (*fn)(void *arg), void *arg);
/* Once r is written, cancel every later reply and close (STOMP ERROR). */
void sl_reply_close_after(sl_reply *r);
/* Time r from now until it moves to the output (its wait included: a
 * durable produce counts its fsync) into h, which must outlive r (the
 * broker's own). Dropped and cancelled replies are not counted. */
struct sl_lat_hist;
void sl_reply_time(sl_reply *r, struct sl_lat_hist *h);

/*
 * Waits: one operation a reply depends on, which completes through any
 * number of callbacks (an append's fsync, a group commit). Refcounted: by
 * the code that builds it, by each reply attached and by each callback
 * still to come, so it outlives the connection.
 *
 *     sl_wait *w = sl_wait_new(c);           // refs 1, "being built"
 *     sl_wait_hold(w);                       // a callback to come
 *     start_op(..., cb = sl_wait_release, w);
 *     sl_reply_wait(r, w);                   // r waits for w
 *     sl_wait_built(w);                      // building done: drop ref
 *
 * A reply attached to a wait is sent once the wait completed (every held
 * callback released, building done). If the wait failed and the reply has
 * a fail function (sl_reply_on_fail), that function rewrites the reply
 * first (e.g. into an ERROR with sl_reply_close_after).
 */
sl_wait *sl_wait_new(sl_conn *c);
void sl_wait_hold(sl_wait *w);
/* A held callback came back with err (the first failure is kept). Drops
 * the callback's reference. */
void sl_wait_release(sl_wait *w, sl_err err);
/* Done building: as sl_wait_release(w, SL_OK) for the building count. */
void sl_wait_built(sl_wait *w);
/* Set the wait to failed (err) without a callback. */
void sl_wait_fail(sl_wait *w, sl_err err);
void sl_wait_unref(sl_wait *w);
sl_err sl_wait_err(const sl_wait *w);
/* What the wait stands for, for the error a failed wait turns into. */
void sl_wait_set_what(sl_wait *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *sl_wait_what(const sl_wait *w);
/* r completes when w completes (r must be done already or later). */
void sl_reply_wait(sl_reply *r, sl_wait *w);
/* fn(state, r, err, what, note) runs if r's wait failed, just before r is
 * sent; note is a copy of `note` (e.g. a receipt id). */
typedef void (*sl_reply_fail_fn)(void *state, sl_reply *r, sl_err err,
                                 const char *what, const char *note);
void sl_reply_on_fail(sl_reply *r, sl_reply_fail_fn fn, const char *note);
/* Replace what the reply holds. */
void sl_reply_clear(sl_reply *r);

/* ---- the registry, read-only (admin "connections", /metrics) ----------- */

/* What the layer knows of one open connection. Strings are the
 * connection's: valid until it is freed (use them in the call only). */
typedef struct sl_conn_stat {
    uint64_t id;          /* unique for the broker's life, from 1 */
    const char *protocol; /* the ops' name: "binary", "stomp" */
    const char *listener; /* sl_conn_listener_name: "stomp-ws", ... */
    const char *peer;     /* "IP:PORT" */
    int64_t opened_ms;    /* wall clock (sl_now_ms) */
    uint64_t bytes_in;    /* read from the peer */
    uint64_t bytes_out;   /* queued to the peer (output and replies) */
    uint64_t replies;     /* reply slots taken (binary: requests) */
    size_t replies_owed;  /* replies not yet sent */
    size_t out_bytes;     /* output waiting for the peer */
    int closing;
} sl_conn_stat;
void sl_conn_stat_get(const sl_conn *c, sl_conn_stat *st);
/* Every open connection (not the closed ones waiting to be freed), newest
 * first: fn(arg, c, &stat, state) where state is the protocol's (for its
 * describe). fn must not close connections. */
void sl_conn_foreach(sl_broker *b,
                     void (*fn)(void *arg, sl_conn *c, const sl_conn_stat *st),
                     void *arg);
/* The open connection with this id, or NULL. */
sl_conn *sl_conn_find(sl_broker *b, uint64_t id);
/* The protocol's user and describe hooks of c (see sl_conn_ops). */
const char *sl_conn_user(sl_conn *c);
void sl_conn_describe(sl_conn *c, struct sl_jw *j);
/* Per listener: connections open now and accepted since the start, and
 * bytes in and out of the open and the closed ones together. */
typedef struct sl_conn_totals {
    uint64_t open, accepted, bytes_in, bytes_out;
} sl_conn_totals;
void sl_conn_totals_get(sl_broker *b, enum sl_listener l, sl_conn_totals *t);
/* "binary", "stomp", "stomp-ws": the listener's name in /metrics labels
 * and the connections listing (a listener added to enum sl_listener gets
 * its name in conn.c). */
const char *sl_conn_listener_name(enum sl_listener l);

/* ---- server.c ------------------------------------------------------------ */

void sl_conn_accept(sl_broker *b, enum sl_listener l, evutil_socket_t fd,
                    const struct sockaddr *sa, int salen);
/* The same for a listener of another transport (a TLS listener: the
 * socket gets a TLS bufferevent; the protocol is listener l's). */
void sl_conn_accept_on(sl_broker *b, enum sl_listener l, enum sl_transport t,
                       evutil_socket_t fd, const struct sockaddr *sa,
                       int salen);
/* Shutdown: stop reading, close each once its replies are sent. */
void sl_conn_stop_all(sl_broker *b);
/* Free every connection now (end of shutdown). */
void sl_conn_free_all(sl_broker *b);
void sl_conn_reap_cb(evutil_socket_t fd, short what, void *arg);
/* Set up the layer's events on the broker (after the base exists);
 * sl_conn_fini frees them. 0 or -1. */
int sl_conn_init(sl_broker *b);
void sl_conn_fini(sl_broker *b);
/* Accept failed with err (from the listener's error callback): on
 * EMFILE/ENFILE pause accepting (see conn.c). */
void sl_conn_accept_error(sl_broker *b, int err, evutil_socket_t lfd);

#endif
