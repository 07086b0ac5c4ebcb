/*
 * flusher.c - the group-commit thread.
 *
 * DESIGN
 * ======
 * The event loop must never wait for the disk, yet a producer may only be
 * told "durable" after an fdatasync covers its batch. Syncing once per
 * append would cap durable throughput at 1/fsync-latency (a few hundred
 * appends per second on many disks). So, as Redis moves fsync and close to
 * its bio.c threads, Sluice moves every fdatasync to one flusher thread
 * and lets one fdatasync cover many appends:
 *
 *   loop thread              flusher thread           hook thread
 *   -----------              --------------           -----------
 *   sl_part_append (write(2), returns)
 *   sl_flusher_request(p) -- pending set + cv -->
 *   ... more appends ...     take the pending set (a round)
 *                            for each p: sl_part_sync(p)
 *                              snapshot end offset E and fds
 *                              under p's mutex, fdatasync
 *                              each dirty file WITHOUT it,
 *                              publish durable_offset = E
 *   <---- durable_notify(arg) (only if the round synced something)
 *   answer producers whose   hooks_wanted = 1 -- hcv -->
 *   offsets are now below    next round at once       hooks_wanted = 0
 *   sl_part_durable_offset   if more work (its        run every hook
 *                            fdatasyncs overlap the   (groups' SQLite
 *                            hooks)                   COMMIT; a hook
 *                                                     signals its own
 *                                                     waiters)
 *   <---------------------------------------------- notify(arg)
 *   answer what became durable (if not done already)
 *
 * A round covers everything appended before it took its snapshot; what
 * arrives during a round is covered by the next one, which starts as soon
 * as the current one ends. Under load, rounds become back to back and each
 * fdatasync covers more appends: durable throughput grows with load
 * instead of being bounded by fsync latency. With one client and no
 * concurrency each append still pays one fsync latency, which is the
 * minimum for a durable acknowledgement.
 *
 * Early durable notify: the logs are durable as soon as the fdatasyncs
 * return; the hooks (groups' SQLite COMMIT, itself an fsync of the WAL)
 * have nothing to do with them. So a round calls the durable notify right
 * after its fdatasyncs (the loop answers produces at once), and the hooks
 * and notify come later. What a hook commits is NOT covered by the
 * durable notify: a hook that answers its own waiters (groups) signals
 * them itself once its transaction committed, or relies on notify, which
 * comes after the hooks' run. Rounds that synced nothing skip the durable
 * notify: no durable offset moved. A caller may pass the same function as
 * both (the broker does: a second event_active on a pending event is free,
 * and a second pass finds nothing new to answer).
 *
 * Hooks on their own thread: when the hooks ran on the flusher thread,
 * the next round's fdatasync could not start before the hooks (a SQLite
 * COMMIT: one more fsync) returned, so a SEND arriving meanwhile waited
 * for the commit plus its own fsync (receipt on every send with an acking
 * consumer: 4x one fdatasync). Now the flusher thread only sets
 * hooks_wanted and signals the hook thread, then goes on with the next
 * round; the hook thread clears hooks_wanted, runs every hook serially,
 * then calls notify. The two overlap; nothing else changes. Guarantees:
 *
 *  1. The durable notify of a round runs only after that round's
 *     fdatasyncs and the durable offsets they cover were published, on the
 *     flusher thread; it never announces more than is on disk.
 *  2. Hooks run on the hook thread only, one at a time, in registration
 *     order, never concurrently with themselves; they run at least once
 *     (complete) after every round (unless sl_flusher_set_round_hooks(0))
 *     and every sl_flusher_wake that asked,
 *     i.e. a run starts after the request. Requests arriving while hooks
 *     run are coalesced into one more run. A hook therefore observes at
 *     least the durable offsets of every round that preceded its run (it
 *     may see later ones too), but is no longer in lock-step with rounds:
 *     it may run while the next round's fdatasync is in progress.
 *  3. notify runs on the hook thread after each run of the hooks (also
 *     when there are none): after it, every round that ended before the
 *     run started has published its offsets and every hook has run.
 *  4. sl_flusher_free runs a last fsync round (everything pending, due or
 *     not), then a last hook run and notify, then joins both threads.
 *  5. sl_flusher_forget waits for an fsync round in progress that includes
 *     the partition (hooks never touch partitions through the flusher).
 *
 * groups/ (via broker/ops_groups.c) is fine with 2 and 3: its hook commits
 * the staged batch and activates its own loop event; the loop reads
 * sl_part_durable_offset itself before handing records out or archiving a
 * DLQ append, so it never relied on the hook running on the flusher
 * thread or once per round.
 *
 * The broker turns the per-round hook run off (sl_flusher_set_round_hooks
 * 0): its per-round work (answering produces, handing newly durable
 * records to queue consumers) runs from the durable notify, and groups
 * ask for their commits with sl_flusher_wake. That saves a hook-thread
 * wake-up and a second loop wake-up per round. It also sets a spin
 * (sl_flusher_set_spin_us): after a round the flusher thread yields the
 * CPU in a loop for up to that long, watching req_seq, before it sleeps
 * on cv. A client that waits for every receipt sends its next message
 * about one loopback round trip after the last round; sleeping would add
 * a futex wake-up and a scheduler hop (tens of microseconds on a VM) to
 * each of its fdatasyncs.
 *
 * The shared journal (sl_flusher_set_journal): rounds of many partitions
 * fdatasync one journal file instead of each partition; flusher_journal.c
 * explains it and its checkpoint thread. Adaptive spinning after a round:
 * flusher_spin.c.
 *
 * Policies: SL_FLUSH_ALWAYS requests a round now (or, lazily, within a
 * delay: LAZY REQUESTS below); SL_FLUSH_INTERVAL
 * requests one no later than flush_interval_ms after the first unsynced
 * append (a partition already pending keeps its earlier deadline);
 * SL_FLUSH_NEVER ignores the request (the OS writes back; durable offset
 * only moves when someone calls sl_part_sync, e.g. at shutdown).
 *
 * Hooks must return at once when they have nothing staged (they run after
 * every round; sl_groups_flush_hook does: one mutex, no transaction) and
 * must not call back into the flusher.
 *
 * Locking: f->mu guards the pending set, the hooks, the round state and
 * the hook thread's flags; it is never held while syncing or running a
 * hook. sl_flusher_forget waits for a round in progress that includes the
 * partition, so sl_part_free afterwards is safe.
 * A failed fdatasync marks the partition failed (sl_part_failed); its
 * durable offset stops, and the loop learns it after the durable notify
 * (or notify).
 */
#include "storage/flusher.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "protocol/log.h"
#include "storage/flusher_int.h"
#include "storage/fsutil.h"
#include "storage/journal.h"
#include "storage/partition_int.h"

int64_t sl_flusher__mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int sl_flusher__grow(void **v, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 16;
    while (c < need)
        c *= 2;
    void *n = realloc(*v, c * elem);
    if (!n)
        return -1;
    *v = n;
    *cap = c;
    return 0;
}

/* Move due partitions (all when stopping) into f->round. Holds f->mu.
 * Returns the earliest deadline still pending, or INT64_MAX. */
static int64_t take_due(sl_flusher *f, int64_t now, int all)
{
    int64_t next = INT64_MAX;
    size_t k = 0;
    f->nround = 0;
    /* Every SL_FLUSH_ALWAYS request so far is due now: this round (or an
     * earlier one) covers it, unless memory runs out below. */
    f->round_token = atomic_load(&f->always_seq);
    if (sl_flusher__grow((void **)&f->round, &f->cround, f->npend,
                         sizeof(*f->round)) ||
        (f->j && sl_flusher__grow((void **)&f->jp, &f->cjp, f->cround,
                                  sizeof(*f->jp)))) {
        all = 0; /* out of memory: take nothing, retry later */
        f->round_token = atomic_load(&f->covered);
    }
    for (size_t i = 0; i < f->npend; i++) {
        sl_part *p = f->pend[i];
        if ((all || p->fl_due_ms <= now) && f->nround < f->cround) {
            p->fl_pending = 0;
            f->round[f->nround++] = p;
        } else {
            if (p->fl_due_ms < next)
                next = p->fl_due_ms;
            f->pend[k++] = p;
        }
    }
    f->npend = k;
    return next;
}

/* One fsync round and its durable notify. @thread flusher, or the loop
 * for an inline round (on_loop: sl_flusher_kick) */
static void run_round(sl_flusher *f, int on_loop)
{
    void (*dn)(void *arg);
    void *darg;
    uint64_t n = 0;
    int64_t t0 = sl_fs_mono_us(), avg;
    size_t jmin;
    pthread_mutex_lock(&f->mu);
    jmin = f->jmin;
    pthread_mutex_unlock(&f->mu);
    if (f->j && !sl_journal__failed(f->j) && f->nround >= jmin) {
        n = sl_flusher__journal_round(f);
        pthread_mutex_lock(&f->mu);
        f->jidle_at_ms = sl_flusher__mono_ms() + SL_JOURNAL_IDLE_CK_MS;
        pthread_mutex_unlock(&f->mu);
    } else {
        for (size_t i = 0; i < f->nround; i++) {
            uint64_t k = 0;
            if (on_loop)
                sl_part__sync_loop(f->round[i], &k);
            else
                sl_part__sync(f->round[i], &k);
            n += k;
        }
    }
    atomic_fetch_add(&f->syncs, n);
    if (n > 0) { /* only this thread writes it */
        static const int64_t sb[] = SL_FLUSHER_SYNC_BUCKETS_US;
        static const int64_t zb[] = SL_FLUSHER_SIZE_BUCKETS;
        int64_t dt = sl_fs_mono_us() - t0;
        uint64_t size = f->round_token > f->last_covered
                            ? f->round_token - f->last_covered
                            : 0;
        int i;
        avg = atomic_load(&f->sync_avg_us);
        atomic_store(&f->sync_avg_us, avg + (dt - avg) / 8);
        for (i = 0; sb[i] >= 0 && dt > sb[i]; i++)
            ;
        atomic_fetch_add_explicit(&f->h_sync[i], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&f->h_sync_sum, (uint64_t)dt,
                                  memory_order_relaxed);
        for (i = 0; zb[i] >= 0 && (int64_t)size > zb[i]; i++)
            ;
        atomic_fetch_add_explicit(&f->h_size[i], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&f->h_size_sum, size, memory_order_relaxed);
    }
    if (f->round_token > f->last_covered)
        f->last_covered = f->round_token;
    pthread_mutex_lock(&f->mu);
    dn = f->dnotify;
    darg = f->darg;
    pthread_mutex_unlock(&f->mu);
    /* Counted before the durable notify, so whoever it wakes sees it. */
    atomic_fetch_add(&f->rounds, 1);
    atomic_store(&f->covered, f->round_token);
    /* Guarantee 1: the durable offsets were published by sl_part__sync
     * (or sl_part__journal_done after the journal's fdatasync). */
    if (dn && f->nround > 0)
        dn(darg);
}

/* Run every hook once, serially, then notify. @thread hook */
static void run_hooks(sl_flusher *f)
{
    size_t nh;
    pthread_mutex_lock(&f->mu);
    nh = f->nhooks;
    pthread_mutex_unlock(&f->mu);
    /* Hooks are only ever appended; entries below nh are stable. The
     * array may move, so read each entry under the lock. */
    for (size_t i = 0; i < nh; i++) {
        pthread_mutex_lock(&f->mu);
        hook h = f->hooks[i];
        pthread_mutex_unlock(&f->mu);
        h.fn(h.arg);
    }
    if (f->notify)
        f->notify(f->arg);
}

/* Waits for hooks_wanted, clears it, runs the hooks. Exits once hstop is
 * set and no run is wanted (sl_flusher_free sets both: one last run). */
static void *hook_main(void *arg)
{
    sl_flusher *f = arg;
    (void)prctl(PR_SET_NAME, "sl-hooks"); /* top -H, perf, /proc: comm */
    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (!f->hooks_wanted && !f->hstop)
            pthread_cond_wait(&f->hcv, &f->mu);
        if (!f->hooks_wanted)
            break;
        f->hooks_wanted = 0;
        pthread_mutex_unlock(&f->mu);
        run_hooks(f);
        pthread_mutex_lock(&f->mu);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

/* Ask the hook thread for a run. Holds f->mu. */
static void want_hooks(sl_flusher *f)
{
    f->hooks_wanted = 1;
    pthread_cond_signal(&f->hcv);
}

static void *flusher_main(void *arg)
{
    sl_flusher *f = arg;
    /* spin_wait's timed sleeps end when asked: the default timer slack
     * (50 µs) is a quarter of an fdatasync */
    (void)prctl(PR_SET_TIMERSLACK, 1000UL);
    (void)prctl(PR_SET_NAME, "sl-flusher");
    pthread_mutex_lock(&f->mu);
    for (;;) {
        int64_t now = sl_flusher__mono_ms();
        int stopping = f->stop;
        int64_t next;
        if ((f->hold && !stopping) || f->in_round) {
            /* held, or a caller runs a round (sl_flusher_kick) */
            pthread_cond_wait(f->in_round ? &f->done_cv : &f->cv, &f->mu);
            continue;
        }
        next = take_due(f, now, stopping);
        if (f->nround == 0 && atomic_load(&f->covered) < f->round_token) {
            /* No SL_FLUSH_ALWAYS partition pending: every such request so
             * far is covered (sl_flusher_forget dropped some). Tell whoever
             * waits for the tokens, as a round would. */
            void (*dn)(void *arg) = f->dnotify;
            void *darg = f->darg;
            atomic_store(&f->covered, f->round_token);
            pthread_cond_broadcast(&f->done_cv);
            if (dn) {
                pthread_mutex_unlock(&f->mu);
                dn(darg);
                pthread_mutex_lock(&f->mu);
            }
            continue;
        }
        if (f->nround == 0 && !stopping && f->jidle_at_ms > 0 &&
            f->ntouched > 0 && !f->ck_busy) {
            if (now >= f->jidle_at_ms) {
                f->jidle_at_ms = 0; /* (retried after the next round) */
                sl_flusher__maybe_rotate(f, 1);
                continue;
            }
            if (f->jidle_at_ms < next)
                next = f->jidle_at_ms;
        }
        if (f->nround == 0 && !stopping) {
            if (f->spin_us > 0 && f->last_end_us > 0 &&
                (next == INT64_MAX || next > now)) {
                sl_flusher__spin_wait(f);
                continue;
            }
            if (next == INT64_MAX) {
                pthread_cond_wait(&f->cv, &f->mu);
            } else {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                int64_t ms = next - now;
                ts.tv_sec += ms / 1000;
                ts.tv_nsec += (ms % 1000) * 1000000;
                if (ts.tv_nsec >= 1000000000) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&f->cv, &f->mu, &ts);
            }
            continue;
        }
        if (f->round_end_us > 0) {
            /* the gap before this round (0: asked while the last ran) */
            int64_t r = atomic_load(&f->req_us), gap = r - f->round_end_us;
            if (gap < 0)
                gap = 0;
            f->gap_avg_us += (gap - f->gap_avg_us) / 4;
        }
        f->in_round = 1;
        pthread_mutex_unlock(&f->mu);
        run_round(f, 0);
        pthread_mutex_lock(&f->mu);
        f->in_round = 0;
        f->nround = 0;
        f->last_end_us = f->round_end_us = sl_fs_mono_us();
        pthread_cond_broadcast(&f->done_cv);
        if (f->round_hooks)
            want_hooks(f); /* and go on: the hooks overlap the next round */
        if (stopping) {
            sl_flusher__final_checkpoint(f);
            break;
        }
        sl_flusher__maybe_rotate(f, 0);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

sl_err sl_flusher_new(void (*notify)(void *arg), void *arg, sl_flusher **out)
{
    sl_flusher *f = calloc(1, sizeof(*f));
    pthread_condattr_t ca;
    if (!f)
        return SL_ERR_NOMEM;
    f->notify = notify;
    f->arg = arg;
    f->round_hooks = 1;
    pthread_mutex_init(&f->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&f->done_cv, NULL);
    pthread_cond_init(&f->hcv, NULL);
    pthread_cond_init(&f->ccv, NULL);
    if (pthread_create(&f->hth, NULL, hook_main, f) != 0)
        goto fail;
    if (pthread_create(&f->th, NULL, flusher_main, f) != 0) {
        pthread_mutex_lock(&f->mu);
        f->hstop = 1;
        pthread_cond_signal(&f->hcv);
        pthread_mutex_unlock(&f->mu);
        pthread_join(f->hth, NULL);
        goto fail;
    }
    *out = f;
    return SL_OK;
fail:
    pthread_cond_destroy(&f->cv);
    pthread_cond_destroy(&f->done_cv);
    pthread_cond_destroy(&f->hcv);
    pthread_cond_destroy(&f->ccv);
    pthread_mutex_destroy(&f->mu);
    free(f);
    return SL_ERR_UNKNOWN;
}

void sl_flusher_free(sl_flusher *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->stop = 1;
    atomic_store(&f->astop, 1);
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->th, NULL); /* after its last round (guarantee 4) */
    pthread_mutex_lock(&f->mu);
    f->hstop = 1;
    want_hooks(f); /* one last run of the hooks and notify */
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->hth, NULL);
    if (f->cth_started) {
        pthread_mutex_lock(&f->mu);
        f->ck_stop = 1;
        pthread_cond_signal(&f->ccv);
        pthread_mutex_unlock(&f->mu);
        pthread_join(f->cth, NULL);
    }
    for (size_t i = 0; i < f->npend; i++)
        f->pend[i]->fl_pending = 0;
    for (size_t i = 0; i < f->ntouched; i++)
        f->touched[i]->fl_touched = 0;
    free(f->pend);
    free(f->round);
    free(f->hooks);
    free(f->jp);
    free(f->touched);
    free(f->ck);
    pthread_cond_destroy(&f->cv);
    pthread_cond_destroy(&f->done_cv);
    pthread_cond_destroy(&f->hcv);
    pthread_cond_destroy(&f->ccv);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

/* p pending, due no later than due (an earlier deadline stays); the
 * thread is signalled unless quiet. Holds f->mu. */
static void pend_at(sl_flusher *f, sl_part *p, int64_t due, int quiet)
{
    if (p->fl_pending) {
        if (due < p->fl_due_ms) {
            p->fl_due_ms = due;
            if (!quiet)
                pthread_cond_signal(&f->cv);
        }
    } else if (sl_flusher__grow((void **)&f->pend, &f->cpend, f->npend + 1,
                                sizeof(*f->pend)) == 0) {
        p->fl_pending = 1;
        p->fl_due_ms = due;
        f->pend[f->npend++] = p;
        if (!quiet)
            pthread_cond_signal(&f->cv);
    } else {
        sl_log(SL_ERROR, "flusher", "%s: out of memory queueing a sync",
               p->dir);
    }
}

/* quiet: an SL_FLUSH_ALWAYS request does not wake the flusher thread
 * (sl_flusher_request_deferred: the caller kicks). */
static void request(sl_flusher *f, sl_part *p, int quiet)
{
    int policy = p->cfg.flush;
    int64_t due, now_us;
    if (policy == SL_FLUSH_NEVER)
        return;
    now_us = sl_fs_mono_us(); /* (one clock read per request) */
    due = now_us / 1000;
    if (policy == SL_FLUSH_INTERVAL)
        due += p->cfg.flush_interval_ms;
    quiet = quiet && policy == SL_FLUSH_ALWAYS;
    pthread_mutex_lock(&f->mu);
    atomic_fetch_add(&f->req_seq, 1);
    atomic_store_explicit(&f->req_us, now_us, memory_order_relaxed);
    if (policy == SL_FLUSH_ALWAYS)
        atomic_fetch_add(&f->always_seq, 1);
    pend_at(f, p, due, quiet);
    pthread_mutex_unlock(&f->mu);
}

void sl_flusher_request(sl_flusher *f, sl_part *p)
{
    request(f, p, 0);
}

void sl_flusher_request_deferred(sl_flusher *f, sl_part *p)
{
    request(f, p, 1);
}

/*
 * LAZY REQUESTS. An append that no client waits on (a STOMP SEND without
 * a receipt, a produce with acks below durable) need not start a round
 * of its own: with sl_flusher_request_lazy its partition becomes due only
 * delay_ms later (a round before that leaves it pending). When a waiter
 * arrives (a receipt, a durable ack, a group commit that refers to the
 * record) its sl_flusher_request makes the partition due now, and one
 * fdatasync covers everything appended before it. A STOMP producer that
 * asks for a receipt on every 100th SEND thus pays one fdatasync per
 * window instead of the one its first SENDs started plus the one its
 * receipt waits for. A lazy request takes no token (sl_flusher_token):
 * whoever needs the record durable asks with sl_flusher_request first.
 * The thread is signalled when the partition becomes pending, so its
 * timed wait sees the deadline. @thread loop
 */
void sl_flusher_request_lazy(sl_flusher *f, sl_part *p, int64_t delay_ms)
{
    int64_t due;
    if (p->cfg.flush != SL_FLUSH_ALWAYS || delay_ms <= 0) {
        sl_flusher_request(f, p);
        return;
    }
    due = sl_flusher__mono_ms() + delay_ms;
    pthread_mutex_lock(&f->mu);
    pend_at(f, p, due, 0);
    pthread_mutex_unlock(&f->mu);
}

/*
 * INLINE ROUNDS. At low rates each durable message costs thread hand-offs
 * more than anything else (issue 20, docs/benchmarks.md: on this VM a
 * context switch costs about 13 us, an fdatasync 43 us of CPU): the loop
 * wakes the flusher thread, which wakes the loop back after its
 * fdatasync, and both spin (flush-spin-us, loop-spin-us) to hide those
 * wake-ups. When one client waits for one durable write and nothing else
 * is going on, the caller may as well fdatasync itself, as Redis's
 * appendfsync always does on its main thread: one thread, no hand-off,
 * nothing to spin for. So a caller that expects such a round requests
 * with sl_flusher_request_deferred, which only queues an SL_FLUSH_ALWAYS
 * partition (no signal), and calls sl_flusher_kick once its batch of
 * requests is in. With sl_flusher_set_inline_us(us > 0) the kick runs the
 * round on the calling thread when the caller says it may (its own view:
 * a lone waiter for one append, nothing older pending), the round would be
 * exactly one due partition, the flusher thread is idle (not in a round,
 * not held, not stopping), no journal round would be due, and the recent
 * fdatasyncs took at most us on average (the most the caller's other work
 * waits); otherwise it signals the flusher thread as a request would
 * have. The round is run_round itself, so guarantee 1 holds: durable
 * offsets are published after the fdatasync, the durable notify comes
 * after them (on the calling thread), tokens are covered after it. The
 * flusher thread waits (done_cv) while in_round is set by a kick, and a
 * kick never starts while the thread has a round; take_due under f->mu
 * decides who takes the pending partition. @thread loop (the caller of
 * sl_flusher_request)
 */
int sl_flusher_kick(sl_flusher *f, int may_inline)
{
    int64_t now = sl_flusher__mono_ms();
    pthread_mutex_lock(&f->mu);
    if (f->npend == 0) { /* taken already (a spinning thread, a round) */
        pthread_mutex_unlock(&f->mu);
        return 0;
    }
    if (!may_inline || f->inline_us <= 0 || f->in_round || f->hold || f->stop ||
        f->npend != 1 || f->pend[0]->fl_due_ms > now ||
        atomic_load(&f->sync_avg_us) > f->inline_us || (f->j && f->jmin <= 1)) {
        pthread_cond_signal(&f->cv);
        pthread_mutex_unlock(&f->mu);
        return 0;
    }
    (void)take_due(f, now, 0);
    if (f->nround == 0) { /* out of memory: let the thread retry */
        pthread_cond_signal(&f->cv);
        pthread_mutex_unlock(&f->mu);
        return 0;
    }
    f->in_round = 1;
    pthread_mutex_unlock(&f->mu);
    run_round(f, 1);
    atomic_fetch_add(&f->inline_rounds, 1);
    pthread_mutex_lock(&f->mu);
    f->in_round = 0;
    f->nround = 0;
    pthread_cond_broadcast(&f->done_cv);
    /* What arrived meanwhile (another thread's request) is the thread's. */
    if (f->npend > 0)
        pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return 1;
}

void sl_flusher_set_inline_us(sl_flusher *f, int64_t us)
{
    pthread_mutex_lock(&f->mu);
    f->inline_us = us > 0 ? us : 0;
    pthread_mutex_unlock(&f->mu);
}

uint64_t sl_flusher_inline_rounds(const sl_flusher *f)
{
    return atomic_load(&((sl_flusher *)f)->inline_rounds);
}

void sl_flusher_forget(sl_flusher *f, sl_part *p)
{
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->npend; i++) {
        if (f->pend[i] == p) {
            f->pend[i] = f->pend[--f->npend];
            pthread_cond_signal(&f->cv); /* its tokens: covered now */
            break;
        }
    }
    p->fl_pending = 0;
    for (;;) {
        int busy = 0;
        for (size_t i = 0; f->in_round && i < f->nround; i++)
            busy |= f->round[i] == p;
        for (size_t i = 0; f->ck_busy && i < f->nck; i++)
            busy |= f->ck[i] == p;
        if (!busy)
            break;
        pthread_cond_wait(&f->done_cv, &f->mu);
    }
    /* Only now: the round just waited for may have journaled p. */
    int journaled = p->fl_touched;
    if (p->fl_touched) {
        for (size_t i = 0; i < f->ntouched; i++) {
            if (f->touched[i] == p) {
                f->touched[i] = f->touched[--f->ntouched];
                break;
            }
        }
        p->fl_touched = 0;
    }
    pthread_mutex_unlock(&f->mu);
    /* Out of the checkpoint set: what the journal covers for it must be
     * in its files before the journal file may go. */
    if (journaled)
        sl_part__checkpoint(p);
}

void sl_flusher_wake(sl_flusher *f)
{
    pthread_mutex_lock(&f->mu);
    want_hooks(f);
    pthread_mutex_unlock(&f->mu);
}

void sl_flusher_set_durable_notify(sl_flusher *f, void (*fn)(void *arg),
                                   void *arg)
{
    pthread_mutex_lock(&f->mu);
    f->dnotify = fn;
    f->darg = arg;
    pthread_mutex_unlock(&f->mu);
}

void sl_flusher_hold(sl_flusher *f, int on)
{
    pthread_mutex_lock(&f->mu);
    f->hold = on != 0;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

void sl_flusher_set_round_hooks(sl_flusher *f, int on)
{
    pthread_mutex_lock(&f->mu);
    f->round_hooks = on != 0;
    pthread_mutex_unlock(&f->mu);
}

void sl_flusher_add_hook(sl_flusher *f, void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&f->mu);
    if (sl_flusher__grow((void **)&f->hooks, &f->chooks, f->nhooks + 1,
                         sizeof(*f->hooks)) == 0) {
        f->hooks[f->nhooks].fn = fn;
        f->hooks[f->nhooks].arg = arg;
        f->nhooks++;
    } else {
        sl_log(SL_ERROR, "flusher", "out of memory adding a hook");
    }
    pthread_mutex_unlock(&f->mu);
}

uint64_t sl_flusher_rounds(const sl_flusher *f)
{
    return atomic_load(&((sl_flusher *)f)->rounds);
}

uint64_t sl_flusher_token(const sl_flusher *f)
{
    return atomic_load(&((sl_flusher *)f)->always_seq);
}

uint64_t sl_flusher_covered(const sl_flusher *f)
{
    return atomic_load(&((sl_flusher *)f)->covered);
}

void sl_flusher_wait_covered(sl_flusher *f, uint64_t token)
{
    pthread_mutex_lock(&f->mu);
    if (atomic_load(&f->covered) < token)
        pthread_cond_signal(&f->cv); /* a sleeping flusher re-checks */
    while (atomic_load(&f->covered) < token)
        pthread_cond_wait(&f->done_cv, &f->mu);
    pthread_mutex_unlock(&f->mu);
}

uint64_t sl_flusher_syncs(const sl_flusher *f)
{
    return atomic_load(&((sl_flusher *)f)->syncs);
}

int64_t sl_flusher_sync_avg_us(const sl_flusher *f)
{
    return atomic_load(&((sl_flusher *)f)->sync_avg_us);
}

void sl_flusher_hists(const sl_flusher *f, sl_flusher_hist *sync_us,
                      sl_flusher_hist *size)
{
    sl_flusher *m = (sl_flusher *)f;
    memset(sync_us, 0, sizeof(*sync_us));
    memset(size, 0, sizeof(*size));
    for (int i = 0; i < SL_FLUSHER_NBUCKETS; i++) {
        sync_us->count[i] =
            atomic_load_explicit(&m->h_sync[i], memory_order_relaxed);
        size->count[i] =
            atomic_load_explicit(&m->h_size[i], memory_order_relaxed);
        sync_us->n += sync_us->count[i];
        size->n += size->count[i];
    }
    sync_us->sum = atomic_load_explicit(&m->h_sync_sum, memory_order_relaxed);
    size->sum = atomic_load_explicit(&m->h_size_sum, memory_order_relaxed);
}
