/*
 * ops_groups.c - the groups module: sl_groups wired into the broker.
 *
 * Threads: everything on the loop, except flush_hook (the flusher's hook
 * thread, see storage/flusher.c). The hook commits the staged SQLite batch
 * and then activates flushed_ev, so sl_groups_on_flushed runs on the loop
 * after every hook run: waiters (acks,
 * offset commits) are answered, DLQ appends that became durable are
 * archived, newly durable records are delivered.
 *
 * State: one gmod per broker, on the broker object (b->gmod), handed to
 * every callback as its argument.
 *
 * Shutdown: the flusher outlives module fini and hooks cannot be removed,
 * so the hook looks the groups object up under a mutex; fini clears it
 * first, then commits synchronously and frees the groups. The gmod itself
 * (mutex included) is freed by sl_groups_module_release, which server.c
 * calls once the flusher has stopped.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "broker/broker.h"
#include "broker/config.h"
#include "broker/group_state.h"
#include "broker/observer.h"
#include "broker/ops_groups.h"
#include "protocol/log.h"

typedef struct sl_gmod {
    sl_broker *b;
    sl_groups *g;
    sl_gstate *gs;     /* cluster: state replicated (group_state.c) */
    int64_t dlq_token; /* dead-letter batches forwarded so far */
    struct event *flushed_ev;
    struct event *tick_ev;
    struct event *stage_ev; /* end of loop iteration: stage once */
    int64_t last_second;
    pthread_mutex_t mu; /* guards g for the flusher hook */
    struct sl_gmod_tick {
        void (*fn)(void *arg, int64_t now);
        void *arg;
    } * ticks;
    size_t nticks;
} gmod;

sl_groups *sl_ops_groups(sl_broker *b)
{
    return b->gmod ? b->gmod->g : NULL;
}

sl_gstate *sl_ops_gstate(sl_broker *b)
{
    return b->gmod && b->gmod->g ? b->gmod->gs : NULL;
}

static int group_served(sl_broker *b, const char *group, char *msg,
                        size_t msglen, int settle)
{
    int32_t c;
    if (!b->gmod || !b->gmod->gs ||
        (settle ? sl_gstate_settles(b->gmod->gs, group)
                : sl_gstate_coordinates(b->gmod->gs, group)))
        return 1;
    c = sl_gstate_coordinator(b, group);
    if (c > 0 && c == (int32_t)sl_broker_config(b)->node_id &&
        sl_gstate_lease_lapsed(b->gmod->gs))
        snprintf(msg, msglen,
                 "group '%s': node %d leads its %s partition but its "
                 "coordinator lease lapsed (it has not heard from the "
                 "metadata quorum lately; another node may coordinate the "
                 "group by now): retry",
                 group, (int)c, SL_GSTATE_TOPIC);
    else if (c > 0 && c != (int32_t)sl_broker_config(b)->node_id)
        snprintf(msg, msglen,
                 "group '%s' is coordinated by node %d (the leader of its "
                 "%s partition)",
                 group, (int)c, SL_GSTATE_TOPIC);
    else
        snprintf(msg, msglen,
                 "group '%s' has no coordinator right now (its %s partition "
                 "is being created, elected or rebuilt): retry",
                 group, SL_GSTATE_TOPIC);
    return 0;
}

int sl_ops_group_coordinated(sl_broker *b, const char *group, char *msg,
                             size_t msglen)
{
    return group_served(b, group, msg, msglen, 0);
}

int sl_ops_group_settles(sl_broker *b, const char *group, char *msg,
                         size_t msglen)
{
    return group_served(b, group, msg, msglen, 1);
}

sl_err sl_ops_groups_on_second(sl_broker *b, void (*fn)(void *arg, int64_t now),
                               void *arg)
{
    gmod *M = b->gmod;
    struct sl_gmod_tick *t;
    if (!M)
        return SL_ERR_INVALID_ARG;
    t = realloc(M->ticks, (M->nticks + 1) * sizeof(*t));
    if (!t)
        return SL_ERR_NOMEM;
    t[M->nticks].fn = fn;
    t[M->nticks].arg = arg;
    M->ticks = t;
    M->nticks++;
    return SL_OK;
}

/* ---- env for groups/ --------------------------------------------------- */

static sl_part *env_get_part(void *ctx, const char *topic, int32_t p)
{
    gmod *M = ctx;
    sl_part *out = NULL;
    if (sl_ops_part(M->b, topic, p, SL_OPS_NO_CREATE, &out) != SL_OK)
        return NULL;
    return out;
}

static int32_t env_partitions(void *ctx, const char *topic)
{
    gmod *M = ctx;
    int32_t n = -1;
    if (sl_ops_topic_get(M->b, topic, SL_OPS_NO_CREATE, &n) != SL_OK)
        return -1;
    return n;
}

/* A dead-letter batch forwarded to its partition's leader. */
typedef struct dlq_fwd {
    sl_broker *b;
    int64_t token;
} dlq_fwd;

static void dlq_fwd_done(void *arg, sl_err err)
{
    dlq_fwd *f = arg;
    sl_groups *g = sl_ops_groups(f->b);
    if (g)
        sl_groups_dlq_forwarded(g, f->token, err);
    free(f);
}

static sl_err env_append(void *ctx, const char *topic, int32_t p,
                         uint8_t *batch, size_t len, int64_t *base,
                         sl_part **part_out)
{
    gmod *M = ctx;
    dlq_fwd *f;
    sl_err rc =
        sl_ops_append(M->b, topic, p, SL_OPS_CREATE, batch, len, base, NULL);
    if (rc == SL_OK)
        return sl_ops_part(M->b, topic, p, SL_OPS_NO_CREATE, part_out);
    if (rc != SL_ERR_NOT_LEADER || !(f = calloc(1, sizeof(*f))))
        return rc;
    /* a cluster: the coordinator does not lead the DLQ partition (it
     * moved, docs/cluster.md 6): the leader stores it, acks=durable */
    f->b = M->b;
    f->token = ++M->dlq_token;
    rc = sl_ops_forward_append(M->b, topic, p, batch, len, 1, dlq_fwd_done, f);
    if (rc != SL_OK) {
        free(f);
        return rc;
    }
    *base = f->token;
    *part_out = NULL;
    return SL_OK;
}

static int env_coordinates(void *ctx, const char *group)
{
    return sl_gstate_coordinates(((gmod *)ctx)->gs, group);
}

static void env_replicate(void *ctx, const uint8_t *ops, size_t len,
                          uint64_t seq)
{
    sl_gstate_replicate(((gmod *)ctx)->gs, ops, len, seq);
}

static int64_t env_latest(void *ctx, const char *topic, int32_t partition,
                          int64_t since_ms)
{
    return sl_observer_latest(((gmod *)ctx)->b->observer, topic, partition,
                              since_ms);
}

static void env_need_from(void *ctx, const char *topic, int32_t partition,
                          int64_t offset)
{
    sl_observer_need_from(((gmod *)ctx)->b->observer, topic, partition, offset);
}

static int64_t env_now(void *ctx)
{
    (void)ctx;
    return sl_now_ms();
}

/* Activated by the first mutation of a loop iteration; libevent runs it
 * after the callbacks already active (e.g. every frame of a read), so a
 * burst of acks is staged once. */
static void env_request_stage(void *ctx)
{
    gmod *M = ctx;
    if (M->stage_ev)
        event_active(M->stage_ev, 0, 0);
}

static void arm_tick(gmod *M, int64_t ms);

/* A groups deadline earlier than the armed tick (the groups only report
 * those): tick then instead. */
static void env_wake_at(void *ctx, int64_t at_ms)
{
    gmod *M = ctx;
    if (M->tick_ev)
        arm_tick(M, at_ms - sl_now_ms());
}

/* "30s", "1500", "2h" -> ms; -1 on a bad value. */
static int64_t parse_ms(const char *v)
{
    char *end;
    long long n = strtoll(v, &end, 10);
    static const struct {
        const char *sfx;
        long long mul;
    } u[] = {{"", 1},      {"ms", 1},      {"s", 1000},
             {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    if (end == v)
        return -1;
    if (n < 0)
        return -1;
    for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++)
        if (!strcmp(end, u[i].sfx))
            return n * u[i].mul;
    return -1;
}

typedef struct ttl_find {
    int64_t ttl;
} ttl_find;

static void ttl_each(void *arg, const char *key, const char *value)
{
    if (!strcmp(key, "message-ttl-ms"))
        ((ttl_find *)arg)->ttl = parse_ms(value);
}

/* The topic's message-ttl-ms override, else the broker's. */
static int64_t env_topic_ttl(void *ctx, const char *topic)
{
    sl_broker *b = ((gmod *)ctx)->b;
    ttl_find tf = {sl_broker_config(b)->message_ttl_ms};
    sl_ops_topic_configs(b, topic, ttl_each, &tf);
    return tf.ttl;
}

static void stage_cb(evutil_socket_t fd, short what, void *arg)
{
    gmod *M = arg;
    (void)fd;
    (void)what;
    if (M->g)
        sl_groups_stage(M->g);
}

/* ---- events ------------------------------------------------------------ */

/* @thread flusher */
static void flush_hook(void *arg)
{
    gmod *M = arg;
    pthread_mutex_lock(&M->mu);
    if (M->g) {
        sl_groups_flush_hook(M->g);
        event_active(M->flushed_ev, 0, 0);
    }
    pthread_mutex_unlock(&M->mu);
}

static void flushed_cb(evutil_socket_t fd, short what, void *arg)
{
    gmod *M = arg;
    (void)fd;
    (void)what;
    if (M->g)
        sl_groups_on_flushed(M->g);
}

/* The groups tick: lock expiries, delayed records, session timeouts,
 * deferred commits, and the once-a-second hooks (sl_ops_groups_on_second:
 * the reaping of binary consumers).
 * sl_groups_tick says when it next has work (at most a second away) and
 * env_wake_at brings it forward when a new deadline appears, so an idle
 * broker wakes once a second. */
static void arm_tick(gmod *M, int64_t ms)
{
    struct timeval tv;
    if (ms > 1000)
        ms = 1000;
    if (ms < 1)
        ms = 1;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    evtimer_add(M->tick_ev, &tv);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    gmod *M = arg;
    int64_t next, now;
    (void)fd;
    (void)what;
    if (!M->g)
        return;
    next = sl_groups_tick(M->g);
    now = sl_now_ms();
    if (now - M->last_second >= 1000) {
        M->last_second = now;
        for (size_t i = 0; i < M->nticks; i++)
            M->ticks[i].fn(M->ticks[i].arg, now);
    }
    arm_tick(M, next);
}

/* Records became durable (the flusher's durable notify, before its hooks
 * commit group state): hand them to queue consumers now. */
static void on_durable(void *arg)
{
    gmod *M = arg;
    if (M->g)
        sl_groups_on_durable(M->g);
}

static void on_append(void *arg, const char *topic, int32_t partition,
                      int64_t end)
{
    gmod *M = arg;
    (void)end;
    if (M->g)
        sl_groups_on_append(M->g, topic, partition);
}

static void on_topic_delete(void *arg, const char *topic)
{
    gmod *M = arg;
    if (M->g)
        sl_groups_forget_topic(M->g, topic);
}

/* ---- module ------------------------------------------------------------- */

/*
 * groups.db is created on the first start, before any topic can exist. So
 * topics on disk with no groups.db means it was deleted (issue 18, finding
 * 10): starting would silently forget every stream offset and queue
 * state and redeliver everything. Refuse (-1), unless --recover accepts
 * that (groups start over, each per its start policy).
 */
static int groups_db_deleted(sl_broker *b)
{
    const char *data = sl_broker_data_dir(b);
    char path[4096];
    DIR *d;
    struct dirent *e;
    int topics = 0;
    snprintf(path, sizeof(path), "%s/groups.db", data);
    if (access(path, F_OK) == 0)
        return 0;
    snprintf(path, sizeof(path), "%s/topics", data);
    if ((d = opendir(path)) != NULL) {
        while (!topics && (e = readdir(d)) != NULL)
            topics = e->d_name[0] != '.';
        closedir(d);
    }
    if (!topics)
        return 0; /* a new data directory */
    if (sl_broker_config(b)->recover) {
        sl_log(SL_WARN, "groups",
               "--recover: %s/groups.db was missing; stream offsets and "
               "queue-group state start over (queue groups redeliver from "
               "their start policy)",
               data);
        return 0;
    }
    sl_log(SL_ERROR, "groups",
           "%s/groups.db is missing but %s/topics holds topics: the group "
           "state (stream offsets, queue acks) was deleted. Restore it from "
           "a backup, or start once with --recover to accept the loss "
           "(groups start over and redeliver)",
           data, data);
    sl_broker_fail(b, "groups: groups.db is missing (see the log)");
    return -1;
}

void sl_groups_module_init(sl_broker *b)
{
    const sl_config *cfg = sl_broker_config(b);
    sl_qgroup_cfg dflt;
    sl_groups *g = NULL;
    gmod *M;
    sl_err rc;

    M = calloc(1, sizeof(*M));
    if (!M || pthread_mutex_init(&M->mu, NULL) != 0) {
        free(M);
        sl_broker_fail(b, "groups: out of memory");
        return;
    }
    M->b = b;
    b->gmod = M;
    sl_qgroup_cfg_defaults(&dflt);
    dflt.max_deliveries = (int32_t)cfg->queue_max_deliveries;
    dflt.lock_ms = cfg->queue_lock_ms;
    dflt.max_inflight = (int32_t)cfg->queue_max_inflight;
    if (groups_db_deleted(b) != 0)
        return;
    {
        sl_groups_env env = {M,
                             env_get_part,
                             env_partitions,
                             env_append,
                             env_now,
                             env_request_stage,
                             env_topic_ttl,
                             env_wake_at,
                             NULL,
                             NULL,
                             NULL,
                             NULL};
        if (cfg->node_id != 0) { /* cluster: docs/cluster.md 6 */
            env.coordinates = env_coordinates;
            env.replicate = env_replicate;
            env.latest = env_latest;       /* observer.c */
            env.need_from = env_need_from; /* observer.c */
        }
        rc = sl_groups_open(sl_broker_data_dir(b), &env, sl_broker_flusher(b),
                            &g);
        if (rc == SL_OK)
            rc = sl_gstate_new(b, g, &M->gs);
    }
    if (rc != SL_OK) {
        sl_log(SL_ERROR, "groups", "cannot open %s/groups.db: %s",
               sl_broker_data_dir(b), sl_strerror(rc));
        sl_broker_fail(b, "groups: cannot open groups.db");
        return;
    }
    M->flushed_ev = event_new(sl_broker_base(b), -1, 0, flushed_cb, M);
    M->tick_ev = evtimer_new(sl_broker_base(b), tick_cb, M);
    M->stage_ev = event_new(sl_broker_base(b), -1, 0, stage_cb, M);
    if (!M->flushed_ev || !M->tick_ev || !M->stage_ev) {
        sl_groups_free(g);
        sl_broker_fail(b, "groups: cannot create events");
        return;
    }
    sl_groups_set_qgroup_defaults(g, &dflt);
    sl_groups_set_commit_interval(g, cfg->group_commit_interval_ms);
    sl_groups_set_early(g, cfg->queue_dispatch == 0); /* 0 = written */
    pthread_mutex_lock(&M->mu);
    M->g = g;
    pthread_mutex_unlock(&M->mu);
    sl_flusher_add_hook(sl_broker_flusher(b), flush_hook, M);
    sl_ops_on_append(b, on_append, M);
    sl_ops_on_durable(b, on_durable, M);
    sl_ops_on_topic_delete(b, on_topic_delete, M);
    M->last_second = sl_now_ms();
    sl_groups_stage(g); /* whatever loading changed */
    arm_tick(M, 10);
}

void sl_groups_module_fini(sl_broker *b)
{
    gmod *M = b->gmod;
    sl_groups *g;
    if (!M)
        return;
    pthread_mutex_lock(&M->mu);
    g = M->g;
    M->g = NULL;
    pthread_mutex_unlock(&M->mu);
    if (g) {
        sl_groups_commit_now(g);
        sl_gstate_free(M->gs);
        M->gs = NULL;
        sl_groups_free(g);
    }
    if (M->tick_ev)
        event_free(M->tick_ev);
    if (M->stage_ev)
        event_free(M->stage_ev);
    if (M->flushed_ev)
        event_free(M->flushed_ev);
    M->tick_ev = M->stage_ev = M->flushed_ev = NULL;
}

void sl_groups_module_release(sl_broker *b)
{
    gmod *M = b->gmod;
    if (!M)
        return;
    b->gmod = NULL;
    pthread_mutex_destroy(&M->mu);
    free(M->ticks);
    free(M);
}

static int32_t dlq_sink_partitions(void *ctx, const char *topic)
{
    int32_t np = 0;
    if (sl_ops_topic_get(ctx, topic, SL_OPS_AUTO_CREATE, &np) != SL_OK)
        return -1;
    return np;
}

static sl_err dlq_sink_append(void *ctx, const char *topic, int32_t partition,
                              uint8_t *batch, size_t len)
{
    return sl_ops_append(ctx, topic, partition, SL_OPS_NO_CREATE, batch, len,
                         NULL, NULL);
}

sl_dlq_sink sl_ops_dlq_sink(sl_broker *b)
{
    sl_dlq_sink sink = {b, dlq_sink_partitions, dlq_sink_append};
    return sink;
}
