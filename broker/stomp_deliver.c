/*
 * stomp_deliver.c - MESSAGE frames to STOMP subscriptions.
 *
 * Two sources feed a subscription:
 *  - a queue group consumer (/queue, temp queues, durable topic
 *    subscriptions): the group pushes records (stomp_qc_deliver) while the
 *    subscription has credits, which are its prefetch minus what it holds
 *    unacked (auto ack: the prefetch); sub_refill grants them outside the
 *    group's callbacks.
 *  - topic readers (plain /topic subscriptions, one per topic a wildcard
 *    matches): cursors over the partition logs from the end offset at
 *    subscribe time (sl_part_iter) that read only what is visible, by the
 *    one rule every reader follows (groups/visible.c,
 *    sl_ops_visible_offset: FETCH sees the same records, queue-dispatch
 *    decides for both), woken by a watch on their partitions
 *    (sl_ops_watch, as a FETCH long-poll is). The broker's append hook
 *    (stomp_on_append) lets a wildcard subscription discover topics
 *    created after it subscribed.
 *
 * Back-pressure: past output-high-water a subscription loses its credits
 * and its readers stop; the connection's on_drain (stomp.c) pumps again.
 * A record whose MESSAGE would exceed stomp-max-frame is not sent: a queue
 * rejects it (dead-letters it), a topic reader skips it; both are logged.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/stomp_int.h"

static int sub_can_deliver(stomp_sub *s)
{
    stomp_conn *c = s->c;
    if (conn_closing(c) || out_high(c))
        return 0;
    if (s->ack != ACK_AUTO && (int64_t)s->pq.n >= s->prefetch)
        return 0;
    return 1;
}

static const char *rec_header(const sl_record *rec, const char *name, char *buf,
                              size_t bl)
{
    sl_header h;
    if (sl_record_header_find(rec, name, &h) != SL_OK || !h.value)
        return NULL;
    if (h.value_len >= bl)
        return NULL;
    memcpy(buf, h.value, h.value_len);
    buf[h.value_len] = 0;
    return buf;
}

static int printable(const uint8_t *p, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f)
            return 0;
    }
    return 1;
}

/* Write one MESSAGE frame for rec on subscription s. */
/* 0 = sent; -1 = not sent: the MESSAGE would exceed stomp-max-frame (a
 * record stored through the binary protocol may be larger than any STOMP
 * frame; the caller dead-letters or skips it, and it is logged here). */
static int deliver(stomp_sub *s, const char *topic, int32_t partition,
                   const sl_record *rec, uint32_t attempts, uint32_t failures)
{
    stomp_conn *c = s->c;
    sl_wb *wb = &c->scratch;
    sl_stomp_enc e;
    char mid[SL_TOPIC_NAME_MAX + 48], dst[SL_TOPIC_NAME_MAX + 32];
    const char *dname = s->dest;
    size_t blen = rec->value_len > 0 ? (size_t)rec->value_len : 0;

    {
        /* "topic/partition/offset" without snprintf: once per MESSAGE */
        size_t tl = strlen(topic), n;
        if (tl > SL_TOPIC_NAME_MAX)
            tl = SL_TOPIC_NAME_MAX;
        memcpy(mid, topic, tl);
        n = tl;
        mid[n++] = '/';
        n += sl_u64_dec(mid + n, (uint64_t)(partition < 0 ? 0 : partition));
        mid[n++] = '/';
        sl_u64_dec(mid + n, (uint64_t)(rec->offset < 0 ? 0 : rec->offset));
    }
    if (s->pattern) {
        snprintf(dst, sizeof(dst), "%s%s", s->dprefix,
                 stomp_vhost_local(c, topic));
        dname = dst;
    }
    sl_wb_reset(wb);
    stomp_enc_begin(c, &e, wb, c->version, SL_STOMP_MESSAGE);
    sl_stomp_enc_header_s(&e, "subscription", s->id);
    sl_stomp_enc_header_s(&e, "message-id", mid);
    sl_stomp_enc_header_s(&e, "destination", dname);
    if (c->version >= SL_STOMP_V12 && s->ack != ACK_AUTO) {
        /* "message-id#subscription-id" (see stomp_msgid_parse) */
        char ackv[sizeof(mid) + 128], *av = ackv;
        size_t need = strlen(mid) + strlen(s->id) + 2;
        if (need > sizeof(ackv) && !(av = malloc(need)))
            av = mid; /* then pend_find searches every subscription */
        else {
            size_t ml = strlen(mid);
            memcpy(av, mid, ml);
            av[ml] = '#';
            memcpy(av + ml + 1, s->id, need - ml - 1); /* with its NUL */
        }
        sl_stomp_enc_header_s(&e, "ack", av);
        if (av != ackv && av != mid)
            free(av);
    }
    sl_stomp_enc_header_s(&e, "redelivered", attempts > 1 ? "true" : "false");
    sl_stomp_enc_header_u(&e, "x-delivery-count", attempts ? attempts - 1 : 0);
    sl_stomp_enc_header_u(&e, "sluice-attempts", attempts);
    sl_stomp_enc_header_u(&e, "sluice-failures", failures);
    sl_header_iter hi;
    sl_header h;
    sl_record_headers_begin(rec, &hi);
    while (sl_record_headers_next(&hi, &h) == SL_OK) {
        if (h.key_len == 0)
            continue;
        /* the protocol's own headers above win over stored ones */
        if ((h.key_len == 12 && memcmp(h.key, "subscription", 12) == 0) ||
            (h.key_len == 10 && memcmp(h.key, "message-id", 10) == 0) ||
            (h.key_len == 11 && memcmp(h.key, "destination", 11) == 0) ||
            (h.key_len == 3 && memcmp(h.key, "ack", 3) == 0) ||
            (h.key_len == 11 && memcmp(h.key, "redelivered", 11) == 0) ||
            (h.key_len == 14 && memcmp(h.key, "content-length", 14) == 0) ||
            (h.key_len == 16 && memcmp(h.key, "x-delivery-count", 16) == 0))
            continue;
        sl_stomp_enc_header(&e, h.key, h.key_len,
                            h.value ? (const char *)h.value : "",
                            h.value ? h.value_len : 0);
    }
    if (rec->key && rec->key_len > 0 && rec->key_len < 1024 &&
        printable(rec->key, rec->key_len)) {
        sl_header gh;
        if (sl_record_header_find(rec, "JMSXGroupID", &gh) != SL_OK)
            sl_stomp_enc_header(&e, "sluice-key", 10, (const char *)rec->key,
                                (size_t)rec->key_len);
    }
    sl_stomp_enc_header_u(&e, "timestamp", (uint64_t)rec->timestamp);
    sl_stomp_enc_header_u(&e, "content-length", blen);
    if (blen + wb->len + 1 > c->s->lim.max_frame) {
        sl_log(SL_WARN, STOMP_SUBSYS,
               "%s/%d offset %" PRId64 ": a MESSAGE of %zu bytes would "
               "exceed stomp-max-frame (%zu); not sent to subscription %s",
               topic, (int)partition, rec->offset, blen + wb->len + 1,
               c->s->lim.max_frame, s->id);
        sl_wb_reset(wb);
        return -1;
    }
    sl_stomp_enc_end(&e, rec->value, blen);
    conn_write(c, wb->p, wb->len);
    return 0;
}

/* expires (ms since the epoch, ActiveMQ) or ttl-ms (after the record's
 * timestamp) already passed? */
static int rec_expired(const sl_record *rec)
{
    char b[32];
    int ok;
    int64_t v;
    if (rec_header(rec, "expires", b, sizeof(b))) {
        v = parse_i64(b, &ok);
        if (ok && v > 0 && v <= sl_now_ms())
            return 1;
    }
    if (rec_header(rec, HDR_TTL_MS, b, sizeof(b))) {
        v = parse_i64(b, &ok);
        if (ok && v >= 0 && rec->timestamp + v <= sl_now_ms())
            return 1;
    }
    return 0;
}

/* Queue consumer push callback. */
static int sel_pass(stomp_sub *s, const sl_record *rec);

/* The queue group's filter for a queue subscription with a selector:
 * records it does not match stay for the other consumers. */
int stomp_qc_accept(void *arg, const sl_record *rec)
{
    return sel_pass(arg, rec);
}

void stomp_qc_deliver(void *arg, const sl_qdelivery *d)
{
    stomp_sub *s = arg;
    if (s->qcredit > 0)
        s->qcredit--;
    if (s->durable && !sel_pass(s, d->rec)) {
        /* a durable subscription's group is its own: what its selector
         * does not match is not for it, ever (ActiveMQ does not keep it
         * for the subscription either); done, and the credit back */
        sl_qconsumer_ack(s->qc, d->partition, d->offset, d->offset, NULL);
        sl_qconsumer_credit(s->qc, 1);
        s->qcredit++;
        return;
    }
    /* expiry (expires, ttl-ms, the group's and the topic's TTL) was
     * checked by the group as it handed the record out, and dealt with
     * as the group says (dlq_expired) */
    if (deliver(s, d->topic, d->partition, d->rec, d->attempts, d->failures) !=
        0)
        sl_qconsumer_reject(s->qc, d->partition, d->offset, d->offset,
                            "larger than stomp-max-frame", NULL);
    else if (s->ack == ACK_AUTO)
        sl_qconsumer_ack(s->qc, d->partition, d->offset, d->offset, NULL);
    else
        /* the ack will not resolve without memory; lock expiry returns it */
        stomp_pendq_push(&s->pq, NULL, s->qtopic, d->partition, d->offset);
    if (out_high(s->c)) {
        sl_qconsumer_set_credit(s->qc, 0);
        s->qcredit = 0;
    }
}

void stomp_qc_flush(void *arg)
{
    stomp_sub *s = arg;
    conn_kick(s->c); /* refill outside the callback */
}

/* Give a queue subscription the credits it may use now. Not from inside
 * its callbacks. */
static void sub_refill(stomp_sub *s)
{
    int64_t want;
    if (!s->qc)
        return;
    if (conn_closing(s->c) || out_high(s->c))
        want = 0;
    else if (s->ack == ACK_AUTO)
        want = s->prefetch;
    else
        want = s->prefetch - (int64_t)s->pq.n;
    if (want < 0)
        want = 0;
    if (want != s->qcredit) {
        s->qcredit = want;
        sl_qconsumer_set_credit(s->qc, want);
    }
}

/* A selector's view of a record: its headers, and the JMS header names
 * ActiveMQ maps onto STOMP ones. */
typedef struct sel_rec {
    const sl_record *rec;
    char *buf;
    size_t cap;
    char num[32];
} sel_rec;

static const char *sel_lookup(void *arg, const char *name)
{
    sel_rec *x = arg;
    const char *hname = name;
    sl_header h;
    if (strcmp(name, "JMSTimestamp") == 0) {
        snprintf(x->num, sizeof(x->num), "%" PRId64, x->rec->timestamp);
        return x->num;
    }
    if (strcmp(name, "JMSPriority") == 0)
        hname = "priority";
    else if (strcmp(name, "JMSType") == 0)
        hname = "type";
    else if (strcmp(name, "JMSCorrelationID") == 0)
        hname = "correlation-id";
    else if (strcmp(name, "JMSDeliveryMode") == 0)
        hname = "persistent";
    if (sl_record_header_find(x->rec, hname, &h) != SL_OK || !h.value) {
        if (hname != name && strcmp(hname, "priority") == 0)
            return "4"; /* the JMS default */
        if (hname != name && strcmp(hname, "persistent") == 0)
            return "NON_PERSISTENT";
        return NULL;
    }
    if (h.value_len + 1 > x->cap) {
        char *nb = realloc(x->buf, h.value_len + 1);
        if (!nb)
            return NULL;
        x->buf = nb;
        x->cap = h.value_len + 1;
    }
    memcpy(x->buf, h.value, h.value_len);
    x->buf[h.value_len] = 0;
    if (hname != name && strcmp(hname, "persistent") == 0)
        return stomp_header_bool(x->buf, 0) ? "PERSISTENT" : "NON_PERSISTENT";
    return x->buf;
}

/* Does rec pass s's selector (if any)? */
static int sel_pass(stomp_sub *s, const sl_record *rec)
{
    sel_rec x;
    int ok;
    if (!s->sel)
        return 1;
    memset(&x, 0, sizeof(x));
    x.rec = rec;
    ok = sl_selector_match(s->sel, sel_lookup, &x);
    free(x.buf);
    return ok;
}

/* Deliver what a topic reader can, from its cursors. */
static void reader_pump(treader *r)
{
    stomp_sub *s = r->sub;
    stomp_srv *srv = s->c->s;
    int32_t p;
    for (p = 0; p < r->nparts; p++) {
        int64_t upto = 0;
        if (r->cursor[p] < 0)
            continue; /* not read by this reader (stomp_reader_only) */
        if (sl_ops_visible_offset(srv->b, r->topic, p, &upto) != SL_OK)
            continue;
        while (r->cursor[p] < upto && sub_can_deliver(s)) {
            sl_record rec;
            sl_err err = SL_OK;
            if (!r->it[p]) {
                sl_part *part;
                if (sl_ops_part(srv->b, r->topic, p, SL_OPS_NO_CREATE, &part) !=
                    SL_OK)
                    break;
                if (r->cursor[p] < sl_part_start_offset(part))
                    r->cursor[p] = sl_part_start_offset(part);
                if (sl_part_iter_new(part, r->cursor[p], &r->it[p]) != SL_OK)
                    break;
            }
            if (sl_part_iter_next(r->it[p], &rec, &err) != 1) {
                if (err != SL_OK) {
                    sl_log(SL_WARN, STOMP_SUBSYS,
                           "topic %s partition %d offset %" PRId64
                           ": read failed: %s",
                           r->topic, p, r->cursor[p], sl_strerror(err));
                    sl_part_iter_free(r->it[p]);
                    r->it[p] = NULL;
                }
                break;
            }
            if (rec.offset < r->cursor[p])
                continue;
            if (rec.offset >= upto) { /* past a gap: not visible yet */
                sl_part_iter_seek(r->it[p], rec.offset);
                break;
            }
            r->cursor[p] = rec.offset + 1;
            if (rec_expired(&rec) || !sel_pass(s, &rec))
                continue;
            if (deliver(s, r->topic, p, &rec, 1, 0) == 0 && s->ack != ACK_AUTO)
                stomp_pendq_push(&s->pq, r, r->topic, p, rec.offset);
        }
    }
}

void stomp_reader_free(stomp_srv *srv, treader *r)
{
    int32_t p;
    if (r->gprev)
        r->gprev->gnext = r->gnext;
    else
        srv->readers = r->gnext;
    if (r->gnext)
        r->gnext->gprev = r->gprev;
    sl_ops_watch_free(r->watch);
    for (p = 0; p < r->nparts; p++)
        sl_part_iter_free(r->it[p]);
    free(r->it);
    free(r->cursor);
    free(r);
}

/* New records of the reader's partitions became visible. */
static void reader_watch_cb(void *arg, int timed_out)
{
    if (!timed_out) /* (only at shutdown: the watch has no timeout) */
        reader_pump(arg);
}

/* A reader of topic for s, starting at the log end (from_start = 0) or at
 * the log start (a topic that appeared after the subscription). */
sl_err stomp_reader_new(stomp_sub *s, const char *topic, int from_start)
{
    stomp_srv *srv = s->c->s;
    treader *r;
    int32_t np = 0, p;
    sl_err rc = sl_ops_topic_get(srv->b, topic, SL_OPS_NO_CREATE, &np);
    if (rc != SL_OK)
        return rc;
    r = calloc(1, sizeof(*r));
    if (!r)
        return SL_ERR_NOMEM;
    snprintf(r->topic, sizeof(r->topic), "%s", topic);
    r->sub = s;
    r->from_start = from_start;
    r->nparts = np;
    r->cursor = calloc((size_t)np, sizeof(*r->cursor));
    r->it = calloc((size_t)np, sizeof(*r->it));
    if (!r->cursor || !r->it ||
        sl_ops_watch_new(srv->b, -1, reader_watch_cb, r, &r->watch) != SL_OK) {
        free(r->cursor);
        free(r->it);
        free(r);
        return SL_ERR_NOMEM;
    }
    for (p = 0; p < np; p++) {
        int64_t off = 0;
        sl_ops_watch_add(r->watch, topic, p);
        if (sl_ops_list_offset(srv->b, topic, p,
                               from_start ? SL_OFFSET_EARLIEST
                                          : SL_OFFSET_LATEST,
                               &off) == SL_OK)
            r->cursor[p] = off;
    }
    r->sub_next = s->readers;
    s->readers = r;
    r->gnext = srv->readers;
    if (srv->readers)
        srv->readers->gprev = r;
    srv->readers = r;
    return SL_OK;
}

void stomp_reader_only(treader *r, int32_t part)
{
    int32_t p;
    for (p = 0; p < r->nparts; p++)
        if (p != part)
            r->cursor[p] = -1;
}

static treader *sub_reader_for(stomp_sub *s, const char *topic)
{
    treader *r;
    for (r = s->readers; r; r = r->sub_next) {
        if (strcmp(r->topic, topic) == 0)
            return r;
    }
    return NULL;
}

void stomp_sub_pump(stomp_sub *s)
{
    treader *r;
    if (s->qc)
        sub_refill(s);
    else if (s->relay)
        stomp_relay_pump(s);
    for (r = s->readers; r; r = r->sub_next)
        reader_pump(r);
}

typedef struct wild_ctx {
    stomp_sub *s;
} wild_ctx;

static void wild_each(void *arg, const char *name, int32_t partitions)
{
    wild_ctx *w = arg;
    if (stomp_wild_match(w->s->pattern, name) &&
        !stomp_tmp_foreign(w->s->c->session, name) &&
        stomp_vhost_sees(w->s->c, name) && !sub_reader_for(w->s, name))
        stomp_reader_new(w->s, name, 0);
}

void stomp_wild_attach(stomp_sub *s)
{
    wild_ctx w;
    w.s = s;
    sl_ops_topic_list(s->c->s->b, wild_each, &w);
}

/* The append hook: let wildcard subscriptions discover topics created
 * after they subscribed (a new reader reads them from their start; the
 * readers' own watches wake them). */
void stomp_on_append(void *arg, const char *topic, int32_t partition,
                     int64_t end_offset)
{
    stomp_srv *srv = arg;
    stomp_conn *c;
    for (c = srv->conns; c; c = c->next) {
        stomp_sub *s;
        if (conn_closing(c))
            continue;
        for (s = c->subs; s; s = s->next) {
            if (s->pattern && stomp_wild_match(s->pattern, topic) &&
                !stomp_tmp_foreign(c->session, topic) &&
                stomp_vhost_sees(c, topic) && !sub_reader_for(s, topic) &&
                stomp_reader_new(s, topic, 1) == SL_OK)
                reader_pump(s->readers); /* (its watch missed this one) */
        }
    }
}

void stomp_on_topic_delete(void *arg, const char *topic)
{
    stomp_srv *srv = arg;
    treader *r;
    for (r = srv->readers; r; r = r->gnext) {
        int32_t p;
        if (strcmp(r->topic, topic) != 0)
            continue;
        for (p = 0; p < r->nparts; p++) {
            sl_part_iter_free(r->it[p]);
            r->it[p] = NULL;
        }
        r->nparts = 0; /* dead: nothing more to read */
    }
}
