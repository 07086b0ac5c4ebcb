/*
 * queue.c - sluice_queue_consumer: QUEUE_ACQUIRE long-polls with credits,
 * settlements (ack / nack / reject) coalesced into ranges (ackr.c) and
 * sent in batches, touch. Settlements, flush and touch are in
 * queue_settle.c; the structure both files share in queue_int.h.
 *
 * Pipelining: settlement requests are written without waiting; their
 * replies are read later (on poll or flush; poll never waits for them)
 * and the first failure is kept for sluice_queue_consumer_flush. The
 * broker answers requests in order, and settlements only once committed.
 * A blocking acquire (nothing buffered) is written after the pending
 * settlements, so a nacked record can come back in it.
 *
 * Credits: an acquire asks for the consumer's window of records: a fixed
 * queue.credits, or (queue.credits 0, the default) an adaptive window
 * (below). With queue.prefetch the next acquire goes out once at most half
 * a window is left buffered, written BEFORE the pending settlements so its
 * reply does not wait for their commit; it asks for no more than keeps
 * the records held (buffered + handed out, not settled) within 2 x the
 * window (maybe_prefetch), and within queue.max.unacked when set (pika's
 * basic_qos prefetch_count: prefetch=1 holds one record at a time).
 *
 * The adaptive window works as a TCP window does. It starts at one record.
 * It doubles (up to queue.credits.max) each time the consumer ran out of
 * records and had to wait for an acquire while the broker had filled the last
 * one (so the window, not the queue, was the limit: the consumer keeps up). It
 * halves, down to what the consumer handles in ADAPT_SLOW_MS, when working
 * through half a window took longer than ADAPT_SLOW_MS: a slow consumer
 * holds few records, and the rest stay available to competing consumers.
 *
 * A topic that does not exist: the broker creates it on the first acquire
 * when its auto-create-topics is on (as STOMP SUBSCRIBE does). Otherwise
 * poll waits for it to be created (retrying every UNKNOWN_RETRY_MS,
 * doubling up to queue.max.wait.ms) and, when its timeout passes
 * first, fails with SLUICE_ERR_UNKNOWN_TOPIC and the broker's reason.
 *
 * Held records: every acquired record is tracked until the caller settles
 * it (ack/nack/reject), for sluice_queue_consumer_held. Close sends the
 * pending settlements, waits for their replies and closes the connection,
 * which is this consumer's own: the broker then releases everything still
 * held (attempts kept, no failure counted; docs/groups.md).
 *
 * In a cluster (docs/cluster.md section 5) a queue group's state lives on
 * the node that serves its requests, so every member of group g must talk
 * to the same node: the coordinator, the leader of partition
 * fnv1a(g) mod partitions of the topic (METADATA version 2, asked on each
 * (re)connect). A lost connection or a broker restart does not fail
 * poll: it reconnects (to the coordinator as it is then) and goes on,
 * for up to delivery.timeout.ms; the records it held come back from the
 * broker (released with the connection).
 */
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/src/ackr.h"
#include "client/src/conn.h"
#include "client/src/cursor.h"
#include "client/src/internal.h"
#include "client/src/queue_int.h"
#include "protocol/api.h"
#include "protocol/hash.h"

/* Records the next acquire may ask for. */
static int64_t window(const sluice_queue_consumer *q)
{
    return q->cfg.queue_credits > 0 ? q->cfg.queue_credits : q->win;
}

/* want, lowered to keep the records held within queue.max.unacked. */
static int64_t unacked_room(const sluice_queue_consumer *q, int64_t want)
{
    int64_t room;
    if (q->cfg.queue_max_unacked <= 0)
        return want;
    room = (int64_t)q->cfg.queue_max_unacked - (int64_t)q->held;
    return want < room ? want : room;
}

static void clear_buffers(sluice_queue_consumer *q)
{
    qbuf *b, *n;
    for (b = q->bhead; b; b = n) {
        n = b->next;
        sl_cursor_fini(&b->cu);
        free(b->entries);
        free(b);
    }
    q->bhead = q->btail = NULL;
}

static void note_err(sluice_queue_consumer *q, sl_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note_err(sluice_queue_consumer *q, sl_err e, const char *fmt, ...)
{
    va_list ap;
    q->nfailed++;
    if (q->first_err != SL_OK)
        return;
    q->first_err = e;
    va_start(ap, fmt);
    vsnprintf(q->first_err_msg, sizeof(q->first_err_msg), fmt, ap);
    va_end(ap);
}

/* The connection dropped: everything in flight is lost, the broker has
 * released what we held. */
void sl_qc_on_disconnect(sluice_queue_consumer *q, sl_err rc)
{
    size_t i;
    for (i = 0; i < q->npend; i++)
        note_err(q, rc, "%zu settlements lost with the connection",
                 q->pend[i].items);
    q->npend = 0;
    q->acq_corr = 0;
    clear_buffers(q);
}

static int held_add(sluice_queue_consumer *q, int32_t part, int64_t off)
{
    if (q->hn == q->hcap) {
        size_t ncap;
        hitem *n;
        if (q->hstart > 0) { /* compact first */
            memmove(q->held_v, q->held_v + q->hstart,
                    (q->hn - q->hstart) * sizeof(hitem));
            q->hn -= q->hstart;
            q->hstart = 0;
        }
        if (q->hn == q->hcap) {
            ncap = q->hcap ? q->hcap * 2 : 1024;
            n = realloc(q->held_v, ncap * sizeof(*n));
            if (!n)
                return -1;
            q->held_v = n;
            q->hcap = ncap;
        }
    }
    q->held_v[q->hn].partition = part;
    q->held_v[q->hn].offset = off;
    q->held_v[q->hn].live = 1;
    q->hn++;
    q->held++;
    return 0;
}

/* The caller settled (part, off): forget it. Settlements come mostly in
 * delivery order, so the match is usually at the front. */
void sl_qc_held_remove(sluice_queue_consumer *q, int32_t part, int64_t off)
{
    size_t i;
    for (i = q->hstart; i < q->hn; i++) {
        hitem *h = &q->held_v[i];
        if (h->live && h->offset == off && h->partition == part) {
            h->live = 0;
            q->held--;
            break;
        }
    }
    while (q->hstart < q->hn && !q->held_v[q->hstart].live)
        q->hstart++;
    if (q->hstart == q->hn)
        q->hstart = q->hn = 0;
}

static void handle_acquire(sluice_queue_consumer *q, sl_chunk *fr,
                           const uint8_t *body, size_t len)
{
    sl_queue_acquire_resp resp;
    sl_err rc;
    uint32_t i, k;

    if (sl_resp_error_decode(body, len, &resp.error, &resp.error_msg) ==
            SL_OK &&
        resp.error != SL_OK) {
        if (resp.error == SL_ERR_NOT_COORDINATOR) {
            q->moved = 1; /* the group moved: find it (poll) */
            return;
        }
        q->acq_err = (sl_err)resp.error;
        snprintf(q->acq_msg, sizeof(q->acq_msg),
                 "acquire from topic '%s' group '%s': %.*s", q->topic, q->group,
                 (int)resp.error_msg.len,
                 resp.error_msg.p ? resp.error_msg.p : "");
        return;
    }
    sl_arena_reset(&q->arena);
    rc = sl_queue_acquire_resp_decode(body, len, &q->arena, &resp);
    if (rc != SL_OK) {
        note_err(q, SL_ERR_PROTOCOL, "acquire: malformed reply");
        return;
    }
    q->unknown_wait_ms = 0;
    {
        int64_t got = 0;
        for (i = 0; i < resp.nparts; i++)
            got += resp.parts[i].nentries;
        q->last_full = got > 0 && got >= q->acq_want;
        q->reply_ms = sl_cl_now_ms();
        q->handed_at = q->handed;
    }
    for (i = 0; i < resp.nparts; i++) {
        sl_qacq_part *pp = &resp.parts[i];
        qbuf *b;
        if (pp->nentries == 0)
            continue;
        b = calloc(1, sizeof(*b));
        if (!b || !(b->entries = malloc(pp->nentries * sizeof(sl_qentry)))) {
            free(b);
            note_err(q, SL_ERR_NOMEM, "acquire");
            continue;
        }
        memcpy(b->entries, pp->entries, pp->nentries * sizeof(sl_qentry));
        b->nentries = pp->nentries;
        for (k = 0; k < pp->nentries; k++)
            if (held_add(q, (int32_t)pp->partition, pp->entries[k].offset))
                note_err(q, SL_ERR_NOMEM, "acquire");
        b->partition = (int32_t)pp->partition;
        sl_cursor_init(&b->cu, fr, pp->records, pp->records_len);
        if (q->btail)
            q->btail->next = b;
        else
            q->bhead = b;
        q->btail = b;
    }
}

static void handle_settle(sluice_queue_consumer *q, const pending *pd,
                          const uint8_t *body, size_t len)
{
    sl_qsettle_resp resp;
    uint32_t i, k;
    const char *what = pd->api == SL_API_QUEUE_ACK    ? "ack"
                       : pd->api == SL_API_QUEUE_NACK ? "nack"
                                                      : "reject";
    int32_t err;
    sl_str msg;

    if (sl_resp_error_decode(body, len, &err, &msg) != SL_OK) {
        note_err(q, SL_ERR_PROTOCOL, "%s: malformed reply", what);
        return;
    }
    if (err != SL_OK) {
        if (err == SL_ERR_NOT_COORDINATOR)
            q->moved = 1;
        note_err(q, (sl_err)err, "%s of %zu records: %.*s", what, pd->items,
                 (int)msg.len, msg.p ? msg.p : "");
        return;
    }
    sl_arena_reset(&q->arena);
    if (sl_qsettle_resp_decode(body, len, &q->arena, &resp) != SL_OK) {
        note_err(q, SL_ERR_PROTOCOL, "%s: malformed reply", what);
        return;
    }
    for (i = 0; i < resp.nparts; i++)
        for (k = 0; k < resp.parts[i].nranges; k++) {
            sl_qrange_result *r = &resp.parts[i].ranges[k];
            if (r->error != SL_OK)
                note_err(q, (sl_err)r->error,
                         "%s topic '%s' partition %u offsets %lld-%lld", what,
                         q->topic, resp.parts[i].partition, (long long)r->first,
                         (long long)r->last);
        }
}

void sl_qc_handle_frame(sluice_queue_consumer *q, sl_chunk *fr)
{
    size_t len, i;
    uint32_t corr;
    const uint8_t *body = sl_frame_body(fr, &len, &corr);

    if (q->acq_corr && corr == q->acq_corr) {
        q->acq_corr = 0;
        handle_acquire(q, fr, body, len);
        return;
    }
    for (i = 0; i < q->npend; i++) {
        if (q->pend[i].corr == corr) {
            pending pd = q->pend[i];
            memmove(&q->pend[i], &q->pend[i + 1],
                    (q->npend - i - 1) * sizeof(pending));
            q->npend--;
            handle_settle(q, &pd, body, len);
            return;
        }
    }
}

/* Read replies until the condition is met or deadline. */
sl_err sl_qc_pump(sluice_queue_consumer *q, int64_t deadline)
{
    sl_chunk *fr = NULL;
    sl_err rc = sl_cl_conn_read(&q->conn, deadline, &fr);
    if (rc == SL_OK) {
        sl_qc_handle_frame(q, fr);
        sl_chunk_unref(fr);
    } else if (rc != SL_ERR_TIMEOUT) {
        sl_qc_on_disconnect(q, rc);
    }
    return rc;
}

sl_err sl_qc_ensure_conn(sluice_queue_consumer *q)
{
    uint64_t epoch = q->conn.epoch;
    sl_err rc = SL_OK;
    if (q->conn.fd < 0) {
        rc = sl_cl_coord_ensure(&q->conn, q->group, &q->coord);
        if (q->conn.fd < 0 && rc == SL_OK)
            rc = sl_cl_fail(SL_ERR_DISCONNECTED, "queue consumer: no broker");
    }
    if (rc == SL_OK && q->conn.epoch != epoch)
        sl_qc_on_disconnect(q, SL_ERR_DISCONNECTED);
    return rc;
}

/* The broker said another node coordinates the group now (a failover):
 * drop this connection (what we held is released there, and gone with
 * the old coordinator anyway) and let the caller reconnect, which finds
 * the coordinator again. SL_ERR_DISCONNECTED, for ride_out. */
static sl_err follow_coordinator(sluice_queue_consumer *q)
{
    q->moved = 0;
    sl_cl_conn_close(&q->conn);
    sl_qc_on_disconnect(q, SL_ERR_DISCONNECTED);
    return sl_cl_fail(SL_ERR_DISCONNECTED,
                      "queue consumer of group '%s' follows the group to "
                      "another node",
                      q->group);
}

/* A failure that may pass (a lost connection, a broker restarting): poll
 * waits reconnect.backoff.ms and goes on, for up to delivery.timeout.ms
 * from the first one. 1 = go on; 0 = return *rc (SL_ERR_TIMEOUT once the
 * poll's own timeout passed). */
static int ride_out(sluice_queue_consumer *q, sl_err *rc, int64_t deadline)
{
    int64_t now = sl_cl_now_ms(), until;
    int backoff =
        q->cfg.reconnect_backoff_ms > 10 ? q->cfg.reconnect_backoff_ms : 10;
    if (*rc != SL_ERR_DISCONNECTED && *rc != SL_ERR_SHUTTING_DOWN)
        return 0;
    if (q->down_since == 0)
        q->down_since = now;
    if (q->cfg.delivery_timeout_ms == 0 ||
        now - q->down_since >= q->cfg.delivery_timeout_ms)
        return 0;
    if (now >= deadline) {
        *rc = sl_cl_fail(SL_ERR_TIMEOUT,
                         "poll: no message (broker not "
                         "reachable since %lld ms)",
                         (long long)(now - q->down_since));
        return 0;
    }
    until = now + backoff < deadline ? now + backoff : deadline;
    pthread_mutex_unlock(&q->mu);
    poll(NULL, 0, sl_cl_left(until));
    pthread_mutex_lock(&q->mu);
    return 1;
}

static sl_err send_acquire(sluice_queue_consumer *q, int max_wait_ms,
                           int64_t want)
{
    sl_queue_acquire_req req;
    uint32_t corr;
    sl_err rc;

    if (q->acq_corr || want < 1)
        return SL_OK;
    memset(&req, 0, sizeof(req));
    req.group = sl_str_c(q->group);
    req.topic = sl_str_c(q->topic);
    req.consumer_id = sl_str_c(q->consumer_id);
    req.max_records = (uint32_t)want;
    req.max_bytes = (uint32_t)q->cfg.fetch_max_bytes;
    req.lock_ms = (uint32_t)q->cfg.queue_lock_ms;
    req.max_wait_ms = (uint32_t)(max_wait_ms < 0 ? 0 : max_wait_ms);
    corr = sl_cl_conn_corr(&q->conn);
    rc = sl_queue_acquire_req_encode(&q->conn.out, corr, &req);
    if (rc != SL_OK)
        return sl_cl_fail(rc, "acquire");
    rc = sl_cl_conn_write(&q->conn, sl_cl_deadline(q->cfg.request_timeout_ms));
    if (rc != SL_OK) {
        sl_qc_on_disconnect(q, rc);
        return rc;
    }
    q->acq_corr = corr;
    q->acq_want = want;
    return SL_OK;
}

static sluice_message *next_buffered(sluice_queue_consumer *q)
{
    sl_record r;
    sl_chunk *owner;
    sl_err e;
    qbuf *b;
    sluice_message *m;

    while ((b = q->bhead)) {
        if (b->ei < b->nentries &&
            sl_cursor_next(&b->cu, &r, &owner, &e) == 1) {
            while (b->ei < b->nentries && b->entries[b->ei].offset < r.offset)
                b->ei++; /* listed but missing from the records: skip */
            if (b->ei >= b->nentries || b->entries[b->ei].offset != r.offset)
                continue;
            m = sl_msg_new(q->topic, strlen(q->topic), b->partition, &r, owner);
            if (!m) {
                note_err(q, SL_ERR_NOMEM, "message");
                continue;
            }
            m->attempts = b->entries[b->ei].attempts;
            m->failures = b->entries[b->ei].failures;
            m->lock_deadline = b->entries[b->ei].lock_deadline_ms;
            b->ei++;
            q->handed++;
            return m;
        }
        q->bhead = b->next;
        if (!q->bhead)
            q->btail = NULL;
        sl_cursor_fini(&b->cu);
        free(b->entries);
        free(b);
    }
    return NULL;
}

/* Records acquired and not yet handed to the caller. */
static size_t buffered(const sluice_queue_consumer *q)
{
    size_t n = 0;
    const qbuf *b;
    for (b = q->bhead; b; b = b->next)
        n += b->nentries - b->ei;
    return n;
}

/* Adaptive window: half of it took longer than ADAPT_SLOW_MS to work
 * through since the last reply: shrink towards what the consumer handles
 * in that time (at most halving per step). */
static void adapt_slow(sluice_queue_consumer *q)
{
    int64_t dt, done, target;
    if (q->cfg.queue_credits > 0 || q->win <= 1 || !q->reply_ms)
        return;
    dt = sl_cl_now_ms() - q->reply_ms;
    if (dt <= ADAPT_SLOW_MS)
        return;
    done = (int64_t)(q->handed - q->handed_at);
    target = done * ADAPT_SLOW_MS / dt;
    if (target < q->win / 2)
        target = q->win / 2;
    if (target < 1)
        target = 1;
    if (target < q->win)
        q->win = target;
    q->reply_ms = 0; /* once per reply */
}

/* Adaptive window: the consumer ran out of records and waits for an
 * acquire while the broker filled the last one: the window is the limit,
 * double it. */
static void adapt_starved(sluice_queue_consumer *q)
{
    if (q->cfg.queue_credits > 0 || !q->last_full)
        return;
    q->last_full = 0; /* once per reply */
    q->win = q->win * 2 > q->cfg.queue_credits_max ? q->cfg.queue_credits_max
                                                   : q->win * 2;
}

/* queue.prefetch: keep the next acquire in flight while the caller works
 * through the buffer. It goes out once at most half a batch is left
 * buffered, and asks for what keeps the records held (buffered + handed
 * out and not settled) within 2 x queue.credits; the broker's credits are
 * per acquire (reset with its reply), so this bound is the client's. It
 * is written BEFORE the pending settlements: the broker answers in
 * request order and answers settlements only after their commit, so an
 * acquire behind them would wait for that commit too. */
static void maybe_prefetch(sluice_queue_consumer *q)
{
    int64_t c, want;
    if (!q->cfg.queue_prefetch || q->acq_corr || q->conn.fd < 0)
        return;
    if ((int64_t)buffered(q) * 2 > window(q))
        return;
    adapt_slow(q);
    c = window(q);
    want = 2 * c - (int64_t)q->held;
    if (want > c)
        want = c;
    want = unacked_room(q, want);
    if (want * 2 < c && q->bhead)
        return; /* wait until the buffer runs out or more is settled */
    send_acquire(q, q->cfg.queue_max_wait_ms, want);
}

/* Pending settlements that trigger a send: ack.batch.records, or with the
 * adaptive window half of it when that is more (a window of 16384 records
 * in 64 settlement requests cost the broker more than the records). */
size_t sl_qc_ack_batch(const sluice_queue_consumer *q)
{
    size_t n = (size_t)q->cfg.ack_batch_records;
    if (q->cfg.queue_credits == 0 && (size_t)q->win / 2 > n)
        n = (size_t)q->win / 2;
    return n;
}

static int acks_due(sluice_queue_consumer *q)
{
    size_t n = sl_ackr_pending(&q->ackr);
    return n >= sl_qc_ack_batch(q) ||
           (n && sl_cl_now_ms() - q->ackr.oldest_ms >= q->cfg.ack_linger_ms);
}

static sl_err poll_locked(sluice_queue_consumer *q, int timeout_ms,
                          sluice_message **msgs, size_t max, size_t *count)
{
    int64_t deadline = sl_cl_deadline(timeout_ms);
    size_t n = 0;
    sl_err rc = SL_OK;
    sluice_message *m;
    int wait;

    for (;;) {
        rc = sl_qc_ensure_conn(q);
        if (rc != SL_OK) {
            if (n == 0 && ride_out(q, &rc, deadline))
                continue;
            break;
        }
        while (n < max && (m = next_buffered(q)))
            msgs[n++] = m;
        if (n > 0)
            maybe_prefetch(q); /* ahead of the settlements below */
        if (n > 0 || !q->bhead) {
            /* about to return or to block: send what is pending */
            if (sl_ackr_pending(&q->ackr) && (!q->bhead || acks_due(q))) {
                rc = sl_qc_send_settlements(q);
                if (rc != SL_OK) {
                    if (n == 0 && ride_out(q, &rc, deadline))
                        continue;
                    break;
                }
            }
        }
        /* read settlement replies that are already there */
        while (q->npend && sl_qc_pump(q, 0) == SL_OK)
            ;
        if (n > 0)
            break;
        if (q->moved) {
            rc = follow_coordinator(q);
            if (ride_out(q, &rc, deadline))
                continue;
            break;
        }
        wait = sl_cl_left(deadline);
        if (wait < 0 || wait > q->cfg.queue_max_wait_ms)
            wait = q->cfg.queue_max_wait_ms;
        adapt_starved(q);
        rc = send_acquire(q, wait, unacked_room(q, window(q)));
        if (rc != SL_OK) {
            if (ride_out(q, &rc, deadline))
                continue;
            break;
        }
        if (!q->acq_corr && !q->npend) {
            /* queue.max.unacked records held: nothing to ask for until
             * the caller settles some (maybe from another thread: the
             * lock is let go while waiting) */
            int left = sl_cl_left(deadline);
            if (left == 0) {
                rc = sl_cl_fail(SL_ERR_TIMEOUT,
                                "poll: no message (%zu records held "
                                "unsettled: queue.max.unacked %d)",
                                q->held, q->cfg.queue_max_unacked);
                break;
            }
            pthread_mutex_unlock(&q->mu);
            poll(NULL, 0, left < 0 || left > 20 ? 20 : left);
            pthread_mutex_lock(&q->mu);
            continue;
        }
        /* with the deadline passed this still takes what already arrived
         * (so poll(0) in a loop makes progress); an acquire still in
         * flight is answered into the next poll */
        rc = sl_qc_pump(q, deadline);
        if (rc == SL_ERR_TIMEOUT) {
            rc = sl_cl_fail(SL_ERR_TIMEOUT, "poll: no message");
            break;
        }
        if (rc == SL_OK && q->moved)
            rc = follow_coordinator(q);
        if (rc != SL_OK) {
            if (ride_out(q, &rc, deadline))
                continue;
            break;
        }
        q->down_since = 0;
        if (q->acq_err == SL_ERR_UNKNOWN_TOPIC && !q->bhead) {
            /* not created yet (auto-create-topics is off): wait for it,
             * unless the timeout ends before the next try (then the
             * error says why nothing came) */
            int left = sl_cl_left(deadline), ms;
            q->unknown_wait_ms =
                q->unknown_wait_ms ? q->unknown_wait_ms * 2 : UNKNOWN_RETRY_MS;
            if (q->unknown_wait_ms > q->cfg.queue_max_wait_ms)
                q->unknown_wait_ms = q->cfg.queue_max_wait_ms;
            ms = q->unknown_wait_ms < 1 ? 1 : q->unknown_wait_ms;
            if (left >= 0 && left <= ms)
                ms = left; /* the last wait: then the error */
            pthread_mutex_unlock(&q->mu);
            if (ms > 0)
                poll(NULL, 0, ms);
            pthread_mutex_lock(&q->mu);
            if (left < 0 || left > ms) {
                q->acq_err = SL_OK;
                continue;
            }
        }
        if (q->acq_err != SL_OK && !q->bhead) {
            rc = sl_cl_fail(q->acq_err, "%s", q->acq_msg);
            q->acq_err = SL_OK;
            break;
        }
        if (!q->acq_corr && !q->bhead && sl_cl_now_ms() >= deadline) {
            rc = sl_cl_fail(SL_ERR_TIMEOUT, "poll: no message");
            break;
        }
    }
    if (n > 0) {
        /* records came: an outage, if any, is over (delivery.timeout.ms
         * counts from the next failure, not from one long ago) */
        q->down_since = 0;
        sl_cl_clear_err();
        rc = SL_OK;
    }
    *count = n;
    return rc;
}

/* ---- public ----------------------------------------------------------- */

sluice_err sluice_queue_consumer_new(const sluice_conf *conf, const char *topic,
                                     const char *group,
                                     sluice_queue_consumer **out, char *errstr,
                                     size_t errstr_size)
{
    sluice_queue_consumer *q = NULL;
    sl_err rc;
    static unsigned seq;

    sl_cl_clear_err();
    if (!topic || !*topic || !group || !*group) {
        rc = sl_cl_fail(SL_ERR_INVALID_ARG,
                        "queue consumer needs a topic and a group");
        goto fail;
    }
    q = calloc(1, sizeof(*q));
    if (!q) {
        rc = sl_cl_fail(SL_ERR_NOMEM, "queue consumer");
        goto fail;
    }
    rc = sl_cl_cfg_load(&q->cfg, conf);
    if (rc != SL_OK) {
        free(q);
        goto fail;
    }
    pthread_mutex_init(&q->mu, NULL);
    sl_cl_conn_init(&q->conn, &q->cfg);
    sl_arena_init(&q->arena);
    sl_ackr_init(&q->ackr);
    q->win = 1;
    q->topic = strdup(topic);
    q->group = strdup(group);
    snprintf(q->consumer_id, sizeof(q->consumer_id), "%s-%d-%u",
             q->cfg.client_id, (int)getpid(),
             __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
    if (!q->topic || !q->group) {
        sluice_queue_consumer_free(q);
        rc = sl_cl_fail(SL_ERR_NOMEM, "queue consumer");
        goto fail;
    }
    rc = sl_qc_ensure_conn(q); /* in a cluster: the group's coordinator */
    if (rc != SL_OK) {
        sluice_queue_consumer_free(q);
        goto fail;
    }
    *out = q;
    return SLUICE_OK;
fail:
    sl_cl_errstr_copy(errstr, errstr_size);
    return (sluice_err)rc;
}

sluice_err sluice_queue_consumer_poll(sluice_queue_consumer *qc, int timeout_ms,
                                      sluice_message **out)
{
    size_t n = 0;
    sl_err rc;
    sluice_message *m = NULL;
    pthread_mutex_lock(&qc->mu);
    rc = poll_locked(qc, timeout_ms, &m, 1, &n);
    pthread_mutex_unlock(&qc->mu);
    if (rc == SL_OK && n == 1)
        *out = m;
    return (sluice_err)rc;
}

sluice_err sluice_queue_consumer_poll_batch(sluice_queue_consumer *qc,
                                            int timeout_ms,
                                            sluice_message **msgs, size_t max,
                                            size_t *count)
{
    size_t n = 0;
    sl_err rc;
    if (max == 0)
        return (sluice_err)sl_cl_fail(SL_ERR_INVALID_ARG, "poll: max 0");
    pthread_mutex_lock(&qc->mu);
    rc = poll_locked(qc, timeout_ms, msgs, max, &n);
    pthread_mutex_unlock(&qc->mu);
    if (rc == SL_OK)
        *count = n;
    return (sluice_err)rc;
}

void sluice_queue_consumer_free(sluice_queue_consumer *qc)
{
    if (!qc)
        return;
    /* Send what the caller settled and wait for the verdicts (so the acks
     * are committed before the records could go to someone else), then
     * close. The connection is this consumer's own, so closing it makes
     * the broker release everything else it holds (buffered records and
     * those of an acquire still in flight included) at once: attempts
     * kept, no failure counted. */
    if (qc->conn.fd >= 0 && sl_qc_send_settlements(qc) == SL_OK)
        sl_qc_wait_settled(qc, sl_cl_deadline(qc->cfg.request_timeout_ms));
    free(qc->held_v);
    clear_buffers(qc);
    sl_cl_conn_fini(&qc->conn);
    sl_ackr_fini(&qc->ackr);
    sl_arena_fini(&qc->arena);
    free(qc->pend);
    free(qc->topic);
    free(qc->group);
    pthread_mutex_destroy(&qc->mu);
    free(qc);
}
