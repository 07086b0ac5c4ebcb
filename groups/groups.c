/*
 * groups.c - the groups object: groups.db, batched commits, waiters.
 * The flusher's side (the transaction, the ops as SQL) is groups_db.c,
 * the group-state log of a cluster groups_repl.c; internal.h is shared.
 *
 * DESIGN: one SQLite transaction per flusher round.
 *
 * Every mutation on the loop thread (ack, release, delivery count, offset
 * commit, group config) bumps g->seq and marks its object dirty. When no
 * staged buffer is waiting, the loop serializes every dirty object into a
 * staged buffer (a list of ops: whole-window snapshots as ranges, offsets,
 * configs) covering seq = g->seq, queues it (g->stq) and wakes the
 * flusher's hook thread. The flusher hook takes the ready buffers from the
 * head of the queue under g->mu and applies them in ONE transaction
 * (BEGIN IMMEDIATE .. COMMIT, WAL, synchronous=FULL so the commit is on
 * disk), then publishes committed_seq. The broker's notify runs
 * sl_groups_on_flushed on the loop, which completes the waiters whose
 * seq <= committed_seq and stages what changed meanwhile. So an ack is
 * answered at most two rounds after it arrived, and the number of SQLite
 * transactions follows the number of rounds, not the number of acks.
 *
 * Early dispatch (sl_groups_set_early): a queue window may refer to
 * records handed out before their fdatasync. Staging asks the flusher
 * for a round of each such partition now (sl_flusher_request: an append
 * nobody waited on may have asked only lazily), then the buffer carries a
 * flusher token (sl_flusher_token, taken after those requests) and is
 * ready only once sl_flusher_covered() reaches it, i.e.
 * after the round that made the records durable; sl_groups_on_durable
 * wakes the hook then. Buffers commit in order, so everything staged
 * after it waits too; a newer buffer is merged into the newest queued one
 * only when that does not make it wait longer, so a steady stream of
 * rounds never starves the commit.
 *
 * Failure scenario this ordering prevents: answering an ack, crashing
 * before the transaction that contains it, and redelivering the record.
 * A commit failure is reported to the waiters (they answer an error) and
 * the state stays dirty so the next round retries it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "groups/internal.h"
#include "protocol/log.h"

static const char *k_schema =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "PRAGMA wal_autocheckpoint=8192;"
    "CREATE TABLE IF NOT EXISTS qgroup(grp TEXT NOT NULL, topic TEXT NOT "
    "NULL, cfg TEXT NOT NULL, PRIMARY KEY(grp, topic));"
    "CREATE TABLE IF NOT EXISTS qpart(grp TEXT NOT NULL, topic TEXT NOT "
    "NULL, part INTEGER NOT NULL, start INTEGER NOT NULL, cursor INTEGER "
    "NOT NULL, PRIMARY KEY(grp, topic, part));"
    "CREATE TABLE IF NOT EXISTS qrange(grp TEXT NOT NULL, topic TEXT NOT "
    "NULL, part INTEGER NOT NULL, first INTEGER NOT NULL, last INTEGER NOT "
    "NULL, state INTEGER NOT NULL, reason INTEGER NOT NULL, attempts "
    "INTEGER NOT NULL, failures INTEGER NOT NULL, due INTEGER NOT NULL, "
    "first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL, PRIMARY KEY(grp, "
    "topic, part, first)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS soffset(grp TEXT NOT NULL, topic TEXT NOT "
    "NULL, part INTEGER NOT NULL, off INTEGER NOT NULL, PRIMARY KEY(grp, "
    "topic, part));"
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT);"
    "INSERT OR IGNORE INTO meta(k, v) VALUES('schema', '1');";

int64_t sl_groups_now(sl_groups *g)
{
    struct timespec ts;
    if (g->env.now_ms)
        return g->env.now_ms(g->env.ctx);
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

sl_qgroup *sl_groups_qgroup_find(sl_groups *g, const char *group,
                                 const char *topic)
{
    for (sl_qgroup *qg = g->qgroups; qg; qg = qg->next)
        if (!strcmp(qg->name, group) && !strcmp(qg->topic, topic))
            return qg;
    return NULL;
}

sl_sgroup *sl_groups_sgroup_find(sl_groups *g, const char *name)
{
    for (sl_sgroup *sg = g->sgroups; sg; sg = sg->next)
        if (!strcmp(sg->name, name))
            return sg;
    return NULL;
}

/* Is a commit of what changed due now? At once when someone waits for
 * it (an answered ACK, an offset commit, a receipt) or when lazy commits
 * are off; otherwise once commit_interval_ms passed since the last
 * staging, so a stream of unanswered acks (STOMP ACK without a receipt)
 * costs one SQLite transaction per interval, not one per flusher round. */
static int stage_due(sl_groups *g)
{
    int64_t now;
    if (g->commit_interval_ms <= 0 || g->waiters)
        return 1;
    now = sl_groups_now(g);
    return now < g->last_stage_ms ||
           now - g->last_stage_ms >= g->commit_interval_ms;
}

/* Append a staged buffer (taking over *wb) to the queue, or merge it into
 * the newest one when that does not make the newest wait longer (a later
 * snapshot of a window supersedes an earlier one, applied in order).
 * Holds g->mu. */
static void stq_push(sl_groups *g, sl_wb *wb, uint64_t seq, uint64_t token)
{
    sl_stage *t = g->stq_tail, *n = NULL;
    if (!t || token > t->token)
        n = calloc(1, sizeof(*n));
    if (!n && t) { /* merge; out of memory too: then it waits longer */
        sl_wb_put(&t->buf, wb->p, wb->len);
        sl_wb_fini(wb);
        t->seq = seq;
        if (token > t->token)
            t->token = token;
        return;
    }
    if (!n) {
        sl_log(SL_ERROR, "groups", "out of memory staging state");
        sl_wb_fini(wb);
        return;
    }
    n->buf = *wb;
    n->seq = seq;
    n->token = token;
    if (t)
        t->next = n;
    else
        g->stq = n;
    g->stq_tail = n;
}

/* Is the oldest staged buffer ready to commit? Holds g->mu. */
int sl_groups_stq_ready(sl_groups *g)
{
    return g->stq && (!g->flusher || g->stq->token == 0 ||
                      sl_flusher_covered(g->flusher) >= g->stq->token);
}

static int stq_pending(sl_groups *g)
{
    int pending;
    pthread_mutex_lock(&g->mu);
    pending = g->stq != NULL;
    pthread_mutex_unlock(&g->mu);
    return pending;
}

/* Serialize everything dirty into a staged buffer. When some of it refers
 * to records handed out (or, a stream offset, read) before their
 * fdatasync, its commit waits for the flusher round that covers them
 * (sl_flusher_token): group state never points past the durable end of a
 * log, or a crash that took that tail back would reuse the offsets and
 * find NEW records already acked.
 * @thread loop */
void sl_groups_stage_now(sl_groups *g)
{
    sl_wb wb;
    uint64_t token = 0;
    int ready, early;
    g->last_stage_ms = sl_groups_now(g);
    sl_wb_init(&wb, 4096);
    early = sl_queue_stage(g, &wb);
    early |= sl_stream_stage(g, &wb);
    if (early && g->flusher) {
        /* after the stage functions' sl_flusher_request of each partition
         * it refers to ahead of its durable end: the token covers them */
        token = sl_flusher_token(g->flusher);
        sl_flusher_kick(g->flusher, 0); /* (inline mode: requests only queue) */
    }
    g->need_stage = 0;
    if (g->env.replicate)
        g->env.replicate(g->env.ctx, wb.p, wb.len, g->seq);
    pthread_mutex_lock(&g->mu);
    stq_push(g, &wb, g->seq, token);
    ready = sl_groups_stq_ready(g);
    pthread_mutex_unlock(&g->mu);
    g->staged_upto = g->seq;
    /* Not ready: the durable notify of its round wakes the hook
     * (sl_groups_on_durable), a wake-up now would find nothing to do. */
    if (g->flusher && ready)
        sl_flusher_wake(g->flusher);
}

/* Stage now unless a staged buffer still waits for the flusher (then
 * sl_groups_on_flushed stages after the round). */
static void stage_if_idle(sl_groups *g)
{
    if (!stq_pending(g))
        sl_groups_stage_now(g);
}

void sl_groups_stage_delete(sl_groups *g, int op, const char *group,
                            const char *topic)
{
    sl_wb wb;
    sl_wb_init(&wb, 64);
    sl_wb_u8(&wb, (uint8_t)op);
    sl_wb_str16(&wb, group, strlen(group));
    sl_wb_str16(&wb, topic, strlen(topic));
    if (g->env.replicate) /* the seq staged last: in order */
        g->env.replicate(g->env.ctx, wb.p, wb.len, g->staged_upto);
    pthread_mutex_lock(&g->mu);
    /* After everything staged so far, with the newest buffer's seq and
     * token (0 when none): ordered, never waiting on its own. */
    stq_push(g, &wb, g->stq_tail ? g->stq_tail->seq : g->staged_upto,
             g->stq_tail ? g->stq_tail->token : 0);
    pthread_mutex_unlock(&g->mu);
    sl_groups_mutated(g);
    if (g->flusher)
        sl_flusher_wake(g->flusher);
}

void sl_groups_deadline(sl_groups *g, int64_t at_ms)
{
    if (g->in_tick) { /* sl_groups_tick's answer will cover it */
        if (at_ms < g->tick_min)
            g->tick_min = at_ms;
        return;
    }
    if (at_ms >= g->wake_hint || !g->env.wake_at)
        return;
    g->wake_hint = at_ms;
    g->env.wake_at(g->env.ctx, at_ms);
}

/* A deferred (lazy) commit is pending: tick when it comes due. */
static void deadline_stage(sl_groups *g)
{
    if (g->need_stage && g->flusher && g->commit_interval_ms > 0)
        sl_groups_deadline(g, g->last_stage_ms + g->commit_interval_ms);
}

void sl_groups_mutated(sl_groups *g)
{
    g->seq++;
    g->need_stage = 1;
    if (!g->flusher || g->in_free)
        return;
    if (g->env.request_stage) {
        if (!g->stage_requested) {
            g->stage_requested = 1;
            g->env.request_stage(g->env.ctx);
        }
        return;
    }
    if (stage_due(g))
        stage_if_idle(g);
    else
        deadline_stage(g);
}

void sl_groups_stage(sl_groups *g)
{
    g->stage_requested = 0;
    if (g->need_stage && g->flusher && stage_due(g))
        stage_if_idle(g);
    else
        deadline_stage(g);
}

void sl_groups_set_early(sl_groups *g, int on)
{
    g->early = on != 0;
}

void sl_groups_set_commit_interval(sl_groups *g, int64_t ms)
{
    g->commit_interval_ms = ms > 0 ? ms : 0;
}

void sl_groups_complete_waiters(sl_groups *g)
{
    uint64_t committed;
    int err;
    pthread_mutex_lock(&g->mu);
    committed = g->committed_seq;
    err = g->commit_err;
    pthread_mutex_unlock(&g->mu);
    if (err) {
        g->st.commit_err = err;
        /* Failed: everything waiting fails; the state is re-staged. */
        while (g->waiters && g->waiters->seq <= g->staged_upto) {
            sl_waiter *w = g->waiters;
            g->waiters = w->next;
            w->cb(w->arg, (sl_err)err);
            free(w);
        }
        pthread_mutex_lock(&g->mu);
        g->commit_err = 0;
        pthread_mutex_unlock(&g->mu);
        g->need_stage = 1;
        sl_queue_mark_all_dirty(g);
    }
    if (g->env.replicate && g->repl_seq < committed)
        committed = g->repl_seq; /* and in the replicated state log */
    while (g->waiters && g->waiters->seq <= committed) {
        sl_waiter *w = g->waiters;
        g->waiters = w->next;
        w->cb(w->arg, SL_OK);
        free(w);
    }
    if (!g->waiters)
        g->waiters_tail = NULL;
}

void sl_groups_on_flushed(sl_groups *g)
{
    sl_groups_complete_waiters(g);
    sl_queue_on_flushed(g);
    /* Stage even if a buffer is still pending (appended: a later snapshot
     * of a window supersedes an earlier one), so what arrived during the
     * round makes the next round instead of the one after. At most once
     * per round, so the serialization cost stays per round. */
    if (g->need_stage && g->flusher && stage_due(g))
        sl_groups_stage_now(g);
}

void sl_groups_on_durable(sl_groups *g)
{
    int ready;
    sl_queue_on_flushed(g);
    pthread_mutex_lock(&g->mu);
    ready = g->stq && g->stq->token && sl_groups_stq_ready(g);
    pthread_mutex_unlock(&g->mu);
    if (ready && g->flusher) /* its round came: commit it now */
        sl_flusher_wake(g->flusher);
    if (g->need_stage && g->flusher && stage_due(g))
        stage_if_idle(g);
}

/* Wait until every staged buffer can commit (the rounds its records
 * need). @thread loop */
static void stq_wait_durable(sl_groups *g)
{
    uint64_t token;
    if (!g->flusher)
        return;
    pthread_mutex_lock(&g->mu);
    token = g->stq_tail ? g->stq_tail->token : 0;
    pthread_mutex_unlock(&g->mu);
    if (token)
        sl_flusher_wait_covered(g->flusher, token);
}

sl_err sl_groups_commit_now(sl_groups *g)
{
    sl_err rc;
    if (g->need_stage)
        sl_groups_stage_now(g);
    stq_wait_durable(g);
    sl_groups_flush_hook(g);
    pthread_mutex_lock(&g->mu);
    rc = g->commit_err;
    pthread_mutex_unlock(&g->mu);
    sl_groups_complete_waiters(g);
    sl_queue_on_flushed(g);
    if (g->need_stage) {
        sl_groups_stage_now(g);
        stq_wait_durable(g);
        sl_groups_flush_hook(g);
        sl_groups_complete_waiters(g);
    }
    return rc;
}

void sl_groups_wait(sl_groups *g, void (*cb)(void *arg, sl_err rc), void *arg)
{
    sl_waiter *w;
    uint64_t committed;
    pthread_mutex_lock(&g->mu);
    committed = g->committed_seq;
    pthread_mutex_unlock(&g->mu);
    if (g->env.replicate && g->repl_seq < committed)
        committed = g->repl_seq;
    if (committed >= g->seq && !g->waiters) {
        cb(arg, SL_OK);
        return;
    }
    w = calloc(1, sizeof(*w));
    if (!w) {
        cb(arg, SL_ERR_NOMEM);
        return;
    }
    w->seq = g->seq;
    w->cb = cb;
    w->arg = arg;
    if (g->waiters_tail)
        g->waiters_tail->next = w;
    else
        g->waiters = w;
    g->waiters_tail = w;
    if (g->need_stage && g->flusher) {
        if (!stq_pending(g))
            sl_groups_stage_now(g);
    } else if (g->flusher) {
        sl_flusher_wake(g->flusher);
    }
}

sl_err sl_groups_open(const char *data_dir, const sl_groups_env *env,
                      sl_flusher *flusher, sl_groups **out)
{
    sl_groups *g;
    sl_err rc;
    size_t n = strlen(data_dir) + 16;

    g = calloc(1, sizeof(*g));
    if (!g)
        return SL_ERR_NOMEM;
    pthread_mutex_init(&g->mu, NULL);
    pthread_mutex_init(&g->db_mu, NULL);
    g->env = *env;
    sl_qgroup_cfg_defaults(&g->qdefaults);
    g->flusher = flusher;
    g->wake_hint = INT64_MAX; /* until the first tick: report everything */
    g->next_consumer_id = 1;
    g->next_member_id = 1;
    g->path = malloc(n);
    if (!g->path) {
        rc = SL_ERR_NOMEM;
        goto out;
    }
    if (mkdir(data_dir, 0755) != 0 && errno != EEXIST) {
        rc = SL_ESYS(errno);
        sl_log(SL_ERROR, "groups", "mkdir %s: %s", data_dir, sl_strerror(rc));
        goto out;
    }
    snprintf(g->path, n, "%s/groups.db", data_dir);
    if (sqlite3_open_v2(g->path, &g->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                            SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        sl_log(SL_ERROR, "groups", "open %s: %s", g->path,
               g->db ? sqlite3_errmsg(g->db) : "out of memory");
        rc = SL_ERR_STORAGE;
        goto out;
    }
    sqlite3_busy_timeout(g->db, 5000);
    rc = sl_groups_db_exec(g->db, k_schema);
    if (rc != SL_OK)
        goto out;
    rc = sl_queue_load(g);
    if (rc != SL_OK)
        goto out;
    rc = sl_stream_load(g);
    if (rc != SL_OK)
        goto out;
    *out = g;
    return SL_OK;
out:
    sl_groups_free(g);
    return rc;
}

void sl_groups_free(sl_groups *g)
{
    if (!g)
        return;
    g->in_free = 1;
    while (g->waiters) {
        sl_waiter *w = g->waiters;
        g->waiters = w->next;
        w->cb(w->arg, SL_ERR_SHUTTING_DOWN);
        free(w);
    }
    sl_qgroup_free_all(g);
    sl_sgroup_free_all(g);
    free(g->dlqp);
    if (g->db)
        sqlite3_close(g->db);
    while (g->stq) {
        sl_stage *s = g->stq;
        g->stq = s->next;
        sl_wb_fini(&s->buf);
        free(s);
    }
    pthread_mutex_destroy(&g->mu);
    pthread_mutex_destroy(&g->db_mu);
    free(g->path);
    free(g);
}

void sl_groups_on_append(sl_groups *g, const char *topic, int32_t partition)
{
    sl_queue_on_append(g, topic, partition);
}

int64_t sl_groups_tick(sl_groups *g)
{
    int64_t now = sl_groups_now(g);
    int64_t a, b, r;
    g->in_tick = 1;
    g->tick_min = INT64_MAX;
    a = sl_queue_tick(g, now);
    b = sl_stream_tick(g, now);
    r = a < b ? a : b;
    /* Deferred (lazy) staging comes due. */
    if (g->need_stage && g->flusher && !g->stage_requested) {
        if (stage_due(g)) {
            stage_if_idle(g);
        } else {
            int64_t d = g->last_stage_ms + g->commit_interval_ms - now;
            if (d < r)
                r = d;
        }
    }
    g->in_tick = 0;
    if (g->tick_min - now < r)
        r = g->tick_min - now;
    if (r > 1000)
        r = 1000;
    if (r < 1)
        r = 1;
    g->wake_hint = now + r;
    return r;
}

void sl_groups_forget_topic(sl_groups *g, const char *topic)
{
    sl_queue_forget_topic(g, topic);
    sl_stream_forget_topic(g, topic);
    /* A topic re-created under the same name starts without group state,
     * also after a restart. */
    sl_groups_stage_delete(g, SL_OP_TDEL, "", topic);
}

void sl_groups_commit_hist(const sl_groups *g, sl_groups_hist *out)
{
    for (int i = 0; i < SL_GROUPS_HIST_NB; i++)
        out->count[i] =
            __atomic_load_n(&g->commit_hist.count[i], __ATOMIC_RELAXED);
    out->sum_us = __atomic_load_n(&g->commit_hist.sum_us, __ATOMIC_RELAXED);
    out->n = __atomic_load_n(&g->commit_hist.n, __ATOMIC_RELAXED);
}

void sl_groups_stats_get(const sl_groups *g, sl_groups_stats *out)
{
    *out = g->st;
    out->txns = __atomic_load_n(&g->st.txns, __ATOMIC_RELAXED);
}

sl_err sl_groups_describe(sl_groups *g, const char *group, sl_group_info **out)
{
    sl_group_info *info = calloc(1, sizeof(*info));
    sl_err rc;
    if (!info)
        return SL_ERR_NOMEM;
    snprintf(info->name, sizeof(info->name), "%s", group);
    rc = sl_queue_describe(g, group, info);
    if (rc == SL_ERR_UNKNOWN_GROUP)
        rc = sl_stream_describe(g, group, info);
    if (rc != SL_OK) {
        sl_group_info_free(info);
        return rc;
    }
    *out = info;
    return SL_OK;
}

void sl_group_info_free(sl_group_info *info)
{
    if (!info)
        return;
    for (size_t i = 0; i < info->nmembers; i++)
        free(info->members[i].assign);
    free(info->members);
    free(info->parts);
    free(info);
}

static int have_name(char **names, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], s))
            return 1;
    return 0;
}

sl_err sl_groups_list(sl_groups *g, char ***names_out, int **kinds_out,
                      size_t *count)
{
    size_t n = 0, cap = 0;
    char **names = NULL;
    int *kinds = NULL;
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < 2; k++) {
            sl_qgroup *qg = k == 1 ? g->qgroups : NULL;
            sl_sgroup *sg = k == 0 ? g->sgroups : NULL;
            while (qg || sg) {
                const char *nm = qg ? qg->name : sg->name;
                if (pass == 0) {
                    cap++;
                } else if (!have_name(names, n, nm)) {
                    names[n] = strdup(nm);
                    if (!names[n])
                        goto nomem;
                    kinds[n++] = k;
                }
                if (qg)
                    qg = qg->next;
                else
                    sg = sg->next;
            }
        }
        if (pass == 0) {
            names = calloc(cap + 1, sizeof(*names));
            kinds = calloc(cap + 1, sizeof(*kinds));
            if (!names || !kinds)
                goto nomem;
        }
    }
    *names_out = names;
    *kinds_out = kinds;
    *count = n;
    return SL_OK;
nomem:
    if (names)
        for (size_t i = 0; i < n; i++)
            free(names[i]);
    free(names);
    free(kinds);
    return SL_ERR_NOMEM;
}
