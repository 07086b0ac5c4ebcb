/*
 * test_client_roundtrip.c - libsluice against a real sluiced.
 *
 *   test_client_integration HOST:PORT
 *
 * Run by tests/integration/test_client.py, which spawns sluiced (port 0,
 * temp dir) through the harness. Each check prints the line on failure and
 * exits 1. Covers: producer batching with keys, headers, zstd and delivery
 * reports; consumer assign/seek/seek_time/watermarks/poll_batch; stream
 * group subscribe + commit + resume; queue consumer ack/nack/reject/touch,
 * attempts and failures, DLQ, release on close; error codes.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice.h"

#define CHECK(c)                                                               \
    do {                                                                       \
        if (!(c)) {                                                            \
            fprintf(stderr, "%s:%d: CHECK(%s) failed (errstr: %s)\n",          \
                    __FILE__, __LINE__, #c, sluice_errstr());                  \
            exit(1);                                                           \
        }                                                                      \
    } while (0)
#define CHECK_OK(e)                                                            \
    do {                                                                       \
        sluice_err e_ = (e);                                                   \
        if (e_ != SLUICE_OK) {                                                 \
            fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #e,   \
                    sluice_errname(e_), sluice_errstr());                      \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

static const char *g_addr;

static sluice_conf *conf(void)
{
    sluice_conf *c = sluice_conf_new();
    CHECK(c);
    CHECK_OK(sluice_conf_set(c, "bootstrap", g_addr, NULL, 0));
    CHECK_OK(sluice_conf_set(c, "request.timeout.ms", "20000", NULL, 0));
    return c;
}

typedef struct reports {
    int n, failed;
    int64_t offs[3][1000]; /* per partition: offsets seen */
    int noffs[3];
    int sum_opaque;
} reports;

static void on_dr(const sluice_delivery *d, void *op)
{
    reports *r = op;
    r->n++;
    if (d->err) {
        r->failed++;
        return;
    }
    if (d->partition >= 0 && d->partition < 3 && r->noffs[d->partition] < 1000)
        r->offs[d->partition][r->noffs[d->partition]++] = d->offset;
    r->sum_opaque += (int)(intptr_t)d->opaque;
}

static void test_produce_consume(const char *compression)
{
    sluice_conf *c = conf();
    sluice_admin *a;
    sluice_producer *p;
    sluice_consumer *cs;
    sluice_message *msgs[256];
    reports r;
    char topic[64], key[32], val[64], err[256];
    sluice_header h = {"trace", 5, "abc", 3};
    int i, seen[600] = {0}, total = 0;
    size_t n, k;
    int64_t lo, hi, off;

    memset(&r, 0, sizeof(r));
    snprintf(topic, sizeof(topic), "rt-%s", compression);
    CHECK_OK(sluice_admin_new(c, &a, err, sizeof(err)));
    CHECK_OK(sluice_admin_create_topic(a, topic, 3, NULL, 0));
    CHECK(sluice_admin_create_topic(a, topic, 3, NULL, 0) ==
          SLUICE_ERR_TOPIC_EXISTS);
    CHECK(strstr(sluice_errstr(), topic));

    CHECK_OK(sluice_conf_set(c, "compression", compression, NULL, 0));
    CHECK_OK(sluice_conf_set(c, "batch.records", "50", NULL, 0));
    sluice_conf_set_delivery_cb(c, on_dr, &r);
    CHECK_OK(sluice_producer_new(c, &p, err, sizeof(err)));
    for (i = 0; i < 600; i++) {
        int kl = snprintf(key, sizeof(key), "k%d", i % 17);
        int vl = snprintf(val, sizeof(val), "value-%d", i);
        CHECK_OK(sluice_producer_send(p, topic, SLUICE_PARTITION_ANY, key,
                                      (size_t)kl, val, (size_t)vl, &h, 1, 0,
                                      (void *)(intptr_t)1));
    }
    CHECK(sluice_producer_send(p, topic, 7, NULL, 0, "x", 1, NULL, 0, 0,
                               NULL) == SLUICE_ERR_UNKNOWN_PARTITION);
    CHECK_OK(sluice_producer_flush(p, 20000));
    CHECK(sluice_producer_outstanding(p) == 0);
    CHECK(r.n == 600);
    CHECK(r.failed == 0);
    CHECK(r.sum_opaque == 600);
    /* offsets per partition are 0..n-1, each once */
    for (i = 0; i < 3; i++) {
        int j, m = r.noffs[i];
        int64_t max = -1;
        for (j = 0; j < m; j++)
            max = r.offs[i][j] > max ? r.offs[i][j] : max;
        CHECK(max == m - 1);
    }
    CHECK(r.noffs[0] + r.noffs[1] + r.noffs[2] == 600);

    /* consume everything back */
    CHECK_OK(sluice_consumer_new(c, &cs, err, sizeof(err)));
    CHECK(sluice_consumer_poll(cs, 0, &msgs[0]) == SLUICE_ERR_INVALID_ARG);
    CHECK_OK(sluice_consumer_assign_topic(cs, topic, SLUICE_OFFSET_BEGINNING));
    while (total < 600) {
        sluice_err e = sluice_consumer_poll_batch(cs, 5000, msgs, 256, &n);
        CHECK_OK(e);
        for (k = 0; k < n; k++) {
            sluice_message *m = msgs[k];
            const sluice_header *mh = sluice_message_header(m, "trace");
            int idx;
            CHECK(m->value_len > 6 && !memcmp(m->value, "value-", 6));
            idx = atoi((const char *)m->value + 6);
            CHECK(idx >= 0 && idx < 600 && !seen[idx]);
            seen[idx] = 1;
            snprintf(key, sizeof(key), "k%d", idx % 17);
            CHECK(m->key_len == strlen(key) &&
                  !memcmp(m->key, key, m->key_len));
            CHECK(m->partition ==
                  sluice_partition_for_key(key, strlen(key), 3));
            CHECK(mh && mh->value_len == 3 && !memcmp(mh->value, "abc", 3));
            CHECK(!strcmp(m->topic, topic));
            CHECK(m->timestamp > 1600000000000LL);
            CHECK(m->attempts == 0);
            total++;
        }
        /* messages outlive later polls: free them late */
        for (k = 0; k < n; k++)
            sluice_message_free(msgs[k]);
    }
    CHECK(sluice_consumer_poll(cs, 200, &msgs[0]) == SLUICE_ERR_TIMEOUT);

    /* watermarks and seek */
    CHECK_OK(sluice_consumer_watermarks(cs, topic, 1, &lo, &hi));
    CHECK(lo == 0 && hi == r.noffs[1]);
    CHECK(hi >= 2);
    CHECK_OK(sluice_consumer_seek(cs, topic, 1, hi - 2));
    CHECK_OK(sluice_consumer_poll(cs, 5000, &msgs[0]));
    CHECK(msgs[0]->partition == 1 && msgs[0]->offset == hi - 2);
    sluice_message_free(msgs[0]);
    CHECK(sluice_consumer_seek(cs, topic, 9, 0) == SLUICE_ERR_INVALID_ARG);
    /* by time: everything is older than now + 1 h -> log end */
    CHECK_OK(sluice_consumer_offset_for_time(cs, topic, 1,
                                             INT64_C(4102444800000), &off));
    CHECK(off == hi);
    CHECK_OK(sluice_consumer_offset_for_time(cs, topic, 1, 0, &off));
    CHECK(off == 0);
    CHECK_OK(sluice_consumer_seek_time(cs, topic, -1, 0));
    CHECK_OK(sluice_consumer_poll(cs, 5000, &msgs[0]));
    CHECK(msgs[0]->offset == 0);
    sluice_message_free(msgs[0]);

    sluice_consumer_free(cs);
    sluice_producer_free(p);
    sluice_admin_free(a);
    sluice_conf_free(c);
}

static int consume_n(sluice_consumer *cs, int want, int *seen)
{
    int got = 0;
    while (got < want) {
        sluice_message *m;
        sluice_err e = sluice_consumer_poll(cs, want == 1 ? 300 : 5000, &m);
        if (e == SLUICE_ERR_TIMEOUT)
            break;
        CHECK_OK(e);
        CHECK(!seen[m->offset]);
        seen[m->offset] = 1;
        sluice_message_free(m);
        got++;
    }
    return got;
}

static void test_group_commit_resume(void)
{
    sluice_conf *c = conf();
    sluice_producer *p;
    sluice_consumer *cs;
    const char *topics[1] = {"grp"};
    char err[256], v[16];
    int i, seen[100] = {0};
    int64_t off;

    CHECK_OK(sluice_producer_new(c, &p, err, sizeof(err)));
    for (i = 0; i < 100; i++) {
        int n = snprintf(v, sizeof(v), "%d", i);
        CHECK_OK(sluice_producer_send(p, "grp", 0, NULL, 0, v, (size_t)n, NULL,
                                      0, 0, NULL));
    }
    CHECK_OK(sluice_producer_flush(p, 20000));
    sluice_producer_free(p);

    CHECK_OK(sluice_conf_set(c, "group.id", "g-resume", NULL, 0));
    CHECK_OK(sluice_conf_set(c, "auto.offset.reset", "earliest", NULL, 0));
    CHECK_OK(sluice_consumer_new(c, &cs, err, sizeof(err)));
    CHECK_OK(sluice_consumer_subscribe(cs, topics, 1));
    CHECK(consume_n(cs, 40, seen) == 40);
    CHECK_OK(sluice_consumer_commit(cs));
    CHECK_OK(sluice_consumer_committed(cs, "grp", 0, &off));
    CHECK(off == 40);
    sluice_consumer_free(cs);

    /* a new member resumes at 40 and reads the remaining 60 */
    CHECK_OK(sluice_consumer_new(c, &cs, err, sizeof(err)));
    CHECK_OK(sluice_consumer_subscribe(cs, topics, 1));
    CHECK(consume_n(cs, 60, seen) == 60);
    for (i = 0; i < 100; i++)
        CHECK(seen[i]);
    CHECK(consume_n(cs, 1, seen) == 0 || !"more than 100 records");
    sluice_consumer_free(cs);
    sluice_conf_free(c);
}

/* Two members of one group split a 2-partition topic after a rebalance,
 * and together read every record once. */
static void test_group_rebalance(void)
{
    sluice_conf *c = conf();
    sluice_producer *p;
    sluice_consumer *c1, *c2;
    sluice_topic_partition *tps;
    const char *topics[1] = {"reb"};
    char err[256], v[16];
    int i, round, seen[2][40], got = 0, n1 = 0, n2 = 0;
    size_t na = 0, nb = 0;

    memset(seen, 0, sizeof(seen));
    CHECK_OK(sluice_conf_set(c, "heartbeat.interval.ms", "50", NULL, 0));
    CHECK_OK(sluice_conf_set(c, "fetch.max.wait.ms", "50", NULL, 0));
    CHECK_OK(sluice_producer_new(c, &p, err, sizeof(err)));
    {
        sluice_admin *a;
        CHECK_OK(sluice_admin_new(c, &a, err, sizeof(err)));
        CHECK_OK(sluice_admin_create_topic(a, "reb", 2, NULL, 0));
        sluice_admin_free(a);
    }
    for (i = 0; i < 40; i++) {
        int k = snprintf(v, sizeof(v), "%d", i);
        CHECK_OK(sluice_producer_send(p, "reb", i % 2, NULL, 0, v, (size_t)k,
                                      NULL, 0, 0, NULL));
    }
    CHECK_OK(sluice_producer_flush(p, 20000));
    sluice_producer_free(p);

    CHECK_OK(sluice_conf_set(c, "group.id", "g-reb", NULL, 0));
    CHECK_OK(sluice_conf_set(c, "auto.offset.reset", "earliest", NULL, 0));
    CHECK_OK(sluice_consumer_new(c, &c1, err, sizeof(err)));
    CHECK_OK(sluice_consumer_new(c, &c2, err, sizeof(err)));
    CHECK_OK(sluice_consumer_subscribe(c1, topics, 1));
    CHECK_OK(sluice_consumer_assignment(c1, &tps, &na));
    CHECK(na == 2); /* alone: both partitions */
    sluice_topic_partitions_free(tps, na);
    CHECK_OK(sluice_consumer_subscribe(c2, topics, 1));
    /* poll both until they have one partition each (c1 learns about the
     * rebalance from a heartbeat), without consuming anything yet */
    for (round = 0; round < 400; round++) {
        sluice_message *m;
        sluice_err e = sluice_consumer_poll(c1, 20, &m);
        if (e == SLUICE_OK) { /* c1 may read before it learns: keep it */
            seen[m->partition][m->offset]++;
            got++;
            n1++;
            sluice_message_free(m);
        }
        e = sluice_consumer_poll(c2, 20, &m);
        if (e == SLUICE_OK) {
            seen[m->partition][m->offset]++;
            got++;
            n2++;
            sluice_message_free(m);
        }
        CHECK_OK(sluice_consumer_assignment(c1, &tps, &na));
        sluice_topic_partitions_free(tps, na);
        CHECK_OK(sluice_consumer_assignment(c2, &tps, &nb));
        sluice_topic_partitions_free(tps, nb);
        if (na == 1 && nb == 1 && got >= 40)
            break;
    }
    CHECK(na == 1 && nb == 1);
    CHECK(n2 > 0);
    /* nothing committed: after the rebalance both start from 0, so records
     * may be read twice (at least once), never skipped */
    for (i = 0; i < 40; i++)
        CHECK(seen[i % 2][i / 2] >= 1);
    sluice_consumer_free(c1);
    sluice_consumer_free(c2);
    sluice_conf_free(c);
}

static void test_queue(void)
{
    sluice_conf *c = conf();
    sluice_producer *p;
    sluice_queue_consumer *q, *q2;
    sluice_consumer *dl;
    sluice_message *m, *msgs[16];
    char err[256], v[16];
    int i, acked = 0;
    int64_t dlat = 0;
    size_t n;
    sluice_err e;
    int was_held[10] = {0}, released = 0;

    CHECK_OK(sluice_producer_new(c, &p, err, sizeof(err)));
    for (i = 0; i < 10; i++) {
        int k = snprintf(v, sizeof(v), "job%d", i);
        CHECK_OK(sluice_producer_send(p, "jobs", 0, NULL, 0, v, (size_t)k, NULL,
                                      0, 0, NULL));
    }
    CHECK_OK(sluice_producer_flush(p, 20000));
    sluice_producer_free(p);

    CHECK_OK(sluice_conf_set(c, "queue.credits", "4", NULL, 0));
    CHECK(sluice_queue_consumer_new(c, "jobs", "", &q, err, sizeof(err)) ==
          SLUICE_ERR_INVALID_ARG);
    CHECK_OK(
        sluice_queue_consumer_new(c, "jobs", "workers", &q, err, sizeof(err)));
    /* offsets 0..3: ack 0, 1; nack 2 (redelivered); reject 3 (DLQ) */
    for (i = 0; i < 4; i++) {
        CHECK_OK(sluice_queue_consumer_poll(q, 5000, &msgs[i]));
        CHECK(msgs[i]->offset == i);
        CHECK(msgs[i]->attempts == 1 && msgs[i]->failures == 0);
        CHECK(msgs[i]->lock_deadline > 0);
    }
    CHECK_OK(sluice_queue_consumer_touch(q, 0, 1, 60000, &dlat));
    CHECK(dlat > 0);
    CHECK_OK(sluice_queue_consumer_ack(q, 0, 0));
    CHECK_OK(sluice_queue_consumer_ack(q, 0, 1));
    CHECK_OK(sluice_queue_consumer_nack(q, 0, 2, 0));
    CHECK_OK(sluice_queue_consumer_reject(q, 0, 3, "bad input"));
    CHECK_OK(sluice_queue_consumer_flush(q, 20000));
    for (i = 0; i < 4; i++)
        sluice_message_free(msgs[i]);
    /* a nack of a record we do not hold fails at flush, naming it */
    CHECK_OK(sluice_queue_consumer_nack(q, 0, 1, 0));
    e = sluice_queue_consumer_flush(q, 20000);
    CHECK(e == SLUICE_ERR_NOT_ACQUIRED);
    CHECK(strstr(sluice_errstr(), "offsets 1-1"));
    /* errors are reported once */
    CHECK_OK(sluice_queue_consumer_flush(q, 20000));
    /* the nacked record comes back with its counts */
    for (;;) {
        CHECK_OK(sluice_queue_consumer_poll(q, 5000, &m));
        if (m->offset == 2) {
            CHECK(m->attempts == 2 && m->failures == 1);
            CHECK_OK(sluice_queue_consumer_ack(q, 0, 2));
            sluice_message_free(m);
            break;
        }
        CHECK(m->offset >= 4);
        CHECK_OK(sluice_queue_consumer_ack(q, 0, m->offset));
        acked++;
        sluice_message_free(m);
    }
    CHECK_OK(sluice_queue_consumer_flush(q, 20000));
    /* hold some, close: they come back at once to another consumer */
    e = sluice_queue_consumer_poll_batch(q, 5000, msgs, 16, &n);
    CHECK(e == SLUICE_OK || e == SLUICE_ERR_TIMEOUT);
    if (e == SLUICE_ERR_TIMEOUT)
        n = 0;
    CHECK(sluice_queue_consumer_held(q) >= n);
    for (i = 0; i < (int)n; i++) {
        CHECK(msgs[i]->offset >= 4 && msgs[i]->offset <= 9);
        CHECK(msgs[i]->attempts == 1 && msgs[i]->failures == 0);
        was_held[msgs[i]->offset] = 1;
        sluice_message_free(msgs[i]);
    }
    /* close releases what q held with no failure counted (the broker does
     * it when q's connection closes; libsluice no longer nacks) */
    sluice_queue_consumer_free(q);
    CHECK_OK(
        sluice_queue_consumer_new(c, "jobs", "workers", &q2, err, sizeof(err)));
    while (acked + 3 < 9) { /* 0,1,2 done; 3 rejected; 4..9 remain */
        CHECK_OK(sluice_queue_consumer_poll(q2, 5000, &m));
        CHECK(m->offset >= 4 && m->offset <= 9);
        CHECK(m->failures == 0);
        /* held by q: delivered once before; others maybe (prefetched) */
        CHECK(was_held[m->offset] ? m->attempts == 2
                                  : m->attempts == 1 || m->attempts == 2);
        released += was_held[m->offset];
        CHECK_OK(sluice_queue_consumer_ack(q2, 0, m->offset));
        sluice_message_free(m);
        acked++;
    }
    CHECK_OK(sluice_queue_consumer_flush(q2, 20000));
    CHECK(released == (int)n);
    CHECK(sluice_queue_consumer_poll(q2, 300, &m) == SLUICE_ERR_TIMEOUT);
    sluice_queue_consumer_free(q2);

    /* the rejected record is in jobs.DLQ with its reason */
    CHECK_OK(sluice_consumer_new(c, &dl, err, sizeof(err)));
    CHECK_OK(
        sluice_consumer_assign_topic(dl, "jobs.DLQ", SLUICE_OFFSET_BEGINNING));
    CHECK_OK(sluice_consumer_poll(dl, 5000, &m));
    CHECK(m->value_len == 4 && !memcmp(m->value, "job3", 4));
    CHECK(sluice_message_header(m, "dlq.reason"));
    CHECK(
        !memcmp(sluice_message_header(m, "dlq.reason")->value, "rejected", 8));
    sluice_message_free(m);
    sluice_consumer_free(dl);
    sluice_conf_free(c);
}

static void test_admin(void)
{
    sluice_conf *c = conf();
    sluice_admin *a;
    sluice_topic_list *tl;
    sluice_topic_info *ti;
    sluice_group_list *gl;
    sluice_group_info *gi;
    sluice_dlq_list *dq;
    sluice_kv cfg = {"retention.ms", "3600000"};
    char err[256];
    size_t i;
    int found = 0;

    CHECK_OK(sluice_admin_new(c, &a, err, sizeof(err)));
    CHECK(sluice_admin_create_topic(a, "cfgd", 2, &cfg, 1) == SLUICE_OK ||
          sluice_admin_create_topic(a, "cfgd2", 2, NULL, 0) == SLUICE_OK);
    CHECK_OK(sluice_admin_list_topics(a, &tl));
    for (i = 0; i < tl->count; i++)
        if (!strcmp(tl->topics[i].name, "jobs"))
            found = 1;
    CHECK(found);
    sluice_topic_list_free(tl);
    CHECK_OK(sluice_admin_describe_topic(a, "jobs", &ti));
    CHECK(ti->partition_count == 1 && ti->partitions[0].log_end == 10);
    sluice_topic_info_free(ti);
    CHECK(sluice_admin_describe_topic(a, "nope", &ti) ==
          SLUICE_ERR_UNKNOWN_TOPIC);
    CHECK(strstr(sluice_errstr(), "nope"));
    CHECK_OK(sluice_admin_list_groups(a, &gl));
    found = 0;
    for (i = 0; i < gl->count; i++)
        if (!strcmp(gl->groups[i].name, "workers") &&
            gl->groups[i].kind == SLUICE_GROUP_QUEUE)
            found = 1;
    CHECK(found);
    sluice_group_list_free(gl);
    CHECK_OK(sluice_admin_describe_group(a, "workers", &gi));
    CHECK(gi->kind == SLUICE_GROUP_QUEUE);
    CHECK(gi->partition_count == 1);
    CHECK(gi->partitions[0].committed == 10); /* all done */
    CHECK(gi->dlq_topic && !strcmp(gi->dlq_topic, "jobs.DLQ"));
    sluice_group_info_free(gi);
    CHECK(sluice_admin_describe_group(a, "nogroup", &gi) ==
          SLUICE_ERR_UNKNOWN_GROUP);
    CHECK_OK(sluice_admin_dlq_list(a, "jobs", &dq));
    CHECK(dq->count == 1 && dq->dlqs[0].depth == 1);
    sluice_dlq_list_free(dq);
    CHECK_OK(sluice_admin_delete_topic(a, "cfgd2") == SLUICE_OK
                 ? SLUICE_OK
                 : sluice_admin_delete_topic(a, "cfgd"));
    sluice_admin_free(a);
    sluice_conf_free(c);
}

/* poll(0) in a loop (what event-loop integrations do) makes progress: it
 * sends the fetch/acquire and picks up the reply on a later call. */
static void test_poll_zero(void)
{
    sluice_conf *c = conf();
    sluice_producer *p;
    sluice_consumer *cs;
    sluice_queue_consumer *q;
    sluice_message *m = NULL;
    sluice_topic_partition tp = {"pz", 0, SLUICE_OFFSET_END};
    char err[256];
    long spins;
    sluice_err e = SLUICE_ERR_TIMEOUT;

    CHECK_OK(sluice_producer_new(c, &p, err, sizeof(err)));
    CHECK_OK(
        sluice_producer_send(p, "pz", 0, NULL, 0, "a", 1, NULL, 0, 0, NULL));
    CHECK_OK(sluice_producer_flush(p, 20000));
    CHECK_OK(sluice_consumer_new(c, &cs, err, sizeof(err)));
    CHECK_OK(sluice_consumer_assign(cs, &tp, 1));
    CHECK(sluice_consumer_poll(cs, 0, &m) == SLUICE_ERR_TIMEOUT);
    CHECK_OK(
        sluice_producer_send(p, "pz", 0, NULL, 0, "b", 1, NULL, 0, 0, NULL));
    CHECK_OK(sluice_producer_flush(p, 20000));
    for (spins = 0; spins < 50000000 && e == SLUICE_ERR_TIMEOUT; spins++)
        e = sluice_consumer_poll(cs, 0, &m);
    CHECK_OK(e);
    CHECK(m->offset == 1 && m->value_len == 1 && !memcmp(m->value, "b", 1));
    sluice_message_free(m);
    sluice_consumer_free(cs);

    CHECK_OK(sluice_queue_consumer_new(c, "pz", "pzq", &q, err, sizeof(err)));
    e = SLUICE_ERR_TIMEOUT;
    for (spins = 0; spins < 50000000 && e == SLUICE_ERR_TIMEOUT; spins++)
        e = sluice_queue_consumer_poll(q, 0, &m);
    CHECK_OK(e);
    CHECK(m->offset == 0);
    CHECK_OK(sluice_queue_consumer_ack(q, 0, 0));
    sluice_message_free(m);
    CHECK_OK(sluice_queue_consumer_flush(q, 20000));
    sluice_queue_consumer_free(q);
    sluice_producer_free(p);
    sluice_conf_free(c);
}

/* ---- several threads share one producer --------------------------------- */

static int g_thr_ok[4];

static void on_thr_dr(const sluice_delivery *d, void *op)
{
    (void)op;
    if (d->err == SLUICE_OK)
        __atomic_add_fetch(&g_thr_ok[(intptr_t)d->opaque], 1, __ATOMIC_RELAXED);
}

static sluice_producer *g_shared;

static void *thr_main(void *arg)
{
    intptr_t t = (intptr_t)arg;
    char v[32];
    int i;
    for (i = 0; i < 5000; i++) {
        int n = snprintf(v, sizeof(v), "t%d-%d", (int)t, i);
        CHECK_OK(sluice_producer_send(g_shared, "thr", SLUICE_PARTITION_ANY,
                                      NULL, 0, v, (size_t)n, NULL, 0, 0,
                                      (void *)t));
        if (i % 100 == 0)
            sluice_producer_poll(g_shared, 0);
    }
    CHECK_OK(sluice_producer_flush(g_shared, 30000));
    return NULL;
}

static void test_threads(void)
{
    sluice_conf *c = conf();
    sluice_consumer *cs;
    sluice_message *msgs[512];
    pthread_t th[4];
    char err[256];
    static unsigned char seen[4][5000];
    size_t n, k;
    int i, total = 0;

    sluice_conf_set_delivery_cb(c, on_thr_dr, NULL);
    CHECK_OK(sluice_conf_set(c, "batch.records", "64", NULL, 0));
    CHECK_OK(sluice_producer_new(c, &g_shared, err, sizeof(err)));
    for (i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, thr_main, (void *)(intptr_t)i);
    for (i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    CHECK_OK(sluice_producer_flush(g_shared, 30000));
    for (i = 0; i < 4; i++)
        CHECK(g_thr_ok[i] == 5000);
    sluice_producer_free(g_shared);
    CHECK_OK(sluice_consumer_new(c, &cs, err, sizeof(err)));
    CHECK_OK(sluice_consumer_assign_topic(cs, "thr", SLUICE_OFFSET_BEGINNING));
    while (total < 20000) {
        CHECK_OK(sluice_consumer_poll_batch(cs, 5000, msgs, 512, &n));
        for (k = 0; k < n; k++) {
            int t, j;
            char buf[32];
            snprintf(buf, sizeof(buf), "%.*s", (int)msgs[k]->value_len,
                     (const char *)msgs[k]->value);
            CHECK(sscanf(buf, "t%d-%d", &t, &j) == 2);
            CHECK(t >= 0 && t < 4 && j >= 0 && j < 5000 && !seen[t][j]);
            seen[t][j] = 1;
            sluice_message_free(msgs[k]);
            total++;
        }
    }
    sluice_consumer_free(cs);
    sluice_conf_free(c);
}

/* ---- reconnect after a broker restart (driven by test_client.py) -------- */

static int g_rc_ok[20], g_rc_err;

static void on_rc_dr(const sluice_delivery *d, void *op)
{
    (void)op;
    if (d->err == SLUICE_OK)
        g_rc_ok[(intptr_t)d->opaque]++;
    else
        g_rc_err++;
}

static int reconnect_main(void)
{
    sluice_conf *c = conf();
    sluice_producer *p;
    sluice_consumer *cs;
    sluice_message *m;
    char err[256], v[16], line[16];
    int i, attempt, next = 0;

    CHECK_OK(sluice_conf_set(c, "reconnect.backoff.ms", "0", NULL, 0));
    sluice_conf_set_delivery_cb(c, on_rc_dr, NULL);
    CHECK_OK(sluice_producer_new(c, &p, err, sizeof(err)));
    CHECK_OK(sluice_consumer_new(c, &cs, err, sizeof(err)));
    for (i = 0; i < 10; i++) {
        int n = snprintf(v, sizeof(v), "%d", i);
        CHECK_OK(sluice_producer_send(p, "rc", 0, NULL, 0, v, (size_t)n, NULL,
                                      0, 0, (void *)(intptr_t)i));
    }
    CHECK_OK(sluice_producer_flush(p, 20000));
    CHECK(g_rc_err == 0);
    {
        sluice_topic_partition tp = {"rc", 0, SLUICE_OFFSET_BEGINNING};
        CHECK_OK(sluice_consumer_assign(cs, &tp, 1));
    }
    for (i = 0; i < 10; i++) {
        CHECK_OK(sluice_consumer_poll(cs, 5000, &m));
        CHECK(m->offset == i);
        sluice_message_free(m);
    }
    printf("restart\n");
    fflush(stdout);
    CHECK(fgets(line, sizeof(line), stdin)); /* the broker is back */
    /* each record is retried until it is reported stored */
    for (i = 10; i < 20; i++) {
        for (attempt = 0; attempt < 5 && !g_rc_ok[i]; attempt++) {
            int n = snprintf(v, sizeof(v), "%d", i);
            sluice_err e =
                sluice_producer_send(p, "rc", 0, NULL, 0, v, (size_t)n, NULL, 0,
                                     0, (void *)(intptr_t)i);
            CHECK(e == SLUICE_OK || e == SLUICE_ERR_DISCONNECTED);
            sluice_producer_flush(p, 20000);
        }
        CHECK(g_rc_ok[i] == 1);
    }
    /* the consumer continues at offset 10 on the new connection */
    while (next < 10) {
        sluice_err e = sluice_consumer_poll(cs, 5000, &m);
        if (e == SLUICE_ERR_DISCONNECTED)
            continue; /* reported once, then it reconnects */
        CHECK_OK(e);
        CHECK(m->offset == 10 + next);
        CHECK(m->value_len == 2 && atoi((const char *)m->value) == 10 + next);
        sluice_message_free(m);
        next++;
    }
    sluice_consumer_free(cs);
    sluice_producer_free(p);
    sluice_conf_free(c);
    printf("ok\n");
    return 0;
}

/* reject HOST:PORT TOPIC GROUP N: acquire N records and reject them (for
 * the CLI's dlq tests). */
static int reject_main(const char *topic, const char *group, int n)
{
    sluice_conf *c = conf();
    sluice_queue_consumer *q;
    sluice_message *m;
    char err[256];
    int i;

    CHECK_OK(sluice_conf_set(c, "queue.prefetch", "false", NULL, 0));
    CHECK_OK(sluice_queue_consumer_new(c, topic, group, &q, err, sizeof(err)));
    for (i = 0; i < n; i++) {
        CHECK_OK(sluice_queue_consumer_poll(q, 5000, &m));
        CHECK_OK(sluice_queue_consumer_reject(q, m->partition, m->offset,
                                              "cli test"));
        sluice_message_free(m);
    }
    CHECK_OK(sluice_queue_consumer_flush(q, 20000));
    sluice_queue_consumer_free(q);
    sluice_conf_free(c);
    printf("ok\n");
    return 0;
}

/* nack HOST:PORT TOPIC GROUP N: N times acquire a record and nack it
 * (no delay), each settled before the next poll; prints "VALUE attempts=A"
 * per delivery and "none" when a poll found nothing (for the CLI's queue
 * group config tests). */
static int nack_main(const char *topic, const char *group, int n)
{
    sluice_conf *c = conf();
    sluice_queue_consumer *q;
    sluice_message *m;
    sluice_err e;
    char err[256];
    int i;

    CHECK_OK(sluice_conf_set(c, "queue.prefetch", "false", NULL, 0));
    CHECK_OK(sluice_queue_consumer_new(c, topic, group, &q, err, sizeof(err)));
    for (i = 0; i < n; i++) {
        e = sluice_queue_consumer_poll(q, 1000, &m);
        if (e == SLUICE_ERR_TIMEOUT) {
            printf("none\n");
            continue;
        }
        CHECK_OK(e);
        printf("%.*s attempts=%u\n", (int)m->value_len, (const char *)m->value,
               m->attempts);
        CHECK_OK(sluice_queue_consumer_nack(q, m->partition, m->offset, 0));
        sluice_message_free(m);
        CHECK_OK(sluice_queue_consumer_flush(q, 20000));
    }
    sluice_queue_consumer_free(q);
    sluice_conf_free(c);
    return 0;
}

/* sluice_admin_queue_group_config: upsert, describe, alter, errors. */
static void test_queue_group_config(void)
{
    sluice_conf *c = conf();
    sluice_admin *a;
    sluice_kv set[] = {
        {"max_deliveries", "3"}, {"lock-ms", "1234"}, {"key_ordered", "true"}};
    sluice_kv bad[] = {{"lock_ms", "99"}, {"max_delivery", "3"}};
    sluice_kv badv[] = {{"backoff_multiplier", "zero"}};
    sluice_kv *out = NULL;
    size_t n = 0, i, seen = 0;
    char err[256];

    CHECK_OK(sluice_admin_new(c, &a, err, sizeof(err)));
    /* a missing group: describe and alter fail, nothing is created */
    CHECK(sluice_admin_queue_group_config(a, "jobs", "qcfg",
                                          SLUICE_QGROUP_DESCRIBE, NULL, 0, &out,
                                          &n) == SLUICE_ERR_UNKNOWN_GROUP);
    CHECK(out == NULL && n == 0);
    CHECK(sluice_admin_queue_group_config(a, "jobs", "qcfg",
                                          SLUICE_QGROUP_ALTER, set, 1, &out,
                                          &n) == SLUICE_ERR_UNKNOWN_GROUP);
    CHECK(strstr(sluice_errstr(), "qcfg"));
    CHECK_OK(sluice_admin_queue_group_config(
        a, "jobs", "qcfg", SLUICE_QGROUP_UPSERT, set, 3, &out, &n));
    for (i = 0; i < n; i++) {
        if (!strcmp(out[i].key, "max_deliveries"))
            seen += !strcmp(out[i].value, "3");
        else if (!strcmp(out[i].key, "lock_ms"))
            seen += !strcmp(out[i].value, "1234");
        else if (!strcmp(out[i].key, "key_ordered"))
            seen += !strcmp(out[i].value, "1");
        else if (!strcmp(out[i].key, "backoff_max_ms"))
            seen += !strcmp(out[i].value, "60000"); /* default kept */
    }
    CHECK(seen == 4);
    sluice_kv_array_free(out, n);
    out = NULL;
    /* bad key: all or nothing, errstr names the key */
    CHECK(sluice_admin_queue_group_config(a, "jobs", "qcfg",
                                          SLUICE_QGROUP_ALTER, bad, 2, &out,
                                          &n) == SLUICE_ERR_INVALID_CONFIG);
    CHECK(strstr(sluice_errstr(), "'max_delivery'"));
    CHECK(out == NULL);
    CHECK(sluice_admin_queue_group_config(a, "jobs", "qcfg",
                                          SLUICE_QGROUP_UPSERT, badv, 1, NULL,
                                          NULL) == SLUICE_ERR_INVALID_CONFIG);
    CHECK(strstr(sluice_errstr(), "backoff_multiplier") &&
          strstr(sluice_errstr(), "zero"));
    CHECK(sluice_admin_queue_group_config(a, "jobs", "qcfg",
                                          SLUICE_QGROUP_DESCRIBE, set, 1, NULL,
                                          NULL) == SLUICE_ERR_INVALID_ARG);
    CHECK(sluice_admin_queue_group_config(a, "jobs", "", SLUICE_QGROUP_UPSERT,
                                          set, 1, NULL,
                                          NULL) == SLUICE_ERR_INVALID_ARG);
    CHECK_OK(sluice_admin_queue_group_config(
        a, "jobs", "qcfg", SLUICE_QGROUP_DESCRIBE, NULL, 0, &out, &n));
    seen = 0;
    for (i = 0; i < n; i++) {
        if (!strcmp(out[i].key, "lock_ms"))
            seen += !strcmp(out[i].value, "1234"); /* not 99 */
        else if (!strcmp(out[i].key, "backoff_multiplier"))
            seen += !strcmp(out[i].value, "2");
        else if (!strcmp(out[i].key, "stats.acks"))
            seen++;
    }
    CHECK(seen == 3);
    sluice_kv_array_free(out, n);
    sluice_admin_free(a);
    sluice_conf_free(c);
}

int main(int argc, char **argv)
{
    if (argc == 6 && !strcmp(argv[1], "reject")) {
        g_addr = argv[2];
        return reject_main(argv[3], argv[4], atoi(argv[5]));
    }
    if (argc == 6 && !strcmp(argv[1], "nack")) {
        g_addr = argv[2];
        return nack_main(argv[3], argv[4], atoi(argv[5]));
    }
    if (argc == 3 && !strcmp(argv[1], "reconnect")) {
        g_addr = argv[2];
        return reconnect_main();
    }
    if (argc != 2) {
        fprintf(stderr, "usage: %s [reconnect] HOST:PORT\n", argv[0]);
        return 2;
    }
    g_addr = argv[1];
    test_threads();
    test_poll_zero();
    test_produce_consume("none");
    test_produce_consume("zstd");
    test_group_commit_resume();
    test_group_rebalance();
    test_queue();
    test_admin();
    test_queue_group_config();
    printf("ok\n");
    return 0;
}
