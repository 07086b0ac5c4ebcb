/*
 * http_parse.c - the HTTP/1.x request head parser (http_parse.h).
 *
 * One pass over bytes the caller holds: find the end of the head (an
 * empty line), then check the request line and each header line in turn.
 * Nothing is copied; the request points into the caller's bytes. A
 * request line that is already complete and wrong is refused before the
 * rest of the head arrives, so a peer sending garbage is answered at once
 * rather than after 16 KiB.
 */
#include "broker/http_parse.h"

#include <string.h>
#include <strings.h>

/* RFC 9110 tchar */
static int is_tchar(unsigned char ch)
{
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
        (ch >= 'A' && ch <= 'Z'))
        return 1;
    return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static long fail(sl_http_req *r, int status, const char *why)
{
    r->status = status;
    r->error = why;
    return -1;
}

/* The end of the line starting at p (the LF), or NULL. */
static const char *eol(const char *p, const char *end)
{
    return memchr(p, '\n', (size_t)(end - p));
}

/* Line [p, lf) without its CR. */
static const char *trim_cr(const char *p, const char *lf)
{
    return lf > p && lf[-1] == '\r' ? lf - 1 : lf;
}

static int str_ieq(const char *p, size_t n, const char *w)
{
    return n == strlen(w) && strncasecmp(p, w, n) == 0;
}

/* "GET /path HTTP/1.1" in [p, e). 0 or -1 (r->status set). */
static int request_line(const char *p, const char *e, sl_http_req *r)
{
    static const struct {
        const char *name;
        enum sl_http_method m;
    } known[] = {{"GET", SL_HTTP_GET},
                 {"HEAD", SL_HTTP_HEAD},
                 {"POST", SL_HTTP_POST},
                 {"DELETE", SL_HTTP_DELETE}};
    const char *m = p, *t, *v;
    size_t mlen;

    while (p < e && is_tchar((unsigned char)*p))
        p++;
    mlen = (size_t)(p - m);
    if (mlen == 0 || p == e || *p != ' ')
        return (int)fail(r, 400,
                         "malformed request line (want METHOD "
                         "/path HTTP/1.1)");
    t = ++p;
    while (p < e && (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f)
        p++;
    if (p == t || p == e || *p != ' ')
        return (int)fail(r, 400,
                         "malformed request line (want METHOD "
                         "/path HTTP/1.1)");
    r->target.p = t;
    r->target.len = (size_t)(p - t);
    v = ++p;
    if (e - v != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' ||
        v[6] != '.' || v[7] < '0' || v[7] > '9')
        return (int)fail(r, 400,
                         "malformed request line (want METHOD "
                         "/path HTTP/1.1)");
    if (v[5] != '1' || v[7] > '1')
        return (int)fail(r, 505,
                         "HTTP version not supported (1.0 and 1.1 "
                         "are)");
    r->minor = v[7] - '0';
    if (*t != '/')
        return (int)fail(r, 400,
                         "request target must be a path starting "
                         "with /");
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (mlen == strlen(known[i].name) &&
            memcmp(m, known[i].name, mlen) == 0) {
            r->method = known[i].m;
            return 0;
        }
    return (int)fail(r, 501,
                     "method not implemented (GET, HEAD, POST and "
                     "DELETE are)");
}

/* The comma-separated tokens of a Connection header. */
static void connection_tokens(const char *p, size_t n, int *close_, int *keep)
{
    const char *e = p + n;
    while (p < e) {
        const char *s, *t;
        while (p < e && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        s = p;
        while (p < e && *p != ',')
            p++;
        t = p;
        while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if (str_ieq(s, (size_t)(t - s), "close"))
            *close_ = 1;
        else if (str_ieq(s, (size_t)(t - s), "keep-alive"))
            *keep = 1;
    }
}

/* One header line [p, e). 0 or -1. */
static int header_line(const char *p, const char *e, sl_http_req *r,
                       int *has_cl, int *close_, int *keep)
{
    const char *name = p, *v, *ve;
    size_t nlen;

    if (*p == ' ' || *p == '\t')
        return (int)fail(r, 400, "folded header lines are not supported");
    while (p < e && is_tchar((unsigned char)*p))
        p++;
    nlen = (size_t)(p - name);
    if (nlen == 0 || p == e || *p != ':')
        return (int)fail(r, 400,
                         "malformed header line (want Name: "
                         "value)");
    v = p + 1;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    ve = e;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
    for (const char *q = v; q < ve; q++)
        if (((unsigned char)*q < 0x20 && *q != '\t') ||
            (unsigned char)*q == 0x7f)
            return (int)fail(r, 400, "control character in a header value");
    if (str_ieq(name, nlen, "content-length")) {
        size_t n = 0;
        if (v == ve)
            return (int)fail(r, 400, "malformed Content-Length");
        for (const char *q = v; q < ve; q++) {
            if (*q < '0' || *q > '9')
                return (int)fail(r, 400, "malformed Content-Length");
            if (n > SL_HTTP_MAX_BODY)
                break;
            n = n * 10 + (size_t)(*q - '0');
        }
        if (n > SL_HTTP_MAX_BODY)
            return (int)fail(r, 413,
                             "request body too large (1 MiB at "
                             "most)");
        if (*has_cl && n != r->content_length)
            return (int)fail(r, 400, "conflicting Content-Length headers");
        *has_cl = 1;
        r->content_length = n;
    } else if (str_ieq(name, nlen, "transfer-encoding")) {
        return (int)fail(r, 501,
                         "Transfer-Encoding is not supported (send "
                         "the body with Content-Length)");
    } else if (str_ieq(name, nlen, "connection")) {
        connection_tokens(v, (size_t)(ve - v), close_, keep);
    } else if (str_ieq(name, nlen, "expect")) {
        if (str_ieq(v, (size_t)(ve - v), "100-continue"))
            r->expect_continue = 1;
    } else if (str_ieq(name, nlen, "authorization")) {
        r->authorization.p = v;
        r->authorization.len = (size_t)(ve - v);
    } else if (str_ieq(name, nlen, "content-type")) {
        r->content_type.p = v;
        r->content_type.len = (size_t)(ve - v);
    }
    return 0;
}

long sl_http_parse(const char *p, size_t len, sl_http_req *r)
{
    const char *start = p, *end, *lf, *q;
    size_t n = len < SL_HTTP_MAX_HEAD ? len : SL_HTTP_MAX_HEAD;
    int nh = 0, has_cl = 0, close_ = 0, keep = 0;

    memset(r, 0, sizeof(*r));
    end = p + n;
    /* empty lines before a request are skipped (RFC 9112 2.2: a client
     * may send one after a POST body) */
    while (p < end && (*p == '\r' || *p == '\n')) {
        if (*p == '\r' && p + 1 == end)
            return len >= SL_HTTP_MAX_HEAD
                       ? fail(r, 431,
                              "request head too large (16 KiB at "
                              "most)")
                       : 0; /* its LF is still coming */
        if (*p == '\r' && p[1] != '\n')
            break;
        p++;
    }
    if (p == end)
        return len >= SL_HTTP_MAX_HEAD
                   ? fail(r, 431, "request head too large (16 KiB at most)")
                   : 0;
    lf = eol(p, end);
    if (!lf) {
        if (len >= SL_HTTP_MAX_HEAD)
            return fail(r, 431, "request head too large (16 KiB at most)");
        /* a first line that cannot become a request line is refused
         * without waiting for the rest */
        for (q = p; q < end && is_tchar((unsigned char)*q); q++)
            ;
        if (q < end && *q != ' ')
            return fail(r, 400,
                        "malformed request line (want METHOD "
                        "/path HTTP/1.1)");
        return 0;
    }
    if (request_line(p, trim_cr(p, lf), r) != 0)
        return -1;
    p = lf + 1;
    for (;;) {
        const char *e;
        lf = eol(p, end);
        if (!lf)
            return len >= SL_HTTP_MAX_HEAD
                       ? fail(r, 431,
                              "request head too large (16 KiB at "
                              "most)")
                       : 0;
        e = trim_cr(p, lf);
        if (e == p)
            break; /* the empty line: end of the head */
        if (++nh > SL_HTTP_MAX_HEADERS)
            return fail(r, 431, "too many header lines (100 at most)");
        if (header_line(p, e, r, &has_cl, &close_, &keep) != 0)
            return -1;
        p = lf + 1;
    }
    r->head_len = (size_t)(lf + 1 - start);
    r->keep_alive = r->minor >= 1 ? !close_ : keep && !close_;
    return (long)r->head_len;
}
