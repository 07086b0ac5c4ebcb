/* Unit tests: libsluice's PRODUCE send without copying the batches
 * (sl_cl_conn_queue_produce) puts on the wire exactly the bytes of
 * sl_produce_req_encode, whether the socket takes all of it, part of it
 * (the rest is queued in the connection's output) or none (output already
 * queued before it). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "client/src/conn.h"
#include "protocol/api.h"

/* Two topics, three partitions, batches of the given sizes (their
 * contents only need to be distinct bytes here). */
static void make_req(sl_produce_req *r, sl_produce_topic *t, sl_produce_part *p,
                     uint8_t **bufs, const size_t *lens)
{
    for (int i = 0; i < 3; i++) {
        bufs[i] = malloc(lens[i]);
        assert_non_null(bufs[i]);
        for (size_t k = 0; k < lens[i]; k++)
            bufs[i][k] = (uint8_t)(k * 7 + (size_t)i);
        p[i].partition = (uint32_t)(i + 3);
        p[i].records = bufs[i];
        p[i].records_len = lens[i];
    }
    t[0].topic = sl_str_c("alpha");
    t[0].nparts = 2;
    t[0].parts = &p[0];
    t[1].topic = sl_str_c("b");
    t[1].nparts = 1;
    t[1].parts = &p[2];
    r->acks = SL_ACKS_DURABLE;
    r->timeout_ms = 30000;
    r->ntopics = 2;
    r->topics = t;
}

/* Everything the peer end holds after c->out is written out too. */
static size_t drain_all(sl_cl_conn *c, int peer, uint8_t *got, size_t cap)
{
    size_t have = 0;
    for (;;) {
        ssize_t n = recv(peer, got + have, cap - have, MSG_DONTWAIT);
        if (n > 0) {
            have += (size_t)n;
            continue;
        }
        assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
        if (c->out_off == c->out.len)
            return have;
        assert_int_equal(sl_cl_conn_write_some(c), SL_OK);
    }
}

enum sent_how { ALL_SENT, PART_QUEUED, ALL_QUEUED };

static void run_case(const size_t *lens, int sndbuf, int queued_before,
                     enum sent_how how)
{
    sl_produce_req r;
    sl_produce_topic t[2];
    sl_produce_part p[3];
    uint8_t *bufs[3];
    sl_wb want;
    sl_cl_conn c;
    int sv[2];
    uint8_t *got;
    size_t have, cap;
    int rcv = 1 << 20;

    make_req(&r, t, p, bufs, lens);
    sl_wb_init(&want, 1024);
    if (queued_before)
        sl_wb_put(&want, "earlier", 7);
    assert_int_equal(sl_produce_req_encode(&want, 77, &r), SL_OK);

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    if (sndbuf)
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    sl_cl_conn_init(&c, NULL);
    c.fd = sv[0];
    if (queued_before) /* output not yet written: goes first */
        sl_wb_put(&c.out, "earlier", 7);
    assert_int_equal(sl_cl_conn_queue_produce(&c, 77, &r), SL_OK);
    if (how == ALL_SENT) /* nothing copied */
        assert_int_equal(c.out.len, 0);
    else if (how == PART_QUEUED)
        assert_true(c.out.len > 0 && c.out.len < want.len);
    else /* copied behind the earlier bytes, as before */
        assert_int_equal(c.out.len, want.len);

    cap = want.len + 16;
    got = malloc(cap);
    assert_non_null(got);
    have = drain_all(&c, sv[1], got, cap);
    assert_int_equal(have, want.len);
    assert_memory_equal(got, want.p, want.len);

    free(got);
    sl_wb_fini(&want);
    sl_cl_conn_fini(&c); /* closes sv[0] */
    close(sv[1]);
    for (int i = 0; i < 3; i++)
        free(bufs[i]);
}

static void test_produce_all_sent(void **state)
{
    const size_t lens[3] = {100, 2000, 61};
    (void)state;
    run_case(lens, 0, 0, ALL_SENT);
}

static void test_produce_partly_sent(void **state)
{
    /* a small send buffer: the socket takes part, the rest is queued */
    const size_t lens[3] = {300000, 5000, 250000};
    (void)state;
    run_case(lens, 4096, 0, PART_QUEUED);
}

static void test_produce_behind_queued(void **state)
{
    const size_t lens[3] = {100, 70000, 1};
    (void)state;
    run_case(lens, 0, 1, ALL_QUEUED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_produce_all_sent),
        cmocka_unit_test(test_produce_partly_sent),
        cmocka_unit_test(test_produce_behind_queued),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
