/*
 * conn.c - the client connection: nonblocking socket driven by poll(2)
 * with deadlines, so every wait is bounded and both directions progress
 * together (the broker stops reading a client whose replies pile up;
 * reading while writing avoids that deadlock).
 *
 * TLS (security.protocol=ssl): OpenSSL over the same nonblocking socket.
 * SSL_read/SSL_write stand in for recv/send and their "want read/write"
 * for EAGAIN; records OpenSSL already holds (SSL_has_pending) are read
 * before polling. The socket BIO is our own, sending with MSG_NOSIGNAL as
 * the plain path does: a library must not raise SIGPIPE in its host.
 * Verification is on by default (the system's CAs, or ssl.ca.location)
 * with the host name checked; a failed handshake names the reason
 * (expired, untrusted, another host, no client certificate).
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
#include <sys/uio.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "protocol/api.h"
#include "protocol/frame.h"

/* Frames at least this large are read straight into their own chunk. */
#define BIG_FRAME (256 * 1024)
#define READ_CHUNK (256 * 1024)

/* The bootstrap address in use. */
#define HOST(c)                                                                \
    ((c)->fixed_host   ? (c)->fixed_host                                       \
     : (c)->cfg->nboot ? (c)->cfg->boot_host[(c)->cur]                         \
                       : (c)->cfg->host)
#define PORT(c)                                                                \
    ((c)->fixed_host   ? (c)->fixed_port                                       \
     : (c)->cfg->nboot ? (c)->cfg->boot_port[(c)->cur]                         \
                       : (c)->cfg->port)
/* Addresses ensure() tries in turn. */
#define NADDR(c) ((c)->fixed_host || (c)->cfg->nboot <= 1 ? 1 : (c)->cfg->nboot)

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
    if (c->tls) {
        SSL_free(c->tls);
        c->tls = NULL;
        ERR_clear_error();
    }
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
    SSL_CTX_free(c->tls_ctx);
    c->tls_ctx = NULL;
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
        return sl_cl_fail(SL_ERR_DISCONNECTED, "broker %s:%s %s", HOST(c),
                          PORT(c), what);
    return sl_cl_fail(SL_ERR_DISCONNECTED, "broker %s:%s %s: %s", HOST(c),
                      PORT(c), what, strerror(e));
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

/* ---- TLS ----------------------------------------------------------------- */

/* The socket BIO: send/recv with MSG_NOSIGNAL (OpenSSL's own writes with
 * write(2), which raises SIGPIPE on a closed connection). */
static int bio_sock_write(BIO *b, const char *p, int n)
{
    ssize_t r;
    BIO_clear_retry_flags(b);
    do
        r = send(BIO_get_fd(b, NULL), p, (size_t)n, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        BIO_set_retry_write(b);
    return (int)r;
}

static int bio_sock_read(BIO *b, char *p, int n)
{
    ssize_t r;
    BIO_clear_retry_flags(b);
    do
        r = recv(BIO_get_fd(b, NULL), p, (size_t)n, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        BIO_set_retry_read(b);
    return (int)r;
}

static BIO_METHOD *bio_method(void)
{
    static BIO_METHOD *m;
    static int done;
    /* a benign race at worst: two threads making the same table */
    if (!done) {
        BIO_METHOD *n = BIO_meth_new(
            BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
            "sluice socket");
        const BIO_METHOD *sock = BIO_s_socket();
        if (!n)
            return NULL;
        BIO_meth_set_write(n, bio_sock_write);
        BIO_meth_set_read(n, bio_sock_read);
        BIO_meth_set_ctrl(n, BIO_meth_get_ctrl(sock));
        BIO_meth_set_create(n, BIO_meth_get_create(sock));
        BIO_meth_set_destroy(n, BIO_meth_get_destroy(sock));
        m = n;
        done = 1;
    }
    return m;
}

static const char *tls_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(buf, len, "%s", r ? r : "no detail from OpenSSL");
    ERR_clear_error();
    return buf;
}

static sl_err tls_ctx_make(sl_cl_conn *c)
{
    const sl_cl_cfg *cfg = c->cfg;
    const char *key = cfg->tls_key[0] ? cfg->tls_key : cfg->tls_cert;
    char r[200];
    SSL_CTX *ctx;

    if (c->tls_ctx)
        return SL_OK;
    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return sl_cl_fail(SL_ERR_NOMEM, "TLS: cannot create a context: %s",
                          tls_reason(r, sizeof(r)));
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (cfg->tls_ca[0]) {
        if (SSL_CTX_load_verify_locations(ctx, cfg->tls_ca, NULL) != 1) {
            SSL_CTX_free(ctx);
            return sl_cl_fail(SL_ERR_INVALID_CONFIG,
                              "TLS: cannot load the CA file %s "
                              "(ssl.ca.location): %s",
                              cfg->tls_ca, tls_reason(r, sizeof(r)));
        }
    } else {
        SSL_CTX_set_default_verify_paths(ctx);
    }
    if (cfg->tls_cert[0]) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            SSL_CTX_free(ctx);
            return sl_cl_fail(SL_ERR_INVALID_CONFIG,
                              "TLS: cannot use the client certificate %s "
                              "with the key %s: %s",
                              cfg->tls_cert, key, tls_reason(r, sizeof(r)));
        }
    }
    SSL_CTX_set_verify(ctx, cfg->tls_verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                       NULL);
    c->tls_ctx = ctx;
    return SL_OK;
}

/* Why the broker's certificate was refused, in words. */
static const char *verify_words(long v)
{
    switch (v) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return "the broker's certificate has expired";
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return "the broker's certificate is not valid yet";
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return "the broker's certificate is for another host (wrong host)";
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
        return "the broker's certificate is untrusted (not signed by a CA "
               "given with --tls-ca / ssl.ca.location)";
    default:
        return NULL;
    }
}

/* A TLS failure on c as an error naming the reason; closes c. */
static sl_err tls_fail(sl_cl_conn *c, int ret, const char *what)
{
    int e = c->tls ? SSL_get_error(c->tls, ret) : SSL_ERROR_SSL;
    long v = c->tls ? SSL_get_verify_result(c->tls) : X509_V_OK;
    int se = errno;
    char r[200], msg[400];

    if (c->tls && e == SSL_ERROR_SYSCALL && !strcmp(what, "write")) {
        /* TLS 1.3: a broker that refuses our certificate says so with an
         * alert after our handshake finished, then closes; a write that
         * meets the reset leaves the alert unread in the socket */
        char tmp[256];
        int r2;
        ERR_clear_error();
        r2 = SSL_read(c->tls, tmp, sizeof(tmp));
        if (r2 <= 0 && SSL_get_error(c->tls, r2) == SSL_ERROR_SSL)
            e = SSL_ERROR_SSL;
        else
            errno = se;
    }

    if (v != X509_V_OK && verify_words(v)) {
        snprintf(msg, sizeof(msg), "%s (%s)", verify_words(v),
                 X509_verify_cert_error_string(v));
        ERR_clear_error();
    } else if (v != X509_V_OK) {
        snprintf(msg, sizeof(msg), "certificate verify failed: %s",
                 X509_verify_cert_error_string(v));
        ERR_clear_error();
    } else if (e == SSL_ERROR_ZERO_RETURN ||
               (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
        if (e == SSL_ERROR_SYSCALL && ret < 0 && se)
            snprintf(msg, sizeof(msg), "%s", strerror(se));
        else
            snprintf(msg, sizeof(msg), "the broker closed the connection%s",
                     !strcmp(what, "TLS handshake")
                         ? " (is that port a TLS listener? sluiced "
                           "--tls-listen)"
                         : "");
    } else {
        tls_reason(r, sizeof(r));
        if (strstr(r, "certificate required"))
            snprintf(msg, sizeof(msg),
                     "the broker requires a client certificate "
                     "(--tls-cert/--tls-key): %s",
                     r);
        else if (strstr(r, "unknown ca") || strstr(r, "bad certificate") ||
                 strstr(r, "certificate unknown"))
            snprintf(msg, sizeof(msg),
                     "the broker refused our client certificate: %s", r);
        else if (!strcmp(r, "wrong version number") ||
                 !strcmp(r, "packet length too long") ||
                 !strcmp(r, "record layer failure"))
            snprintf(msg, sizeof(msg),
                     "%s (the broker did not answer in TLS: a plaintext "
                     "port?)",
                     r);
        else
            snprintf(msg, sizeof(msg), "%s", r);
    }
    sl_cl_conn_close(c);
    return sl_cl_fail(SL_ERR_DISCONNECTED, "broker %s:%s %s failed: %s",
                      HOST(c), PORT(c), what, msg);
}

static int is_ip(const char *h)
{
    unsigned char a[16];
    return inet_pton(AF_INET, h, a) == 1 || inet_pton(AF_INET6, h, a) == 1;
}

/* TLS handshake on the connected socket c->fd, bounded by
 * connect.timeout.ms. */
static sl_err tls_connect(sl_cl_conn *c)
{
    const sl_cl_cfg *cfg = c->cfg;
    int64_t deadline = sl_cl_deadline(cfg->connect_timeout_ms);
    BIO *bio;
    sl_err rc;

    rc = tls_ctx_make(c);
    if (rc != SL_OK) {
        sl_cl_conn_close(c);
        return rc;
    }
    ERR_clear_error();
    c->tls = SSL_new(c->tls_ctx);
    bio = bio_method() ? BIO_new(bio_method()) : NULL;
    if (!c->tls || !bio) {
        BIO_free(bio);
        sl_cl_conn_close(c);
        return sl_cl_fail(SL_ERR_NOMEM, "TLS: out of memory");
    }
    BIO_set_fd(bio, c->fd, BIO_NOCLOSE);
    SSL_set_bio(c->tls, bio, bio);
    if (!is_ip(HOST(c))) /* the bootstrap address in use */
        SSL_set_tlsext_host_name(c->tls, HOST(c));
    if (cfg->tls_verify && cfg->tls_verify_host) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(c->tls);
        if (is_ip(HOST(c)))
            X509_VERIFY_PARAM_set1_ip_asc(vp, HOST(c));
        else
            SSL_set1_host(c->tls, HOST(c));
    }
    for (;;) {
        int r = SSL_connect(c->tls), e, pr;
        struct pollfd pfd;
        if (r == 1)
            return SL_OK;
        e = SSL_get_error(c->tls, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            return tls_fail(c, r, "TLS handshake");
        pfd.fd = c->fd;
        pfd.events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        pfd.revents = 0;
        pr = poll(&pfd, 1, sl_cl_left(deadline));
        if (pr < 0 && errno != EINTR) {
            sl_cl_conn_close(c);
            return sl_cl_fail(SL_ERR_DISCONNECTED,
                              "broker %s:%s TLS handshake: poll: %s", cfg->host,
                              cfg->port, strerror(errno));
        }
        if (pr == 0) {
            sl_cl_conn_close(c);
            return sl_cl_fail(SL_ERR_TIMEOUT,
                              "broker %s:%s: TLS handshake not finished "
                              "within %d ms (a plaintext port?)",
                              cfg->host, cfg->port, cfg->connect_timeout_ms);
        }
    }
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
    rc = sl_cl_conn_call(c, corr, sl_cl_deadline(c->cfg->connect_timeout_ms),
                         &f);
    if (rc == SL_ERR_DISCONNECTED && !c->cfg->tls) {
        /* a TLS listener closes a plaintext client at its first bytes */
        rc = sl_cl_fail(rc,
                        "broker %s:%s closed the connection during the "
                        "handshake (a TLS port? connect with --tls / "
                        "security.protocol=ssl)",
                        HOST(c), PORT(c));
    }
    if (rc != SL_OK)
        goto out;
    body = sl_frame_body(f, &blen, &rcorr);
    rc = sl_handshake_resp_decode(body, blen, &arena, &resp);
    if (rc != SL_OK) {
        rc = sl_cl_fail(SL_ERR_PROTOCOL, "broker %s:%s: bad handshake reply",
                        HOST(c), PORT(c));
        goto out;
    }
    if (resp.error != SL_OK) {
        rc = sl_cl_fail((sl_err)resp.error, "broker %s:%s handshake: %.*s",
                        HOST(c), PORT(c), (int)resp.error_msg.len,
                        resp.error_msg.p ? resp.error_msg.p : "");
        goto out;
    }
    if (resp.max_frame >= 1024)
        c->max_frame = resp.max_frame;
    rc = sl_cl_sasl_login(c);
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
            "broker %s:%s: not connected (retrying in %d ms)", HOST(c), PORT(c),
            (int)(c->cfg->reconnect_backoff_ms - (now - c->last_attempt_ms)));
    c->last_attempt_ms = now;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    for (int tries = NADDR(c); tries > 0; tries--) {
        gai = getaddrinfo(HOST(c), PORT(c), &hints, &res);
        if (gai != 0) {
            rc = sl_cl_fail(SL_ERR_DISCONNECTED, "resolve %s:%s: %s", HOST(c),
                            PORT(c), gai_strerror(gai));
        } else {
            rc = SL_ERR_DISCONNECTED;
            for (ai = res; ai; ai = ai->ai_next) {
                rc = connect_one(c, ai, &fd, &e);
                if (rc == SL_OK)
                    break;
            }
            freeaddrinfo(res);
            res = NULL;
            if (rc != SL_OK)
                rc = sl_cl_fail(SL_ERR_DISCONNECTED, "connect %s:%s: %s",
                                HOST(c), PORT(c), strerror(e));
        }
        if (rc == SL_OK) {
            c->fd = fd;
            c->out_off = 0;
            c->in_len = 0;
            c->epoch++;
            if (c->cfg->tls)
                rc = tls_connect(c);
            if (rc == SL_OK)
                rc = handshake(c);
            if (rc == SL_OK)
                return SL_OK;
            if (NADDR(c) > 1 && c->fd >= 0)
                sl_cl_conn_close(c); /* and try the next address */
        }
        if (NADDR(c) > 1) /* the next bootstrap address */
            c->cur = (c->cur + 1) % c->cfg->nboot;
    }
    return rc;
}

sl_err sl_cl_conn_write_some(sl_cl_conn *c)
{
    ssize_t n;
    if (c->fd < 0)
        return sl_cl_fail(SL_ERR_DISCONNECTED, "broker %s:%s: not connected",
                          HOST(c), PORT(c));
    while (c->out_off < c->out.len) {
        if (c->tls) {
            size_t len = c->out.len - c->out_off;
            int r = SSL_write(c->tls, c->out.p + c->out_off,
                              len > INT32_MAX ? INT32_MAX : (int)len);
            if (r <= 0) {
                int e = SSL_get_error(c->tls, r);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
                    return SL_OK;
                return tls_fail(c, r, "write");
            }
            c->out_off += (size_t)r;
            continue;
        }
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

/* Pieces of one sendmsg in sl_cl_conn_queue_produce: a request of more
 * partitions than this takes the copying path. */
#define PRODUCE_PIECES 64

sl_err sl_cl_conn_queue_produce(sl_cl_conn *c, uint32_t corr,
                                const sl_produce_req *r)
{
    struct iovec iov[PRODUCE_PIECES];
    size_t cut[PRODUCE_PIECES / 2], nparts = 0, k = 0, at = 0, st;
    size_t total = 0, sent = 0, skip;
    uint64_t ext = 0;
    struct msghdr m;
    sl_wb hdr;
    sl_err rc;
    int n = 0;

    for (uint32_t t = 0; t < r->ntopics; t++)
        nparts += r->topics[t].nparts;
    if (c->tls || c->fd < 0 || c->out_off != c->out.len ||
        nparts >= PRODUCE_PIECES / 2 || r->acks > SL_ACKS_DURABLE)
        return sl_produce_req_encode(&c->out, corr, r);
    /* the bytes around the batches, as sl_produce_req_encode writes them
     * (tests/unit/test_client_conn.c compares the two) */
    sl_wb_init(&hdr, 256);
    st = sl_req_begin(&hdr, SL_API_PRODUCE, SL_API_V1, corr);
    sl_wb_u8(&hdr, r->acks);
    sl_wb_u32(&hdr, r->timeout_ms);
    sl_wb_u32(&hdr, r->ntopics);
    for (uint32_t t = 0; t < r->ntopics; t++) {
        const sl_produce_topic *pt = &r->topics[t];
        sl_wb_str16(&hdr, pt->topic.p, pt->topic.len);
        sl_wb_u32(&hdr, pt->nparts);
        for (uint32_t j = 0; j < pt->nparts; j++) {
            if (pt->parts[j].records_len > UINT32_MAX - 1)
                hdr.err = SL_ERR_TOO_LARGE;
            sl_wb_u32(&hdr, pt->parts[j].partition);
            sl_wb_u32(&hdr, (uint32_t)pt->parts[j].records_len);
            cut[k++] = hdr.len;
            ext += pt->parts[j].records_len;
        }
    }
    rc = sl_frame_finish_ext(&hdr, st, ext);
    if (rc != SL_OK) {
        sl_wb_fini(&hdr);
        return rc;
    }
    k = 0;
    for (uint32_t t = 0; t < r->ntopics; t++)
        for (uint32_t j = 0; j < r->topics[t].nparts; j++, k++) {
            iov[n].iov_base = hdr.p + at;
            iov[n++].iov_len = cut[k] - at;
            at = cut[k];
            iov[n].iov_base = r->topics[t].parts[j].records;
            iov[n++].iov_len = r->topics[t].parts[j].records_len;
        }
    iov[n].iov_base = hdr.p + at;
    iov[n++].iov_len = hdr.len - at;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    memset(&m, 0, sizeof(m));
    m.msg_iov = iov;
    m.msg_iovlen = (size_t)n;
    for (;;) {
        ssize_t w = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w >= 0)
            sent = (size_t)w;
        else if (errno == EINTR)
            continue;
        /* EAGAIN: all of it is queued below; another error: the next
         * write meets it and reports it */
        break;
    }
    sl_wb_reset(&c->out);
    c->out_off = 0;
    skip = sent;
    for (int i = 0; i < n && sent < total; i++) {
        if (skip >= iov[i].iov_len) { /* sent in full */
            skip -= iov[i].iov_len;
            continue;
        }
        sl_wb_put(&c->out, (const uint8_t *)iov[i].iov_base + skip,
                  iov[i].iov_len - skip);
        skip = 0;
    }
    sl_wb_fini(&hdr);
    return c->out.err ? (sl_err)c->out.err : SL_OK;
}

/* recv(2) or SSL_read into p: > 0 bytes, 0 at the peer's end, -1 with
 * errno (EAGAIN when TLS wants more bytes); a TLS failure closes c and
 * returns -2 with the error recorded in *rc. */
static ssize_t conn_recv(sl_cl_conn *c, void *p, size_t len, sl_err *rc)
{
    int r, e;
    if (!c->tls)
        return recv(c->fd, p, len, 0);
    r = SSL_read(c->tls, p, len > INT32_MAX ? INT32_MAX : (int)len);
    if (r > 0)
        return r;
    e = SSL_get_error(c->tls, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN ||
        (e == SSL_ERROR_SYSCALL && r == 0 && ERR_peek_error() == 0)) {
        ERR_clear_error();
        return 0;
    }
    *rc = tls_fail(c, r, "read");
    return -2;
}

/* Read what is available into the input buffer (or the big frame). */
static sl_err read_some(sl_cl_conn *c)
{
    ssize_t n;
    sl_err trc = SL_OK;
    for (;;) {
        if (c->big) {
            n = conn_recv(c, sl_chunk_ptr(c->big) + c->big_have,
                          c->big->len - c->big_have, &trc);
        } else {
            if (c->in_cap - c->in_len < READ_CHUNK / 4) {
                size_t ncap = c->in_cap ? c->in_cap * 2 : READ_CHUNK;
                uint8_t *p = realloc(c->in, ncap);
                if (!p)
                    return sl_cl_fail(SL_ERR_NOMEM, "read buffer");
                c->in = p;
                c->in_cap = ncap;
            }
            n = conn_recv(c, c->in + c->in_len, c->in_cap - c->in_len, &trc);
        }
        if (n == -2)
            return trc;
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
                          "broker %s:%s sent a bad frame (length %zu)", HOST(c),
                          PORT(c), flen);
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

    /* records OpenSSL holds already: no poll would report them */
    if (c->tls && SSL_has_pending(c->tls))
        return read_some(c);
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

sl_err sl_cl_conn_write_bounded(sl_cl_conn *c, int64_t deadline,
                                size_t max_pending)
{
    sl_err rc;
    if (c->fd < 0)
        return sl_cl_fail(SL_ERR_DISCONNECTED, "broker %s:%s: not connected",
                          HOST(c), PORT(c));
    rc = sl_cl_conn_write_some(c);
    while (rc == SL_OK && c->out.len - c->out_off > max_pending) {
        rc = wait_io(c, deadline, 1);
        if (rc == SL_ERR_TIMEOUT)
            return sl_cl_fail(SL_ERR_TIMEOUT, "broker %s:%s: write", HOST(c),
                              PORT(c));
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
                          HOST(c), PORT(c));
    rc = sl_cl_conn_write_some(c);
    while (rc == SL_OK && c->out.len > c->out_off) {
        rc = wait_io(c, deadline, 1);
        if (rc == SL_ERR_TIMEOUT)
            return sl_cl_fail(SL_ERR_TIMEOUT, "broker %s:%s: write", HOST(c),
                              PORT(c));
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
                              "broker %s:%s: not connected", HOST(c), PORT(c));
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
                              HOST(c), PORT(c));
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
    if (msg.p && msg.len) {
        /* a broker message that names the request already (the admin
         * verbs': "acl.grant: no user ...") is not prefixed again */
        size_t wl = strlen(what);
        if (msg.len > wl + 1 && !memcmp(msg.p, what, wl) && msg.p[wl] == ':' &&
            msg.p[wl + 1] == ' ')
            return sl_cl_fail((sl_err)err, "%.*s", (int)msg.len, msg.p);
        return sl_cl_fail((sl_err)err, "%s: %.*s", what, (int)msg.len, msg.p);
    }
    return sl_cl_fail((sl_err)err, "%s", what);
}

sl_err sl_cl_bad_reply(sl_err rc, const char *what)
{
    if (rc == SL_ERR_NOMEM)
        return sl_cl_fail(rc, "%s: decoding the reply", what);
    return sl_cl_fail(SL_ERR_PROTOCOL, "%s: malformed reply from the broker",
                      what);
}
