/* Unit test: max.in.flight.process.bytes (client/src/producer.c, drain).
 * Past the bound, a producer with a request of its own in flight reads a
 * reply before it sends another; a producer with nothing in flight always
 * sends, so it never waits for another producer's replies.
 *
 * A fake broker on loopback (one thread, poll over its connections)
 * answers HANDSHAKE and METADATA (topic "t", one partition) at once, and
 * holds the first PRODUCE it gets: until another PRODUCE comes, or
 * until a time passes without any request (HOLD_MS in 1, 20 s in 2).
 * Then it answers that one and every later PRODUCE at once. It notes a
 * PRODUCE that came on the held request's own connection while it was
 * held.
 *
 * 1. One producer, bound 1 byte, linger.ms 0: v0 goes out and is held;
 *    send(v1) must not put v1 on the wire before v0's reply. Without the
 *    bound (before it existed) v1 came while v0 was held.
 * 2. Two producers of the process, A and B, bound 1 byte: A's a0 is held;
 *    B, with nothing in flight, sends b0 all the same (the fake answers
 *    both once b0 comes): both delivered. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
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

#include "client/include/sluice.h"
#include "protocol/api.h"
#include "protocol/batch.h"
#include "protocol/frame.h"
#include "tests/unit/fake_broker_io.h"

#define HOLD_MS 300 /* test 1; test 2 holds until b0 comes */
#define MAXC 8

typedef struct fake {
    int lfd, wake[2];
    int fds[MAXC], nfd;
    pthread_t th;
    int hold_ms;
    int held_fd; /* connection of the held PRODUCE, -1 */
    uint32_t held_corr;
    int released;         /* the held one was answered */
    int same_conn_during; /* PRODUCEs on held_fd while it was held */
    int other_conn_during;
    int nprod;
    int64_t next_off;
} fake;

static void send_metadata(fake *f, int fd, uint32_t corr, uint16_t version)
{
    sl_meta_part part;
    sl_meta_topic t;
    sl_metadata_resp r;
    sl_wb wb;
    memset(&part, 0, sizeof(part));
    part.partition = 0;
    part.end_offset = f->next_off;
    part.leader = SL_META_LEADER_ANY;
    memset(&t, 0, sizeof(t));
    t.name = sl_str_c("t");
    t.nparts = 1;
    t.parts = &part;
    memset(&r, 0, sizeof(r));
    r.ntopics = 1;
    r.topics = &t;
    r.version = version;
    sl_wb_init(&wb, 256);
    assert_int_equal(sl_metadata_resp_encode(&wb, corr, &r), SL_OK);
    write_wb(fd, &wb);
    sl_wb_fini(&wb);
}

/* Stored: one record per request here (linger.ms 0, one send each). */
static void send_produce(fake *f, int fd, uint32_t corr)
{
    sl_produce_part_resp pr;
    sl_produce_topic_resp tr;
    sl_produce_resp r;
    sl_wb wb;
    memset(&pr, 0, sizeof(pr));
    pr.partition = 0;
    pr.base_offset = f->next_off;
    pr.last_offset = f->next_off;
    pr.log_end_offset = ++f->next_off;
    memset(&tr, 0, sizeof(tr));
    tr.topic = sl_str_c("t");
    tr.nparts = 1;
    tr.parts = &pr;
    memset(&r, 0, sizeof(r));
    r.ntopics = 1;
    r.topics = &tr;
    sl_wb_init(&wb, 128);
    assert_int_equal(sl_produce_resp_encode(&wb, corr, &r), SL_OK);
    write_wb(fd, &wb);
    sl_wb_fini(&wb);
}

static void release(fake *f)
{
    if (f->held_fd >= 0 && !f->released) {
        send_produce(f, f->held_fd, f->held_corr);
        f->released = 1;
    }
}

static void on_produce(fake *f, int fd, uint32_t corr)
{
    f->nprod++;
    if (f->held_fd < 0) {
        f->held_fd = fd;
        f->held_corr = corr;
        return;
    }
    if (!f->released) {
        if (fd == f->held_fd)
            f->same_conn_during++;
        else
            f->other_conn_during++;
        release(f); /* the held one first: replies in order per connection */
    }
    send_produce(f, fd, corr);
}

/* One request from fd; -1 when it closed. */
static int serve(fake *f, int fd)
{
    uint8_t hdr[4], *fr;
    size_t flen = 0;
    sl_req_hdr h;
    if (read_full(fd, hdr, 4) != 0)
        return -1;
    sl_frame_peek(hdr, 4, 1u << 24, &flen);
    if (flen < SL_REQ_HDR_SIZE || !(fr = malloc(flen)))
        return -1;
    memcpy(fr, hdr, 4);
    if (read_full(fd, fr + 4, flen - 4) != 0 ||
        sl_req_hdr_decode(fr, flen, &h) != SL_OK) {
        free(fr);
        return -1;
    }
    if (h.api_key == SL_API_METADATA) {
        sl_metadata_req req;
        sl_arena a;
        sl_arena_init(&a);
        assert_int_equal(sl_metadata_req_decode(fr + SL_REQ_HDR_SIZE,
                                                flen - SL_REQ_HDR_SIZE, &a,
                                                &req),
                         SL_OK);
        send_metadata(f, fd, h.correlation_id, req.version);
        sl_arena_fini(&a);
    } else if (h.api_key == SL_API_PRODUCE) {
        on_produce(f, fd, h.correlation_id);
    } else if (h.api_key == SL_API_HANDSHAKE) {
        send_handshake(fd, h.correlation_id);
    } else {
        send_error(fd, h.correlation_id, SL_ERR_UNSUPPORTED_VERSION, "fake");
    }
    free(fr);
    return 0;
}

static void *fake_main(void *arg)
{
    fake *f = arg;
    for (;;) {
        struct pollfd pf[MAXC + 2];
        int n = 0, r;
        pf[n].fd = f->wake[0];
        pf[n++].events = POLLIN;
        pf[n].fd = f->lfd;
        pf[n++].events = POLLIN;
        for (int i = 0; i < f->nfd; i++) {
            pf[n].fd = f->fds[i];
            pf[n++].events = POLLIN;
        }
        /* a held request is answered after hold_ms without any request */
        r = poll(pf, (nfds_t)n,
                 f->held_fd >= 0 && !f->released ? f->hold_ms : -1);
        if (r == 0) {
            release(f);
            continue;
        }
        if (pf[0].revents)
            break; /* the test is done */
        if ((pf[1].revents & POLLIN) && f->nfd < MAXC)
            f->fds[f->nfd++] = accept(f->lfd, NULL, NULL);
        for (int i = 2; i < n; i++)
            if (pf[i].revents && serve(f, pf[i].fd) != 0) {
                for (int j = 0; j < f->nfd; j++)
                    if (f->fds[j] == pf[i].fd)
                        f->fds[j] = f->fds[--f->nfd];
                close(pf[i].fd);
            }
    }
    return NULL;
}

static void fake_start(fake *f, int hold_ms, char *boot, size_t blen)
{
    struct sockaddr_in sa;
    socklen_t slen = sizeof(sa);
    memset(f, 0, sizeof(*f));
    f->hold_ms = hold_ms;
    f->held_fd = -1;
    assert_int_equal(pipe(f->wake), 0);
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->lfd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(f->lfd, 8), 0);
    assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&sa, &slen), 0);
    snprintf(boot, blen, "127.0.0.1:%d", (int)ntohs(sa.sin_port));
    assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void fake_stop(fake *f)
{
    assert_int_equal(write(f->wake[1], "x", 1), 1);
    pthread_join(f->th, NULL);
    for (int i = 0; i < f->nfd; i++)
        close(f->fds[i]);
    close(f->lfd);
    close(f->wake[0]);
    close(f->wake[1]);
}

typedef struct reports {
    int n, failed;
} reports;

static void on_report(const sluice_delivery *d, void *arg)
{
    reports *r = arg;
    r->n++;
    if (d->err)
        r->failed++;
}

static sluice_producer *producer(const char *boot, const char *bound,
                                 reports *rep)
{
    sluice_conf *conf = sluice_conf_new();
    sluice_producer *p = NULL;
    char errstr[256];
    assert_non_null(conf);
    assert_int_equal(sluice_conf_set(conf, "bootstrap", boot, NULL, 0),
                     SLUICE_OK);
    assert_int_equal(sluice_conf_set(conf, "linger.ms", "0", NULL, 0),
                     SLUICE_OK);
    assert_int_equal(
        sluice_conf_set(conf, "enable.idempotence", "false", NULL, 0),
        SLUICE_OK);
    assert_int_equal(sluice_conf_set(conf, "acks", "written", NULL, 0),
                     SLUICE_OK);
    assert_int_equal(
        sluice_conf_set(conf, "max.in.flight.process.bytes", bound, NULL, 0),
        SLUICE_OK);
    sluice_conf_set_delivery_cb(conf, on_report, rep);
    if (sluice_producer_new(conf, &p, errstr, sizeof(errstr)) != SLUICE_OK)
        fail_msg("producer: %s", errstr);
    sluice_conf_free(conf);
    return p;
}

static void send1(sluice_producer *p, const char *v)
{
    assert_int_equal(
        sluice_producer_send(p, "t", 0, NULL, 0, v, 2, NULL, 0, 0, NULL),
        SLUICE_OK);
}

static void test_waits_for_its_reply_past_the_bound(void **state)
{
    char boot[64];
    reports rep = {0, 0};
    sluice_producer *p;
    fake f;
    (void)state;

    fake_start(&f, HOLD_MS, boot, sizeof(boot));
    p = producer(boot, "1", &rep);
    send1(p, "v0"); /* out, held by the fake */
    send1(p, "v1"); /* must wait for v0's reply */
    assert_int_equal(sluice_producer_flush(p, 20000), SLUICE_OK);
    assert_int_equal(rep.n, 2);
    assert_int_equal(rep.failed, 0);
    sluice_producer_free(p);
    fake_stop(&f);
    assert_int_equal(f.nprod, 2);
    if (f.same_conn_during)
        fail_msg("v1 was sent while v0 was in flight, past the bound");
}

static void test_never_waits_for_another_producer(void **state)
{
    char boot[64];
    reports ra = {0, 0}, rb = {0, 0};
    sluice_producer *a, *b;
    fake f;
    (void)state;

    fake_start(&f, 20000, boot, sizeof(boot));
    a = producer(boot, "1", &ra);
    b = producer(boot, "1", &rb);
    send1(a, "a0"); /* held: the process is past the bound */
    send1(b, "b0"); /* b has nothing in flight: sent all the same */
    assert_int_equal(sluice_producer_flush(b, 20000), SLUICE_OK);
    assert_int_equal(sluice_producer_flush(a, 20000), SLUICE_OK);
    assert_int_equal(ra.n, 1);
    assert_int_equal(rb.n, 1);
    assert_int_equal(ra.failed + rb.failed, 0);
    sluice_producer_free(a);
    sluice_producer_free(b);
    fake_stop(&f);
    assert_int_equal(f.nprod, 2);
    if (f.other_conn_during != 1)
        fail_msg("b0 did not come while a0 was held (%d same, %d other, "
                 "released %d)",
                 f.same_conn_during, f.other_conn_during, f.released);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_waits_for_its_reply_past_the_bound),
        cmocka_unit_test(test_never_waits_for_another_producer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
