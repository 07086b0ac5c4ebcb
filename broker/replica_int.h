/*
 * replica_int.h - what the files of the replica fetcher share (replica.c
 * has the essay): the fetcher's and the leader's per-partition state, and
 * the functions across files (replica.c: fetchers, their connections and
 * FETCH requests, the reassignment throttle, life cycle; replica_apply.c:
 * a FETCH answer appended, divergent tails cut; replica_leader.c: the
 * leader's side, high-water marks, durable acks, ISR upkeep).
 * @thread loop
 */
#ifndef SL_BROKER_REPLICA_INT_H
#define SL_BROKER_REPLICA_INT_H

#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "broker/broker.h"
#include "broker/ops.h"
#include "broker/peer_auth.h"
#include "broker/replica.h"
#include "cluster/meta.h"
#include "protocol/batch.h"

#define FETCH_WAIT_MS 250
#define FETCH_MAX_BYTES (8u * 1024 * 1024)
#define PART_MAX_BYTES (1u * 1024 * 1024)
#define RETRY_MS 200

typedef struct replica_ckw replica_ckw; /* replica_hwm.c */

typedef struct stall {
    struct stall *next;
    char topic[256];
    int32_t partition, leader_epoch;
} stall;

/* The leader's view of one partition it leads (or led): what each
 * follower reported in its latest fetch. */
#define LP_BUCKETS 1024
typedef struct lpart {
    struct lpart *next; /* hash chain */
    char *topic;
    int32_t partition;
    int leading; /* this node led it at the last evaluation */
    int32_t n;   /* followers seen */
    int32_t id[SL_META_MAX_RF];
    int64_t end[SL_META_MAX_RF], durable[SL_META_MAX_RF];
    /* ISR upkeep: the leader's end when that follower's previous fetch
     * came, and the last time a fetch showed it had all of that */
    int64_t prev_end[SL_META_MAX_RF], caught_ms[SL_META_MAX_RF];
    int64_t fetch_ms[SL_META_MAX_RF]; /* its latest fetch */
    int64_t lead_ms;                  /* when this node began to lead it */
    int change_pending; /* a PARTITION_CHANGE of ours is in flight */
    /* followers that change adds to the ISR: counted in the high-water
     * mark from the proposal on (Kafka's "maximal ISR"), while the image's
     * partition epoch is still join_epoch (not applied yet) */
    int32_t joining[SL_META_MAX_RF], njoining, join_epoch;
    struct sl_replicas *rs;
    /* the follower's side: its log was checked against the leader of
     * this epoch (-1: not yet); while checking (replica_apply.c), the
     * batches below verify_from are known to be the leader's */
    int32_t verified_epoch;
    int verifying;
    int32_t verify_epoch; /* the epoch being checked */
    int64_t verify_from;
    /* the leader refused our fetch in this epoch (stale metadata on one
     * side): not asked again before refused_until_ms or a new epoch */
    int32_t refused_epoch;
    int64_t refused_until_ms;
    /* the follower's side of a reassignment adding this node: bytes
     * copied for it so far and when the copy began (logged when done) */
    int64_t copied, copy_ms;
    /* the high-water mark checkpoint (replica_hwm.c): the mark this node
     * knows (-1: none) and the one the file holds */
    int64_t ckpt_hw, ckpt_written;
    /* the check in progress: where it started, what it compared, since
     * when (logged when done) */
    int64_t verify_start, verify_bytes, verify_ms;
    /* an observer's copy started again (sl_replicas_copy_restart) after
     * the fetch in flight was sent: its answer for this partition is
     * not applied */
    int stale_answer;
} lpart;

struct sl_replicas {
    sl_broker *b;
    int32_t self;
    const sl_meta *image;
    struct fetcher *fetchers;
    stall *stalls; /* diverged partitions, until their epoch changes */
    lpart *lparts[LP_BUCKETS];
    struct event *isr_ev; /* ISR upkeep tick */
    /* reassignment throttle (docs/cluster.md 10.3): bytes this node may
     * still fetch this second for partitions it copies to join them */
    int64_t thr_budget, thr_ms;
    struct event *thr_ev;
    int thr_armed;
    /* /metrics: bytes appended from FETCH answers, and those of them
     * copied for a reassignment that adds this node (replica_copying) */
    int64_t fetched_bytes, copied_bytes;
    /* the high-water mark checkpoint (replica_hwm.c): what the file held
     * at start (sorted; an entry's hwm is -1 once an lpart took it), the
     * tick, a write due at once, writes so far */
    struct sl_hwm_entry *ck_loaded;
    size_t ck_nloaded;
    struct event *ck_ev;
    struct replica_ckw *ck_writer; /* the writer thread (NULL: none) */
    int ck_urgent;
    int64_t ck_writes;
};

typedef struct dwait {
    struct dwait *next;
    struct fetcher *f;
    sl_ops_wait *w;
} dwait;

typedef struct fetcher {
    struct fetcher *next;
    sl_replicas *rs;
    int32_t leader;
    char addr[80];
    struct bufferevent *bev;
    struct event *retry_ev;
    int connected, inflight, dead;
    uint32_t corr;
    dwait *waits;        /* local fsyncs of the last response's appends */
    sl_peer_login login; /* with a cluster secret (peer_auth.c) */
} fetcher;

/* replica.c */
/* Does this node follow (topic, p) from `leader`? */
const sl_mi_part *replica_followed(const sl_replicas *rs, const sl_mi_topic *t,
                                   int32_t p, int32_t leader);
/* Is this node in the replica list of topic/p (not an observer of it,
 * observer.c)? */
int replica_placed(const sl_replicas *rs, const char *topic, int32_t p);
/* Whether this node copies mp for a reassignment that adds it (not in
 * the ISR yet); such fetches are throttled when reassign-throttle-bytes
 * is set. */
int replica_copying(const sl_replicas *rs, const sl_mi_part *mp);
int replica_throttled(const sl_replicas *rs, const sl_mi_part *mp);
/* One FETCH for every partition this node follows from f->leader. */
void replica_send_fetch(fetcher *f);

/* replica_apply.c */
/* Where the check of this node's log against a new leader starts
 * (replica_apply.c); *why names what set it (for the log). */
int64_t replica_verify_from(sl_replicas *rs, lpart *lp, const sl_mi_topic *t,
                            sl_part *part, const char **why);
int replica_is_stalled(sl_replicas *rs, const char *topic, int32_t p,
                       int32_t epoch);
/* One FETCH answer from f->leader: append what it brought. */
void replica_on_response(fetcher *f, const uint8_t *frame, size_t flen);

/* replica_leader.c */
lpart *replica_lp_get(sl_replicas *rs, const char *topic, int32_t p,
                      int create);
/* The image changed: every replicated partition here is evaluated. */
void replica_leaders_update(sl_replicas *rs);
/* ISR upkeep tick (an EV_PERSIST event). */
void replica_isr_tick(evutil_socket_t fd, short what, void *arg);

/* replica_hwm.c */
/* Read DATA/replication-offset-checkpoint (a damaged file: a WARN). */
void replica_hwm_load(sl_replicas *rs);
/* A new lpart takes its checkpointed mark, if the file had one. */
void replica_hwm_attach(sl_replicas *rs, lpart *lp);
/* The mark to start a check from (-1: none, or not usable for t). */
int64_t replica_hwm_checkpointed(sl_replicas *rs, lpart *lp,
                                 const sl_mi_topic *t);
/* The partition's records here were deleted (moved off this node). */
void replica_hwm_forget(sl_replicas *rs, lpart *lp);
/* A topic was deleted: its marks go, the file is written at once. */
void replica_hwm_topic_deleted(sl_replicas *rs, const char *topic);
/* Write the file if a mark moved (or force); at a clean stop with force.
 * A forced or urgent write is on disk when this returns; a periodic one
 * is handed to the writer thread. */
sl_err replica_hwm_flush(sl_replicas *rs, int force);
/* Stop the writer thread (after the last flush). */
void replica_hwm_stop(sl_replicas *rs);
/* The periodic write (an EV_PERSIST event, replica-hwm-checkpoint-ms). */
void replica_hwm_tick(evutil_socket_t fd, short what, void *arg);

#endif
