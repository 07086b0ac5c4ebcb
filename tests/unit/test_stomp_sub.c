/*
 * test_stomp_sub.c - the STOMP adapter's pure pieces, without a socket or
 * a broker: destination parsing (stomp_dest.c), topic wildcards and temp
 * queue ownership, ack modes, message/ack ids and a subscription's list of
 * unacknowledged deliveries (stomp_ack.c), and CONNECT's version and
 * heart-beat negotiation (stomp_session.c). Header escaping is
 * test_stomp_frame.c's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/stomp_int.h"

static sl_err parse(const char *s, dest *d, char *why, size_t wl)
{
    return stomp_dest_parse("7", s, d, why, wl);
}

static void test_dest_kinds(void **state)
{
    dest d;
    char why[256];
    (void)state;
    assert_int_equal(parse("/queue/orders", &d, why, sizeof(why)), SL_OK);
    assert_int_equal(d.kind, DEST_QUEUE);
    assert_string_equal(d.name, "orders");
    assert_int_equal(d.wildcard, 0);
    assert_int_equal(parse("/amq/queue/a.b", &d, why, sizeof(why)), SL_OK);
    assert_int_equal(d.kind, DEST_QUEUE);
    assert_string_equal(d.name, "a.b");
    assert_int_equal(parse("/reply-queue/r1", &d, why, sizeof(why)), SL_OK);
    assert_int_equal(d.kind, DEST_QUEUE);
    assert_string_equal(d.name, "r1");
    assert_int_equal(parse("/topic/prices", &d, why, sizeof(why)), SL_OK);
    assert_int_equal(d.kind, DEST_TOPIC);
    assert_string_equal(d.name, "prices");
    assert_string_equal(d.prefix, "/topic/");
    assert_int_equal(parse("/exchange/amq.topic/k.x", &d, why, sizeof(why)),
                     SL_OK);
    assert_int_equal(d.kind, DEST_TOPIC);
    assert_string_equal(d.name, "k.x");
    assert_string_equal(d.prefix, "/exchange/amq.topic/");
    assert_int_equal(parse("/exchange/amq.fanout", &d, why, sizeof(why)),
                     SL_OK);
    assert_int_equal(d.kind, DEST_TOPIC);
    assert_string_equal(d.name, "amq.fanout");
    assert_int_equal(parse("/exchange/amq.fanout/any", &d, why, sizeof(why)),
                     SL_OK);
    assert_string_equal(d.name, "amq.fanout");
    /* a temp queue is named after the session */
    assert_int_equal(parse("/temp-queue/reply", &d, why, sizeof(why)), SL_OK);
    assert_int_equal(d.kind, DEST_TEMP);
    assert_string_equal(d.name, "stomp-tmp-7-reply");
}

static void test_dest_rabbitmq_activemq_forms(void **state)
{
    dest d;
    char why[256];
    (void)state;
    /* a bare name is a queue (ActiveMQ, RabbitMQ 3.10) */
    assert_int_equal(parse("orders", &d, why, sizeof(why)), SL_OK);
    assert_int_equal(d.kind, DEST_QUEUE);
    assert_string_equal(d.name, "orders");
    assert_string_equal(d.group, "");
    /* the default exchange routes to the queue named by the key */
    assert_int_equal(parse("/exchange/amq.default/jobs", &d, why, sizeof(why)),
                     SL_OK);
    assert_int_equal(d.kind, DEST_QUEUE);
    assert_string_equal(d.name, "jobs");
    assert_int_equal(parse("/exchange//jobs", &d, why, sizeof(why)), SL_OK);
    assert_int_equal(d.kind, DEST_QUEUE);
    assert_string_equal(d.name, "jobs");
    /* amq.direct: a topic, each subscriber its copy */
    assert_int_equal(parse("/exchange/amq.direct/k1", &d, why, sizeof(why)),
                     SL_OK);
    assert_int_equal(d.kind, DEST_TOPIC);
    assert_string_equal(d.name, "k1");
    assert_int_equal(d.wildcard, 0);
    /* ActiveMQ virtual topics: group A on topic VirtualTopic.Orders */
    assert_int_equal(
        parse("/queue/Consumer.A.VirtualTopic.Orders", &d, why, sizeof(why)),
        SL_OK);
    assert_int_equal(d.kind, DEST_QUEUE);
    assert_string_equal(d.name, "VirtualTopic.Orders");
    assert_string_equal(d.group, "A");
    assert_int_equal(
        parse("Consumer.B.VirtualTopic.Orders", &d, why, sizeof(why)), SL_OK);
    assert_string_equal(d.name, "VirtualTopic.Orders");
    assert_string_equal(d.group, "B");
    /* not virtual topic consumer queues: plain queues */
    assert_int_equal(
        parse("/queue/Consumer..VirtualTopic.Orders", &d, why, sizeof(why)),
        SL_OK);
    assert_string_equal(d.group, "");
    assert_int_equal(
        parse("/queue/Consumer.A.VirtualTopic.", &d, why, sizeof(why)), SL_OK);
    assert_string_equal(d.group, "");
    assert_string_equal(d.name, "Consumer.A.VirtualTopic.");
    assert_int_equal(parse("/topic/VirtualTopic.Orders", &d, why, sizeof(why)),
                     SL_OK);
    assert_int_equal(d.kind, DEST_TOPIC);
    assert_string_equal(d.name, "VirtualTopic.Orders");
}

static void test_dest_wildcards(void **state)
{
    dest d;
    char why[256];
    (void)state;
    assert_int_equal(parse("/topic/a.*.c", &d, why, sizeof(why)), SL_OK);
    assert_int_equal(d.wildcard, 1);
    assert_string_equal(d.name, "a.*.c");
    assert_int_equal(parse("/topic/a.#", &d, why, sizeof(why)), SL_OK);
    assert_int_equal(d.wildcard, 1);
    assert_int_equal(parse("/topic/a.>", &d, why, sizeof(why)), SL_OK);
    assert_int_equal(d.wildcard, 1);
    /* a queue name is never a pattern: '*' is not a name character */
    assert_int_equal(parse("/queue/a.*", &d, why, sizeof(why)),
                     SL_ERR_INVALID_ARG);
    assert_non_null(strstr(why, "invalid destination"));
}

static void test_dest_refused(void **state)
{
    dest d;
    char why[256], longname[300];
    (void)state;
    assert_int_equal(parse(NULL, &d, why, sizeof(why)), SL_ERR_INVALID_ARG);
    assert_string_equal(why, "missing destination header");
    assert_int_equal(parse("", &d, why, sizeof(why)), SL_ERR_INVALID_ARG);
    assert_int_equal(parse("/queue/", &d, why, sizeof(why)),
                     SL_ERR_INVALID_ARG);
    assert_non_null(strstr(why, "empty or longer"));
    assert_int_equal(parse("/queue/a b", &d, why, sizeof(why)),
                     SL_ERR_INVALID_ARG);
    assert_non_null(strstr(why, "[A-Za-z0-9._-]"));
    assert_int_equal(parse("/exchange/other/k", &d, why, sizeof(why)),
                     SL_ERR_INVALID_ARG);
    assert_non_null(strstr(why, "unsupported exchange"));
    assert_string_equal(d.err, "not_found");
    assert_int_equal(parse("/nowhere/x", &d, why, sizeof(why)),
                     SL_ERR_INVALID_ARG);
    assert_string_equal(d.err, "Unknown destination");
    assert_int_equal(parse(NULL, &d, why, sizeof(why)), SL_ERR_INVALID_ARG);
    assert_string_equal(d.err, "Missing destination");
    assert_int_equal(parse("bad name", &d, why, sizeof(why)),
                     SL_ERR_INVALID_ARG);
    assert_string_equal(d.err, "Invalid destination");
    /* a direct exchange's key is a name, never a pattern */
    assert_int_equal(parse("/exchange/amq.direct/a.*", &d, why, sizeof(why)),
                     SL_ERR_INVALID_ARG);
    /* a virtual topic consumer's group follows name rules too */
    assert_int_equal(
        parse("/queue/Consumer.a b.VirtualTopic.X", &d, why, sizeof(why)),
        SL_ERR_INVALID_ARG);
    assert_int_equal(parse("/temp-queue/", &d, why, sizeof(why)),
                     SL_ERR_INVALID_ARG);
    assert_int_equal(parse("/temp-queue/a/b", &d, why, sizeof(why)),
                     SL_ERR_INVALID_ARG);
    memset(longname, 'x', sizeof(longname));
    memcpy(longname, "/queue/", 7);
    longname[7 + SL_TOPIC_NAME_MAX] = 0; /* 249 characters: fits */
    assert_int_equal(parse(longname, &d, why, sizeof(why)), SL_OK);
    longname[7 + SL_TOPIC_NAME_MAX] = 'x';
    longname[8 + SL_TOPIC_NAME_MAX] = 0; /* 250: refused */
    assert_int_equal(parse(longname, &d, why, sizeof(why)), SL_ERR_INVALID_ARG);
}

static void test_wild_match(void **state)
{
    (void)state;
    assert_true(stomp_wild_match("a.*.c", "a.b.c"));
    assert_false(stomp_wild_match("a.*.c", "a.b.b.c"));
    assert_false(stomp_wild_match("a.*", "a"));
    assert_true(stomp_wild_match("a.#", "a.b.c"));
    /* '#' is zero or more words, at the end too (RabbitMQ) */
    assert_true(stomp_wild_match("a.#", "a"));
    assert_true(stomp_wild_match("a.#.#", "a"));
    assert_true(stomp_wild_match("a.b.#", "a.b"));
    assert_false(stomp_wild_match("a.#", "b"));
    assert_false(stomp_wild_match("a.b.#", "a"));
    assert_false(stomp_wild_match("a.#.c", "a"));
    /* '>' is one or more (ActiveMQ) */
    assert_false(stomp_wild_match("a.>", "a"));
    assert_true(stomp_wild_match("#.c", "a.b.c"));
    assert_true(stomp_wild_match("#", "anything.at.all"));
    assert_true(stomp_wild_match("a.#.c", "a.c"));
    assert_true(stomp_wild_match("a.#.c", "a.x.y.c"));
    assert_false(stomp_wild_match("a.#.c", "a.x.y.d"));
    assert_true(stomp_wild_match("a.>", "a.b"));
    assert_true(stomp_wild_match("a.>", "a.b.c"));
    assert_false(stomp_wild_match("a.>", "a"));
    assert_true(stomp_wild_match("a.b", "a.b"));
    assert_false(stomp_wild_match("a.b", "a.bc"));
    assert_false(stomp_wild_match("a.b", "a.b.c"));
}

static void test_tmp_foreign(void **state)
{
    (void)state;
    assert_false(stomp_tmp_foreign("7", "orders"));
    assert_false(stomp_tmp_foreign("7", "stomp-tmp-7-reply"));
    assert_true(stomp_tmp_foreign("7", "stomp-tmp-8-reply"));
    /* session 7 must not own session 71's queues */
    assert_true(stomp_tmp_foreign("7", "stomp-tmp-71-reply"));
    assert_false(stomp_tmp_foreign("71", "stomp-tmp-71-reply"));
}

static void test_ack_modes(void **state)
{
    (void)state;
    assert_int_equal(stomp_ack_mode_parse(NULL), ACK_AUTO);
    assert_int_equal(stomp_ack_mode_parse("auto"), ACK_AUTO);
    assert_int_equal(stomp_ack_mode_parse("client"), ACK_CLIENT);
    assert_int_equal(stomp_ack_mode_parse("client-individual"), ACK_INDIVIDUAL);
    assert_int_equal(stomp_ack_mode_parse("Client"), -1);
    assert_int_equal(stomp_ack_mode_parse(""), -1);
    assert_string_equal(stomp_ack_names[ACK_INDIVIDUAL], "client-individual");
}

static void test_header_bool(void **state)
{
    (void)state;
    assert_int_equal(stomp_header_bool("true", 0), 1);
    assert_int_equal(stomp_header_bool("True", 0), 1);
    assert_int_equal(stomp_header_bool("TRUE", 0), 1);
    assert_int_equal(stomp_header_bool("false", 1), 0);
    assert_int_equal(stomp_header_bool("False", 1), 0); /* stomp.py */
    assert_int_equal(stomp_header_bool(NULL, 1), 1);
    assert_int_equal(stomp_header_bool(NULL, 0), 0);
    assert_int_equal(stomp_header_bool("yes", 0), 0);
    assert_int_equal(stomp_header_bool("", 1), 1);
}

static void test_msgid(void **state)
{
    char topic[SL_TOPIC_NAME_MAX + 1];
    int32_t part;
    int64_t off;
    const char *sub;
    (void)state;
    assert_int_equal(stomp_msgid_parse("orders/3/42", topic, sizeof(topic),
                                       &part, &off, &sub),
                     0);
    assert_string_equal(topic, "orders");
    assert_int_equal(part, 3);
    assert_int_equal(off, 42);
    assert_null(sub);
    /* the 1.2 ack id names its subscription, which may hold '/' and '#' */
    assert_int_equal(stomp_msgid_parse("a.b/0/7#/queue/x#y", topic,
                                       sizeof(topic), &part, &off, &sub),
                     0);
    assert_string_equal(topic, "a.b");
    assert_int_equal(off, 7);
    assert_string_equal(sub, "/queue/x#y");
    assert_int_equal(
        stomp_msgid_parse("orders", topic, sizeof(topic), &part, &off, &sub),
        -1);
    assert_int_equal(stomp_msgid_parse("orders/x/1", topic, sizeof(topic),
                                       &part, &off, &sub),
                     -1);
    assert_int_equal(
        stomp_msgid_parse("orders/1/", topic, sizeof(topic), &part, &off, &sub),
        -1);
    assert_int_equal(
        stomp_msgid_parse("/1/2", topic, sizeof(topic), &part, &off, &sub), -1);
    assert_int_equal(
        stomp_msgid_parse("orders/1/2", topic, 6, &part, &off, &sub),
        -1); /* topic longer than the buffer */
    /* forms past the one-pass path read as strtoll reads them */
    assert_int_equal(stomp_msgid_parse("t/0000000001/12345678901234567890#s",
                                       topic, sizeof(topic), &part, &off, &sub),
                     -1); /* offset overflows */
    assert_int_equal(stomp_msgid_parse("t/0000000001/1234567890123456789#s",
                                       topic, sizeof(topic), &part, &off, &sub),
                     0);
    assert_int_equal(part, 1);
    assert_int_equal(off, 1234567890123456789LL);
    assert_string_equal(sub, "s");
    assert_int_equal(
        stomp_msgid_parse("t/ 2/-3", topic, sizeof(topic), &part, &off, &sub),
        0);
    assert_int_equal(part, 2);
    assert_int_equal(off, -3);
    assert_null(sub);
    assert_int_equal(
        stomp_msgid_parse("t/1/2/3", topic, sizeof(topic), &part, &off, &sub),
        -1);
    assert_int_equal(
        stomp_msgid_parse("t/1/2#", topic, sizeof(topic), &part, &off, &sub),
        0);
    assert_string_equal(sub, "");
}

/* Offsets of the entries of q, in order, as "1,2,3". */
static void pendq_str(const stomp_pendq *q, char *b, size_t bl)
{
    pend *p;
    size_t n = 0, count = 0;
    b[0] = 0;
    for (p = q->head; p; p = p->next) {
        n += (size_t)snprintf(b + n, bl - n, "%s%lld", n ? "," : "",
                              (long long)p->offset);
        count++;
        if (!p->next)
            assert_ptr_equal(p, q->tail);
    }
    assert_int_equal(count, q->n);
    if (!q->head)
        assert_null(q->tail);
}

static void test_pendq_individual(void **state)
{
    stomp_pendq q = {NULL, NULL, 0};
    pend *prev = NULL, *e;
    char b[64];
    int64_t i;
    (void)state;
    for (i = 1; i <= 4; i++)
        assert_int_equal(stomp_pendq_push(&q, NULL, "t", 0, i), 0);
    pendq_str(&q, b, sizeof(b));
    assert_string_equal(b, "1,2,3,4");
    /* the middle one alone */
    e = stomp_pendq_find(&q, "t", 0, 3, &prev);
    assert_non_null(e);
    assert_int_equal(prev->offset, 2);
    e = stomp_pendq_take(&q, prev, e, 0);
    assert_int_equal(e->offset, 3);
    assert_null(e->next);
    free(e);
    pendq_str(&q, b, sizeof(b));
    assert_string_equal(b, "1,2,4");
    /* the tail: the tail moves back */
    e = stomp_pendq_find(&q, "t", 0, 4, &prev);
    free(stomp_pendq_take(&q, prev, e, 0));
    pendq_str(&q, b, sizeof(b));
    assert_string_equal(b, "1,2");
    /* the head */
    e = stomp_pendq_find(&q, "t", 0, 1, &prev);
    assert_null(prev);
    free(stomp_pendq_take(&q, prev, e, 0));
    pendq_str(&q, b, sizeof(b));
    assert_string_equal(b, "2");
    /* another topic or partition is another record */
    assert_null(stomp_pendq_find(&q, "u", 0, 2, &prev));
    assert_null(stomp_pendq_find(&q, "t", 1, 2, &prev));
    e = stomp_pendq_find(&q, "t", 0, 2, &prev);
    free(stomp_pendq_take(&q, prev, e, 0));
    pendq_str(&q, b, sizeof(b));
    assert_string_equal(b, "");
    assert_null(stomp_pendq_find(&q, "t", 0, 2, &prev));
}

static void test_pendq_cumulative(void **state)
{
    stomp_pendq q = {NULL, NULL, 0};
    pend *prev = NULL, *e, *p, *n;
    char b[64];
    int64_t i;
    int count = 0;
    (void)state;
    for (i = 1; i <= 5; i++)
        assert_int_equal(stomp_pendq_push(&q, NULL, "t", 0, i), 0);
    /* ack:client of 3 settles 1, 2 and 3, oldest first */
    e = stomp_pendq_find(&q, "t", 0, 3, &prev);
    for (p = stomp_pendq_take(&q, prev, e, 1); p; p = n) {
        n = p->next;
        assert_int_equal(p->offset, ++count);
        free(p);
    }
    assert_int_equal(count, 3);
    pendq_str(&q, b, sizeof(b));
    assert_string_equal(b, "4,5");
    /* of the last: everything; a push afterwards starts a fresh list */
    e = stomp_pendq_find(&q, "t", 0, 5, &prev);
    for (p = stomp_pendq_take(&q, prev, e, 1); p; p = n) {
        n = p->next;
        free(p);
    }
    pendq_str(&q, b, sizeof(b));
    assert_string_equal(b, "");
    assert_int_equal(stomp_pendq_push(&q, NULL, "t", 0, 6), 0);
    pendq_str(&q, b, sizeof(b));
    assert_string_equal(b, "6");
    stomp_pendq_clear(&q);
    pendq_str(&q, b, sizeof(b));
    assert_string_equal(b, "");
}

/* CONNECT: the highest version both speak, whatever the order or the
 * separators; none in common is 0 (the caller answers ERROR). */
static void test_accept_version(void **state)
{
    (void)state;
    assert_int_equal(stomp_accept_version("1.0,1.1,1.2"), SL_STOMP_V12);
    assert_int_equal(stomp_accept_version("1.2,1.0"), SL_STOMP_V12);
    assert_int_equal(stomp_accept_version("1.1, 1.0"), SL_STOMP_V11);
    assert_int_equal(stomp_accept_version("1.0"), SL_STOMP_V10);
    assert_int_equal(stomp_accept_version("2.0,1.1"), SL_STOMP_V11);
    assert_int_equal(stomp_accept_version("2.0"), 0);
    assert_int_equal(stomp_accept_version(""), 0);
}

static void test_hb_parse(void **state)
{
    int64_t a = -7, b = -7;
    (void)state;
    assert_int_equal(stomp_hb_parse(NULL, &a, &b), 0); /* absent: untouched */
    assert_int_equal(a, -7);
    assert_int_equal(b, -7);
    assert_int_equal(stomp_hb_parse("0,0", &a, &b), 0);
    assert_int_equal(a, 0);
    assert_int_equal(b, 0);
    assert_int_equal(stomp_hb_parse("4000,10000", &a, &b), 0);
    assert_int_equal(a, 4000);
    assert_int_equal(b, 10000);
    assert_int_equal(stomp_hb_parse("", &a, &b), -1);
    assert_int_equal(stomp_hb_parse("1000", &a, &b), -1);
    assert_int_equal(stomp_hb_parse("1000,", &a, &b), -1);
    assert_int_equal(stomp_hb_parse(",1000", &a, &b), -1);
    assert_int_equal(stomp_hb_parse("-1,1000", &a, &b), -1);
    assert_int_equal(stomp_hb_parse("1000,-1", &a, &b), -1);
    assert_int_equal(stomp_hb_parse("1000,10x", &a, &b), -1);
    assert_int_equal(stomp_hb_parse("99999999999999999999,1", &a, &b), -1);
    assert_int_equal(a, 4000); /* a malformed header changes nothing */
    assert_int_equal(b, 10000);
}

/* cx is what the client can send (we expect it), cy what it wants to get
 * (we send it); heartbeat-min raises both, 0 stays none, 1.0 has none. */
static void test_hb_negotiate(void **state)
{
    int64_t out = -1, in = -1;
    (void)state;
    stomp_hb_negotiate(SL_STOMP_V12, 4000, 10000, 1000, &out, &in);
    assert_int_equal(out, 10000);
    assert_int_equal(in, 4000);
    stomp_hb_negotiate(SL_STOMP_V11, 100, 200, 1000, &out, &in);
    assert_int_equal(out, 1000);
    assert_int_equal(in, 1000);
    stomp_hb_negotiate(SL_STOMP_V12, 0, 5000, 1000, &out, &in);
    assert_int_equal(out, 5000);
    assert_int_equal(in, 0);
    stomp_hb_negotiate(SL_STOMP_V12, 5000, 0, 1000, &out, &in);
    assert_int_equal(out, 0);
    assert_int_equal(in, 5000);
    stomp_hb_negotiate(SL_STOMP_V10, 5000, 5000, 1000, &out, &in);
    assert_int_equal(out, 0);
    assert_int_equal(in, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dest_kinds),
        cmocka_unit_test(test_dest_rabbitmq_activemq_forms),
        cmocka_unit_test(test_dest_wildcards),
        cmocka_unit_test(test_dest_refused),
        cmocka_unit_test(test_wild_match),
        cmocka_unit_test(test_tmp_foreign),
        cmocka_unit_test(test_ack_modes),
        cmocka_unit_test(test_header_bool),
        cmocka_unit_test(test_msgid),
        cmocka_unit_test(test_pendq_individual),
        cmocka_unit_test(test_pendq_cumulative),
        cmocka_unit_test(test_accept_version),
        cmocka_unit_test(test_hb_parse),
        cmocka_unit_test(test_hb_negotiate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
