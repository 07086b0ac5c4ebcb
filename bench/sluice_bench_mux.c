/*
 * sluice_bench_mux.c - `sluice-bench produce-mux`: N producer connections
 * served by one thread with epoll, the way an application server holds
 * its connections (issue 20, connection scaling).
 *
 *   sluice-bench produce-mux [-b HOST:PORT] [--topic T] [--records N]
 *       [--size BYTES] [--conns N] [--batch-size BYTES]
 *       [--in-flight K] [--acks written|durable]
 *
 * `sluice-bench produce --producers N` runs N libsluice producers on N
 * threads: on a machine with few cores the client's threads then compete
 * with the broker for them, and what is measured is partly the client.
 * Here one thread keeps each of --conns connections busy with PRODUCE
 * requests (up to --in-flight unanswered each, libsluice's
 * max.in.flight of 64 by default), from batches of --batch-size bytes
 * (libsluice's batch.size, 256 KiB) built once before the clock starts
 * (16 of them, values from a pool of random printable bytes as
 * `produce`), so the client's CPU per record is small and the same for
 * one connection and for 256: what changes with the count is the
 * broker's side. The requests are the protocol's own (protocol/): no
 * producer id, one batch of partition 0 per request. The records are
 * split into whole batches, as evenly as they go over the connections;
 * the count produced (a multiple of the batch's records) is printed.
 * Every answer is decoded and any error fails the run. Before the clock,
 * one request on the first connection creates the topic (auto-create)
 * and is not counted.
 *
 * Output: one line like `produce`'s, with records_per_sec and the
 * latency of the requests (sent -> answered, ms) at p50 and p99.
 * @thread main (one thread)
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "protocol/api_produce.h"
#include "protocol/batch.h"
#include "protocol/frame.h"

#define NBATCH 16
#define INBUF (64 * 1024)

typedef struct mconn {
    int fd;
    long left;           /* requests still to send */
    long inflight;       /* sent, not answered */
    int sending;         /* a frame is part-way out */
    size_t at;           /* bytes of the current frame sent */
    const uint8_t *body; /* the frame after its header */
    size_t body_len;
    uint8_t hdr[SL_REQ_HDR_SIZE];
    uint32_t corr;
    int64_t *t0; /* send time per corr slot (ring of in-flight) */
    long t0_head, t0_tail;
    uint8_t *in;
    size_t in_len;
    int want_out;
} mconn;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void fail(const char *what)
{
    fprintf(stderr, "sluice-bench produce-mux: %s\n", what);
    exit(1);
}

static int connect_to(const char *hostport)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    struct addrinfo hints = {0}, *ai;
    int fd, one = 1;
    if (!colon || (size_t)(colon - hostport) >= sizeof(host))
        fail("-b wants HOST:PORT");
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = 0;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
        fail("cannot resolve the broker's address");
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0)
        fail("cannot connect");
    freeaddrinfo(ai);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Decode one answer; exits on any error in it. */
static void check_answer(const uint8_t *frame, size_t len, sl_arena *a)
{
    uint32_t corr;
    sl_produce_resp r;
    if (sl_resp_hdr_decode(frame, len, &corr) != SL_OK)
        fail("malformed answer");
    sl_arena_reset(a);
    if (sl_produce_resp_decode(frame + SL_RESP_HDR_SIZE, len - SL_RESP_HDR_SIZE,
                               a, &r) != SL_OK)
        fail("malformed PRODUCE answer");
    if (r.error) {
        fprintf(stderr, "sluice-bench produce-mux: error %d: %.*s\n", r.error,
                (int)r.error_msg.len, r.error_msg.p ? r.error_msg.p : "");
        exit(1);
    }
    for (uint32_t t = 0; t < r.ntopics; t++)
        for (uint32_t p = 0; p < r.topics[t].nparts; p++)
            if (r.topics[t].parts[p].error) {
                fprintf(stderr,
                        "sluice-bench produce-mux: partition error %d\n",
                        r.topics[t].parts[p].error);
                exit(1);
            }
}

/* Write as much of c's current frame as the socket takes; start new
 * frames while the window allows. Returns 1 when output is left over. */
static int pump_out(mconn *c, uint8_t *const *frames, const size_t *lens,
                    long in_flight, long *seq)
{
    for (;;) {
        if (!c->sending) {
            size_t k;
            if (c->left == 0 || c->inflight >= in_flight)
                return 0;
            k = (size_t)(*seq)++ % NBATCH;
            memcpy(c->hdr, frames[k], SL_REQ_HDR_SIZE);
            sl_put_u32(c->hdr + 8, ++c->corr); /* after length, key, ver */
            c->body = frames[k] + SL_REQ_HDR_SIZE;
            c->body_len = lens[k] - SL_REQ_HDR_SIZE;
            c->at = 0;
            c->sending = 1;
            c->left--;
            c->inflight++;
            c->t0[c->t0_tail++ % in_flight] = mono_ns();
        }
        while (c->at < SL_REQ_HDR_SIZE + c->body_len) {
            struct iovec iov[2];
            int n = 0;
            ssize_t w;
            if (c->at < SL_REQ_HDR_SIZE) {
                iov[n].iov_base = c->hdr + c->at;
                iov[n++].iov_len = SL_REQ_HDR_SIZE - c->at;
                iov[n].iov_base = (void *)c->body;
                iov[n++].iov_len = c->body_len;
            } else {
                iov[n].iov_base = (void *)(c->body + c->at - SL_REQ_HDR_SIZE);
                iov[n++].iov_len = SL_REQ_HDR_SIZE + c->body_len - c->at;
            }
            w = writev(c->fd, iov, n);
            if (w < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return 1;
                if (errno == EINTR)
                    continue;
                fail("send failed");
            }
            c->at += (size_t)w;
        }
        c->sending = 0;
    }
}

int sl_bench_mux_main(int argc, char **argv)
{
    const char *broker = "127.0.0.1:9092", *topic = "bench",
               *acks_s = "durable";
    long records = 1000000, size = 100, nconns = 1, batch_size = 262144,
         in_flight = 64, seq = 0, done = 0, total_req, per_batch, nlat = 0;
    uint8_t *frames[NBATCH];
    size_t lens[NBATCH];
    char *pool;
    size_t pool_len;
    unsigned seed = 1;
    mconn *cs;
    int ep, acks;
    int64_t t0, t1, *lat;
    sl_arena arena;
    sl_batch_builder bb;
    struct epoll_event evs[256];

    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            fail("every option takes a value");
        if (!strcmp(a, "-b"))
            broker = v;
        else if (!strcmp(a, "--topic"))
            topic = v;
        else if (!strcmp(a, "--records"))
            records = atol(v);
        else if (!strcmp(a, "--size"))
            size = atol(v);
        else if (!strcmp(a, "--conns"))
            nconns = atol(v);
        else if (!strcmp(a, "--batch-size"))
            batch_size = atol(v);
        else if (!strcmp(a, "--in-flight"))
            in_flight = atol(v);
        else if (!strcmp(a, "--acks"))
            acks_s = v;
        else
            fail("unknown option (see bench/sluice_bench_mux.c)");
        i++;
    }
    if (!strcmp(acks_s, "durable"))
        acks = SL_ACKS_DURABLE;
    else if (!strcmp(acks_s, "written"))
        acks = SL_ACKS_WRITTEN;
    else
        fail("--acks: written or durable (none has no answer to count)");
    if (records < 1 || size < 1 || nconns < 1 || in_flight < 1 ||
        batch_size < size + 128)
        fail("bad --records, --size, --conns, --in-flight or --batch-size");

    /* the values: as `produce`, random printable bytes */
    pool_len = (size_t)size * 4096 + (16u << 20);
    pool = malloc(pool_len);
    if (!pool)
        fail("out of memory");
    for (size_t k = 0; k < pool_len; k++)
        pool[k] = (char)(33 + rand_r(&seed) % 94);

    /* NBATCH batches of batch_size bytes, each one PRODUCE frame */
    sl_bb_init(&bb, SL_CODEC_NONE);
    per_batch = 0;
    for (int k = 0; k < NBATCH; k++) {
        const uint8_t *bp;
        size_t blen, off = (size_t)k * ((16u << 20) / NBATCH);
        long n = 0;
        sl_wb wb;
        sl_produce_part part;
        sl_produce_topic pt;
        sl_produce_req req;
        int64_t ts = (int64_t)time(NULL) * 1000;
        sl_bb_reset(&bb);
        while ((long)sl_bb_size(&bb) + size + 32 <= batch_size) {
            if (sl_bb_add(&bb, ts, NULL, 0, pool + off, (size_t)size, NULL,
                          0) != SL_OK)
                fail("batch");
            off += (size_t)size;
            n++;
        }
        if (sl_bb_finish(&bb, &bp, &blen) != SL_OK)
            fail("batch");
        per_batch = n;
        part.partition = 0;
        part.records = (uint8_t *)bp;
        part.records_len = blen;
        pt.topic.p = topic;
        pt.topic.len = strlen(topic);
        pt.nparts = 1;
        pt.parts = &part;
        req.acks = (uint8_t)acks;
        req.timeout_ms = 60000;
        req.ntopics = 1;
        req.topics = &pt;
        sl_wb_init(&wb, blen + 256);
        if (sl_produce_req_encode(&wb, 0, &req) != SL_OK)
            fail("encode");
        frames[k] = wb.p; /* owned until exit */
        lens[k] = wb.len;
    }
    sl_bb_fini(&bb);
    total_req = (records + per_batch - 1) / per_batch;

    sl_arena_init(&arena);
    ep = epoll_create1(EPOLL_CLOEXEC);
    cs = calloc((size_t)nconns, sizeof(*cs));
    lat = calloc((size_t)total_req, sizeof(*lat));
    if (ep < 0 || !cs || !lat)
        fail("out of resources");
    for (long i = 0; i < nconns; i++) {
        mconn *c = &cs[i];
        c->fd = connect_to(broker);
        c->left = total_req / nconns + (i < total_req % nconns);
        c->t0 = calloc((size_t)in_flight, sizeof(int64_t));
        c->in = malloc(INBUF);
        if (!c->t0 || !c->in)
            fail("out of memory");
    }
    /* the topic: one request on the first connection, blocking, unmeasured */
    {
        mconn *c = &cs[0];
        size_t need = 0;
        long save = c->left;
        c->left = 1;
        while (pump_out(c, frames, lens, in_flight, &seq))
            ;
        c->left = save;
        c->inflight = 0;
        c->t0_head = c->t0_tail = 0;
        while (c->in_len < SL_RESP_HDR_SIZE ||
               sl_frame_peek(c->in, c->in_len, INBUF, &need) != SL_OK) {
            ssize_t r = read(c->fd, c->in + c->in_len, INBUF - c->in_len);
            if (r <= 0)
                fail("no answer to the first request");
            c->in_len += (size_t)r;
        }
        check_answer(c->in, need, &arena);
        memmove(c->in, c->in + need, c->in_len - need);
        c->in_len -= need;
    }
    for (long i = 0; i < nconns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        if (fcntl(cs[i].fd, F_SETFL, O_NONBLOCK) != 0 ||
            epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) != 0)
            fail("epoll");
    }

    t0 = mono_ns();
    for (long i = 0; i < nconns; i++) {
        mconn *c = &cs[i];
        if (pump_out(c, frames, lens, in_flight, &seq)) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT,
                                     .data.ptr = c};
            c->want_out = 1;
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        }
    }
    while (done < total_req) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail("epoll_wait");
        }
        for (int e = 0; e < n; e++) {
            mconn *c = evs[e].data.ptr;
            int more;
            if (evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                for (;;) {
                    size_t need = 0;
                    ssize_t r;
                    r = read(c->fd, c->in + c->in_len, INBUF - c->in_len);
                    if (r == 0)
                        fail("the broker closed a connection");
                    if (r < 0) {
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                            break;
                        if (errno == EINTR)
                            continue;
                        fail("read failed");
                    }
                    c->in_len += (size_t)r;
                    size_t off = 0;
                    while (sl_frame_peek(c->in + off, c->in_len - off, INBUF,
                                         &need) == SL_OK) {
                        check_answer(c->in + off, need, &arena);
                        off += need;
                        c->inflight--;
                        lat[nlat++] =
                            mono_ns() - c->t0[c->t0_head++ % in_flight];
                        done++;
                    }
                    memmove(c->in, c->in + off, c->in_len - off);
                    c->in_len -= off;
                    if (c->in_len == INBUF)
                        fail("an answer larger than the input buffer");
                }
            }
            more = pump_out(c, frames, lens, in_flight, &seq);
            if (more != c->want_out) {
                struct epoll_event ev = {
                    .events = EPOLLIN | (more ? EPOLLOUT : 0), .data.ptr = c};
                c->want_out = more;
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            }
        }
    }
    t1 = mono_ns();
    qsort(lat, (size_t)nlat, sizeof(*lat), cmp_i64);
    {
        double secs = (double)(t1 - t0) / 1e9;
        long recs = total_req * per_batch;
        printf("mode=produce-mux records=%ld size=%ld conns=%ld "
               "batch_records=%ld in_flight=%ld acks=%s secs=%.3f "
               "records_per_sec=%.0f mb_per_sec=%.1f req_ms_p50=%.3f "
               "p99=%.3f requests=%ld\n",
               recs, size, nconns, per_batch, in_flight, acks_s, secs,
               (double)recs / secs, (double)recs * (double)size / secs / 1e6,
               (double)lat[nlat / 2] / 1e6,
               (double)lat[(nlat * 99) / 100] / 1e6, total_req);
    }
    for (long i = 0; i < nconns; i++) {
        close(cs[i].fd);
        free(cs[i].t0);
        free(cs[i].in);
    }
    for (int k = 0; k < NBATCH; k++)
        free(frames[k]);
    sl_arena_fini(&arena);
    free(cs);
    free(lat);
    free(pool);
    close(ep);
    return 0;
}
