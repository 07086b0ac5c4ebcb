/*
 * ws.c - STOMP over WebSocket (RFC 6455): the transport behind
 * --stomp-ws-listen, for browser applications using @stomp/stompjs as
 * they do against RabbitMQ's Web-STOMP (ws://HOST:15674/ws) or ActiveMQ's
 * ws://HOST:61614.
 *
 * Design
 * ------
 * WebSocket is a transport, not a protocol of its own: each accepted
 * socket of the WebSocket listener is wrapped in a bufferevent filter
 * (sl_conn_set_transport, conn.c) and the connection then runs the very
 * STOMP ops table of the plain STOMP listener, which reads and writes a
 * STOMP byte stream and never learns that frames were wrapped. The filter
 * is a small state machine:
 *
 *  1. Handshake. The first bytes must be an HTTP/1.1 GET with
 *     `Upgrade: websocket`, `Connection: Upgrade`,
 *     `Sec-WebSocket-Version: 13` and a `Sec-WebSocket-Key` (16 bytes in
 *     base64), at path /ws (RabbitMQ's), /stomp or / (ActiveMQ takes any
 *     path), at most WS_MAX_REQUEST bytes. The answer is 101 with
 *     Sec-WebSocket-Accept = base64(SHA-1(key + RFC 6455's GUID))
 *     (OpenSSL) and the first subprotocol of the client's list we speak:
 *     v12.stomp, v11.stomp, v10.stomp (the names RabbitMQ and ActiveMQ
 *     use; STOMP's own accept-version still picks the version). A client
 *     offering only other subprotocols, or anything else that is not such
 *     a request (a plain STOMP client on this port), gets an HTTP error
 *     whose body says what was wrong, and only that connection closes; a
 *     request that does not start with "GET " is refused at once rather
 *     than waited for.
 *  2. Frames, by libwslay's event API (made for non-blocking loops): its
 *     recv callback takes bytes from the socket's input, its send
 *     callback appends to the socket's output. Text and binary messages
 *     both carry STOMP bytes, in any cut (stompjs may split a large frame,
 *     or send several in one message); wslay reassembles fragments up to
 *     the largest message allowed (stomp-max-frame plus WS_MSG_SLACK): a
 *     larger message is refused with close code 1009 without being
 *     buffered. Pings are answered with pongs, a Close is answered with a
 *     Close and the connection ends; a protocol violation (an unmasked
 *     frame, invalid UTF-8 in a text message, a bad opcode) gets wslay's
 *     Close with 1002 or 1007. Each is logged (rate-limited) with the
 *     peer.
 *  3. Output. The STOMP adapter's bytes are cut at frame boundaries (a
 *     frame's headers, content-length or its NUL) so that each STOMP frame
 *     is one WebSocket message, as RabbitMQ sends them; a heart-beat EOL is
 *     a message of its own. A frame that is valid UTF-8 goes as a text
 *     message, any other as binary (browsers fail the connection on a text
 *     message that is not UTF-8; stompjs takes both). These data messages
 *     are framed here, their bytes moved into the socket's output, not
 *     queued through wslay, which copies each message twice. (The broker
 *     spends about 1.5x the CPU per message of plain STOMP;
 *     docs/benchmarks.md has the figures.)
 *  4. Close. When the STOMP side closes (DISCONNECT, an ERROR), the
 *     connection layer flushes the filter with BEV_FINISHED: a Close with
 *     1000 goes out before the socket's write side is shut.
 *
 * Memory per connection is bounded by the socket's read watermark
 * (WS_RAW_IN_MAX of raw input), wslay's reassembly buffer (the largest
 * message) and the connection layer's output limits (output-high-water
 * counts the socket's output under the filter).
 *
 * @thread loop (everything in this file)
 */
#include "broker/ws.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <wslay/wslay.h>

#include "broker/broker.h"
#include "broker/conn.h"
#include "protocol/log.h"

#define SUBSYS "stomp-ws"
/* The handshake request, headers included. */
#define WS_MAX_REQUEST 8192
/* Raw bytes read from the socket and not yet unwrapped. */
#define WS_RAW_IN_MAX (256 * 1024)
/* A message may hold a frame of stomp-max-frame and some EOLs. */
#define WS_MSG_SLACK 4096
/* Socket reads and writes per call (libevent's default is 16 KiB). */
#define WS_IO_MAX (128 * 1024)

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
static const char *const WS_PROTOS[] = {"v12.stomp", "v11.stomp", "v10.stomp"};

typedef struct ws_srv {
    sl_broker *b;
    uint64_t max_msg;
} ws_srv;

typedef struct ws_conn {
    ws_srv *srv;
    sl_conn *c;
    struct bufferevent *sock;
    wslay_event_context_ptr ctx; /* NULL until the handshake is done */
    int failed;                  /* refused or closing: input discarded */
    /* during the input filter */
    struct evbuffer *src, *dst;
    ev_ssize_t lim;
    size_t raw_mark; /* raw input left after the last pass */
    int plain;       /* sock is a socket bufferevent (not TLS: wss) */
} ws_conn;

/* ---- small helpers ------------------------------------------------------- */

/* Valid UTF-8 (no overlongs, no surrogates, at most U+10FFFF). */
static int utf8_valid(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
        } else
            return 0;
        if (n - i <= k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i + j] & 0x3f);
        }
        if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        i += k + 1;
    }
    return 1;
}

/* Does the comma-separated list `v` hold `tok` (case-insensitive)? */
static int has_token(const char *v, const char *tok)
{
    size_t tl = strlen(tok);
    while (*v) {
        const char *e;
        size_t n;
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        e = v;
        while (*e && *e != ',')
            e++;
        n = (size_t)(e - v);
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
        if (n == tl && strncasecmp(v, tok, tl) == 0)
            return 1;
        v = e;
    }
    return 0;
}

/* ---- handshake ----------------------------------------------------------- */

/* Refuse the handshake: an HTTP error whose body says why, then close. */
static void hs_refuse(ws_conn *w, int code, const char *reason,
                      const char *extra, const char *why)
{
    struct evbuffer *out = bufferevent_get_output(w->sock);
    sl_conn_warn(w->c, "websocket", "WebSocket handshake refused: %s", why);
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
                        "Connection: close\r\n%sContent-Length: %zu\r\n\r\n"
                        "%s\n",
                        code, reason, extra ? extra : "", strlen(why) + 1, why);
    w->failed = 1;
    sl_conn_close_after_reply(w->c);
}

typedef struct hs_req {
    char *upgrade, *connection, *version, *key, *protos;
} hs_req;

/* Append header value v to *dst (repeated headers join with ", "). */
static int hs_keep(char **dst, const char *v)
{
    size_t old = *dst ? strlen(*dst) : 0, n = strlen(v);
    char *s = realloc(*dst, old + n + 3);
    if (!s)
        return -1;
    if (old) {
        memcpy(s + old, ", ", 2);
        old += 2;
    }
    memcpy(s + old, v, n + 1);
    *dst = s;
    return 0;
}

static void hs_req_free(hs_req *r)
{
    free(r->upgrade);
    free(r->connection);
    free(r->version);
    free(r->key);
    free(r->protos);
}

static wslay_event_context_ptr ws_ctx_new(ws_conn *w);

/* The request in req[0..len) (NUL-terminated, CRLF CRLF at the end):
 * answer 101 and start the frames, or refuse. 0 started, -1 refused. */
static int hs_answer(ws_conn *w, char *req)
{
    hs_req r = {0};
    char *line, *save = NULL, *path, *ver, *q;
    const char *proto = NULL;
    unsigned char key_raw[64], sha[SHA_DIGEST_LENGTH];
    char accept[64], buf[160];
    int n, rc = -1;
    struct evbuffer *out;

    line = strtok_r(req, "\r\n", &save);
    if (!line || strncmp(line, "GET ", 4) != 0) {
        hs_refuse(w, 400, "Bad Request", NULL,
                  "expected an HTTP GET upgrading to WebSocket (this port "
                  "speaks STOMP over WebSocket at /ws)");
        return -1;
    }
    path = line + 4;
    ver = strchr(path, ' ');
    if (!ver || strncmp(ver + 1, "HTTP/1.", 7) != 0) {
        hs_refuse(w, 400, "Bad Request", NULL,
                  "malformed request line (expected GET PATH HTTP/1.1)");
        return -1;
    }
    *ver = '\0';
    if ((q = strchr(path, '?')) != NULL)
        *q = '\0';
    while ((line = strtok_r(NULL, "\r\n", &save)) != NULL) {
        char *colon = strchr(line, ':'), *v;
        char **dst = NULL;
        if (!colon)
            continue;
        *colon = '\0';
        v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        if (strcasecmp(line, "Upgrade") == 0)
            dst = &r.upgrade;
        else if (strcasecmp(line, "Connection") == 0)
            dst = &r.connection;
        else if (strcasecmp(line, "Sec-WebSocket-Version") == 0)
            dst = &r.version;
        else if (strcasecmp(line, "Sec-WebSocket-Key") == 0)
            dst = &r.key;
        else if (strcasecmp(line, "Sec-WebSocket-Protocol") == 0)
            dst = &r.protos;
        if (dst && hs_keep(dst, v) != 0) {
            hs_refuse(w, 500, "Internal Server Error", NULL, "out of memory");
            goto out;
        }
    }
    if (strcmp(path, "/ws") != 0 && strcmp(path, "/stomp") != 0 &&
        strcmp(path, "/") != 0) {
        snprintf(buf, sizeof(buf),
                 "no WebSocket endpoint at %.60s (STOMP is at /ws or /stomp)",
                 path);
        hs_refuse(w, 404, "Not Found", NULL, buf);
        goto out;
    }
    if (!r.upgrade || !has_token(r.upgrade, "websocket") || !r.connection ||
        !has_token(r.connection, "upgrade")) {
        hs_refuse(w, 400, "Bad Request", NULL,
                  "not a WebSocket upgrade (needs Upgrade: websocket and "
                  "Connection: Upgrade)");
        goto out;
    }
    if (!r.version || strcmp(r.version, "13") != 0) {
        hs_refuse(w, 426, "Upgrade Required", "Sec-WebSocket-Version: 13\r\n",
                  "unsupported Sec-WebSocket-Version (13 is supported)");
        goto out;
    }
    if (!r.key || strlen(r.key) != 24 ||
        EVP_DecodeBlock(key_raw, (const unsigned char *)r.key, 24) != 18 ||
        r.key[22] != '=' || r.key[23] != '=') {
        hs_refuse(w, 400, "Bad Request", NULL,
                  "missing or malformed Sec-WebSocket-Key (16 bytes in "
                  "base64)");
        goto out;
    }
    if (r.protos) {
        /* the first of the client's list we speak */
        char *p = r.protos, *tok, *s2 = NULL;
        for (tok = strtok_r(p, ", \t", &s2); tok && !proto;
             tok = strtok_r(NULL, ", \t", &s2))
            for (size_t i = 0; i < sizeof(WS_PROTOS) / sizeof(*WS_PROTOS); i++)
                if (strcmp(tok, WS_PROTOS[i]) == 0)
                    proto = WS_PROTOS[i];
        if (!proto) {
            hs_refuse(w, 400, "Bad Request", NULL,
                      "none of the offered Sec-WebSocket-Protocol values is "
                      "spoken here (v12.stomp, v11.stomp, v10.stomp)");
            goto out;
        }
    }
    n = snprintf(buf, sizeof(buf), "%s%s", r.key, WS_GUID);
    SHA1((const unsigned char *)buf, (size_t)n, sha);
    EVP_EncodeBlock((unsigned char *)accept, sha, SHA_DIGEST_LENGTH);
    w->ctx = ws_ctx_new(w);
    if (!w->ctx) {
        hs_refuse(w, 500, "Internal Server Error", NULL, "out of memory");
        goto out;
    }
    out = bufferevent_get_output(w->sock);
    evbuffer_add_printf(out,
                        "HTTP/1.1 101 Switching Protocols\r\n"
                        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: %s\r\n",
                        accept);
    if (proto)
        evbuffer_add_printf(out, "Sec-WebSocket-Protocol: %s\r\n", proto);
    evbuffer_add(out, "\r\n", 2);
    sl_log(SL_DEBUG, SUBSYS, "peer %s: WebSocket open (path %s, %s)",
           sl_conn_peer(w->c), path, proto ? proto : "no subprotocol");
    rc = 0;
out:
    hs_req_free(&r);
    return rc;
}

/* Take the handshake from src. 1 done, 0 more bytes needed, -1 refused. */
static int hs_step(ws_conn *w, struct evbuffer *src)
{
    size_t len = evbuffer_get_length(src), n = len < 4 ? len : 4;
    struct evbuffer_ptr end;
    unsigned char *p = evbuffer_pullup(src, (ev_ssize_t)n);
    char *req;
    int rc;

    if (n > 0 && memcmp(p, "GET ", n) != 0) {
        hs_refuse(w, 400, "Bad Request", NULL,
                  "expected an HTTP GET upgrading to WebSocket (this port "
                  "speaks STOMP over WebSocket at /ws)");
        return -1;
    }
    end = evbuffer_search(src, "\r\n\r\n", 4, NULL);
    if (end.pos < 0) {
        if (len > WS_MAX_REQUEST) {
            hs_refuse(w, 431, "Request Header Fields Too Large", NULL,
                      "handshake request over 8192 bytes");
            return -1;
        }
        return 0;
    }
    if ((size_t)end.pos + 4 > WS_MAX_REQUEST) {
        hs_refuse(w, 431, "Request Header Fields Too Large", NULL,
                  "handshake request over 8192 bytes");
        return -1;
    }
    req = malloc((size_t)end.pos + 5);
    if (!req) {
        hs_refuse(w, 500, "Internal Server Error", NULL, "out of memory");
        return -1;
    }
    evbuffer_remove(src, req, (size_t)end.pos + 4);
    req[end.pos + 4] = '\0';
    rc = hs_answer(w, req);
    free(req);
    return rc == 0 ? 1 : -1;
}

/* ---- frames (wslay) ------------------------------------------------------ */

static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                          int flags, void *user)
{
    ws_conn *w = user;
    int n;
    (void)flags;
    if (!w->src ||
        (w->lim >= 0 && evbuffer_get_length(w->dst) >= (size_t)w->lim)) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    n = evbuffer_remove(w->src, buf, len);
    if (n <= 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    return n;
}

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data,
                          size_t len, int flags, void *user)
{
    ws_conn *w = user;
    (void)flags;
    if (evbuffer_add(bufferevent_get_output(w->sock), data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static void ws_msg_cb(wslay_event_context_ptr ctx,
                      const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
    ws_conn *w = user;
    (void)ctx;
    if ((arg->opcode == WSLAY_TEXT_FRAME ||
         arg->opcode == WSLAY_BINARY_FRAME) &&
        arg->msg_length > 0 && w->dst)
        evbuffer_add(w->dst, arg->msg, arg->msg_length);
}

static wslay_event_context_ptr ws_ctx_new(ws_conn *w)
{
    static const struct wslay_event_callbacks cbs = {
        .recv_callback = ws_recv_cb,
        .send_callback = ws_send_cb,
        .on_msg_recv_callback = ws_msg_cb,
    };
    wslay_event_context_ptr ctx = NULL;
    if (wslay_event_context_server_init(&ctx, &cbs, w) != 0)
        return NULL;
    wslay_event_config_set_max_recv_msg_length(ctx, w->srv->max_msg);
    return ctx;
}

/* After wslay_event_recv: the peer closed, or broke the protocol. */
static void ws_check_end(ws_conn *w, int rv)
{
    uint16_t sent;
    if (w->failed)
        return;
    if (wslay_event_get_close_received(w->ctx)) {
        sl_log(SL_DEBUG, SUBSYS, "peer %s: WebSocket closed by the peer (%u)",
               sl_conn_peer(w->c),
               (unsigned)wslay_event_get_status_code_received(w->ctx));
        w->failed = 1;
        sl_conn_close_after_reply(w->c);
        return;
    }
    if (rv == 0 && wslay_event_get_read_enabled(w->ctx))
        return;
    sent = wslay_event_get_status_code_sent(w->ctx);
    if (sent == WSLAY_CODE_MESSAGE_TOO_BIG)
        sl_conn_warn(w->c, "websocket",
                     "WebSocket message over %llu bytes "
                     "(stomp-max-frame + %d): closing with 1009",
                     (unsigned long long)w->srv->max_msg, WS_MSG_SLACK);
    else
        sl_conn_warn(w->c, "websocket",
                     "WebSocket protocol error (%s): closing with %u",
                     sent == WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA
                         ? "text message not UTF-8"
                     : rv == WSLAY_ERR_NOMEM ? "out of memory"
                                             : "bad frame",
                     (unsigned)sent);
    w->failed = 1;
    sl_conn_close_after_reply(w->c);
}

static enum bufferevent_filter_result
ws_in_filter(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t lim,
             enum bufferevent_flush_mode mode, void *ctx_)
{
    ws_conn *w = ctx_;
    size_t before = evbuffer_get_length(dst);
    int rv;
    (void)mode;

    if (w->failed) {
        evbuffer_drain(src, evbuffer_get_length(src));
        return BEV_NEED_MORE;
    }
    if (!w->ctx) {
        int hs = hs_step(w, src);
        if (hs <= 0) {
            if (hs < 0)
                evbuffer_drain(src, evbuffer_get_length(src));
            return BEV_NEED_MORE;
        }
    }
    /* libevent 2.1 reads 4 KiB per read event: when that read was full,
     * take what the socket holds (as conn.c does for plain sockets), or a
     * stream of small messages costs a read, an ioctl and a loop pass per
     * 4 KiB, and more, smaller fdatasync rounds. Not under TLS (wss): the
     * socket's bytes are ciphertext for the TLS bufferevent to read */
    if (w->plain &&
        evbuffer_get_length(src) >= w->raw_mark + SL_OPS_EV_READ_MAX &&
        evbuffer_get_length(src) < WS_RAW_IN_MAX)
        sl_ops_read_now(w->sock, WS_RAW_IN_MAX - evbuffer_get_length(src));
    if (evbuffer_get_length(src) == 0)
        return BEV_NEED_MORE;
    w->src = src;
    w->dst = dst;
    w->lim = lim;
    rv = wslay_event_recv(w->ctx);
    w->src = w->dst = NULL;
    w->raw_mark = evbuffer_get_length(src);
    /* pongs, the answer to a Close, wslay's own Close on an error */
    if (wslay_event_want_write(w->ctx))
        wslay_event_send(w->ctx);
    ws_check_end(w, rv);
    return evbuffer_get_length(dst) > before ? BEV_OK : BEV_NEED_MORE;
}

/*
 * The length of the first whole STOMP frame (or heart-beat EOL) in src,
 * 0 if it is not all there yet. The broker writes frames with LF line
 * ends and a content-length on every frame with a body; without one the
 * frame ends at its first NUL after the headers.
 */
static size_t stomp_frame_len(struct evbuffer *src)
{
    size_t len = evbuffer_get_length(src);
    unsigned char *p;
    struct evbuffer_ptr hdr_end, nul;
    size_t hlen, i;
    long long clen = -1;

    if (len == 0)
        return 0;
    p = evbuffer_pullup(src, len < 2 ? (ev_ssize_t)len : 2);
    if (p[0] == '\n')
        return 1;
    if (p[0] == '\r' && len >= 2 && p[1] == '\n')
        return 2;
    hdr_end = evbuffer_search(src, "\n\n", 2, NULL);
    if (hdr_end.pos < 0)
        return 0;
    hlen = (size_t)hdr_end.pos + 2;
    p = evbuffer_pullup(src, (ev_ssize_t)hlen);
    for (i = 0; i + 16 <= hlen; i++) {
        if (p[i] == '\n' && memcmp(p + i + 1, "content-length:", 15) == 0) {
            char *e;
            clen = strtoll((const char *)p + i + 16, &e, 10);
            break;
        }
    }
    if (clen >= 0)
        return hlen + (size_t)clen + 1 <= len ? hlen + (size_t)clen + 1 : 0;
    evbuffer_ptr_set(src, &hdr_end, hlen, EVBUFFER_PTR_SET);
    nul = evbuffer_search(src, "", 1, &hdr_end);
    return nul.pos < 0 ? 0 : (size_t)nul.pos + 1;
}

/* Are the first n bytes of b all ASCII? (No copy: chunk by chunk.) */
static int all_ascii(struct evbuffer *b, size_t n)
{
    struct evbuffer_iovec v[8];
    struct evbuffer_ptr at;
    evbuffer_ptr_set(b, &at, 0, EVBUFFER_PTR_SET);
    while (n > 0) {
        int k = evbuffer_peek(b, (ev_ssize_t)n, &at, v, 8);
        size_t seen = 0;
        if (k <= 0)
            return 0;
        for (int i = 0; i < k && i < 8 && n > 0; i++) {
            const unsigned char *p = v[i].iov_base;
            size_t m = v[i].iov_len < n ? v[i].iov_len : n;
            for (size_t j = 0; j < m; j++)
                if (p[j] & 0x80)
                    return 0;
            n -= m;
            seen += m;
        }
        if (n > 0 && evbuffer_ptr_set(b, &at, seen, EVBUFFER_PTR_ADD) != 0)
            return 0;
    }
    return 1;
}

/*
 * One server message holding the first n bytes of src: the frame header
 * (server frames are not masked), then the bytes moved, not copied, where
 * libevent can move whole chains. Data messages do not go through wslay
 * (its queue copies each message twice); wslay writes only control
 * frames (pongs, Close), each whole, so the two never interleave inside
 * a frame.
 */
static void put_msg(struct evbuffer *src, struct evbuffer *dst, size_t n)
{
    unsigned char h[10];
    size_t hl = 2;
    int text =
        all_ascii(src, n) || utf8_valid(evbuffer_pullup(src, (ev_ssize_t)n), n);
    h[0] = 0x80 | (text ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME);
    if (n < 126)
        h[1] = (unsigned char)n;
    else if (n < 65536) {
        h[1] = 126;
        h[2] = (unsigned char)(n >> 8);
        h[3] = (unsigned char)n;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    evbuffer_add(dst, h, hl);
    evbuffer_remove_buffer(src, dst, n);
}

static enum bufferevent_filter_result
ws_out_filter(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t lim,
              enum bufferevent_flush_mode mode, void *ctx_)
{
    ws_conn *w = ctx_;
    int took = 0;
    (void)lim;

    if (!w->ctx) {
        /* nothing may go out before the handshake */
        evbuffer_drain(src, evbuffer_get_length(src));
        return BEV_NEED_MORE;
    }
    for (;;) {
        size_t n = stomp_frame_len(src);
        if (n == 0 && mode != BEV_NORMAL)
            n = evbuffer_get_length(src); /* flushing: what there is */
        if (n == 0)
            break;
        if (wslay_event_get_close_sent(w->ctx))
            evbuffer_drain(src, n); /* nothing goes out after a Close */
        else
            put_msg(src, dst, n);
        took = 1;
    }
    if (mode == BEV_FINISHED && !wslay_event_get_close_sent(w->ctx))
        wslay_event_queue_close(w->ctx, WSLAY_CODE_NORMAL_CLOSURE, NULL, 0);
    if (wslay_event_want_write(w->ctx))
        wslay_event_send(w->ctx);
    return took ? BEV_OK : BEV_NEED_MORE;
}

static void ws_conn_free(void *arg)
{
    ws_conn *w = arg;
    if (w->ctx)
        wslay_event_context_free(w->ctx);
    free(w);
}

static struct bufferevent *ws_wrap(void *arg, sl_conn *c,
                                   struct bufferevent *sock)
{
    ws_conn *w = calloc(1, sizeof(*w));
    struct bufferevent *bev;
    if (!w)
        return NULL;
    w->srv = arg;
    w->c = c;
    w->sock = sock;
    w->plain = bufferevent_openssl_get_ssl(sock) == NULL;
    bufferevent_setwatermark(sock, EV_READ, 0, WS_RAW_IN_MAX);
    bufferevent_set_max_single_read(sock, WS_IO_MAX);
    bufferevent_set_max_single_write(sock, WS_IO_MAX);
    bev = bufferevent_filter_new(sock, ws_in_filter, ws_out_filter,
                                 BEV_OPT_CLOSE_ON_FREE, ws_conn_free, w);
    if (!bev)
        free(w);
    return bev;
}

/* ---- module -------------------------------------------------------------- */

void sl_ws_module_init(sl_broker *b)
{
    const sl_config *cfg = sl_broker_config(b);
    const sl_conn_ops *stomp = sl_conn_proto_ops(b, SL_LISTENER_STOMP);
    ws_srv *s;

    /* stomp-wss-listen (tls.c) is the same listener kind over TLS */
    if ((!cfg->stomp_ws_listen || !cfg->stomp_ws_listen[0]) &&
        (!cfg->stomp_wss_listen || !cfg->stomp_wss_listen[0]))
        return;
    if (!stomp) {
        sl_broker_fail(b, "stomp-ws: the STOMP module is not running");
        return;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        sl_broker_fail(b, "stomp-ws: out of memory");
        return;
    }
    s->b = b;
    s->max_msg = (uint64_t)cfg->stomp_max_frame + WS_MSG_SLACK;
    /* the STOMP adapter itself, unchanged, behind the WebSocket filter */
    sl_conn_set_proto(b, SL_LISTENER_STOMP_WS, stomp,
                      sl_conn_proto_arg(b, SL_LISTENER_STOMP, stomp));
    sl_conn_set_transport(b, SL_LISTENER_STOMP_WS, ws_wrap, s);
}

void sl_ws_module_fini(sl_broker *b)
{
    ws_srv *s = b->protos[SL_LISTENER_STOMP_WS].wrap_arg;
    sl_conn_set_proto(b, SL_LISTENER_STOMP_WS, NULL, NULL);
    sl_conn_set_transport(b, SL_LISTENER_STOMP_WS, NULL, NULL);
    free(s);
}
