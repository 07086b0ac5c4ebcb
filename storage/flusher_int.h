/*
 * flusher_int.h - what flusher.c, flusher_spin.c and flusher_journal.c
 * share: the flusher's state and the internal calls between them. Not for
 * use outside storage/flusher*.c.
 */
#ifndef SL_FLUSHER_INT_H
#define SL_FLUSHER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/flusher.h"
#include "storage/journal.h"
#include "storage/partition_int.h"

typedef struct hook {
    void (*fn)(void *arg);
    void *arg;
} hook;

struct sl_flusher {
    pthread_t th;  /* flusher thread: fsync rounds, durable notify */
    pthread_t hth; /* hook thread: hooks, then notify */
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* work or stop */
    pthread_cond_t done_cv; /* a round ended */
    pthread_cond_t hcv;     /* hooks_wanted or hstop */
    sl_part **pend;         /* pending partitions (p->fl_pending = 1) */
    size_t npend, cpend;
    sl_part **round; /* partitions of the round in progress */
    size_t nround, cround;
    hook *hooks;
    size_t nhooks, chooks;
    int stop, in_round;
    int hold;                /* sl_flusher_hold: take no round */
    int hooks_wanted, hstop; /* hook thread: run the hooks / exit */
    void (*notify)(void *arg);
    void *arg;
    void (*dnotify)(void *arg); /* durable notify, guarded by mu */
    void *darg;
    int round_hooks;          /* hooks after every round (default 1), mu */
    int64_t spin_us;          /* spin for new work after a round, mu */
    int64_t last_end_us;      /* end of the last round, flusher thread */
    _Atomic uint64_t req_seq; /* sl_flusher_request calls */
    /* Adaptive spinning (spin_wait): the time of the last request, the
     * end of the last round, the average gap between them (flusher). */
    _Atomic int64_t req_us;
    int64_t round_end_us, gap_avg_us;
    int64_t jidle_at_ms;               /* (mu) idle checkpoint due (0 = none) */
    _Atomic uint64_t spins, spin_hits; /* spins started / that caught one */
    /* Coverage tokens (sl_flusher_token): SL_FLUSH_ALWAYS requests so far
     * (written under mu), the value of it when the round in progress took
     * its partitions (mu), and the same for the last round that ended. */
    _Atomic uint64_t always_seq;
    uint64_t round_token;
    _Atomic uint64_t covered;
    _Atomic int astop; /* copy of stop for the spinner */
    _Atomic uint64_t rounds, syncs;
    _Atomic int64_t sync_avg_us; /* fdatasync time per round, 1/8 weight */
    /* histograms (sl_flusher_hists), written by the flusher thread */
    _Atomic uint64_t h_sync[SL_FLUSHER_NBUCKETS], h_sync_sum;
    _Atomic uint64_t h_size[SL_FLUSHER_NBUCKETS], h_size_sum;
    uint64_t last_covered; /* flusher thread: covered before this round */
    /* The shared journal (journal.c), NULL = a sync per partition. */
    sl_journal *j;
    size_t jmin;       /* journal rounds of >= jmin partitions (mu) */
    sl_part_jpend *jp; /* the round's journaled ranges (cround) */
    size_t cjp;
    sl_part **touched; /* journaled since the current file began (mu) */
    size_t ntouched, ctouched;
    /* The checkpoint thread: fdatasyncs the segment files a rotated
     * journal file covered, then deletes that file. (mu) */
    pthread_t cth;
    int cth_started;
    pthread_cond_t ccv;
    sl_part **ck; /* the batch in progress */
    size_t nck, cck;
    int ck_busy, ck_stop;
    int ck_ready;    /* a batch for the checkpoint thread (not the final) */
    uint64_t ck_seq; /* journal file to delete after the batch */
    _Atomic uint64_t checkpoints, jrounds;
    /* Inline rounds (sl_flusher_kick, flusher.c): the bound on the
     * recent fdatasync time for a kick to run the round itself. (mu) */
    int64_t inline_us;              /* 0 = off */
    _Atomic uint64_t inline_rounds; /* rounds run by sl_flusher_kick */
};

/* Idle checkpoint: a journal file that covers partitions nobody wrote
 * for this long is rotated too (sl_flusher__maybe_rotate), so that their own
 * files are fdatasynced and an idle partition can be unloaded (partition.c,
 * sl_part_unload: only bytes its files hold durably) and the journal
 * file goes. */
#define SL_JOURNAL_IDLE_CK_MS 5000

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t sl_flusher__mono_ms(void);
/* Grow *v (of *cap elements of elem bytes) to hold need; 0 = done. */
int sl_flusher__grow(void **v, size_t *cap, size_t need, size_t elem);
/* flusher_spin.c: after a round, wait (park, then spin) for the next
 * request. @thread flusher, holds f->mu (released while waiting) */
void sl_flusher__spin_wait(sl_flusher *f);
/* flusher_journal.c: the journal's part of a round; the number of
 * fdatasync calls. @thread flusher */
uint64_t sl_flusher__journal_round(sl_flusher *f);
/* flusher_journal.c: rotate a full (or idle) journal file and hand its
 * partitions to the checkpoint thread. Holds f->mu. */
void sl_flusher__maybe_rotate(sl_flusher *f, int idle);
/* flusher_journal.c: a stopping flusher's last checkpoint. Holds f->mu. */
void sl_flusher__final_checkpoint(sl_flusher *f);

#endif
