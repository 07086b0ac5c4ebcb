/*
 * producer_int.h - the producer's state, shared by producer.c (batching,
 * sending, replies, the public calls) and producer_retry.c (delivery
 * reports, retries, the producer id and the KIP-360 recovery). Every
 * function here runs with the producer's mutex held.
 */
#ifndef SL_CLIENT_PRODUCER_INT_H
#define SL_CLIENT_PRODUCER_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "client/src/accum.h"
#include "client/src/conn.h"
#include "client/src/internal.h"
#include "client/src/route.h"

typedef struct inflight {
    struct inflight *next;
    uint32_t corr;
    sl_cl_conn *conn;   /* corr ids are per connection */
    int64_t sent_ms;    /* for request.timeout.ms */
    sl_pbatch *batches; /* linked by next */
    size_t bytes;       /* the memory their batches keep resident:
                           encoded bytes, or a buffer under a page
                           whole (g_inflight_bytes) */
} inflight;

/* Delivery reports are kept per batch (sl_pbatch.rep_base / rep_err,
 * linked by next) and expanded to one callback per record in deliver(). */

typedef struct ptopic_meta {
    int confirmed;    /* partition count from metadata (not provisional) */
    int64_t retry_ms; /* provisional: ask the broker again after this */
} ptopic_meta;

struct sluice_producer {
    pthread_mutex_t mu;
    sl_cl_cfg cfg;
    sl_cl_router rt; /* the connections and the leaders (route.c) */
    sl_accum acc;
    ptopic_meta *meta; /* parallel to acc.topics */
    size_t meta_cap;
    inflight *if_head, *if_tail;
    size_t n_inflight;
    size_t outstanding;                 /* records without a delivered report */
    sl_pbatch *rep_head, *rep_tail;     /* batches with a result to deliver */
    sl_pbatch *retry_head, *retry_tail; /* batches to resend, in order */
    int64_t retry_at;                   /* when to route them again */
    size_t nrep;                        /* records in them */
    sl_arena arena;
    int pid_reset;   /* a stamped batch failed: ask for a new epoch */
    int pid_off;     /* the broker has no INIT_PRODUCER_ID */
    struct unk *unk; /* partitions answered UNKNOWN_PRODUCER_ID */
    size_t nunk, unkcap;
    int64_t wall_off;     /* wall clock - monotonic clock, ms */
    int64_t wall_sync_ms; /* monotonic time wall_off was measured */
    uint64_t drains;      /* requests built (sl_accum_flight.drain) */
};

/* A partition whose leader answered UNKNOWN_PRODUCER_ID (KIP-360): held
 * until no batch of it is in flight and the producer has its next epoch;
 * then released: its batches stamped before (stamped < mark) are
 * renumbered from 0 in the new epoch as they are sent. */
struct unk {
    int tidx;
    int32_t partition;
    int hold;
    int64_t pid; /* the stamp the leader did not know */
    int16_t epoch;
    uint64_t mark;
};

/* producer_retry.c (each described at its definition) */
void sl_pr_report_batch(sluice_producer *p, sl_pbatch *b, int64_t base,
                        sl_err err);
int sl_pr_deliver(sluice_producer *p);
int sl_pr_unk_restamp_due(const sluice_producer *p, const sl_pbatch *b);
void sl_pr_restamp(sluice_producer *p, sl_pbatch *b);
void sl_pr_retry_append(sluice_producer *p, sl_pbatch *b);
void sl_pr_retry_or_report(sluice_producer *p, sl_pbatch *b, sl_err err);
int sl_pr_blocked(sluice_producer *p, const sl_pbatch *b, sl_cl_conn *to);
int sl_pr_pid_needed(const sluice_producer *p);

#endif
