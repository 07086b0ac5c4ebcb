/*
 * binary_produce.c - the binary protocol's PRODUCE (api 5): every batch
 * checked before anything is appended, then appended; the reply waits for
 * the fsync when the request asks for durability (acks) or times out.
 * @thread loop
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/binary_int.h"
#include "broker/broker.h"
#include "protocol/api.h"
#include "protocol/log.h"

/* ---- 5 PRODUCE
 * ----------------------------------------------------------------- */

typedef struct produce_ctx produce_ctx;

typedef struct produce_wait {
    produce_ctx *ctx;
    sl_produce_part_resp *pr;
    sl_ops_wait *w;
} produce_wait;

struct produce_ctx {
    sl_broker *b;
    sl_reply *r;
    uint32_t corr;
    sl_arena a; /* the response structures and copied topic names */
    sl_produce_resp s;
    produce_wait *waits;
    size_t nwaits;
    size_t pending;
    struct event *timer; /* the request's timeout_ms, while waiting */
};

static void produce_ctx_free(produce_ctx *x)
{
    if (x->timer)
        event_free(x->timer);
    sl_arena_fini(&x->a);
    free(x->waits);
    free(x);
}

static void produce_send(produce_ctx *x)
{
    sl_wb wb;
    sl_wb_init(&wb, 256);
    sl_bin_reply_wb(x->r, &wb, sl_produce_resp_encode(&wb, x->corr, &x->s),
                    "PRODUCE");
    sl_wb_fini(&wb);
    produce_ctx_free(x);
}

static void produce_durable_cb(void *arg, sl_err err)
{
    produce_wait *pw = arg;
    produce_ctx *x = pw->ctx;

    pw->w = NULL;
    if (err != SL_OK) {
        pw->pr->error = err;
        pw->pr->base_offset = -1;
    }
    if (--x->pending == 0)
        produce_send(x);
}

/* timeout_ms passed before an fsync covered everything: the records stay
 * appended (they become durable with a later round), but the partitions
 * not yet covered answer SL_ERR_TIMEOUT, as the producer asked. */
static void produce_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    produce_ctx *x = arg;
    for (size_t i = 0; i < x->nwaits; i++) {
        if (!x->waits[i].w)
            continue;
        sl_ops_wait_cancel(x->waits[i].w);
        x->waits[i].w = NULL;
        x->waits[i].pr->error = SL_ERR_TIMEOUT;
    }
    x->pending = 0;
    produce_send(x);
}

/* The connection closed while waiting: drop the waits, free. */
static void produce_cancel(void *arg)
{
    produce_ctx *x = arg;
    for (size_t i = 0; i < x->nwaits; i++)
        if (x->waits[i].w)
            sl_ops_wait_cancel(x->waits[i].w);
    produce_ctx_free(x);
}

/*
 * Check every record of every batch for one partition of a produce request
 * before any of them is appended (issue 18, finding 1): the CRC only
 * proves the producer meant these bytes, and a batch whose records lie
 * about their offset deltas, lengths or timestamps would be stored and
 * mislead every reader. A compressed batch may not inflate beyond
 * max-frame-bytes (finding 5: the declared size is checked before anything
 * is allocated). On failure nothing of that partition is stored, the
 * partition's error code says why (MALFORMED, CORRUPT, TOO_LARGE,
 * COMPRESSION) and the log line names the peer, partition, batch and
 * record; other partitions of the request go ahead, and the connection
 * stays open (its framing was fine).
 */
static sl_err produce_validate(sl_broker *b, sl_conn *c, const char *topic,
                               const sl_produce_part *pp)
{
    size_t off = 0, boff, blen;
    sl_err frc = SL_OK, rc;
    char why[200];
    for (int nb = 0; sl_records_next(pp->records, pp->records_len, &off, &boff,
                                     &blen, &frc);
         nb++) {
        rc = sl_batch_verify(pp->records + boff, blen, NULL);
        if (rc == SL_OK)
            rc = sl_batch_validate(pp->records + boff, blen,
                                   (size_t)b->cfg.max_frame_bytes, why,
                                   sizeof(why));
        else
            snprintf(why, sizeof(why), "%s",
                     rc == SL_ERR_CORRUPT ? "CRC mismatch"
                                          : "bad batch header");
        if (rc == SL_OK)
            continue;
        sl_log(SL_WARN, "binary",
               "peer %s: produce to %s/%u refused, batch %d: %s (nothing of "
               "this partition's batches stored)",
               sl_conn_peer(c), topic, pp->partition, nb, why);
        return rc;
    }
    return SL_OK;
}

static void h_produce(sl_broker *b, sl_conn *c, const sl_req *req, sl_reply *r)
{
    sl_arena qa;
    sl_produce_req q;
    produce_ctx *x = NULL;
    size_t nparts = 0;

    sl_arena_init(&qa);
    if (sl_produce_req_decode(req->body, req->len, &qa, &q) != SL_OK) {
        sl_bin_malformed(c, r, "PRODUCE");
        goto out;
    }
    if (q.acks > SL_ACKS_DURABLE) {
        sl_reply_error(r, SL_ERR_INVALID_ARG,
                       "PRODUCE: acks must be 0, 1 or 2");
        goto out;
    }
    if (b->defer_create && !b->no_defer && b->cfg.auto_create_topics) {
        /* cluster: a topic to auto-create goes through the metadata
         * quorum first; the request runs again once it exists here */
        for (uint32_t t = 0; t < q.ntopics; t++) {
            char name[SL_TOPIC_NAME_MAX + 1];
            int32_t np;
            if (sl_bin_topic_cstr(q.topics[t].topic, name, sizeof(name)) ==
                    SL_OK &&
                sl_topic_name_check(name, strlen(name)) == SL_OK &&
                sl_ops_topic_get(b, name, SL_OPS_NO_CREATE, &np) ==
                    SL_ERR_UNKNOWN_TOPIC &&
                b->defer_create(b, name, c, req, r, h_produce) == SL_OK)
                goto out;
        }
    }
    x = calloc(1, sizeof(*x));
    if (!x) {
        sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
        goto out;
    }
    x->b = b;
    x->r = r;
    x->corr = req->correlation_id;
    sl_arena_init(&x->a);
    for (uint32_t t = 0; t < q.ntopics; t++)
        nparts += q.topics[t].nparts;
    x->waits = calloc(nparts + 1, sizeof(*x->waits));
    x->s.topics =
        sl_arena_alloc(&x->a, sizeof(sl_produce_topic_resp) * (q.ntopics + 1));
    if (!x->waits || !x->s.topics) {
        sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
        goto out;
    }
    x->s.ntopics = q.ntopics;
    for (uint32_t t = 0; t < q.ntopics; t++) {
        sl_produce_topic *pt = &q.topics[t];
        sl_produce_topic_resp *rt = &x->s.topics[t];
        char name[SL_TOPIC_NAME_MAX + 1];
        sl_err trc = sl_bin_topic_cstr(pt->topic, name, sizeof(name));

        rt->topic = sl_bin_arena_str(&x->a, pt->topic);
        rt->nparts = pt->nparts;
        rt->parts = sl_arena_alloc(&x->a, sizeof(sl_produce_part_resp) *
                                              (pt->nparts + 1));
        if (!rt->parts) {
            sl_reply_error(r, SL_ERR_NOMEM, "out of memory");
            goto out;
        }
        for (uint32_t p = 0; p < pt->nparts; p++) {
            sl_produce_part *pp = &pt->parts[p];
            sl_produce_part_resp *pr = &rt->parts[p];
            size_t off = 0, boff, blen;
            int64_t base, next = -1, old_next = -1;
            sl_err rc = trc, frc = SL_OK;
            int nb = 0;

            pr->partition = pp->partition;
            pr->base_offset = -1;
            pr->last_offset = -1;
            pr->log_end_offset = -1;
            if (rc == SL_OK && (rc = produce_validate(b, c, name, pp)) != SL_OK)
                frc = rc;
            if (rc == SL_OK && q.acks == SL_ACKS_DURABLE && b->durable_guard)
                rc = b->durable_guard(b, name, (int32_t)pp->partition,
                                      pp->records, pp->records_len);
            while (rc == SL_OK && sl_records_next(pp->records, pp->records_len,
                                                  &off, &boff, &blen, &frc)) {
                int64_t n2 = -1;
                /* acks below durable: nobody waits for the fsync, so
                 * it starts no round of its own (flush-lazy-ms). Every
                 * batch passed produce_validate above: no second CRC */
                rc = sl_ops_append_checked(
                    b, name, (int32_t)pp->partition, SL_OPS_AUTO_CREATE,
                    pp->records + boff, blen, q.acks != SL_ACKS_DURABLE, &base,
                    &n2);
                if (rc == SL_ERR_DUPLICATE_SEQUENCE && nb == 0) {
                    /* an old retry, stored before (docs/cluster.md 4):
                     * answered with this code once durable up to n2 */
                    old_next = n2 > old_next ? n2 : old_next;
                    rc = SL_OK;
                    continue;
                }
                if (rc == SL_OK) {
                    next = n2;
                    if (nb++ == 0)
                        pr->base_offset = base;
                }
            }
            if (rc == SL_OK && frc != SL_OK)
                rc = frc;
            if (rc == SL_OK && nb == 0 && old_next >= 0) {
                pr->error = SL_ERR_DUPLICATE_SEQUENCE;
                if (q.acks == SL_ACKS_DURABLE) {
                    produce_wait *pw = &x->waits[x->nwaits];
                    sl_ops_wait *w = NULL;
                    sl_err wrc;
                    pw->ctx = x;
                    pw->pr = pr;
                    wrc = sl_ops_wait_durable(b, name, (int32_t)pp->partition,
                                              old_next, produce_durable_cb, pw,
                                              &w);
                    if (wrc != SL_OK) {
                        pr->error = wrc;
                    } else if (w) {
                        pw->w = w;
                        x->nwaits++;
                        x->pending++;
                    }
                }
                continue;
            }
            if (rc == SL_OK && nb == 0)
                rc = SL_ERR_MALFORMED; /* no batch at all */
            if (rc != SL_OK) {
                sl_log(SL_WARN, "binary",
                       "peer %s: produce to %s/%u failed: %s%s",
                       sl_conn_peer(c), trc == SL_OK ? name : "(bad name)",
                       pp->partition, sl_strerror(rc),
                       nb ? " (earlier batches of the request were appended)"
                          : "");
                pr->error = rc;
                if (nb == 0)
                    pr->base_offset = -1;
            }
            if (nb > 0) {
                pr->last_offset = next - 1;
                pr->log_end_offset = next; /* (the log's end after it) */
                if (q.acks == SL_ACKS_DURABLE) {
                    produce_wait *pw = &x->waits[x->nwaits];
                    sl_ops_wait *w = NULL;
                    sl_err wrc;
                    pw->ctx = x;
                    pw->pr = pr;
                    wrc = sl_ops_wait_durable(b, name, (int32_t)pp->partition,
                                              next, produce_durable_cb, pw, &w);
                    if (wrc != SL_OK) {
                        pr->error = wrc;
                    } else if (w) {
                        pw->w = w;
                        x->nwaits++;
                        x->pending++;
                    }
                }
            }
        }
    }
    if (q.acks == SL_ACKS_NONE) {
        sl_reply_drop(r);
        goto out;
    }
    if (x->pending > 0) {
        /* timeout_ms = 0: no limit (the protocol leaves 0 open) */
        if (q.timeout_ms > 0) {
            struct timeval tv = {(time_t)(q.timeout_ms / 1000),
                                 (suseconds_t)(q.timeout_ms % 1000) * 1000};
            x->timer = evtimer_new(b->base, produce_timeout_cb, x);
            if (x->timer)
                evtimer_add(x->timer, &tv);
        }
        sl_reply_set_cancel(r, produce_cancel, x);
        x = NULL; /* completes in produce_durable_cb */
        goto out;
    }
    produce_send(x);
    x = NULL;
out:
    if (x) {
        for (size_t i = 0; i < x->nwaits; i++)
            if (x->waits[i].w)
                sl_ops_wait_cancel(x->waits[i].w);
        produce_ctx_free(x);
    }
    sl_arena_fini(&qa);
}

void sl_binary_produce_register(sl_broker *b)
{
    sl_binary_register(b, SL_API_PRODUCE, 1, 1, h_produce);
}
