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
 * follower uses whatever the backlog. Its cost is disk: a copy of the
 * partition, bounded by the topic's retention (consumption-based
 * retention of a queue deletes the segments every group here passed).
 *
 * Which topics: those of the queue groups loaded here, i.e. coordinated
 * here (in a cluster a node loads only the groups it coordinates). The
 * set is looked at after every image change and every OBS_TICK_MS (a
 * group is created by its first consumer, without an image change); when
 * it changed, the fetchers follow (sl_replicas_update). A partition that
 * stops being observed is emptied by the fetcher's clean-up of
 * partitions placed elsewhere (replica.c, drop_moved_off) and copied
 * again from the leader's log start if it is observed again.
 *
 * A new group that starts at the log end (start=latest: a durable topic
 * subscription) must not start at the end of a copy that is behind, or
 * just started (every old record would come), nor at the leader's end of
 * the first FETCH answer after the group was created (what was sent in
 * between would be missed: the fetcher may have a 250 ms long poll in
 * flight to that leader). sl_observer_latest gives the groups: the
 * leader's end from an answer that came before the group was created
 * when there is one (a few old records may come, none is missed); else,
 * once the copy reached the end of an answer that came after, the first
 * offset whose record is timestamped at most OBS_LATEST_SLACK_MS before
 * the group's creation (capped at that end). A producer whose clock lags
 * this node's by more than that slack can have a record sent after the
 * subscription left out; one whose clock is ahead can have an older one
 * delivered.
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
#include "protocol/log.h"

#define OBS_TICK_MS 100
/* a start=latest group on a partition not observed yet: records
 * timestamped up to this long before the group was created are delivered
 * too (producers' clocks may lag this node's) */
#define OBS_LATEST_SLACK_MS 1000

/* The leader's log end as the last FETCH answer for an observed
 * partition said (for start=latest groups). */
typedef struct lend {
    struct lend *next;
    char *topic;
    int32_t partition;
    int64_t end;
    int64_t ms; /* when that answer came (sl_now_ms, the groups' clock) */
} lend;

struct sl_observer {
    sl_broker *b;
    const sl_meta *image;
    int32_t self;
    sl_groups *(*groups)(sl_broker *b);
    void (*changed)(sl_broker *b);
    struct event *tick;
    char **topics; /* sorted, unique */
    size_t n;
    lend *ends;
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

void sl_observer_refresh(sl_observer *o)
{
    sl_groups *g = o->groups(o->b);
    tlist l = {NULL, 0, 0, 0};
    size_t k = 0;
    int changed;

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
        return;
    }
    for (size_t i = 0; i < l.n; i++) /* ours from now on */
        if (!(l.v[i] = strdup(l.v[i]))) {
            list_free(l.v, i);
            return; /* the next tick tries again */
        }
    for (size_t i = 0; i < l.n; i++)
        if (!has(o->topics, o->n, l.v[i]))
            sl_log(SL_INFO, "observer",
                   "topic %s: read by a queue group coordinated here; "
                   "partitions without a replica here are copied from "
                   "their leaders",
                   l.v[i]);
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

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sl_observer_refresh(arg);
}

sl_err sl_observer_new(sl_broker *b, const sl_meta *image, int32_t self,
                       sl_groups *(*groups)(sl_broker *b),
                       void (*changed)(sl_broker *b), sl_observer **out)
{
    sl_observer *o = calloc(1, sizeof(*o));
    struct timeval tv = {0, OBS_TICK_MS * 1000};
    if (!o)
        return SL_ERR_NOMEM;
    o->b = b;
    o->image = image;
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
    free(o);
}

int sl_observer_wants(const sl_observer *o, const char *topic)
{
    return o && o->n && has(o->topics, o->n, topic);
}

void sl_observer_leader_end(sl_observer *o, const char *topic,
                            int32_t partition, int64_t end)
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
    e->end = end;
    e->ms = sl_now_ms();
}

int64_t sl_observer_latest(sl_observer *o, const char *topic, int32_t partition,
                           int64_t since_ms)
{
    const sl_mi_topic *t = o ? sl_meta_topic_find(o->image, topic) : NULL;
    sl_part *part;
    if (!o) /* not started yet, or stopped */
        return -1;
    if (sl_ops_part(o->b, topic, partition, SL_OPS_NO_CREATE, &part) != SL_OK)
        return 0;
    if (!t || partition >= t->nparts)
        return sl_part_end_offset(part);
    for (int32_t r = 0; r < t->parts[partition].nrep; r++)
        if (t->parts[partition].rep[r] == o->self)
            return sl_part_end_offset(part); /* a replica here */
    for (const lend *e = o->ends; e; e = e->next) {
        int64_t at;
        if (e->partition != partition || strcmp(e->topic, topic))
            continue;
        if (e->ms <= since_ms)
            return e->end; /* the leader's end before the group existed */
        if (sl_part_end_offset(part) < e->end)
            return -1; /* the copy has not reached that end yet */
        if (sl_part_offset_for_time(part, since_ms - OBS_LATEST_SLACK_MS,
                                    &at) != SL_OK)
            return -1;
        return at < e->end ? at : e->end;
    }
    /* not observed yet (the group asking is being created): start now,
     * not at the next tick, so that the first answer comes soon */
    event_active(o->tick, EV_TIMEOUT, 0);
    return -1;
}
