/*
 * conn_accept.c - the connection layer's accept: limits, the
 * transport under a connection (TCP, TLS, a filter), running out of
 * descriptors (conn.c points 1 and Transports).
 * @thread loop
 */
#include "broker/conn_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "broker/broker.h"
#include "broker/hist.h"
#include "broker/tls.h"
#include "protocol/log.h"
#include "storage/fsutil.h"

/* ---- accept -------------------------------------------------------------- */

/* Open connections per client address (max-connections-per-address):
 * an open hash table, kept only while the cap is set. */
typedef struct sl_addr_ent {
    unsigned char a[16];
    int len; /* 0 = empty slot */
    size_t n;
} addr_ent;

static uint32_t addr_hash(const unsigned char *a, int len)
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < len; i++)
        h = (h ^ a[i]) * 16777619u;
    return h;
}

static addr_ent *addr_find(sl_broker *b, const unsigned char *a, int len,
                           int create)
{
    size_t cap = b->addr_cap, i;
    addr_ent *t = b->addrs;
    if (create && (b->addr_used + 1) * 2 > cap) {
        size_t ncap = cap ? cap * 2 : 64;
        addr_ent *nt = calloc(ncap, sizeof(*nt));
        if (!nt)
            return NULL;
        for (i = 0; i < cap; i++) {
            size_t j;
            if (!t[i].len)
                continue;
            for (j = addr_hash(t[i].a, t[i].len) & (ncap - 1); nt[j].len;
                 j = (j + 1) & (ncap - 1))
                ;
            nt[j] = t[i];
        }
        free(t);
        b->addrs = t = nt;
        b->addr_cap = cap = ncap;
    }
    if (!cap)
        return NULL;
    for (i = addr_hash(a, len) & (cap - 1); t[i].len; i = (i + 1) & (cap - 1))
        if (t[i].len == len && memcmp(t[i].a, a, (size_t)len) == 0)
            return &t[i];
    if (!create)
        return NULL;
    memcpy(t[i].a, a, (size_t)len);
    t[i].len = len;
    t[i].n = 0;
    b->addr_used++;
    return &t[i];
}

void conn_addr_unref(sl_broker *b, const unsigned char *a, int len)
{
    addr_ent *e = addr_find(b, a, len, 0);
    if (e && e->n > 0)
        e->n--;
    /* empty entries stay (tombstones would complicate the probing); the
     * table is rebuilt without them when it grows */
    if (e && e->n == 0 && b->addr_used * 4 > b->addr_cap * 3 / 2) {
        addr_ent *t = b->addrs;
        size_t cap = b->addr_cap;
        b->addrs = NULL;
        b->addr_cap = b->addr_used = 0;
        for (size_t i = 0; i < cap; i++) {
            addr_ent *ne;
            if (!t[i].len || t[i].n == 0)
                continue;
            ne = addr_find(b, t[i].a, t[i].len, 1);
            if (ne)
                ne->n = t[i].n;
        }
        free(t);
    }
}

/* A conn_filtered connection's socket output changed: once it drained below
 * the write watermark, what conn_write_cb does for a plain socket. */
void conn_sock_out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
                      void *arg)
{
    sl_conn *c = arg;
    size_t lw = (size_t)c->b->cfg.output_high_water / 2;
    size_t now = evbuffer_get_length(buf);
    if (c->dead || info->n_deleted == 0)
        return;
    if (now == 0 || (now <= lw && info->orig_size > lw))
        conn_write_cb(c->bev, c);
}

/* TLS over fd: bufferevent_openssl (tls.c's context). NULL on failure
 * (fd then still open). */
static struct bufferevent *tls_bev_new(sl_broker *b, evutil_socket_t fd)
{
    SSL *ssl = sl_tls_ssl_new(b);
    struct bufferevent *bev;
    if (!ssl)
        return NULL;
    bev = bufferevent_openssl_socket_new(
        b->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    /* a peer that closes the socket without close_notify ends its input
     * like a TCP peer (EOF), not with an error */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/*
 * A binary connection's receive buffer starts large enough for a produce
 * request of libsluice's default batch (256 KiB) twice over, instead of
 * tcp_rmem's default (128 KiB; a paused broker's side took about 140 KiB
 * of a new connection's first request) that autotuning grows only after
 * some round trips of reads: until then a producer's request waited in
 * its own send queue, and each read of the loop that opened the window
 * sent the client's queued segments, on loopback inside the loop's readv
 * (issue 20: at 256 producer connections, short-lived as a benchmark's,
 * 9% of the broker's samples in tcp_write_xmit under readv against 1.5%
 * at one connection; broker CPU per record at 256 connections 0.167 ->
 * 0.132 us, as at one; tests/integration/test_large_frames.py). SO_RCVLOWAT,
 * set and reset, grows the buffer without locking it (SO_RCVBUF would turn
 * autotuning off for long, fast links); its window clamp then follows
 * autotuning up. Linux only, like the read mark of conn.c's "2. Reading"; a
 * failure leaves the defaults.
 */
#define ACCEPT_RCV_WINDOW (512 * 1024)

static void grow_rcvbuf(evutil_socket_t fd)
{
    int v = ACCEPT_RCV_WINDOW, one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof(v)) == 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
}

/* The transport seam: a socket bufferevent over TCP, or an OpenSSL one
 * for a TLS listener (t), conn_filtered by the listener's transport if it has
 * one (sl_conn_set_transport). */
static struct bufferevent *conn_bev_new(sl_broker *b, enum sl_listener l,
                                        sl_conn *c, evutil_socket_t fd,
                                        enum sl_transport t, int *fd_closed)
{
    int one = 1;
    struct bufferevent *sock, *bev;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (l == SL_LISTENER_BINARY)
        grow_rcvbuf(fd);
    sock = t == SL_TRANSPORT_TLS
               ? tls_bev_new(b, fd)
               : bufferevent_socket_new(b->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->sock = sock;
    if (!sock || !b->protos[l].wrap)
        return sock;
    bev = b->protos[l].wrap(b->protos[l].wrap_arg, c, sock);
    if (!bev) {
        bufferevent_free(sock); /* closes fd */
        c->sock = NULL;
        *fd_closed = 1;
        return NULL;
    }
    c->sock_cb =
        evbuffer_add_cb(bufferevent_get_output(sock), conn_sock_out_cb, c);
    return bev;
}

void sl_conn_accept(sl_broker *b, enum sl_listener l, evutil_socket_t fd,
                    const struct sockaddr *sa, int salen)
{
    sl_conn_accept_on(b, l, SL_TRANSPORT_TCP, fd, sa, salen);
}

void sl_conn_accept_on(sl_broker *b, enum sl_listener l, enum sl_transport t,
                       evutil_socket_t fd, const struct sockaddr *sa, int salen)
{
    const sl_conn_ops *ops = b->protos[l].ops;
    unsigned char addr[16];
    int alen = 0;
    sl_conn *c;
    char host[64] = "?";
    int port = 0;
    struct timeval tv;
    addr_ent *ae = NULL;
    int fd_closed = 0;
    (void)salen;

    b->accept_paused = 0;
    if (b->emfile_ms && sl_now_ms() - b->emfile_ms >= EMFILE_EPISODE_MS) {
        /* descriptors are back for good: the episode is over */
        sl_log(SL_INFO, "conn",
               "accepting connections again (%llu refused while out of "
               "file descriptors)",
               (unsigned long long)b->emfile_refused);
        b->emfile_ms = 0;
        b->emfile_refused = 0;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        evutil_inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        port = ntohs(s4->sin_port);
        memcpy(addr, &s4->sin_addr, 4);
        alen = 4;
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        evutil_inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        port = ntohs(s6->sin6_port);
        memcpy(addr, &s6->sin6_addr, 16);
        alen = 16;
    }
    if (!ops || b->stopping || b->nconns >= (size_t)b->cfg.max_connections) {
        conn_broker_warn(b, "refused", "peer %s:%d: refused (%s)", host, port,
                         !ops          ? "no protocol on this listener"
                         : b->stopping ? "shutting down"
                                       : "max-connections reached");
        evutil_closesocket(fd);
        return;
    }
    if (b->cfg.max_connections_per_address > 0 && alen) {
        ae = addr_find(b, addr, alen, 1);
        if (ae && ae->n >= (size_t)b->cfg.max_connections_per_address) {
            conn_broker_warn(b, "refused-addr",
                             "peer %s:%d: refused (max-connections-per-address "
                             "%lld reached)",
                             host, port,
                             (long long)b->cfg.max_connections_per_address);
            evutil_closesocket(fd);
            return;
        }
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        evutil_closesocket(fd);
        return;
    }
    c->b = b;
    c->ops = ops;
    c->lis = l;
    c->id = ++b->conn_ids;
    c->opened_ms = sl_now_ms();
    b->protos[l].accepted++;
    c->transport = t;
    snprintf(c->peer, sizeof(c->peer), "%s:%d", host, port);
    c->bev = conn_bev_new(b, l, c, fd, t, &fd_closed);
    c->work_ev = event_new(b->base, -1, 0, conn_work_cb, c);
    c->timer_ev = evtimer_new(b->base, conn_timer_cb, c);
    if (!c->bev || !c->work_ev || !c->timer_ev) {
        if (c->bev) {
            if (c->sock_cb)
                evbuffer_remove_cb_entry(bufferevent_get_output(c->sock),
                                         c->sock_cb);
            bufferevent_free(c->bev);
        } else if (c->sock)
            bufferevent_free(c->sock);
        else if (!fd_closed)
            evutil_closesocket(fd);
        if (c->work_ev)
            event_free(c->work_ev);
        if (c->timer_ev)
            event_free(c->timer_ev);
        free(c);
        return;
    }
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    /* libevent's default is 16 KiB per read/write call: producers send
     * frames of up to a few MiB, fetch replies are larger still */
    if (ops->read_max)
        bufferevent_set_max_single_read(c->bev, ops->read_max);
    if (ops->write_max)
        bufferevent_set_max_single_write(c->bev, ops->write_max);
    bufferevent_setwatermark(c->bev, EV_WRITE,
                             (size_t)b->cfg.output_high_water / 2, 0);
    if ((ops->flags & SL_CONN_IDLE) && conn_idle_ms(c) > 0) {
        tv.tv_sec = (time_t)(conn_idle_ms(c) / 1000);
        tv.tv_usec = (suseconds_t)(conn_idle_ms(c) % 1000) * 1000;
        bufferevent_set_timeouts(c->bev, &tv, &tv);
    }
    c->next = b->conns;
    if (b->conns)
        b->conns->prev = c;
    b->conns = c;
    b->nconns++;
    if (ae) {
        ae->n++;
        memcpy(c->addr, addr, (size_t)alen);
        c->addr_len = alen;
    }
    if ((ops->flags & SL_CONN_HANDSHAKE) && b->cfg.handshake_timeout_ms > 0)
        c->hs_pending = 1;
    /* the TLS handshake counts against the same timeout */
    if (t == SL_TRANSPORT_TLS)
        c->tls_hs = 1;
    if ((c->hs_pending || c->tls_hs) && b->cfg.handshake_timeout_ms > 0)
        conn_timer_set(c, TIMER_HANDSHAKE, b->cfg.handshake_timeout_ms);
    if (ops->on_open(b->protos[l].arg, c, &c->state) != SL_OK) {
        conn_kill(c, "refused by the protocol");
        return;
    }
    c->opened = 1;
    if (!c->dead)
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (ops->flags & SL_CONN_QUIET)
        sl_log(SL_DEBUG, "conn", "peer %s: connection %llu opened (%s)",
               c->peer, (unsigned long long)c->id, ops->name);
    else
        conn_info(b, "peer %s: connection %llu opened (%s)", c->peer,
                  (unsigned long long)c->id, ops->name);
}

/* ---- out of descriptors
 * ------------------------------------------------------ */

static void listeners_enable(sl_broker *b, int on)
{
    struct evconnlistener *ls[] = {b->bin_lis,     b->stomp_lis,     b->ws_lis,
                                   b->bin_tls_lis, b->stomp_tls_lis, b->wss_lis,
                                   b->http_lis,    b->http_tls_lis};
    for (size_t i = 0; i < sizeof(ls) / sizeof(ls[0]); i++) {
        if (!ls[i])
            continue;
        if (on)
            evconnlistener_enable(ls[i]);
        else
            evconnlistener_disable(ls[i]);
    }
}

void conn_accept_resume(sl_broker *b)
{
    if (b->stopping)
        return;
    if (b->spare_fd < 0)
        b->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    evtimer_del(b->accept_ev);
    listeners_enable(b, 1);
    /* the episode (one WARN line) lasts until accepts have worked for
     * EMFILE_EPISODE_MS: freeing a few descriptors, taking a few of the
     * waiting clients and running out again is the same episode */
}

static void accept_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_accept_resume(arg);
}

void sl_conn_accept_error(sl_broker *b, int err, evutil_socket_t lfd)
{
    static const struct timeval tv = {1, 0};
    if (err != EMFILE && err != ENFILE) {
        conn_broker_warn(b, "accept", "accept failed: %s",
                         evutil_socket_error_to_string(err));
        return;
    }
    if (!b->emfile_ms)
        sl_log(SL_WARN, "conn",
               "out of file descriptors (%s) with %zu connections open: "
               "not accepting until some close; raise the limit "
               "(ulimit -n, LimitNOFILE) or lower max-connections",
               evutil_socket_error_to_string(err), b->nconns);
    b->emfile_ms = sl_now_ms();
    b->accept_paused = 1;
    listeners_enable(b, 0);
    /* The client that could not be accepted would wait in the backlog
     * with no answer: close the spare descriptor to accept it and close
     * it at once, so it sees a closed connection (and may retry). */
    if (b->spare_fd >= 0 && lfd >= 0) {
        int fd;
        close(b->spare_fd);
        b->spare_fd = -1;
        fd = accept(lfd, NULL, NULL);
        if (fd >= 0) {
            close(fd);
            b->emfile_refused++;
        }
        b->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    evtimer_add(b->accept_ev, &tv);
}

int sl_conn_init(sl_broker *b)
{
    b->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    b->accept_ev = evtimer_new(b->base, accept_timer_cb, b);
    b->ingress_ev = evtimer_new(b->base, conn_ingress_guard_cb, b);
    b->reap_ev = event_new(b->base, -1, 0, sl_conn_reap_cb, b);
    b->cork_ev = event_new(b->base, -1, 0, conn_cork_cb, b);
    if (!b->accept_ev || !b->ingress_ev || !b->reap_ev || !b->cork_ev)
        return -1;
    return 0;
}

void sl_conn_fini(sl_broker *b)
{
    if (b->accept_ev)
        event_free(b->accept_ev);
    if (b->ingress_ev)
        event_free(b->ingress_ev);
    if (b->reap_ev)
        event_free(b->reap_ev);
    if (b->cork_ev)
        event_free(b->cork_ev);
    b->accept_ev = b->ingress_ev = b->reap_ev = b->cork_ev = NULL;
    while (b->ncork_pool > 0)
        free(b->cork_pool[--b->ncork_pool]);
    if (b->spare_fd >= 0)
        close(b->spare_fd);
    b->spare_fd = -1;
    free(b->addrs);
    b->addrs = NULL;
    conn_warn_flush(b->accept_warns, SL_BROKER_WARN_KINDS, "conn", "");
    conn_connlog_flush(b);
}

void sl_conn_stop_all(sl_broker *b)
{
    sl_conn *c, *n;
    evtimer_del(b->accept_ev);
    for (c = b->conns; c; c = n) {
        n = c->next;
        sl_conn_close_after_reply(c);
    }
    sl_server_check_stopped(b);
}

void sl_conn_free_all(sl_broker *b)
{
    while (b->conns)
        conn_kill(b->conns, "shutdown");
    sl_conn_reap_cb(-1, 0, b);
}
