/*
 * conn_input.c - the connection layer's input side (the essay is at the
 * top of conn.c: "2. Reading", "5. Timeouts", "Transports"): pacing
 * (SL_PRI_INGRESS and its guard timer), reading and handing input to the
 * protocol, the socket's write and work callbacks, the timer (handshake,
 * linger, drain), the bufferevent's events (TLS handshake done or failed,
 * EOF, errors) and the read mark of a large frame (SO_RCVLOWAT).
 *
 * @thread loop (everything in this file)
 */
#include "broker/conn.h"
#include "broker/conn_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "broker/broker.h"
#include "broker/hist.h"
#include "broker/tls.h"
#include "protocol/log.h"
#include "storage/fsutil.h"

static void process_input(sl_conn *c);

/* Bytes waiting in c's socket (FIONREAD), 0 when unknown. */
static int conn_socket_pending(sl_conn *c)
{
    int n = 0;
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    if (fd < 0 || ioctl(fd, FIONREAD, &n) != 0)
        return 0;
    return n;
}
/* ---- pacing (SL_PRI_INGRESS) --------------------------------------------- */

/* A producer (sl_conn_set_pace) that streams, i.e. whose last read found
 * more than libevent's 4 KiB waiting, reads at SL_PRI_INGRESS (ops.h);
 * every other connection at the normal priority. It stays one until a
 * smaller read finds no reply owed (a window of receipts has drained).
 * One that sends a frame and waits for its reply cannot outrun the
 * consumers, and at the lower priority it would wait behind their acks
 * (4% on a STOMP receipt on every send). */
static void set_priority(sl_conn *c)
{
    sl_broker *b = c->b;
    int want = c->pace && c->streaming, ingress;
    if (c->dead || conn_filtered(c)) /* never paced (sl_conn_set_pace) */
        return;
    /* libevent refuses while one of the events is active (it may have
     * moved one of the two): retried from the next read, work or guard
     * callback, and until then the guard looks after the connection */
    c->pri_stale = bufferevent_priority_set(c->bev, want ? SL_PRI_INGRESS
                                                         : SL_PRI_NORMAL) != 0;
    ingress = want || c->pri_stale;
    if (ingress != c->ingress) {
        if (ingress) {
            c->ingress = 1;
            c->in_prev = NULL;
            c->in_next = b->ingress;
            if (c->in_next)
                c->in_next->in_prev = c;
            b->ingress = c;
        } else
            conn_ingress_unlink(c);
    }
}

void sl_conn_set_pace(sl_conn *c, int may_pace)
{
    /* pacing reads the socket directly: not under a transport's filter,
     * nor under TLS */
    may_pace =
        may_pace != 0 && !conn_filtered(c) && c->transport == SL_TRANSPORT_TCP;
    if (c->pace == may_pace)
        return;
    c->pace = may_pace;
    set_priority(c);
}

/*
 * Paced reads are SL_PRI_INGRESS (ops.h): they run once nothing more
 * urgent is active. A loop kept busy for longer by other work (a binary
 * client producing flat out, a consumer replaying a long log) would leave
 * them waiting for as long as that lasts. So every read callback of
 * normal priority arms a timer, of normal priority too, that reads for
 * every paced connection not served for INGRESS_MAX_WAIT_US: a
 * producer's wait is bounded. An idle loop arms nothing.
 */
static void ingress_arm(sl_broker *b)
{
    static const struct timeval tv = {0, INGRESS_MAX_WAIT_US};
    if (b->ingress && !evtimer_pending(b->ingress_ev, NULL))
        evtimer_add(b->ingress_ev, &tv);
}

void conn_ingress_guard_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_broker *b = arg;
    long long now = sl_fs_mono_us();
    sl_conn *c, *cn;
    size_t got;
    (void)fd;
    (void)what;
    for (c = b->ingress; c; c = cn) {
        cn = c->in_next; /* c may leave the list below */
        if (c->pri_stale)
            set_priority(c);
        if (c->closing || c->dead || c->paused || c->in_read || c->in_limit ||
            now - c->in_us < INGRESS_MAX_WAIT_US)
            continue;
        c->in_us = now;
        got = sl_ops_read_now(c->bev, c->ops->read_max ? c->ops->read_max
                                                       : SL_OPS_EV_READ_MAX);
        if (got < SL_OPS_EV_READ_MAX && c->npending == 0) {
            c->streaming = 0;
            set_priority(c);
        }
        if (got > 0)
            process_input(c);
        /* its write event waits at SL_PRI_INGRESS too */
        sl_conn_write_now(c);
    }
}

/* ---- input -------------------------------------------------------------- */

static void process_input(sl_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t len = evbuffer_get_length(in);

    if (c->in_read || c->dead)
        return;
    /* in_mark is what was left after the last on_input: the rest came in
     * since */
    if (len > c->in_mark)
        c->bytes_in += len - c->in_mark;
    c->in_mark = len;
    if (!c->plain_checked && c->transport == SL_TRANSPORT_TCP &&
        evbuffer_get_length(in) >= 6) {
        unsigned char h[6];
        size_t rl;
        c->plain_checked = 1;
        evbuffer_copyout(in, h, 6);
        rl = (size_t)h[3] << 8 | h[4];
        if (h[0] == 0x16 && h[1] == 0x03 && h[2] <= 0x04 && rl > 0 &&
            rl <= 18432 && h[5] == 0x01) {
            /* a TLS record holding a ClientHello (TLS 1.0..1.3): no
             * STOMP frame starts so, and a binary frame only with an api
             * key above 256; the client wants the TLS listener */
            conn_broker_warn(c->b, "tls-on-plain",
                             "peer %s: closing, it started a TLS handshake on "
                             "the plaintext %s port (TLS clients connect to "
                             "the TLS listener, --tls-listen, "
                             "--stomp-tls-listen or --http-tls-listen)",
                             c->peer, c->ops->name);
            conn_kill(c, "TLS on a plaintext port");
            return;
        }
    }
    c->in_read = 1;
    /* the pause as it stands (set by replies and at frame boundaries):
     * output a protocol wrote of its own accord (deliveries) does not stop
     * the next frame, which may be the ack that frees it */
    if (!c->paused && !c->closing && evbuffer_get_length(in) > 0)
        c->ops->on_input(c->state, c, in);
    c->in_read = 0;
    if (!c->dead)
        c->in_mark = evbuffer_get_length(in);
}

void conn_read_cb(struct bufferevent *bev, void *arg)
{
    sl_conn *c = arg;
    if (c->lingering || c->closing || c->dead) {
        struct evbuffer *in = bufferevent_get_input(bev);
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    if (c->pace) {
        /* libevent's read filled its 4 KiB (the test sl_ops_read_more
         * makes): a streaming producer, to be paced */
        int streaming = evbuffer_get_length(bufferevent_get_input(bev)) >=
                            c->in_mark + SL_OPS_EV_READ_MAX ||
                        (c->streaming && c->npending > 0);
        if (streaming != c->streaming) {
            c->streaming = streaming;
            c->pri_stale = 1;
        }
    }
    if (c->pri_stale)
        set_priority(c);
    if (c->ingress)
        c->in_us = sl_fs_mono_us();
    else
        ingress_arm(c->b);
    /* libevent 2.1 reads at most 4 KiB per callback: take what the
     * socket holds, up to the protocol's read_max (not through a filter
     * nor TLS: the bufferevent reads the socket itself) */
    if (!c->in_read && !c->paused && !c->in_limit && c->ops->read_max &&
        !conn_filtered(c) && c->transport == SL_TRANSPORT_TCP)
        sl_ops_read_more(bev, c->in_mark, c->ops->read_max);
    process_input(c);
}

void conn_write_cb(struct bufferevent *bev, void *arg)
{
    sl_conn *c = arg;
    (void)bev;
    /* a filter calls this after each pass, with the bytes still in the
     * socket's output: conn_sock_out_cb calls again once they drained */
    if (conn_filtered(c) && !c->dead &&
        evbuffer_get_length(bufferevent_get_output(c->sock)) >
            (size_t)c->b->cfg.output_high_water / 2)
        return;
    /* output drained below the low watermark */
    conn_update_pause(c);
    if (!c->closing && !c->dead && c->ops->on_drain)
        sl_conn_kick(c);
    conn_maybe_finish_close(c);
}

/* Deferred work: on_drain (deliver more), then buffered input. */
void conn_work_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_conn *c = arg;
    (void)fd;
    (void)what;
    if (c->dead)
        return;
    if (c->pri_stale)
        set_priority(c);
    /* also when closing: the protocol stops what it delivers */
    if (c->ops->on_drain)
        c->ops->on_drain(c->state, c);
    /* a filter left raw input in the socket's buffer while reading was
     * paused: it gets no new read event for it */
    if (conn_filtered(c) && !c->dead && !c->in_read && !c->paused &&
        !c->closing)
        bufferevent_flush(c->bev, EV_READ, BEV_NORMAL);
    if (!c->dead && !c->in_read)
        process_input(c);
}

void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_conn *c = arg;
    int kind = c->timer_kind;
    (void)fd;
    (void)what;
    c->timer_kind = TIMER_NONE;
    if (c->dead)
        return;
    switch (kind) {
    case TIMER_HANDSHAKE:
        sl_log(SL_INFO, "conn",
               "peer %s: closing, %s handshake not finished within %lld ms",
               c->peer, c->tls_hs ? "TLS" : c->ops->name,
               (long long)c->b->cfg.handshake_timeout_ms);
        conn_kill(c, "handshake timeout");
        break;
    case TIMER_LINGER:
        conn_kill(c, "linger timeout");
        break;
    case TIMER_DRAIN:
        sl_log(SL_INFO, "conn",
               "peer %s: output not drained %d ms after close: dropping it",
               c->peer, CLOSE_DRAIN_MS);
        conn_kill(c, "output not drained");
        break;
    default:
        break;
    }
}

/* The first DNS name or email address among x's subjectAltNames (the
 * name tls-cert-login san maps to a user), or NULL. */
static char *first_san(X509 *x)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    char *out = NULL;
    for (int i = 0; gens && !out && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        const ASN1_IA5STRING *s = g->type == GEN_DNS     ? g->d.dNSName
                                  : g->type == GEN_EMAIL ? g->d.rfc822Name
                                                         : NULL;
        int len = s ? ASN1_STRING_length(s) : 0;
        const unsigned char *d = s ? ASN1_STRING_get0_data(s) : NULL;
        /* no embedded NUL: "alice\0.evil" must not read as "alice" */
        if (d && len > 0 && memchr(d, 0, (size_t)len) == NULL)
            out = strndup((const char *)d, (size_t)len);
    }
    GENERAL_NAMES_free(gens);
    return out;
}

/* The TLS handshake finished: stop its timer, keep the verified client
 * certificate's subject. */
static void tls_connected(sl_conn *c)
{
    SSL *ssl = bufferevent_openssl_get_ssl(c->sock);
    X509 *x = ssl ? SSL_get0_peer_certificate(ssl) : NULL;

    c->tls_hs = 0;
    if (!c->hs_pending)
        conn_timer_clear(c, TIMER_HANDSHAKE);
    if (x && SSL_get_verify_result(ssl) == X509_V_OK) {
        X509_NAME *n = X509_get_subject_name(x);
        BIO *bio = BIO_new(BIO_s_mem());
        char cn[256];
        if (bio && X509_NAME_print_ex(bio, n, 0, XN_FLAG_RFC2253) >= 0) {
            char buf[1024];
            int got = BIO_read(bio, buf, (int)sizeof(buf) - 1);
            buf[got > 0 ? got : 0] = '\0';
            c->tls_subject = strdup(buf);
        }
        BIO_free(bio);
        int cl = X509_NAME_get_text_by_NID(n, NID_commonName, cn, sizeof(cn));
        /* an embedded NUL would cut the name short: no CN then */
        if (cl > 0 && (size_t)cl == strlen(cn))
            c->tls_cn = strdup(cn);
        c->tls_san = first_san(x);
    }
    ERR_clear_error();
    sl_log(SL_DEBUG, "conn", "peer %s: TLS %s established%s%s", c->peer,
           ssl ? SSL_get_version(ssl) : "?",
           c->tls_subject ? ", client certificate " : "",
           c->tls_subject ? c->tls_subject : "");
}

/* Why a TLS connection failed, for the log line. */
static void tls_error_text(sl_conn *c, char *buf, size_t len)
{
    unsigned long e = bufferevent_get_openssl_error(c->sock);
    SSL *ssl = bufferevent_openssl_get_ssl(c->sock);
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    char r[160];
    int se = EVUTIL_SOCKET_ERROR();

    if (e)
        sl_tls_err_reason(e, r, sizeof(r));
    else if (se)
        snprintf(r, sizeof(r), "%s", evutil_socket_error_to_string(se));
    else
        snprintf(r, sizeof(r), "connection closed");
    while (bufferevent_get_openssl_error(c->sock))
        ; /* the rest of the queue */
    if (vr != X509_V_OK)
        snprintf(buf, len, "%s (client certificate: %s)", r,
                 X509_verify_cert_error_string(vr));
    else if (!strcmp(r, "wrong version number") || !strcmp(r, "http request") ||
             !strcmp(r, "https proxy request") ||
             !strcmp(r, "packet length too long") ||
             !strcmp(r, "record layer failure"))
        snprintf(buf, len, "%s (not TLS: a plaintext client on a TLS port?)",
                 r);
    else
        snprintf(buf, len, "%s", r);
}

void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    sl_conn *c = arg;

    if (c->dead)
        return;
    if (what & BEV_EVENT_CONNECTED) {
        if (c->transport == SL_TRANSPORT_TLS)
            tls_connected(c);
        return;
    }
    if (c->tls_hs && (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))) {
        /* a scanner, a plaintext client on a TLS port, a client that
         * does not trust us or that we do not trust: one (broker-wide
         * rate-limited) line; a bare connect-and-close (a port probe)
         * only at DEBUG */
        char why[400];
        tls_error_text(c, why, sizeof(why));
        if ((what & BEV_EVENT_ERROR) || strcmp(why, "connection closed"))
            conn_broker_warn(c->b, "tls-handshake",
                             "peer %s: TLS handshake on the %s port failed: %s",
                             c->peer, c->ops->name, why);
        else
            sl_log(SL_DEBUG, "conn", "peer %s: closed before the TLS handshake",
                   c->peer);
        conn_kill(c, "TLS handshake failed");
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        if (what & BEV_EVENT_WRITING) {
            sl_log(SL_INFO, "conn",
                   "peer %s: closing, it read nothing for %lld ms", c->peer,
                   (long long)conn_idle_ms(c));
            conn_kill(c, "write timeout");
        } else if (c->npending > 0 || c->paused ||
                   evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
            /* waiting for our replies (long poll), not idle */
            if (!c->paused && !c->closing)
                bufferevent_enable(bev, EV_READ);
        } else if (c->lowat > 1 && conn_socket_pending(c) > 0) {
            /* bytes of a large frame came below the read mark
             * (sl_conn_want_input), so no read event: not idle. They are
             * read now; a peer that stalls mid-frame is closed one idle
             * period later, when nothing more came. */
            sl_log(SL_DEBUG, "conn",
                   "peer %s: %d bytes of a large frame came below the read "
                   "mark; read by the idle check",
                   c->peer, conn_socket_pending(c));
            sl_ops_read_now(bev, c->ops->read_max ? c->ops->read_max
                                                  : SL_OPS_EV_READ_MAX);
            process_input(c);
            if (!c->dead && !c->paused && !c->closing)
                bufferevent_enable(bev, EV_READ);
        } else {
            sl_log(c->ops->flags & SL_CONN_QUIET ? SL_DEBUG : SL_INFO, "conn",
                   "peer %s: closing idle connection", c->peer);
            conn_kill(c, "idle");
        }
        return;
    }
    if (what & BEV_EVENT_EOF) {
        if (c->lingering) {
            conn_kill(c, "eof after reply");
            return;
        }
        /* The peer sent all it will send: answer what is buffered, then
         * close once the replies are out. It can settle nothing more on
         * this connection: the close hooks run now (a parked long poll
         * may keep the connection open until it times out). */
        process_input(c);
        if (!c->dead) {
            c->closing = 1;
            bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
            sl_conn_kick(c); /* on_drain: stop deliveries */
            conn_run_close_hooks(c);
            if (c->dead || c->lingering)
                return;
            if (!c->head && sl_conn_out_len(c) > 0) {
                conn_maybe_finish_close(c); /* conn_write_cb finishes */
                return;
            }
            if (!c->head)
                conn_kill(c, "eof");
        }
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        if (c->transport == SL_TRANSPORT_TLS) {
            char why[400];
            tls_error_text(c, why, sizeof(why));
            sl_conn_warn(c, "tls", "TLS error: %s", why);
        }
        conn_kill(c, "socket error");
        return;
    }
}

/* The least rest of a frame worth an SO_RCVLOWAT (see "2. Reading"). */
#define WANT_INPUT_MIN (32 * 1024)

void sl_conn_want_input(sl_conn *c, size_t more)
{
    int v =
        more >= WANT_INPUT_MIN ? (more > INT32_MAX ? INT32_MAX : (int)more) : 1;
    evutil_socket_t fd;
    if (v == (c->lowat ? c->lowat : 1) || c->dead || conn_filtered(c) ||
        c->transport != SL_TRANSPORT_TCP)
        return;
    fd = bufferevent_getfd(c->bev);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof(v)) != 0)
        return; /* the loop is woken per byte, as before */
    c->lowat = v;
    if (v > 1)
        sl_log(SL_DEBUG, "conn",
               "peer %s: read mark set at %d bytes (the "
               "rest of a large frame)",
               c->peer, v);
}

void sl_conn_limit_input(sl_conn *c, size_t bytes)
{
    c->in_limit = bytes;
    bufferevent_setwatermark(c->bev, EV_READ, 0, bytes);
    if (bytes)
        bufferevent_set_max_single_read(c->bev, c->ops->read_max &&
                                                        c->ops->read_max < bytes
                                                    ? c->ops->read_max
                                                    : bytes);
    else if (c->ops->read_max)
        bufferevent_set_max_single_read(c->bev, c->ops->read_max);
}
