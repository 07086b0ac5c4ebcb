/*
 * flusher.h - group commit. CONTRACT shared with broker/ and groups/.
 *
 * Two threads. The flusher thread, each round, fsyncs every partition that
 * asked since the last round (sl_part_sync: one fdatasync per dirty
 * segment, covering every append that arrived before the round began),
 * then calls the durable notify (if set, see sl_flusher_set_durable_notify)
 * so the loop can answer produces at once, then asks the hook thread for a
 * run and starts the next round if there is work. The hook thread runs the
 * registered hooks serially (groups/ commits its batched SQLite
 * transaction there), then calls notify() (compare sl_part_durable_offset
 * with the offsets the loop waits for). A produce thus waits for one
 * fdatasync, not for the hooks' own fsyncs too, and the hooks overlap the
 * next round's fdatasyncs. Appends arriving during a round are covered by
 * the next one. So durable throughput grows with load.
 */
#ifndef SL_FLUSHER_H
#define SL_FLUSHER_H

#include <stdint.h>

#include "protocol/err.h"
#include "storage/journal.h"
#include "storage/partition.h"

typedef struct sl_flusher sl_flusher;

/* notify(arg) runs on the hook thread after every run of the hooks (there
 * is at least one run after every round, runs may coalesce), e.g. it calls
 * event_active on a libevent event; evthread must be enabled. NULL = none.
 */
sl_err sl_flusher_new(void (*notify)(void *arg), void *arg, sl_flusher **out);
/* fn(arg) runs on the flusher thread in every round that synced at least
 * one partition, right after the fdatasyncs and durable offsets were
 * published, BEFORE the round asks for its hook run (hooks of earlier
 * rounds may be running meanwhile): durability of the logs only, nothing
 * a hook commits (group acks must wait for their hook's own signal or for
 * notify). Replaces a previous one; NULL removes it. @thread any */
void sl_flusher_set_durable_notify(sl_flusher *f, void (*fn)(void *arg),
                                   void *arg);
/* Run a last round, then a last hook run and notify, join both threads,
 * free. Accepts NULL. */
void sl_flusher_free(sl_flusher *f);

/* p has appends to cover (policy ALWAYS: next round; INTERVAL: a round no
 * later than flush_interval_ms; NEVER: ignored). @thread loop */
void sl_flusher_request(sl_flusher *f, sl_part *p);
/* p has appends nobody waits on yet (policy ALWAYS): cover them within
 * delay_ms (a later sl_flusher_request makes p due now). Takes no
 * token. Other policies,
 * or delay_ms <= 0: sl_flusher_request. @thread loop */
void sl_flusher_request_lazy(sl_flusher *f, sl_part *p, int64_t delay_ms);
/* p is about to be freed: drop it from the pending set and wait for a round
 * in progress to finish. @thread loop */
void sl_flusher_forget(sl_flusher *f, sl_part *p);
/* Run the hooks (then notify) soon; no fsync round. @thread any */
void sl_flusher_wake(sl_flusher *f);

/* fn(arg) runs on the hook thread, never concurrently with another hook
 * run, at least once after every round (after its fsyncs and durable
 * notify) and every sl_flusher_wake; requests during a run coalesce into
 * one more run; before notify. It may run while the next round syncs. A
 * hook with nothing to do should return at once. Must not call back into
 * the flusher. */
void sl_flusher_add_hook(sl_flusher *f, void (*fn)(void *arg), void *arg);

/* on = 0: the hooks run only after sl_flusher_wake, not after every round
 * (for users whose per-round work hangs off the durable notify instead;
 * the broker). Default 1. @thread any */
void sl_flusher_set_round_hooks(sl_flusher *f, int on);
/* After a round, wait up to us microseconds for the next request before
 * sleeping, saving a futex wake-up per round for clients that wait for
 * each durable ack: adaptive (flusher.c, spin_wait): it sleeps for most of
 * the average gap between a round and the next request and spins
 * (sched_yield) only around its end, and not at all when the gaps are
 * longer than 2 ms. 0 (default) = sleep at once. @thread any */
void sl_flusher_set_spin_us(sl_flusher *f, int64_t us);
/* Spins started after a round, and those a request ended (any may be
 * NULL). @thread any */
void sl_flusher_spin_stats(const sl_flusher *f, uint64_t *spins,
                           uint64_t *hits);

/*
 * Inline rounds (flusher.c, INLINE ROUNDS). sl_flusher_request_deferred:
 * as sl_flusher_request, but an SL_FLUSH_ALWAYS partition is only queued,
 * without waking the flusher thread; the caller MUST call sl_flusher_kick
 * after its batch of requests (e.g. from an event that runs right after
 * the current callback). The kick runs the round (fdatasync, durable
 * offsets, durable notify) on the calling thread when may_inline, inline
 * rounds are on (sl_flusher_set_inline_us, us > 0), the round is one due
 * partition, the flusher thread is idle and the recent fdatasyncs
 * averaged at most us; otherwise it wakes the flusher thread. Returns 1
 * when it ran the round. Default us = 0: a kick only wakes. @thread the
 * one that calls sl_flusher_request */
void sl_flusher_request_deferred(sl_flusher *f, sl_part *p);
void sl_flusher_set_inline_us(sl_flusher *f, int64_t us);
int sl_flusher_kick(sl_flusher *f, int may_inline);
/* Rounds sl_flusher_kick ran (they count in sl_flusher_rounds too). */
uint64_t sl_flusher_inline_rounds(const sl_flusher *f);

/*
 * Coverage tokens: a caller that must not commit something before the
 * logs it refers to are durable (groups/ committing acks of records it
 * handed out before their fdatasync) takes t = sl_flusher_token() after
 * the appends, and waits until sl_flusher_covered() >= t: then every
 * SL_FLUSH_ALWAYS append requested before the token was taken is covered
 * by a round that ended (its durable offsets published; a partition whose
 * fdatasync failed is marked failed instead, sl_part_failed). Tokens of
 * SL_FLUSH_INTERVAL|NEVER appends mean nothing. @thread any
 */
uint64_t sl_flusher_token(const sl_flusher *f);
uint64_t sl_flusher_covered(const sl_flusher *f);
/* Block until sl_flusher_covered() >= token (or the flusher stops). The
 * appends must have been requested (sl_flusher_request). @thread any but
 * the flusher's and hook threads */
void sl_flusher_wait_covered(sl_flusher *f, uint64_t token);

/*
 * Use the shared journal j (journal.h) for every round with at least
 * min_partitions partitions to sync: their new bytes go to the journal,
 * one fdatasync covers them all, and their segment files are fdatasynced
 * later by a checkpoint thread when the journal file is full (and at
 * sl_flusher_free, which then deletes the journal file). Rounds with fewer
 * partitions sync each partition's files as before. j must outlive f;
 * set once, before the first request. @thread loop
 */
sl_err sl_flusher_set_journal(sl_flusher *f, sl_journal *j,
                              size_t min_partitions);
/* Rounds that committed through the journal, and checkpoints done. */
uint64_t sl_flusher_journal_rounds(const sl_flusher *f);
uint64_t sl_flusher_checkpoints(const sl_flusher *f);

/* on = 1: start no round (requests queue up) until called with 0, for
 * tests that need an append to stay not durable. sl_flusher_free still
 * runs its last round. @thread any */
void sl_flusher_hold(sl_flusher *f, int on);

/* Rounds and fdatasync calls so far (tests, metrics). @thread any */
uint64_t sl_flusher_rounds(const sl_flusher *f);
uint64_t sl_flusher_syncs(const sl_flusher *f);
/* Recent time of a round's fdatasyncs, in microseconds (a moving average,
 * 1/8 weight per round that synced something; 0 before the first). */
int64_t sl_flusher_sync_avg_us(const sl_flusher *f);

/* Histograms for /metrics: the fdatasync time of each round that synced
 * something (microseconds, upper bounds SL_FLUSHER_SYNC_BUCKETS_US) and
 * the group-commit size of each round (requests it covered, upper bounds
 * SL_FLUSHER_SIZE_BUCKETS). Counts per bucket (not cumulative), the last
 * bucket is +Inf. Written by the flusher thread only. @thread any */
#define SL_FLUSHER_NBUCKETS 12
#define SL_FLUSHER_SYNC_BUCKETS_US                                             \
    {                                                                          \
        50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 100000, 1000000, -1 \
    }
#define SL_FLUSHER_SIZE_BUCKETS                                                \
    {                                                                          \
        1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, -1                       \
    }
typedef struct sl_flusher_hist {
    uint64_t count[SL_FLUSHER_NBUCKETS];
    uint64_t n;
    uint64_t sum;
} sl_flusher_hist;
void sl_flusher_hists(const sl_flusher *f, sl_flusher_hist *sync_us,
                      sl_flusher_hist *size);

#endif
