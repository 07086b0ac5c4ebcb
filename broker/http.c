/*
 * http.c - the HTTP listener (http.h): routes onto the admin verbs, the
 * metrics exposition, health checks and the console's static files.
 *
 * Routes (docs/http-api.md): every /api/ route is one admin verb
 * (broker/admin.h); its arguments come from the path, the query string
 * and, for POST, an application/x-www-form-urlencoded body. Answers are
 * JSON; an error is {"error": "UNKNOWN_TOPIC", "message": "..."} with the
 * status the error calls for (400, 404, 409, 500, 503).
 *
 * Bounds: headers 16 KiB, bodies 1 MiB, 30 s timeouts (evhttp's own
 * limits); evhttp answers anything larger itself.
 *
 * Login: once the broker has users (broker/auth.c), every /api/ request
 * carries HTTP Basic credentials of one (Authorization: Basic), checked on
 * the login threads like a STOMP passcode (slowed down after failures);
 * without them 401 with WWW-Authenticate, with a wrong one 401 too. The
 * verb then runs as that user: acl.c checks what it needs (403 when no
 * rule allows it). /metrics, /healthz, /readyz and the console's files
 * need no login.
 * @thread loop
 */
#include "broker/http.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "broker/admin.h"
#include "broker/auth.h"
#include "broker/config.h"
#include "broker/console.h"
#include "broker/json.h"
#include "broker/metrics.h"
#include "broker/tls.h"
#include "protocol/log.h"
#include "protocol/scram.h"

#define MAX_ARGS 64

typedef struct sl_http {
    sl_broker *b;
    struct evhttp *http;
    struct evhttp *https; /* http-tls-listen, NULL when not set */
    char addr[80];
    char tls_addr[80];
} sl_http;

/* One module per broker; the broker keeps no slot for it. */
static sl_http *g_http;

const char *sl_http_addr(const sl_broker *b)
{
    (void)b;
    return g_http ? g_http->addr : "";
}

const char *sl_http_tls_addr(const sl_broker *b)
{
    (void)b;
    return g_http && g_http->https ? g_http->tls_addr : NULL;
}

/* ---- answers -------------------------------------------------------------- */

static int status_for(sl_err rc)
{
    switch (rc) {
    case SL_ERR_UNKNOWN_TOPIC:
    case SL_ERR_UNKNOWN_GROUP:
    case SL_ERR_UNKNOWN_PARTITION:
    case SL_ERR_NOT_FOUND:
        return 404;
    case SL_ERR_INVALID_ARG:
    case SL_ERR_INVALID_CONFIG:
    case SL_ERR_INVALID_TOPIC:
    case SL_ERR_MALFORMED:
        return 400;
    case SL_ERR_TOPIC_EXISTS:
    case SL_ERR_BUSY:
        return 409;
    case SL_ERR_SHUTTING_DOWN:
        return 503;
    case SL_ERR_AUTH:
        return 401;
    case SL_ERR_AUTHORIZATION_FAILED:
        return 403;
    default:
        return 500;
    }
}

static const char *reason_for(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 503:
        return "Service Unavailable";
    default:
        return "Internal Server Error";
    }
}

static void reply(struct evhttp_request *req, int code, const char *ctype,
                  struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", ctype);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, code, reason_for(code), body);
}

static void reply_text(struct evhttp_request *req, int code, const char *text)
{
    struct evbuffer *b = evbuffer_new();
    if (b)
        evbuffer_add(b, text, strlen(text));
    reply(req, code, "text/plain; charset=utf-8", b);
    if (b)
        evbuffer_free(b);
}

static void reply_error(struct evhttp_request *req, sl_err rc, const char *msg)
{
    struct evbuffer *b = evbuffer_new();
    int code = status_for(rc);
    if (b) {
        const char *name = sl_errname(rc);
        if (!strncmp(name, "SL_ERR_", 7)) /* "UNKNOWN_TOPIC" */
            name += 7;
        evbuffer_add_printf(b, "{\"error\":\"%s\",\"message\":", name);
        {
            const char *m = msg ? msg : sl_strerror(rc);
            sl_json_escape(b, m, strlen(m));
        }
        evbuffer_add(b, "}\n", 2);
    }
    reply(req, code, "application/json", b);
    if (b)
        evbuffer_free(b);
}

/* ---- admin verbs over HTTP ------------------------------------------------ */

typedef struct hcall {
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    sl_admin_call *x;
    int answered;
} hcall;

static void hcall_done(void *arg, sl_err rc, const char *msg,
                       struct evbuffer *json)
{
    hcall *hc = arg;
    hc->answered = 1;
    if (hc->x && hc->evcon) /* answered later: drop our close hook */
        evhttp_connection_set_closecb(hc->evcon, NULL, NULL);
    if (rc != SL_OK) {
        reply_error(hc->req, rc, msg);
    } else {
        evbuffer_add(json, "\n", 1);
        reply(hc->req, 200, "application/json", json);
    }
    if (hc->x)
        free(hc);
}

static void hcall_closed(struct evhttp_connection *evcon, void *arg)
{
    hcall *hc = arg;
    (void)evcon;
    sl_admin_cancel(hc->x);
    free(hc);
}

typedef struct hargs {
    const char *keys[MAX_ARGS], *values[MAX_ARGS];
    char *owned[2 * MAX_ARGS];
    size_t n, nowned;
    struct evkeyvalq q, body;
} hargs;

static int hargs_add(hargs *a, const char *k, const char *v)
{
    if (a->n == MAX_ARGS)
        return -1;
    a->keys[a->n] = k;
    a->values[a->n] = v;
    a->n++;
    return 0;
}

/* A path segment, percent-decoded (owned by a). */
static const char *hargs_seg(hargs *a, const char *seg, size_t len)
{
    char *raw = strndup(seg, len), *dec;
    if (!raw)
        return NULL;
    dec = evhttp_uridecode(raw, 0, NULL);
    free(raw);
    if (dec && a->nowned < 2 * MAX_ARGS)
        a->owned[a->nowned++] = dec;
    else if (dec) {
        free(dec);
        dec = NULL;
    }
    return dec;
}

static void hargs_fini(hargs *a)
{
    for (size_t i = 0; i < a->nowned; i++)
        free(a->owned[i]);
    evhttp_clear_headers(&a->q);
    evhttp_clear_headers(&a->body);
}

/* The logged-in user of the request being routed (route_api_as). */
typedef struct who {
    const char *user;
    int admin;
    char peer[80];
} who;

static void run_verb(sl_http *h, struct evhttp_request *req, const char *verb,
                     hargs *a, const who *w)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    struct evkeyval *kv;
    sl_admin_args args;
    hcall *hc;

    if (query && evhttp_parse_query_str(query, &a->q) != 0) {
        reply_error(req, SL_ERR_INVALID_ARG, "malformed query string");
        return;
    }
    if (evhttp_request_get_command(req) == EVHTTP_REQ_POST) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t len = evbuffer_get_length(in);
        if (len) {
            char *body = malloc(len + 1);
            if (!body) {
                reply_error(req, SL_ERR_NOMEM, "out of memory");
                return;
            }
            evbuffer_copyout(in, body, len);
            body[len] = 0;
            if (evhttp_parse_query_str(body, &a->body) != 0) {
                free(body);
                reply_error(req, SL_ERR_INVALID_ARG,
                            "malformed form body (want "
                            "application/x-www-form-urlencoded)");
                return;
            }
            free(body);
        }
    }
    for (kv = a->q.tqh_first; kv; kv = kv->next.tqe_next)
        if (hargs_add(a, kv->key, kv->value) != 0)
            break;
    for (kv = a->body.tqh_first; kv; kv = kv->next.tqe_next)
        if (hargs_add(a, kv->key, kv->value) != 0)
            break;
    if (a->n == MAX_ARGS) {
        reply_error(req, SL_ERR_INVALID_ARG, "too many arguments (64 at most)");
        return;
    }
    hc = calloc(1, sizeof(*hc));
    if (!hc) {
        reply_error(req, SL_ERR_NOMEM, "out of memory");
        return;
    }
    hc->req = req;
    hc->evcon = evhttp_request_get_connection(req);
    args.n = a->n;
    args.keys = a->keys;
    args.values = a->values;
    args.user = w->user; /* NULL: anonymous (no users) */
    args.admin = w->admin;
    args.peer = w->peer;
    hc->x = sl_admin_run(h->b, verb, &args, hcall_done, hc);
    if (!hc->answered) {
        if (hc->evcon)
            evhttp_connection_set_closecb(hc->evcon, hcall_closed, hc);
    } else if (!hc->x) {
        free(hc);
    }
}

/* Path segments after /api/: up to 4. */
typedef struct segs {
    const char *p[4];
    size_t len[4];
    int n;
} segs;

static int split(const char *path, segs *s)
{
    memset(s, 0, sizeof(*s));
    while (*path == '/')
        path++;
    while (*path) {
        const char *e = strchr(path, '/');
        size_t l = e ? (size_t)(e - path) : strlen(path);
        if (s->n == 4)
            return -1;
        s->p[s->n] = path;
        s->len[s->n] = l;
        s->n++;
        path += l;
        while (*path == '/')
            path++;
    }
    return 0;
}

static int seg_is(const segs *s, int i, const char *w)
{
    return i < s->n && s->len[i] == strlen(w) && !memcmp(s->p[i], w, s->len[i]);
}

/* Route an /api/ request (path after "/api") as w. 0 = handled. */
static int route_api_as(sl_http *h, struct evhttp_request *req,
                        const char *path, const who *w)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    int get = m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD;
    int post = m == EVHTTP_REQ_POST, del = m == EVHTTP_REQ_DELETE;
    hargs a;
    segs s;
    const char *verb = NULL;
    const char *v1 = NULL, *v2 = NULL;

    memset(&a, 0, sizeof(a));
    TAILQ_INIT(&a.q);
    TAILQ_INIT(&a.body);
    if (split(path, &s) != 0 || s.n == 0)
        goto notfound;
    if (s.n >= 2 && !(v1 = hargs_seg(&a, s.p[1], s.len[1])))
        goto notfound;
    if (s.n >= 3 && !(v2 = hargs_seg(&a, s.p[2], s.len[2])))
        goto notfound;
    if (seg_is(&s, 0, "overview") && s.n == 1 && get) {
        verb = "status";
    } else if (seg_is(&s, 0, "topics")) {
        if (s.n == 1)
            verb = get ? "topics" : post ? "topic.create" : NULL;
        else if (s.n == 2)
            verb = get ? "topic" : del ? "topic.delete" : NULL;
        else if (s.n == 3 && post && seg_is(&s, 2, "config"))
            verb = "topic.alter";
        else if (s.n == 3 && post && seg_is(&s, 2, "partitions"))
            verb = "topic.add_partitions";
        if (v1)
            hargs_add(&a, "topic", v1);
    } else if (seg_is(&s, 0, "groups")) {
        if (s.n == 1 && get)
            verb = "groups";
        else if (s.n == 2)
            verb = get ? "group" : del ? "group.delete" : NULL;
        else if (s.n == 3 && post && seg_is(&s, 2, "reset"))
            verb = "group.reset";
        if (v1)
            hargs_add(&a, "group", v1);
    } else if (seg_is(&s, 0, "queues")) {
        /* /api/queues, /api/queues/{topic}/{group}/purge|peek */
        if (s.n == 1 && get)
            verb = "queues";
        else if (s.n == 4 && post && seg_is(&s, 3, "purge"))
            verb = "queue.purge";
        else if (s.n == 4 && get && seg_is(&s, 3, "peek"))
            verb = "queue.peek";
        if (v1)
            hargs_add(&a, "topic", v1);
        if (v2)
            hargs_add(&a, "group", v2);
    } else if (seg_is(&s, 0, "dlqs")) {
        if (s.n == 1 && get)
            verb = "dlq.list";
        else if (s.n == 2 && get)
            verb = "dlq.show";
        else if (s.n == 3 && post && seg_is(&s, 2, "purge"))
            verb = "dlq.purge";
        else if (s.n == 3 && post && seg_is(&s, 2, "redrive"))
            verb = "dlq.redrive";
        if (v1)
            hargs_add(&a, "dlq", v1);
    } else if (seg_is(&s, 0, "connections")) {
        if (s.n == 1 && get)
            verb = "connections";
        else if (s.n == 2 && del)
            verb = "connection.close";
        else if (s.n == 3 && post && seg_is(&s, 2, "close"))
            verb = "connection.close";
        if (v1)
            hargs_add(&a, "id", v1);
    } else if (seg_is(&s, 0, "admin") && s.n == 2 && (get || post)) {
        verb = v1; /* any verb, as the binary ADMIN api takes it */
    }
    if (!verb) {
        hargs_fini(&a);
        if (s.n > 0 &&
            (seg_is(&s, 0, "topics") || seg_is(&s, 0, "groups") ||
             seg_is(&s, 0, "queues") || seg_is(&s, 0, "dlqs") ||
             seg_is(&s, 0, "connections") || seg_is(&s, 0, "overview")))
            reply_text(req, 405, "method not allowed for this path\n");
        else
            reply_error(req, SL_ERR_NOT_FOUND, "no such API path");
        return 0;
    }
    run_verb(h, req, verb, &a, w);
    hargs_fini(&a);
    return 0;
notfound:
    hargs_fini(&a);
    reply_error(req, SL_ERR_NOT_FOUND, "no such API path");
    return 0;
}

/* ---- login (HTTP Basic) ---------------------------------------------------- */

typedef struct hauth {
    sl_http *h;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    sl_auth_job *job;
    char *path;
    who w;
    char user[65];
} hauth;

static void reply_401(struct evhttp_request *req, const char *msg)
{
    evhttp_add_header(evhttp_request_get_output_headers(req),
                      "WWW-Authenticate", "Basic realm=\"sluice\"");
    reply_error(req, SL_ERR_AUTH, msg);
}

static void hauth_free(hauth *ha)
{
    free(ha->path);
    free(ha);
}

static void hauth_closed(struct evhttp_connection *evcon, void *arg)
{
    hauth *ha = arg;
    (void)evcon;
    sl_auth_job_cancel(ha->job);
    hauth_free(ha);
}

static void hauth_done(void *arg, int ok, int admin)
{
    hauth *ha = arg;
    char msg[160];
    if (ha->evcon)
        evhttp_connection_set_closecb(ha->evcon, NULL, NULL);
    if (!ok) {
        snprintf(msg, sizeof(msg),
                 "AUTHENTICATION_FAILED: authentication failed for user "
                 "'%s' (wrong user name or password)",
                 ha->user);
        reply_401(ha->req, msg);
    } else {
        ha->w.user = ha->user;
        ha->w.admin = admin;
        route_api_as(ha->h, ha->req, ha->path, &ha->w);
    }
    hauth_free(ha);
}

static int route_api(sl_http *h, struct evhttp_request *req, const char *path)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    const char *hdr = evhttp_find_header(evhttp_request_get_input_headers(req),
                                         "Authorization");
    char *peer_host = NULL;
    uint16_t peer_port = 0;
    uint8_t cred[512];
    char pw[512];
    const char *colon;
    hauth *ha;
    who w;
    int n;

    memset(&w, 0, sizeof(w));
    if (evcon)
        evhttp_connection_get_peer(evcon, &peer_host, &peer_port);
    snprintf(w.peer, sizeof(w.peer), "%s:%u", peer_host ? peer_host : "?",
             (unsigned)peer_port);
    if (!sl_auth_enabled(h->b))
        return route_api_as(h, req, path, &w);
    if (!hdr || strncmp(hdr, "Basic ", 6) != 0) {
        reply_401(req, "AUTHENTICATION_FAILED: log in first (HTTP Basic: "
                       "Authorization: Basic base64(user:password))");
        return 0;
    }
    n = sl_b64_decode(hdr + 6, strlen(hdr + 6), cred, sizeof(cred) - 1);
    colon = n > 0 ? memchr(cred, ':', (size_t)n) : NULL;
    if (!colon || colon == (const char *)cred ||
        (size_t)(colon - (const char *)cred) > 64) {
        reply_401(req, "AUTHENTICATION_FAILED: malformed Basic credentials");
        return 0;
    }
    ha = calloc(1, sizeof(*ha));
    if (!ha) {
        reply_error(req, SL_ERR_NOMEM, "out of memory");
        return 0;
    }
    memcpy(ha->user, cred, (size_t)(colon - (const char *)cred));
    memcpy(pw, colon + 1, (size_t)(n - (colon + 1 - (const char *)cred)));
    pw[n - (colon + 1 - (const char *)cred)] = 0;
    ha->h = h;
    ha->req = req;
    ha->evcon = evcon;
    ha->w = w;
    ha->path = strdup(path);
    ha->job = ha->path ? sl_auth_check_password(h->b, w.peer, "http",
                                                ha->user, pw, hauth_done, ha)
                       : NULL;
    memset(pw, 0, sizeof(pw));
    memset(cred, 0, sizeof(cred));
    if (!ha->job) {
        hauth_free(ha);
        reply_error(req, SL_ERR_NOMEM, "out of memory");
        return 0;
    }
    if (evcon)
        evhttp_connection_set_closecb(evcon, hauth_closed, ha);
    return 0;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    sl_http *h = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type m = evhttp_request_get_command(req);

    if (!path || !*path)
        path = "/";
    if (!strcmp(path, "/healthz")) {
        reply_text(req, 200, "ok\n");
    } else if (!strcmp(path, "/readyz")) {
        if (sl_broker_stopping(h->b))
            reply_text(req, 503, "stopping\n");
        else
            reply_text(req, 200, "ready\n");
    } else if (!strcmp(path, "/metrics")) {
        struct evbuffer *b = evbuffer_new();
        if (!b) {
            reply_text(req, 500, "out of memory\n");
            return;
        }
        sl_metrics_render(h->b, b);
        reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", b);
        evbuffer_free(b);
    } else if (!strncmp(path, "/api/", 5) || !strcmp(path, "/api")) {
        route_api(h, req, path + 4);
    } else if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD) {
        const sl_console_file *f = sl_console_find(path);
        if (!f) {
            reply_text(req, 404, "not found\n");
            return;
        }
        struct evbuffer *b = evbuffer_new();
        if (!b) {
            reply_text(req, 500, "out of memory\n");
            return;
        }
        evbuffer_add_reference(b, f->data, f->len, NULL, NULL);
        reply(req, 200, f->ctype, b);
        evbuffer_free(b);
    } else {
        reply_text(req, 405, "method not allowed\n");
    }
}

/* ---- life cycle ------------------------------------------------------------ */

/* HTTPS: evhttp makes each connection's bufferevent through this. */
static struct bufferevent *https_bev(struct event_base *base, void *arg)
{
    sl_http *h = arg;
    SSL *ssl = sl_tls_ssl_new(h->b);
    struct bufferevent *bev;
    if (!ssl)
        return NULL;
    bev = bufferevent_openssl_socket_new(base, -1, ssl,
                                         BUFFEREVENT_SSL_ACCEPTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* A configured evhttp bound to addr (flag names the setting); its bound
 * "IP:PORT" into out. NULL after sl_broker_fail. */
static struct evhttp *http_listen(sl_http *h, const char *flag,
                                  const char *addr, char *out, size_t outlen)
{
    sl_broker *b = h->b;
    const char *orig = addr;
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    char host[256], msg[400];
    size_t hl;
    long port;
    char *end;
    struct evhttp *http;
    struct evhttp_bound_socket *bs;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);

    if (!addr || !*addr || !colon) {
        snprintf(msg, sizeof(msg), "%s: expected HOST:PORT", flag);
        sl_broker_fail(b, msg);
        return NULL;
    }
    hl = (size_t)(colon - addr);
    if (hl >= 2 && addr[0] == '[' && addr[hl - 1] == ']') {
        addr++;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof(host)) {
        snprintf(msg, sizeof(msg), "%s: bad host", flag);
        sl_broker_fail(b, msg);
        return NULL;
    }
    memcpy(host, addr, hl);
    host[hl] = 0;
    port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535) {
        snprintf(msg, sizeof(msg), "%s: bad port", flag);
        sl_broker_fail(b, msg);
        return NULL;
    }
    if (!(http = evhttp_new(sl_broker_base(b)))) {
        sl_broker_fail(b, "http: out of memory");
        return NULL;
    }
    evhttp_set_max_headers_size(http, 16384);
    evhttp_set_max_body_size(http, 1 << 20);
    evhttp_set_timeout(http, 30);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
                                         EVHTTP_REQ_POST | EVHTTP_REQ_DELETE);
    evhttp_set_gencb(http, on_request, h);
    bs = evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port);
    if (!bs) {
        snprintf(msg, sizeof(msg), "http: cannot listen on %s (--%s)", orig,
                 flag);
        evhttp_free(http);
        sl_broker_fail(b, msg);
        return NULL;
    }
    memset(&ss, 0, sizeof(ss));
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss,
                    &sl) == 0) {
        char ip[64] = "?";
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
            snprintf(out, outlen, "[%s]:%d", ip, ntohs(s6->sin6_port));
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
            snprintf(out, outlen, "%s:%d", ip, ntohs(s4->sin_port));
        }
    } else {
        snprintf(out, outlen, "%s", orig);
    }
    return http;
}

void sl_http_start(sl_broker *b)
{
    const char *tls = sl_broker_config(b)->http_tls_listen;
    sl_http *h = calloc(1, sizeof(*h));

    if (!h) {
        sl_broker_fail(b, "http: out of memory");
        return;
    }
    h->b = b;
    h->http = http_listen(h, "http-listen", sl_broker_config(b)->http_listen,
                          h->addr, sizeof(h->addr));
    if (!h->http) {
        free(h);
        return;
    }
    if (tls && *tls) {
        /* the same routes on a second evhttp whose connections are TLS
         * bufferevents (tls.c's context, reloaded on SIGHUP) */
        h->https = http_listen(h, "http-tls-listen", tls, h->tls_addr,
                               sizeof(h->tls_addr));
        if (!h->https) {
            evhttp_free(h->http);
            free(h);
            return;
        }
        evhttp_set_bevcb(h->https, https_bev, h);
    }
    g_http = h;
    sl_log(SL_INFO, "http", "HTTP listening on %s%s%s (metrics, API, console)",
           h->addr, h->https ? ", HTTPS on " : "", h->https ? h->tls_addr : "");
}

void sl_http_stop(sl_broker *b)
{
    (void)b;
    if (!g_http)
        return;
    evhttp_free(g_http->http);
    if (g_http->https)
        evhttp_free(g_http->https);
    free(g_http);
    g_http = NULL;
}
