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
 * leader's offsets.
 *
 * Divergent tails (docs/cluster.md 3.2): after every leader change the
 * first fetch of a partition asks for this node's last batch again and
 * compares the leader's batch at that offset with it (the header bytes;
 * the CRC in them covers the records). Different, or the leader's log
 * ends before it: the batch is a tail an old leader wrote that nobody
 * kept, so it is cut (sl_part_truncate) and the batch before it is checked
 * with the next fetch, until the logs agree. Only the active segment can
 * be cut; a divergence below it stalls the partition (logged, with what
 * to do) until its leader epoch changes.
 *
 * The fetch is FETCH version 2 (docs/protocol.md 4.6): it carries this
 * node's id and, per partition, its durable offset; its fetch_offset is
 * the log end. After appending a response's batches the fetcher waits for
 * their local fsync before it sends the next fetch, so the next fetch
 * reports them durable (the leader's durable acks wait for that). The
 * leader's high-water mark comes back in each response and caps this
 * node's readers too.
 *
 * Leader epochs (KIP-320): the fetch is version 3, each partition with the
 * leader epoch this node's image names. A leader whose image names a
 * newer epoch refuses that partition with FENCED_LEADER_EPOCH and does
 * not count the fetch toward its high-water mark (this node's log may
 * hold a tail the leader cut since, and the tail check above runs only
 * once this node knows the epoch changed); one whose image is older
 * answers UNKNOWN_LEADER_EPOCH. Either way this node leaves the partition
 * out of its fetches until its own image changes the epoch or RETRY_MS
 * passed (its image is its metadata: it catches up from the Raft log),
 * then asks again; no busy loop while one of the two images lags.
 *
 * The leader's side (below, "the leader's side") keeps what each follower
 * reported and derives the partition's high-water mark (readers' cap) and
 * the followers' durable offset (durable acks), docs/cluster.md 3.3.
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
#include "broker/cluster_propose.h"
#include "broker/ops.h"
#include "broker/replica.h"
#include "broker/peer_auth.h"
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

/* The leader's view of one partition it leads (or led): what each
 * follower reported in its latest fetch. */
#define LP_BUCKETS 1024
typedef struct lpart {
    struct lpart *next; /* hash chain */
    char *topic;
    int32_t partition;
    int leading; /* this node led it at the last evaluation */
    int32_t n;   /* followers seen */
    int32_t id[SL_META_MAX_RF];
    int64_t end[SL_META_MAX_RF], durable[SL_META_MAX_RF];
    /* ISR upkeep: the leader's end when that follower's previous fetch
     * came, and the last time a fetch showed it had all of that */
    int64_t prev_end[SL_META_MAX_RF], caught_ms[SL_META_MAX_RF];
    int64_t fetch_ms[SL_META_MAX_RF]; /* its latest fetch */
    int64_t lead_ms; /* when this node began to lead it */
    int change_pending; /* a PARTITION_CHANGE of ours is in flight */
    struct sl_replicas *rs;
    /* the follower's side: its tail was checked against the leader of
     * this epoch (-1: not yet); while checking, the last batch's header */
    int32_t verified_epoch;
    int verifying;
    int64_t tail_base;
    uint8_t tail_hdr[SL_BATCH_HDR_SIZE];
    /* the leader refused our fetch in this epoch (stale metadata on one
     * side): not asked again before refused_until_ms or a new epoch */
    int32_t refused_epoch;
    int64_t refused_until_ms;
} lpart;

struct sl_replicas {
    sl_broker *b;
    int32_t self;
    const sl_meta *image;
    struct fetcher *fetchers;
    stall *stalls; /* diverged partitions, until their epoch changes */
    lpart *lparts[LP_BUCKETS];
    struct event *isr_ev; /* ISR upkeep tick */
    /* reassignment throttle (docs/cluster.md 10.3): bytes this node may
     * still fetch this second for partitions it copies to join them */
    int64_t thr_budget, thr_ms;
    struct event *thr_ev;
    int thr_armed;
};

typedef struct dwait {
    struct dwait *next;
    struct fetcher *f;
    sl_ops_wait *w;
} dwait;

typedef struct fetcher {
    struct fetcher *next;
    sl_replicas *rs;
    int32_t leader;
    char addr[80];
    struct bufferevent *bev;
    struct event *retry_ev;
    int connected, inflight, dead;
    uint32_t corr;
    dwait *waits; /* local fsyncs of the last response's appends */
    sl_peer_login login; /* with a cluster secret (peer_auth.c) */
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
    while (f->waits) {
        dwait *d = f->waits;
        f->waits = d->next;
        sl_ops_wait_cancel(d->w);
        free(d);
    }
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

static lpart *lp_get(sl_replicas *rs, const char *topic, int32_t p,
                     int create);

/* Cut this follower's log back to `to` (a batch boundary); 0 if it could
 * not be (then the partition stalls until its epoch changes). */
static int cut_tail(fetcher *f, const char *topic, int32_t p, sl_part *part,
                    int64_t to, int32_t epoch)
{
    sl_err rc;
    int64_t end = sl_part_end_offset(part);
    if (to >= end)
        return 1;
    rc = sl_part_truncate(part, to);
    if (rc != SL_OK) {
        sl_log(SL_ERROR, "replica",
               "%s/%d: log diverged from leader %d below offset %lld and "
               "cannot be truncated there (%s): not replicating this "
               "partition; stop this node, remove its directory "
               "DATA/topics/%s/%d and restart it to copy it again",
               topic, (int)p, (int)f->leader, (long long)end,
               sl_strerror(rc), topic, (int)p);
        set_stalled(f->rs, topic, p, epoch);
        return 0;
    }
    sl_log(SL_WARN, "replica",
           "%s/%d: log end %lld diverged from leader %d (epoch %d): "
           "truncated to %lld",
           topic, (int)p, (long long)end, (int)f->leader, (int)epoch,
           (long long)to);
    return 1;
}

/*
 * The first answer after a leader change (docs/cluster.md 3.2): the fetch
 * asked for this node's last batch again. The leader's batch at that
 * offset must be the same bytes (header compared; its CRC covers the
 * records); else this node's tail is one the old leader wrote and nobody
 * else kept: cut it and check the batch before it with the next fetch.
 * 1 when the tail is verified (the answer's batches can be appended).
 */
static int verify_tail(fetcher *f, const char *topic,
                       const sl_fetch_part_resp *pr, int32_t epoch,
                       sl_part *part, lpart *lp)
{
    int32_t p = (int32_t)pr->partition;
    if (pr->error == SL_ERR_OFFSET_OUT_OF_RANGE) {
        /* the leader's log ends before our last batch starts */
        int64_t lend = pr->log_end_offset, b;
        uint8_t hdr[SL_BATCH_HDR_SIZE];
        if (lend < 0 || lend >= sl_part_end_offset(part))
            return 0;
        if (lend < sl_part_start_offset(part) ||
            sl_part_batch_header(part, lend, hdr, &b) != SL_OK)
            b = lend;
        cut_tail(f, topic, p, part, b, epoch);
        return 0;
    }
    if (pr->error != SL_OK)
        return 0;
    if (pr->records_len >= SL_BATCH_HDR_SIZE &&
        (int64_t)sl_get_u64(pr->records) == lp->tail_base &&
        !memcmp(pr->records, lp->tail_hdr, SL_BATCH_HDR_SIZE)) {
        lp->verified_epoch = epoch;
        lp->verifying = 0;
        return 1;
    }
    cut_tail(f, topic, p, part, lp->tail_base, epoch);
    return 0;
}

static void dwait_cb(void *arg, sl_err rc)
{
    dwait *d = arg, **pp;
    fetcher *f = d->f;
    (void)rc; /* a failed fsync: the next fetch reports what is durable */
    for (pp = &f->waits; *pp; pp = &(*pp)->next)
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    free(d);
    if (!f->waits)
        send_fetch(f);
}

/* Whether this node copies mp for a reassignment that adds it (not in
 * the ISR yet): such fetches are throttled. */
static int throttled(const sl_replicas *rs, const sl_mi_part *mp)
{
    if (rs->b->cfg.reassign_throttle_bytes <= 0 || mp->ntarget == 0)
        return 0;
    for (int32_t i = 0; i < mp->nisr; i++)
        if (mp->isr[i] == rs->self)
            return 0;
    return 1;
}

/* Append one response's batches for one partition; 1 if any was. */
static int apply_part(fetcher *f, const char *topic,
                      const sl_fetch_part_resp *pr, int32_t epoch)
{
    sl_replicas *rs = f->rs;
    size_t off = 0;
    sl_part *part;
    int appended = 0;

    if (sl_ops_part(rs->b, topic, (int32_t)pr->partition, SL_OPS_NO_CREATE,
                    &part) != SL_OK)
        return 0;
    if (pr->error == SL_ERR_FENCED_LEADER_EPOCH ||
        pr->error == SL_ERR_UNKNOWN_LEADER_EPOCH) {
        lpart *lp = lp_get(rs, topic, (int32_t)pr->partition, 1);
        if (lp) {
            if (lp->refused_epoch != epoch)
                sl_log(SL_INFO, "replica",
                       "%s/%u: leader %d refused our fetch in epoch %d: %s; "
                       "waiting for the metadata to agree",
                       topic, pr->partition, (int)f->leader, (int)epoch,
                       sl_strerror(pr->error));
            lp->refused_epoch = epoch;
            lp->refused_until_ms = sl_now_ms() + RETRY_MS;
        }
        return 0;
    }
    {
        const sl_mi_topic *t = sl_meta_topic_find(rs->image, topic);
        if (t && (int32_t)pr->partition < t->nparts &&
            throttled(rs, &t->parts[pr->partition]))
            rs->thr_budget -= (int64_t)pr->records_len;
    }
    {
        lpart *lp = lp_get(rs, topic, (int32_t)pr->partition, 1);
        if (lp && lp->verifying &&
            !verify_tail(f, topic, pr, epoch, part, lp))
            return 0;
    }
    if (pr->error != SL_OK)
        return 0;
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
        if (base < 0)
            break;
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
            break;
        }
        copy = malloc(total);
        if (!copy)
            break;
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
            break;
        }
        appended = 1;
    }
    /* readers here stop at the leader's high-water mark too */
    if (pr->high_watermark >= 0)
        sl_ops_set_follower_marks(rs->b, topic, (int32_t)pr->partition,
                                  INT64_MAX, pr->high_watermark, SL_OK);
    if (appended) {
        /* the next fetch reports this as durable: send it once it is */
        dwait *d = calloc(1, sizeof(*d));
        sl_ops_wait *w = NULL;
        if (d) {
            d->f = f;
            if (sl_ops_wait_durable(rs->b, topic, (int32_t)pr->partition,
                                    sl_part_end_offset(part), dwait_cb, d,
                                    &w) == SL_OK &&
                w) {
                d->w = w;
                d->next = f->waits;
                f->waits = d;
            } else {
                free(d);
            }
        }
    }
    return appended;
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

    if (f->login.left) {
        char msg[300];
        int lr = sl_peer_login_read(&f->login, in, msg, sizeof(msg));
        if (lr < 0) {
            sl_peer_login_warn("replica", f->leader, f->addr, msg);
            retry_later(f);
        }
        if (lr <= 0)
            return;
    }
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
        if (f->waits)
            return; /* dwait_cb sends the next fetch */
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
    f->bev = sl_peer_bev_new(f->rs->b, f->addr); /* TLS with cluster-tls */
    if (!f->bev)
        return;
    bufferevent_setcb(f->bev, read_cb, NULL, event_cb, f);
    bufferevent_enable(f->bev, EV_READ | EV_WRITE);
    if (sl_peer_login_start(f->rs->b, &f->login, f->bev) != SL_OK ||
        bufferevent_socket_connect(f->bev, (struct sockaddr *)&ss, slen) != 0)
        retry_later(f);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    fetcher *f = arg;
    (void)fd;
    (void)what;
    if (f->bev)
        send_fetch(f); /* a partition refused for its epoch is due again */
    else
        connect_fetcher(f);
}

/* How many bytes a fetch may ask for partition mp: PART_MAX_BYTES, or
 * when throttled what is left of reassign-throttle-bytes (a token bucket
 * of one second; 0: skip it this time). The bytes that arrive are
 * charged (apply_part), so a batch larger than the grant (the first one
 * comes whole) is a debt the next fetches wait out. */
static uint32_t throttle_grant(sl_replicas *rs, const sl_mi_part *mp)
{
    int64_t rate = rs->b->cfg.reassign_throttle_bytes, now;
    if (!throttled(rs, mp))
        return PART_MAX_BYTES;
    now = sl_now_ms();
    rs->thr_budget += rate * (now - rs->thr_ms) / 1000;
    if (rs->thr_budget > rate)
        rs->thr_budget = rate;
    rs->thr_ms = now;
    if (rs->thr_budget <= 0)
        return 0;
    return rs->thr_budget < PART_MAX_BYTES ? (uint32_t)rs->thr_budget
                                           : PART_MAX_BYTES;
}

static void thr_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_replicas *rs = arg;
    (void)fd;
    (void)what;
    rs->thr_armed = 0;
    for (fetcher *f = rs->fetchers; f; f = f->next)
        send_fetch(f);
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
    int deferred = 0;
    int64_t now = sl_now_ms();

    if (!f->bev || !f->connected || f->inflight || f->waits)
        return;
    sl_arena_init(&a);
    sl_wb_init(&wb, 512);
    memset(&q, 0, sizeof(q));
    q.replica_id = rs->self;
    q.epochs = 1;
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
            {
                lpart *lp = lp_get(rs, t->name, p, 0);
                if (lp && lp->refused_epoch == mp->leader_epoch &&
                    now < lp->refused_until_ms) {
                    deferred = 1;
                    continue;
                }
            }
            ft->parts[ft->nparts].partition = (uint32_t)p;
            ft->parts[ft->nparts].leader_epoch = mp->leader_epoch;
            ft->parts[ft->nparts].fetch_offset = sl_part_end_offset(part);
            {
                /* a new leader: first check this node's tail (3.2) */
                lpart *lp = lp_get(rs, t->name, p, 1);
                int64_t end = sl_part_end_offset(part);
                if (lp && lp->verified_epoch != mp->leader_epoch) {
                    if (end > sl_part_start_offset(part) &&
                        sl_part_batch_header(part, end - 1, lp->tail_hdr,
                                             &lp->tail_base) == SL_OK) {
                        lp->verifying = 1;
                        ft->parts[ft->nparts].fetch_offset = lp->tail_base;
                    } else {
                        lp->verified_epoch = mp->leader_epoch;
                        lp->verifying = 0;
                    }
                }
            }
            ft->parts[ft->nparts].max_bytes = throttle_grant(rs, mp);
            if (ft->parts[ft->nparts].max_bytes == 0) {
                /* throttled: again when the budget has grown */
                if (rs->thr_ev && !rs->thr_armed) {
                    struct timeval tv = {0, 100 * 1000};
                    rs->thr_armed = 1;
                    evtimer_add(rs->thr_ev, &tv);
                }
                continue;
            }
            ft->parts[ft->nparts].durable_offset =
                sl_part_durable_offset(part);
            ft->nparts++;
        }
        if (ft->nparts) {
            ft->topic = sl_str_c(t->name);
            nt++;
        }
    }
    if (nt == 0) {
        if (deferred) { /* only refused partitions: ask again later */
            struct timeval tv = {0, RETRY_MS * 1000};
            evtimer_add(f->retry_ev, &tv);
        }
        goto out; /* nothing to follow from this leader (any more) */
    }
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

static void isr_tick(evutil_socket_t fd, short what, void *arg);

sl_err sl_replicas_new(sl_broker *b, int32_t self, const sl_meta *image,
                       sl_replicas **out)
{
    sl_replicas *rs = calloc(1, sizeof(*rs));
    if (!rs)
        return SL_ERR_NOMEM;
    rs->b = b;
    rs->self = self;
    rs->image = image;
    rs->thr_ev = evtimer_new(b->base, thr_cb, rs);
    rs->thr_ms = sl_now_ms();
    rs->isr_ev = event_new(b->base, -1, EV_PERSIST, isr_tick, rs);
    if (rs->isr_ev) {
        int64_t ms = b->cfg.replica_lag_time_max_ms / 4;
        struct timeval tv;
        if (ms < 50)
            ms = 50;
        tv.tv_sec = (time_t)(ms / 1000);
        tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
        event_add(rs->isr_ev, &tv);
    }
    *out = rs;
    return SL_OK;
}

void sl_replicas_free(sl_replicas *rs)
{
    if (!rs)
        return;
    if (rs->isr_ev)
        event_free(rs->isr_ev);
    if (rs->thr_ev)
        event_free(rs->thr_ev);
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
    for (size_t h = 0; h < LP_BUCKETS; h++)
        while (rs->lparts[h]) {
            lpart *lp = rs->lparts[h];
            rs->lparts[h] = lp->next;
            free(lp->topic);
            free(lp);
        }
    free(rs);
}

static void leaders_update(sl_replicas *rs);

void sl_replicas_topic_deleted(sl_replicas *rs, const char *topic)
{
    /* reset, not freed: an ISR change in flight still points at it */
    for (size_t h = 0; h < LP_BUCKETS; h++)
        for (lpart *lp = rs->lparts[h]; lp; lp = lp->next)
            if (!strcmp(lp->topic, topic)) {
                lp->n = 0;
                lp->leading = 0;
                lp->verified_epoch = -1;
                lp->verifying = 0;
            }
}

void sl_replicas_update(sl_replicas *rs)
{
    const sl_meta *m = rs->image;
    fetcher **pf;

    leaders_update(rs);

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

/* ---- the leader's side: followers' progress, HW and durable acks -------
 *
 * Each follower's fetch (FETCH version 2) carries, per partition, its log
 * end (fetch_offset) and durable offset. For a partition this node leads,
 * with the ISR from the image:
 *   HW  = min(leader's end, every in-sync follower's end); readers stop
 *         there (the partition's read cap; it never goes down while this
 *         node leads; INT64_MAX when no follower is in the ISR);
 *   DHW = min(leader's durable offset, every in-sync follower's durable
 *         offset): durable acks are answered below it (ops.c), or refused
 *         with NOT_ENOUGH_REPLICAS while the ISR is smaller than
 *         min-insync-replicas (capped to the replication factor).
 * A follower that never fetched counts as having nothing (0). */

static unsigned lp_hash(const char *topic, int32_t p)
{
    unsigned h = 2166136261u;
    for (const char *c = topic; *c; c++)
        h = (h ^ (unsigned char)*c) * 16777619u;
    h = (h ^ (unsigned)p) * 16777619u;
    return h % LP_BUCKETS;
}

static lpart *lp_get(sl_replicas *rs, const char *topic, int32_t p,
                     int create)
{
    unsigned h = lp_hash(topic, p);
    lpart *lp;
    for (lp = rs->lparts[h]; lp; lp = lp->next)
        if (lp->partition == p && !strcmp(lp->topic, topic))
            return lp;
    if (!create)
        return NULL;
    lp = calloc(1, sizeof(*lp));
    if (!lp || !(lp->topic = strdup(topic))) {
        free(lp);
        return NULL;
    }
    lp->partition = p;
    lp->rs = rs;
    lp->verified_epoch = -1;
    lp->refused_epoch = -1;
    lp->next = rs->lparts[h];
    rs->lparts[h] = lp;
    /* first sight in this process: no high-water mark known yet */
    sl_ops_set_follower_marks(rs->b, topic, p, INT64_MAX, 0, SL_OK);
    return lp;
}

int32_t sl_replicas_min_insync(const sl_broker *b, const sl_mi_topic *t)
{
    const char *v = sl_meta_topic_config(t, "min-insync-replicas");
    int64_t n = b->cfg.min_insync_replicas;
    if (v)
        n = strtoll(v, NULL, 10);
    if (n > t->rf)
        n = t->rf;
    return n < 1 ? 1 : (int32_t)n;
}

/* Recompute one partition's marks (see above). */
static void leader_eval(sl_replicas *rs, const sl_mi_topic *t, int32_t p,
                        lpart *lp)
{
    const sl_mi_part *mp = &t->parts[p];
    sl_part *part;
    int64_t end, fol_end = INT64_MAX, fol_dur = INT64_MAX, cap, old;
    int nfol = 0;

    if (sl_ops_part(rs->b, t->name, p, SL_OPS_NO_CREATE, &part) != SL_OK)
        return;
    if (mp->leader != rs->self) {
        if (lp->leading) { /* lost it: waiting acks will not come here */
            lp->leading = 0;
            sl_ops_set_follower_marks(rs->b, t->name, p, INT64_MAX,
                                      sl_part_read_cap(part),
                                      SL_ERR_NOT_LEADER);
        }
        return;
    }
    if (!lp->leading) { /* every follower gets a full lag period */
        lp->lead_ms = sl_now_ms();
        for (int32_t k = 0; k < lp->n; k++)
            lp->caught_ms[k] = lp->lead_ms;
    }
    lp->leading = 1;
    end = sl_part_end_offset(part);
    for (int32_t i = 0; i < mp->nisr; i++) {
        int32_t m = mp->isr[i], k;
        int64_t fe = 0, fd = 0;
        if (m == rs->self)
            continue;
        for (k = 0; k < lp->n; k++)
            if (lp->id[k] == m) {
                fe = lp->end[k];
                fd = lp->durable[k];
                break;
            }
        nfol++;
        if (fe < fol_end)
            fol_end = fe;
        if (fd < fol_dur)
            fol_dur = fd;
    }
    old = sl_part_read_cap(part);
    if (old > end)
        old = end;
    if (!nfol) {
        cap = INT64_MAX;
    } else {
        cap = fol_end < end ? fol_end : end;
        if (cap < old)
            cap = old; /* the HW never goes back on a leader */
    }
    if (mp->nisr < sl_replicas_min_insync(rs->b, t))
        sl_ops_set_follower_marks(rs->b, t->name, p, -1, cap,
                                  SL_ERR_NOT_ENOUGH_REPLICAS);
    else
        sl_ops_set_follower_marks(rs->b, t->name, p, fol_dur, cap, SL_OK);
}

/* A follower's fetch of partition p names leader epoch e (version 3):
 * 0 when it agrees with this node's image, else the partition's error. */
static sl_err epoch_check(const sl_replicas *rs, const sl_mi_part *mp,
                          int32_t e)
{
    if (e < 0)
        return SL_OK;
    if (e < mp->leader_epoch)
        return SL_ERR_FENCED_LEADER_EPOCH; /* the follower's image lags */
    if (e > mp->leader_epoch)
        return SL_ERR_UNKNOWN_LEADER_EPOCH; /* ours does */
    return mp->leader == rs->self ? SL_OK : SL_ERR_NOT_LEADER;
}

void sl_replicas_on_fetch(sl_replicas *rs, sl_fetch_req *q)
{
    for (uint32_t i = 0; i < q->ntopics; i++) {
        char topic[256];
        const sl_mi_topic *t;
        const sl_fetch_topic *ft = &q->topics[i];
        snprintf(topic, sizeof(topic), "%.*s", (int)ft->topic.len,
                 ft->topic.p ? ft->topic.p : "");
        t = sl_meta_topic_find(rs->image, topic);
        if (!t)
            continue;
        for (uint32_t j = 0; j < ft->nparts; j++) {
            sl_fetch_part *fp = &ft->parts[j];
            int32_t p = (int32_t)fp->partition, k;
            lpart *lp;
            if (p < 0 || p >= t->nparts)
                continue;
            if (q->epochs) {
                /* a refused fetch says nothing about the follower's log
                 * that this epoch can trust: not counted */
                fp->refused = (int32_t)epoch_check(rs, &t->parts[p],
                                                   fp->leader_epoch);
                if (fp->refused)
                    continue;
            }
            lp = lp_get(rs, topic, p, 1);
            if (!lp)
                continue;
            for (k = 0; k < lp->n; k++)
                if (lp->id[k] == q->replica_id)
                    break;
            if (k == lp->n) {
                if (lp->n == SL_META_MAX_RF)
                    continue;
                lp->id[lp->n++] = q->replica_id;
                lp->prev_end[k] = INT64_MAX;
                lp->caught_ms[k] = sl_now_ms();
            }
            {
                sl_part *part;
                int64_t now_end = 0;
                if (sl_ops_part(rs->b, topic, p, SL_OPS_NO_CREATE, &part) ==
                    SL_OK)
                    now_end = sl_part_end_offset(part);
                /* caught up: it has all the leader had when it last
                 * asked (or all there is now) */
                lp->fetch_ms[k] = sl_now_ms();
                if (fp->fetch_offset >= now_end ||
                    fp->fetch_offset >= lp->prev_end[k])
                    lp->caught_ms[k] = lp->fetch_ms[k];
                lp->prev_end[k] = now_end;
            }
            lp->end[k] = fp->fetch_offset;
            lp->durable[k] = fp->durable_offset < fp->fetch_offset
                                 ? fp->durable_offset
                                 : fp->fetch_offset;
            leader_eval(rs, t, p, lp);
        }
    }
}

/* ---- ISR upkeep (the partition leader; docs/cluster.md 3.3) ------------
 * A follower in the ISR that has not been caught up for
 * replica-lag-time-max-ms leaves it; a replica outside it that is caught up
 * (and fetching) joins it. Both through the metadata quorum as a
 * PARTITION_CHANGE compare-and-set on the partition epoch, one in flight
 * per partition; the new ISR takes effect when the image applies it. */

static void isr_change_done(void *arg, sl_err rc, const char *msg)
{
    lpart *lp = arg;
    lp->change_pending = 0;
    if (rc != SL_OK)
        sl_log(SL_DEBUG, "replica", "%s/%d: ISR change not applied: %s",
               lp->topic, (int)lp->partition,
               msg && msg[0] ? msg : sl_strerror(rc));
}

static void isr_check(sl_replicas *rs, lpart *lp, int64_t now, int64_t lag)
{
    const sl_mi_topic *t = sl_meta_topic_find(rs->image, lp->topic);
    const sl_mi_part *mp;
    int32_t isr[SL_META_MAX_RF], n = 0;
    int changed = 0;
    sl_wb wb;

    if (!t || lp->partition >= t->nparts || lp->change_pending)
        return;
    mp = &t->parts[lp->partition];
    if (mp->leader != rs->self)
        return;
    for (int32_t r = 0; r < mp->nrep; r++) {
        int32_t m = mp->rep[r], k, in = 0, ok;
        for (int32_t i = 0; i < mp->nisr; i++)
            in |= mp->isr[i] == m;
        if (m == rs->self) {
            isr[n++] = m;
            continue;
        }
        for (k = 0; k < lp->n; k++)
            if (lp->id[k] == m)
                break;
        /* one that never fetched since this node leads: from then */
        ok = k < lp->n ? now - lp->caught_ms[k] <= lag
                       : now - lp->lead_ms <= lag;
        if (in && !ok) {
            sl_log(SL_WARN, "replica",
                   "%s/%d: follower %d not caught up for %lld ms: leaves "
                   "the in-sync set",
                   lp->topic, (int)lp->partition, (int)m, (long long)lag);
            changed = 1;
            continue;
        }
        /* joins: caught up at its latest fetch, which is recent, and
         * not fenced (a dead node's old progress does not count) */
        if (!in && k < lp->n && lp->caught_ms[k] == lp->fetch_ms[k] &&
            now - lp->fetch_ms[k] <= 1000 &&
            sl_meta_node_find(rs->image, m) &&
            !sl_meta_node_find(rs->image, m)->fenced) {
            sl_log(SL_INFO, "replica",
                   "%s/%d: follower %d caught up: joins the in-sync set",
                   lp->topic, (int)lp->partition, (int)m);
            changed = 1;
            in = 1;
        }
        if (in)
            isr[n++] = m;
    }
    if (!changed)
        return;
    sl_wb_init(&wb, 128);
    sl_meta_enc_partition_change(&wb, lp->topic, lp->partition,
                                 mp->part_epoch, rs->self, isr, n);
    if (!wb.err && sl_bcluster_propose(rs->b, wb.p, wb.len, isr_change_done,
                                       lp) == SL_OK)
        lp->change_pending = 1;
    sl_wb_fini(&wb);
}

static void isr_tick(evutil_socket_t fd, short what, void *arg)
{
    sl_replicas *rs = arg;
    int64_t now = sl_now_ms(), lag = rs->b->cfg.replica_lag_time_max_ms;
    (void)fd;
    (void)what;
    for (size_t h = 0; h < LP_BUCKETS; h++)
        for (lpart *lp = rs->lparts[h]; lp; lp = lp->next)
            if (lp->leading)
                isr_check(rs, lp, now, lag);
}

/* The image changed: every replicated partition here is evaluated. */
static void leaders_update(sl_replicas *rs)
{
    const sl_meta *m = rs->image;
    for (size_t i = 0; i < m->ntopics; i++) {
        const sl_mi_topic *t = m->topics[i];
        if (t->rf < 2)
            continue;
        for (int32_t p = 0; p < t->nparts; p++) {
            const sl_mi_part *mp = &t->parts[p];
            int here = 0;
            lpart *lp;
            for (int32_t r = 0; r < mp->nrep; r++)
                here |= mp->rep[r] == rs->self;
            if (!here)
                continue;
            lp = lp_get(rs, t->name, p, 1);
            if (lp)
                leader_eval(rs, t, p, lp);
        }
    }
}
