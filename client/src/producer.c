/*
 * producer.c - sluice_producer: batching by partition (accum.c), pipelined
 * PRODUCE requests, delivery reports.
 *
 * No background thread: batches are sent from send() when they fill up,
 * and from send/poll/flush when linger.ms expired. Replies are read in
 * poll/flush (and in send when max.in.flight, queue.max.records or,
 * with a batch due, the process's max.in.flight.process.bytes is
 * reached: past that a producer with a request in flight waits for a
 * reply before it sends another, so many producers in one process do not
 * all run up to max.in.flight batches ahead of the broker in fresh
 * memory; one with nothing in flight always sends). Reports are queued under
 * the mutex and handed to the delivery callback by poll/flush with the mutex
 * released.
 *
 * A request carries at most one batch per (topic, partition), so the
 * reply's base offset for a partition is the base offset of that batch.
 *
 * Routing and retries (docs/cluster.md section 5, route.c): each request
 * goes to the connection of its partitions' leader (all its batches share
 * one). A batch that fails with an error a resend may cure (NOT_LEADER,
 * NOT_ENOUGH_REPLICAS, a lost or silent connection, a broker shutting
 * down, a stale leader epoch; sl_cl_retriable; and OUT_OF_ORDER_SEQUENCE
 * while a batch of the partition with a lower sequence waits for a resend
 * or is in flight: that batch is the gap) goes to the retry list with its
 * encoded bytes
 * unchanged (so the broker's idempotence can recognise a resend), the
 * metadata is marked stale, and after retry.backoff.ms the list goes back
 * to the front of the accumulator's ready list, in order, to be routed
 * again with fresh metadata. A batch is failed with its last error once
 * delivery.timeout.ms has passed since it was created.
 *
 * Order within a partition: a batch is not sent while an older batch of
 * its partition waits in the retry list, or is in flight on another
 * connection than the one it would go to (sl_pr_blocked(); it waits in the
 * retry list behind them). A lost connection requeues everything in
 * flight on it, in order. Without idempotence a resend of a batch the
 * broker had stored before the connection broke stores it twice.
 *
 * Idempotence (enable.idempotence, default on with acks written or
 * durable; docs/cluster.md 4): before the first batch is encoded the
 * producer asks INIT_PRODUCER_ID once (idem.c), and accum.c stamps the
 * id, epoch and each partition's next sequence into every batch when it
 * encodes it, once; a resent batch keeps its bytes, so the broker answers
 * a resend of a stored batch with its original offsets instead of
 * storing it twice. A batch that fails for good leaves a gap in its
 * partition's sequences, so after any failed batch the producer asks for
 * the next epoch of its id (sequences restart at 0). A broker without the
 * api (UNSUPPORTED_API) turns idempotence off for this producer.
 *
 * The delivery reports, the retry list and the order within a partition,
 * the producer id and the KIP-360 recovery (a leader that lost this
 * producer's state) are in producer_retry.c.
 */
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "client/src/producer_int.h"
#include "protocol/api.h"

/* A reply later than request.timeout.ms by this much: the connection is
 * considered dead (a paused broker) and its requests are resent. The
 * broker answers TIMEOUT itself at request.timeout.ms. */
#define REPLY_SLACK_MS 1000

/* Unsent request bytes the producer may keep while it goes on batching. */
#define OUT_PENDING (4u * 1024 * 1024)

/* Batch bytes in flight over every producer of the process, against
 * max.in.flight.process.bytes (drain). */
static size_t g_inflight_bytes;

/* ---- in flight -------------------------------------------------------- */

/* The flight state of b's partition (accum.h). */
static sl_accum_flight *flight_of(sluice_producer *p, const sl_pbatch *b)
{
    return &p->acc.topics[b->tidx].flight[b->partition];
}

static void unlink_inflight(sluice_producer *p, inflight *f, inflight *prev)
{
    const sl_pbatch *b;
    for (b = f->batches; b; b = b->next)
        flight_of(p, b)->n--;
    if (prev)
        prev->next = f->next;
    else
        p->if_head = f->next;
    if (p->if_tail == f)
        p->if_tail = prev;
    p->n_inflight--;
    __atomic_sub_fetch(&g_inflight_bytes, f->bytes, __ATOMIC_RELAXED);
}

/* Connection c is gone (or silent): everything in flight on it is
 * resent or failed with err, in order. The caller closes c. */
static void fail_conn(sluice_producer *p, sl_cl_conn *c, sl_err err)
{
    inflight *f, *nf, *prev = NULL;
    sl_pbatch *b, *nb;
    for (f = p->if_head; f; f = nf) {
        nf = f->next;
        if (f->conn != c) {
            prev = f;
            continue;
        }
        unlink_inflight(p, f, prev);
        for (b = f->batches; b; b = nb) {
            nb = b->next;
            sl_pr_retry_or_report(p, b, err);
        }
        free(f);
    }
    sl_cl_route_failed(&p->rt, c);
}

static void drop_conn(sluice_producer *p, sl_cl_conn *c, sl_err err)
{
    fail_conn(p, c, err);
    sl_cl_conn_close(c);
}

static void handle_produce_resp(sluice_producer *p, inflight *f,
                                const uint8_t *body, size_t len)
{
    sl_produce_resp resp;
    sl_err rc;
    sl_pbatch *b, *nb;
    uint32_t t, i, ht = 0, hi = 0;
    int htidx = -1; /* the topic index resp.topics[ht] was found to be */

    sl_arena_reset(&p->arena);
    rc = sl_produce_resp_decode(body, len, &p->arena, &resp);
    if (rc != SL_OK)
        resp.error = SL_ERR_PROTOCOL;
    for (b = f->batches; b; b = nb) {
        int64_t base = -1;
        sl_err e = resp.error ? (sl_err)resp.error : SL_ERR_PROTOCOL;
        nb = b->next;
        if (resp.error == SL_OK) {
            /* the broker answers in the request's order: look where the
             * last batch's answer was first (a request of 10,000 batches
             * searched 10,000 answers for each) */
            const char *tn = p->acc.topics[b->tidx].name;
            const sl_produce_part_resp *pr = NULL;
            if (ht < resp.ntopics && hi < resp.topics[ht].nparts &&
                (int32_t)resp.topics[ht].parts[hi].partition == b->partition &&
                (b->tidx == htidx || sl_str_eq(resp.topics[ht].topic, tn)))
                pr = &resp.topics[ht].parts[hi];
            for (t = 0; !pr && t < resp.ntopics; t++) {
                if (!sl_str_eq(resp.topics[t].topic, tn))
                    continue;
                for (i = 0; i < resp.topics[t].nparts; i++)
                    if ((int32_t)resp.topics[t].parts[i].partition ==
                        b->partition) {
                        pr = &resp.topics[t].parts[i];
                        ht = t;
                        hi = i;
                        break;
                    }
            }
            if (pr) {
                e = (sl_err)pr->error;
                base = pr->base_offset;
                htidx = b->tidx;
                hi++;
            }
        }
        if (e == SL_ERR_UNKNOWN_TOPIC || e == SL_ERR_UNKNOWN_PARTITION)
            p->meta[b->tidx].confirmed = 0;
        if (e == SL_ERR_DUPLICATE_SEQUENCE) {
            /* a resend of a batch stored long ago: delivered, offsets no
             * longer known (docs/protocol.md 4.5) */
            e = SL_OK;
            base = -1;
        }
        if (e == SL_ERR_TIMEOUT || e == SL_ERR_NOT_ENOUGH_REPLICAS)
            /* a leader that cannot replicate may be cut off from the
             * others and not know it was replaced: ask them first */
            sl_cl_route_failed(&p->rt, f->conn);
        if (e == SL_OK)
            sl_pr_report_batch(p, b, base, e);
        else
            sl_pr_retry_or_report(p, b, e);
    }
    f->batches = NULL;
}

/* Handle one reply frame from c (a produce reply, or a stray one). */
static void handle_frame(sluice_producer *p, sl_cl_conn *c, sl_chunk *fr)
{
    size_t len;
    uint32_t corr;
    const uint8_t *body = sl_frame_body(fr, &len, &corr);
    inflight *f, *prev = NULL;

    for (f = p->if_head; f; prev = f, f = f->next)
        if (f->conn == c && f->corr == corr)
            break;
    if (!f)
        return; /* not ours any more */
    unlink_inflight(p, f, prev);
    handle_produce_resp(p, f, body, len);
    free(f);
}

/* route.c's callbacks while it asks for metadata on a connection that
 * also carries produce requests. */
static void on_stray(void *arg, sl_cl_conn *c, sl_chunk *fr)
{
    handle_frame(arg, c, fr);
}

static void on_lost(void *arg, sl_cl_conn *c, sl_err rc)
{
    fail_conn(arg, c, rc);
}

/* Read and handle one reply, waiting until deadline: from the connection
 * of the oldest request (replies on the others wait in their sockets).
 * A connection that failed, or kept a request past request.timeout.ms,
 * is dropped and its requests resent. */
static sl_err pump_one(sluice_producer *p, int64_t deadline)
{
    sl_chunk *fr = NULL;
    inflight *f = p->if_head;
    sl_cl_conn *c;
    int64_t req_deadline;
    sl_err rc;

    if (!f)
        return SL_ERR_TIMEOUT;
    c = f->conn;
    req_deadline = f->sent_ms + p->cfg.request_timeout_ms + REPLY_SLACK_MS;
    rc = sl_cl_conn_read(c, deadline < req_deadline ? deadline : req_deadline,
                         &fr);
    if (rc == SL_OK) {
        handle_frame(p, c, fr);
        sl_chunk_unref(fr);
    } else if (rc != SL_ERR_TIMEOUT) {
        drop_conn(p, c, rc);
    } else if (sl_cl_now_ms() >= req_deadline) {
        sl_cl_fail(rc, "no reply in %d ms", p->cfg.request_timeout_ms);
        drop_conn(p, c, SL_ERR_TIMEOUT);
    }
    return rc;
}

/* Write what every connection has pending, without blocking. */
static void write_all(sluice_producer *p)
{
    sl_cl_conn *c;
    for (size_t i = 0; (c = sl_cl_route_conn_at(&p->rt, i)); i++)
        if (c->fd >= 0 && c->out.len > c->out_off &&
            sl_cl_conn_write_some(c) != SL_OK)
            drop_conn(p, c, SL_ERR_DISCONNECTED);
}

/* Wait for something to do until deadline: a reply, or the time to
 * resend. SL_ERR_TIMEOUT when there is nothing to wait for. Called with
 * the mutex held. */
static sl_err wait_some(sluice_producer *p, int64_t deadline)
{
    int64_t until;
    if (p->n_inflight)
        return pump_one(p, deadline);
    if (!p->retry_head)
        return SL_ERR_TIMEOUT;
    until = p->retry_at < deadline ? p->retry_at : deadline;
    if (until > sl_cl_now_ms()) {
        pthread_mutex_unlock(&p->mu);
        poll(NULL, 0, sl_cl_left(until));
        pthread_mutex_lock(&p->mu);
    }
    return SL_OK;
}

/* ---- metadata --------------------------------------------------------- */

static int topic_index(sluice_producer *p, const char *topic, sl_err *err)
{
    sl_metadata_resp resp;
    sl_chunk *fr = NULL;
    int32_t nparts = 1;
    int confirmed = 0, idx;
    sl_err rc;

    idx = sl_accum_find(&p->acc, topic);
    if (idx >= 0 &&
        (p->meta[idx].confirmed || sl_cl_now_ms() < p->meta[idx].retry_ms))
        return idx;
    if (idx < 0 && strlen(topic) >= 0xFFFF) {
        *err = sl_cl_fail(SL_ERR_INVALID_TOPIC, "producer: topic name '%s'",
                          topic);
        return -1;
    }
    sl_arena_reset(&p->arena);
    rc = sl_cl_route_metadata(&p->rt, &topic, 1,
                              sl_cl_deadline(p->cfg.request_timeout_ms),
                              &p->arena, &resp, &fr);
    if (rc != SL_OK)
        goto fail; /* the detail names the broker */
    if (resp.ntopics == 1 && resp.topics[0].error == SL_OK &&
        resp.topics[0].nparts > 0) {
        nparts = (int32_t)resp.topics[0].nparts;
        confirmed = 1;
    } else if (resp.ntopics == 1 &&
               resp.topics[0].error != SL_ERR_UNKNOWN_TOPIC &&
               resp.topics[0].error != SL_OK) {
        rc = sl_cl_fail((sl_err)resp.topics[0].error, "topic '%s'", topic);
        goto fail;
    }
    /* Unknown topic: the broker may create it on the first produce;
     * assume one partition until a reply lets us ask again. */
    sl_chunk_unref(fr);
    fr = NULL;
    idx = sl_accum_add_topic(&p->acc, topic, nparts);
    if (idx < 0) {
        rc = sl_cl_fail(SL_ERR_NOMEM, "topic '%s'", topic);
        goto fail;
    }
    if ((size_t)idx >= p->meta_cap) {
        size_t ncap = p->meta_cap ? p->meta_cap * 2 : 8;
        ptopic_meta *m;
        while (ncap <= (size_t)idx)
            ncap *= 2;
        m = realloc(p->meta, ncap * sizeof(*m));
        if (!m) {
            rc = sl_cl_fail(SL_ERR_NOMEM, "topic '%s'", topic);
            goto fail;
        }
        memset(m + p->meta_cap, 0, (ncap - p->meta_cap) * sizeof(*m));
        p->meta = m;
        p->meta_cap = ncap;
    }
    p->meta[idx].confirmed = confirmed;
    /* an unknown topic: do not ask on every send until it exists */
    p->meta[idx].retry_ms = sl_cl_now_ms() + 100;
    return idx;
fail:
    sl_chunk_unref(fr);
    /* With a known (stale) entry, keep producing with what we have. */
    idx = sl_accum_find(&p->acc, topic);
    if (idx >= 0 && rc != SL_ERR_NOMEM)
        return idx;
    /* Not reachable now but may be soon: a later send asks again. The
     * record is not queued (its partition is unknown). */
    *err = rc;
    return -1;
}

/* ---- sending ---------------------------------------------------------- */

/* Fail a batch that cannot be sent. */
static void fail_batch(sluice_producer *p, sl_pbatch *b, sl_err err)
{
    sl_pr_report_batch(p, b, -1, err);
}

/* Put the batches waiting for a resend back in front of the ready list
 * (in order) once retry.backoff.ms passed, after refreshing the
 * metadata (route.c rate-limits it to one attempt per backoff). */
static void requeue_retries(sluice_producer *p)
{
    sl_pbatch *list, *rev = NULL, *b;
    if (!p->retry_head || sl_cl_now_ms() < p->retry_at)
        return;
    /* The refresh can drop a connection, and its lost hook puts that
     * connection's in-flight batches on the retry list, an older batch of a
     * partition before the newer ones: possibly in front of the head. So
     * the list is taken after the refresh, never before (a batch put in
     * front of a list taken earlier was dropped without a result). */
    sl_cl_route_refresh(&p->rt, &p->arena);
    list = p->retry_head;
    p->retry_head = p->retry_tail = NULL;
    while (list) { /* reverse, then unget each: the first ends in front */
        b = list;
        list = b->next;
        b->next = rev;
        rev = b;
    }
    while (rev) {
        b = rev;
        rev = b->next;
        sl_accum_unget(&p->acc, b);
    }
}

/* Build one PRODUCE request from ready batches (all = also batches still
 * lingering), all for one connection. Returns SL_OK with *sent = 0 when
 * nothing was due. */
static sl_err send_one(sluice_producer *p, int all, int *sent)
{
    sl_pbatch *list = NULL, *tail = NULL, *b;
    size_t bytes = 0, held = 0, nb = 0, t, i, ntopics = 0;
    int64_t now = sl_cl_now_ms();
    sl_produce_req req;
    sl_produce_topic *topics;
    sl_err rc, ferr, init_rc = SL_OK;
    sl_cl_conn *to = NULL, *c;
    inflight *f;
    uint32_t corr;
    int dup, last_tidx = -1;
    size_t last_t = 0;

    *sent = 0;
    p->drains++;
    requeue_retries(p);
    if (p->rt.stale)
        sl_cl_route_refresh(&p->rt, &p->arena);
    if (sl_pr_pid_needed(p) &&
        sl_accum_next_due(&p->acc) <= (all ? INT64_MAX - 1 : now)) {
        /* on failure the due batches wait for a retry (or fail) */
        init_rc = sl_cl_idem_init(&p->cfg, &p->acc, &p->pid_off);
        if (init_rc == SL_OK)
            p->pid_reset = 0;
    }
    while ((b = sl_accum_take(&p->acc, now, all, &ferr))) {
        if (ferr != SL_OK) {
            fail_batch(p, b, ferr);
            continue;
        }
        c = sl_cl_route_conn(&p->rt, p->acc.topics[b->tidx].name, b->partition);
        if (!c) { /* no leader right now */
            sl_pr_retry_or_report(p, b, SL_ERR_NOT_LEADER);
            continue;
        }
        if (sl_pr_blocked(p, b, c)) {
            sl_pr_retry_append(p, b);
            continue;
        }
        if (!list) {
            rc = sl_cl_conn_ensure(c);
            if (rc != SL_OK) {
                sl_cl_route_failed(&p->rt, c);
                sl_pr_retry_or_report(p, b, rc);
                continue;
            }
            to = c;
        } else if (c != to) {
            sl_accum_unget(&p->acc, b);
            break;
        }
        /* one batch per partition in a request */
        dup = flight_of(p, b)->drain == p->drains;
        if (dup || (nb && bytes + b->enc_len > to->max_frame / 2)) {
            sl_accum_unget(&p->acc, b);
            break;
        }
        if (sl_pr_unk_restamp_due(p, b))
            sl_pr_restamp(p, b);
        flight_of(p, b)->drain = p->drains;
        b->next = NULL;
        if (tail)
            tail->next = b;
        else
            list = b;
        tail = b;
        bytes += b->enc_len;
        /* what it keeps resident counts against
         * max.in.flight.process.bytes: a buffer under a page whole (a
         * one-record batch holds 170 bytes in 1 KiB: 10,000 partitions
         * with one record each kept 6x the bound), a larger one by its
         * bytes (its reserve ahead is not touched yet) */
        held += b->bb.buf.cap < 4096 && b->bb.buf.cap > b->enc_len
                    ? b->bb.buf.cap
                    : b->enc_len;
        nb++;
    }
    if (!list)
        return SL_OK;
    if (init_rc != SL_OK) { /* no producer id now: resend them later */
        while (list) {
            b = list;
            list = b->next;
            sl_pr_retry_or_report(p, b, init_rc);
        }
        return SL_OK;
    }
    /* group by topic (batches of one topic need not be adjacent) */
    sl_arena_reset(&p->arena);
    topics = sl_arena_alloc(&p->arena, nb * sizeof(*topics));
    if (!topics) {
        rc = SL_ERR_NOMEM;
        goto fail;
    }
    for (b = list; b; b = b->next) {
        /* (the previous batch's topic first: no strlen per batch) */
        if (ntopics > 0 && b->tidx == last_tidx)
            t = last_t;
        else
            for (t = 0; t < ntopics; t++)
                if (sl_str_eq(topics[t].topic, p->acc.topics[b->tidx].name))
                    break;
        last_tidx = b->tidx;
        last_t = t;
        if (t == ntopics) {
            topics[t].topic = sl_str_c(p->acc.topics[b->tidx].name);
            topics[t].nparts = 0;
            topics[t].parts =
                sl_arena_alloc(&p->arena, nb * sizeof(sl_produce_part));
            if (!topics[t].parts) {
                rc = SL_ERR_NOMEM;
                goto fail;
            }
            ntopics++;
        }
        i = topics[t].nparts++;
        topics[t].parts[i].partition = (uint32_t)b->partition;
        topics[t].parts[i].records = (uint8_t *)b->enc;
        topics[t].parts[i].records_len = b->enc_len;
        b->attempts++;
    }
    req.acks = (uint8_t)p->cfg.acks;
    req.timeout_ms = (uint32_t)p->cfg.request_timeout_ms;
    req.ntopics = (uint32_t)ntopics;
    req.topics = topics;
    corr = sl_cl_conn_corr(to);
    /* straight from the batches when the socket takes it (no copy) */
    rc = sl_cl_conn_queue_produce(to, corr, &req);
    if (rc != SL_OK)
        goto fail;
    if (p->cfg.acks == SL_ACKS_NONE) {
        rc = sl_cl_conn_write_bounded(
            to, sl_cl_deadline(p->cfg.request_timeout_ms), OUT_PENDING);
        while (list) {
            b = list;
            list = b->next;
            fail_batch(p, b, rc);
        }
        if (rc != SL_OK)
            drop_conn(p, to, rc);
        *sent = 1;
        return rc;
    }
    f = calloc(1, sizeof(*f));
    if (!f) {
        rc = SL_ERR_NOMEM;
        goto fail;
    }
    f->corr = corr;
    f->conn = to;
    f->sent_ms = now;
    f->batches = list;
    f->bytes = held;
    __atomic_add_fetch(&g_inflight_bytes, held, __ATOMIC_RELAXED);
    if (p->if_tail)
        p->if_tail->next = f;
    else
        p->if_head = f;
    p->if_tail = f;
    p->n_inflight++;
    for (b = list; b; b = b->next) {
        sl_accum_flight *fl = flight_of(p, b);
        fl->n++;
        fl->conn = to;
        fl->pid = b->bb.producer_id;
        fl->epoch = b->bb.producer_epoch;
    }
    *sent = 1;
    /* do not wait for the socket to take it all: keep batching while the
     * kernel drains (bounded by OUT_PENDING) */
    rc = sl_cl_conn_write_bounded(to, sl_cl_deadline(p->cfg.request_timeout_ms),
                                  OUT_PENDING);
    if (rc != SL_OK)
        drop_conn(p, to, rc);
    return SL_OK;
fail:
    while (list) {
        b = list;
        list = b->next;
        fail_batch(p, b, rc);
    }
    return rc;
}

/* Must p read a reply before it sends again? At max.in.flight; or, when
 * a batch is due, while the process's producers have more than
 * max.in.flight.process.bytes in flight and p has some of it (so p never
 * waits for another producer, nor when it has nothing to send). */
static int must_wait(const sluice_producer *p, int all)
{
    return p->n_inflight >= (size_t)p->cfg.max_in_flight ||
           (p->n_inflight && p->cfg.process_inflight_bytes &&
            __atomic_load_n(&g_inflight_bytes, __ATOMIC_RELAXED) >
                p->cfg.process_inflight_bytes &&
            sl_accum_next_due(&p->acc) <=
                (all ? INT64_MAX - 1 : sl_cl_now_ms()));
}

/* Send whatever is due; keep max.in.flight (and the process's bound) by
 * reading replies. */
static sl_err drain(sluice_producer *p, int all)
{
    int sent;
    sl_err rc;
    for (;;) {
        while (must_wait(p, all)) {
            rc = pump_one(p, sl_cl_deadline(p->cfg.request_timeout_ms));
            if (rc != SL_OK && rc != SL_ERR_TIMEOUT)
                break;
        }
        rc = send_one(p, all, &sent);
        if (rc != SL_OK || !sent)
            return rc;
    }
}

/* ---- public ----------------------------------------------------------- */

sluice_err sluice_producer_new(const sluice_conf *conf, sluice_producer **out,
                               char *errstr, size_t errstr_size)
{
    sluice_producer *p;
    sl_err rc;

    sl_cl_clear_err();
    p = calloc(1, sizeof(*p));
    if (!p) {
        rc = sl_cl_fail(SL_ERR_NOMEM, "producer");
        goto fail;
    }
    rc = sl_cl_cfg_load(&p->cfg, conf);
    if (rc != SL_OK)
        goto fail;
    pthread_mutex_init(&p->mu, NULL);
    sl_cl_route_init(&p->rt, &p->cfg, on_stray, on_lost, p);
    sl_accum_init(&p->acc, p->cfg.batch_size, p->cfg.batch_records,
                  p->cfg.linger_ms, p->cfg.codec);
    p->acc.null_rr = p->cfg.null_key_rr;
    sl_arena_init(&p->arena);
    rc = sl_cl_conn_ensure(&p->rt.boot);
    if (rc != SL_OK) {
        sluice_producer_free(p);
        p = NULL;
        goto fail;
    }
    *out = p;
    return SLUICE_OK;
fail:
    free(p);
    sl_cl_errstr_copy(errstr, errstr_size);
    return (sluice_err)rc;
}

void sluice_producer_free(sluice_producer *p)
{
    inflight *f, *nf;
    sl_pbatch *b, *nb;
    if (!p)
        return;
    for (f = p->if_head; f; f = nf) {
        nf = f->next;
        for (b = f->batches; b; b = nb) {
            nb = b->next;
            sl_accum_release(&p->acc, b);
        }
        __atomic_sub_fetch(&g_inflight_bytes, f->bytes, __ATOMIC_RELAXED);
        free(f);
    }
    for (b = p->rep_head; b; b = nb) {
        nb = b->next;
        sl_accum_release(&p->acc, b);
    }
    for (b = p->retry_head; b; b = nb) {
        nb = b->next;
        sl_accum_release(&p->acc, b);
    }
    sl_accum_fini(&p->acc);
    sl_cl_route_fini(&p->rt);
    sl_arena_fini(&p->arena);
    free(p->meta);
    free(p->unk);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

sluice_err sluice_producer_send(sluice_producer *p, const char *topic,
                                int32_t partition, const void *key,
                                size_t key_len, const void *value,
                                size_t value_len, const sluice_header *headers,
                                size_t header_count, int64_t timestamp,
                                void *msg_opaque)
{
    sl_err rc = SL_OK;
    int tidx, full = 0;
    int64_t now;

    /* the name's length is checked when the topic is new (topic_index):
     * a known one was checked then, and a strlen per record showed in
     * perf (docs/benchmarks.md, session 17) */
    if (!topic || !*topic)
        return (sluice_err)sl_cl_fail(SL_ERR_INVALID_TOPIC,
                                      "producer: topic name '%s'",
                                      topic ? topic : "(null)");
    if (partition < SLUICE_PARTITION_ANY)
        return (sluice_err)sl_cl_fail(SL_ERR_INVALID_ARG,
                                      "producer: partition %d", (int)partition);
    pthread_mutex_lock(&p->mu);
    tidx = topic_index(p, topic, &rc);
    if (tidx < 0)
        goto out;
    if (partition == SLUICE_PARTITION_ANY) {
        partition = sl_accum_pick(&p->acc, tidx, key, key_len);
    } else if (partition >= p->acc.topics[tidx].nparts) {
        if (p->meta[tidx].confirmed) {
            rc = sl_cl_fail(SL_ERR_UNKNOWN_PARTITION,
                            "topic '%s' has %d partitions, not partition %d",
                            topic, (int)p->acc.topics[tidx].nparts,
                            (int)partition);
            goto out;
        }
        /* provisional topic: widen, the broker will judge */
        if (sl_accum_add_topic(&p->acc, topic, partition + 1) < 0) {
            rc = sl_cl_fail(SL_ERR_NOMEM, "producer");
            goto out;
        }
    }
    /* one clock read per record: the wall clock is derived from the
     * monotonic one, re-synchronised every second */
    now = sl_cl_now_ms();
    if (now - p->wall_sync_ms >= 1000 || p->wall_sync_ms == 0) {
        p->wall_off = sl_cl_wall_ms() - now;
        p->wall_sync_ms = now;
    }
    if (timestamp <= 0)
        timestamp = now + p->wall_off;
    rc = sl_accum_add(&p->acc, tidx, partition, timestamp, key, key_len, value,
                      value_len, (const sl_header *)headers, header_count,
                      msg_opaque, now, &full);
    if (rc != SL_OK) {
        rc = sl_cl_fail(rc, "producer: topic '%s' partition %d", topic,
                        (int)partition);
        goto out;
    }
    p->outstanding++;
    if (full || sl_accum_next_due(&p->acc) <= now)
        drain(p, 0);
    while (p->outstanding >= p->cfg.queue_max_records) {
        drain(p, 1);
        if (p->n_inflight == 0 && !p->retry_head)
            break;
        if (wait_some(p, sl_cl_deadline(p->cfg.request_timeout_ms)) != SL_OK &&
            p->n_inflight == 0)
            break;
        if (p->nrep && !p->cfg.dr_cb)
            sl_pr_deliver(p);
    }
out:
    pthread_mutex_unlock(&p->mu);
    return (sluice_err)rc;
}

int sluice_producer_poll(sluice_producer *p, int timeout_ms)
{
    int64_t deadline = sl_cl_deadline(timeout_ms), due, now;
    int n;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        drain(p, 0);
        write_all(p);
        /* read what is there without waiting */
        while (p->n_inflight && pump_one(p, 0) == SL_OK)
            ;
        if (p->nrep)
            break;
        now = sl_cl_now_ms();
        if (now >= deadline || p->outstanding == 0)
            break;
        due = sl_accum_next_due(&p->acc);
        if (due > deadline)
            due = deadline;
        if (p->retry_head && p->retry_at < due)
            due = p->retry_at;
        if (p->n_inflight) {
            pump_one(p, due);
        } else if (due > now) {
            /* only lingering batches: wait for the earliest */
            pthread_mutex_unlock(&p->mu);
            poll(NULL, 0, sl_cl_left(due));
            pthread_mutex_lock(&p->mu);
        }
    }
    n = sl_pr_deliver(p);
    pthread_mutex_unlock(&p->mu);
    return n;
}

sluice_err sluice_producer_flush(sluice_producer *p, int timeout_ms)
{
    int64_t deadline = sl_cl_deadline(timeout_ms);
    sl_err rc = SL_OK;

    sl_cl_clear_err();
    pthread_mutex_lock(&p->mu);
    for (;;) {
        drain(p, 1);
        write_all(p);
        sl_pr_deliver(p);
        if (p->outstanding == 0)
            break;
        if (sl_cl_now_ms() >= deadline) {
            rc = sl_cl_fail(SL_ERR_TIMEOUT,
                            "producer flush: %zu records still outstanding",
                            p->outstanding);
            break;
        }
        wait_some(p, deadline);
    }
    pthread_mutex_unlock(&p->mu);
    return (sluice_err)rc;
}

size_t sluice_producer_outstanding(sluice_producer *p)
{
    size_t n;
    pthread_mutex_lock(&p->mu);
    n = p->outstanding;
    pthread_mutex_unlock(&p->mu);
    return n;
}

sluice_err sluice_producer_partitions(sluice_producer *p, const char *topic,
                                      int32_t *count)
{
    sl_err rc = SL_OK;
    int idx;
    pthread_mutex_lock(&p->mu);
    idx = topic_index(p, topic, &rc);
    if (idx >= 0) {
        if (!p->meta[idx].confirmed)
            rc = sl_cl_fail(SL_ERR_UNKNOWN_TOPIC, "topic '%s'", topic);
        else
            *count = p->acc.topics[idx].nparts;
    }
    pthread_mutex_unlock(&p->mu);
    return (sluice_err)rc;
}
