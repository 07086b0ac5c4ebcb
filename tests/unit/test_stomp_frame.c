/*
 * test_stomp_frame.c - STOMP frame parser and encoder edge cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/stomp_frame.h"

/* Feed all of s (n bytes) at once; expect exactly one frame using all of
 * it. */
static void parse_one(sl_stomp_parser *p, const char *s, size_t n,
                      sl_stomp_frame *f)
{
    size_t used = 0;
    int rc = sl_stomp_parse(p, (const uint8_t *)s, n, &used, f);
    assert_int_equal(rc, SL_STOMP_FRAME);
    assert_int_equal(used, n);
}

static void test_simple_send(void **state)
{
    sl_stomp_parser p;
    sl_stomp_frame f;
    const char in[] = "SEND\ndestination:/queue/a\nreceipt:7\n\nhello";
    sl_stomp_parser_init(&p, NULL);
    parse_one(&p, in, sizeof(in), &f); /* sizeof includes the NUL */
    assert_int_equal(f.cmd, SL_STOMP_SEND);
    assert_int_equal(f.header_count, 2);
    assert_string_equal(f.headers[0].name, "destination");
    assert_string_equal(f.headers[0].value, "/queue/a");
    assert_string_equal(sl_stomp_frame_value(&f, "receipt"), "7");
    assert_null(sl_stomp_frame_value(&f, "nope"));
    assert_int_equal(f.body_len, 5);
    assert_memory_equal(f.body, "hello", 5);
    assert_int_equal(f.body[5], 0);
    assert_false(f.has_content_length);
    sl_stomp_parser_fini(&p);
}

/* Feeding one byte at a time gives the same frames. */
static void test_byte_by_byte(void **state)
{
    sl_stomp_parser p;
    sl_stomp_frame f;
    const char in[] = "\n\r\nSEND\r\ndestination:/topic/x\r\n"
                      "content-length:3\r\n\r\na\0b\0\n\n"
                      "ACK\nid:9\n\n\0";
    size_t i, used, frames = 0;
    sl_stomp_parser_init(&p, NULL);
    for (i = 0; i < sizeof(in) - 1; i++) {
        int rc = sl_stomp_parse(&p, (const uint8_t *)in + i, 1, &used, &f);
        assert_int_equal(used, 1);
        if (rc == SL_STOMP_NEED_MORE)
            continue;
        assert_int_equal(rc, SL_STOMP_FRAME);
        frames++;
        if (frames == 1) {
            assert_int_equal(f.cmd, SL_STOMP_SEND);
            assert_string_equal(sl_stomp_frame_value(&f, "destination"),
                                "/topic/x");
            assert_int_equal(f.body_len, 3);
            assert_memory_equal(f.body, "a\0b", 3);
            assert_true(f.has_content_length);
        } else {
            assert_int_equal(f.cmd, SL_STOMP_ACK);
            assert_string_equal(sl_stomp_frame_value(&f, "id"), "9");
            assert_int_equal(f.body_len, 0);
        }
    }
    assert_int_equal(frames, 2);
    sl_stomp_parser_fini(&p);
}

/* Several frames in one buffer: each call returns one and says how much
 * it used. */
static void test_pipelined(void **state)
{
    sl_stomp_parser p;
    sl_stomp_frame f;
    const char in[] = "BEGIN\ntransaction:t1\n\n\0\n"
                      "COMMIT\ntransaction:t1\n\n\0"
                      "DISCONNECT\nreceipt:r\n\n\0";
    const uint8_t *d = (const uint8_t *)in;
    size_t left = sizeof(in) - 1, used;
    int cmds[3], n = 0;
    sl_stomp_parser_init(&p, NULL);
    while (left) {
        int rc = sl_stomp_parse(&p, d, left, &used, &f);
        d += used;
        left -= used;
        if (rc == SL_STOMP_NEED_MORE)
            break;
        assert_int_equal(rc, SL_STOMP_FRAME);
        assert_true(n < 3);
        cmds[n++] = f.cmd;
    }
    assert_int_equal(n, 3);
    assert_int_equal(cmds[0], SL_STOMP_BEGIN);
    assert_int_equal(cmds[1], SL_STOMP_COMMIT);
    assert_int_equal(cmds[2], SL_STOMP_DISCONNECT);
    sl_stomp_parser_fini(&p);
}

static void test_content_length_nuls(void **state)
{
    sl_stomp_parser p;
    sl_stomp_frame f;
    const char in[] = "SEND\ncontent-length:6\ndestination:/queue/b\n\n"
                      "\0\0x\0\0y";
    sl_stomp_parser_init(&p, NULL);
    parse_one(&p, in, sizeof(in), &f);
    assert_int_equal(f.body_len, 6);
    assert_memory_equal(f.body, "\0\0x\0\0y", 6);
    sl_stomp_parser_fini(&p);
}

static void test_content_length_zero(void **state)
{
    sl_stomp_parser p;
    sl_stomp_frame f;
    const char in[] = "SEND\ncontent-length:0\n\n";
    sl_stomp_parser_init(&p, NULL);
    parse_one(&p, in, sizeof(in), &f);
    assert_int_equal(f.body_len, 0);
    assert_true(f.has_content_length);
    sl_stomp_parser_fini(&p);
}

static void expect_error(const char *in, size_t n, int version, int perr,
                         const char *needle)
{
    sl_stomp_parser p;
    sl_stomp_frame f;
    size_t used;
    int rc;
    sl_stomp_parser_init(&p, NULL);
    sl_stomp_parser_set_version(&p, version);
    rc = sl_stomp_parse(&p, (const uint8_t *)in, n, &used, &f);
    assert_int_equal(rc, SL_STOMP_PERROR);
    assert_int_equal(p.perr, perr);
    if (!strstr(p.errstr, needle))
        fail_msg("error '%s' lacks '%s'", p.errstr, needle);
    /* sticky */
    rc = sl_stomp_parse(&p, (const uint8_t *)"\n", 1, &used, &f);
    assert_int_equal(rc, SL_STOMP_PERROR);
    assert_int_equal(used, 0);
    sl_stomp_parser_fini(&p);
}

static void test_content_length_no_nul(void **state)
{
    const char in[] = "SEND\ncontent-length:2\n\nabc";
    expect_error(in, sizeof(in), SL_STOMP_V12, SL_STOMP_PERR_MALFORMED,
                 "not terminated by a NUL after its content-length of 2");
}

static void test_content_length_invalid(void **state)
{
    const char in1[] = "SEND\ncontent-length:12a\n\nabc";
    const char in2[] = "SEND\ncontent-length:-1\n\nabc";
    const char in3[] = "SEND\ncontent-length:\n\nabc";
    expect_error(in1, sizeof(in1), SL_STOMP_V12, SL_STOMP_PERR_MALFORMED,
                 "invalid content-length '12a'");
    expect_error(in2, sizeof(in2), SL_STOMP_V12, SL_STOMP_PERR_MALFORMED,
                 "invalid content-length");
    expect_error(in3, sizeof(in3), SL_STOMP_V12, SL_STOMP_PERR_MALFORMED,
                 "invalid content-length");
}

static void test_escapes_12(void **state)
{
    sl_stomp_parser p;
    sl_stomp_frame f;
    const char in[] = "MESSAGE\na\\cb:x\\ny\\\\z\\r\\c\n\n";
    sl_stomp_parser_init(&p, NULL);
    sl_stomp_parser_set_version(&p, SL_STOMP_V12);
    parse_one(&p, in, sizeof(in), &f);
    assert_int_equal(f.header_count, 1);
    assert_string_equal(f.headers[0].name, "a:b");
    assert_int_equal(f.headers[0].value_len, 7);
    assert_string_equal(f.headers[0].value, "x\ny\\z\r:");
    sl_stomp_parser_fini(&p);
}

static void test_escapes_11_no_cr(void **state)
{
    const char in[] = "SEND\nx:a\\rb\n\n";
    expect_error(in, sizeof(in), SL_STOMP_V11, SL_STOMP_PERR_MALFORMED,
                 "invalid escape sequence '\\r'");
}

static void test_escape_undefined(void **state)
{
    const char in[] = "SEND\nx:a\\tb\n\n";
    const char in2[] = "SEND\nx:ab\\\n\n";
    expect_error(in, sizeof(in), SL_STOMP_V12, SL_STOMP_PERR_MALFORMED,
                 "invalid escape sequence '\\t'");
    expect_error(in2, sizeof(in2), SL_STOMP_V12, SL_STOMP_PERR_MALFORMED,
                 "ends with a backslash");
}

/* STOMP 1.1/1.2 headers must be UTF-8 (issue 18, finding 13): invalid
 * sequences, overlong forms, surrogates, truncated sequences are refused,
 * naming the header and the byte; valid multi-byte text passes; 1.0 is
 * left alone. */
static void test_utf8_headers(void **state)
{
    static const char *const bad[] = {
        "SEND\nx:a\xff"
        "b\n\n",                        /* never valid */
        "SEND\nx:\xc0\xafz\n\n",        /* overlong '/' */
        "SEND\nx:\xed\xa0\x80\n\n",     /* surrogate U+D800 */
        "SEND\nx:\xe2\x82\n\n",         /* truncated */
        "SEND\nx:\xf4\x90\x80\x80\n\n", /* past U+10FFFF */
        "SEND\nk\x80:v\n\n",            /* in a name */
    };
    sl_stomp_parser p;
    sl_stomp_frame f;
    const char ok[] = "SEND\nx:caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\n\n";
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_error(bad[i], strlen(bad[i]) + 1, SL_STOMP_V12,
                     SL_STOMP_PERR_MALFORMED, "is not valid UTF-8");
        expect_error(bad[i], strlen(bad[i]) + 1, SL_STOMP_V11,
                     SL_STOMP_PERR_MALFORMED,
                     "STOMP 1.1 headers must be UTF-8");
    }
    expect_error(bad[0], strlen(bad[0]) + 1, SL_STOMP_V12,
                 SL_STOMP_PERR_MALFORMED,
                 "header value 'a\\xffb' is not valid UTF-8 (byte 0xff at 1)");
    sl_stomp_parser_init(&p, NULL);
    sl_stomp_parser_set_version(&p, SL_STOMP_V12);
    parse_one(&p, ok, sizeof(ok), &f);
    assert_string_equal(f.headers[0].value,
                        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    sl_stomp_parser_fini(&p);
    sl_stomp_parser_init(&p, NULL); /* 1.0: bytes as they come */
    parse_one(&p, bad[0], strlen(bad[0]) + 1, &f);
    assert_int_equal(f.headers[0].value_len, 3);
    sl_stomp_parser_fini(&p);
}

/* 1.0 frames and CONNECT frames are never unescaped. */
static void test_no_escapes_10_and_connect(void **state)
{
    sl_stomp_parser p;
    sl_stomp_frame f;
    const char in1[] = "SEND\nx:a\\tb:c\n\n";
    const char in2[] = "CONNECT\npasscode:p\\c\\w\n\n";
    sl_stomp_parser_init(&p, NULL);
    parse_one(&p, in1, sizeof(in1), &f);
    assert_string_equal(sl_stomp_frame_value(&f, "x"), "a\\tb:c");
    sl_stomp_parser_set_version(&p, SL_STOMP_V12);
    parse_one(&p, in2, sizeof(in2), &f);
    assert_string_equal(sl_stomp_frame_value(&f, "passcode"), "p\\c\\w");
    sl_stomp_parser_fini(&p);
}

static void test_repeated_first_wins(void **state)
{
    sl_stomp_parser p;
    sl_stomp_frame f;
    const char in[] = "SEND\nfoo:1\nfoo:2\nbar:\n\n";
    sl_stomp_parser_init(&p, NULL);
    parse_one(&p, in, sizeof(in), &f);
    assert_int_equal(f.header_count, 3);
    assert_string_equal(sl_stomp_frame_value(&f, "foo"), "1");
    assert_string_equal(sl_stomp_frame_value(&f, "bar"), "");
    sl_stomp_parser_fini(&p);
}

static void test_crlf(void **state)
{
    sl_stomp_parser p;
    sl_stomp_frame f;
    const char in[] = "SEND\r\ndestination:/queue/c\r\n\r\nbody\0\r\n";
    size_t used;
    sl_stomp_parser_init(&p, NULL);
    assert_int_equal(
        sl_stomp_parse(&p, (const uint8_t *)in, sizeof(in) - 1, &used, &f),
        SL_STOMP_FRAME);
    assert_int_equal(used, sizeof(in) - 3);
    assert_string_equal(sl_stomp_frame_value(&f, "destination"), "/queue/c");
    assert_int_equal(f.body_len, 4);
    /* the trailing EOL is eaten as a heart-beat */
    assert_int_equal(
        sl_stomp_parse(&p, (const uint8_t *)in + used, 2, &used, &f),
        SL_STOMP_NEED_MORE);
    assert_int_equal(used, 2);
    sl_stomp_parser_fini(&p);
}

static void test_unknown_command(void **state)
{
    const char in[] = "FROB\n\n";
    expect_error(in, sizeof(in), SL_STOMP_V12, SL_STOMP_PERR_UNKNOWN_COMMAND,
                 "unknown command 'FROB'");
}

/* The command is recognised as soon as its line ends. */
static void test_unknown_command_at_once(void **state)
{
    sl_stomp_parser p;
    sl_stomp_frame f;
    size_t used;
    sl_stomp_parser_init(&p, NULL);
    assert_int_equal(
        sl_stomp_parse(&p, (const uint8_t *)"send\n", 5, &used, &f),
        SL_STOMP_PERROR);
    assert_int_equal(p.perr, SL_STOMP_PERR_UNKNOWN_COMMAND);
    sl_stomp_parser_fini(&p);
}

static void test_malformed_header(void **state)
{
    const char in[] = "SEND\nnocolon\n\n";
    const char in2[] = "SEND\nx:a\0b\n\n";
    expect_error(in, sizeof(in), SL_STOMP_V12, SL_STOMP_PERR_MALFORMED,
                 "no ':'): 'nocolon'");
    expect_error(in2, sizeof(in2), SL_STOMP_V12, SL_STOMP_PERR_MALFORMED,
                 "NUL byte");
}

/* Header values may contain ':' (the name ends at the first one). */
static void test_value_with_colon(void **state)
{
    sl_stomp_parser p;
    sl_stomp_frame f;
    const char in[] = "SEND\nreply-to:a:b:c\n:empty-name\n\n";
    sl_stomp_parser_init(&p, NULL);
    parse_one(&p, in, sizeof(in), &f);
    assert_string_equal(sl_stomp_frame_value(&f, "reply-to"), "a:b:c");
    assert_string_equal(sl_stomp_frame_value(&f, ""), "empty-name");
    sl_stomp_parser_fini(&p);
}

static sl_stomp_limits small_limits(void)
{
    sl_stomp_limits l;
    l.max_frame = 100;
    l.max_headers = 3;
    l.max_header_len = 20;
    return l;
}

/* A declared body over the limit fails at the blank line, before any of
 * the body arrives. */
static void test_limit_content_length(void **state)
{
    sl_stomp_limits l = small_limits();
    sl_stomp_parser p;
    sl_stomp_frame f;
    size_t used;
    const char in[] = "SEND\ncontent-length:95\n\n";
    sl_stomp_parser_init(&p, &l);
    assert_int_equal(
        sl_stomp_parse(&p, (const uint8_t *)in, sizeof(in) - 1, &used, &f),
        SL_STOMP_PERROR);
    assert_int_equal(p.perr, SL_STOMP_PERR_FRAME_TOO_LARGE);
    assert_non_null(strstr(p.errstr, "size limit of 100 bytes"));
    assert_non_null(strstr(p.errstr, "stomp-max-frame"));
    sl_stomp_parser_fini(&p);
}

/* Without content-length the limit trips while the body streams in. */
static void test_limit_streaming_body(void **state)
{
    sl_stomp_limits l = small_limits();
    sl_stomp_parser p;
    sl_stomp_frame f;
    size_t used, fed = 0;
    char chunk[10];
    int rc = SL_STOMP_NEED_MORE;
    memset(chunk, 'x', sizeof(chunk));
    sl_stomp_parser_init(&p, &l);
    rc = sl_stomp_parse(&p, (const uint8_t *)"SEND\n\n", 6, &used, &f);
    assert_int_equal(rc, SL_STOMP_NEED_MORE);
    while (rc == SL_STOMP_NEED_MORE && fed < 1000) {
        rc = sl_stomp_parse(&p, (const uint8_t *)chunk, sizeof(chunk), &used,
                            &f);
        fed += sizeof(chunk);
    }
    assert_int_equal(rc, SL_STOMP_PERROR);
    assert_int_equal(p.perr, SL_STOMP_PERR_FRAME_TOO_LARGE);
    assert_true(fed <= 100);
    sl_stomp_parser_fini(&p);
}

/* The frame that fits exactly is accepted. */
static void test_limit_exact_fit(void **state)
{
    sl_stomp_limits l = small_limits();
    sl_stomp_parser p;
    sl_stomp_frame f;
    char in[100];
    size_t used;
    memcpy(in, "SEND\n\n", 6);
    memset(in + 6, 'y', 93);
    in[99] = 0;
    sl_stomp_parser_init(&p, &l);
    assert_int_equal(
        sl_stomp_parse(&p, (const uint8_t *)in, sizeof(in), &used, &f),
        SL_STOMP_FRAME);
    assert_int_equal(f.body_len, 93);
    sl_stomp_parser_fini(&p);
}

static void test_limit_header_count(void **state)
{
    sl_stomp_limits l = small_limits();
    sl_stomp_parser p;
    sl_stomp_frame f;
    size_t used;
    /* no blank line yet: the 4th header alone must trip it */
    const char in[] = "SEND\na:1\nb:2\nc:3\nd:4\n";
    sl_stomp_parser_init(&p, &l);
    assert_int_equal(
        sl_stomp_parse(&p, (const uint8_t *)in, sizeof(in) - 1, &used, &f),
        SL_STOMP_PERROR);
    assert_int_equal(p.perr, SL_STOMP_PERR_TOO_MANY_HEADERS);
    assert_non_null(strstr(p.errstr, "limit of 3 (stomp-max-headers)"));
    sl_stomp_parser_fini(&p);
}

static void test_limit_header_len(void **state)
{
    sl_stomp_limits l = small_limits();
    sl_stomp_parser p;
    sl_stomp_frame f;
    size_t used;
    /* no LF yet: the long line alone must trip it */
    const char in[] = "SEND\nxxxxxxxxxx:yyyyyyyyyyyyyyyyyyyyyyyy";
    sl_stomp_parser_init(&p, &l);
    assert_int_equal(
        sl_stomp_parse(&p, (const uint8_t *)in, sizeof(in) - 1, &used, &f),
        SL_STOMP_PERROR);
    assert_int_equal(p.perr, SL_STOMP_PERR_HEADER_TOO_LONG);
    assert_non_null(strstr(p.errstr, "stomp-max-header-length"));
    sl_stomp_parser_fini(&p);
}

/* A line of exactly the limit, with CR LF, passes; one more byte fails. */
static void test_limit_header_len_crlf(void **state)
{
    sl_stomp_limits l = small_limits();
    sl_stomp_parser p;
    sl_stomp_frame f;
    size_t used;
    const char ok[] = "SEND\r\naaaaaaaaa:bbbbbbbbbb\r\n\r\n"; /* 20 */
    const char bad[] = "SEND\r\naaaaaaaaa:bbbbbbbbbbb\r\n\r\n";
    sl_stomp_parser_init(&p, &l);
    parse_one(&p, ok, sizeof(ok), &f);
    assert_int_equal(f.headers[0].value_len, 10);
    sl_stomp_parser_fini(&p);
    sl_stomp_parser_init(&p, &l);
    assert_int_equal(
        sl_stomp_parse(&p, (const uint8_t *)bad, sizeof(bad), &used, &f),
        SL_STOMP_PERROR);
    assert_int_equal(p.perr, SL_STOMP_PERR_HEADER_TOO_LONG);
    sl_stomp_parser_fini(&p);
}

static void test_cmd_names(void **state)
{
    int i;
    for (i = SL_STOMP_CMD_NONE + 1; i < SL_STOMP_CMD__END; i++) {
        const char *n = sl_stomp_cmd_name(i);
        assert_non_null(n);
        assert_int_equal(sl_stomp_cmd_parse(n, strlen(n)), i);
    }
    assert_null(sl_stomp_cmd_name(0));
    assert_null(sl_stomp_cmd_name(SL_STOMP_CMD__END));
    assert_int_equal(sl_stomp_cmd_parse("SENDX", 5), SL_STOMP_CMD_NONE);
}

/* Encode -> parse gives back the same names and values in every
 * version; escaping is visible on the wire only where it is due. */
static void test_encode_roundtrip(void **state)
{
    static const int vers[] = {SL_STOMP_V11, SL_STOMP_V12};
    const char val[] = "a:b\nc\\d";
    size_t k;
    for (k = 0; k < 2; k++) {
        sl_wb wb;
        sl_stomp_enc e;
        sl_stomp_parser p;
        sl_stomp_frame f;
        sl_wb_init(&wb, 64);
        sl_stomp_enc_begin(&e, &wb, vers[k], SL_STOMP_MESSAGE);
        sl_stomp_enc_header_s(&e, "we:ird", val);
        sl_stomp_enc_header_u(&e, "content-length", 3);
        sl_stomp_enc_end(&e, "\0z\0", 3);
        assert_int_equal(wb.err, SL_OK);
        assert_null(memmem(wb.p, wb.len, "we:ird", 6));
        sl_stomp_parser_init(&p, NULL);
        sl_stomp_parser_set_version(&p, vers[k]);
        parse_one(&p, (const char *)wb.p, wb.len, &f);
        assert_int_equal(f.cmd, SL_STOMP_MESSAGE);
        assert_string_equal(f.headers[0].name, "we:ird");
        assert_string_equal(f.headers[0].value, val);
        assert_int_equal(f.body_len, 3);
        assert_memory_equal(f.body, "\0z\0", 3);
        sl_stomp_parser_fini(&p);
        sl_wb_fini(&wb);
    }
}

static void test_encode_cr(void **state)
{
    sl_wb wb;
    sl_stomp_enc e;
    const char want12[] = "RECEIPT\nx:a\\rb\n\n";
    const char want11[] = "RECEIPT\nx:a b\n\n";
    sl_wb_init(&wb, 64);
    sl_stomp_enc_begin(&e, &wb, SL_STOMP_V12, SL_STOMP_RECEIPT);
    sl_stomp_enc_header_s(&e, "x", "a\rb");
    sl_stomp_enc_end(&e, NULL, 0);
    assert_int_equal(wb.len, sizeof(want12));
    assert_memory_equal(wb.p, want12, sizeof(want12));
    sl_wb_reset(&wb);
    sl_stomp_enc_begin(&e, &wb, SL_STOMP_V11, SL_STOMP_RECEIPT);
    sl_stomp_enc_header_s(&e, "x", "a\rb");
    sl_stomp_enc_end(&e, NULL, 0);
    assert_int_equal(wb.len, sizeof(want11));
    assert_memory_equal(wb.p, want11, sizeof(want11));
    sl_wb_fini(&wb);
}

static void test_encode_no_escape_connected_and_10(void **state)
{
    sl_wb wb;
    sl_stomp_enc e;
    const char want_c[] = "CONNECTED\nserver:a:b\n\n";
    const char want_10[] = "MESSAGE\nn_m:x y\n\nB";
    sl_wb_init(&wb, 64);
    sl_stomp_enc_begin(&e, &wb, SL_STOMP_V12, SL_STOMP_CONNECTED);
    sl_stomp_enc_header_s(&e, "server", "a:b");
    sl_stomp_enc_end(&e, NULL, 0);
    assert_memory_equal(wb.p, want_c, sizeof(want_c));
    sl_wb_reset(&wb);
    sl_stomp_enc_begin(&e, &wb, SL_STOMP_V10, SL_STOMP_MESSAGE);
    sl_stomp_enc_header_s(&e, "n:m", "x\ny");
    sl_stomp_enc_end(&e, "B", 1);
    assert_int_equal(wb.len, sizeof(want_10));
    assert_memory_equal(wb.p, want_10, sizeof(want_10));
    sl_wb_fini(&wb);
}

/* Random chunking of a long stream gives the same frames as one feed. */
static void test_random_chunks(void **state)
{
    sl_wb wb;
    sl_stomp_enc e;
    sl_stomp_parser p;
    sl_stomp_frame f;
    int i, got = 0;
    size_t off = 0;
    unsigned seed = 12345;
    sl_wb_init(&wb, 4096);
    for (i = 0; i < 200; i++) {
        char body[64];
        int bl = i % 50;
        memset(body, 'a' + i % 26, (size_t)bl);
        sl_stomp_enc_begin(&e, &wb, SL_STOMP_V12, SL_STOMP_SEND);
        sl_stomp_enc_header_u(&e, "seq", (uint64_t)i);
        if (i % 2)
            sl_stomp_enc_header_u(&e, "content-length", (uint64_t)bl);
        sl_stomp_enc_end(&e, body, (size_t)bl);
        if (i % 3 == 0)
            sl_wb_put(&wb, "\r\n\n", 3);
    }
    sl_stomp_parser_init(&p, NULL);
    sl_stomp_parser_set_version(&p, SL_STOMP_V12);
    while (off < wb.len) {
        size_t n, used;
        int rc;
        seed = seed * 1103515245u + 12345u;
        n = 1 + (seed >> 16) % 97;
        if (n > wb.len - off)
            n = wb.len - off;
        for (;;) {
            rc = sl_stomp_parse(&p, wb.p + off, n, &used, &f);
            assert_true(rc != SL_STOMP_PERROR);
            off += used;
            n -= used;
            if (rc == SL_STOMP_NEED_MORE)
                break;
            {
                char want[24];
                snprintf(want, sizeof(want), "%d", got);
                assert_string_equal(sl_stomp_frame_value(&f, "seq"), want);
                assert_int_equal(f.body_len, (size_t)(got % 50));
            }
            got++;
        }
    }
    assert_int_equal(got, 200);
    sl_stomp_parser_fini(&p);
    sl_wb_fini(&wb);
}

/* Random bytes (biased towards STOMP syntax) in random chunks never crash
 * the parser, and every frame it returns is well formed. Run under ASan. */
static void test_fuzz(void **state)
{
    static const char alphabet[] = "SENDCOMITACKBGUSRPHE:\\\n\r\0abc";
    unsigned seed = 777;
    int round;
    for (round = 0; round < 3000; round++) {
        sl_stomp_limits l = {512, 8, 64};
        sl_stomp_parser p;
        uint8_t buf[700];
        size_t n, off = 0, i;
        seed = seed * 1103515245u + 12345u;
        n = 1 + (seed >> 8) % sizeof(buf);
        for (i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            buf[i] =
                (seed >> 20) % 4 == 0
                    ? (uint8_t)(seed >> 12)
                    : (uint8_t)alphabet[(seed >> 12) % (sizeof(alphabet) - 1)];
        }
        if (round % 2 == 0 && n > 6)
            memcpy(buf, "SEND\n", 5);
        sl_stomp_parser_init(&p, &l);
        sl_stomp_parser_set_version(&p, 10 + round % 3);
        while (off < n) {
            sl_stomp_frame f;
            size_t used = 0, chunk;
            int rc;
            seed = seed * 1103515245u + 12345u;
            chunk = 1 + (seed >> 16) % 40;
            if (chunk > n - off)
                chunk = n - off;
            rc = sl_stomp_parse(&p, buf + off, chunk, &used, &f);
            assert_true(used <= chunk);
            off += used;
            if (rc == SL_STOMP_PERROR) {
                assert_true(p.errstr[0] != 0);
                break;
            }
            if (rc == SL_STOMP_FRAME) {
                uint32_t h;
                assert_true(f.cmd > SL_STOMP_CMD_NONE &&
                            f.cmd < SL_STOMP_CMD__END);
                assert_true(f.header_count <= l.max_headers);
                assert_true(f.body_len < l.max_frame);
                assert_int_equal(f.body[f.body_len], 0);
                for (h = 0; h < f.header_count; h++) {
                    assert_int_equal(f.headers[h].name[f.headers[h].name_len],
                                     0);
                    assert_int_equal(f.headers[h].value[f.headers[h].value_len],
                                     0);
                }
            } else {
                assert_int_equal(used, chunk);
            }
        }
        sl_stomp_parser_fini(&p);
    }
}

/* One parse of in[0..n) fed in chunks of `chunk` bytes: the frames (as
 * text: command, headers, body) and the error, into out. */
static void parse_dump(const uint8_t *in, size_t n, size_t chunk,
                       const sl_stomp_limits *l, int version, int no_whole,
                       char *out, size_t outsz)
{
    sl_stomp_parser p;
    size_t off = 0, o = 0;
    sl_stomp_parser_init(&p, l);
    p.no_whole = no_whole;
    sl_stomp_parser_set_version(&p, version);
    out[0] = 0;
    while (off < n) {
        sl_stomp_frame f;
        size_t used = 0, c = chunk < n - off ? chunk : n - off;
        int rc = sl_stomp_parse(&p, in + off, c, &used, &f);
        uint32_t h;
        off += used;
        if (rc == SL_STOMP_PERROR) {
            o += (size_t)snprintf(out + o, outsz - o, "ERR %s @%zu", p.errstr,
                                  off);
            break;
        }
        if (rc != SL_STOMP_FRAME)
            continue;
        o += (size_t)snprintf(out + o, outsz - o, "[%s",
                              sl_stomp_cmd_name(f.cmd));
        for (h = 0; h < f.header_count && o < outsz; h++)
            o +=
                (size_t)snprintf(out + o, outsz - o, "|%s=%s(%zu,%zu)",
                                 f.headers[h].name, f.headers[h].value,
                                 f.headers[h].name_len, f.headers[h].value_len);
        if (o < outsz)
            o += (size_t)snprintf(out + o, outsz - o,
                                  "|cl%d|%zu:", f.has_content_length,
                                  f.body_len);
        if (o + f.body_len + 2 < outsz) {
            memcpy(out + o, f.body, f.body_len);
            o += f.body_len;
            out[o++] = ']';
            out[o] = 0;
        }
        assert_true(o < outsz);
    }
    sl_stomp_parser_fini(&p);
}

/* The whole-frame path changes nothing the state machine would say: the
 * same bytes in the same chunks (all at once, and in 7-byte pieces) give
 * the same frames, values and errors with it and without it, over
 * random frames near the plain form (CRs, escapes, UTF-8, lines without
 * ':', limits, bad content-lengths). */
static void test_whole_frame_as_bytewise(void **state)
{
#define P(x)                                                                   \
    {                                                                          \
        x, sizeof(x) - 1                                                       \
    }
    static const struct {
        const char *s;
        size_t n;
    } parts[] = {P("ACK\n"),
                 P("SEND\n"),
                 P("MESSAGE\n"),
                 P("CONNECT\n"),
                 P("NOPE\n"),
                 P("id:1\n"),
                 P("id:q/0/12#0\n"),
                 P("destination:/queue/a\n"),
                 P("content-length:3\n"),
                 P("content-length:0\n"),
                 P("content-length:x\n"),
                 P("content-length:99\n"),
                 P("a:b:c\n"),
                 P(":v\n"),
                 P("novalue\n"),
                 P("k:\\c\\n\n"),
                 P("k:\\t\n"),
                 P("k:\r\n"),
                 P("r\r\n"),
                 P("u:\xc3\xa9\n"),
                 P("u:\xff\n"),
                 P("\n"),
                 P("\n"),
                 P("\n"),
                 P("abc"),
                 P("\0"),
                 P("\0"),
                 P("\0\n"),
                 P("x\0y"),
                 P("receipt:9\n")};
#undef P
    unsigned seed = 4242;
    int round;
    for (round = 0; round < 20000; round++) {
        uint8_t in[400];
        size_t n = 0;
        char a[4096], b[4096];
        sl_stomp_limits l = {SL_STOMP_DEFAULT_MAX_FRAME, 1000, 1000};
        int k, parts_n;
        seed = seed * 1103515245u + 12345u;
        parts_n = 1 + (int)((seed >> 16) % 12);
        for (k = 0; k < parts_n; k++) {
            size_t x;
            seed = seed * 1103515245u + 12345u;
            x = (seed >> 16) % (sizeof(parts) / sizeof(parts[0]));
            if (n + parts[x].n > sizeof(in))
                break;
            memcpy(in + n, parts[x].s, parts[x].n);
            n += parts[x].n;
        }
        if (round % 3 == 0 && n + 1 < sizeof(in))
            in[n++] = 0;
        if (round % 5 == 0) { /* tight limits */
            l.max_frame = 8 + round % 40;
            l.max_headers = (uint32_t)(round % 3);
            l.max_header_len = 3 + (size_t)round % 10;
        }
        for (k = 0; k < 2; k++) {
            size_t chunk = k == 0 ? n : 7;
            parse_dump(in, n, chunk, &l, 10 + round % 3, 0, a, sizeof(a));
            parse_dump(in, n, chunk, &l, 10 + round % 3, 1, b, sizeof(b));
            if (strcmp(a, b) != 0)
                fprintf(stderr, "round %d:\n whole: %s\n state machine: %s\n",
                        round, a, b);
            assert_string_equal(a, b);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_send),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_content_length_nuls),
        cmocka_unit_test(test_content_length_zero),
        cmocka_unit_test(test_content_length_no_nul),
        cmocka_unit_test(test_content_length_invalid),
        cmocka_unit_test(test_escapes_12),
        cmocka_unit_test(test_escapes_11_no_cr),
        cmocka_unit_test(test_escape_undefined),
        cmocka_unit_test(test_utf8_headers),
        cmocka_unit_test(test_no_escapes_10_and_connect),
        cmocka_unit_test(test_repeated_first_wins),
        cmocka_unit_test(test_crlf),
        cmocka_unit_test(test_unknown_command),
        cmocka_unit_test(test_unknown_command_at_once),
        cmocka_unit_test(test_malformed_header),
        cmocka_unit_test(test_value_with_colon),
        cmocka_unit_test(test_limit_content_length),
        cmocka_unit_test(test_limit_streaming_body),
        cmocka_unit_test(test_limit_exact_fit),
        cmocka_unit_test(test_limit_header_count),
        cmocka_unit_test(test_limit_header_len),
        cmocka_unit_test(test_limit_header_len_crlf),
        cmocka_unit_test(test_cmd_names),
        cmocka_unit_test(test_encode_roundtrip),
        cmocka_unit_test(test_encode_cr),
        cmocka_unit_test(test_encode_no_escape_connected_and_10),
        cmocka_unit_test(test_random_chunks),
        cmocka_unit_test(test_fuzz),
        cmocka_unit_test(test_whole_frame_as_bytewise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
