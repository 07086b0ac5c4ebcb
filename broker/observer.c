/*
 * observer.c - a queue-group coordinator that holds no replica of a
 * partition of its group's topic copies that partition from its leader,
 * as a non-voting observer, and delivers it from the copy
 * (docs/cluster.md 5.1, "A coordinator without a replica").
 *
 * The coordinator of a queue group is the leader of the group's state
 * partition (group_state.c); with a replication factor below the number
 * of nodes it need not hold every partition of the group's topic. The
 * groups library reads records from a local log (sl_part): a first read
 * of each record at the window's cursor, and a re-read of any record of
 * the window whenever it is handed out again (released, nacked with a
 * delay, its lock expired, a priority or key-order scan). Two ways to feed
 * it a partition held elsewhere were weighed:
 *
 *   (a) an in-memory read-ahead per partition, refilled from the leader
 *       with FETCH up to its high-water mark. Bounded memory needs the
 *       re-reads to go to the leader too, asynchronously, in the middle of
 *       a delivery pass that is synchronous today (and in peeks, selector
 *       scans, dead-lettering); or every record of the window kept in
 *       memory: max-inflight + max-delayed records of up to the maximum
 *       message size each, per partition and group.
 *   (b) this node becomes an observer of the partition: the replica
 *       fetcher (replica.c) copies it like a follower's (leader epochs,
 *       divergent tails cut after a leader change, the leader's
 *       high-water mark as the local read cap, TLS and the cluster
 *       secret, the same bounded fetches), but the leader counts it
 *       nowhere: not in the high-water mark, not in the ISR, never a
 *       candidate for leadership (it is not in the replica list). The
 *       groups library then reads a local log as on any replica.
 *
 * (b) is built: it adds no code path to delivery (every rule of the
 * groups library holds unchanged: only records below the leader's
 * high-water mark are visible, sl_visible_offset) and memory stays what a
 * follower uses whatever the backlog. Its cost is disk, bounded by what
 * the groups still need (below).
 *
 * Which topics: those of the queue groups loaded here, i.e. coordinated
 * here (in a cluster a node loads only the groups it coordinates). The
 * set is looked at after every image change and every OBS_TICK_MS (a
 * group is created by its first consumer, without an image change); when
 * it changed, or the image did, the fetchers follow (sl_replicas_update).
 *
 * What the copy holds: what the groups coordinated here still need, the
 * lowest start of those groups on that partition (the partition's
 * low-water mark, groups/queue.c), not the leader's whole log. A
 * coordinator that takes over a group with a large acked prefix (a
 * failover, a moved state partition) would otherwise copy all of it
 * before it could deliver. So:
 *   - before each fetch, a copy that ends below that offset (it starts
 *     empty, or it was kept from before and the groups have since moved
 *     on elsewhere) starts again, empty, there (replica.c,
 *     observer_copy_start; sl_part_reset_at); one that starts above it
 *     (a group loaded here that is further behind than the groups the
 *     copy was made for) too, and at once, at every refresh
 *     (check_starts): a group reading below a copy's start would take
 *     those records for deleted by retention and skip them. When the
 *     offset falls inside a batch of the leader's, the copy starts at
 *     that batch (a batch is stored whole, replica_apply.c);
 *   - every OBS_TRIM_TICKS the segments below it are deleted and the
 *     active one is rolled at OBS_ROLL_BYTES (trim): the copy is at most
 *     what the groups have not settled plus a segment;
 *   - a group that reads from further back (a new group that starts at
 *     the earliest record; a seek) asks first (env.need_from,
 *     sl_observer_need_from): the copy starts again there, or at the
 *     leader's log start if that is later, and is copied again from
 *     there. Rare, and the cost of keeping only what is needed.
 *
 * Kept across a restart: a partition that is not placed on this node
 * and that no group here reads is deleted (replica.c, drop_moved_off),
 * but only once sl_observer_settled: the groups this node coordinates
 * were loaded for the current image (a refresh ran after it: the loop
 * runs sl_gstate_on_image first) and this node is not fenced. A
 * restarted coordinator replays an image from before its death, is
 * fenced, then registers and is unfenced; only then does it know whether
 * it still coordinates the groups that read its copies. If it does (the
 * state partition has no other replica, or it was back before the
 * failover), the copy is kept: its tail is checked against the leader
 * like a follower's (from the checkpointed high-water mark,
 * replica_hwm.c) and copying goes on from its end. If not, it is deleted
 * then, and whenever the groups stop being coordinated here (the state
 * partition moved, the group deleted); a deleted topic's copy goes with
 * the topic.
 *
 * A new group that starts at the log end (start=latest: a durable topic
 * subscription) must not start at the end of a copy that is behind, or
 * just started (every old record would come), nor at the leader's end of
 * the first FETCH answer after the group was created (what was sent in
 * between would be missed: the fetcher may have a 250 ms long poll in
 * flight to that leader). sl_observer_latest gives the groups: the
 * leader's end from an answer that came before the group was created
 * when there is one (a few old records may come, none is missed); else
 * the leader's answer to LIST_OFFSETS for OBS_LATEST_SLACK_MS before the
 * group's creation (the first offset whose record is timestamped at or
 * after that, else its log end), asked on a connection of its own
 * (group_route.c's sl_groute_call, wired by group_state.c) and again
 * every OBS_LOOKUP_RETRY_MS
 * while it fails. A producer whose clock lags this node's by more than
 * that slack can have a record sent after the subscription left out; one
 * whose clock is ahead can have an older one delivered. Until the group
 * knows its start it does not count in the partition's low-water mark,
 * and a copy that is empty and needed by no group is not fetched at all
 * (replica.c, observer_copy_start): so a latest group copies only what
 * comes after its start, not the leader's whole log (session 14: before,
 * the copy began at the leader's log start and the start was found in
 * it once it had reached the leader's end, copying the whole backlog).
 * A leader that moved before the question reached it answers from its
 * own copy (a follower's, perhaps a little behind): a few old records may
 * come then, none is missed.
 *
 * @thread loop (everything here)
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "broker/broker.h"
#include "broker/observer.h"
#include "broker/ops.h"
#include "cluster/meta.h"
#include "groups/groups.h"
#include "protocol/api.h"
#include "protocol/log.h"

#define OBS_TICK_MS 100
/* copies are trimmed every this many ticks (1 s) */
#define OBS_TRIM_TICKS 10
/* a copy's segments are rolled at this size (or the topic's
 * segment-bytes, if smaller), so that trimming can delete them */
#define OBS_ROLL_BYTES (64ull * 1024 * 1024)
/* a start=latest group on a partition not observed yet: records
 * timestamped up to this long before the group was created are delivered
 * too (producers' clocks may lag this node's) */
#define OBS_LATEST_SLACK_MS 1000
/* a LIST_OFFSETS for a start=latest group that failed is asked again
 * this much later; one not answered in OBS_LOOKUP_TIMEOUT_MS failed */
#define OBS_LOOKUP_RETRY_MS 500
#define OBS_LOOKUP_TIMEOUT_MS 5000
/* a lookup is kept this long after its group's creation (the group asks
 * again at every delivery pass until it has its start) */
#define OBS_LOOKUP_KEEP_MS 60000

/* The leader's log end as the last FETCH answer for an observed
 * partition said (for start=latest groups). */
typedef struct lend {
    struct lend *next;
    char *topic;
    int32_t partition;
    int64_t start; /* the leader's log start in that answer */
    int64_t end;
    int64_t ms; /* when that answer came (sl_now_ms, the groups' clock) */
} lend;

/* A start=latest group's start asked of a partition's leader
 * (LIST_OFFSETS for since_ms - OBS_LATEST_SLACK_MS). */
typedef struct lookup {
    struct lookup *next;
    sl_observer *o; /* NULL once o is freed: the answer frees it */
    char *topic;
    int32_t partition;
    int64_t since_ms;
    int inflight;
    int64_t offset; /* the answer; -1 while none */
    int64_t ms;     /* when it was asked or answered */
} lookup;

struct sl_observer {
    sl_broker *b;
    const sl_meta *image;
    sl_observer_copies copies;
    int32_t self;
    uint64_t seen_applied; /* the image a refresh last looked at */
    int ticks;
    sl_groups *(*groups)(sl_broker *b);
    void (*changed)(sl_broker *b);
    struct event *tick;
    char **topics; /* sorted, unique */
    size_t n;
    lend *ends;
    lookup *looks;
    sl_observer_call call; /* NULL until wired (sl_observer_set_call) */
};

/* The topic names of the groups, borrowed from them for one refresh. */
typedef struct tlist {
    char **v;
    size_t n, cap;
    int oom;
} tlist;

static void collect(void *arg, const char *group, const char *topic,
                    const char *dlq_topic)
{
    tlist *l = arg;
    (void)group;
    (void)dlq_topic;
    if (l->oom)
        return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, cap * sizeof(*v));
        if (!v) {
            l->oom = 1;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (char *)topic;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int has(char **v, size_t n, const char *topic)
{
    return n > 0 && bsearch(&topic, v, n, sizeof(*v), cmp_str) != NULL;
}

/* Is topic/p placed on this node (a replica, or the target of a
 * reassignment)? Not: a copy here is an observer's (or a replica moved
 * off, deleted by replica.c). */
static int placed_here(const sl_observer *o, const sl_mi_topic *t, int32_t p)
{
    const sl_mi_part *mp = &t->parts[p];
    for (int32_t r = 0; r < mp->nrep; r++)
        if (mp->rep[r] == o->self)
            return 1;
    for (int32_t r = 0; r < mp->ntarget; r++)
        if (mp->target[r] == o->self)
            return 1;
    return 0;
}

/* A topic read by a queue group coordinated here from now on. */
static void observe_log(sl_observer *o, const char *topic)
{
    const sl_mi_topic *t = sl_meta_topic_find(o->image, topic);
    sl_log(SL_INFO, "observer",
           "topic %s: read by a queue group coordinated here; partitions "
           "without a replica here are copied from their leaders",
           topic);
    for (int32_t p = 0; t && p < t->nparts; p++) {
        sl_part *part;
        if (placed_here(o, t, p) ||
            sl_ops_part(o->b, topic, p, SL_OPS_NO_CREATE, &part) != SL_OK ||
            sl_part_end_offset(part) == 0)
            continue;
        sl_log(SL_INFO, "observer",
               "%s/%d: the copy here holds [%lld, %lld): kept (copied on "
               "from its end once checked against the leader, unless the "
               "groups here need other records)",
               topic, (int)p, (long long)sl_part_start_offset(part),
               (long long)sl_part_end_offset(part));
    }
}

static void refresh_topics(sl_observer *o)
{
    sl_groups *g = o->groups(o->b);
    tlist l = {NULL, 0, 0, 0};
    size_t k = 0;
    int changed;
    /* a new image: the replica fetchers look at the copies again once the
     * groups coordinated here follow it (sl_observer_settled) */
    int moved = o->image->applied != o->seen_applied;

    o->seen_applied = o->image->applied;

    if (g)
        sl_groups_qgroup_foreach(g, collect, &l);
    if (l.oom) {
        free(l.v);
        return; /* the next tick tries again */
    }
    if (l.n)
        qsort(l.v, l.n, sizeof(*l.v), cmp_str);
    for (size_t i = 0; i < l.n; i++) /* unique */
        if (!k || strcmp(l.v[k - 1], l.v[i]))
            l.v[k++] = l.v[i];
    l.n = k;
    changed = l.n != o->n;
    for (size_t i = 0; !changed && i < l.n; i++)
        changed = strcmp(l.v[i], o->topics[i]) != 0;
    if (!changed) {
        free(l.v);
        if (moved)
            o->changed(o->b);
        return;
    }
    for (size_t i = 0; i < l.n; i++) /* ours from now on */
        if (!(l.v[i] = strdup(l.v[i]))) {
            list_free(l.v, i);
            return; /* the next tick tries again */
        }
    for (size_t i = 0; i < l.n; i++)
        if (!has(o->topics, o->n, l.v[i]))
            observe_log(o, l.v[i]);
    for (size_t i = 0; i < o->n; i++)
        if (!has(l.v, l.n, o->topics[i]))
            sl_log(SL_INFO, "observer",
                   "topic %s: no queue group coordinated here reads it "
                   "any more",
                   o->topics[i]);
    for (lend **pe = &o->ends; *pe;) { /* ends of topics left behind */
        lend *e = *pe;
        if (has(l.v, l.n, e->topic)) {
            pe = &e->next;
            continue;
        }
        *pe = e->next;
        free(e->topic);
        free(e);
    }
    list_free(o->topics, o->n);
    o->topics = l.v;
    o->n = l.n;
    o->changed(o->b);
}

/* A group loaded here (a new coordinator, a restart) may start below a
 * copy's start (the copy was made or trimmed for other groups): the copy
 * starts again there now, before the group reads it. Read first, a
 * record below the copy's start would count as deleted by retention:
 * skipped, not delivered. */
static void check_starts(sl_observer *o)
{
    for (size_t i = 0; i < o->n; i++) {
        const sl_mi_topic *t = sl_meta_topic_find(o->image, o->topics[i]);
        for (int32_t p = 0; t && p < t->nparts; p++) {
            sl_part *part;
            int64_t need;
            if (placed_here(o, t, p) ||
                sl_ops_part(o->b, t->name, p, SL_OPS_NO_CREATE, &part) != SL_OK)
                continue;
            need = sl_part_low_water(part);
            if (need >= 0 && need < sl_part_start_offset(part))
                o->copies.restart(o->copies.arg, t->name, p, need,
                                  "a queue group coordinated here "
                                  "needs records below the copy's "
                                  "start");
        }
    }
}

void sl_observer_refresh(sl_observer *o)
{
    refresh_topics(o);
    if (o->copies.restart)
        check_starts(o);
}

/* Trim the copies: every segment below what the groups coordinated here
 * still need goes (the partition's low-water mark, groups/queue.c). */
static void trim(sl_observer *o)
{
    int64_t now = sl_now_ms();
    for (size_t i = 0; i < o->n; i++) {
        const sl_mi_topic *t = sl_meta_topic_find(o->image, o->topics[i]);
        for (int32_t p = 0; t && p < t->nparts; p++) {
            sl_part *part;
            int64_t need;
            int deleted = 0;
            uint64_t bytes = 0;
            sl_err rc;
            if (placed_here(o, t, p) ||
                sl_ops_part(o->b, t->name, p, SL_OPS_NO_CREATE, &part) !=
                    SL_OK ||
                !sl_part_loaded(part) ||
                (o->copies.checking &&
                 o->copies.checking(o->copies.arg, t->name, p)))
                continue;
            need = sl_part_low_water(part);
            if (need <= sl_part_start_offset(part))
                continue;
            rc = sl_part_trim_below(part, need, OBS_ROLL_BYTES, now, &deleted,
                                    &bytes);
            if (rc != SL_OK)
                sl_log(SL_WARN, "observer", "%s/%d: trimming the copy: %s",
                       t->name, (int)p, sl_strerror(rc));
            else if (deleted)
                sl_log(SL_INFO, "observer",
                       "%s/%d: copy trimmed to start at %lld (the groups "
                       "coordinated here need %lld on): %d segment(s), %llu "
                       "bytes deleted",
                       t->name, (int)p, (long long)sl_part_start_offset(part),
                       (long long)need, deleted, (unsigned long long)bytes);
        }
    }
}

static void lookup_ask(sl_observer *o, struct lookup *l, int32_t leader);

/* Lookups that failed are asked again (their groups may have no delivery
 * pass to ask for them: nothing comes to a copy nobody fetches). */
static void lookups_retry(sl_observer *o)
{
    int64_t now = sl_now_ms();
    for (lookup *l = o->looks; l; l = l->next) {
        const sl_mi_topic *t;
        if (l->inflight || l->offset >= 0 ||
            now - l->ms < OBS_LOOKUP_RETRY_MS ||
            !(t = sl_meta_topic_find(o->image, l->topic)) ||
            l->partition >= t->nparts || t->parts[l->partition].leader < 0)
            continue;
        lookup_ask(o, l, t->parts[l->partition].leader);
    }
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_observer *o = arg;
    (void)fd;
    (void)what;
    sl_observer_refresh(o);
    lookups_retry(o);
    if (++o->ticks >= OBS_TRIM_TICKS) {
        int64_t now = sl_now_ms();
        o->ticks = 0;
        trim(o);
        /* lookups of groups created long ago: a group still waiting
         * asks again from its delivery pass */
        for (lookup **pl = &o->looks; *pl;) {
            lookup *l = *pl;
            if (l->inflight || now - l->since_ms < OBS_LOOKUP_KEEP_MS) {
                pl = &l->next;
                continue;
            }
            *pl = l->next;
            free(l->topic);
            free(l);
        }
    }
}

sl_err sl_observer_new(sl_broker *b, const sl_meta *image,
                       const sl_observer_copies *copies, int32_t self,
                       sl_groups *(*groups)(sl_broker *b),
                       void (*changed)(sl_broker *b), sl_observer **out)
{
    sl_observer *o = calloc(1, sizeof(*o));
    struct timeval tv = {0, OBS_TICK_MS * 1000};
    if (!o)
        return SL_ERR_NOMEM;
    o->b = b;
    o->image = image;
    o->copies = *copies;
    o->self = self;
    o->groups = groups;
    o->changed = changed;
    o->tick = event_new(b->base, -1, EV_PERSIST, tick_cb, o);
    if (!o->tick) {
        free(o);
        return SL_ERR_NOMEM;
    }
    event_add(o->tick, &tv);
    *out = o;
    return SL_OK;
}

void sl_observer_free(sl_observer *o)
{
    if (!o)
        return;
    if (o->tick)
        event_free(o->tick);
    list_free(o->topics, o->n);
    while (o->ends) {
        lend *e = o->ends;
        o->ends = e->next;
        free(e->topic);
        free(e);
    }
    while (o->looks) {
        lookup *l = o->looks;
        o->looks = l->next;
        if (l->inflight) { /* its answer frees it */
            l->o = NULL;
            continue;
        }
        free(l->topic);
        free(l);
    }
    free(o);
}

void sl_observer_set_call(sl_observer *o, sl_observer_call call)
{
    if (o)
        o->call = call;
}

int sl_observer_wants(const sl_observer *o, const char *topic)
{
    return o && o->n && has(o->topics, o->n, topic);
}

int sl_observer_settled(const sl_observer *o)
{
    const sl_mi_node *n;
    if (!o)
        return 1;
    n = sl_meta_node_find(o->image, o->self);
    return o->seen_applied == o->image->applied && n && !n->fenced;
}

void sl_observer_need_from(sl_observer *o, const char *topic, int32_t partition,
                           int64_t offset)
{
    const sl_mi_topic *t = o ? sl_meta_topic_find(o->image, topic) : NULL;
    int64_t at = offset < 0 ? 0 : offset;
    sl_part *part;
    if (!t || partition < 0 || partition >= t->nparts || !o->copies.restart ||
        placed_here(o, t, partition) ||
        sl_ops_part(o->b, topic, partition, SL_OPS_NO_CREATE, &part) != SL_OK)
        return;
    for (const lend *e = o->ends; e; e = e->next)
        if (e->partition == partition && !strcmp(e->topic, topic)) {
            if (e->start > at)
                at = e->start; /* the leader keeps nothing older */
            break;
        }
    if (at >= sl_part_start_offset(part))
        return;
    o->copies.restart(o->copies.arg, topic, partition, at,
                      "a queue group here reads from there");
}

void sl_observer_leader_end(sl_observer *o, const char *topic,
                            int32_t partition, int64_t start, int64_t end)
{
    lend *e;
    if (!o || end < 0)
        return;
    for (e = o->ends; e; e = e->next)
        if (e->partition == partition && !strcmp(e->topic, topic))
            break;
    if (!e) {
        e = calloc(1, sizeof(*e));
        if (!e || !(e->topic = strdup(topic))) {
            free(e);
            return;
        }
        e->partition = partition;
        e->next = o->ends;
        o->ends = e;
    }
    e->start = start;
    e->end = end;
    e->ms = sl_now_ms();
}

/* The leader's LIST_OFFSETS answer for l (group_route.c). */
static void lookup_done(void *arg, sl_err rc, const uint8_t *frame, size_t len)
{
    lookup *l = arg;
    sl_list_offsets_resp resp;
    sl_arena a;
    int64_t off = -1;

    l->inflight = 0;
    l->ms = sl_now_ms();
    if (!l->o) { /* the observer is gone */
        free(l->topic);
        free(l);
        return;
    }
    sl_arena_init(&a);
    if (rc == SL_OK) {
        rc = sl_list_offsets_resp_decode(frame + SL_RESP_HDR_SIZE,
                                         len - SL_RESP_HDR_SIZE, &a, &resp);
        if (rc == SL_OK && resp.error != SL_OK)
            rc = (sl_err)resp.error;
        if (rc == SL_OK && (resp.ntopics != 1 || resp.topics[0].nparts != 1))
            rc = SL_ERR_PROTOCOL;
        if (rc == SL_OK && resp.topics[0].parts[0].error != SL_OK)
            rc = (sl_err)resp.topics[0].parts[0].error;
        if (rc == SL_OK)
            off = resp.topics[0].parts[0].offset;
    }
    sl_arena_fini(&a);
    if (rc != SL_OK || off < 0) {
        sl_log(SL_WARN, "observer",
               "%s/%d: the leader's offset for a start=latest group not "
               "known: %s (asked again)",
               l->topic, (int)l->partition,
               sl_strerror(rc != SL_OK ? rc : SL_ERR_PROTOCOL));
        return;
    }
    l->offset = off;
    sl_log(SL_INFO, "observer",
           "%s/%d: a start=latest group created here starts at %lld (the "
           "leader's first offset timestamped from %lld on)",
           l->topic, (int)l->partition, (long long)off,
           (long long)(l->since_ms - OBS_LATEST_SLACK_MS));
    { /* its consumers are waiting: deliver now */
        sl_groups *g = l->o->groups(l->o->b);
        if (g)
            sl_groups_on_append(g, l->topic, l->partition);
    }
}

/* Ask the leader of topic/partition (LIST_OFFSETS) for the first offset
 * timestamped from since_ms - OBS_LATEST_SLACK_MS on. */
static void lookup_ask(sl_observer *o, lookup *l, int32_t leader)
{
    sl_lo_part lp = {(uint32_t)l->partition, l->since_ms - OBS_LATEST_SLACK_MS};
    sl_lo_topic lt = {sl_str_c(l->topic), 1, &lp};
    sl_list_offsets_req q = {1, &lt};
    sl_wb wb;
    sl_err rc;

    l->ms = sl_now_ms();
    if (lp.timestamp < 0)
        lp.timestamp = 0;
    sl_wb_init(&wb, 128);
    rc = sl_list_offsets_req_encode(&wb, 1, &q);
    if (rc == SL_OK && wb.err)
        rc = SL_ERR_NOMEM;
    if (rc == SL_OK && !o->call)
        rc = SL_ERR_INVALID_ARG; /* not wired yet: asked again later */
    if (rc == SL_OK)
        rc = o->call(o->b, leader, wb.p, wb.len, 1, OBS_LOOKUP_TIMEOUT_MS,
                     lookup_done, l);
    sl_wb_fini(&wb);
    l->inflight = rc == SL_OK;
}

int64_t sl_observer_latest(sl_observer *o, const char *topic, int32_t partition,
                           int64_t since_ms)
{
    const sl_mi_topic *t = o ? sl_meta_topic_find(o->image, topic) : NULL;
    sl_part *part;
    lookup *l;
    if (!o) /* not started yet, or stopped */
        return -1;
    if (sl_ops_part(o->b, topic, partition, SL_OPS_NO_CREATE, &part) != SL_OK)
        return 0;
    if (!t || partition >= t->nparts)
        return sl_part_end_offset(part);
    for (int32_t r = 0; r < t->parts[partition].nrep; r++)
        if (t->parts[partition].rep[r] == o->self)
            return sl_part_end_offset(part); /* a replica here */
    for (const lend *e = o->ends; e; e = e->next)
        if (e->partition == partition && !strcmp(e->topic, topic) &&
            e->ms <= since_ms)
            return e->end; /* the leader's end before the group existed */
    for (l = o->looks; l; l = l->next)
        if (l->partition == partition && l->since_ms == since_ms &&
            !strcmp(l->topic, topic))
            break;
    if (!l) {
        if (!(l = calloc(1, sizeof(*l))) || !(l->topic = strdup(topic))) {
            free(l);
            return -1;
        }
        l->o = o;
        l->partition = partition;
        l->since_ms = since_ms;
        l->offset = -1;
        l->ms = INT64_MIN / 2;
        l->next = o->looks;
        o->looks = l;
    }
    if (l->offset >= 0)
        return l->offset;
    if (!l->inflight && sl_now_ms() - l->ms >= OBS_LOOKUP_RETRY_MS &&
        t->parts[partition].leader >= 0)
        lookup_ask(o, l, t->parts[partition].leader);
    return -1;
}
