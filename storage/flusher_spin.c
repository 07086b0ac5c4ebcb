/*
 * flusher_spin.c - the flusher thread's wait for the next request after a
 * round: adaptive spinning (sl_flusher_set_spin_us). flusher.c holds the
 * design of rounds and hooks.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#include "storage/flusher.h"
#include "storage/flusher_int.h"
#include "storage/fsutil.h"

/*
 * Spin (yielding the CPU) until a request arrives or `until_us`. Sleeping
 * on the condition variable costs a futex wake-up and a scheduler hop on
 * the next request (tens of microseconds on a VM, a good part of a
 * 0.2 ms fdatasync); a client that waits for each receipt sends its next
 * message about one loopback round trip after the last round. Bounded, so
 * an idle broker sleeps. @thread flusher, without f->mu
 */
static void spin_for_work(sl_flusher *f, uint64_t seq, int64_t until_us)
{
    while (atomic_load(&f->req_seq) == seq && !atomic_load(&f->astop) &&
           sl_fs_mono_us() < until_us)
        sched_yield();
}

/*
 * ADAPTIVE SPINNING. A spin for the whole gap between a round and the
 * next request burned a CPU for the gap: at 2-3 k messages/s with one
 * receipt window (gaps of 0.1-0.3 ms: the answer, the client's round
 * trip, its next SEND) the flusher and the loop's spin (broker/ops.c)
 * took about 65% of a core (issue 20). Yet the gaps of such a client are
 * regular, so the flusher parks for the predictable part and spins only
 * around when the next request is due: it keeps the average gap
 * (gap_avg_us, measured from the end of a round to the last request
 * before the next one), sleeps on its condition variable with a timeout
 * (futex timeouts are hrtimers: microsecond precision) until SL_SPIN_EARLY
 * of it, then spins until twice the average, never longer than spin_us
 * in all. A request during the sleep wakes it as without spinning. Gaps
 * longer than SL_SPIN_MAX_GAP_US (a client that thinks between messages)
 * are not worth a spin at all: a wake-up there is a small part of the
 * wait. So the CPU a spin costs is about twice the jitter of the gaps,
 * not the gaps. @thread flusher, holds f->mu (released while waiting)
 */
#define SL_SPIN_MAX_GAP_US 2000
/* spin from this fraction (1/8ths) of the expected gap */
#define SL_SPIN_EARLY 6

void sl_flusher__spin_wait(sl_flusher *f)
{
    int64_t t = sl_fs_mono_us(), g = f->gap_avg_us, from, until;
    uint64_t seq = atomic_load(&f->req_seq);

    f->last_end_us = 0; /* one spin per round */
    if (g > SL_SPIN_MAX_GAP_US)
        return;
    from = f->round_end_us + g * SL_SPIN_EARLY / 8;
    until = f->round_end_us + 2 * g + 20;
    if (until > f->round_end_us + f->spin_us)
        until = f->round_end_us + f->spin_us;
    if (from > until - 20)
        from = until - 20;
    if (t >= until)
        return;
    if (t < from) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = ts.tv_nsec + (from - t) * 1000;
        ts.tv_sec += ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&f->cv, &f->mu, &ts);
        if (atomic_load(&f->req_seq) != seq || f->stop)
            return; /* woken by a request: no spin needed */
    }
    atomic_fetch_add_explicit(&f->spins, 1, memory_order_relaxed);
    pthread_mutex_unlock(&f->mu);
    spin_for_work(f, seq, until);
    pthread_mutex_lock(&f->mu);
    if (atomic_load(&f->req_seq) != seq)
        atomic_fetch_add_explicit(&f->spin_hits, 1, memory_order_relaxed);
}

void sl_flusher_spin_stats(const sl_flusher *f, uint64_t *spins, uint64_t *hits)
{
    sl_flusher *g = (sl_flusher *)f;
    if (spins)
        *spins = atomic_load(&g->spins);
    if (hits)
        *hits = atomic_load(&g->spin_hits);
}

void sl_flusher_set_spin_us(sl_flusher *f, int64_t us)
{
    pthread_mutex_lock(&f->mu);
    f->spin_us = us > 0 ? us : 0;
    pthread_mutex_unlock(&f->mu);
}
