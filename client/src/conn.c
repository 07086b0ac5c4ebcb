/*
 * conn.c - the client connection: nonblocking socket driven by poll(2)
 * with deadlines, so every wait is bounded and both directions progress
 * together (the broker stops reading a client whose replies pile up;
 * reading while writing avoids that deadlock).
 */
#include "client/src/conn.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protocol/api.h"
#include "protocol/frame.h"

/* Frames at least this large are read straight into their own chunk. */
#define BIG_FRAME (256 * 1024)
#define READ_CHUNK (256 * 1024)

void sl_cl_conn_init(sl_cl_conn *c, const sl_cl_cfg *cfg)
{
    memset(c, 0, sizeof(*c));
    c->cfg = cfg;
    c->fd = -1;
    c->max_frame = SL_DEFAULT_MAX_FRAME;
    c->last_attempt_ms = INT64_MIN / 2;
    sl_wb_init(&c->out, 64 * 1024);
}

void sl_cl_conn_close(sl_cl_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    sl_wb_reset(&c->out);
    c->out_off = 0;
    c->in_len = 0;
    sl_chunk_unref(c->big);
    c->big = NULL;
    c->big_have = 0;
}

void sl_cl_conn_fini(sl_cl_conn *c)
{
    sl_cl_conn_close(c);
    sl_wb_fini(&c->out);
    free(c->in);
    c->in = NULL;
}

int sl_cl_conn_connected(const sl_cl_conn *c)
{
    return c->fd >= 0;
}

static sl_err fail_io(sl_cl_conn *c, int e, const char *what)
{
    sl_cl_conn_close(c);
    if (e == 0 || e == ECONNRESET || e == EPIPE)
        return sl_cl_fail(SL_ERR_DISCONNECTED, "broker %s:%s %s", c->cfg->host,
                          c->cfg->port, what);
    return sl_cl_fail(SL_ERR_DISCONNECTED, "broker %s:%s %s: %s", c->cfg->host,
                      c->cfg->port, what, strerror(e));
}

static sl_err connect_one(sl_cl_conn *c, const struct addrinfo *ai, int *fd_out,
                          int *err_out)
{
    int fd, one = 1, soerr = 0, r;
    socklen_t sl = sizeof(soerr);
    struct pollfd pfd;

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                ai->ai_protocol);
    if (fd < 0) {
        *err_out = errno;
        return SL_ESYS(errno);
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            *err_out = errno;
            close(fd);
            return SL_ESYS(*err_out);
        }
        pfd.fd = fd;
        pfd.events = POLLOUT;
        do
            r = poll(&pfd, 1, c->cfg->connect_timeout_ms);
        while (r < 0 && errno == EINTR);
        if (r == 0) {
            *err_out = ETIMEDOUT;
            close(fd);
            return SL_ERR_TIMEOUT;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
            soerr = errno;
        if (soerr) {
            *err_out = soerr;
            close(fd);
            return SL_ESYS(soerr);
        }
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    *fd_out = fd;
    return SL_OK;
}

static sl_err handshake(sl_cl_conn *c)
{
    sl_handshake_req req;
    sl_handshake_resp resp;
    sl_arena arena;
    sl_chunk *f = NULL;
    const uint8_t *body;
    size_t blen;
    uint32_t corr = sl_cl_conn_corr(c), rcorr;
    sl_err rc;

    sl_arena_init(&arena);
    memset(&req, 0, sizeof(req));
    req.client_name = sl_str_c(c->cfg->client_id);
    rc = sl_handshake_req_encode(&c->out, corr, &req);
    if (rc != SL_OK)
        goto out;
    rc = sl_cl_conn_call(c, corr, sl_cl_deadline(c->cfg->connect_timeout_ms), &f);
    if (rc != SL_OK)
        goto out;
    body = sl_frame_body(f, &blen, &rcorr);
    rc = sl_handshake_resp_decode(body, blen, &arena, &resp);
    if (rc != SL_OK) {
        rc = sl_cl_fail(SL_ERR_PROTOCOL, "broker %s:%s: bad handshake reply",
                        c->cfg->host, c->cfg->port);
        goto out;
    }
    if (resp.error != SL_OK) {
        rc = sl_cl_fail((sl_err)resp.error, "broker %s:%s handshake: %.*s",
                        c->cfg->host, c->cfg->port, (int)resp.error_msg.len,
                        resp.error_msg.p ? resp.error_msg.p : "");
        goto out;
    }
    if (resp.max_frame >= 1024)
        c->max_frame = resp.max_frame;
out:
    sl_chunk_unref(f);
    sl_arena_fini(&arena);
    if (rc != SL_OK)
        sl_cl_conn_close(c);
    return rc;
}

sl_err sl_cl_conn_ensure(sl_cl_conn *c)
{
    struct addrinfo hints, *res = NULL, *ai;
    int gai, fd = -1, e = 0;
    sl_err rc = SL_ERR_DISCONNECTED;
    int64_t now = sl_cl_now_ms();

    if (c->fd >= 0)
        return SL_OK;
    if (now - c->last_attempt_ms < c->cfg->reconnect_backoff_ms)
        return sl_cl_fail(
            SL_ERR_DISCONNECTED,
            "broker %s:%s: not connected (retrying in %d ms)", c->cfg->host,
            c->cfg->port,
            (int)(c->cfg->reconnect_backoff_ms - (now - c->last_attempt_ms)));
    c->last_attempt_ms = now;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    gai = getaddrinfo(c->cfg->host, c->cfg->port, &hints, &res);
    if (gai != 0)
        return sl_cl_fail(SL_ERR_DISCONNECTED, "resolve %s:%s: %s",
                          c->cfg->host, c->cfg->port, gai_strerror(gai));
    for (ai = res; ai; ai = ai->ai_next) {
        rc = connect_one(c, ai, &fd, &e);
        if (rc == SL_OK)
            break;
    }
    freeaddrinfo(res);
    if (rc != SL_OK)
        return sl_cl_fail(SL_ERR_DISCONNECTED, "connect %s:%s: %s",
                          c->cfg->host, c->cfg->port, strerror(e));
    c->fd = fd;
    c->out_off = 0;
    c->in_len = 0;
    c->epoch++;
    return handshake(c);
}

sl_err sl_cl_conn_write_some(sl_cl_conn *c)
{
    ssize_t n;
    if (c->fd < 0)
        return sl_cl_fail(SL_ERR_DISCONNECTED, "broker %s:%s: not connected",
                          c->cfg->host, c->cfg->port);
    while (c->out_off < c->out.len) {
        n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
                 MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return SL_OK;
            return fail_io(c, errno, "write");
        }
        c->out_off += (size_t)n;
    }
    sl_wb_reset(&c->out);
    c->out_off = 0;
    return SL_OK;
}

/* Drop the sent prefix of the output buffer once it is most of it, so a
 * buffer that is never quite empty does not grow without bound. */
static void compact_out(sl_cl_conn *c)
{
    size_t left = c->out.len - c->out_off;
    if (c->out_off < 1024 * 1024 || c->out_off < left)
        return;
    memmove(c->out.p, c->out.p + c->out_off, left);
    c->out.len = left;
    c->out_off = 0;
}

/* Read what is available into the input buffer (or the big frame). */
static sl_err read_some(sl_cl_conn *c)
{
    ssize_t n;
    for (;;) {
        if (c->big) {
            n = recv(c->fd, sl_chunk_ptr(c->big) + c->big_have,
                     c->big->len - c->big_have, 0);
        } else {
            if (c->in_cap - c->in_len < READ_CHUNK / 4) {
                size_t ncap = c->in_cap ? c->in_cap * 2 : READ_CHUNK;
                uint8_t *p = realloc(c->in, ncap);
                if (!p)
                    return sl_cl_fail(SL_ERR_NOMEM, "read buffer");
                c->in = p;
                c->in_cap = ncap;
            }
            n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return SL_OK;
            return fail_io(c, errno, "read");
        }
        if (n == 0)
            return fail_io(c, 0, "closed the connection");
        if (c->big)
            c->big_have += (size_t)n;
        else
            c->in_len += (size_t)n;
        return SL_OK;
    }
}

/* A whole frame, if the buffers hold one. SL_OK + *frame, or
 * SL_FRAME_PARTIAL, or an error (connection closed). */
static int take_frame(sl_cl_conn *c, sl_chunk **frame)
{
    size_t flen = 0;
    int r;

    if (c->big) {
        if (c->big_have < c->big->len)
            return SL_FRAME_PARTIAL;
        *frame = c->big;
        c->big = NULL;
        c->big_have = 0;
        return SL_OK;
    }
    r = sl_frame_peek(c->in, c->in_len, c->max_frame + 1024, &flen);
    if (r == SL_FRAME_PARTIAL && c->in_len >= 4 && flen >= BIG_FRAME) {
        /* Start reading a large frame straight into its own chunk. */
        c->big = sl_chunk_new(flen);
        if (!c->big)
            return sl_cl_fail(SL_ERR_NOMEM, "frame of %zu bytes", flen);
        memcpy(sl_chunk_ptr(c->big), c->in, c->in_len);
        c->big_have = c->in_len;
        c->in_len = 0;
        return SL_FRAME_PARTIAL;
    }
    if (r == SL_FRAME_PARTIAL)
        return r;
    if (r != SL_OK) {
        sl_cl_conn_close(c);
        return sl_cl_fail(SL_ERR_PROTOCOL,
                          "broker %s:%s sent a bad frame (length %zu)",
                          c->cfg->host, c->cfg->port, flen);
    }
    *frame = sl_chunk_new(flen);
    if (!*frame)
        return sl_cl_fail(SL_ERR_NOMEM, "frame of %zu bytes", flen);
    memcpy(sl_chunk_ptr(*frame), c->in, flen);
    memmove(c->in, c->in + flen, c->in_len - flen);
    c->in_len -= flen;
    return SL_OK;
}

static sl_err wait_io(sl_cl_conn *c, int64_t deadline, int want_write)
{
    struct pollfd pfd;
    int r, left = sl_cl_left(deadline);
    sl_err rc;

    pfd.fd = c->fd;
    pfd.events = POLLIN | (want_write ? POLLOUT : 0);
    pfd.revents = 0;
    r = poll(&pfd, 1, left);
    if (r < 0) {
        if (errno == EINTR)
            return SL_OK;
        return fail_io(c, errno, "poll");
    }
    if (r == 0)
        return SL_ERR_TIMEOUT;
    if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
        rc = read_some(c);
        if (rc != SL_OK)
            return rc;
    }
    if (pfd.revents & POLLOUT) {
        rc = sl_cl_conn_write_some(c);
        if (rc != SL_OK)
            return rc;
    }
    return SL_OK;
}

sl_err sl_cl_conn_write_bounded(sl_cl_conn *c, int64_t deadline, size_t max_pending)
{
    sl_err rc;
    if (c->fd < 0)
        return sl_cl_fail(SL_ERR_DISCONNECTED, "broker %s:%s: not connected",
                          c->cfg->host, c->cfg->port);
    rc = sl_cl_conn_write_some(c);
    while (rc == SL_OK && c->out.len - c->out_off > max_pending) {
        rc = wait_io(c, deadline, 1);
        if (rc == SL_ERR_TIMEOUT)
            return sl_cl_fail(SL_ERR_TIMEOUT, "broker %s:%s: write",
                              c->cfg->host, c->cfg->port);
    }
    if (rc == SL_OK)
        compact_out(c);
    return rc;
}

sl_err sl_cl_conn_write(sl_cl_conn *c, int64_t deadline)
{
    sl_err rc;
    if (c->fd < 0)
        return sl_cl_fail(SL_ERR_DISCONNECTED, "broker %s:%s: not connected",
                          c->cfg->host, c->cfg->port);
    rc = sl_cl_conn_write_some(c);
    while (rc == SL_OK && c->out.len > c->out_off) {
        rc = wait_io(c, deadline, 1);
        if (rc == SL_ERR_TIMEOUT)
            return sl_cl_fail(SL_ERR_TIMEOUT, "broker %s:%s: write",
                              c->cfg->host, c->cfg->port);
    }
    return rc;
}

sl_err sl_cl_conn_read(sl_cl_conn *c, int64_t deadline, sl_chunk **frame)
{
    int r;
    sl_err rc;

    for (;;) {
        if (c->fd < 0)
            return sl_cl_fail(SL_ERR_DISCONNECTED,
                              "broker %s:%s: not connected", c->cfg->host,
                              c->cfg->port);
        r = take_frame(c, frame);
        if (r == SL_OK)
            return SL_OK;
        if (r != SL_FRAME_PARTIAL)
            return (sl_err)r;
        rc = wait_io(c, deadline, c->out.len > c->out_off);
        if (rc != SL_OK)
            return rc;
    }
}

sl_err sl_cl_conn_call(sl_cl_conn *c, uint32_t corr, int64_t deadline,
                    sl_chunk **frame)
{
    sl_chunk *f = NULL;
    sl_err rc;
    const uint8_t *p;

    rc = sl_cl_conn_write(c, deadline);
    if (rc != SL_OK)
        return rc;
    for (;;) {
        rc = sl_cl_conn_read(c, deadline, &f);
        if (rc == SL_ERR_TIMEOUT)
            return sl_cl_fail(SL_ERR_TIMEOUT, "broker %s:%s: no reply in time",
                              c->cfg->host, c->cfg->port);
        if (rc != SL_OK)
            return rc;
        p = sl_chunk_ptr(f);
        if (f->len >= SL_RESP_HDR_SIZE + 4 && sl_get_u32(p + 4) == corr)
            break;
        /* A reply to something abandoned earlier (e.g. after a timeout). */
        sl_chunk_unref(f);
        f = NULL;
    }
    *frame = f;
    return SL_OK;
}

sl_err sl_cl_resp_check(const uint8_t *body, size_t len, const char *what)
{
    int32_t err;
    sl_str msg;
    if (sl_resp_error_decode(body, len, &err, &msg) != SL_OK)
        return sl_cl_fail(SL_ERR_PROTOCOL, "%s: reply too short", what);
    if (err == SL_OK)
        return SL_OK;
    if (msg.p && msg.len)
        return sl_cl_fail((sl_err)err, "%s: %.*s", what, (int)msg.len, msg.p);
    return sl_cl_fail((sl_err)err, "%s", what);
}

sl_err sl_cl_bad_reply(sl_err rc, const char *what)
{
    if (rc == SL_ERR_NOMEM)
        return sl_cl_fail(rc, "%s: decoding the reply", what);
    return sl_cl_fail(SL_ERR_PROTOCOL, "%s: malformed reply from the broker",
                      what);
}
