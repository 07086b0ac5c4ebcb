/*
 * flusher_journal.c - the flusher's shared-journal rounds and its
 * checkpoint thread (flusher.c holds the design of rounds and hooks).
 *
 * The shared journal (journal.c, sl_flusher_set_journal): a round with
 * at least min_partitions partitions does not fdatasync each of them; it
 * copies their new bytes into the journal (sl_part__journal), fdatasyncs
 * that one file, and only then publishes their durable offsets
 * (sl_part__journal_done) and calls the durable notify: guarantee 1
 * holds with "the journal's fdatasync" for "the fdatasyncs". Partitions
 * it cannot take (too much to copy, out of descriptors, a failed journal)
 * are synced the classic way in the same round. A third thread, the
 * checkpoint thread, fdatasyncs the segment files a full journal file
 * covered (the flusher has already moved on to a new file; each file's
 * tail, partition.c, is written first) and then deletes it; a file is
 * also rotated that way once no journal round ran for
 * SL_JOURNAL_IDLE_CK_MS (an idle checkpoint: the partitions' own files
 * then hold their bytes durably, and an idle partition may be unloaded);
 * sl_flusher_forget also waits for a checkpoint that holds the partition,
 * then checkpoints it itself; sl_flusher_free ends with a checkpoint of
 * everything (one syncfs for SL_CK_SYNCFS_MIN partitions or more) and
 * deletes the journal file.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/prctl.h>

#include "protocol/log.h"
#include "storage/flusher.h"
#include "storage/flusher_int.h"
#include "storage/fsutil.h"
#include "storage/journal.h"
#include "storage/partition_int.h"

/* Remember p for the next checkpoint. Holds f->mu. 0 = remembered. */
static int touch(sl_flusher *f, sl_part *p)
{
    if (p->fl_touched)
        return 0;
    if (sl_flusher__grow((void **)&f->touched, &f->ctouched, f->ntouched + 1,
                         sizeof(*f->touched)))
        return -1;
    p->fl_touched = 1;
    f->touched[f->ntouched++] = p;
    return 0;
}

/*
 * The journal's part of a round: copy the new bytes of every partition
 * into the journal, one fdatasync, publish (journal.c, rules 1 and 2).
 * Partitions that need their files synced (a roll, a new file) and every
 * partition when the journal fails are synced the classic way. Returns the
 * number of fdatasync calls. @thread flusher
 */
uint64_t sl_flusher__journal_round(sl_flusher *f)
{
    size_t nj = 0;
    uint64_t n = 0, k;
    for (size_t i = 0; i < f->nround; i++) {
        sl_part *p = f->round[i];
        int r = sl_part__journal(p, f->j, &f->jp[nj]);
        if (r == SL_PART_J_ADDED) {
            nj++;
        } else if (r == SL_PART_J_CLASSIC) {
            k = 0;
            sl_part__sync(p, &k);
            n += k;
        }
    }
    if (nj == 0)
        return n;
    n++;
    if (sl_journal__commit(f->j) != SL_OK) {
        /* Rule 5: the segment files still hold every byte. */
        for (size_t i = 0; i < nj; i++) {
            k = 0;
            sl_part__sync(f->jp[i].p, &k);
            n += k;
        }
        return n;
    }
    atomic_fetch_add(&f->jrounds, 1);
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < nj; i++) {
        if (touch(f, f->jp[i].p) != 0) {
            /* Cannot remember it for the checkpoint: make its file
             * durable now instead (rare: out of memory). */
            pthread_mutex_unlock(&f->mu);
            sl_part__checkpoint(f->jp[i].p);
            pthread_mutex_lock(&f->mu);
        }
    }
    pthread_mutex_unlock(&f->mu);
    for (size_t i = 0; i < nj; i++)
        sl_part__journal_done(&f->jp[i]);
    return n;
}

/* ---- checkpoints ------------------------------------------------------ */

#define CK_THREADS 8

typedef struct ck_work {
    sl_part **v;
    size_t n;
    _Atomic size_t next;
    _Atomic int failed;
} ck_work;

static void *ck_worker(void *arg)
{
    ck_work *w = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&w->next, 1);
        if (i >= w->n)
            return NULL;
        if (sl_part__checkpoint(w->v[i]) != SL_OK)
            atomic_store(&w->failed, 1);
    }
}

/* fdatasync the files of v[0..n) with up to CK_THREADS threads (ext4
 * folds concurrent fdatasyncs into one journal commit: docs/storage.md).
 * Returns 0 when all succeeded. */
static int checkpoint_parts(sl_part **v, size_t n)
{
    ck_work w = {v, n, 0, 0};
    pthread_t th[CK_THREADS];
    size_t k = n / 16 + 1, started = 0;
    if (k > CK_THREADS)
        k = CK_THREADS;
    for (size_t i = 1; i < k; i++)
        if (pthread_create(&th[started], NULL, ck_worker, &w) == 0)
            started++;
    ck_worker(&w);
    for (size_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    return atomic_load(&w.failed);
}

/* Waits for a batch (ck_busy), checkpoints it, deletes the rotated
 * journal file when every fdatasync succeeded (journal.c rule 3). */
static void *ck_main(void *arg)
{
    sl_flusher *f = arg;
    (void)prctl(PR_SET_NAME, "sl-checkpoint");
    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (!f->ck_ready && !f->ck_stop)
            pthread_cond_wait(&f->ccv, &f->mu);
        if (!f->ck_ready)
            break;
        f->ck_ready = 0;
        size_t n = f->nck;
        uint64_t seq = f->ck_seq;
        pthread_mutex_unlock(&f->mu);
        int failed = checkpoint_parts(f->ck, n);
        if (!failed)
            sl_journal__drop(f->j, seq);
        else
            sl_log(SL_ERROR, "flusher",
                   "journal checkpoint incomplete: keeping journal file %llu "
                   "(replayed on the next start)",
                   (unsigned long long)seq);
        atomic_fetch_add(&f->checkpoints, 1);
        pthread_mutex_lock(&f->mu);
        f->nck = 0;
        f->ck_busy = 0;
        pthread_cond_broadcast(&f->done_cv);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

/* When the journal file is full, or its partitions were idle for
 * SL_JOURNAL_IDLE_CK_MS (idle = 1), and no checkpoint runs: start a new
 * file and hand the partitions the old one covered to the checkpoint
 * thread. Holds f->mu (drops it around the rotation). */
void sl_flusher__maybe_rotate(sl_flusher *f, int idle)
{
    uint64_t old;
    sl_part **t;
    size_t c;
    if (!f->j || f->ck_busy || f->ntouched == 0 || !f->cth_started ||
        (!idle && !sl_journal__full(f->j, f->ntouched)))
        return;
    f->ck_busy = 1; /* reserved: nobody else rotates */
    pthread_mutex_unlock(&f->mu);
    sl_err rc = sl_journal__rotate(f->j, &old);
    pthread_mutex_lock(&f->mu);
    if (rc != SL_OK) {
        f->ck_busy = 0;
        return;
    }
    /* Swap the sets: touched (now empty) collects the new file's. */
    t = f->ck;
    c = f->cck;
    f->ck = f->touched;
    f->cck = f->ctouched;
    f->nck = f->ntouched;
    f->touched = t;
    f->ctouched = c;
    f->ntouched = 0;
    for (size_t i = 0; i < f->nck; i++)
        f->ck[i]->fl_touched = 0;
    f->ck_seq = old;
    f->ck_ready = 1;
    pthread_cond_signal(&f->ccv);
}

/* The last act of a stopping flusher: wait for a checkpoint in progress,
 * checkpoint what the current file covers, delete it. A clean stop leaves
 * no journal behind. Holds f->mu. */
/* The last checkpoint of this many partitions or more is one syncfs. Not
 * the ones while the broker runs: syncfs writes back every dirty page of
 * the file system, the partitions of the journal file being written
 * included, and the rounds beside it slowed down (sticky 256 KiB batches
 * after a topic's 10,000 partitions were journaled once: 2.7-3.5 M
 * records/s against 4.7-5.9 M with an fdatasync of each file;
 * docs/benchmarks.md, session 16). */
#define SL_CK_SYNCFS_MIN 64

void sl_flusher__final_checkpoint(sl_flusher *f)
{
    while (f->ck_busy)
        pthread_cond_wait(&f->done_cv, &f->mu);
    if (!f->j)
        return;
    int failed = 0;
    if (f->ntouched > 0) {
        sl_part **v = f->touched;
        size_t n = f->ntouched, cv = f->ctouched;
        f->ck_busy = 1; /* sl_flusher_forget waits for it */
        f->touched = f->ck;
        f->ctouched = f->cck;
        f->ntouched = 0;
        f->ck = v;
        f->cck = cv;
        f->nck = n;
        for (size_t i = 0; i < n; i++)
            v[i]->fl_touched = 0;
        pthread_mutex_unlock(&f->mu);
        /* Many partitions: one syncfs instead of an fdatasync of each
         * (100,000 partitions written once: 100,000 opens and fdatasyncs
         * at every clean stop). The broker syncfs's the same file system
         * right after anyway (sl_part_shutdown_mark). */
        if (n >= SL_CK_SYNCFS_MIN) {
            /* their tails into their files first (partition.c) */
            for (size_t i = 0; i < n; i++)
                if (sl_part__tail_flush(v[i]) != SL_OK)
                    failed = 1;
            if (!failed && sl_journal__syncfs(f->j) != SL_OK)
                failed = 1;
        } else {
            failed = checkpoint_parts(v, n);
        }
        pthread_mutex_lock(&f->mu);
        f->nck = 0;
        f->ck_busy = 0;
        pthread_cond_broadcast(&f->done_cv);
    }
    if (!failed)
        sl_journal__retire(f->j);
}

sl_err sl_flusher_set_journal(sl_flusher *f, sl_journal *j,
                              size_t min_partitions)
{
    pthread_mutex_lock(&f->mu);
    if (f->j || !j) {
        pthread_mutex_unlock(&f->mu);
        return SL_ERR_INVALID_ARG;
    }
    f->jmin = min_partitions ? min_partitions : 1;
    if (sl_flusher__grow((void **)&f->jp, &f->cjp, f->cround ? f->cround : 16,
                         sizeof(*f->jp)) != 0) {
        pthread_mutex_unlock(&f->mu);
        return SL_ERR_NOMEM;
    }
    if (pthread_create(&f->cth, NULL, ck_main, f) != 0) {
        pthread_mutex_unlock(&f->mu);
        return SL_ERR_UNKNOWN;
    }
    f->cth_started = 1;
    f->j = j;
    pthread_mutex_unlock(&f->mu);
    return SL_OK;
}

uint64_t sl_flusher_journal_rounds(const sl_flusher *f)
{
    return atomic_load(&((sl_flusher *)f)->jrounds);
}

uint64_t sl_flusher_checkpoints(const sl_flusher *f)
{
    return atomic_load(&((sl_flusher *)f)->checkpoints);
}
