/*
 * binary_queue_groups.c - binary protocol handlers for queue groups:
 * 20 QUEUE_ACQUIRE, 21-24 ACK NACK REJECT TOUCH, 27 QUEUE_GROUP_CONFIG,
 * and the registry of binary queue consumers they use.
 *
 * Queue consumers. A binary consumer is named by the client (consumer_id in
 * every queue request) and kept here per (group, topic, consumer_id), as
 * an sl_qconsumer with credits. QUEUE_ACQUIRE gives it max_records
 * credits; records are pushed into the pending acquire by the deliver
 * callback, and the reply is sent at the end of the first delivery pass
 * that produced something (or empty when max_wait_ms passes). Credits go
 * back to 0 with the reply, so a binary consumer holds only what it was
 * sent.
 *
 * Connection close. A consumer belongs to the connection that created it,
 * then to the connection of its latest QUEUE_ACQUIRE (the one that got
 * the records; a client that reconnects under the same consumer_id takes
 * its consumer over). A close hook (sl_conn_on_close: peer EOF or close,
 * whichever comes first) frees the consumers of that connection: what
 * they held is available again at once, attempts kept and no failure
 * counted (like a STOMP DISCONNECT or UNSUBSCRIBE, and like RabbitMQ,
 * which requeues unacked messages as redelivered). A parked acquire gets
 * no more records: it is cancelled with its reply (reset) or answered
 * SL_ERR_SHUTTING_DOWN "consumer closed" (EOF). The hook only marks the
 * consumers; a deferred event frees them, so a close that happens inside
 * a delivery pass never frees a consumer under the groups library's
 * feet. A consumer without requests for 1 minute
 * (holding nothing) or 5 minutes on a connection that stays open is
 * freed too; the locks of what it held expire as usual.
 *
 * Settlements (ACK/NACK/REJECT) are answered after the SQLite transaction
 * holding them committed (sl_groups_wait); TOUCH at once.
 * @thread loop
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "broker/binary.h"
#include "broker/binary_groups.h"
#include "broker/broker.h"
#include "broker/config.h"
#include "broker/json.h"
#include "broker/ops_groups.h"
#include "groups/queue_cfg.h"
#include "protocol/api.h"
#include "protocol/log.h"

#define CONSUMER_IDLE_MS (5 * 60 * 1000)
#define CONSUMER_IDLE_EMPTY_MS (60 * 1000)

/* ---- binary queue consumers --------------------------------------------- */

typedef struct dent {
    int32_t partition;
    int64_t offset;
    uint16_t attempts, failures;
    int64_t deadline;
} dent;

typedef struct bq bq;
typedef struct sl_bgroups bstate;

typedef struct bacq {
    bq *q;
    sl_reply *r;
    uint32_t corr;
    uint32_t max_records;
    uint64_t max_bytes;
    uint64_t bytes;
    struct event *timer;
    dent *ents;
    size_t n, cap;
} bacq;

struct bq {
    bstate *s; /* the registry it is in */
    char *group, *topic, *cid;
    sl_qconsumer *qc;
    int64_t last_used;
    bacq *acq;
    /* the owning connection (borrowed, a key only: cleared by its close
     * hook); NULL once it closed */
    sl_conn *conn;
    int gone; /* its connection closed: freed by s->gone_ev */
    bq *next;
};

/* The registry of binary queue consumers, one per broker (b->bgroups). */
struct sl_bgroups {
    sl_broker *b;
    bq *consumers;
    struct event *gone_ev; /* frees consumers whose connection closed */
};

static void bq_free(bq *q);

static int cmp_dent(const void *a, const void *b)
{
    const dent *x = a, *y = b;
    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Order deliveries by (partition, offset): a stable counting sort by
 * partition (deliveries of one partition mostly come ascending already),
 * then a qsort of a partition's bucket only if it is out of order. */
static void sort_dents(dent *v, size_t n)
{
    int32_t maxp = 0;
    size_t *start;
    dent *tmp;
    int sorted = 1;
    for (size_t i = 0; i < n; i++) {
        if (v[i].partition > maxp)
            maxp = v[i].partition;
        if (i && cmp_dent(&v[i - 1], &v[i]) > 0)
            sorted = 0;
    }
    if (sorted)
        return;
    start = calloc((size_t)maxp + 2, sizeof(*start));
    tmp = malloc(n * sizeof(*tmp));
    if (!start || !tmp || maxp > 1000000) {
        free(start);
        free(tmp);
        qsort(v, n, sizeof(dent), cmp_dent);
        return;
    }
    for (size_t i = 0; i < n; i++)
        start[v[i].partition + 1]++;
    for (int32_t p = 0; p <= maxp; p++)
        start[p + 1] += start[p];
    for (size_t i = 0; i < n; i++)
        tmp[start[v[i].partition]++] = v[i];
    memcpy(v, tmp, n * sizeof(*v));
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        int asc = 1;
        while (j < n && v[j].partition == v[i].partition) {
            if (v[j].offset < v[j - 1].offset)
                asc = 0;
            j++;
        }
        if (!asc)
            qsort(v + i, j - i, sizeof(dent), cmp_dent);
        i = j;
    }
    free(start);
    free(tmp);
}

/* File ranges of one partition's records in an acquire reply. */
typedef struct slices {
    sl_part_slice *v;
    size_t n, cap;
    size_t bytes;
} slices;

static int slices_add(slices *ss, const sl_part_slice *s)
{
    if (ss->n == ss->cap) {
        size_t nc = ss->cap ? ss->cap * 2 : 8;
        sl_part_slice *n = realloc(ss->v, nc * sizeof(*n));
        if (!n)
            return -1;
        ss->v = n;
        ss->cap = nc;
    }
    ss->v[ss->n++] = *s;
    ss->bytes += s->len;
    return 0;
}

static void slices_fini(slices *ss)
{
    for (size_t i = 0; i < ss->n; i++)
        if (ss->v[i].fd >= 0)
            close(ss->v[i].fd);
    free(ss->v);
    memset(ss, 0, sizeof(*ss));
}

/*
 * Build and send the acquire reply; frees acq. Zero-copy: entries are
 * written into wb, the record batches go out as file ranges (sendfile),
 * each batch once, ascending, covering every run of delivered offsets.
 */
static void acq_respond(bacq *acq)
{
    bq *q = acq->q;
    sl_resp_enc e;
    sl_qentry *entries = NULL;
    slices *ss = NULL;
    size_t *split = NULL;
    sl_wb wb;
    size_t np = 0, pos = 0, nparts = 0;
    sl_err rc;

    q->acq = NULL;
    if (q->qc)
        sl_qconsumer_set_credit(q->qc, 0);
    if (acq->timer)
        event_free(acq->timer);
    sl_reply_set_cancel(acq->r, NULL, NULL);
    sl_wb_init(&wb, 256 + acq->n * 24);
    if (acq->n > 0) {
        sort_dents(acq->ents, acq->n);
        nparts = 1;
        for (size_t i = 1; i < acq->n; i++)
            nparts += acq->ents[i].partition != acq->ents[i - 1].partition;
        entries = calloc(acq->n, sizeof(*entries));
        ss = calloc(nparts, sizeof(*ss));
        split = calloc(nparts, sizeof(*split));
        if (!entries || !ss || !split)
            goto nomem;
    }
    sl_queue_acquire_resp_begin(&e, &wb, acq->corr);
    for (size_t i = 0; i < acq->n;) {
        size_t j = i;
        sl_qacq_part pp;
        sl_part *part = NULL;
        int64_t next = -1;
        while (j < acq->n && acq->ents[j].partition == acq->ents[i].partition)
            j++;
        sl_ops_part(q->s->b, q->topic, acq->ents[i].partition, SL_OPS_NO_CREATE,
                    &part);
        for (size_t k = i; k < j; k++) {
            dent *d = &acq->ents[k];
            entries[k].offset = d->offset;
            entries[k].attempts = d->attempts;
            entries[k].failures = d->failures;
            entries[k].lock_deadline_ms = d->deadline;
            if (!part || d->offset < next)
                continue;
            int64_t last = d->offset, at = d->offset;
            size_t m = k;
            while (m + 1 < j && acq->ents[m + 1].offset == last + 1) {
                m++;
                last++;
            }
            /* Batches are appended whole, so every batch holding a
             * delivered record is below the log end. Only batches that
             * hold delivered records are sent: the whole ones inside the
             * run, then the one the run ends in. A damaged batch the
             * partition reader skipped is never in a run, so it is not
             * sent to a consumer that would choke on it. */
            while (at <= last) {
                sl_part_slice sl = {.fd = -1};
                sl_err rrc = sl_part_read(part, at, 1 << 20, last + 1, &sl);
                if (rrc == SL_OK && sl.len == 0)
                    rrc = sl_part_read(part, at, 1, sl_part_end_offset(part),
                                       &sl);
                if (rrc != SL_OK || sl.len == 0 || sl.next_offset <= at) {
                    if (sl.len)
                        close(sl.fd);
                    break;
                }
                if (slices_add(&ss[np], &sl) != 0) {
                    close(sl.fd);
                    goto nomem;
                }
                at = sl.next_offset;
            }
            next = at;
        }
        memset(&pp, 0, sizeof(pp));
        pp.partition = (uint32_t)acq->ents[i].partition;
        pp.entries = &entries[i];
        pp.nentries = (uint32_t)(j - i);
        pp.records_len = ss[np].bytes;
        split[np] = sl_queue_acquire_resp_part(&e, &pp, 1);
        np++;
        i = j;
    }
    rc = sl_resp_enc_finish(&e);
    if (rc != SL_OK)
        goto nomem;
    for (size_t k = 0; k < np; k++) {
        sl_reply_add(acq->r, wb.p + pos, split[k] - pos);
        pos = split[k];
        for (size_t m = 0; m < ss[k].n; m++) {
            sl_reply_add_file(acq->r, ss[k].v[m].fd, ss[k].v[m].file_pos,
                              ss[k].v[m].len);
            ss[k].v[m].fd = -1; /* owned by the reply now */
        }
    }
    sl_reply_add(acq->r, wb.p + pos, wb.len - pos);
    sl_reply_done(acq->r);
    goto out;
nomem:
    sl_reply_error(acq->r, SL_ERR_NOMEM, "QUEUE_ACQUIRE: out of memory");
out:
    for (size_t i = 0; ss && i < nparts; i++)
        slices_fini(&ss[i]);
    free(ss);
    free(split);
    free(entries);
    sl_wb_fini(&wb);
    free(acq->ents);
    free(acq);
}

static void bq_deliver(void *arg, const sl_qdelivery *d)
{
    bq *q = arg;
    bacq *acq = q->acq;
    if (!acq) {
        /* Credits without a request cannot happen; be safe anyway. */
        sl_qconsumer_set_credit(q->qc, 0);
        sl_qconsumer_release(q->qc, d->partition, d->offset, d->offset, 0, 0,
                             NULL);
        return;
    }
    if (acq->n == acq->cap) {
        size_t nc = acq->cap ? acq->cap * 2 : 64;
        dent *n = realloc(acq->ents, nc * sizeof(*n));
        if (!n) {
            sl_qconsumer_release(q->qc, d->partition, d->offset, d->offset, 0,
                                 0, NULL);
            sl_qconsumer_set_credit(q->qc, 0);
            return;
        }
        acq->ents = n;
        acq->cap = nc;
    }
    acq->ents[acq->n++] = (dent){d->partition, d->offset, (uint16_t)d->attempts,
                                 (uint16_t)d->failures, d->lock_deadline};
    acq->bytes += 70 + (uint64_t)(d->rec->key_len > 0 ? d->rec->key_len : 0) +
                  (uint64_t)(d->rec->value_len > 0 ? d->rec->value_len : 0) +
                  d->rec->headers_len;
    if (acq->n >= acq->max_records || acq->bytes >= acq->max_bytes)
        sl_qconsumer_set_credit(q->qc, 0);
}

static void bq_flush(void *arg)
{
    bq *q = arg;
    if (q->acq && q->acq->n > 0)
        acq_respond(q->acq);
}

static void acq_timeout(evutil_socket_t fd, short what, void *arg)
{
    bacq *acq = arg;
    (void)fd;
    (void)what;
    acq_respond(acq);
}

/* The connection closed while the acquire waited: the client is gone.
 * Freed by gone_cb (deferred), which releases what it held. */
static void acq_cancel(void *arg)
{
    bacq *acq = arg;
    bq *q = acq->q;
    if (acq->timer)
        event_free(acq->timer);
    q->acq = NULL;
    free(acq->ents);
    free(acq);
    q->gone = 1;
    if (q->s->gone_ev)
        event_active(q->s->gone_ev, EV_READ, 0);
    if (q->qc)
        sl_qconsumer_set_credit(q->qc, 0);
}

static bq *bq_find(bstate *s, const char *group, const char *topic,
                   const char *cid)
{
    for (bq *q = s->consumers; q; q = q->next)
        if (!strcmp(q->cid, cid) && !strcmp(q->group, group) &&
            !strcmp(q->topic, topic))
            return q;
    return NULL;
}

/* Close hook of a connection that owns consumers: mark them; gone_cb
 * frees them (and so releases their records) from a deferred event. */
static void bq_conn_closed(void *arg, sl_conn *c)
{
    bstate *s = arg;
    int any = 0;
    for (bq *q = s->consumers; q; q = q->next)
        if (q->conn == c) {
            q->conn = NULL;
            q->gone = 1;
            any = 1;
            if (q->qc)
                sl_qconsumer_set_credit(q->qc, 0);
        }
    if (any && s->gone_ev)
        event_active(s->gone_ev, EV_READ, 0);
}

static void gone_cb(evutil_socket_t fd, short what, void *arg)
{
    bstate *s = arg;
    bq *q;
    (void)fd;
    (void)what;
    /* rescan after each free: releasing may deliver to other consumers,
     * and their replies may close further connections */
    for (;;) {
        for (q = s->consumers; q && !q->gone; q = q->next)
            ;
        if (!q)
            break;
        sl_log(SL_DEBUG, "groups",
               "queue consumer %s (group %s, topic %s): connection closed, "
               "%zu held records released",
               q->cid, q->group, q->topic, (size_t)sl_qconsumer_held(q->qc));
        bq_free(q);
    }
}

void sl_bg_describe_conn(sl_broker *b, sl_conn *c, sl_jw *j)
{
    bstate *s = b->bgroups;
    int64_t in_flight = 0;
    sl_jw_key(j, "groups");
    sl_jw_arr(j);
    for (bq *q = s ? s->consumers : NULL; q; q = q->next) {
        int64_t held;
        if (q->conn != c || q->gone)
            continue;
        held = (int64_t)sl_qconsumer_held(q->qc);
        in_flight += held;
        sl_jw_obj(j);
        sl_jw_kstr(j, "group", q->group);
        sl_jw_kstr(j, "topic", q->topic);
        sl_jw_kstr(j, "consumer", q->cid);
        sl_jw_ki64(j, "in_flight", held);
        sl_jw_end(j);
    }
    sl_jw_end(j);
    sl_jw_ki64(j, "in_flight", in_flight);
}

/* q belongs to c from now on (registers the close hook once per
 * connection). On failure to register, the idle reaper is the fallback. */
static void bq_own(bq *q, sl_conn *c)
{
    q->gone = 0;
    if (q->conn == c)
        return;
    if (sl_conn_on_close(c, bq_conn_closed, q->s) == SL_OK)
        q->conn = c;
}

static sl_err bq_get(bstate *s, sl_groups *g, const char *group,
                     const char *topic, const char *cid, int64_t lock_ms,
                     sl_conn *c, bq **out)
{
    bq *q = bq_find(s, group, topic, cid);
    sl_qconsumer_cb cb;
    sl_err rc;
    if (q && !sl_qconsumer_alive(q->qc) && !q->acq) {
        bq_free(q); /* its group or topic was deleted: start over */
        q = NULL;
    }
    if (q) {
        q->last_used = sl_now_ms();
        if (q->gone) /* closed, not freed yet: reconnected, take it over */
            bq_own(q, c);
        *out = q;
        return SL_OK;
    }
    q = calloc(1, sizeof(*q));
    if (!q)
        return SL_ERR_NOMEM;
    q->s = s;
    q->group = strdup(group);
    q->topic = strdup(topic);
    q->cid = strdup(cid);
    if (!q->group || !q->topic || !q->cid) {
        rc = SL_ERR_NOMEM;
        goto fail;
    }
    cb.deliver = bq_deliver;
    cb.flush = bq_flush;
    cb.arg = q;
    rc = sl_qconsumer_new(g, group, topic, lock_ms, cid, &cb, &q->qc);
    if (rc != SL_OK)
        goto fail;
    q->last_used = sl_now_ms();
    bq_own(q, c);
    q->next = s->consumers;
    s->consumers = q;
    *out = q;
    return SL_OK;
fail:
    free(q->group);
    free(q->topic);
    free(q->cid);
    free(q);
    return rc;
}

static void bq_free(bq *q)
{
    for (bq **pp = &q->s->consumers; *pp; pp = &(*pp)->next)
        if (*pp == q) {
            *pp = q->next;
            break;
        }
    if (q->acq) {
        bacq *acq = q->acq;
        q->acq = NULL;
        sl_reply_set_cancel(acq->r, NULL, NULL);
        if (acq->timer)
            event_free(acq->timer);
        sl_reply_error(acq->r, SL_ERR_SHUTTING_DOWN, "consumer closed");
        free(acq->ents);
        free(acq);
    }
    sl_qconsumer_free(q->qc);
    free(q->group);
    free(q->topic);
    free(q->cid);
    free(q);
}

/* Once a second (sl_ops_groups_on_second): free idle consumers. */
static void bq_reap(void *arg, int64_t now)
{
    bstate *s = arg;
    bq *q = s->consumers;
    while (q) {
        bq *next = q->next;
        /* No request for a while on a connection that stays open (closed
         * connections free theirs at once, see bq_conn_closed). Holding
         * nothing: after a minute; holding records (their locks expire
         * meanwhile): after five. */
        int64_t idle = now - q->last_used;
        if (!q->acq &&
            (idle > CONSUMER_IDLE_MS || (idle > CONSUMER_IDLE_EMPTY_MS &&
                                         sl_qconsumer_held(q->qc) == 0))) {
            sl_log(SL_INFO, "groups",
                   "queue consumer %s (group %s, topic %s) idle: closed",
                   q->cid, q->group, q->topic);
            bq_free(q);
        }
        q = next;
    }
}

/* ---- 20 QUEUE_ACQUIRE ---------------------------------------------------- */

static void h_acquire(sl_broker *b, sl_conn *c, const sl_req *req, sl_reply *r)
{
    sl_queue_acquire_req q;
    char group[SL_BG_NAME_MAX], topic[SL_BG_NAME_MAX], cid[SL_BG_NAME_MAX];
    sl_groups *g = sl_bg_groups(b, r);
    bq *cq;
    bacq *acq;
    sl_err rc;
    if (!g)
        return;
    if (sl_queue_acquire_req_decode(req->body, req->len, &q) != SL_OK) {
        sl_reply_error(r, SL_ERR_MALFORMED, "QUEUE_ACQUIRE: malformed body");
        return;
    }
    if (sl_bg_cstr(q.group, group, sizeof(group)) || !group[0] ||
        sl_bg_cstr(q.topic, topic, sizeof(topic)) ||
        sl_bg_cstr(q.consumer_id, cid, sizeof(cid)) || !cid[0]) {
        sl_reply_error(r, SL_ERR_INVALID_ARG,
                       "QUEUE_ACQUIRE: group, topic and consumer_id must be "
                       "non-empty and shorter than 256 bytes");
        return;
    }
    if (q.max_records == 0) {
        sl_reply_error(r, SL_ERR_INVALID_ARG,
                       "QUEUE_ACQUIRE: max_records must be >= 1");
        return;
    }
    /* A consumer's first acquire creates its topic when auto-create-topics
     * is on, as STOMP SUBSCRIBE does and pika's queue_declare does. */
    if (!bq_find(b->bgroups, group, topic, cid)) {
        int32_t np;
        (void)sl_ops_topic_get(b, topic, SL_OPS_AUTO_CREATE, &np);
    }
    if (!sl_bg_coordinated(b, group, "QUEUE_ACQUIRE", r))
        return;
    rc = bq_get(b->bgroups, g, group, topic, cid, q.lock_ms, c, &cq);
    if (rc != SL_OK) {
        char msg[800];
        snprintf(msg, sizeof(msg),
                 "QUEUE_ACQUIRE: queue group %s on topic "
                 "%s: %s%s",
                 group, topic, sl_strerror(rc),
                 rc == SL_ERR_UNKNOWN_TOPIC &&
                         !sl_broker_config(b)->auto_create_topics
                     ? " (auto-create-topics is off on this broker: create "
                       "the topic first, e.g. sluice topic create NAME)"
                     : "");
        sl_reply_error(r, rc, msg);
        return;
    }
    if (cq->acq) /* a newer acquire replaces a waiting one */
        acq_respond(cq->acq);
    /* the records go to this connection: its close releases them */
    bq_own(cq, c);
    acq = calloc(1, sizeof(*acq));
    if (!acq) {
        sl_reply_error(r, SL_ERR_NOMEM, "QUEUE_ACQUIRE: out of memory");
        return;
    }
    acq->q = cq;
    acq->r = r;
    acq->corr = req->correlation_id;
    acq->max_records = q.max_records > 100000 ? 100000 : q.max_records;
    acq->max_bytes = q.max_bytes ? q.max_bytes : (64u << 20);
    cq->acq = acq;
    sl_reply_set_cancel(r, acq_cancel, acq);
    sl_qconsumer_set_credit(cq->qc, acq->max_records);
    if (cq->acq != acq)
        return; /* answered during the delivery pass */
    if (acq->n > 0 || q.max_wait_ms == 0) {
        acq_respond(acq);
        return;
    }
    acq->timer = evtimer_new(sl_broker_base(b), acq_timeout, acq);
    if (!acq->timer) {
        acq_respond(acq);
        return;
    }
    struct timeval tv = {q.max_wait_ms / 1000,
                         (suseconds_t)(q.max_wait_ms % 1000) * 1000};
    evtimer_add(acq->timer, &tv);
}

/* ---- 21-24 ACK NACK REJECT TOUCH ----------------------------------------- */

static void h_settle(sl_broker *b, sl_conn *c, const sl_req *req, sl_reply *r)
{
    sl_qsettle_req q;
    sl_qsettle_resp resp;
    sl_arena a;
    char group[SL_BG_NAME_MAX], topic[SL_BG_NAME_MAX], cid[SL_BG_NAME_MAX];
    char reason[1024];
    sl_groups *g = sl_bg_groups(b, r);
    bq *cq;
    sl_wb wb;
    sl_err rc;
    if (!g)
        return;
    sl_arena_init(&a);
    sl_wb_init(&wb, 256);
    if (sl_qsettle_req_decode(req->api_key, req->body, req->len, &a, &q) !=
        SL_OK) {
        sl_reply_error(r, SL_ERR_MALFORMED, "settle: malformed body");
        goto out;
    }
    if (sl_bg_cstr(q.group, group, sizeof(group)) || !group[0] ||
        sl_bg_cstr(q.topic, topic, sizeof(topic)) || !topic[0] ||
        sl_bg_cstr(q.consumer_id, cid, sizeof(cid)) || !cid[0]) {
        sl_reply_error(r, SL_ERR_INVALID_ARG,
                       "settle: group, topic and consumer_id must be "
                       "non-empty and shorter than 256 bytes");
        goto out;
    }
    if (!sl_bg_settles(b, group, "settle", r))
        goto out;
    rc = bq_get(b->bgroups, g, group, topic, cid, 0, c, &cq);
    if (rc != SL_OK) {
        sl_reply_error(r, rc, "settle: unknown queue group or topic");
        goto out;
    }
    memset(&resp, 0, sizeof(resp));
    resp.nparts = q.nparts;
    resp.parts = sl_arena_alloc(&a, (q.nparts + 1) * sizeof(*resp.parts));
    if (!resp.parts) {
        sl_reply_error(r, SL_ERR_NOMEM, "settle: out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < q.nparts; i++) {
        sl_qsettle_part *p = &q.parts[i];
        sl_qsettle_part_resp *pr = &resp.parts[i];
        pr->partition = p->partition;
        pr->nranges = p->nranges;
        pr->ranges = sl_arena_alloc(&a, (p->nranges + 1) * sizeof(*pr->ranges));
        if (!pr->ranges) {
            sl_reply_error(r, SL_ERR_NOMEM, "settle: out of memory");
            goto out;
        }
        for (uint32_t k = 0; k < p->nranges; k++) {
            sl_qrange *qr = &p->ranges[k];
            int32_t part = (int32_t)p->partition;
            pr->ranges[k].first = qr->first;
            pr->ranges[k].last = qr->last;
            switch (req->api_key) {
            case SL_API_QUEUE_ACK:
                rc = sl_qconsumer_ack(cq->qc, part, qr->first, qr->last, NULL);
                break;
            case SL_API_QUEUE_NACK:
                rc = sl_qconsumer_release(cq->qc, part, qr->first, qr->last,
                                          qr->delay_ms < 0 ? -1 : qr->delay_ms,
                                          1, NULL);
                break;
            case SL_API_QUEUE_REJECT:
                if (sl_bg_cstr(qr->reason, reason, sizeof(reason)))
                    reason[0] = 0;
                rc = sl_qconsumer_reject(cq->qc, part, qr->first, qr->last,
                                         reason, NULL);
                break;
            default:
                rc = sl_qconsumer_touch(cq->qc, part, qr->first, qr->last,
                                        qr->extend_ms, NULL, NULL);
                break;
            }
            pr->ranges[k].error = rc;
        }
    }
    if (sl_qsettle_resp_encode(&wb, req->correlation_id, &resp) != SL_OK) {
        sl_reply_error(r, SL_ERR_NOMEM, "settle: cannot encode reply");
        goto out;
    }
    if (req->api_key == SL_API_QUEUE_TOUCH) {
        sl_bg_reply_frame(r, &wb);
        goto out;
    }
    sl_bg_reply_when_durable(g, r, &wb);
    sl_wb_init(&wb, 0); /* handed over */
out:
    sl_wb_fini(&wb);
    sl_arena_fini(&a);
}

/* ---- 27 QUEUE_GROUP_CONFIG ----------------------------------------------- */

static void h_qconfig(sl_broker *b, sl_conn *c, const sl_req *req, sl_reply *r)
{
    sl_queue_group_config_req q;
    sl_queue_group_config_resp resp;
    sl_arena a;
    sl_qgroup_cfg cfg;
    char group[SL_BG_NAME_MAX], topic[SL_BG_NAME_MAX], text[1200];
    char msg[600], k[128], v[512];
    sl_kv kvs[32];
    size_t nkv = 0;
    sl_groups *g = sl_bg_groups(b, r);
    sl_wb wb;
    sl_err rc;
    (void)c;
    if (!g)
        return;
    sl_arena_init(&a);
    sl_wb_init(&wb, 256);
    if (sl_queue_group_config_req_decode(req->body, req->len, &a, &q) !=
        SL_OK) {
        sl_reply_error(r, SL_ERR_MALFORMED,
                       "QUEUE_GROUP_CONFIG: malformed body");
        goto out;
    }
    if (sl_bg_cstr(q.group, group, sizeof(group)) || !group[0] ||
        sl_bg_cstr(q.topic, topic, sizeof(topic))) {
        sl_reply_error(r, SL_ERR_INVALID_ARG,
                       "QUEUE_GROUP_CONFIG: bad group or topic name");
        goto out;
    }
    if (!sl_bg_coordinated(b, group, "QUEUE_GROUP_CONFIG", r))
        goto out;
    rc = sl_qgroup_get_cfg(g, group, topic, &cfg);
    if (rc != SL_OK) {
        if (q.mode != SL_QGC_UPSERT) {
            snprintf(msg, sizeof(msg), "unknown queue group %s on topic %s",
                     group, topic);
            sl_reply_error(r, SL_ERR_UNKNOWN_GROUP, msg);
            goto out;
        }
        sl_groups_qgroup_defaults(g, &cfg);
    }
    if (q.mode == SL_QGC_DESCRIBE && q.nconfigs > 0) {
        sl_reply_error(r, SL_ERR_INVALID_ARG,
                       "QUEUE_GROUP_CONFIG: describe takes no configs");
        goto out;
    }
    for (uint32_t i = 0; i < q.nconfigs; i++) {
        if (sl_bg_cstr(q.configs[i].key, k, sizeof(k)) ||
            sl_bg_cstr(q.configs[i].value, v, sizeof(v))) {
            sl_reply_error(r, SL_ERR_INVALID_CONFIG,
                           "QUEUE_GROUP_CONFIG: key or value too long");
            goto out;
        }
        rc = sl_qgroup_cfg_set(&cfg, k, v, msg, sizeof(msg));
        if (rc != SL_OK) {
            sl_reply_error(r, rc, msg);
            goto out;
        }
    }
    if (q.mode != SL_QGC_DESCRIBE) {
        rc = sl_qgroup_declare(g, group, topic, &cfg);
        if (rc != SL_OK) {
            snprintf(msg, sizeof(msg), "queue group %s on topic %s: %s", group,
                     topic, sl_strerror(rc));
            sl_reply_error(r, rc, msg);
            goto out;
        }
    }
    sl_qgroup_cfg_text(&cfg, text, sizeof(text));
    for (char *line = text; *line && nkv < 32;) {
        char *nl = strchr(line, '\n');
        char *eq = strchr(line, '=');
        if (nl)
            *nl = 0;
        if (eq && (!nl || eq < nl)) {
            *eq = 0;
            kvs[nkv].key = sl_str_c(line);
            kvs[nkv].value = sl_str_c(eq + 1);
            nkv++;
        }
        if (!nl)
            break;
        line = nl + 1;
    }
    /* Read-only broker-wide counters after the settings (tests, ops):
     * they show that SQLite transactions are batched (txns << acks). */
    sl_groups_stats st;
    char sv[6][24];
    sl_groups_stats_get(g, &st);
    snprintf(sv[0], 24, "%llu", (unsigned long long)st.txns);
    snprintf(sv[1], 24, "%llu", (unsigned long long)st.acks);
    snprintf(sv[2], 24, "%llu", (unsigned long long)st.deliveries);
    snprintf(sv[3], 24, "%llu", (unsigned long long)st.dlq_appends);
    snprintf(sv[4], 24, "%llu", (unsigned long long)st.lock_expiries);
    snprintf(sv[5], 24, "%llu", (unsigned long long)st.releases);
    static const char *const sk[6] = {
        "stats.groups_db_txns", "stats.acks",          "stats.deliveries",
        "stats.dlq_appends",    "stats.lock_expiries", "stats.releases"};
    for (int i = 0; i < 6 && nkv < 32; i++, nkv++) {
        kvs[nkv].key = sl_str_c(sk[i]);
        kvs[nkv].value = sl_str_c(sv[i]);
    }
    memset(&resp, 0, sizeof(resp));
    resp.nconfigs = (uint32_t)nkv;
    resp.configs = kvs;
    if (sl_queue_group_config_resp_encode(&wb, req->correlation_id, &resp) !=
        SL_OK) {
        sl_reply_error(r, SL_ERR_NOMEM, "QUEUE_GROUP_CONFIG: encode failed");
        goto out;
    }
    if (q.mode == SL_QGC_DESCRIBE) {
        sl_bg_reply_frame(r, &wb);
        goto out;
    }
    sl_bg_reply_when_durable(g, r, &wb);
    sl_wb_init(&wb, 0);
out:
    sl_wb_fini(&wb);
    sl_arena_fini(&a);
}

/* ---- start and stop
 * ------------------------------------------------------------ */

sl_err sl_bg_queue_init(sl_broker *b)
{
    bstate *s = calloc(1, sizeof(*s));
    if (!s)
        return SL_ERR_NOMEM;
    s->b = b;
    b->bgroups = s;
    s->gone_ev = event_new(sl_broker_base(b), -1, 0, gone_cb, s);
    if (!s->gone_ev || sl_ops_groups_on_second(b, bq_reap, s) != SL_OK)
        return SL_ERR_NOMEM;
    sl_binary_register(b, SL_API_QUEUE_ACQUIRE, 1, 1, h_acquire);
    sl_binary_register(b, SL_API_QUEUE_ACK, 1, 1, h_settle);
    sl_binary_register(b, SL_API_QUEUE_NACK, 1, 1, h_settle);
    sl_binary_register(b, SL_API_QUEUE_REJECT, 1, 1, h_settle);
    sl_binary_register(b, SL_API_QUEUE_TOUCH, 1, 1, h_settle);
    sl_binary_register(b, SL_API_QUEUE_GROUP_CONFIG, 1, 1, h_qconfig);
    return SL_OK;
}

void sl_bg_queue_fini(sl_broker *b)
{
    bstate *s = b->bgroups;
    if (!s)
        return;
    for (bq *q = s->consumers; q; q = q->next)
        if (q->qc)
            sl_qconsumer_set_credit(q->qc, 0);
    while (s->consumers) {
        bq *q = s->consumers;
        /* s is freed below: no close hook of an open connection may
         * still point at it */
        if (q->conn)
            sl_conn_off_close(q->conn, bq_conn_closed, s);
        bq_free(q);
    }
    if (s->gone_ev)
        event_free(s->gone_ev);
    b->bgroups = NULL;
    free(s);
}

void sl_bg_queue_wake_all(sl_broker *b)
{
    bstate *s = b->bgroups;
    for (bq *q = s ? s->consumers : NULL; q; q = q->next)
        if (q->acq)
            acq_respond(q->acq);
}
