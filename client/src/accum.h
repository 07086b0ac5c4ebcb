/*
 * accum.h - the producer's batching accumulator: one open record batch per
 * (topic, partition); a batch is ready when it reaches batch.size bytes or
 * batch.records records (it moves to the ready list at once) or when it is
 * linger.ms old. Pure data structure (no I/O), unit-tested in
 * tests/unit/test_client_accum.c. Not thread-safe (the producer's mutex).
 */
#ifndef SL_CLIENT_ACCUM_H
#define SL_CLIENT_ACCUM_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/batch.h"

typedef struct sl_pbatch {
    struct sl_pbatch *next, *prev; /* age list, then ready/request lists */
    int tidx;
    int32_t partition;
    sl_batch_builder bb;
    uint32_t n, cap;    /* records, capacity of the arrays below */
    void **opaque;      /* per record: msg_opaque */
    int64_t *ts;        /* per record: timestamp */
    int64_t created_ms; /* monotonic */
    uint64_t order;     /* creation order in its accumulator */
    const uint8_t *enc; /* after sl_accum_finish: the encoded batch */
    size_t enc_len;
    int64_t rep_base;      /* producer: delivery result, base offset */
    int rep_err;           /* producer: delivery result, sl_err */
    const char *rep_topic; /* producer: topic name (stable) */
    int last_err;          /* producer: why the last attempt failed */
    uint32_t attempts;     /* producer: requests that carried it */
    size_t pop_end;        /* its buffer is faulted in up to here (accum.c) */
    size_t touched;        /* its buffer was written up to here (resident) */
    uint64_t stamped;      /* when its producer fields were stamped (the
                              accumulator's stamps count then) */
} sl_pbatch;

typedef struct sl_accum_topic {
    char *name;
    int32_t nparts;
    sl_pbatch **open; /* nparts slots */
    int32_t *seq;     /* idempotence: next sequence per partition */
    /* Per partition, for the producer (producer.c): its batches in flight,
     * and the connection, producer id and epoch they all share (a batch
     * is sent only when it matches them, sl_pr_blocked); the drain that
     * last put a batch of it into the request being built. Lookups instead
     * of scans: one producer spreading records over 10,000 partitions had
     * 640,000 batches in flight to compare each new one against. */
    struct sl_accum_flight *flight;
    int32_t sticky; /* partition for null keys */
} sl_accum_topic;

typedef struct sl_accum_flight {
    int32_t n;        /* batches in flight */
    int16_t epoch;    /* theirs */
    int64_t pid;      /* theirs */
    const void *conn; /* theirs */
    uint64_t drain;   /* the drain that last took a batch of it */
} sl_accum_flight;

typedef struct sl_accum {
    size_t batch_size;
    uint32_t batch_records;
    int linger_ms;
    int codec;
    sl_accum_topic *topics;
    size_t ntopics, tcap;
    sl_pbatch *age_head, *age_tail;     /* open batches, oldest first */
    sl_pbatch *ready_head, *ready_tail; /* full batches, FIFO */
    size_t records;                     /* in open + ready batches */
    sl_pbatch *spare;                   /* recycled batches */
    uint32_t nspare;                    /* in spare (the rest: the pool) */
    uint32_t rr;                        /* sticky round-robin counter */
    uint64_t created;                   /* batches made (their order) */
    int null_rr; /* null keys: next partition per record, not per batch */
    /* The size and record count of the last batch that closed full: a new
     * batch (not a recycled one) reserves that much at once instead of
     * growing from 1 KiB by doubling (each step a realloc copy, and freed
     * steps of 64 KiB and more trim the heap, to be faulted in again).
     * Zero until a batch filled (then the process's last full batch is
     * the hint, accum.c), so a process whose producers make only small
     * batches, over many partitions, reserves nothing ahead. */
    size_t full_bytes;
    uint32_t full_records;
    /* Idempotent producer (docs/cluster.md 4): with pid >= 0, sl_accum_take
     * stamps pid, epoch and the partition's next sequence into each batch
     * before it is encoded, once: a batch taken again (ungot, or resent
     * after a lost connection) keeps its bytes, so the broker recognises
     * the resend. -1 = not idempotent (the producer ids stay -1). */
    int64_t pid;
    int16_t epoch;
    uint64_t stamps; /* batches stamped so far (sl_pbatch.stamped) */
    /* Buffers of batches whose result is known but not yet delivered
     * (sl_accum_done): the next batch takes one before it allocates. */
    sl_wb bank[2];
    size_t bank_touched[2]; /* each resident up to there */
    uint32_t nbank;
} sl_accum;

void sl_accum_init(sl_accum *a, size_t batch_size, uint32_t batch_records,
                   int linger_ms, int codec);
void sl_accum_fini(sl_accum *a);
/* Index of topic, or -1. */
int sl_accum_find(const sl_accum *a, const char *topic);
/* Add topic (or update its partition count: batches of partitions that
 * disappear stay queued). Returns the index or -1 (out of memory). */
int sl_accum_add_topic(sl_accum *a, const char *topic, int32_t nparts);
/* The partition for key (FNV-1a), or the sticky partition for a NULL key
 * (it moves to the next partition when its batch leaves; with null_rr,
 * after every record). */
int32_t sl_accum_pick(sl_accum *a, int tidx, const void *key, size_t klen);
/*
 * Append a record (copied) to the open batch of (tidx, partition).
 * SL_OK, SL_ERR_NOMEM, SL_ERR_TOO_LARGE (a record that alone exceeds the
 * max batch), SL_ERR_UNKNOWN_PARTITION. *full = 1 when the batch went to
 * the ready list.
 */
sl_err sl_accum_add(sl_accum *a, int tidx, int32_t partition, int64_t ts,
                    const void *key, size_t klen, const void *value,
                    size_t vlen, const sl_header *hdrs, size_t nhdrs,
                    void *opaque, int64_t now_ms, int *full);
/* Detach the next batch to send: a full one, else the oldest open one if
 * all != 0 or its linger expired at now_ms. NULL if none. The batch is
 * finished (enc/enc_len set, compressed); on a finish error *err is set and
 * the batch is still returned (its records must be failed). */
sl_pbatch *sl_accum_take(sl_accum *a, int64_t now_ms, int all, sl_err *err);
/* Put a taken batch back at the front (it will be taken again first). */
void sl_accum_unget(sl_accum *a, sl_pbatch *b);
/* Monotonic ms when the oldest open batch is due; INT64_MAX if none. */
int64_t sl_accum_next_due(const sl_accum *a);
/* A new producer id or epoch: every partition's sequence restarts at 0
 * (batches already encoded keep theirs). */
void sl_accum_set_producer(sl_accum *a, int64_t pid, int16_t epoch);
/* INIT_PRODUCER_ID on a connection of its own (idem.c): a producer id,
 * or the next epoch of acc's, set with sl_accum_set_producer. A broker
 * without the api sets *off (and pid -1). */
struct sl_cl_cfg;
sl_err sl_cl_idem_init(const struct sl_cl_cfg *cfg, sl_accum *acc, int *off);
/* Return a sent batch for reuse: to a's spares, or past a few of them to
 * the process's pool, where any accumulator's new batch takes it (accum.c,
 * "Recycling"). */
void sl_accum_release(sl_accum *a, sl_pbatch *b);
/* b's result is known (its report waits for poll or flush, which
 * releases it): its buffer, no longer needed, goes to the next batch
 * (accum.c, "Recycling"); b keeps what the report needs. */
void sl_accum_done(sl_accum *a, sl_pbatch *b);
/* The pool's batches and bytes now (tests). */
void sl_accum_pool_stats(size_t *batches, size_t *bytes);

#endif
