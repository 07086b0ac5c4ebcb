/*
 * fuzz_http.c - the HTTP request head parser (broker/http_parse.c) as
 * broker/http.c feeds it: the whole input as bytes received so far, then
 * every prefix the first byte picks as an earlier read. The parser's
 * promises are checked: it reads only the bytes given, a head length is
 * within them and within SL_HTTP_MAX_HEAD, a refusal has a status and a
 * message, a body is within SL_HTTP_MAX_BODY, and pointers it hands back
 * lie inside the input.
 */
#include "tests/fuzz/fuzz_common.h"

#include "broker/http_parse.h"

static void inside(const uint8_t *data, size_t size, sl_http_str s)
{
    if (!s.len)
        return;
    if ((const uint8_t *)s.p < data ||
        (const uint8_t *)s.p + s.len > data + size)
        abort();
    fz_touch(s.p, s.len);
}

static void one(const uint8_t *data, size_t size)
{
    sl_http_req r;
    long rc;
    /* a copy of exactly size bytes: ASan sees a read past the end */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return;
    memcpy(copy, data, size);
    rc = sl_http_parse((const char *)copy, size, &r);
    if (rc < 0) {
        if (r.status < 400 || r.status > 599 || !r.error)
            abort();
        fz_touch(r.error, strlen(r.error));
    } else if (rc > 0) {
        if ((size_t)rc > size || (size_t)rc > SL_HTTP_MAX_HEAD ||
            (size_t)rc != r.head_len || r.content_length > SL_HTTP_MAX_BODY ||
            !r.target.len || r.target.p[0] != '/')
            abort();
        inside(copy, size, r.target);
        inside(copy, size, r.authorization);
        inside(copy, size, r.content_type);
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cut;
    if (size < 1)
        return 0;
    cut = data[0];
    data++;
    size--;
    one(data, size);
    if (cut < size)
        one(data, cut);
    return 0;
}
