/*
 * replica_hwm.c - the high-water mark checkpoint (docs/cluster.md 3.2;
 * Kafka's replication-offset-checkpoint): each node writes down the
 * high-water mark of the partitions it replicates, so that after a
 * restart the check of its log against a new leader (replica_apply.c)
 * starts at that mark instead of the active segment's base.
 *
 * What is written is a mark this node knew, never more: as leader, the
 * one it computed (min of the in-sync replicas' log ends; nothing while
 * no follower is in sync, INT64_MAX, then the last one written stays);
 * as follower, the last one its leader sent, capped to its own log end.
 * Both are at most the partition's committed offset, and the committed
 * offset never goes back (a cut never reaches below it, docs/cluster.md
 * 3.2), so a mark once known stays true: a partition's entry only grows,
 * except that it follows the log end down (a reset when the replica moved
 * off this node, a power loss that took an unsynced tail: it is read as
 * min(mark, log end) anyway). Truncation is still decided against the
 * leader: the mark only says where the comparison may start, because
 * every record below it is on every in-sync replica with the same bytes.
 * A topic that allows unclean-leader-election does not use it (an
 * out-of-sync leader may lack committed records).
 *
 * Cost, bounded with 10,000 partitions: one file per data directory
 * (storage/hwm_checkpoint.c), rewritten every replica-hwm-checkpoint-ms
 * only when some partition's mark moved since the last write, with one
 * write and the recipe's two fsyncs, whatever the number of partitions or
 * acks; once more at a clean stop, and at once when a topic is deleted
 * (before its files go: broker/cluster.c) or a replica moved off (so that
 * a crash cannot leave a stale mark for a partition made anew under the
 * same name).
 *
 * The fsyncs are not done on the loop: the loop formats the file and
 * hands the bytes to one writer thread (a round whose predecessor is
 * still being written is skipped and comes next tick); the writes that
 * must be on disk before the loop goes on (a clean stop, a topic deleted,
 * a replica moved off) wait for it. Writes never overlap, so the file on
 * disk is always the newest handed over. A failed write is logged and the
 * next tick writes again. A file that does not read whole is ignored with
 * a WARN naming it: the node then compares from the active segment's base
 * as before.
 *
 * @thread loop (everything here but writer_main, the writer thread)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker/broker.h"
#include "broker/ops.h"
#include "broker/replica_int.h"
#include "cluster/meta.h"
#include "protocol/log.h"
#include "storage/fsutil.h"
#include "storage/hwm_checkpoint.h"

static void ck_path(const sl_replicas *rs, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", rs->b->cfg.data, SL_HWM_CKPT_FILE);
}

/* The writer thread: one job at a time, the file's bytes. */
struct replica_ckw {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char path[4096];
    char *buf; /* the job handed over, not taken yet (owned) */
    size_t len;
    int busy;   /* a job handed over and not finished */
    int stop;   /* exit once idle */
    sl_err err; /* the last failed write's error, SL_OK once reported */
};

/* @thread writer */
static void *writer_main(void *arg)
{
    replica_ckw *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        char *buf;
        size_t len;
        sl_err rc;
        while (!w->buf && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->buf)
            break;
        buf = w->buf;
        len = w->len;
        w->buf = NULL;
        pthread_mutex_unlock(&w->mu);
        rc = sl_fs_write_durable(w->path, buf, len);
        free(buf);
        pthread_mutex_lock(&w->mu);
        if (rc != SL_OK)
            w->err = rc;
        w->busy = 0;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void writer_start(sl_replicas *rs)
{
    replica_ckw *w = calloc(1, sizeof(*w));
    if (!w)
        return; /* written on the loop instead */
    ck_path(rs, w->path, sizeof(w->path));
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->th, NULL, writer_main, w) != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return;
    }
    rs->ck_writer = w;
}

void replica_hwm_stop(sl_replicas *rs)
{
    replica_ckw *w = rs->ck_writer;
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->th, NULL);
    free(w->buf);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
    rs->ck_writer = NULL;
}

/* Is the writer still on the previous job? Reports a failed write. */
static int writer_busy(sl_replicas *rs)
{
    replica_ckw *w = rs->ck_writer;
    int busy;
    sl_err err;
    if (!w)
        return 0;
    pthread_mutex_lock(&w->mu);
    busy = w->busy;
    err = w->err;
    w->err = SL_OK;
    pthread_mutex_unlock(&w->mu);
    if (err != SL_OK) {
        sl_log(SL_WARN, "replica",
               "writing %s: %s (written again next "
               "round)",
               w->path, sl_strerror(err));
        rs->ck_urgent = 1;
    }
    return busy;
}

/* Write buf (taken): handed to the writer, or on the loop without one;
 * with wait, returns once it is on disk (after any write before it). */
static sl_err writer_submit(sl_replicas *rs, char *buf, size_t len, int wait)
{
    replica_ckw *w = rs->ck_writer;
    sl_err rc = SL_OK;
    if (!w) {
        char path[4096];
        ck_path(rs, path, sizeof(path));
        rc = sl_fs_write_durable(path, buf, len);
        free(buf);
        return rc;
    }
    pthread_mutex_lock(&w->mu);
    while (w->busy)
        pthread_cond_wait(&w->cv, &w->mu);
    w->buf = buf;
    w->len = len;
    w->busy = 1;
    w->err = SL_OK;
    pthread_cond_broadcast(&w->cv);
    if (wait) {
        while (w->busy)
            pthread_cond_wait(&w->cv, &w->mu);
        rc = w->err;
        w->err = SL_OK;
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

void replica_hwm_load(sl_replicas *rs)
{
    char path[4096], why[160] = "";
    sl_err rc;

    if (rs->b->cfg.replica_hwm_checkpoint_ms <= 0)
        return;
    ck_path(rs, path, sizeof(path));
    rc = sl_hwm_ckpt_read(path, &rs->ck_loaded, &rs->ck_nloaded, why,
                          sizeof(why));
    if (rc == SL_OK)
        sl_log(SL_INFO, "replica",
               "high-water marks of %zu partitions read from %s",
               rs->ck_nloaded, path);
    else if (rc != SL_ERR_NOT_FOUND)
        sl_log(SL_WARN, "replica",
               "high-water mark checkpoint %s ignored (%s%s%s): logs are "
               "checked against their leaders from their active segments' "
               "base",
               path, sl_strerror(rc), why[0] ? ": " : "", why);
    writer_start(rs);
}

void replica_hwm_attach(sl_replicas *rs, lpart *lp)
{
    sl_hwm_entry *e = sl_hwm_ckpt_find(rs->ck_loaded, rs->ck_nloaded, lp->topic,
                                       lp->partition);
    lp->ckpt_hw = e ? e->hwm : -1;
    lp->ckpt_written = lp->ckpt_hw;
    if (e)
        e->hwm = -1; /* taken: the lpart carries it from now on */
}

void replica_hwm_forget(sl_replicas *rs, lpart *lp)
{
    lp->ckpt_hw = -1;
    rs->ck_urgent = 1;
}

/* Whether (topic, p) of the image may use a checkpointed mark. */
static int mark_usable(const sl_mi_topic *t)
{
    const char *v = sl_meta_topic_config(t, "unclean-leader-election");
    return !(v && (!strcasecmp(v, "yes") || !strcasecmp(v, "true") ||
                   !strcasecmp(v, "on") || !strcmp(v, "1")));
}

/* Bring lp->ckpt_hw up to the mark this node knows now (see above). */
static void refresh(sl_replicas *rs, lpart *lp)
{
    const sl_mi_topic *t = sl_meta_topic_find(rs->image, lp->topic);
    sl_part *part;
    int64_t cap, end;

    if (!t || lp->partition >= t->nparts) {
        /* deleted (its files may still be here until the deletion is
         * done): no mark, so none survives for a topic made anew */
        lp->ckpt_hw = -1;
        return;
    }
    if (sl_ops_part(rs->b, lp->topic, lp->partition, SL_OPS_NO_CREATE, &part) !=
        SL_OK)
        return;
    cap = sl_part_read_cap(part);
    end = sl_part_end_offset(part);
    if (cap != INT64_MAX) {
        if (cap > end)
            cap = end; /* a follower's: min(leader's mark, its log end) */
        if (cap > lp->ckpt_hw)
            lp->ckpt_hw = cap;
    }
    if (lp->ckpt_hw > end)
        lp->ckpt_hw = end; /* the log went back (a reset) */
}

int64_t replica_hwm_checkpointed(sl_replicas *rs, lpart *lp,
                                 const sl_mi_topic *t)
{
    if (!lp || (t && !mark_usable(t)))
        return -1;
    return lp->ckpt_hw;
}

/* The entries to write: every lpart with a mark, and the loaded entries
 * not taken yet whose partition the image still has. */
static sl_err write_all(sl_replicas *rs, int wait)
{
    size_t n = 0, cap = 0, len;
    sl_hwm_entry *e = NULL;
    char *buf;
    sl_err rc;

    for (size_t h = 0; h < LP_BUCKETS; h++)
        for (lpart *lp = rs->lparts[h]; lp; lp = lp->next)
            cap++;
    cap += rs->ck_nloaded;
    if (cap && !(e = calloc(cap, sizeof(*e))))
        return SL_ERR_NOMEM;
    for (size_t h = 0; h < LP_BUCKETS; h++)
        for (lpart *lp = rs->lparts[h]; lp; lp = lp->next)
            if (lp->ckpt_hw > 0) {
                e[n].topic = lp->topic;
                e[n].partition = lp->partition;
                e[n].hwm = lp->ckpt_hw;
                n++;
            }
    for (size_t i = 0; i < rs->ck_nloaded; i++) {
        sl_hwm_entry *l = &rs->ck_loaded[i];
        const sl_mi_topic *t = sl_meta_topic_find(rs->image, l->topic);
        if (l->hwm > 0 && t && l->partition < t->nparts)
            e[n++] = *l;
    }
    rc = sl_hwm_ckpt_encode(e, n, &buf, &len);
    free(e); /* the topics are the lparts' and the loaded array's */
    if (rc == SL_OK)
        rc = writer_submit(rs, buf, len, wait);
    if (rc != SL_OK) {
        char path[4096];
        ck_path(rs, path, sizeof(path));
        sl_log(SL_WARN, "replica", "writing %s: %s", path, sl_strerror(rc));
        rs->ck_urgent = 1;
        return rc;
    }
    /* handed over: a failure is reported by the next round (writer_busy),
     * which writes again */
    for (size_t h = 0; h < LP_BUCKETS; h++)
        for (lpart *lp = rs->lparts[h]; lp; lp = lp->next)
            lp->ckpt_written = lp->ckpt_hw;
    rs->ck_urgent = 0;
    rs->ck_writes++;
    return SL_OK;
}

sl_err replica_hwm_flush(sl_replicas *rs, int force)
{
    int changed = force || rs->ck_urgent;
    /* a round is what must reach the disk before the loop goes on: a
     * clean stop (force), a topic deleted or a replica moved off
     * (urgent); a periodic one waits for nothing */
    int wait = changed;

    if (rs->b->cfg.replica_hwm_checkpoint_ms <= 0)
        return SL_OK; /* off: nothing written, nothing read */
    if (writer_busy(rs) && !wait)
        return SL_OK;         /* the previous round is still being written */
    changed |= rs->ck_urgent; /* a failed write reported just now */
    for (size_t h = 0; h < LP_BUCKETS; h++)
        for (lpart *lp = rs->lparts[h]; lp; lp = lp->next) {
            refresh(rs, lp);
            changed |= lp->ckpt_hw != lp->ckpt_written;
        }
    return changed ? write_all(rs, wait) : SL_OK;
}

void replica_hwm_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    replica_hwm_flush(arg, 0);
}

void replica_hwm_topic_deleted(sl_replicas *rs, const char *topic)
{
    for (size_t i = 0; i < rs->ck_nloaded; i++)
        if (!strcmp(rs->ck_loaded[i].topic, topic))
            rs->ck_loaded[i].hwm = -1;
    for (size_t h = 0; h < LP_BUCKETS; h++)
        for (lpart *lp = rs->lparts[h]; lp; lp = lp->next)
            if (!strcmp(lp->topic, topic))
                lp->ckpt_hw = -1;
    rs->ck_urgent = 1;
    replica_hwm_flush(rs, 1);
}
