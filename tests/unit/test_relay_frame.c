/*
 * test_relay_frame.c - the relay's MESSAGE scanner (broker/relay_frame.c):
 * whole frames found at every cut, everything unusual left to the parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/relay_frame.h"

#define HDR_MAX 65536
#define FRAME_MAX (16u * 1024 * 1024)

/* A MESSAGE as a Sluice node writes it for a 1.2 session. */
static const char MSG[] = "MESSAGE\n"
                          "subscription:sub-0\n"
                          "message-id:q1/2/17\n"
                          "destination:/queue/q1\n"
                          "ack:q1/2/17#sub-0\n"
                          "redelivered:false\n"
                          "content-length:5\n"
                          "\n"
                          "he\0lo"; /* and the NUL sizeof counts */

static int scan(const char *p, size_t n, rl_scan *sc)
{
    return rl_scan_frame(p, n, HDR_MAX, FRAME_MAX, sc);
}

static void test_whole_message(void **state)
{
    rl_scan sc;
    (void)state;
    assert_int_equal(scan(MSG, sizeof(MSG), &sc), RL_SCAN_MESSAGE);
    assert_int_equal(sc.len, sizeof(MSG));
    assert_int_equal(sc.sub_len, 5);
    assert_memory_equal(sc.sub, "sub-0", 5);
    assert_int_equal(sc.mid_len, 7);
    assert_memory_equal(sc.mid, "q1/2/17", 7);
    assert_int_equal(sc.dest_len, 9);
    assert_memory_equal(sc.dest, "/queue/q1", 9);
    assert_int_equal(sc.ack_len, 13);
    assert_memory_equal(sc.ack, "q1/2/17#sub-0", 13);
    assert_int_equal(sc.escaped, 0);
}

/* Every proper prefix needs more; bytes after the frame are not its. */
static void test_every_cut(void **state)
{
    char buf[sizeof(MSG) + 64];
    size_t i;
    rl_scan sc;
    (void)state;
    for (i = 1; i < sizeof(MSG); i++)
        assert_int_equal(scan(MSG, i, &sc), RL_SCAN_MORE);
    memcpy(buf, MSG, sizeof(MSG));
    memcpy(buf + sizeof(MSG), MSG, 40);
    assert_int_equal(scan(buf, sizeof(MSG) + 40, &sc), RL_SCAN_MESSAGE);
    assert_int_equal(sc.len, sizeof(MSG));
}

static void expect_other(const char *s, size_t n)
{
    rl_scan sc;
    assert_int_equal(scan(s, n, &sc), RL_SCAN_OTHER);
}

static void test_left_to_the_parser(void **state)
{
    static const char receipt[] = "RECEIPT\nreceipt-id:1\n\n";
    static const char cr[] = "MESSAGE\r\nsubscription:a\r\n";
    static const char cr2[] = "MESSAGE\nsubscription:a\r\n";
    static const char nolen[] = "MESSAGE\nsubscription:a\nmessage-id:t/0/1\n"
                                "destination:/queue/t\n\nbody";
    static const char badlen[] = "MESSAGE\nsubscription:a\nmessage-id:t/0/1\n"
                                 "destination:/queue/t\ncontent-length:1x\n\n";
    static const char nonul[] = "MESSAGE\nsubscription:a\nmessage-id:t/0/1\n"
                                "destination:/queue/t\ncontent-length:1\n\nab";
    static const char nomid[] = "MESSAGE\nsubscription:a\n"
                                "destination:/queue/t\ncontent-length:0\n\n";
    static const char huge[] = "MESSAGE\nsubscription:a\nmessage-id:t/0/1\n"
                               "destination:/queue/t\n"
                               "content-length:99999999999\n\n";
    (void)state;
    expect_other(receipt, sizeof(receipt));
    expect_other("ERROR\n", 6);
    expect_other(cr, sizeof(cr) - 1);
    expect_other(cr2, sizeof(cr2) - 1);
    expect_other(nolen, sizeof(nolen));
    expect_other(badlen, sizeof(badlen) - 1);
    expect_other(nonul, sizeof(nonul) - 1);
    expect_other(nomid, sizeof(nomid));
    expect_other(huge, sizeof(huge) - 1);
}

/* "M" alone is the start of a MESSAGE: more is needed, not the parser. */
static void test_command_prefix(void **state)
{
    rl_scan sc;
    (void)state;
    assert_int_equal(scan("M", 1, &sc), RL_SCAN_MORE);
    assert_int_equal(scan("MESSAG", 6, &sc), RL_SCAN_MORE);
    assert_int_equal(scan("MESSAGX", 7, &sc), RL_SCAN_OTHER);
}

/* A header block longer than the limit goes to the parser, which applies
 * its own limits; shorter input just needs more. */
static void test_header_limit(void **state)
{
    char buf[256];
    rl_scan sc;
    (void)state;
    memset(buf, 'x', sizeof(buf));
    memcpy(buf, "MESSAGE\nlong:", 13);
    assert_int_equal(rl_scan_frame(buf, 100, 200, FRAME_MAX, &sc),
                     RL_SCAN_MORE);
    assert_int_equal(rl_scan_frame(buf, 256, 200, FRAME_MAX, &sc),
                     RL_SCAN_OTHER);
}

/* The first header of a name counts (as in the parser); an escaped value
 * is flagged, so the relay leaves the frame to the parser. */
static void test_first_wins_and_escapes(void **state)
{
    static const char m[] = "MESSAGE\nsubscription:a\nsubscription:b\n"
                            "message-id:t/0/1\ndestination:/queue/t\\cx\n"
                            "content-length:0\ncontent-length:7\n\n";
    rl_scan sc;
    (void)state;
    assert_int_equal(scan(m, sizeof(m), &sc), RL_SCAN_MESSAGE);
    assert_int_equal(sc.len, sizeof(m));
    assert_int_equal(sc.sub_len, 1);
    assert_memory_equal(sc.sub, "a", 1);
    assert_null(sc.ack);
    assert_int_equal(sc.escaped, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_message),
        cmocka_unit_test(test_every_cut),
        cmocka_unit_test(test_left_to_the_parser),
        cmocka_unit_test(test_command_prefix),
        cmocka_unit_test(test_header_limit),
        cmocka_unit_test(test_first_wins_and_escapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
