/*
 * http_parse.h - the HTTP/1.x request head parser of the HTTP adapter
 * (broker/http.c). Pure: bytes in, a request or an error out; no
 * libevent, no allocation, so the unit tests and the fuzz target call it
 * as the adapter does.
 *
 * What it takes (RFC 9112, the part a management API needs): a request
 * line "METHOD SP target SP HTTP/1.x", header lines "Name: value" ended by
 * CRLF (a bare LF is taken too, as evhttp and most servers do), an empty
 * line. Bounds: the whole head at most SL_HTTP_MAX_HEAD bytes,
 * SL_HTTP_MAX_HEADERS header lines, a body of at most SL_HTTP_MAX_BODY
 * bytes announced by Content-Length. Refused, each with a status and a
 * message naming the problem: a malformed line or header (400), a head
 * too large (431), a body too large (413), Transfer-Encoding (501: send
 * Content-Length), a method other than GET, HEAD, POST, DELETE (501), a
 * version other than 1.0 and 1.1 (505).
 */
#ifndef SL_HTTP_PARSE_H
#define SL_HTTP_PARSE_H

#include <stddef.h>

#define SL_HTTP_MAX_HEAD 16384
#define SL_HTTP_MAX_HEADERS 100
#define SL_HTTP_MAX_BODY (1u << 20)

enum sl_http_method {
    SL_HTTP_GET = 1,
    SL_HTTP_HEAD,
    SL_HTTP_POST,
    SL_HTTP_DELETE,
};

typedef struct sl_http_str {
    const char *p; /* into the parsed bytes; not NUL-terminated */
    size_t len;
} sl_http_str;

typedef struct sl_http_req {
    enum sl_http_method method;
    sl_http_str target; /* "/api/topics?x=1" as sent */
    int minor;          /* HTTP/1.minor */
    size_t head_len;    /* bytes of request line and headers, with the
                           empty line */
    size_t content_length;
    int keep_alive;            /* 1.1 unless "Connection: close"; 1.0 only with
                                  "Connection: keep-alive" */
    int expect_continue;       /* "Expect: 100-continue" */
    sl_http_str authorization; /* len 0 when absent */
    sl_http_str content_type;
    /* on error: the status to answer and what was wrong */
    int status;
    const char *error;
} sl_http_req;

/*
 * Parse the request head at the start of p[0..len). Returns the head's
 * length (> 0) with *r filled, 0 when more bytes are needed (the head is
 * not complete and still within bounds), or -1 with r->status and
 * r->error set. The body (r->content_length bytes) follows the head.
 */
long sl_http_parse(const char *p, size_t len, sl_http_req *r);

#endif
