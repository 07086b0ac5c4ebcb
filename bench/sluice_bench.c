/*
 * sluice_bench.c - sluice-bench: throughput and latency of sluiced over the
 * binary protocol, through libsluice.
 *
 *   sluice-bench [MODE] [-b HOST:PORT] [--records N] [--size B]
 *       [--producers P] [--consumers C] [--partitions N]
 *       [--acks none|written|durable] [--compression none|zstd]
 *       [--linger-ms MS] [--batch-size BYTES] [--credits N] [--topic T]
 *       [-X key=value]...
 *       (--credits N sets queue.credits and ack.batch.records; without
 *       it the queue consumers run libsluice's defaults; -X sets any
 *       libsluice key, e.g. -X queue.credits.max=32768)
 *       [--payload random|zeros] [--spread sticky|each]
 *
 *   MODE produce  P producer threads send N records in total; latency =
 *                 send() to delivery report (includes batching linger).
 *                 The clock starts once every producer is connected
 *                 and has the topic's metadata (the time that took is
 *                 printed on stderr): 256 connections' set-up was a
 *                 third of a 2 M-record run, not produce throughput. It
 *                 stops once every report is delivered, before the
 *                 producers are closed.
 *   MODE consume  the topic is filled with N records first (if short),
 *                 then C consumer threads read them from the beginning
 *                 (partitions split across threads); latency = time
 *                 between poll batches (ms).
 *   MODE queue    the topic is filled first (if short), then C queue
 *                 consumers in a new group (starting at the earliest
 *                 offset) acquire and ack N records (one ack per record,
 *                 coalesced into ranges by libsluice); latency = time of
 *                 each poll (ms).
 *                 --spread each: record i goes to partition i mod N
 *                 (one record per partition per batch when N is large);
 *                 sticky (default): the client's partitioner for records
 *                 without a key (one partition per batch).
 *   MODE stomp    see bench/sluice_bench_stomp.c (when built in).
 *   MODE produce-mux  see bench/sluice_bench_mux.c (N connections, one
 *                 thread).
 *
 * Output: one line of key=value (records/s, MB/s, latency p50/p99/p99.9/
 * max in ms) on stdout. produce adds what the process spent between the
 * clock's start and the last delivery report (set-up and teardown left
 * out): win_cpu_us (user+system, all threads), win_minflt (page
 * faults), win_vcsw and win_ivcsw (context switches: waits and
 * preemptions); with SLUICE_BENCH_PEER_PID=PID set (bench/conn_scaling.sh
 * sets it to the broker's), peer_cpu_us is that process's CPU over the
 * same window (its threads' schedstat).
 */
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "sluice.h"

typedef struct opts {
    const char *mode, *bootstrap, *topic, *acks, *compression, *payload;
    int spread_each; /* --spread each */
    long records, size, producers, consumers, partitions, linger_ms, batch_size,
        credits;
} opts;

static opts O = {.mode = "produce",
                 .bootstrap = "127.0.0.1:7410",
                 .acks = "durable",
                 .compression = "none",
                 .payload = "random",
                 .records = 1000000,
                 .size = 100,
                 .producers = 1,
                 .consumers = 1,
                 .partitions = 1,
                 .linger_ms = 5,
                 .batch_size = 262144,
                 .credits = 0}; /* 0: libsluice's default (adaptive) */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- latency samples ---------------------------------------------------- */

typedef struct lat {
    int64_t *v;
    size_t n, cap;
} lat;

static void lat_add(lat *l, int64_t ns)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 4096;
        int64_t *nv = realloc(l->v, ncap * sizeof(*nv));
        if (!nv)
            return;
        l->v = nv;
        l->cap = ncap;
    }
    l->v[l->n++] = ns;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Room for n samples, written once so that its pages are in memory: a
 * producer thread's samples then cost no realloc copy and no page fault
 * inside the measured window (256 threads' doubling arrays were 8% of
 * the client's page faults at 256 connections, issue 20). */
static void lat_prealloc(lat *l, size_t n)
{
    l->v = malloc(n * sizeof(*l->v));
    if (l->v) {
        memset(l->v, 0, n * sizeof(*l->v));
        l->cap = n;
    }
}

static void lat_merge(lat *dst, lat *src)
{
    size_t i;
    for (i = 0; i < src->n; i++)
        lat_add(dst, src->v[i]);
    free(src->v);
    src->v = NULL;
    src->n = src->cap = 0;
}

static double pct(lat *l, double p)
{
    size_t i;
    if (l->n == 0)
        return 0;
    i = (size_t)(p * (double)(l->n - 1));
    return (double)l->v[i] / 1e6;
}

/* Appended to report()'s line when set. */
static char g_extra[256];

static void report(const char *mode, long records, double secs, lat *l)
{
    qsort(l->v, l->n, sizeof(*l->v), cmp64);
    printf("mode=%s records=%ld size=%ld partitions=%ld producers=%ld "
           "consumers=%ld acks=%s compression=%s payload=%s secs=%.3f "
           "records_per_sec=%.0f mb_per_sec=%.1f lat_ms_p50=%.3f "
           "p99=%.3f p99.9=%.3f max=%.3f samples=%zu%s\n",
           mode, records, O.size, O.partitions, O.producers, O.consumers,
           O.acks, O.compression, O.payload, secs, (double)records / secs,
           (double)records * (double)O.size / secs / 1e6, pct(l, 0.5),
           pct(l, 0.99), pct(l, 0.999),
           l->n ? (double)l->v[l->n - 1] / 1e6 : 0.0, l->n, g_extra);
    fflush(stdout);
}

/* -X key=value: any libsluice setting, applied last */
static const char *xconf[32];
static int n_xconf;

static sluice_conf *base_conf(void)
{
    sluice_conf *c = sluice_conf_new();
    char err[256];
    char v[32];
    if (sluice_conf_set(c, "bootstrap", O.bootstrap, err, sizeof(err)) ||
        sluice_conf_set(c, "acks", O.acks, err, sizeof(err)) ||
        sluice_conf_set(c, "compression", O.compression, err, sizeof(err))) {
        fprintf(stderr, "sluice-bench: %s\n", err);
        exit(2);
    }
    snprintf(v, sizeof(v), "%ld", O.linger_ms);
    sluice_conf_set(c, "linger.ms", v, NULL, 0);
    snprintf(v, sizeof(v), "%ld", O.batch_size);
    sluice_conf_set(c, "batch.size", v, NULL, 0);
    if (O.credits > 0) { /* else the default client settings */
        snprintf(v, sizeof(v), "%ld", O.credits);
        sluice_conf_set(c, "queue.credits", v, NULL, 0);
        sluice_conf_set(c, "ack.batch.records", v, NULL, 0);
    }
    sluice_conf_set(c, "client.id", "sluice-bench", NULL, 0);
    for (int i = 0; i < n_xconf; i++) {
        char kv[256], *eq;
        snprintf(kv, sizeof(kv), "%s", xconf[i]);
        eq = strchr(kv, '=');
        if (!eq ||
            (*eq = '\0', sluice_conf_set(c, kv, eq + 1, err, sizeof(err)))) {
            fprintf(stderr, "sluice-bench: -X %s: %s\n", xconf[i],
                    eq ? err : "want key=value");
            exit(2);
        }
    }
    return c;
}

static void die(sluice_err e, const char *what)
{
    fprintf(stderr, "sluice-bench: %s: %s\n", what,
            *sluice_errstr() ? sluice_errstr() : sluice_strerror(e));
    exit(e == SLUICE_ERR_DISCONNECTED ? 3 : 1);
}

/* ---- produce ---------------------------------------------------------- */

typedef struct pworker {
    pthread_t th;
    long n;
    lat l;
    long failed;
    int sample_every;
    size_t start; /* where in the shared pool its values begin */
} pworker;

/* Every producer thread connects, then waits at g_ready with the main
 * thread, which then starts the clock and releases them at g_go
 * (run_produce); after its flush (every report delivered) each waits at
 * g_done, where the main thread stops the clock, and at g_close until it
 * has, before it closes its producer: as the connections' set-up, their
 * teardown (256 producers' connections and buffers) is not produce
 * throughput. Two barriers at each end: with one, 256 released threads
 * ran on the 2 cores before the main thread read the clock and its
 * CPU (the window started late, up to 2.3x the records/s and a third of
 * the CPU in some runs), and their teardown ran before it stopped. */
static pthread_barrier_t g_ready, g_go, g_done, g_close;

/* Values: consecutive slices of one 16 MiB pool (larger than any batch,
 * so zstd finds no repeats) of random printable bytes (6.6 bits of
 * entropy per byte), or constant 'x' (--payload zeros: compresses to
 * almost nothing). Made once, before the clock starts, and shared by the
 * producer threads (read only): one pool per thread cost 16 MiB and 16 M
 * rand_r calls each, inside the measured time, and made 64 or 256
 * producers a benchmark of the pool (issue 20, connection scaling). */
#define POOL (16u << 20)
static char *g_pool;

static void pool_make(void)
{
    size_t len = (size_t)O.size + POOL, k;
    unsigned seed = 1;
    if (g_pool)
        return;
    g_pool = malloc(len);
    if (!g_pool) {
        fprintf(stderr, "sluice-bench: out of memory\n");
        exit(1);
    }
    for (k = 0; k < len; k++)
        g_pool[k] =
            strcmp(O.payload, "random") ? 'x' : (char)(33 + rand_r(&seed) % 94);
}

static void on_dr(const sluice_delivery *d, void *opaque)
{
    pworker *w = opaque;
    if (d->err) {
        w->failed++;
        return;
    }
    if (d->opaque)
        lat_add(&w->l, now_ns() - (int64_t)(intptr_t)d->opaque);
}

static void *produce_thread(void *arg)
{
    pworker *w = arg;
    sluice_conf *c = base_conf();
    sluice_producer *p;
    char err[256];
    const char *val = g_pool;
    long i;
    sluice_err e;

    sluice_conf_set_delivery_cb(c, on_dr, w);
    e = sluice_producer_new(c, &p, err, sizeof(err));
    if (e)
        die(e, err);
    {
        int32_t np = 0; /* the metadata too: a connection to the leader */
        (void)sluice_producer_partitions(p, O.topic, &np);
    }
    pthread_barrier_wait(&g_ready);
    pthread_barrier_wait(&g_go);
    for (i = 0; i < w->n; i++) {
        void *op =
            (i % w->sample_every) == 0 ? (void *)(intptr_t)now_ns() : NULL;
        size_t at = (w->start + (size_t)i * (size_t)O.size) % POOL;
        int32_t part =
            O.spread_each ? (int32_t)(i % O.partitions) : SLUICE_PARTITION_ANY;
        e = sluice_producer_send(p, O.topic, part, NULL, 0, val + at,
                                 (size_t)O.size, NULL, 0, 0, op);
        if (e)
            die(e, "send");
        if ((i & 1023) == 0)
            sluice_producer_poll(p, 0);
    }
    e = sluice_producer_flush(p, -1);
    if (e)
        die(e, "flush");
    pthread_barrier_wait(&g_done);
    pthread_barrier_wait(&g_close);
    sluice_producer_free(p);
    sluice_conf_free(c);
    return NULL;
}

/* CPU of process pid's threads so far, ns (the sum of their schedstat
 * run times; threads that ended are left out, so only a broker's
 * long-lived threads count); -1 without pid. */
static int64_t peer_cpu_ns(long pid)
{
    char path[64], line[128];
    int64_t sum = 0;
    FILE *f;
    DIR *d;
    struct dirent *e;
    if (pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%ld/task", pid);
    d = opendir(path);
    if (!d)
        return -1;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/task/%.16s/schedstat", pid,
                 e->d_name);
        f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(line, sizeof(line), f))
            sum += strtoll(line, NULL, 10);
        fclose(f);
    }
    closedir(d);
    return sum;
}

static int64_t tv_us(struct timeval t)
{
    return (int64_t)t.tv_sec * 1000000 + t.tv_usec;
}

static void run_produce(long records, int quiet)
{
    struct rusage u0, u1;
    const char *peer = getenv("SLUICE_BENCH_PEER_PID");
    long peer_pid = peer ? strtol(peer, NULL, 10) : 0;
    int64_t peer0 = -1, peer1 = -1;
    double secs;
    pworker *ws = calloc((size_t)O.producers, sizeof(*ws));
    lat all = {0};
    int64_t t0;
    long i, failed = 0;
    /* latency of every 16th record: enough samples for p99.9 without a
     * clock read per record */
    int every = 16;

    pool_make();
    pthread_barrier_init(&g_ready, NULL, (unsigned)O.producers + 1);
    pthread_barrier_init(&g_go, NULL, (unsigned)O.producers + 1);
    pthread_barrier_init(&g_done, NULL, (unsigned)O.producers + 1);
    pthread_barrier_init(&g_close, NULL, (unsigned)O.producers + 1);
    t0 = now_ns();
    for (i = 0; i < O.producers; i++) {
        ws[i].n = records / O.producers + (i < records % O.producers);
        ws[i].sample_every = every;
        lat_prealloc(&ws[i].l, (size_t)(ws[i].n / every) + 1);
        ws[i].start = (size_t)i * (POOL / (size_t)O.producers);
        pthread_create(&ws[i].th, NULL, produce_thread, &ws[i]);
    }
    pthread_barrier_wait(&g_ready);
    if (!quiet)
        fprintf(stderr, "sluice-bench: %ld producer(s) connected in %.3f s\n",
                O.producers, (double)(now_ns() - t0) / 1e9);
    peer0 = peer_cpu_ns(peer_pid);
    getrusage(RUSAGE_SELF, &u0);
    t0 = now_ns();
    pthread_barrier_wait(&g_go);
    pthread_barrier_wait(&g_done); /* every report delivered */
    secs = (double)(now_ns() - t0) / 1e9;
    peer1 = peer_cpu_ns(peer_pid);
    getrusage(RUSAGE_SELF, &u1);
    pthread_barrier_wait(&g_close);
    for (i = 0; i < O.producers; i++) {
        pthread_join(ws[i].th, NULL);
        failed += ws[i].failed;
        lat_merge(&all, &ws[i].l);
    }
    if (!quiet) {
        int n = snprintf(g_extra, sizeof(g_extra),
                         " win_cpu_us=%" PRId64 " win_minflt=%ld win_vcsw=%ld "
                         "win_ivcsw=%ld",
                         tv_us(u1.ru_utime) - tv_us(u0.ru_utime) +
                             tv_us(u1.ru_stime) - tv_us(u0.ru_stime),
                         u1.ru_minflt - u0.ru_minflt, u1.ru_nvcsw - u0.ru_nvcsw,
                         u1.ru_nivcsw - u0.ru_nivcsw);
        if (peer0 >= 0 && peer1 >= 0 && n > 0 && (size_t)n < sizeof(g_extra))
            snprintf(g_extra + n, sizeof(g_extra) - (size_t)n,
                     " peer_cpu_us=%" PRId64, (peer1 - peer0) / 1000);
        report("produce", records, secs, &all);
        g_extra[0] = '\0';
    }
    if (failed) {
        fprintf(stderr, "sluice-bench: %ld records failed\n", failed);
        exit(1);
    }
    pthread_barrier_destroy(&g_ready);
    pthread_barrier_destroy(&g_go);
    pthread_barrier_destroy(&g_done);
    pthread_barrier_destroy(&g_close);
    free(all.v);
    free(ws);
}

/* Make sure the topic exists with the partitions and holds >= records. */
static void prepare_topic(long records)
{
    sluice_conf *c = base_conf();
    sluice_admin *a;
    sluice_topic_info *t;
    char err[256];
    long have = 0;
    int32_t i;
    sluice_err e = sluice_admin_new(c, &a, err, sizeof(err));
    if (e)
        die(e, err);
    e = sluice_admin_create_topic(a, O.topic, (int32_t)O.partitions, NULL, 0);
    if (e && e != SLUICE_ERR_TOPIC_EXISTS)
        die(e, "create topic");
    e = sluice_admin_describe_topic(a, O.topic, &t);
    if (e)
        die(e, "describe topic");
    for (i = 0; i < t->partition_count; i++)
        have += (long)(t->partitions[i].log_end - t->partitions[i].log_start);
    O.partitions = t->partition_count;
    sluice_topic_info_free(t);
    sluice_admin_free(a);
    sluice_conf_free(c);
    if (have < records) {
        fprintf(stderr, "sluice-bench: filling %s with %ld records\n", O.topic,
                records - have);
        run_produce(records - have, 1);
    }
}

/* ---- consume ---------------------------------------------------------- */

typedef struct cworker {
    pthread_t th;
    int idx;
    long want; /* records this worker must read */
    long got;
    lat l;
} cworker;

static void *consume_thread(void *arg)
{
    cworker *w = arg;
    sluice_conf *c = base_conf();
    sluice_consumer *cs;
    sluice_topic_partition *tps;
    sluice_message *msgs[1024];
    size_t n, k, np = 0;
    long p;
    char err[256];
    int64_t last = 0;
    sluice_err e;

    sluice_conf_set(c, "fetch.max.bytes", "8388608", NULL, 0);
    e = sluice_consumer_new(c, &cs, err, sizeof(err));
    if (e)
        die(e, err);
    tps = calloc((size_t)O.partitions, sizeof(*tps));
    for (p = w->idx; p < O.partitions; p += O.consumers) {
        tps[np].topic = O.topic;
        tps[np].partition = (int32_t)p;
        tps[np].offset = SLUICE_OFFSET_BEGINNING;
        np++;
    }
    e = sluice_consumer_assign(cs, tps, np);
    if (e)
        die(e, "assign");
    while (w->got < w->want) {
        e = sluice_consumer_poll_batch(cs, 1000, msgs, 1024, &n);
        if (e == SLUICE_ERR_TIMEOUT)
            break;
        if (e)
            die(e, "poll");
        if (last)
            lat_add(&w->l, now_ns() - last);
        last = now_ns();
        for (k = 0; k < n; k++)
            sluice_message_free(msgs[k]);
        w->got += (long)n;
    }
    free(tps);
    sluice_consumer_free(cs);
    sluice_conf_free(c);
    return NULL;
}

static long partition_count_records(int32_t part)
{
    sluice_conf *c = base_conf();
    sluice_admin *a;
    sluice_topic_info *t;
    char err[256];
    long n = 0;
    sluice_err e = sluice_admin_new(c, &a, err, sizeof(err));
    if (e)
        die(e, err);
    e = sluice_admin_describe_topic(a, O.topic, &t);
    if (e)
        die(e, "describe topic");
    if (part < t->partition_count)
        n = (long)(t->partitions[part].log_end - t->partitions[part].log_start);
    sluice_topic_info_free(t);
    sluice_admin_free(a);
    sluice_conf_free(c);
    return n;
}

static void run_consume(void)
{
    cworker *ws;
    lat all = {0};
    long i, p, total = 0;
    int64_t t0;

    prepare_topic(O.records);
    if (O.consumers > O.partitions)
        O.consumers = O.partitions;
    ws = calloc((size_t)O.consumers, sizeof(*ws));
    for (i = 0; i < O.consumers; i++) {
        ws[i].idx = (int)i;
        for (p = i; p < O.partitions; p += O.consumers)
            ws[i].want += partition_count_records((int32_t)p);
    }
    t0 = now_ns();
    for (i = 0; i < O.consumers; i++)
        pthread_create(&ws[i].th, NULL, consume_thread, &ws[i]);
    for (i = 0; i < O.consumers; i++) {
        pthread_join(ws[i].th, NULL);
        total += ws[i].got;
        lat_merge(&all, &ws[i].l);
    }
    report("consume", total, (double)(now_ns() - t0) / 1e9, &all);
    free(all.v);
    free(ws);
}

/* ---- queue ------------------------------------------------------------ */

static atomic_long g_queue_left;

static void *queue_thread(void *arg)
{
    cworker *w = arg;
    sluice_conf *c = base_conf();
    sluice_queue_consumer *q;
    sluice_message *msgs[1024];
    size_t n, k;
    char err[256], group[300];
    int64_t t;
    sluice_err e;

    /* a new group per run: it starts at the earliest offset */
    snprintf(group, sizeof(group), "%s-workers-%ld", O.topic, (long)getpid());
    e = sluice_queue_consumer_new(c, O.topic, group, &q, err, sizeof(err));
    if (e)
        die(e, err);
    while (atomic_load(&g_queue_left) > 0) {
        t = now_ns();
        e = sluice_queue_consumer_poll_batch(q, 200, msgs, 1024, &n);
        if (e == SLUICE_ERR_TIMEOUT)
            continue;
        if (e)
            die(e, "queue poll");
        lat_add(&w->l, now_ns() - t);
        for (k = 0; k < n; k++) {
            e = sluice_queue_consumer_ack(q, msgs[k]->partition,
                                          msgs[k]->offset);
            if (e)
                die(e, "ack");
            sluice_message_free(msgs[k]);
        }
        w->got += (long)n;
        atomic_fetch_sub(&g_queue_left, (long)n);
    }
    e = sluice_queue_consumer_flush(q, -1);
    if (e)
        die(e, "ack flush");
    sluice_queue_consumer_free(q);
    sluice_conf_free(c);
    return NULL;
}

static void run_queue(void)
{
    cworker *ws = calloc((size_t)O.consumers, sizeof(*ws));
    lat all = {0};
    long i, total = 0;
    int64_t t0;

    prepare_topic(O.records);
    atomic_store(&g_queue_left, O.records);
    t0 = now_ns();
    for (i = 0; i < O.consumers; i++)
        pthread_create(&ws[i].th, NULL, queue_thread, &ws[i]);
    for (i = 0; i < O.consumers; i++) {
        pthread_join(ws[i].th, NULL);
        total += ws[i].got;
        lat_merge(&all, &ws[i].l);
    }
    report("queue", total, (double)(now_ns() - t0) / 1e9, &all);
    free(all.v);
    free(ws);
}

/* ---- main ------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: sluice-bench [produce|consume|queue%s] [-b HOST:PORT]\n"
            "  [--records N] [--size BYTES] [--producers P] [--consumers C]\n"
            "  [--partitions N] [--acks none|written|durable]\n"
            "  [--compression none|zstd] [--linger-ms MS]\n"
            "  [--batch-size BYTES] [--credits N] [--topic NAME]\n"
            "  [-X key=value (a libsluice setting)]...\n"
            "  [--payload random|zeros] [--spread sticky|each]\n",
            "|stomp");
}

static long num(const char *opt, const char *v, long min)
{
    char *end;
    long n;
    if (!v) {
        fprintf(stderr, "sluice-bench: %s needs a value\n", opt);
        exit(2);
    }
    n = strtol(v, &end, 10);
    if (*end || end == v || n < min) {
        fprintf(stderr, "sluice-bench: %s '%s': expected a number >= %ld\n",
                opt, v, min);
        exit(2);
    }
    return n;
}

int main(int argc, char **argv)
{
    static char topic[128];
    int i;

    if (argc > 1 && !strcmp(argv[1], "produce-mux"))
        return sl_bench_mux_main(argc, argv);
    if (argc > 1 && !strcmp(argv[1], "stomp")) {
        return sl_bench_stomp_main(argc, argv);
    }
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "produce") || !strcmp(a, "consume") ||
            !strcmp(a, "queue")) {
            O.mode = a;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!v || a[0] != '-') {
            fprintf(stderr, "sluice-bench: unexpected '%s'\n", a);
            usage(stderr);
            return 2;
        }
        i++;
        if (!strcmp(a, "-b"))
            O.bootstrap = v;
        else if (!strcmp(a, "--topic"))
            O.topic = v;
        else if (!strcmp(a, "--acks"))
            O.acks = v;
        else if (!strcmp(a, "--compression"))
            O.compression = v;
        else if (!strcmp(a, "--spread")) {
            if (!v || (strcmp(v, "sticky") && strcmp(v, "each"))) {
                fprintf(stderr, "sluice-bench: --spread sticky|each\n");
                return 2;
            }
            O.spread_each = !strcmp(v, "each");
        } else if (!strcmp(a, "--payload")) {
            if (strcmp(v, "random") && strcmp(v, "zeros")) {
                fprintf(stderr, "sluice-bench: --payload random|zeros\n");
                return 2;
            }
            O.payload = v;
        } else if (!strcmp(a, "--records"))
            O.records = num(a, v, 1);
        else if (!strcmp(a, "--size"))
            O.size = num(a, v, 1);
        else if (!strcmp(a, "--producers"))
            O.producers = num(a, v, 1);
        else if (!strcmp(a, "--consumers"))
            O.consumers = num(a, v, 1);
        else if (!strcmp(a, "--partitions"))
            O.partitions = num(a, v, 1);
        else if (!strcmp(a, "--linger-ms"))
            O.linger_ms = num(a, v, 0);
        else if (!strcmp(a, "--batch-size"))
            O.batch_size = num(a, v, 1024);
        else if (!strcmp(a, "--credits"))
            O.credits = num(a, v, 1);
        else if (!strcmp(a, "-X") && n_xconf < 32)
            xconf[n_xconf++] = v;
        else {
            fprintf(stderr, "sluice-bench: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!O.topic) {
        snprintf(topic, sizeof(topic), "bench-%s-%ld", O.mode, (long)getpid());
        O.topic = topic;
    }
    if (!strcmp(O.mode, "produce")) {
        /* create it with the partitions asked for (thousands of them
         * take a while: no request timeout for that one) */
        sluice_conf *c = base_conf();
        sluice_admin *a;
        char err[256];
        sluice_conf_set(c, "request.timeout.ms", "3600000", err, sizeof(err));
        sluice_err e = sluice_admin_new(c, &a, err, sizeof(err));
        if (e)
            die(e, err);
        e = sluice_admin_create_topic(a, O.topic, (int32_t)O.partitions, NULL,
                                      0);
        if (e && e != SLUICE_ERR_TOPIC_EXISTS)
            die(e, "create topic");
        sluice_admin_free(a);
        sluice_conf_free(c);
        run_produce(O.records, 0);
    } else if (!strcmp(O.mode, "consume")) {
        run_consume();
    } else {
        run_queue();
    }
    return 0;
}
