/*
 * test_http_parse.c - the HTTP request head parser (broker/http_parse.c):
 * what it takes, and that every kind of bad input is refused with the
 * status and a message naming the problem, within its bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/http_parse.h"

static long parse(const char *s, sl_http_req *r)
{
    return sl_http_parse(s, strlen(s), r);
}

static int str_is(sl_http_str s, const char *w)
{
    return s.len == strlen(w) && memcmp(s.p, w, s.len) == 0;
}

static void test_get(void **state)
{
    sl_http_req r;
    const char in[] = "GET /api/topics?x=1 HTTP/1.1\r\nHost: a\r\n\r\nNEXT";
    (void)state;
    assert_int_equal(parse(in, &r), (long)strlen(in) - 4);
    assert_int_equal(r.method, SL_HTTP_GET);
    assert_true(str_is(r.target, "/api/topics?x=1"));
    assert_int_equal(r.minor, 1);
    assert_true(r.keep_alive);
    assert_int_equal(r.content_length, 0);
    assert_int_equal(r.authorization.len, 0);
}

static void test_post_headers(void **state)
{
    sl_http_req r;
    const char in[] = "POST /api/topics HTTP/1.1\n"
                      "content-LENGTH:  12 \n"
                      "Authorization: Basic YTpi\n"
                      "Connection: TE, close\n"
                      "Expect: 100-Continue\n"
                      "Content-Type: application/x-www-form-urlencoded\n\n";
    (void)state;
    assert_int_equal(parse(in, &r), (long)strlen(in));
    assert_int_equal(r.method, SL_HTTP_POST);
    assert_int_equal(r.content_length, 12);
    assert_true(str_is(r.authorization, "Basic YTpi"));
    assert_true(str_is(r.content_type, "application/x-www-form-urlencoded"));
    assert_false(r.keep_alive);
    assert_true(r.expect_continue);
}

static void test_http10_keep_alive(void **state)
{
    sl_http_req r;
    (void)state;
    assert_true(parse("HEAD / HTTP/1.0\r\n\r\n", &r) > 0);
    assert_int_equal(r.method, SL_HTTP_HEAD);
    assert_false(r.keep_alive);
    assert_true(
        parse("DELETE /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r) > 0);
    assert_int_equal(r.method, SL_HTTP_DELETE);
    assert_true(r.keep_alive);
}

/* Incomplete heads want more, at every cut; leading empty lines are
 * skipped. */
static void test_incremental(void **state)
{
    sl_http_req r;
    const char in[] = "\r\nGET /metrics HTTP/1.1\r\nA: b\r\n\r\n";
    size_t n = strlen(in);
    (void)state;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(sl_http_parse(in, i, &r), 0);
    assert_int_equal(sl_http_parse(in, n, &r), (long)n);
    assert_true(str_is(r.target, "/metrics"));
}

static void expect_refused(const char *in, size_t n, int status,
                           const char *words)
{
    sl_http_req r;
    assert_int_equal(sl_http_parse(in, n, &r), -1);
    assert_int_equal(r.status, status);
    assert_non_null(r.error);
    assert_non_null(strstr(r.error, words));
}

static void test_bad_input(void **state)
{
    static const struct {
        const char *in;
        int status;
        const char *words;
    } cases[] = {
        {"GET\r\n\r\n", 400, "malformed request line"},
        {"GET /x\r\n\r\n", 400, "malformed request line"},
        {"GET /x HTTP/1.1 extra\r\n\r\n", 400, "malformed request line"},
        {"GET /a b HTTP/1.1\r\n\r\n", 400, "malformed request line"},
        {"GET x HTTP/1.1\r\n\r\n", 400, "starting with /"},
        {"GET /x HTTP/2.0\r\n\r\n", 505, "version"},
        {"GET /x HTTP/1.2\r\n\r\n", 505, "version"},
        {"GET /x FTP/1.1\r\n\r\n", 400, "malformed request line"},
        {"PUT /x HTTP/1.1\r\n\r\n", 501, "method"},
        {"BREW /pot HTTP/1.1\r\n\r\n", 501, "method"},
        {"GET /x HTTP/1.1\r\nNo colon here\r\n\r\n", 400, "header line"},
        {"GET /x HTTP/1.1\r\n: empty name\r\n\r\n", 400, "header line"},
        {"GET /x HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400, "folded"},
        {"GET /x HTTP/1.1\r\nA: b\x01c\r\n\r\n", 400, "control character"},
        {"POST /x HTTP/1.1\r\nContent-Length: 12a\r\n\r\n", 400,
         "Content-Length"},
        {"POST /x HTTP/1.1\r\nContent-Length:\r\n\r\n", 400, "Content-Length"},
        {"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
         400, "conflicting"},
        {"POST /x HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n", 413, "1 MiB"},
        {"POST /x HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
         413, "1 MiB"},
        {"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501,
         "Content-Length"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_refused(cases[i].in, strlen(cases[i].in), cases[i].status,
                       cases[i].words);
    /* a NUL byte in the request line */
    expect_refused("GET /\0x HTTP/1.1\r\n\r\n", 20, 400,
                   "malformed request line");
}

/* Garbage is refused on its first line, without waiting for a head. */
static void test_garbage_refused_early(void **state)
{
    sl_http_req r;
    const char tls[] = "\x16\x03\x01\x02\x00\x01";
    (void)state;
    expect_refused(tls, sizeof(tls) - 1, 400, "malformed request line");
    expect_refused("CONNECT\naccept-version:1.2\n\n", 29, 400,
                   "malformed request line");
    /* but a method still being typed is not */
    assert_int_equal(parse("GE", &r), 0);
}

/* The bounds: 16 KiB of head, 100 header lines; exactly 1 MiB of body is
 * taken. */
static void test_bounds(void **state)
{
    sl_http_req r;
    size_t n = SL_HTTP_MAX_HEAD + 100;
    char *big = malloc(n + 1);
    char *p;
    (void)state;
    assert_non_null(big);
    /* no end of the head within 16 KiB */
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    memset(big + 19, 'a', n - 19);
    big[n] = 0;
    expect_refused(big, n, 431, "16 KiB");
    expect_refused(big, SL_HTTP_MAX_HEAD, 431, "16 KiB");
    assert_int_equal(sl_http_parse(big, SL_HTTP_MAX_HEAD - 1, &r), 0);
    /* one long request line */
    memcpy(big, "GET /", 5);
    memset(big + 5, 'a', n - 5);
    expect_refused(big, n, 431, "16 KiB");
    /* 101 header lines */
    p = big;
    p += sprintf(p, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 101; i++)
        p += sprintf(p, "H%d: v\r\n", i);
    p += sprintf(p, "\r\n");
    expect_refused(big, (size_t)(p - big), 431, "too many header lines");
    assert_int_equal(
        parse("POST /x HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n", &r) > 0,
        1);
    assert_int_equal(r.content_length, SL_HTTP_MAX_BODY);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get),
        cmocka_unit_test(test_post_headers),
        cmocka_unit_test(test_http10_keep_alive),
        cmocka_unit_test(test_incremental),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_garbage_refused_early),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
