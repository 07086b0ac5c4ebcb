/*
 * server.c - event base, listeners, signals, maintenance, shutdown.
 */
#include "broker/server.h"
#include "broker/cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include "broker/admin.h"
#include "broker/auth.h"
#include "broker/binary_groups.h"
#include "broker/broker.h"
#include "broker/http.h"
#include "broker/ops_groups.h"
#include "broker/stomp.h"
#include "broker/topic.h"
#include "broker/ws.h"
#include "broker/tls.h"
#include "protocol/log.h"
#include "storage/fsutil.h"
#include "storage/journal.h"

/*
 * The broker's modules. init runs in this order after the topics are open
 * and the flusher runs, before the listeners accept (on a fatal problem it
 * logs, calls sl_broker_fail and returns); fini runs in reverse order at
 * shutdown for every module whose init ran, before the final flush: front
 * ends first, so STOMP sessions release their queue consumers while the
 * groups still exist. A module keeps its state on the broker object
 * (struct sl_broker in broker.h) and hands it to its callbacks as their
 * argument.
 */
typedef struct sl_module {
    const char *name;
    void (*init)(sl_broker *b);
    void (*fini)(sl_broker *b); /* NULL: nothing to stop */
    /* NULL, or at the very end, after the flusher stopped and the last
     * durable hooks ran: free what the module's hooks use */
    void (*release)(sl_broker *b);
} sl_module;

static const sl_module modules[] = {
    {"auth", sl_auth_module_init, sl_auth_module_fini, NULL},
    {"binary", sl_binary_init, NULL, NULL},
    {"groups", sl_groups_module_init, sl_groups_module_fini,
     sl_groups_module_release},
    {"binary-groups", sl_binary_groups_module_init,
     sl_binary_groups_module_fini, NULL},
    {"stomp", sl_stomp_module_init, sl_stomp_module_fini, NULL},
    {"stomp-ws", sl_ws_module_init, sl_ws_module_fini, NULL},
    {"admin", sl_admin_module_init, sl_admin_module_fini, NULL},
    {"http", sl_http_module_init, sl_http_module_fini, NULL},
};
#define NMODULES (sizeof(modules) / sizeof(modules[0]))

const char *sl_server_binary_addr(const sl_broker *b)
{
    return b->bin_addr;
}

const char *sl_server_stomp_addr(const sl_broker *b)
{
    return b->stomp_addr;
}

const char *sl_server_ws_addr(const sl_broker *b)
{
    return b->ws_lis ? b->ws_addr : NULL;
}

const char *sl_server_binary_tls_addr(const sl_broker *b)
{
    return b->bin_tls_lis ? b->bin_tls_addr : NULL;
}

const char *sl_server_stomp_tls_addr(const sl_broker *b)
{
    return b->stomp_tls_lis ? b->stomp_tls_addr : NULL;
}

const char *sl_server_wss_addr(const sl_broker *b)
{
    return b->wss_lis ? b->wss_addr : NULL;
}

const char *sl_server_http_addr(const sl_broker *b)
{
    return b->http_addr;
}

const char *sl_server_http_tls_addr(const sl_broker *b)
{
    return b->http_tls_lis ? b->http_tls_addr : NULL;
}

/* ---- callbacks ----------------------------------------------------------- */

/* Both the flusher's durable notify (right after the fdatasyncs, so a
 * durable produce waits for one fsync, not also for the groups' SQLite
 * commit) and its notify (after the hooks). @thread flusher */
static void flush_notify(void *arg)
{
    sl_broker *b = arg;
    event_active(b->flush_ev, EV_READ, 0);
}

static void bin_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
                          struct sockaddr *sa, int salen, void *arg)
{
    sl_conn_accept(arg, SL_LISTENER_BINARY, fd, sa, salen);
}

static void ws_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
                         struct sockaddr *sa, int salen, void *arg)
{
    sl_conn_accept(arg, SL_LISTENER_STOMP_WS, fd, sa, salen);
}

static void stomp_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
                            struct sockaddr *sa, int salen, void *arg)
{
    sl_conn_accept(arg, SL_LISTENER_STOMP, fd, sa, salen);
}

static void bin_tls_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
                              struct sockaddr *sa, int salen, void *arg)
{
    sl_conn_accept_on(arg, SL_LISTENER_BINARY, SL_TRANSPORT_TLS, fd, sa, salen);
}

static void wss_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
                          struct sockaddr *sa, int salen, void *arg)
{
    sl_conn_accept_on(arg, SL_LISTENER_STOMP_WS, SL_TRANSPORT_TLS, fd, sa,
                      salen);
}

static void stomp_tls_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
                                struct sockaddr *sa, int salen, void *arg)
{
    sl_conn_accept_on(arg, SL_LISTENER_STOMP, SL_TRANSPORT_TLS, fd, sa, salen);
}

/* EMFILE/ENFILE pause the listeners (conn.c) instead of letting libevent
 * retry the failing accept on every loop pass. */
static void http_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
                           struct sockaddr *sa, int salen, void *arg)
{
    (void)l;
    sl_conn_accept(arg, SL_LISTENER_HTTP, fd, sa, salen);
}

static void https_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
                            struct sockaddr *sa, int salen, void *arg)
{
    (void)l;
    sl_conn_accept_on(arg, SL_LISTENER_HTTP, SL_TRANSPORT_TLS, fd, sa, salen);
}

static void listener_error_cb(struct evconnlistener *l, void *arg)
{
    sl_conn_accept_error(arg, EVUTIL_SOCKET_ERROR(), evconnlistener_get_fd(l));
}

static void maint_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_broker *b = arg;
    size_t n;
    sl_topic **all = sl_topics_sorted(b->topics, &n);
    int64_t now = sl_now_ms();
    uint64_t unloads = sl_part_unloads();
    size_t loaded = 0;

    for (size_t i = 0; i < n; i++) {
        for (int32_t p = 0; p < all[i]->nparts; p++) {
            int deleted = 0;
            sl_err rc = sl_part_maintain(all[i]->parts[p]->part, now, &deleted);
            loaded += sl_part_loaded(all[i]->parts[p]->part) != 0;
            if (rc != SL_OK)
                sl_log(SL_WARN, "server", "maintenance of %s/%d: %s",
                       all[i]->name, p, sl_strerror(rc));
            else if (deleted > 0)
                sl_log(SL_INFO, "server",
                       "retention removed %d segment(s) of %s/%d", deleted,
                       all[i]->name, p);
        }
    }
    free(all);
    /* Idle partitions were unloaded (storage: partition-idle-unload-ms):
     * give their memory back to the system, not only to malloc. */
    if (sl_part_unloads() != unloads) {
        sl_log(SL_INFO, "server",
               "unloaded %llu idle partition(s), %zu partition(s) loaded",
               (unsigned long long)(sl_part_unloads() - unloads), loaded);
        malloc_trim(0);
    }
}

static void stop_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_broker *b = arg;
    sl_log(SL_WARN, "server",
           "shutdown: %zu connection(s) and %zu module hold(s) still busy "
           "after %lld ms, closing them",
           b->nconns, b->holds, (long long)b->cfg.shutdown_timeout_ms);
    event_base_loopexit(b->base, NULL);
}

/*
 * Signals, each handled deliberately:
 *   SIGTERM, SIGINT  clean stop (a second one stops at once);
 *   SIGHUP           logged, the broker keeps running: the log is
 *                    reopened (sl_log_reopen; a no-op while it goes to
 *                    stderr) and the TLS certificates are reloaded
 *                    (tls.c; open connections keep theirs);
 *   SIGUSR1, SIGUSR2 logged and ignored (reserved);
 *   SIGPIPE          ignored: a write to a closed socket is an EPIPE the
 *                    connection layer handles;
 *   SIGQUIT, SIGABRT, SIGSEGV and the like keep their default action
 *                    (a core dump to debug from).
 */
static void other_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    sl_broker *b = arg;
    (void)what;
    if (sig == SIGHUP) {
        int rc = sl_log_reopen();
        sl_log(SL_INFO, "server",
               "SIGHUP: still running (%zu connection(s)); log %s", b->nconns,
               rc == 0 ? "reopened" : "goes to stderr, nothing to reopen");
        sl_tls_reload(b);
        return;
    }
    sl_log(SL_INFO, "server", "signal %d (%s) ignored: reserved", (int)sig,
           sig == SIGUSR1 ? "SIGUSR1" : "SIGUSR2");
}

void sl_broker_stop_conns(sl_broker *b)
{
    if (!b->conns_kept)
        return;
    b->conns_kept = 0;
    if (b->stopping) {
        sl_bg_queue_wake_all(b); /* their groups moved: tell them now */
        sl_conn_stop_all(b);
    }
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    sl_broker *b = arg;
    struct timeval tv;

    if (b->stopping) {
        sl_log(SL_WARN, "server", "second signal %d: stopping now", (int)sig);
        event_base_loopexit(b->base, NULL);
        return;
    }
    b->stopping = 1;
    sl_log(SL_INFO, "server",
           "signal %d: stopping (no new connections; finishing %zu)", (int)sig,
           b->nconns);
    if (b->bin_lis)
        evconnlistener_disable(b->bin_lis);
    if (b->stomp_lis)
        evconnlistener_disable(b->stomp_lis);
    if (b->ws_lis)
        evconnlistener_disable(b->ws_lis);
    if (b->bin_tls_lis)
        evconnlistener_disable(b->bin_tls_lis);
    if (b->stomp_tls_lis)
        evconnlistener_disable(b->stomp_tls_lis);
    if (b->wss_lis)
        evconnlistener_disable(b->wss_lis);
    if (b->http_lis)
        evconnlistener_disable(b->http_lis);
    if (b->http_tls_lis)
        evconnlistener_disable(b->http_tls_lis);
    sl_ops_expire_watches(b);
    tv.tv_sec = (time_t)(b->cfg.shutdown_timeout_ms / 1000);
    tv.tv_usec = (suseconds_t)(b->cfg.shutdown_timeout_ms % 1000) * 1000;
    b->stop_timer = evtimer_new(b->base, stop_timer_cb, b);
    if (b->stop_timer)
        evtimer_add(b->stop_timer, &tv);
    for (size_t i = 0; i < b->nstop_hooks; i++)
        b->stop_hooks[i].fn(b->stop_hooks[i].arg);
    if (!b->conns_kept) /* else sl_broker_stop_conns, later */
        sl_conn_stop_all(b);
}

/* ---- start --------------------------------------------------------------- */

static void format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[64] = "?";
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        evutil_inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        snprintf(buf, len, "[%s]:%d", host, ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        evutil_inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        snprintf(buf, len, "%s:%d", host, ntohs(s4->sin_port));
    }
}

/* "HOST:PORT" or "[V6]:PORT"; port 0 allowed (evutil's parser refuses
 * it). Returns 0 or -1. */
static int parse_addr(const char *addr, struct sockaddr_storage *ss, int *sslen)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    struct addrinfo hints, *res = NULL;
    size_t hl;

    if (!colon)
        return -1;
    hl = (size_t)(colon - addr);
    if (hl >= 2 && addr[0] == '[' && addr[hl - 1] == ']') {
        addr++;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof(host))
        return -1;
    memcpy(host, addr, hl);
    host[hl] = '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || !res)
        return -1;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = (int)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static sl_err bind_listener(sl_broker *b, const char *what, const char *addr,
                            evconnlistener_cb cb, struct evconnlistener **out,
                            char *bound, size_t boundlen, char *err,
                            size_t errlen)
{
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    struct evconnlistener *l;
    socklen_t blen = sizeof(ss);

    memset(&ss, 0, sizeof(ss));
    if (parse_addr(addr, &ss, &sslen) != 0) {
        snprintf(err, errlen,
                 "%s: cannot resolve listen address '%s' (want HOST:PORT)",
                 what, addr);
        return SL_ERR_INVALID_CONFIG;
    }
    l = evconnlistener_new_bind(b->base, cb, b,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
                                    LEV_OPT_CLOSE_ON_EXEC,
                                512, (struct sockaddr *)&ss, sslen);
    if (!l) {
        int e = errno;
        /* The flag is named after the listener ("binary" is --listen,
         * "stomp" --stomp-listen): the first thing a user meets on a machine
         * that already runs RabbitMQ or ActiveMQ on 61613. */
        const char *pre = strcmp(what, "binary") == 0 ? "" : what;
        snprintf(err, errlen, "%s: cannot listen on %s: %s%s%s%s%s", what, addr,
                 strerror(e),
                 e == EADDRINUSE ? " (another broker on this port? move it "
                                   "with --"
                                 : "",
                 e == EADDRINUSE ? pre : "",
                 e == EADDRINUSE ? (*pre ? "-" : "") : "",
                 e == EADDRINUSE ? "listen HOST:PORT, e.g. port 0 for any "
                                   "free port)"
                                 : "");
        return SL_ESYS(e);
    }
    evconnlistener_set_error_cb(l, listener_error_cb);
    if (getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&ss, &blen) !=
        0) {
        snprintf(bound, boundlen, "%s", addr);
    } else {
        format_addr((struct sockaddr *)&ss, bound, boundlen);
    }
    *out = l;
    return SL_OK;
}

static void broker_free(sl_broker *b);

sl_err sl_server_start(sl_config *cfg, sl_broker **out, char *err,
                       size_t errlen)
{
    sl_broker *b = calloc(1, sizeof(*b));
    struct timeval tv;
    sl_err rc;

    if (!b) {
        sl_config_fini(cfg);
        return SL_ERR_NOMEM;
    }
    b->cfg = *cfg; /* takes the strings */
    memset(cfg, 0, sizeof(*cfg));
    b->lock_fd = -1;
    b->spare_fd = -1;
    if (evthread_use_pthreads() != 0) {
        snprintf(err, errlen, "libevent: cannot enable pthreads");
        rc = SL_ERR_UNKNOWN;
        goto out;
    }
    b->base = event_base_new();
    if (!b->base || event_base_priority_init(b->base, SL_PRI_N) != 0) {
        snprintf(err, errlen, "libevent: cannot create an event base");
        rc = SL_ERR_UNKNOWN;
        goto out;
    }
    rc = sl_fs_mkdirs(b->cfg.data, 0755);
    if (rc != SL_OK) {
        snprintf(err, errlen, "cannot create data directory %s: %s",
                 b->cfg.data, sl_strerror(rc));
        goto out;
    }
    rc = sl_fs_lock_dir(b->cfg.data, &b->lock_fd, err, errlen);
    if (rc != SL_OK)
        goto out;
    if (b->cfg.journal) {
        /* Before any partition is opened: replay puts acknowledged bytes
         * a crash kept only in the journal back into their segments. */
        rc = sl_journal_open(b->cfg.data, (uint64_t)b->cfg.journal_file_bytes,
                             &b->journal, NULL);
        if (rc != SL_OK) {
            snprintf(err, errlen, "cannot open the journal in %s/journal: %s",
                     b->cfg.data, sl_strerror(rc));
            goto out;
        }
    }
    rc = sl_topics_open(b->cfg.data, &b->cfg, &b->topics, err, errlen);
    if (rc != SL_OK)
        goto out;
    b->flush_ev = event_new(b->base, -1, 0, sl_ops_on_flush, b);
    b->append_ev = event_new(b->base, -1, 0, sl_ops_on_append_ev, b);
    b->spin_ev = evtimer_new(b->base, sl_ops_on_spin, b);
    b->kick_ev = event_new(b->base, -1, 0, sl_ops_on_kick, b);
    b->idle_ev = evtimer_new(b->base, sl_ops_on_kick_idle, b);
    b->guard_ev = evtimer_new(b->base, sl_ops_on_kick_idle, b);
    if (b->idle_ev) /* runs once nothing more urgent is active */
        event_priority_set(b->idle_ev, SL_PRI_INGRESS);
    /* polling for a fsync round must not hold back producers' reads */
    if (b->spin_ev)
        event_priority_set(b->spin_ev, SL_PRI_INGRESS);
    b->maint_ev = event_new(b->base, -1, EV_PERSIST, maint_cb, b);
    b->sig_term = evsignal_new(b->base, SIGTERM, signal_cb, b);
    b->sig_int = evsignal_new(b->base, SIGINT, signal_cb, b);
    b->sig_hup = evsignal_new(b->base, SIGHUP, other_signal_cb, b);
    b->sig_usr1 = evsignal_new(b->base, SIGUSR1, other_signal_cb, b);
    b->sig_usr2 = evsignal_new(b->base, SIGUSR2, other_signal_cb, b);
    if (!b->flush_ev || !b->append_ev || !b->spin_ev || !b->kick_ev ||
        !b->idle_ev || !b->guard_ev || sl_conn_init(b) != 0 || !b->maint_ev ||
        !b->sig_term || !b->sig_int || !b->sig_hup || !b->sig_usr1 ||
        !b->sig_usr2) {
        snprintf(err, errlen, "libevent: cannot create events");
        rc = SL_ERR_NOMEM;
        goto out;
    }
    tv.tv_sec = (time_t)(b->cfg.maintenance_interval_ms / 1000);
    tv.tv_usec = (suseconds_t)(b->cfg.maintenance_interval_ms % 1000) * 1000;
    evtimer_add(b->maint_ev, &tv);
    evsignal_add(b->sig_term, NULL);
    evsignal_add(b->sig_int, NULL);
    evsignal_add(b->sig_hup, NULL);
    evsignal_add(b->sig_usr1, NULL);
    evsignal_add(b->sig_usr2, NULL);
    signal(SIGPIPE, SIG_IGN);
    rc = sl_flusher_new(flush_notify, b, &b->flusher);
    if (rc != SL_OK) {
        snprintf(err, errlen, "cannot start the flusher thread: %s",
                 sl_strerror(rc));
        goto out;
    }
    sl_flusher_set_durable_notify(b->flusher, flush_notify, b);
    /* Per-round work hangs off the durable notify (sl_ops_on_durable); the
     * hooks (groups' commit) run when asked for (sl_flusher_wake). */
    sl_flusher_set_round_hooks(b->flusher, 0);
    sl_flusher_set_spin_us(b->flusher, b->cfg.flush_spin_us);
    /* sl_ops_on_kick calls sl_flusher_kick after each batch of requests */
    sl_flusher_set_inline_us(b->flusher, b->cfg.flush_inline_us);
    if (b->journal) {
        rc = sl_flusher_set_journal(b->flusher, b->journal,
                                    (size_t)b->cfg.journal_min_partitions);
        if (rc != SL_OK) {
            snprintf(err, errlen,
                     "cannot start the journal checkpoint "
                     "thread: %s",
                     sl_strerror(rc));
            goto out;
        }
    }
    /* before the modules: the HTTP module's TLS listener uses it too */
    if (sl_tls_init(b, err, errlen) != 0) {
        rc = SL_ERR_INVALID_CONFIG;
        goto out;
    }
    for (size_t i = 0; i < NMODULES; i++) {
        b->nmodules = i + 1; /* its fini runs even if its init failed */
        modules[i].init(b);
        if (b->exit_code) {
            snprintf(err, errlen, "module %s failed to start (see the log)",
                     modules[i].name);
            rc = SL_ERR_UNKNOWN;
            goto out;
        }
    }
    rc = bind_listener(b, "binary", b->cfg.listen, bin_accept_cb, &b->bin_lis,
                       b->bin_addr, sizeof(b->bin_addr), err, errlen);
    if (rc != SL_OK)
        goto out;
    rc = bind_listener(b, "stomp", b->cfg.stomp_listen, stomp_accept_cb,
                       &b->stomp_lis, b->stomp_addr, sizeof(b->stomp_addr), err,
                       errlen);
    if (rc != SL_OK)
        goto out;
    if (b->cfg.stomp_ws_listen && b->cfg.stomp_ws_listen[0]) {
        rc = bind_listener(b, "stomp-ws", b->cfg.stomp_ws_listen, ws_accept_cb,
                           &b->ws_lis, b->ws_addr, sizeof(b->ws_addr), err,
                           errlen);
        if (rc != SL_OK)
            goto out;
    }
    if (b->cfg.tls_listen && *b->cfg.tls_listen) {
        rc = bind_listener(b, "tls", b->cfg.tls_listen, bin_tls_accept_cb,
                           &b->bin_tls_lis, b->bin_tls_addr,
                           sizeof(b->bin_tls_addr), err, errlen);
        if (rc != SL_OK)
            goto out;
    }
    if (b->cfg.stomp_tls_listen && *b->cfg.stomp_tls_listen) {
        rc = bind_listener(b, "stomp-tls", b->cfg.stomp_tls_listen,
                           stomp_tls_accept_cb, &b->stomp_tls_lis,
                           b->stomp_tls_addr, sizeof(b->stomp_tls_addr), err,
                           errlen);
        if (rc != SL_OK)
            goto out;
    }
    if (b->cfg.stomp_wss_listen && *b->cfg.stomp_wss_listen) {
        rc = bind_listener(b, "stomp-wss", b->cfg.stomp_wss_listen,
                           wss_accept_cb, &b->wss_lis, b->wss_addr,
                           sizeof(b->wss_addr), err, errlen);
        if (rc != SL_OK)
            goto out;
    }
    rc = bind_listener(b, "http", b->cfg.http_listen, http_accept_cb,
                       &b->http_lis, b->http_addr, sizeof(b->http_addr), err,
                       errlen);
    if (rc != SL_OK)
        goto out;
    if (b->cfg.http_tls_listen && *b->cfg.http_tls_listen) {
        rc = bind_listener(b, "http-tls", b->cfg.http_tls_listen,
                           https_accept_cb, &b->http_tls_lis, b->http_tls_addr,
                           sizeof(b->http_tls_addr), err, errlen);
        if (rc != SL_OK)
            goto out;
    }
    sl_log(SL_INFO, "http", "HTTP listening on %s%s%s (metrics, API, console)",
           b->http_addr, b->http_tls_lis ? ", HTTPS on " : "",
           b->http_tls_lis ? b->http_tls_addr : "");
    rc = sl_bcluster_start(b, err, errlen);
    if (rc != SL_OK)
        goto out;
    sl_log(SL_INFO, "server",
           "sluiced started: binary %s, stomp %s, data %s, %zu topic(s)",
           b->bin_addr, b->stomp_addr, b->cfg.data, sl_topics_count(b->topics));
    if (b->bin_tls_lis || b->stomp_tls_lis || b->wss_lis)
        sl_log(SL_INFO, "server",
               "TLS listeners: binary %s, stomp %s, stomp-wss %s",
               b->bin_tls_lis ? b->bin_tls_addr : "-",
               b->stomp_tls_lis ? b->stomp_tls_addr : "-",
               b->wss_lis ? b->wss_addr : "-");
    *out = b;
    return SL_OK;
out:
    broker_free(b);
    return rc;
}

/* ---- stop ---------------------------------------------------------------- */

static void sync_all(sl_broker *b)
{
    size_t n;
    sl_topic **all = sl_topics_sorted(b->topics, &n);

    for (size_t i = 0; i < n; i++) {
        for (int32_t p = 0; p < all[i]->nparts; p++) {
            sl_part *part = all[i]->parts[p]->part;
            sl_err rc;
            if (!sl_part_dirty(part))
                continue;
            rc = sl_part_sync(part);
            if (rc != SL_OK)
                sl_log(SL_ERROR, "server", "final flush of %s/%d: %s",
                       all[i]->name, p, sl_strerror(rc));
        }
    }
    free(all);
}

static void broker_free(sl_broker *b)
{
    if (!b)
        return;
    /* the Raft thread first: its pending proposals complete (and answer
     * their connections) while topics and connections still exist */
    sl_bcluster_stop(b);
    /* connections next: STOMP sessions release their queue consumers
     * (and binary close hooks run) while the groups still exist */
    if (b->base)
        sl_conn_free_all(b);
    if (b->base && b->flusher) {
        for (size_t i = b->nmodules; i-- > 0;)
            if (modules[i].fini)
                modules[i].fini(b);
    }
    if (b->bin_lis)
        evconnlistener_free(b->bin_lis);
    if (b->stomp_lis)
        evconnlistener_free(b->stomp_lis);
    if (b->ws_lis)
        evconnlistener_free(b->ws_lis);
    if (b->bin_tls_lis)
        evconnlistener_free(b->bin_tls_lis);
    if (b->stomp_tls_lis)
        evconnlistener_free(b->stomp_tls_lis);
    if (b->wss_lis)
        evconnlistener_free(b->wss_lis);
    if (b->http_lis)
        evconnlistener_free(b->http_lis);
    if (b->http_tls_lis)
        evconnlistener_free(b->http_tls_lis);
    /* Covers every append requested so far (final group commit). */
    sl_flusher_free(b->flusher);
    b->flusher = NULL;
    sl_journal_free(b->journal); /* deleted by the flusher's last act */
    b->journal = NULL;
    if (b->base && b->flush_ev)
        sl_ops_on_flush(-1, 0, b); /* answer what that round made durable */
    sl_ops_fail_waiters(b, SL_ERR_SHUTTING_DOWN);
    while (b->watches)
        sl_ops_watch_free(b->watches);
    if (b->topics) {
        sync_all(b); /* flush=interval|never partitions too */
        sl_topics_free(b->topics);
    }
    if (b->flush_ev)
        event_free(b->flush_ev);
    if (b->append_ev)
        event_free(b->append_ev);
    if (b->spin_ev)
        event_free(b->spin_ev);
    if (b->kick_ev)
        event_free(b->kick_ev);
    if (b->idle_ev)
        event_free(b->idle_ev);
    if (b->guard_ev)
        event_free(b->guard_ev);
    if (b->base)
        sl_conn_fini(b);
    sl_tls_fini(b);
    if (b->maint_ev)
        event_free(b->maint_ev);
    if (b->sig_term)
        event_free(b->sig_term);
    if (b->sig_int)
        event_free(b->sig_int);
    if (b->sig_hup)
        event_free(b->sig_hup);
    if (b->sig_usr1)
        event_free(b->sig_usr1);
    if (b->sig_usr2)
        event_free(b->sig_usr2);
    if (b->stop_timer)
        event_free(b->stop_timer);
    if (b->base)
        event_base_free(b->base);
    sl_fs_unlock_dir(b->lock_fd);
    free(b->stop_hooks);
    free(b->append_hooks);
    free(b->durable_hooks);
    free(b->delete_hooks);
    /* last: the flusher's hooks and the loop's durable hooks above may
     * still have used module state */
    for (size_t i = b->nmodules; i-- > 0;)
        if (modules[i].release)
            modules[i].release(b);
    b->nmodules = 0;
    sl_config_fini(&b->cfg);
    sl_ops_wait_cache_drop(); /* (waits kept for reuse, ops.c) */
    free(b);
}

int sl_server_run(sl_broker *b)
{
    int code;

    event_base_dispatch(b->base);
    if (b->stopping)
        sl_log(SL_INFO, "server", "stopping: final flush");
    code = b->exit_code;
    broker_free(b);
    sl_log(SL_INFO, "server", "stopped");
    return code;
}
