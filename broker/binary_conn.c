/*
 * binary_conn.c - the binary protocol on a connection (broker/conn.h's
 * ops): the frame cutter (max-frame-bytes, the auth's frame limit before
 * login), the dispatch through the table of sl_binary_register (api key
 * and version checked, the auth gate), and the module's start, which
 * registers every core handler.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/auth.h"
#include "broker/binary_groups.h"
#include "broker/binary_int.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "protocol/api.h"
#include "protocol/frame.h"
#include "protocol/log.h"

/* ---- dispatch ------------------------------------------------------------ */

void sl_binary_dispatch(sl_broker *b, sl_conn *c, sl_req *req, sl_reply *r)
{
    const sl_api_entry *e =
        req->api_key < SL_MAX_API ? &b->apis[req->api_key] : NULL;
    char msg[128];

    if (!e || !e->fn) {
        snprintf(msg, sizeof(msg), "unknown api key %u", req->api_key);
        sl_conn_warn(c, "unknown-api", "%s (correlation id %u)", msg,
                     req->correlation_id);
        sl_reply_error(r, SL_ERR_UNSUPPORTED_API, msg);
        return;
    }
    if (req->api_version < e->min_version ||
        req->api_version > e->max_version) {
        snprintf(msg, sizeof(msg),
                 "%s version %u not supported (supported: %u..%u)",
                 sl_api_name(req->api_key), req->api_version, e->min_version,
                 e->max_version);
        sl_conn_warn(c, "unsupported-version", "%s", msg);
        sl_reply_error(r, SL_ERR_UNSUPPORTED_VERSION, msg);
        return;
    }
    if (!sl_auth_binary_gate(b, c, req, r))
        return; /* not logged in, or no rule allows it: answered */
    b->api_requests[req->api_key]++; /* /metrics */
    sl_reply_time(r, &b->api_lat[req->api_key]);
    e->fn(b, c, req, r);
}

/* ---- the connection's input: frames -------------------------------------- */

/* Printable sample of untrusted bytes for a log line. */
static void sample(const uint8_t *p, size_t n, char *out, size_t outlen)
{
    size_t k = 0;
    if (n > 24)
        n = 24;
    for (size_t i = 0; i < n && k + 3 < outlen; i++)
        k += (size_t)snprintf(out + k, outlen - k, "%02x", p[i]);
    out[k] = '\0';
}

static void protocol_error(sl_conn *c, const uint8_t *p, size_t n,
                           const char *what)
{
    char hex[64];
    sample(p, n, hex, sizeof(hex));
    sl_conn_warn(c, "protocol-error", "protocol error (%s), first bytes %s",
                 what, hex);
}

/*
 * Cut frames with sl_frame_peek before anything is buffered beyond the
 * 12-byte header, so a declared length above max-frame-bytes is refused at
 * once (TOO_LARGE reply, then close). Every request gets a reply slot
 * (conn.h), answered in request order.
 */
static void bin_input(void *state, sl_conn *c, struct evbuffer *in)
{
    sl_broker *b = state;
    size_t more = 0; /* bytes of a cut frame still to come */

    do {
        uint8_t hdr[SL_REQ_HDR_SIZE], *p;
        size_t avail = evbuffer_get_length(in), h, flen = 0;
        sl_req_hdr rh;
        sl_reply *r;
        sl_req req;
        char msg[160];
        int prc;

        if (avail < SL_FRAME_LEN_SIZE)
            break;
        h = avail < sizeof(hdr) ? avail : sizeof(hdr);
        evbuffer_copyout(in, hdr, h);
        prc = sl_frame_peek(hdr, h, sl_auth_frame_limit(b, c), &flen);
        if (prc == SL_ERR_MALFORMED) {
            protocol_error(c, hdr, h, "frame length shorter than a header");
            sl_conn_abort(c, "broken framing");
            break;
        }
        if (prc == SL_ERR_TOO_LARGE) {
            if (h < SL_REQ_HDR_SIZE)
                break; /* wait for the correlation id to answer it */
            sl_req_hdr_decode(hdr, sizeof(hdr), &rh);
            snprintf(msg, sizeof(msg), "frame of %zu bytes exceeds %s %lld",
                     flen,
                     (int64_t)sl_auth_frame_limit(b, c) < b->cfg.max_frame_bytes
                         ? "the limit before login"
                         : "max-frame-bytes",
                     (long long)sl_auth_frame_limit(b, c));
            protocol_error(c, hdr, h, msg);
            r = sl_reply_new(c, sl_get_u32(hdr + 8));
            if (r)
                sl_reply_error(r, SL_ERR_TOO_LARGE, msg);
            sl_conn_close_after_reply(c);
            break;
        }
        if (avail < flen) {
            more = flen - avail;
            break;
        }
        p = evbuffer_pullup(in, (ev_ssize_t)flen);
        if (!p || sl_req_hdr_decode(p, flen, &rh) != SL_OK) {
            protocol_error(c, hdr, h, "undecodable request header");
            sl_conn_abort(c, "broken framing");
            break;
        }
        r = sl_reply_new(c, rh.correlation_id);
        if (!r) {
            sl_log(SL_ERROR, "binary", "peer %s: out of memory",
                   sl_conn_peer(c));
            sl_conn_abort(c, "out of memory");
            break;
        }
        req.api_key = rh.api_key;
        req.api_version = rh.api_version;
        req.correlation_id = rh.correlation_id;
        req.body = p + SL_REQ_HDR_SIZE;
        req.len = flen - SL_REQ_HDR_SIZE;
        req.peer = sl_conn_peer(c);
        sl_binary_dispatch(b, c, &req, r);
        evbuffer_drain(in, flen);
    } while (sl_conn_reading(c));
    /* the kernel wakes the loop once the rest of a large frame is there
     * (conn.c, "2. Reading"), 0 when nothing is missing */
    sl_conn_want_input(c, more);
}

static sl_err bin_open(void *arg, sl_conn *c, void **state)
{
    sl_auth_bin_open(arg, c);
    *state = arg;
    return SL_OK;
}

/* describe: the queue consumers the connection owns (admin
 * "connections"); the binary protocol has no login yet. */
static void bin_describe(void *state, sl_conn *c, struct sl_jw *j)
{
    sl_bg_describe_conn(state, c, j);
}

static const char *bin_user(void *state, sl_conn *c)
{
    (void)state;
    return sl_auth_conn_user(c);
}

static const sl_conn_ops bin_ops = {
    .name = "binary",
    .flags = SL_CONN_IDLE,
    /* a default libsluice batch (batch.size 256 KiB) and its request
     * header in one pass */
    .read_max = 1024 * 1024,
    .write_max = 1024 * 1024,
    .on_open = bin_open,
    .on_input = bin_input,
    .user = bin_user,
    .describe = bin_describe,
};

void sl_binary_init(sl_broker *b)
{
    sl_conn_set_proto(b, SL_LISTENER_BINARY, &bin_ops, b);
    sl_binary_topics_register(b);
    sl_binary_produce_register(b);
    sl_binary_fetch_register(b);
    sl_producer_id_init(b);
}
