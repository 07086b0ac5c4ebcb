/*
 * sluice_bench_stomp.c - the STOMP mode of sluice-bench: the same client
 * against sluiced, RabbitMQ and ActiveMQ (bench/compare.sh).
 *
 *   sluice-bench stomp [--host H] [--port P] [--producers N] [--consumers M]
 *       [--count N] [--size B] [--dest /queue/X] [--persistent]
 *       [--receipt-every K] [--window W] [--ack auto|client-individual]
 *       [--prefetch N] [--login L --passcode P] [--sync-receipts]
 *       [--tls-ca FILE] [--ws PATH]
 *
 * Producers send --count messages each; consumers share the destination
 * (competing on a queue) until they received producers x count in total
 * (with --producers 0: count, to drain a queue filled beforehand).
 * Each body starts with the send time (CLOCK_MONOTONIC ns, 16 hex digits),
 * so the end-to-end latency is measured at the consumer. With
 * --receipt-every K every K-th SEND asks for a receipt and at most
 * --window receipts are outstanding; --sync-receipts sends one message,
 * waits for its receipt, and so on (receipt latency = send to RECEIPT).
 *
 * Output: one line `key=value ...` with sent/s (in), received/s (out),
 * e2e p50/p99/p99.9 (ms) and receipt p50/p99/p99.9 (ms).
 *
 * --ws PATH speaks STOMP over WebSocket instead (sluiced's
 * --stomp-ws-listen, RabbitMQ's Web-STOMP at /ws): an HTTP Upgrade, then
 * each write one masked binary message (an all-zero mask, so the client
 * spends nothing masking) and the server's messages unwrapped before the
 * STOMP parser, so the two transports are compared with the same client.
 *
 * Frames are parsed with broker/stomp_frame.c (pure code). Blocking
 * sockets, one thread per client. --tls-ca FILE: STOMP over TLS (the
 * broker's --stomp-tls-listen port), the broker's certificate verified
 * against FILE (host name not checked).
 */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "bench/bench.h"
#include "broker/stomp_frame.h"

typedef struct bopts {
    const char *host, *port, *dest, *login, *passcode, *ack, *tls_ca;
    int producers, consumers;
    long count;
    size_t size;
    int persistent;
    long receipt_every;
    long window;
    long prefetch;
    int sync_receipts;
    const char *ws; /* --ws PATH: STOMP over WebSocket */
} bopts;

typedef struct lat {
    int64_t *v;
    size_t n, cap;
} lat;

static bopts O;
static atomic_long g_received;
/* consumers whose SUBSCRIBE was answered (its receipt): producers start
 * only then, or a /topic subscriber would miss the first messages */
static atomic_long g_subscribed;
static atomic_long g_sent;
static long g_expected;
static int64_t g_first_send, g_last_recv, g_first_recv, g_last_send_done;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void lat_add(lat *l, int64_t v)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 4096;
        int64_t *n = realloc(l->v, nc * sizeof(*n));
        if (!n)
            return;
        l->v = n;
        l->cap = nc;
    }
    l->v[l->n++] = v;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(lat *l, double p)
{
    size_t i;
    if (!l->n)
        return 0;
    i = (size_t)(p * (double)(l->n - 1));
    return (double)l->v[i] / 1e6;
}

static SSL_CTX *g_tls; /* --tls-ca: made once in main */

typedef struct sconn {
    int fd;
    SSL *ssl; /* NULL without --tls-ca */
    sl_stomp_parser ps;
    uint8_t buf[65536];
    size_t off, len;
    /* --ws: raw bytes read, and what is left of the current message */
    uint8_t *raw;
    size_t roff, rlen;
    uint64_t left;
} sconn;

static int raw_write(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* At least n raw bytes buffered (--ws), or -1 on EOF/error. */
static int ws_need(sconn *c, size_t n)
{
    if (c->rlen - c->roff >= n)
        return 0;
    memmove(c->raw, c->raw + c->roff, c->rlen - c->roff);
    c->rlen -= c->roff;
    c->roff = 0;
    while (c->rlen < n) {
        ssize_t r = read(c->fd, c->raw + c->rlen, 65536 + 16 - c->rlen);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        c->rlen += (size_t)r;
    }
    return 0;
}

/* The WebSocket handshake (--ws), after connect. */
static int ws_handshake(sconn *c)
{
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: c2x1aWNlLWJlbmNoLWtleQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Protocol: v12.stomp\r\n\r\n",
                     O.ws, O.host);
    c->raw = malloc(65536 + 32);
    c->roff = c->rlen = 0;
    c->left = 0;
    if (!c->raw || raw_write(c->fd, req, (size_t)n) != 0)
        return -1;
    for (;;) {
        uint8_t *e;
        if (ws_need(c, c->rlen - c->roff + 1) != 0)
            return -1;
        c->raw[c->rlen] = 0;
        e = (uint8_t *)strstr((char *)c->raw, "\r\n\r\n");
        if (!e)
            continue;
        if (strncmp((char *)c->raw, "HTTP/1.1 101", 12) != 0) {
            fprintf(stderr, "bench: WebSocket handshake refused: %.*s\n",
                    (int)(e - c->raw), (char *)c->raw);
            return -1;
        }
        c->roff = (size_t)(e + 4 - c->raw);
        return 0;
    }
}

/* Fill c->buf with message payload (--ws): skips control frames. */
static ssize_t ws_read(sconn *c)
{
    while (c->left == 0) {
        uint8_t b1;
        uint64_t n;
        size_t hl = 2;
        if (ws_need(c, 2) != 0)
            return -1;
        b1 = c->raw[c->roff + 1] & 0x7f;
        if (b1 == 126)
            hl = 4;
        else if (b1 == 127)
            hl = 10;
        if (ws_need(c, hl) != 0)
            return -1;
        n = b1;
        if (b1 == 126)
            n = (uint64_t)c->raw[c->roff + 2] << 8 | c->raw[c->roff + 3];
        else if (b1 == 127) {
            n = 0;
            for (int i = 2; i < 10; i++)
                n = n << 8 | c->raw[c->roff + i];
        }
        if ((c->raw[c->roff] & 0x0f) == 8)
            return -1; /* Close */
        c->roff += hl;
        c->left = n;
        if ((c->raw[c->roff - hl] & 0x0f) >= 8) {
            /* ping/pong: skip (the broker sends none unasked) */
            if (ws_need(c, (size_t)n) != 0)
                return -1;
            c->roff += (size_t)n;
            c->left = 0;
        }
    }
    if (c->roff == c->rlen && ws_need(c, 1) != 0)
        return -1;
    {
        size_t k = c->rlen - c->roff;
        if (k > c->left)
            k = (size_t)c->left;
        if (k > sizeof(c->buf))
            k = sizeof(c->buf);
        memcpy(c->buf, c->raw + c->roff, k);
        c->roff += k;
        c->left -= k;
        return (ssize_t)k;
    }
}

static int sc_open(sconn *c)
{
    struct addrinfo hints = {0}, *ai = NULL;
    int one = 1;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(O.host, O.port, &hints, &ai) != 0 || !ai)
        return -1;
    c->fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (c->fd < 0 || connect(c->fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->ssl = NULL;
    if (g_tls) {
        c->ssl = SSL_new(g_tls);
        if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1 ||
            SSL_connect(c->ssl) != 1) {
            unsigned long e = ERR_get_error();
            fprintf(stderr, "bench: TLS handshake failed: %s\n",
                    e ? ERR_reason_error_string(e) : "closed");
            return -1;
        }
    }
    sl_stomp_parser_init(&c->ps, NULL);
    c->off = c->len = 0;
    if (O.ws && ws_handshake(c) != 0)
        return -1;
    return 0;
}

static int sc_write(sconn *c, const void *p, size_t n)
{
    const uint8_t *b = p;
    if (O.ws) {
        /* one binary message, masked with an all-zero key */
        uint8_t h[14];
        size_t hl = 2;
        struct iovec iov[2];
        h[0] = 0x82;
        if (n < 126)
            h[1] = (uint8_t)(0x80 | n);
        else if (n < 65536) {
            h[1] = 0x80 | 126;
            h[2] = (uint8_t)(n >> 8);
            h[3] = (uint8_t)n;
            hl = 4;
        } else {
            h[1] = 0x80 | 127;
            for (int i = 0; i < 8; i++)
                h[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
            hl = 10;
        }
        memset(h + hl, 0, 4);
        hl += 4;
        iov[0].iov_base = h;
        iov[0].iov_len = hl;
        iov[1].iov_base = (void *)p;
        iov[1].iov_len = n;
        if (writev(c->fd, iov, 2) == (ssize_t)(hl + n))
            return 0;
        return -1; /* a short writev: not worth resuming in a bench */
    }
    while (n) {
        ssize_t w =
            c->ssl ? SSL_write(c->ssl, b, n > INT32_MAX ? INT32_MAX : (int)n)
                   : write(c->fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Next frame (borrowed until the next call), or -1 on EOF/error. */
static int sc_read(sconn *c, sl_stomp_frame *f)
{
    for (;;) {
        if (c->off < c->len) {
            size_t used = 0;
            int rc = sl_stomp_parse(&c->ps, c->buf + c->off, c->len - c->off,
                                    &used, f);
            c->off += used;
            if (rc == SL_STOMP_FRAME)
                return 0;
            if (rc == SL_STOMP_PERROR) {
                fprintf(stderr, "bench: bad frame: %s\n", c->ps.errstr);
                return -1;
            }
        }
        {
            ssize_t r = O.ws     ? ws_read(c)
                        : c->ssl ? SSL_read(c->ssl, c->buf, sizeof(c->buf))
                                 : read(c->fd, c->buf, sizeof(c->buf));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                return -1;
            c->off = 0;
            c->len = (size_t)r;
        }
    }
}

static int sc_connect(sconn *c)
{
    sl_wb wb;
    sl_stomp_enc e;
    sl_stomp_frame f;
    int rc;
    if (sc_open(c) != 0) {
        fprintf(stderr, "bench: cannot connect to %s:%s\n", O.host, O.port);
        return -1;
    }
    sl_wb_init(&wb, 256);
    sl_stomp_enc_begin(&e, &wb, SL_STOMP_V12, SL_STOMP_CONNECT);
    sl_stomp_enc_header_s(&e, "accept-version", "1.2");
    sl_stomp_enc_header_s(&e, "host", "/");
    sl_stomp_enc_header_s(&e, "login", O.login);
    sl_stomp_enc_header_s(&e, "passcode", O.passcode);
    sl_stomp_enc_header_s(&e, "heart-beat", "0,0");
    sl_stomp_enc_end(&e, NULL, 0);
    rc = sc_write(c, wb.p, wb.len);
    sl_wb_fini(&wb);
    if (rc || sc_read(c, &f) || f.cmd != SL_STOMP_CONNECTED) {
        fprintf(stderr, "bench: CONNECT refused%s%s\n",
                rc == 0 && f.cmd == SL_STOMP_ERROR ? ": " : "",
                rc == 0 && f.cmd == SL_STOMP_ERROR
                    ? sl_stomp_frame_value(&f, "message")
                    : "");
        return -1;
    }
    sl_stomp_parser_set_version(&c->ps, SL_STOMP_V12);
    return 0;
}

static void sc_close(sconn *c)
{
    if (c->ssl)
        SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->raw);
    c->raw = NULL;
    sl_stomp_parser_fini(&c->ps);
}

typedef struct worker {
    pthread_t t;
    int idx;
    lat e2e, rcpt;
    int failed;
    sconn c;
} worker;

static void *producer(void *arg)
{
    worker *w = arg;
    sl_wb wb;
    char *body = malloc(O.size > 16 ? O.size : 16);
    long i, outstanding = 0, next_receipt = 0;
    int64_t *rsent = calloc((size_t)(O.count + 1), sizeof(int64_t));
    sl_stomp_frame f;
    if (!body || !rsent || sc_connect(&w->c) != 0) {
        w->failed = 1;
        free(body);
        free(rsent);
        return NULL;
    }
    memset(body, 'x', O.size > 16 ? O.size : 16);
    sl_wb_init(&wb, 64 * 1024);
    pthread_mutex_lock(&g_mu);
    if (!g_first_send)
        g_first_send = now_ns();
    pthread_mutex_unlock(&g_mu);
    for (i = 0; i < O.count; i++) {
        sl_stomp_enc e;
        char hx[17];
        int want_receipt =
            O.sync_receipts ||
            (O.receipt_every > 0 &&
             ((i + 1) % O.receipt_every == 0 || i + 1 == O.count));
        int64_t t = now_ns();
        snprintf(hx, sizeof(hx), "%016" PRIx64, (uint64_t)t);
        memcpy(body, hx, 16);
        sl_stomp_enc_begin(&e, &wb, SL_STOMP_V12, SL_STOMP_SEND);
        sl_stomp_enc_header_s(&e, "destination", O.dest);
        if (O.persistent)
            sl_stomp_enc_header_s(&e, "persistent", "true");
        if (want_receipt) {
            char r[24];
            snprintf(r, sizeof(r), "%ld", i);
            sl_stomp_enc_header_s(&e, "receipt", r);
            rsent[i] = t;
            outstanding++;
        }
        sl_stomp_enc_header_u(&e, "content-length", O.size);
        sl_stomp_enc_end(&e, body, O.size);
        if (wb.len >= 32 * 1024 || want_receipt || i + 1 == O.count) {
            if (sc_write(&w->c, wb.p, wb.len) != 0) {
                w->failed = 1;
                break;
            }
            sl_wb_reset(&wb);
        }
        atomic_fetch_add(&g_sent, 1);
        while (outstanding > 0 && (O.sync_receipts || outstanding >= O.window ||
                                   i + 1 == O.count)) {
            if (sc_read(&w->c, &f) != 0) {
                w->failed = 1;
                goto out;
            }
            if (f.cmd == SL_STOMP_RECEIPT) {
                const char *id = sl_stomp_frame_value(&f, "receipt-id");
                long k = id ? atol(id) : -1;
                if (k >= 0 && k < O.count && rsent[k])
                    lat_add(&w->rcpt, now_ns() - rsent[k]);
                outstanding--;
                next_receipt++;
            } else if (f.cmd == SL_STOMP_ERROR) {
                fprintf(stderr, "bench: producer ERROR: %s\n",
                        sl_stomp_frame_value(&f, "message"));
                w->failed = 1;
                goto out;
            }
        }
    }
out:
    pthread_mutex_lock(&g_mu);
    g_last_send_done = now_ns();
    pthread_mutex_unlock(&g_mu);
    sl_wb_fini(&wb);
    free(body);
    free(rsent);
    sc_close(&w->c);
    return NULL;
}

static void *consumer(void *arg)
{
    worker *w = arg;
    sl_wb wb;
    sl_stomp_enc e;
    sl_stomp_frame f;
    char pf[24];
    int individual = strcmp(O.ack, "auto") != 0;
    sl_wb_init(&wb, 64 * 1024);
    snprintf(pf, sizeof(pf), "%ld", O.prefetch);
    sl_stomp_enc_begin(&e, &wb, SL_STOMP_V12, SL_STOMP_SUBSCRIBE);
    sl_stomp_enc_header_s(&e, "destination", O.dest);
    sl_stomp_enc_header_s(&e, "id", "0");
    sl_stomp_enc_header_s(&e, "ack", O.ack);
    sl_stomp_enc_header_s(&e, "prefetch-count", pf);
    sl_stomp_enc_header_s(&e, "activemq.prefetchSize", pf);
    sl_stomp_enc_header_s(&e, "receipt", "sub");
    sl_stomp_enc_end(&e, NULL, 0);
    if (sc_write(&w->c, wb.p, wb.len) != 0) {
        w->failed = 1;
        goto out;
    }
    sl_wb_reset(&wb);
    while (atomic_load(&g_received) < g_expected) {
        if (sc_read(&w->c, &f) != 0)
            break;
        if (f.cmd == SL_STOMP_MESSAGE) {
            int64_t t = now_ns();
            long got;
            if (f.body_len >= 16) {
                char hx[17];
                memcpy(hx, f.body, 16);
                hx[16] = 0;
                lat_add(&w->e2e, t - (int64_t)strtoull(hx, NULL, 16));
            }
            if (individual) {
                const char *a = sl_stomp_frame_value(&f, "ack");
                if (!a)
                    a = sl_stomp_frame_value(&f, "message-id");
                sl_stomp_enc_begin(&e, &wb, SL_STOMP_V12, SL_STOMP_ACK);
                sl_stomp_enc_header_s(&e, "id", a ? a : "");
                sl_stomp_enc_end(&e, NULL, 0);
            }
            got = atomic_fetch_add(&g_received, 1) + 1;
            pthread_mutex_lock(&g_mu);
            if (!g_first_recv)
                g_first_recv = t;
            g_last_recv = t;
            pthread_mutex_unlock(&g_mu);
            /* flush acks when the socket has nothing more buffered */
            if (wb.len && (w->c.off >= w->c.len || wb.len > 32 * 1024 ||
                           got >= g_expected)) {
                if (sc_write(&w->c, wb.p, wb.len) != 0)
                    break;
                sl_wb_reset(&wb);
            }
        } else if (f.cmd == SL_STOMP_RECEIPT) {
            const char *rid = sl_stomp_frame_value(&f, "receipt-id");
            if (rid && strcmp(rid, "sub") == 0)
                atomic_fetch_add(&g_subscribed, 1);
        } else if (f.cmd == SL_STOMP_ERROR) {
            fprintf(stderr, "bench: consumer ERROR: %s\n",
                    sl_stomp_frame_value(&f, "message"));
            w->failed = 1;
            break;
        }
    }
    if (wb.len)
        sc_write(&w->c, wb.p, wb.len);
out:
    sl_wb_fini(&wb);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: sluice-bench stomp [--host H] [--port P] [--producers N]"
            " [--consumers M]\n"
            "  [--count N] [--size BYTES] [--dest /queue/X] [--persistent]\n"
            "  [--receipt-every K] [--window W] [--sync-receipts]\n"
            "  [--ack auto|client-individual] [--prefetch N]\n"
            "  [--login L] [--passcode P] [--tls-ca FILE] [--ws PATH]\n");
}

int sl_bench_stomp_main(int argc, char **argv)
{
    worker *ws;
    int i, n, failed = 0;
    int64_t t0, t_end;
    lat e2e = {0}, rc = {0};
    double secs_in, secs_out;
    signal(SIGPIPE, SIG_IGN); /* a closed socket is an error, not death */
    O.host = "127.0.0.1";
    O.port = "61613";
    O.dest = "/queue/bench";
    O.login = "guest";
    O.passcode = "guest";
    O.ack = "client-individual";
    O.producers = 1;
    O.consumers = 1;
    O.count = 100000;
    O.size = 100;
    O.window = 4;
    O.prefetch = 1000;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (strcmp(a, name) == 0 && v && (i++, 1))
        if (strcmp(a, "stomp") == 0)
            continue;
        if (OPT("--host"))
            O.host = v;
        else if (OPT("--port"))
            O.port = v;
        else if (OPT("--dest"))
            O.dest = v;
        else if (OPT("--tls-ca"))
            O.tls_ca = v;
        else if (OPT("--login"))
            O.login = v;
        else if (OPT("--passcode"))
            O.passcode = v;
        else if (OPT("--ws"))
            O.ws = v;
        else if (OPT("--ack"))
            O.ack = v;
        else if (OPT("--producers"))
            O.producers = atoi(v);
        else if (OPT("--consumers"))
            O.consumers = atoi(v);
        else if (OPT("--count"))
            O.count = atol(v);
        else if (OPT("--size"))
            O.size = (size_t)atol(v);
        else if (OPT("--receipt-every"))
            O.receipt_every = atol(v);
        else if (OPT("--window"))
            O.window = atol(v);
        else if (OPT("--prefetch"))
            O.prefetch = atol(v);
        else if (strcmp(a, "--persistent") == 0)
            O.persistent = 1;
        else if (strcmp(a, "--sync-receipts") == 0)
            O.sync_receipts = 1;
        else {
            usage();
            return 2;
        }
#undef OPT
    }
    if (O.size < 16 || O.count < 1 || O.producers < 0 || O.consumers < 0 ||
        O.window < 1) {
        fprintf(stderr, "bench: --size >= 16, --count >= 1, --window >= 1\n");
        return 2;
    }
    if (O.tls_ca && O.ws) {
        fprintf(stderr, "bench: --ws and --tls-ca do not combine (wss is "
                        "not in this client)\n");
        return 2;
    }
    if (O.tls_ca) {
        g_tls = SSL_CTX_new(TLS_client_method());
        if (!g_tls ||
            SSL_CTX_load_verify_locations(g_tls, O.tls_ca, NULL) != 1) {
            fprintf(stderr, "bench: cannot load %s\n", O.tls_ca);
            return 2;
        }
        SSL_CTX_set_verify(g_tls, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_mode(g_tls, SSL_MODE_AUTO_RETRY);
    }
    n = O.producers + O.consumers;
    ws = calloc((size_t)n, sizeof(*ws));
    if (!ws)
        return 1;
    g_expected = O.consumers ? (long)O.producers * O.count : 0;
    if (O.producers == 0)
        g_expected = O.count; /* drain a queue filled beforehand */
    /* consumers first, subscribed (receipt) before anything is sent */
    for (i = 0; i < O.consumers; i++) {
        ws[i].c.fd = -1;
        if (sc_connect(&ws[i].c) != 0)
            return 1;
    }
    for (i = 0; i < O.consumers; i++)
        pthread_create(&ws[i].t, NULL, consumer, &ws[i]);
    /* every SUBSCRIBE answered before the first SEND (bounded) */
    {
        int64_t deadline = now_ns() + 30LL * 1000000000LL;
        while (atomic_load(&g_subscribed) < O.consumers && now_ns() < deadline)
            usleep(200);
        if (atomic_load(&g_subscribed) < O.consumers)
            fprintf(stderr, "bench: %ld of %ld subscriptions confirmed\n",
                    atomic_load(&g_subscribed), (long)O.consumers);
    }
    t0 = now_ns();
    for (i = O.consumers; i < n; i++) {
        ws[i].c.fd = -1;
        pthread_create(&ws[i].t, NULL, producer, &ws[i]);
    }
    for (i = O.consumers; i < n; i++)
        pthread_join(ws[i].t, NULL);
    /* wait for the consumers to see everything (bounded), then unblock
     * the ones still reading */
    {
        int64_t deadline = now_ns() + 120LL * 1000000000LL;
        while (atomic_load(&g_received) < g_expected && now_ns() < deadline)
            usleep(1000);
        if (atomic_load(&g_received) < g_expected) {
            fprintf(stderr, "bench: timed out: received %ld of %ld\n",
                    atomic_load(&g_received), g_expected);
            failed = 1;
        }
    }
    for (i = 0; i < O.consumers; i++)
        shutdown(ws[i].c.fd, SHUT_RDWR);
    for (i = 0; i < O.consumers; i++) {
        pthread_join(ws[i].t, NULL);
        sc_close(&ws[i].c);
    }
    t_end = now_ns();
    for (i = 0; i < n; i++) {
        size_t k;
        failed |= ws[i].failed;
        for (k = 0; k < ws[i].e2e.n; k++)
            lat_add(&e2e, ws[i].e2e.v[k]);
        for (k = 0; k < ws[i].rcpt.n; k++)
            lat_add(&rc, ws[i].rcpt.v[k]);
        free(ws[i].e2e.v);
        free(ws[i].rcpt.v);
    }
    qsort(e2e.v, e2e.n, sizeof(int64_t), cmp64);
    qsort(rc.v, rc.n, sizeof(int64_t), cmp64);
    secs_in = (double)((g_last_send_done ? g_last_send_done : t_end) -
                       (g_first_send ? g_first_send : t0)) /
              1e9;
    secs_out = (double)((g_last_recv ? g_last_recv : t_end) -
                        (g_first_send ? g_first_send : t0)) /
               1e9;
    printf("sent=%ld received=%ld in_msg_s=%.0f out_msg_s=%.0f "
           "e2e_p50_ms=%.3f e2e_p99_ms=%.3f e2e_p999_ms=%.3f "
           "receipt_p50_ms=%.3f receipt_p99_ms=%.3f receipt_p999_ms=%.3f "
           "elapsed_s=%.2f%s\n",
           atomic_load(&g_sent), atomic_load(&g_received),
           secs_in > 0 ? (double)atomic_load(&g_sent) / secs_in : 0,
           secs_out > 0 ? (double)atomic_load(&g_received) / secs_out : 0,
           pct(&e2e, 0.50), pct(&e2e, 0.99), pct(&e2e, 0.999), pct(&rc, 0.50),
           pct(&rc, 0.99), pct(&rc, 0.999), (double)(t_end - t0) / 1e9,
           failed ? " FAILED" : "");
    free(e2e.v);
    free(rc.v);
    free(ws);
    return failed ? 1 : 0;
}

#ifdef SL_BENCH_STOMP_STANDALONE
int main(int argc, char **argv)
{
    return sl_bench_stomp_main(argc, argv);
}
#endif
