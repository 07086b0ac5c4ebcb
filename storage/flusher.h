/*
 * flusher.h - group commit. CONTRACT shared with broker/ and groups/.
 *
 * One thread. Each round it fsyncs every partition that asked since the last
 * round (sl_part_sync: one fdatasync per dirty segment, covering every
 * append that arrived before the round began), then calls the durable
 * notify (if set, see sl_flusher_set_durable_notify) so the loop can answer
 * produces at once, then runs the registered hooks (groups/ commits its
 * batched SQLite transaction there), then calls notify() (compare
 * sl_part_durable_offset with the offsets the loop waits for). A produce
 * thus waits for one fdatasync, not for the hooks' own fsyncs too.
 * A round starts as soon as there is work; appends arriving during a round
 * are covered by the next one. So durable throughput grows with load.
 */
#ifndef SL_FLUSHER_H
#define SL_FLUSHER_H

#include <stdint.h>

#include "protocol/err.h"
#include "storage/partition.h"

typedef struct sl_flusher sl_flusher;

/* notify(arg) runs on the flusher thread after every round, after the
 * hooks (e.g. it calls event_active on a libevent event; evthread must be
 * enabled). NULL = none. */
sl_err sl_flusher_new(void (*notify)(void *arg), void *arg, sl_flusher **out);
/* fn(arg) runs on the flusher thread in every round that synced at least
 * one partition, right after the fdatasyncs and durable offsets were
 * published and BEFORE the hooks: durability of the logs only, nothing a
 * hook commits (group acks must wait for their hook's own signal or for
 * notify). Replaces a previous one; NULL removes it. @thread any */
void sl_flusher_set_durable_notify(sl_flusher *f, void (*fn)(void *arg),
                                   void *arg);
/* Run a last round, stop and join the thread, free. Accepts NULL. */
void sl_flusher_free(sl_flusher *f);

/* p has appends to cover (policy ALWAYS: next round; INTERVAL: a round no
 * later than flush_interval_ms; NEVER: ignored). @thread loop */
void sl_flusher_request(sl_flusher *f, sl_part *p);
/* p is about to be freed: drop it from the pending set and wait for a round
 * in progress to finish. @thread loop */
void sl_flusher_forget(sl_flusher *f, sl_part *p);
/* Run a round soon even without dirty partitions (for hooks). @thread any */
void sl_flusher_wake(sl_flusher *f);

/* fn(arg) runs on the flusher thread in every round, after the fsyncs and
 * the durable notify, before notify. A hook with nothing to do should
 * return at once (it runs every round). */
void sl_flusher_add_hook(sl_flusher *f, void (*fn)(void *arg), void *arg);

/* Rounds and fdatasync calls so far (tests, metrics). @thread any */
uint64_t sl_flusher_rounds(const sl_flusher *f);
uint64_t sl_flusher_syncs(const sl_flusher *f);

#endif
