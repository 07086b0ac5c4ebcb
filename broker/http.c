/*
 * http.c - the HTTP adapter (http.h): HTTP/1.1 on the connection layer,
 * routed onto the admin verbs, the metrics exposition, health checks and
 * the console's static files.
 *
 * Connections: HTTP is one more ops table on conn.c (listener
 * SL_LISTENER_HTTP, plain or TLS), so it has what every protocol has
 * there: the one max-connections count and the per-address cap, the
 * ordered reply queue, back-pressure, timeouts, TLS, close and reap, and
 * a row in the connections listing (protocol "http"). Open and close are
 * logged at DEBUG only (SL_CONN_QUIET): a scraper every 15 s would
 * otherwise fill the log. This file cuts requests (http_parse.c does the
 * head), answers each in a reply slot of its own, and keeps at most one
 * request in flight per connection: while an answer waits (a password
 * check, a verb that waits for a groups.db commit) reading is paused, so
 * pipelined requests run one after the other, in order, as with evhttp
 * before. A keep-alive connection left idle is closed after
 * HTTP_IDLE_MS.
 *
 * Routes (docs/http-api.md): every /api/ route is one admin verb
 * (broker/admin.h); its arguments come from the path, the query string
 * and, for POST, an application/x-www-form-urlencoded body. Answers are
 * JSON; an error is {"error": "UNKNOWN_TOPIC", "message": "..."} with the
 * status the error calls for (400, 404, 409, 500, 503).
 *
 * Bad input (http_parse.h): heads over 16 KiB (431), bodies over 1 MiB
 * (413), malformed lines (400), chunked bodies and other methods (501),
 * other versions (505) are answered with a text naming the problem, and
 * only that connection is closed; one rate-limited WARN line per kind.
 *
 * Login: once the broker has users (broker/auth.c), every /api/ request
 * carries HTTP Basic credentials of one (Authorization: Basic), checked on
 * the login threads like a STOMP passcode (slowed down after failures);
 * without them 401 with WWW-Authenticate, with a wrong one 401 too. The
 * verb then runs as that user: acl.c checks what it needs (403 when no
 * rule allows it). On HTTPS a request without Authorization whose
 * connection has a verified client certificate naming a user
 * (tls-cert-login cn|san) runs as that user, as on the binary and STOMP
 * listeners (sl_auth_cert_login). /metrics, /healthz, /readyz and the
 * console's files need no login.
 * @thread loop
 */
#include "broker/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "broker/admin.h"
#include "broker/auth.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/console.h"
#include "broker/http_parse.h"
#include "broker/json.h"
#include "broker/metrics.h"
#include "protocol/log.h"
#include "protocol/scram.h"

#define MAX_ARGS 64
/* A keep-alive connection with nothing asked is closed after this long
 * (evhttp's timeout, which this listener had before). */
#define HTTP_IDLE_MS 30000

/* The module: the broker, handed to every connection. */
typedef struct sl_http {
    sl_broker *b;
} sl_http;

typedef struct hreq hreq;

/* One connection. */
typedef struct hconn {
    sl_http *h;
    sl_conn *c;
    hreq *cur;     /* the request in flight (reading paused), or NULL */
    int continued; /* "100 Continue" sent for the body awaited */
} hconn;

/* The logged-in user of the request being routed (route_api_as). */
typedef struct who {
    const char *user;
    int admin;
    char peer[80];
} who;

/* One request, from its head to its answer. */
struct hreq {
    hconn *hc; /* NULL once the connection went away */
    sl_http *h;
    sl_reply *r; /* NULL once answered or cancelled */
    enum sl_http_method method;
    int keep_alive;
    int busy;      /* inside a call that may answer before it returns */
    int answered;  /* the reply is done */
    int cancelled; /* the connection closed first */
    sl_admin_call *x;
    sl_auth_job *job;
    char *target, *body, *authz;
    size_t body_len;
    who w;
    char user[65];
};

/* ---- answers ------------------------------------------------------------- */

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
    case SL_ERR_NOT_COORDINATOR: /* a group's coordinator is moving: retry */
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
    case 100:
        return "Continue";
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
    case 413:
        return "Content Too Large";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Internal Server Error";
    }
}

/* Status line and headers into o. */
static void put_head(struct evbuffer *o, int code, const char *ctype,
                     size_t len, int keep_alive, const char *extra)
{
    char date[64];
    time_t now = time(NULL);
    struct tm tm;

    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    evbuffer_add_printf(o,
                        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                        "Cache-Control: no-store\r\nContent-Length: %zu\r\n"
                        "Date: %s\r\n%s%s\r\n",
                        code, reason_for(code), ctype, len, date,
                        keep_alive ? "" : "Connection: close\r\n",
                        extra ? extra : "");
}

static void hreq_free(hreq *q)
{
    free(q->target);
    free(q->body);
    free(q->authz);
    free(q);
}

/* Free q once nothing runs on its behalf and it is answered or
 * cancelled; a connection paused for it reads on. */
static void hreq_settle(hreq *q)
{
    hconn *hc = q->hc;
    if (q->busy || !(q->answered || q->cancelled))
        return;
    if (q->x) { /* cancelled while the verb still runs */
        sl_admin_cancel(q->x);
        q->x = NULL;
    }
    if (hc && hc->cur == q) {
        hc->cur = NULL;
        sl_conn_resume(hc->c);
    }
    hreq_free(q);
}

/* The answer: code, content type, body (moved from body, may be NULL),
 * an extra header line ("Name: value\r\n") or NULL. */
static void reply_ex(hreq *q, int code, const char *ctype,
                     struct evbuffer *body, const char *extra)
{
    struct evbuffer *o;
    size_t n = body ? evbuffer_get_length(body) : 0;

    if (!q->r)
        return; /* cancelled, or answered already */
    o = sl_reply_evbuffer(q->r);
    put_head(o, code, ctype, n, q->keep_alive, extra);
    if (n && q->method != SL_HTTP_HEAD)
        evbuffer_add_buffer(o, body);
    sl_reply_set_cancel(q->r, NULL, NULL);
    sl_reply_done(q->r);
    q->r = NULL;
    q->answered = 1;
}

static void reply(hreq *q, int code, const char *ctype, struct evbuffer *body)
{
    reply_ex(q, code, ctype, body, NULL);
}

static void reply_text(hreq *q, int code, const char *text)
{
    struct evbuffer *b = evbuffer_new();
    if (b)
        evbuffer_add(b, text, strlen(text));
    reply(q, code, "text/plain; charset=utf-8", b);
    if (b)
        evbuffer_free(b);
}

static void reply_error_ex(hreq *q, sl_err rc, const char *msg,
                           const char *extra)
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
    reply_ex(q, code, "application/json", b, extra);
    if (b)
        evbuffer_free(b);
}

static void reply_error(hreq *q, sl_err rc, const char *msg)
{
    reply_error_ex(q, rc, msg, NULL);
}

/* ---- admin verbs over HTTP ----------------------------------------------- */

static void verb_done(void *arg, sl_err rc, const char *msg,
                      struct evbuffer *json)
{
    hreq *q = arg;
    q->x = NULL; /* the call frees itself */
    if (rc != SL_OK) {
        reply_error(q, rc, msg);
    } else {
        evbuffer_add(json, "\n", 1);
        reply(q, 200, "application/json", json);
    }
    q->answered = 1;
    hreq_settle(q);
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

static void run_verb(hreq *q, const char *query, const char *verb, hargs *a)
{
    struct evkeyval *kv;
    sl_admin_args args;
    sl_admin_call *x;

    if (query && evhttp_parse_query_str(query, &a->q) != 0) {
        reply_error(q, SL_ERR_INVALID_ARG, "malformed query string");
        return;
    }
    if (q->method == SL_HTTP_POST && q->body_len) {
        if (evhttp_parse_query_str(q->body, &a->body) != 0) {
            reply_error(q, SL_ERR_INVALID_ARG,
                        "malformed form body (want "
                        "application/x-www-form-urlencoded)");
            return;
        }
    }
    for (kv = a->q.tqh_first; kv; kv = kv->next.tqe_next)
        if (hargs_add(a, kv->key, kv->value) != 0)
            break;
    for (kv = a->body.tqh_first; kv; kv = kv->next.tqe_next)
        if (hargs_add(a, kv->key, kv->value) != 0)
            break;
    if (a->n == MAX_ARGS) {
        reply_error(q, SL_ERR_INVALID_ARG, "too many arguments (64 at most)");
        return;
    }
    args.n = a->n;
    args.keys = a->keys;
    args.values = a->values;
    args.user = q->w.user; /* NULL: anonymous (no users) */
    args.admin = q->w.admin;
    args.peer = q->w.peer;
    q->busy++;
    x = sl_admin_run(q->h->b, verb, &args, verb_done, q);
    q->busy--;
    if (!q->answered)
        q->x = x; /* hreq_settle cancels it if the connection went */
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

/* Route an /api/ request (path after "/api") as q->w. */
static void route_api_as(hreq *q, const char *path, const char *query)
{
    enum sl_http_method m = q->method;
    int get = m == SL_HTTP_GET || m == SL_HTTP_HEAD;
    int post = m == SL_HTTP_POST, del = m == SL_HTTP_DELETE;
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
            reply_text(q, 405, "method not allowed for this path\n");
        else
            reply_error(q, SL_ERR_NOT_FOUND, "no such API path");
        return;
    }
    run_verb(q, query, verb, &a);
    hargs_fini(&a);
    return;
notfound:
    hargs_fini(&a);
    reply_error(q, SL_ERR_NOT_FOUND, "no such API path");
}

/* ---- login (HTTP Basic) -------------------------------------------------- */

static void reply_401(hreq *q, const char *msg)
{
    reply_error_ex(q, SL_ERR_AUTH, msg,
                   "WWW-Authenticate: Basic realm=\"sluice\"\r\n");
}

/* Split the target into path (after "/api") and query, and route. */
static void route_target_api(hreq *q);

static void login_done(void *arg, int ok, int admin)
{
    hreq *q = arg;
    char msg[160];
    q->job = NULL;
    if (q->cancelled) {
        hreq_settle(q);
        return;
    }
    if (!ok) {
        snprintf(msg, sizeof(msg),
                 "AUTHENTICATION_FAILED: authentication failed for user "
                 "'%s' (wrong user name or password)",
                 q->user);
        reply_401(q, msg);
    } else {
        q->w.user = q->user;
        q->w.admin = admin;
        q->busy++;
        route_target_api(q);
        q->busy--;
    }
    hreq_settle(q);
}

static void route_api(hreq *q)
{
    const char *hdr = q->authz;
    uint8_t cred[512];
    char pw[512];
    const char *colon;
    int n;

    if (!sl_auth_enabled(q->h->b)) {
        route_target_api(q);
        return;
    }
    if (!hdr && q->hc && sl_auth_cert_login(q->h->b, q->hc->c, "http", NULL)) {
        /* HTTPS with a client certificate naming a user (tls-cert-login,
         * as on the binary and STOMP listeners) */
        snprintf(q->user, sizeof(q->user), "%s", sl_auth_conn_user(q->hc->c));
        q->w.user = q->user;
        q->w.admin = sl_auth_conn_admin(q->hc->c);
        route_target_api(q);
        return;
    }
    if (!hdr || strncmp(hdr, "Basic ", 6) != 0) {
        reply_401(q, "AUTHENTICATION_FAILED: log in first (HTTP Basic: "
                     "Authorization: Basic base64(user:password), or a TLS "
                     "client certificate with tls-cert-login)");
        return;
    }
    n = sl_b64_decode(hdr + 6, strlen(hdr + 6), cred, sizeof(cred) - 1);
    colon = n > 0 ? memchr(cred, ':', (size_t)n) : NULL;
    if (!colon || colon == (const char *)cred ||
        (size_t)(colon - (const char *)cred) > 64) {
        reply_401(q, "AUTHENTICATION_FAILED: malformed Basic credentials");
        return;
    }
    memcpy(q->user, cred, (size_t)(colon - (const char *)cred));
    q->user[colon - (const char *)cred] = 0;
    memcpy(pw, colon + 1, (size_t)(n - (colon + 1 - (const char *)cred)));
    pw[n - (colon + 1 - (const char *)cred)] = 0;
    q->busy++;
    q->job = sl_auth_check_password(q->h->b, q->w.peer, "http", q->user, pw,
                                    login_done, q);
    q->busy--;
    memset(pw, 0, sizeof(pw));
    memset(cred, 0, sizeof(cred));
    if (!q->job && !q->answered)
        reply_error(q, SL_ERR_NOMEM, "out of memory");
}

/* ---- requests ------------------------------------------------------------ */

static void route_target_api(hreq *q)
{
    struct evhttp_uri *uri =
        evhttp_uri_parse_with_flags(q->target, EVHTTP_URI_NONCONFORMANT);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;

    if (!path) {
        reply_error(q, SL_ERR_INVALID_ARG, "malformed request target");
    } else {
        route_api_as(q, path + 4, evhttp_uri_get_query(uri));
    }
    if (uri)
        evhttp_uri_free(uri);
}

static void on_request(hreq *q)
{
    sl_http *h = q->h;
    struct evhttp_uri *uri =
        evhttp_uri_parse_with_flags(q->target, EVHTTP_URI_NONCONFORMANT);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    enum sl_http_method m = q->method;

    if (!uri) {
        reply_text(q, 400, "malformed request target\n");
        return;
    }
    if (!path || !*path)
        path = "/";
    if (!strcmp(path, "/healthz")) {
        reply_text(q, 200, "ok\n");
    } else if (!strcmp(path, "/readyz")) {
        if (sl_broker_stopping(h->b))
            reply_text(q, 503, "stopping\n");
        else
            reply_text(q, 200, "ready\n");
    } else if (!strcmp(path, "/metrics")) {
        struct evbuffer *b = evbuffer_new();
        if (!b) {
            reply_text(q, 500, "out of memory\n");
        } else {
            sl_metrics_render(h->b, b);
            reply(q, 200, "text/plain; version=0.0.4; charset=utf-8", b);
            evbuffer_free(b);
        }
    } else if (!strncmp(path, "/api/", 5) || !strcmp(path, "/api")) {
        route_api(q);
    } else if (m == SL_HTTP_GET || m == SL_HTTP_HEAD) {
        const sl_console_file *f = sl_console_find(path);
        struct evbuffer *b = f ? evbuffer_new() : NULL;
        if (!f) {
            reply_text(q, 404, "not found\n");
        } else if (!b) {
            reply_text(q, 500, "out of memory\n");
        } else {
            evbuffer_add_reference(b, f->data, f->len, NULL, NULL);
            reply(q, 200, f->ctype, b);
            evbuffer_free(b);
        }
    } else {
        reply_text(q, 405, "method not allowed\n");
    }
    evhttp_uri_free(uri);
}

/* The connection closed with q pending: nothing may touch the reply or
 * the connection any more. */
static void hreq_cancel(void *arg)
{
    hreq *q = arg;
    q->r = NULL;
    q->cancelled = 1;
    if (q->hc && q->hc->cur == q)
        q->hc->cur = NULL;
    q->hc = NULL;
    if (q->job) {
        sl_auth_job_cancel(q->job);
        q->job = NULL;
    }
    hreq_settle(q);
}

/* A request the parser refused: the answer names the problem, then the
 * connection closes (what follows cannot be trusted to be a request). */
static void refuse(hconn *hc, const sl_http_req *pr, struct evbuffer *in)
{
    sl_conn *c = hc->c;
    sl_reply *r = sl_reply_new(c, 0);
    char text[160];

    sl_conn_warn(c, "malformed", "bad HTTP request (%d): %s", pr->status,
                 pr->error);
    if (r) {
        struct evbuffer *o = sl_reply_evbuffer(r);
        snprintf(text, sizeof(text), "%s\n", pr->error);
        put_head(o, pr->status, "text/plain; charset=utf-8", strlen(text), 0,
                 NULL);
        evbuffer_add(o, text, strlen(text));
        sl_reply_done(r);
    }
    evbuffer_drain(in, evbuffer_get_length(in));
    sl_conn_close_after_reply(c);
}

static char *dup_str(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = 0;
    }
    return s;
}

/* ---- the ops table ------------------------------------------------------- */

static sl_err http_open(void *arg, sl_conn *c, void **state)
{
    hconn *hc = calloc(1, sizeof(*hc));
    if (!hc)
        return SL_ERR_NOMEM;
    hc->h = arg;
    hc->c = c;
    *state = hc;
    return SL_OK;
}

static void http_input(void *state, sl_conn *c, struct evbuffer *in)
{
    hconn *hc = state;

    while (!hc->cur && sl_conn_reading(c)) {
        size_t len = evbuffer_get_length(in);
        size_t take = len < SL_HTTP_MAX_HEAD ? len : SL_HTTP_MAX_HEAD;
        const char *p;
        sl_http_req pr;
        long hl;
        hreq *q;

        if (len == 0)
            return;
        p = (const char *)evbuffer_pullup(in, (ev_ssize_t)take);
        if (!p)
            return; /* out of memory: try again on the next read */
        hl = sl_http_parse(p, take, &pr);
        if (hl < 0) {
            refuse(hc, &pr, in);
            return;
        }
        if (hl == 0)
            return; /* the head is not complete yet */
        if (len - (size_t)hl < pr.content_length) {
            /* the body is still coming; a client that asked is told to
             * send it (curl waits a second for this otherwise) */
            if (pr.expect_continue && !hc->continued) {
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                hc->continued = 1;
                sl_conn_write(c, cont, sizeof(cont) - 1);
            }
            return;
        }
        hc->continued = 0;
        q = calloc(1, sizeof(*q));
        if (q) {
            q->target = dup_str(pr.target.p, pr.target.len);
            q->authz = pr.authorization.len
                           ? dup_str(pr.authorization.p, pr.authorization.len)
                           : NULL;
        }
        if (!q || !q->target || (pr.authorization.len && !q->authz) ||
            !(q->r = sl_reply_new(c, 0))) {
            if (q)
                hreq_free(q);
            sl_conn_abort(c, "out of memory");
            return;
        }
        q->hc = hc;
        q->h = hc->h;
        q->method = pr.method;
        q->keep_alive = pr.keep_alive;
        snprintf(q->w.peer, sizeof(q->w.peer), "%s", sl_conn_peer(c));
        evbuffer_drain(in, (size_t)hl);
        if (pr.content_length) {
            q->body = malloc(pr.content_length + 1);
            if (!q->body) {
                sl_reply_drop(q->r);
                hreq_free(q);
                sl_conn_abort(c, "out of memory");
                return;
            }
            evbuffer_remove(in, q->body, pr.content_length);
            q->body[pr.content_length] = 0;
            q->body_len = pr.content_length;
        }
        sl_reply_set_cancel(q->r, hreq_cancel, q);
        if (!q->keep_alive)
            sl_conn_close_after_reply(c); /* reading stops here */
        hc->cur = q;
        q->busy++;
        on_request(q);
        q->busy--;
        if (q->answered || q->cancelled) {
            if (hc->cur == q)
                hc->cur = NULL;
            hreq_settle(q);
            continue;
        }
        /* answered later (a login, a verb that waits for a commit):
         * the next request waits until then */
        sl_conn_pause(c);
        return;
    }
}

static void http_close(void *state, sl_conn *c)
{
    (void)c;
    free(state); /* a pending request was cancelled before */
}

static const sl_conn_ops http_ops = {
    .name = "http",
    .flags = SL_CONN_IDLE | SL_CONN_QUIET,
    .idle_ms = HTTP_IDLE_MS,
    .read_max = 64 * 1024,
    .on_open = http_open,
    .on_input = http_input,
    .on_close = http_close,
};

/* ---- life cycle ---------------------------------------------------------- */

void sl_http_module_init(sl_broker *b)
{
    sl_http *h = calloc(1, sizeof(*h));
    if (!h) {
        sl_broker_fail(b, "http: out of memory");
        return;
    }
    h->b = b;
    sl_conn_set_proto(b, SL_LISTENER_HTTP, &http_ops, h);
}

void sl_http_module_fini(sl_broker *b)
{
    sl_http *h = sl_conn_proto_arg(b, SL_LISTENER_HTTP, &http_ops);
    sl_conn_set_proto(b, SL_LISTENER_HTTP, NULL, NULL);
    free(h);
}
