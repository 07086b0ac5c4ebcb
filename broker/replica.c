/*
 * replica.c - the replica fetcher, first step of partition data
 * replication (docs/cluster.md section 3; what is missing: section 9).
 *
 * For every partition that the metadata image places on this node with
 * another node as its leader, this node fetches from the leader with the
 * ordinary FETCH api (one connection and one outstanding FETCH per leader
 * node, covering all such partitions, each from this node's log end) and
 * appends the returned batches as they are, through sl_ops_append: the
 * batch is never re-encoded, its CRC is checked again, and the same
 * group-commit flusher makes it durable per the topic's flush policy.
 * Because the local end is always a batch boundary and appends assign the
 * next offset, a batch whose base offset equals the local end gets the
 * leader's offsets; any other base offset means the logs diverged (a tail
 * the old leader wrote, or a produce sent to this node): the partition is
 * then left alone (logged once) until its leader epoch changes. Truncation
 * to the leader's epoch boundary (KIP-101/279) is the step that will
 * resolve that; it is not built yet.
 *
 * What this does NOT give yet: the leader does not know how far followers
 * are (no high-water mark, no ISR changes from lag), and acks=durable
 * still means the leader's own fsync. Replication is asynchronous: a
 * record the leader acknowledged may be missing on the new leader after a
 * failover if the follower had not fetched it.
 *
 * @thread loop (everything here)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "broker/broker.h"
#include "broker/replica.h"
#include "cluster/meta.h"
#include "protocol/api.h"
#include "protocol/batch.h"
#include "protocol/frame.h"
#include "protocol/log.h"

#define FETCH_WAIT_MS 250
#define FETCH_MAX_BYTES (8u * 1024 * 1024)
#define PART_MAX_BYTES (1u * 1024 * 1024)
#define RETRY_MS 200

typedef struct stall {
    struct stall *next;
    char topic[256];
    int32_t partition, leader_epoch;
} stall;

struct sl_replicas {
    sl_broker *b;
    int32_t self;
    const sl_meta *image;
    struct fetcher *fetchers;
    stall *stalls; /* diverged partitions, until their epoch changes */
};

typedef struct fetcher {
    struct fetcher *next;
    sl_replicas *rs;
    int32_t leader;
    char addr[80];
    struct bufferevent *bev;
    struct event *retry_ev;
    int connected, inflight, dead;
    uint32_t corr;
} fetcher;

static int is_stalled(sl_replicas *rs, const char *topic, int32_t p,
                      int32_t epoch)
{
    for (stall *s = rs->stalls; s; s = s->next)
        if (s->partition == p && !strcmp(s->topic, topic))
            return s->leader_epoch == epoch;
    return 0;
}

static void set_stalled(sl_replicas *rs, const char *topic, int32_t p,
                        int32_t epoch)
{
    stall *s;
    for (s = rs->stalls; s; s = s->next)
        if (s->partition == p && !strcmp(s->topic, topic))
            break;
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return;
        snprintf(s->topic, sizeof(s->topic), "%s", topic);
        s->partition = p;
        s->next = rs->stalls;
        rs->stalls = s;
    }
    s->leader_epoch = epoch;
}

/* Does this node follow (topic, p) from `leader`? */
static const sl_mi_part *followed(const sl_replicas *rs, const sl_mi_topic *t,
                                  int32_t p, int32_t leader)
{
    const sl_mi_part *mp = &t->parts[p];
    if (mp->leader != leader || leader == rs->self)
        return NULL;
    for (int32_t r = 0; r < mp->nrep; r++)
        if (mp->rep[r] == rs->self)
            return mp;
    return NULL;
}

static void fetcher_close(fetcher *f)
{
    if (f->bev)
        bufferevent_free(f->bev);
    f->bev = NULL;
    f->connected = 0;
    f->inflight = 0;
}

static void fetcher_free(fetcher *f)
{
    fetcher_close(f);
    if (f->retry_ev)
        event_free(f->retry_ev);
    free(f);
}

static void send_fetch(fetcher *f);

static void retry_later(fetcher *f)
{
    struct timeval tv = {0, RETRY_MS * 1000};
    fetcher_close(f);
    evtimer_add(f->retry_ev, &tv);
}

/* Append one response's batches for one partition. */
static void apply_part(fetcher *f, const char *topic,
                       const sl_fetch_part_resp *pr, int32_t epoch)
{
    sl_replicas *rs = f->rs;
    size_t off = 0;
    sl_part *part;

    if (pr->error != SL_OK || pr->records_len == 0)
        return;
    if (sl_ops_part(rs->b, topic, (int32_t)pr->partition, SL_OPS_NO_CREATE,
                    &part) != SL_OK)
        return;
    while (off + SL_BATCH_HDR_SIZE <= pr->records_len) {
        const uint8_t *p = pr->records + off;
        int64_t base = (int64_t)sl_get_u64(p);
        uint32_t blen = sl_get_u32(p + SL_BATCH_LEN_OFF);
        size_t total = 12 + (size_t)blen;
        int32_t lod = (int32_t)sl_get_u32(p + 19);
        int64_t end = sl_part_end_offset(part);
        uint8_t *copy;
        sl_err rc;

        if (total > pr->records_len - off)
            break; /* a partial trailing batch: fetched again next time */
        off += total;
        if (base + lod < end)
            continue; /* already here (the batch holding fetch_offset) */
        if (base != end) {
            sl_log(SL_ERROR, "replica",
                   "%s/%u: leader %d sent offset %lld, log end here is %lld: "
                   "logs diverged; not replicating this partition until its "
                   "leader changes",
                   topic, pr->partition, (int)f->leader, (long long)base,
                   (long long)end);
            set_stalled(rs, topic, (int32_t)pr->partition, epoch);
            return;
        }
        copy = malloc(total);
        if (!copy)
            return;
        memcpy(copy, p, total);
        rs->b->replicating = 1;
        rc = sl_ops_append(rs->b, topic, (int32_t)pr->partition,
                           SL_OPS_NO_CREATE, copy, total, NULL, NULL);
        rs->b->replicating = 0;
        free(copy);
        if (rc != SL_OK) {
            sl_log(SL_ERROR, "replica", "%s/%u: append at %lld: %s", topic,
                   pr->partition, (long long)base, sl_strerror(rc));
            set_stalled(rs, topic, (int32_t)pr->partition, epoch);
            return;
        }
    }
}

static void on_response(fetcher *f, const uint8_t *frame, size_t flen)
{
    sl_arena a;
    sl_fetch_resp resp;
    uint32_t corr;

    sl_arena_init(&a);
    if (sl_resp_hdr_decode(frame, flen, &corr) != SL_OK || corr != f->corr ||
        sl_fetch_resp_decode(frame + SL_RESP_HDR_SIZE,
                             flen - SL_RESP_HDR_SIZE, &a, &resp) != SL_OK) {
        sl_log(SL_WARN, "replica", "leader %d at %s: bad FETCH reply",
               (int)f->leader, f->addr);
        f->dead = 1;
        goto out;
    }
    for (uint32_t i = 0; i < resp.ntopics; i++) {
        char topic[256];
        const sl_mi_topic *t;
        const sl_fetch_topic_resp *tr = &resp.topics[i];
        snprintf(topic, sizeof(topic), "%.*s", (int)tr->topic.len,
                 tr->topic.p ? tr->topic.p : "");
        t = sl_meta_topic_find(f->rs->image, topic);
        if (!t)
            continue;
        for (uint32_t j = 0; j < tr->nparts; j++) {
            const sl_mi_part *mp;
            if ((int32_t)tr->parts[j].partition >= t->nparts)
                continue;
            mp = followed(f->rs, t, (int32_t)tr->parts[j].partition,
                          f->leader);
            if (mp)
                apply_part(f, topic, &tr->parts[j], mp->leader_epoch);
        }
    }
out:
    sl_arena_fini(&a);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    fetcher *f = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    for (;;) {
        size_t avail = evbuffer_get_length(in), flen = 0;
        const uint8_t *p = evbuffer_pullup(in, avail < 4 ? (ssize_t)avail : 4);
        int rc;
        if (avail < 4 || !p)
            return;
        rc = sl_frame_peek(p, 4, SL_DEFAULT_MAX_FRAME, &flen);
        if (rc != SL_OK && rc != SL_FRAME_PARTIAL) {
            retry_later(f);
            return;
        }
        if (avail < flen)
            return;
        p = evbuffer_pullup(in, (ssize_t)flen);
        if (!p) {
            retry_later(f);
            return;
        }
        on_response(f, p, flen);
        evbuffer_drain(in, flen);
        f->inflight = 0;
        if (f->dead) {
            f->dead = 0;
            retry_later(f);
            return;
        }
        send_fetch(f);
        if (!f->bev)
            return;
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    fetcher *f = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        f->connected = 1;
        send_fetch(f);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        retry_later(f);
}

static void connect_fetcher(fetcher *f)
{
    struct sockaddr_storage ss;
    int slen = sizeof(ss);
    if (f->bev || !f->addr[0])
        return;
    if (evutil_parse_sockaddr_port(f->addr, (struct sockaddr *)&ss, &slen)) {
        sl_log(SL_WARN, "replica", "leader %d: bad address '%s'",
               (int)f->leader, f->addr);
        return;
    }
    f->bev = bufferevent_socket_new(f->rs->b->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!f->bev)
        return;
    bufferevent_setcb(f->bev, read_cb, NULL, event_cb, f);
    bufferevent_enable(f->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(f->bev, (struct sockaddr *)&ss, slen) != 0)
        retry_later(f);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    connect_fetcher(arg);
}

/* One FETCH for every partition this node follows from f->leader. */
static void send_fetch(fetcher *f)
{
    sl_replicas *rs = f->rs;
    const sl_meta *m = rs->image;
    sl_arena a;
    sl_wb wb;
    sl_fetch_req q;
    uint32_t nt = 0;

    if (!f->bev || !f->connected || f->inflight)
        return;
    sl_arena_init(&a);
    sl_wb_init(&wb, 512);
    memset(&q, 0, sizeof(q));
    q.max_wait_ms = FETCH_WAIT_MS;
    q.min_bytes = 1;
    q.max_bytes = FETCH_MAX_BYTES;
    q.topics = sl_arena_alloc(&a, sizeof(*q.topics) * (m->ntopics + 1));
    if (!q.topics)
        goto out;
    for (size_t i = 0; i < m->ntopics; i++) {
        const sl_mi_topic *t = m->topics[i];
        sl_fetch_topic *ft = &q.topics[nt];
        ft->parts = sl_arena_alloc(&a, sizeof(*ft->parts) * (size_t)t->nparts);
        if (!ft->parts)
            goto out;
        ft->nparts = 0;
        for (int32_t p = 0; p < t->nparts; p++) {
            const sl_mi_part *mp = followed(rs, t, p, f->leader);
            sl_part *part;
            if (!mp || is_stalled(rs, t->name, p, mp->leader_epoch) ||
                sl_ops_part(rs->b, t->name, p, SL_OPS_NO_CREATE, &part) !=
                    SL_OK)
                continue;
            ft->parts[ft->nparts].partition = (uint32_t)p;
            ft->parts[ft->nparts].fetch_offset = sl_part_end_offset(part);
            ft->parts[ft->nparts].max_bytes = PART_MAX_BYTES;
            ft->nparts++;
        }
        if (ft->nparts) {
            ft->topic = sl_str_c(t->name);
            nt++;
        }
    }
    if (nt == 0)
        goto out; /* nothing to follow from this leader (any more) */
    q.ntopics = nt;
    f->corr++;
    if (sl_fetch_req_encode(&wb, f->corr, &q) != SL_OK)
        goto out;
    if (bufferevent_write(f->bev, wb.p, wb.len) == 0)
        f->inflight = 1;
out:
    sl_wb_fini(&wb);
    sl_arena_fini(&a);
}

sl_err sl_replicas_new(sl_broker *b, int32_t self, const sl_meta *image,
                       sl_replicas **out)
{
    sl_replicas *rs = calloc(1, sizeof(*rs));
    if (!rs)
        return SL_ERR_NOMEM;
    rs->b = b;
    rs->self = self;
    rs->image = image;
    *out = rs;
    return SL_OK;
}

void sl_replicas_free(sl_replicas *rs)
{
    if (!rs)
        return;
    while (rs->fetchers) {
        fetcher *f = rs->fetchers;
        rs->fetchers = f->next;
        fetcher_free(f);
    }
    while (rs->stalls) {
        stall *s = rs->stalls;
        rs->stalls = s->next;
        free(s);
    }
    free(rs);
}

void sl_replicas_update(sl_replicas *rs)
{
    const sl_meta *m = rs->image;
    fetcher **pf;

    /* a fetcher per leader node this node follows something from */
    for (size_t i = 0; i < m->nnodes; i++) {
        const sl_mi_node *n = &m->nodes[i];
        int wanted = 0;
        fetcher *f;
        if (n->id == rs->self)
            continue;
        for (size_t k = 0; k < m->ntopics && !wanted; k++)
            for (int32_t p = 0; p < m->topics[k]->nparts && !wanted; p++)
                wanted = followed(rs, m->topics[k], p, n->id) != NULL;
        for (f = rs->fetchers; f; f = f->next)
            if (f->leader == n->id)
                break;
        if (!wanted)
            continue;
        if (!f) {
            f = calloc(1, sizeof(*f));
            if (!f)
                continue;
            f->rs = rs;
            f->leader = n->id;
            f->retry_ev = evtimer_new(rs->b->base, retry_cb, f);
            if (!f->retry_ev) {
                free(f);
                continue;
            }
            f->next = rs->fetchers;
            rs->fetchers = f;
        }
        if (strcmp(f->addr, n->addr)) {
            fetcher_close(f);
            snprintf(f->addr, sizeof(f->addr), "%s", n->addr);
        }
        if (!f->bev)
            connect_fetcher(f);
        else
            send_fetch(f);
    }
    /* fetchers of nodes that lead nothing of ours any more */
    for (pf = &rs->fetchers; *pf;) {
        fetcher *f = *pf;
        int wanted = 0;
        for (size_t k = 0; k < m->ntopics && !wanted; k++)
            for (int32_t p = 0; p < m->topics[k]->nparts && !wanted; p++)
                wanted = followed(rs, m->topics[k], p, f->leader) != NULL;
        if (wanted) {
            pf = &f->next;
        } else {
            *pf = f->next;
            fetcher_free(f);
        }
    }
}
