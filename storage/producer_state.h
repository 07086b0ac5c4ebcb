/*
 * producer_state.h - the idempotent producer's memory of one partition
 * (docs/cluster.md section 4).
 *
 * Per producer id: its epoch and the last SL_PSTATE_WINDOW batches'
 * (first sequence, last sequence, base offset), as Kafka keeps them
 * (ProducerStateManager). A leader checks every batch whose producer_id
 * is >= 0 against it before appending (sl_pstate_check) and records it
 * after (sl_pstate_record); a follower only records, so a new leader knows
 * what the old one stored. Batches with producer_id -1 never reach it.
 *
 * The state is derived data: every batch header holds producer id, epoch
 * and base sequence, so it can always be rebuilt from the log. To keep
 * that scan short the partition writes a snapshot at each segment roll
 * (NNNNNNNNNNNNNNNNNNNN.producers, named by the log end it covers) and
 * rebuilds from the newest snapshot plus the batches after it, at most the
 * active segment (storage/producer_state.c explains when and why lazily).
 *
 * Not thread-safe: the partition's loop thread only.
 */
#ifndef SL_PRODUCER_STATE_H
#define SL_PRODUCER_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/batch.h"
#include "protocol/err.h"

/* Batches remembered per producer: libsluice's default max.in.flight
 * (64 requests, at most one batch of a partition each), so every batch a
 * client resends after a lost connection or a failover is answered with
 * its offsets. Kafka keeps 5 and caps its clients at 5 requests in
 * flight; a resend older than the window is SL_ERR_DUPLICATE_SEQUENCE. */
#define SL_PSTATE_WINDOW 64
/* Producers remembered per partition (about 1 KiB each); beyond, the one
 * idle longest is forgotten: bounded memory whatever ids clients send. */
#define SL_PSTATE_MAX_PRODUCERS 4096
/* A producer with no batch for this long is forgotten at the next
 * snapshot (Kafka's producer.id.expiration.ms, 1 day there; here the
 * default retention, 7 days). */
#define SL_PSTATE_EXPIRE_MS (7ll * 24 * 3600 * 1000)
/* File name suffix of a snapshot. */
#define SL_PSTATE_EXT ".producers"

typedef struct sl_pstate sl_pstate;

sl_pstate *sl_pstate_new(void);
void sl_pstate_free(sl_pstate *ps); /* accepts NULL */
/* Producers remembered. */
size_t sl_pstate_count(const sl_pstate *ps);

/*
 * Check batch h (producer_id >= 0) before a leader appends it:
 *  - SL_OK, *dup = 0: append it (a next sequence, or an unknown producer
 *    or a new epoch starting at sequence 0);
 *  - SL_OK, *dup = 1: the same sequence range as one of the last
 *    SL_PSTATE_WINDOW batches: a retry. Append nothing; *base is the
 *    original base offset and *next the offset after it;
 *  - SL_ERR_DUPLICATE_SEQUENCE: a range older than the window that this
 *    producer already wrote in this epoch; its offset is no longer known.
 *    *next = the oldest remembered base offset (it lies below);
 *  - SL_ERR_OUT_OF_ORDER_SEQUENCE: not last + 1 (a gap, or a new epoch
 *    not starting at 0);
 *  - SL_ERR_PRODUCER_FENCED: an epoch older than the producer's;
 *  - SL_ERR_UNKNOWN_PRODUCER_ID: a producer ps does not know, at a
 *    sequence other than 0: its state was lost (a new leader that never
 *    got its batches, state expired or evicted). The client moves to the
 *    next epoch and restarts at 0 (Kafka's KIP-360), rather than the
 *    partition taking any sequence as a first one and so hiding a gap;
 *  - SL_ERR_MALFORMED: producer_epoch or base_sequence negative.
 */
sl_err sl_pstate_check(const sl_pstate *ps, const sl_batch_hdr *h, int *dup,
                       int64_t *base, int64_t *next);
/* Remember batch h (its base_offset assigned) appended at now_ms. A new
 * epoch replaces the producer's window. Never fails: without memory the
 * producer is forgotten (its next batch is SL_ERR_UNKNOWN_PRODUCER_ID). */
void sl_pstate_record(sl_pstate *ps, const sl_batch_hdr *h, int64_t now_ms);
/* A producer ps does not know is expected to continue at h's sequence in
 * h's epoch (sl_part_idem_refused); a known one is left as it is. */
void sl_pstate_expect(sl_pstate *ps, const sl_batch_hdr *h, int64_t now_ms);

/*
 * Snapshot file of the state at log end `offset` in dir, written to a
 * .tmp and renamed. durable: with the durable recipe (fsync the file
 * before the rename, then the directory: it survives a power loss);
 * else not fsynced (a snapshot that a crash damaged fails its CRC and an
 * older one, or the log, is used). Producers idle for
 * SL_PSTATE_EXPIRE_MS at now_ms are dropped first.
 */
sl_err sl_pstate_write(sl_pstate *ps, const char *dir, int64_t offset,
                       int64_t now_ms, int durable);
/* Read the snapshot dir/<offset>.producers into ps (emptied first).
 * SL_OK, SL_ERR_CORRUPT (bad CRC, bad fields), SL_ESYS(errno). */
sl_err sl_pstate_read(sl_pstate *ps, const char *dir, int64_t offset);

/* Epoch and last sequence of producer pid; SL_ERR_NOT_FOUND. */
sl_err sl_pstate_get(const sl_pstate *ps, int64_t pid, int16_t *epoch,
                     int32_t *last_seq);

#endif
