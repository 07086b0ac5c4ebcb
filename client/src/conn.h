/*
 * conn.h - one TCP (or TLS) connection to the broker: blocking sockets +
 * poll(2),
 * pipelined request frames, response frames matched by the caller through
 * correlation ids, reconnect with backoff. Not thread-safe: the owning
 * handle's mutex serialises every call.
 */
#ifndef SL_CLIENT_CONN_H
#define SL_CLIENT_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "client/src/internal.h"
#include "protocol/rd.h"

struct ssl_ctx_st;
struct ssl_st;

typedef struct sl_cl_conn {
    const sl_cl_cfg *cfg;       /* borrowed from the handle */
    int fd;                     /* -1 = not connected */
    struct ssl_ctx_st *tls_ctx; /* security.protocol=ssl: made once */
    struct ssl_st *tls;         /* the connection's TLS, NULL on TCP */
    int cur;                    /* the bootstrap address in use (cfg->boot_*) */
    /* a connection to one broker of a cluster (route.c): this address
     * only, not the bootstrap list; NULL = the bootstrap list */
    const char *fixed_host, *fixed_port;
    uint32_t next_corr;
    uint64_t epoch; /* +1 per successful connect */
    int64_t last_attempt_ms;
    uint32_t max_frame; /* from the handshake */
    sl_wb out;          /* frames to send; out_off already sent */
    size_t out_off;
    uint8_t *in; /* received bytes not yet framed */
    size_t in_len, in_cap;
    sl_chunk *big; /* large frame being read straight into place */
    size_t big_have;
} sl_cl_conn;

/* Queue a PRODUCE request (the same bytes as sl_produce_req_encode into
 * c->out) without copying the record batches when it can: with nothing
 * queued before it on a TCP connection the frame goes to the socket
 * straight from the batches (one sendmsg of header pieces and batches);
 * what the socket does not take, and everything under TLS or behind
 * queued output, is copied into c->out as before. A send error closes
 * nothing: it is left for the next write to report. */
struct sl_produce_req;
sl_err sl_cl_conn_queue_produce(sl_cl_conn *c, uint32_t corr,
                                const struct sl_produce_req *r);
void sl_cl_conn_init(sl_cl_conn *c, const sl_cl_cfg *cfg);
void sl_cl_conn_fini(sl_cl_conn *c);
int sl_cl_conn_connected(const sl_cl_conn *c);
/* Connect and handshake if not connected: the bootstrap addresses in
 * turn, from the one used last, until one answers. Honors
 * reconnect.backoff.ms (fails with SL_ERR_DISCONNECTED inside the backoff
 * window after an attempt on which every address failed). Detail via
 * sl_cl_fail naming the address. */
sl_err sl_cl_conn_ensure(sl_cl_conn *c);
/* Log in (sasl.c): nothing when no user is configured. */
sl_err sl_cl_sasl_login(sl_cl_conn *c);
/* Drop the connection (pending output and input are discarded). */
void sl_cl_conn_close(sl_cl_conn *c);
static inline uint32_t sl_cl_conn_corr(sl_cl_conn *c)
{
    return ++c->next_corr;
}
/* Write every queued byte of c->out (blocking up to deadline), reading
 * replies into the input buffer meanwhile so neither side stalls. */
sl_err sl_cl_conn_write(sl_cl_conn *c, int64_t deadline);
/* Write what the socket takes now; block (reading replies meanwhile)
 * only while more than max_pending bytes are still unsent. */
sl_err sl_cl_conn_write_bounded(sl_cl_conn *c, int64_t deadline,
                                size_t max_pending);
/* Write what the socket takes now without blocking. */
sl_err sl_cl_conn_write_some(sl_cl_conn *c);
/*
 * Next whole response frame, waiting up to deadline (sends pending output
 * meanwhile). *frame: chunk with the whole frame (length prefix included),
 * caller unrefs. SL_ERR_TIMEOUT, SL_ERR_DISCONNECTED (connection closed).
 */
sl_err sl_cl_conn_read(sl_cl_conn *c, int64_t deadline, sl_chunk **frame);
/* Body of a response frame (after length and corr) and its corr id. */
static inline const uint8_t *sl_frame_body(sl_chunk *f, size_t *len,
                                           uint32_t *corr)
{
    const uint8_t *p = sl_chunk_ptr(f);
    *len = f->len - 8;
    *corr = sl_get_u32(p + 4);
    return p + 8;
}

/* Convenience for sync calls: wb holds one encoded request with corr;
 * write it and wait for its response (other responses are an error:
 * callers use it only when nothing else is in flight). */
sl_err sl_cl_conn_call(sl_cl_conn *c, uint32_t corr, int64_t deadline,
                       sl_chunk **frame);

/* Check the top-level error of a response body; on error record the
 * broker's message with `what` via sl_cl_fail and return it. Returns
 * SL_ERR_PROTOCOL for a body too short to hold the error. */
sl_err sl_cl_resp_check(const uint8_t *body, size_t len, const char *what);
/* Map a decode failure of a reply to SL_ERR_PROTOCOL naming what. */
sl_err sl_cl_bad_reply(sl_err rc, const char *what);
#endif
