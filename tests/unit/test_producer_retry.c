/* Unit test: libsluice's producer takes its retry list only after the
 * route refresh that precedes a resend (client/src/producer.c,
 * requeue_retries). The refresh reads from connections that also carry
 * produce requests; a reply it meets on the way (or a connection it
 * drops) can put an OLDER batch of a partition in front of the list's
 * head. Before 72d2fd5 the head was read before the refresh, so that
 * batch was dropped with no delivery report, and the newer batch of its
 * partition was stored first.
 *
 * A fake broker on loopback (a thread speaking the binary protocol with
 * protocol/'s codecs) scripts the case; every step is triggered by a
 * request, none by time. Topic "t", two partitions, one connection:
 *
 *   (its HANDSHAKE is answered: any api, 16 MiB frames)
 *   MD1     the producer's first METADATA: two partitions, any node.
 *   R0      v0 to partition 1: answered NOT_LEADER at once. The producer
 *           puts it on the retry list and marks its routes stale;
 *   MD2     so it asks again: answered SHUTTING_DOWN (routes stay stale);
 *   R1, R2  v1 then v2 to partition 0 (separate requests): held;
 *   MD3     the refresh before v0's resend, or right after it: answered
 *           SHUTTING_DOWN, and then R2 is answered NOT_LEADER. v2 is the
 *           only batch on the retry list and the producer asked for
 *           metadata a moment ago (refreshes are one per retry.backoff.ms),
 *           so the next refresh is the one requeue_retries makes before
 *           it resends v2:
 *   MD4     R1 is answered NOT_LEADER first (a reply the refresh reads on
 *           its way: v1 goes in front of v2), then the metadata.
 *   later   every produce is stored and answered.
 *
 * Expected: three delivery reports, all OK; partition 0 stored v1 then
 * v2 (offsets 0 and 1). With the list taken before the refresh, v1 is
 * never reported and v2 is stored alone. */
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
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "client/include/sluice.h"
#include "protocol/api.h"
#include "protocol/batch.h"
#include "protocol/frame.h"
#include "tests/unit/fake_broker_io.h"

#define BACKOFF_MS "300"

typedef struct fake {
    int lfd, fd;
    pthread_t th;
    pthread_mutex_t mu;
    int nmd;               /* METADATA requests seen */
    int nprod[2];          /* PRODUCE requests seen per partition */
    uint32_t held[2];      /* corr ids of R1 and R2 */
    int64_t next_off[2];   /* next offset per partition */
    char stored[2][8][16]; /* values stored per partition, in order */
    int nstored[2];
    char err[256]; /* the fake's own failure, if any */
} fake;

static void send_metadata(fake *f, uint32_t corr, uint16_t version)
{
    sl_meta_part parts[2];
    sl_meta_topic t;
    sl_metadata_resp r;
    sl_wb wb;
    memset(parts, 0, sizeof(parts));
    for (int i = 0; i < 2; i++) {
        parts[i].partition = (uint32_t)i;
        parts[i].end_offset = f->next_off[i];
        parts[i].leader = SL_META_LEADER_ANY;
    }
    memset(&t, 0, sizeof(t));
    t.name = sl_str_c("t");
    t.nparts = 2;
    t.parts = parts;
    memset(&r, 0, sizeof(r));
    r.ntopics = 1;
    r.topics = &t;
    r.version = version;
    sl_wb_init(&wb, 256);
    assert_int_equal(sl_metadata_resp_encode(&wb, corr, &r), SL_OK);
    write_wb(f->fd, &wb);
    sl_wb_fini(&wb);
}

/* One partition's answer: an error, or stored at base. */
static void send_produce(fake *f, uint32_t corr, uint32_t partition,
                         int32_t err, int64_t base, int64_t last)
{
    sl_produce_part_resp pr;
    sl_produce_topic_resp tr;
    sl_produce_resp r;
    sl_wb wb;
    memset(&pr, 0, sizeof(pr));
    pr.partition = partition;
    pr.error = err;
    pr.base_offset = err ? -1 : base;
    pr.last_offset = err ? -1 : last;
    pr.log_end_offset = f->next_off[partition];
    memset(&tr, 0, sizeof(tr));
    tr.topic = sl_str_c("t");
    tr.nparts = 1;
    tr.parts = &pr;
    memset(&r, 0, sizeof(r));
    r.ntopics = 1;
    r.topics = &tr;
    sl_wb_init(&wb, 128);
    assert_int_equal(sl_produce_resp_encode(&wb, corr, &r), SL_OK);
    write_wb(f->fd, &wb);
    sl_wb_fini(&wb);
}

/* Store the records of one batch (their values, in order). */
static int64_t store(fake *f, uint32_t partition, const uint8_t *p, size_t len,
                     int64_t *last)
{
    sl_batch_iter it;
    sl_record rec;
    int64_t base = f->next_off[partition];
    assert_int_equal(sl_batch_iter_init(&it, p, len), SL_OK);
    pthread_mutex_lock(&f->mu);
    while (sl_batch_iter_next(&it, &rec, NULL) == 1) {
        int n = f->nstored[partition]++;
        assert_true(n < 8);
        snprintf(f->stored[partition][n], sizeof(f->stored[0][0]), "%.*s",
                 (int)rec.value_len, (const char *)rec.value);
        f->next_off[partition]++;
    }
    pthread_mutex_unlock(&f->mu);
    sl_batch_iter_fini(&it);
    *last = f->next_off[partition] - 1;
    return base;
}

static void on_produce(fake *f, uint32_t corr, uint8_t *body, size_t len)
{
    sl_produce_req req;
    sl_arena a;
    sl_produce_part *pp;
    uint32_t part;
    int n;
    int64_t base, last;

    sl_arena_init(&a);
    assert_int_equal(sl_produce_req_decode(body, len, &a, &req), SL_OK);
    /* the producer sends one batch per request here (linger.ms 0, one
     * record per send) */
    assert_int_equal(req.ntopics, 1);
    assert_int_equal(req.topics[0].nparts, 1);
    pp = &req.topics[0].parts[0];
    part = pp->partition;
    assert_true(part < 2);
    n = ++f->nprod[part];
    if (part == 1 && n == 1) {
        send_produce(f, corr, part, SL_ERR_NOT_LEADER, -1, -1); /* R0 */
    } else if (part == 0 && n <= 2) {
        f->held[n - 1] = corr; /* R1, R2: answered at MD3 and MD4 */
    } else {
        base = store(f, part, pp->records, pp->records_len, &last);
        send_produce(f, corr, part, SL_OK, base, last);
    }
    sl_arena_fini(&a);
}

static void on_metadata(fake *f, uint32_t corr, const uint8_t *body, size_t len)
{
    sl_metadata_req req;
    sl_arena a;
    int n = ++f->nmd;

    sl_arena_init(&a);
    assert_int_equal(sl_metadata_req_decode(body, len, &a, &req), SL_OK);
    if (n == 3 && f->nprod[0] < 2)
        snprintf(f->err, sizeof(f->err),
                 "MD3 came before R1 and R2 (%d of them)", f->nprod[0]);
    if (n == 2 || n == 3) {
        send_error(f->fd, corr, SL_ERR_SHUTTING_DOWN, "scripted");
        if (n == 3) /* v2 fails: alone on the retry list */
            send_produce(f, f->held[1], 0, SL_ERR_NOT_LEADER, -1, -1);
    } else {
        if (n == 4) /* v1 fails during the refresh */
            send_produce(f, f->held[0], 0, SL_ERR_NOT_LEADER, -1, -1);
        send_metadata(f, corr, req.version);
    }
    sl_arena_fini(&a);
}

static void *fake_main(void *arg)
{
    fake *f = arg;
    uint8_t hdr[4], *fr;
    size_t flen = 0;
    sl_req_hdr h;

    f->fd = accept(f->lfd, NULL, NULL);
    if (f->fd < 0)
        return NULL;
    for (;;) {
        if (read_full(f->fd, hdr, 4) != 0)
            break;
        sl_frame_peek(hdr, 4, 1u << 24, &flen);
        if (flen < SL_REQ_HDR_SIZE || !(fr = malloc(flen)))
            break;
        memcpy(fr, hdr, 4);
        if (read_full(f->fd, fr + 4, flen - 4) != 0 ||
            sl_req_hdr_decode(fr, flen, &h) != SL_OK) {
            free(fr);
            break;
        }
        if (h.api_key == SL_API_METADATA)
            on_metadata(f, h.correlation_id, fr + SL_REQ_HDR_SIZE,
                        flen - SL_REQ_HDR_SIZE);
        else if (h.api_key == SL_API_PRODUCE)
            on_produce(f, h.correlation_id, fr + SL_REQ_HDR_SIZE,
                       flen - SL_REQ_HDR_SIZE);
        else if (h.api_key == SL_API_HANDSHAKE)
            send_handshake(f->fd, h.correlation_id);
        else
            send_error(f->fd, h.correlation_id, SL_ERR_UNSUPPORTED_VERSION,
                       "scripted");
        free(fr);
    }
    return NULL;
}

typedef struct reports {
    int n;
    char value[3][16];
    int64_t offset[3];
    sluice_err err[3];
} reports;

static void on_report(const sluice_delivery *d, void *arg)
{
    reports *r = arg;
    const char *v = d->opaque;
    int i = v[1] - '0';
    assert_true(i >= 0 && i < 3);
    r->n++;
    snprintf(r->value[i], sizeof(r->value[i]), "%s", v);
    r->offset[i] = d->offset;
    r->err[i] = d->err;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_retry_list_taken_after_refresh(void **state)
{
    static const char *vals[3] = {"v0", "v1", "v2"};
    static const int32_t parts[3] = {1, 0, 0};
    struct sockaddr_in sa;
    socklen_t slen = sizeof(sa);
    char boot[64], errstr[256];
    sluice_conf *conf;
    sluice_producer *p = NULL;
    reports rep;
    fake f;
    int64_t deadline;
    (void)state;

    memset(&f, 0, sizeof(f));
    memset(&rep, 0, sizeof(rep));
    pthread_mutex_init(&f.mu, NULL);
    f.lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f.lfd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(f.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(f.lfd, 4), 0);
    assert_int_equal(getsockname(f.lfd, (struct sockaddr *)&sa, &slen), 0);
    snprintf(boot, sizeof(boot), "127.0.0.1:%d", (int)ntohs(sa.sin_port));
    assert_int_equal(pthread_create(&f.th, NULL, fake_main, &f), 0);

    conf = sluice_conf_new();
    assert_non_null(conf);
    assert_int_equal(sluice_conf_set(conf, "bootstrap", boot, NULL, 0),
                     SLUICE_OK);
    assert_int_equal(sluice_conf_set(conf, "linger.ms", "0", NULL, 0),
                     SLUICE_OK);
    assert_int_equal(
        sluice_conf_set(conf, "retry.backoff.ms", BACKOFF_MS, NULL, 0),
        SLUICE_OK);
    assert_int_equal(
        sluice_conf_set(conf, "enable.idempotence", "false", NULL, 0),
        SLUICE_OK);
    assert_int_equal(sluice_conf_set(conf, "acks", "written", NULL, 0),
                     SLUICE_OK);
    assert_int_equal(
        sluice_conf_set(conf, "request.timeout.ms", "30000", NULL, 0),
        SLUICE_OK);
    sluice_conf_set_delivery_cb(conf, on_report, &rep);
    if (sluice_producer_new(conf, &p, errstr, sizeof(errstr)) != SLUICE_OK)
        fail_msg("producer: %s", errstr);
    sluice_conf_free(conf);

    for (int i = 0; i < 3; i++)
        assert_int_equal(sluice_producer_send(p, "t", parts[i], NULL, 0,
                                              vals[i], 2, NULL, 0, 0,
                                              (void *)vals[i]),
                         SLUICE_OK);
    /* polls return on each report; a lost batch leaves one outstanding */
    deadline = mono_ms() + 20000;
    while (sluice_producer_outstanding(p) > 0 && mono_ms() < deadline)
        sluice_producer_poll(p, 1000);

    if (f.err[0])
        fail_msg("the script went off course: %s", f.err);
    if (sluice_producer_outstanding(p) > 0)
        fail_msg("%zu record(s) never reported (v1: %s, v2: %s); partition "
                 "0 stored %d record(s), the first %s",
                 sluice_producer_outstanding(p),
                 rep.value[1][0] ? "reported" : "lost",
                 rep.value[2][0] ? "reported" : "lost", f.nstored[0],
                 f.nstored[0] ? f.stored[0][0] : "-");
    assert_int_equal(rep.n, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rep.err[i], SLUICE_OK);
    assert_int_equal(f.nmd, 4); /* the script ran as written */
    pthread_mutex_lock(&f.mu);
    assert_int_equal(f.nstored[0], 2);
    assert_string_equal(f.stored[0][0], "v1");
    assert_string_equal(f.stored[0][1], "v2");
    assert_int_equal(f.nstored[1], 1);
    pthread_mutex_unlock(&f.mu);
    assert_int_equal(rep.offset[1], 0);
    assert_int_equal(rep.offset[2], 1);
    assert_int_equal(rep.offset[0], 0);

    /* A name too long for the protocol is refused before any request (the
     * check moved to a topic's first send: producer.c, topic_index). */
    char *longname = malloc(70000);
    assert_non_null(longname);
    memset(longname, 'x', 69999);
    longname[69999] = 0;
    assert_int_equal(
        sluice_producer_send(p, longname, 0, NULL, 0, "v", 1, NULL, 0, 0, NULL),
        SLUICE_ERR_INVALID_TOPIC);
    assert_int_equal(
        sluice_producer_send(p, "", 0, NULL, 0, "v", 1, NULL, 0, 0, NULL),
        SLUICE_ERR_INVALID_TOPIC);
    free(longname);
    assert_int_equal(f.nmd, 4);

    sluice_producer_free(p);
    shutdown(f.fd, SHUT_RDWR);
    pthread_join(f.th, NULL);
    close(f.fd);
    close(f.lfd);
    pthread_mutex_destroy(&f.mu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_list_taken_after_refresh),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
