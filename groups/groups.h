/*
 * groups.h - consumer groups over partition logs: stream groups (Kafka
 * classic: assignment, committed offsets, lag) and queue groups (competing
 * consumers with per-record state: acquire, ack, release/nack, reject,
 * touch, lock expiry, delivery limits, dead-letter topics, TTL, delayed
 * delivery, key-ordered mode). docs/groups.md describes the semantics; the
 * state machine and persistence rules are at the top of groups/queue.c.
 *
 * Layering: depends on storage/ and SQLite only. Whatever it needs from the
 * broker (partitions by name, appends to dead-letter topics) comes in
 * through sl_groups_env at open.
 *
 * Threads: everything is @thread loop, except sl_groups_flush_hook (the
 * flusher's hook thread runs it after every fsync round, possibly once for
 * several rounds, never concurrently with itself) and sl_groups_stats (any).
 *
 * Durability: mutations (acks, releases, offset commits, ...) are staged
 * and written to data/groups.db by ONE SQLite transaction per flusher
 * round. A caller that must answer "done" only once durable registers a
 * waiter with sl_groups_wait() after the mutation; it runs from
 * sl_groups_on_flushed() after the round that committed it.
 */
#ifndef SL_GROUPS_H
#define SL_GROUPS_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/batch.h"
#include "protocol/err.h"
#include "storage/flusher.h"
#include "storage/partition.h"

typedef struct sl_groups sl_groups;

/* What the broker gives the groups layer. Every function is called on the
 * loop thread. */
typedef struct sl_groups_env {
    void *ctx;
    /* Partition `partition` of topic, or NULL if unknown. Borrowed: valid
     * until the broker calls sl_groups_forget_topic. */
    sl_part *(*get_part)(void *ctx, const char *topic, int32_t partition);
    /* Number of partitions of topic; -1 if the topic does not exist. */
    int32_t (*partitions)(void *ctx, const char *topic);
    /* Append one batch to topic/partition, creating the topic (with one
     * partition) if missing, and ask the flusher to cover it. The batch
     * buffer may be modified (base offset). On SL_OK *base_out is the
     * assigned offset and *part_out the partition (to check durability).
     * In a cluster, when another node leads the partition, the batch may
     * be forwarded there instead: SL_OK with *part_out NULL and *base_out
     * a token (>0, unique), and sl_groups_dlq_forwarded(g, token, rc)
     * later, once the leader answered (acks=durable). */
    sl_err (*append)(void *ctx, const char *topic, int32_t partition,
                     uint8_t *batch, size_t len, int64_t *base_out,
                     sl_part **part_out);
    /* Wall clock in ms; NULL = CLOCK_REALTIME. Tests inject time here. */
    int64_t (*now_ms)(void *ctx);
    /* Optional: ask the loop to call sl_groups_stage soon (at the end of
     * the current loop iteration), so that a burst of requests is staged
     * once. NULL = stage at the first mutation. */
    void (*request_stage)(void *ctx);
    /* Optional: the topic's message TTL in ms (-1 = none). Asked when a
     * group is created and about once a second afterwards. */
    int64_t (*topic_ttl_ms)(void *ctx, const char *topic);
    /* Optional: a deadline at at_ms (the now_ms clock) appeared that is
     * earlier than the next sl_groups_tick the groups asked for (a lock
     * expiry, a delayed or backed-off record coming due, a stream member's
     * session timeout, a deferred commit): call sl_groups_tick by then.
     * NULL = the caller ticks often enough on its own. */
    void (*wake_at)(void *ctx, int64_t at_ms);
    /* Optional (cluster, broker/group_state.c): does this node coordinate
     * queue group `group`? 0: creating it here is refused with
     * SL_ERR_NOT_COORDINATOR. NULL = yes (a single node). */
    int (*coordinates)(void *ctx, const char *group);
    /* Optional (cluster): every staged buffer of state ops (walk it with
     * sl_groups_ops_next), covering the mutations up to seq, is handed
     * here before it is committed to groups.db. The broker appends it to
     * the replicated state log and calls sl_groups_replicated(g, seq, rc)
     * once, later, in seq order; waiters (sl_groups_wait) of those
     * mutations are answered only after both the groups.db commit and
     * that call. NULL = nothing is replicated. */
    void (*replicate)(void *ctx, const uint8_t *ops, size_t len, uint64_t seq);
    /* Optional (cluster, broker/observer.c): where a group created at
     * since_ms (the now_ms clock) that starts at the log end
     * (start=latest) starts on topic/partition, for a log here that may
     * be a copy behind its leader's; -1 = not known yet: that partition
     * of the group hands out nothing, and is asked again at each
     * delivery pass. NULL = the log end here. */
    int64_t (*latest)(void *ctx, const char *topic, int32_t partition,
                      int64_t since_ms);
    /* Optional (cluster, broker/observer.c): a queue group is about to
     * read topic/partition from `offset` (-1: the log start, a new group
     * that starts at the earliest record), before it looks at the local
     * log's start: a log here that is a copy starting later (an
     * observer's starts at what the groups here needed so far) is made
     * to start there first. NULL = nothing to do. */
    void (*need_from)(void *ctx, const char *topic, int32_t partition,
                      int64_t offset);
} sl_groups_env;

/*
 * Open (creating) <data_dir>/groups.db (WAL) and load all group state.
 * env is copied. flusher may be NULL (then call sl_groups_commit_now to
 * persist, e.g. in unit tests); otherwise the caller registers
 * sl_groups_flush_hook (or a wrapper that calls it) with
 * sl_flusher_add_hook, and sl_flusher_wake is used to ask for rounds.
 * *out written on success. @thread loop
 */
sl_err sl_groups_open(const char *data_dir, const sl_groups_env *env,
                      sl_flusher *flusher, sl_groups **out);
/* Free everything. Consumers are not freed: they become orphans (calls on
 * them return SL_ERR_UNKNOWN_GROUP or do nothing) that their owners free
 * with sl_qconsumer_free as usual. Does not commit:
 * call sl_groups_commit_now first, and make sure the flusher no longer
 * runs the hook with g. Accepts NULL. @thread loop */
void sl_groups_free(sl_groups *g);

/* Records became durable (the flusher's durable notify): hand them to
 * waiting queue consumers and archive dead-letter copies now durable.
 * Cheap when nothing changed. @thread loop */
void sl_groups_on_durable(sl_groups *g);

/* Lazy commits: while nobody waits for a commit (sl_groups_wait), stage
 * what changed at most once per ms (0 = after every mutation burst, the
 * default). Waiters always get the next round. sl_groups_tick stages what
 * came due. */
void sl_groups_set_commit_interval(sl_groups *g, int64_t ms);

/* Early dispatch (on = 1): hand records of flush=always topics to queue
 * consumers as soon as they are appended, before their fdatasync. Acks,
 * releases and the window that refer to such records are committed only
 * after the round that makes them durable (its waiters wait for it too).
 * Default 0: only durable records are handed out. @thread loop */
void sl_groups_set_early(sl_groups *g, int on);

/* Draining (on = 1, a cluster node's controlled shutdown,
 * broker/cluster_ops.c): queue groups hand out no more records, as if
 * every queue were empty; settlements (ack, nack, reject, touch) are
 * served as ever, so what consumers hold can settle before the groups
 * move to another node. @thread loop */
void sl_groups_set_draining(sl_groups *g, int on);
/* Records acquired and not settled yet, over every queue group loaded
 * here (what a drain waits for). @thread loop */
int64_t sl_groups_in_flight(sl_groups *g);

/* Stage what changed for the next flusher round (after request_stage).
 * @thread loop */
void sl_groups_stage(sl_groups *g);
/* The flusher hook: commits everything staged in one transaction.
 * @thread flusher */
void sl_groups_flush_hook(void *g);
/* Stage and commit synchronously on the calling thread, then complete
 * waiters (no flusher, tests, shutdown). Safe while the flusher runs the
 * hook (transactions are serialized). @thread loop */
sl_err sl_groups_commit_now(sl_groups *g);
/* After every flusher round (from the broker's notify event): completes
 * waiters whose mutations committed, archives dead-lettered records whose
 * DLQ append became durable, delivers newly durable records, stages what
 * changed meanwhile. @thread loop */
void sl_groups_on_flushed(sl_groups *g);
/* Records were appended to topic/partition: wake waiting consumers.
 * @thread loop */
void sl_groups_on_append(sl_groups *g, const char *topic, int32_t partition);
/* Expire locks, deliver records whose due time came. Returns the ms until
 * the next deadline it knows of (capped at 1000). @thread loop */
int64_t sl_groups_tick(sl_groups *g);
/* fn for every queue group (group, topic, its dead-letter topic or NULL
 * when it has none). */
/*
 * The dead-letter topic of a queue over `topic` when none is configured:
 * "<topic>.DLQ" (ActiveMQ's and RabbitMQ users' convention), or, when that
 * would exceed the 249-character topic name limit (topics of 246-249
 * characters), the first 236 characters, "-", 8 hex digits of a hash of
 * the whole name, and ".DLQ" (249 characters, distinct per topic). Writes
 * buf (len >= 250).
 */
#define SL_GROUPS_TOPIC_MAX 249 /* = SL_TOPIC_NAME_MAX (broker/ops.h) */
void sl_groups_dlq_name(const char *topic, char *buf, size_t len);

void sl_groups_qgroup_foreach(sl_groups *g,
                              void (*fn)(void *arg, const char *group,
                                         const char *topic,
                                         const char *dlq_topic),
                              void *arg);
/* The topic is being deleted: drop every queue/stream state for it. */
void sl_groups_forget_topic(sl_groups *g, const char *topic);

/* ---- replication of group state (cluster, docs/cluster.md 6) ---------- */

/* One op of a staged buffer (env.replicate). kind: 'q' a queue group's
 * window, settings or deletion, 's' a stream group's offsets or
 * deletion, 'm' a stream group's generation and members (the state log
 * only, not groups.db), 't' a topic's deletion (group empty). partition: of a
 * window or an offset, else -1. p/len: the op's bytes, a valid buffer alone. */
typedef struct sl_gop {
    int kind;
    const char *group;
    uint16_t group_len;
    const char *topic;
    uint16_t topic_len;
    int32_t partition;
    const uint8_t *p;
    size_t len;
} sl_gop;
/* The op at *off of ops[0..len): 1 = *op filled and *off moved past it,
 * 0 = the end, -1 = malformed. @thread any */
int sl_groups_ops_next(const uint8_t *ops, size_t len, size_t *off, sl_gop *op);
/* A dead-letter batch env.append forwarded (token) was answered: SL_OK =
 * on every in-sync replica of the DLQ partition, so the record is
 * archived; else it is appended again later. @thread loop */
void sl_groups_dlq_forwarded(sl_groups *g, int64_t token, sl_err rc);
/* The replication of everything staged up to seq finished: rc SL_OK, or
 * the error the waiters of those mutations are answered with (their
 * state is staged again in full with the next round). @thread loop */
void sl_groups_replicated(sl_groups *g, uint64_t seq, sl_err rc);
/* Answer every waiter (sl_groups_wait) now with rc (not SL_OK): this node
 * cannot tell them their mutations are done, e.g. its coordinator lease
 * lapsed (broker/group_state.c). The mutations stay staged; a later
 * commit covers them without telling anyone. @thread loop */
void sl_groups_fail_waiters(sl_groups *g, sl_err rc);
/* Another node coordinates the queue and stream groups for which
 * mine(arg, name) is 1 now: what changed in them is staged
 * (env.replicate refuses it and their waiters fail), then they are
 * dropped from memory (queue consumers become orphans, see
 * sl_groups_free; stream members are forgotten). groups.db keeps their
 * rows until sl_groups_reload replaces them. @thread loop */
void sl_groups_unload(sl_groups *g, int (*mine)(void *arg, const char *group),
                      void *arg);
/* This node coordinates the groups for which mine(arg, name) is 1 now
 * (unload them first): their rows in groups.db are replaced, in one
 * transaction, by `ops` (queue and stream ops, oldest first, read back
 * from the replicated state log), and loaded. State of topics that do
 * not exist is skipped. Locks are not in the state: every record not
 * done is available, attempts kept; stream members rejoin.
 * @thread loop (blocks for one commit) */
sl_err sl_groups_reload(sl_groups *g, int (*mine)(void *arg, const char *group),
                        void *arg, const uint8_t *ops, size_t len);

/* Run cb(arg, SL_OK) once every mutation made so far is committed (or
 * cb(arg, err) if the commit failed; SL_ERR_SHUTTING_DOWN at free). May run
 * at once when nothing is pending. @thread loop */
void sl_groups_wait(sl_groups *g, void (*cb)(void *arg, sl_err rc), void *arg);

typedef struct sl_groups_stats {
    uint64_t txns;     /* SQLite transactions committed */
    uint64_t acks;     /* records acked */
    uint64_t releases; /* nacks + releases */
    uint64_t rejects;
    uint64_t lock_expiries;
    uint64_t dlq_appends; /* records appended to dead-letter topics */
    uint64_t expired;     /* records dropped or dead-lettered for TTL */
    uint64_t deliveries;
    uint64_t commits; /* stream offset commits */
    int commit_err;   /* last commit error (sl_err), 0 if none */
} sl_groups_stats;
/* @thread any (counters read without a lock; approximate while running) */
void sl_groups_stats_get(const sl_groups *g, sl_groups_stats *out);

/* How long each groups.db commit took (BEGIN to COMMIT of one round, in
 * microseconds): count[i] rounds took at most bounds[i] (-1 = +Inf).
 * Kept with relaxed atomics by the commit thread. @thread any */
#define SL_GROUPS_HIST_NB 12
#define SL_GROUPS_COMMIT_BUCKETS_US                                            \
    {                                                                          \
        100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,  \
            -1                                                                 \
    }
typedef struct sl_groups_hist {
    uint64_t count[SL_GROUPS_HIST_NB];
    uint64_t sum_us;
    uint64_t n;
} sl_groups_hist;
void sl_groups_commit_hist(const sl_groups *g, sl_groups_hist *out);

/* ---- queue groups ---------------------------------------------------- */

/* Per (group, topic) settings. A negative / zero value means "default"
 * where noted; sl_qgroup_cfg_defaults fills the documented defaults. */
typedef struct sl_qgroup_cfg {
    int32_t max_deliveries; /* attempts before dead-lettering [10] */
    int64_t lock_ms;        /* acquisition lock [30000] */
    int64_t backoff_ms;     /* first nack delay with the group policy [0] */
    int64_t backoff_max_ms; /* cap of the exponential backoff [60000] */
    int32_t backoff_factor; /* multiplier per failure [2] */
    int64_t ttl_ms;         /* message TTL from its timestamp; -1 = none */
    int dlq_expired;        /* 1 = expired records go to the DLQ [0] */
    int key_ordered;        /* 1 = per-key order, one in flight per key */
    int32_t max_inflight;   /* records in flight per partition [10000] */
    int32_t max_delayed;    /* extra window span for records waiting for
                               their not-before time [100000] */
    int start_latest;       /* a new group starts at the log end [0] */
    int32_t max_priority;   /* 0 = log order; else the highest priority
                               (`priority` header, clamped): available
                               records go out highest first [0] */
    char dlq_topic[250];    /* "" = "<topic>.DLQ"; "-" = none (archive) */
} sl_qgroup_cfg;

/* The documented defaults. @thread any */
void sl_qgroup_cfg_defaults(sl_qgroup_cfg *cfg);
/* The settings of g's queue groups created without their own (the
 * broker's queue-* settings): the documented ones until set (copied).
 * Groups loaded from groups.db keep their stored settings. @thread loop */
void sl_groups_qgroup_defaults(const sl_groups *g, sl_qgroup_cfg *cfg);
void sl_groups_set_qgroup_defaults(sl_groups *g, const sl_qgroup_cfg *cfg);
/* Set one setting by name ("max-deliveries", "lock-ms", "backoff-ms",
 * "backoff-max-ms", "backoff-factor", "ttl-ms", "dlq-expired",
 * "key-ordered", "max-inflight", "start", "dlq-topic", "max-priority").
 * On error writes
 * a message naming key and value into errstr. */
sl_err sl_qgroup_cfg_set(sl_qgroup_cfg *cfg, const char *key, const char *value,
                         char *errstr, size_t errlen);

/*
 * Create or reconfigure queue group `group` over `topic`. cfg NULL = keep
 * (or defaults when new). The topic must exist (SL_ERR_UNKNOWN_TOPIC).
 * Persisted with the next round. @thread loop
 */
sl_err sl_qgroup_declare(sl_groups *g, const char *group, const char *topic,
                         const sl_qgroup_cfg *cfg);
/* The settings as text, one "key=value" line each (the keys
 * sl_qgroup_cfg_set accepts). */
void sl_qgroup_cfg_text(const sl_qgroup_cfg *cfg, char *buf, size_t len);
/* The settings of queue group (group, topic): SL_OK or
 * SL_ERR_UNKNOWN_GROUP. */
sl_err sl_qgroup_get_cfg(sl_groups *g, const char *group, const char *topic,
                         sl_qgroup_cfg *out);
/* Delete the group's state for topic (or all topics if topic NULL). Its
 * consumers become orphans (see sl_groups_free). */
sl_err sl_qgroup_delete(sl_groups *g, const char *group, const char *topic);

/* One delivered record. Pointers are valid only during the callback. */
typedef struct sl_qdelivery {
    const char *group;
    const char *topic;
    int32_t partition;
    int64_t offset;
    uint32_t attempts; /* this delivery included */
    uint32_t failures;
    int64_t lock_deadline; /* ms since the epoch */
    const sl_record *rec;
} sl_qdelivery;

typedef struct sl_qconsumer sl_qconsumer;

typedef struct sl_qconsumer_cb {
    /* One record; uses one credit. May call ack/release/credit on this
     * or other consumers, but must not free any consumer. */
    void (*deliver)(void *arg, const sl_qdelivery *d);
    /* Optional: end of a delivery pass that called deliver >= 1 times. */
    void (*flush)(void *arg);
    void *arg;
} sl_qconsumer_cb;

/*
 * Register a consumer in queue group `group` over `topic` (declared with
 * defaults if new). Records are pushed through cb->deliver while the
 * consumer has credits (initially 0: grant with sl_qconsumer_credit).
 * lock_ms 0 = the group's. name (may be NULL) is shown in describe.
 * Caller frees with sl_qconsumer_free. @thread loop
 */
sl_err sl_qconsumer_new(sl_groups *g, const char *group, const char *topic,
                        int64_t lock_ms, const char *name,
                        const sl_qconsumer_cb *cb, sl_qconsumer **out);
/* Release every record it holds (available again at once; attempts kept,
 * no failure counted), unregister and free. Not from inside its own
 * callbacks. Accepts NULL. @thread loop */
void sl_qconsumer_free(sl_qconsumer *c);
uint32_t sl_qconsumer_id(const sl_qconsumer *c);
/* 0 once the consumer's group is gone (deleted, topic deleted, groups
 * freed): an orphan to free and, if wanted, create again. */
int sl_qconsumer_alive(const sl_qconsumer *c);
/* Add n credits (n may be negative; credits never go below 0) and deliver
 * what is available now. */
void sl_qconsumer_credit(sl_qconsumer *c, int64_t n);
/* A filter for c (a JMS selector on a queue): records accept() returns 0
 * for are not handed to c and stay available for the group's other
 * consumers, in their place. It is asked at delivery time, possibly more
 * than once for one record, and must not call into the group. NULL = every
 * record (the default). A record no consumer accepts stays in the window:
 * at most max_inflight of them per partition before c sees no newer ones
 * (docs/stomp.md, Selectors). @thread loop */
void sl_qconsumer_set_filter(sl_qconsumer *c,
                             int (*accept)(void *arg, const sl_record *rec),
                             void *arg);
void sl_qconsumer_set_credit(sl_qconsumer *c, int64_t n);
int64_t sl_qconsumer_credits(const sl_qconsumer *c);
/* Records currently held (acquired) by c. */
uint64_t sl_qconsumer_held(const sl_qconsumer *c);

/*
 * Settle offsets [first, last] of partition held by c. Each returns SL_OK
 * when every record in the range was settled, else the first error:
 * SL_ERR_NOT_ACQUIRED (a record not held by c: never delivered to it, lock
 * expired and given to someone else, already settled) -- the records of
 * the range that c did hold are settled anyway. *count (may be NULL) =
 * records settled. Acks of already-acked records count as settled (acks
 * are idempotent). SL_ERR_UNKNOWN_PARTITION for a bad partition.
 *   ack:     done; never delivered again.
 *   release: available again after delay_ms (-1 = the group's backoff
 *            policy; 0 = at once); counts a failure when count_failure.
 *   reject:  archived and appended to the dead-letter topic with reason
 *            "rejected" (reason_text, may be NULL, goes in a header).
 *   touch:   extend the lock to now + lock_ms (0 = consumer's lock_ms);
 *            *deadline (may be NULL) = the new deadline.
 * Call sl_groups_wait afterwards to learn when it is durable.
 */
sl_err sl_qconsumer_ack(sl_qconsumer *c, int32_t partition, int64_t first,
                        int64_t last, int64_t *count);
sl_err sl_qconsumer_release(sl_qconsumer *c, int32_t partition, int64_t first,
                            int64_t last, int64_t delay_ms, int count_failure,
                            int64_t *count);
sl_err sl_qconsumer_reject(sl_qconsumer *c, int32_t partition, int64_t first,
                           int64_t last, const char *reason_text,
                           int64_t *count);
sl_err sl_qconsumer_touch(sl_qconsumer *c, int32_t partition, int64_t first,
                          int64_t last, int64_t lock_ms, int64_t *deadline,
                          int64_t *count);

/* ---- describe -------------------------------------------------------- */

typedef struct sl_gpart_info {
    char topic[256];
    int32_t partition;
    int64_t start;  /* stream: committed (-1 none); queue: start offset */
    int64_t cursor; /* queue: next offset never read; stream: -1 */
    int64_t log_end;
    int64_t lag;       /* log_end - start (or log_end - log_start) */
    int64_t acquired;  /* queue only, else -1 */
    int64_t available; /* queue: in window and available (incl. delayed) */
    int64_t delayed;   /* queue: available but not yet due */
    int64_t archived;  /* queue: archived records since load */
} sl_gpart_info;

typedef struct sl_gmember_info {
    char id[64];
    char name[64];
    int64_t held;    /* queue: records held; stream: -1 */
    int64_t credits; /* queue: credits; stream: -1 */
    size_t nassign;  /* stream: partitions assigned */
    struct {
        char topic[256];
        int32_t partition;
    } * assign; /* owned */
} sl_gmember_info;

typedef struct sl_group_info {
    char name[256];
    int kind;       /* 0 = stream, 1 = queue */
    char state[16]; /* "stable", "empty", "rebalancing" */
    int32_t generation;
    char dlq_topic[256];
    size_t nmembers;
    sl_gmember_info *members; /* owned */
    size_t nparts;
    sl_gpart_info *parts; /* owned */
    sl_qgroup_cfg cfg;    /* queue groups: cfg of the first topic */
} sl_group_info;

/* Caller frees *out with sl_group_info_free. SL_ERR_UNKNOWN_GROUP. A name
 * may be both a stream and a queue group: queue wins. */
sl_err sl_groups_describe(sl_groups *g, const char *group, sl_group_info **out);
void sl_group_info_free(sl_group_info *info);
/* Names and kinds of every group; caller frees names[i], names, kinds. */
sl_err sl_groups_list(sl_groups *g, char ***names, int **kinds, size_t *count);

/* ---- management (sluice queues / purge / reset / peek) ---------------- */

/* What an operator asks about a queue group over one topic (sums over its
 * partitions). ready: records a consumer could get now (available and
 * due, in the window or not read yet); in_flight: acquired; delayed:
 * available but not due (not-before header, nack backoff); backlog:
 * log end - start offset; oldest_ready_ts: the timestamp (ms since the
 * epoch) of the oldest ready record, -1 when nothing is ready. */
/* Per (group, topic) counters since the broker started, plain integers
 * bumped on the loop (read on the loop by /metrics). */
typedef struct sl_qgroup_counters {
    uint64_t deliveries;   /* records handed out, redeliveries included */
    uint64_t redeliveries; /* of those, handed out before (attempts > 1) */
    uint64_t acks;
    uint64_t nacks; /* nacks + releases */
    uint64_t rejects;
    uint64_t lock_expiries;
    uint64_t dead_letters; /* appended to the dead-letter topic */
    uint64_t expired;      /* dropped or dead-lettered for TTL */
} sl_qgroup_counters;

typedef struct sl_qgroup_summary {
    int64_t ready;
    int64_t in_flight;
    int64_t delayed;
    int64_t backlog;
    int64_t consumers;
    int64_t oldest_ready_ts;
    sl_qgroup_counters st;
} sl_qgroup_summary;

/* SL_OK or SL_ERR_UNKNOWN_GROUP. Reads one record per partition from the
 * log for oldest_ready_ts. @thread loop */
sl_err sl_qgroup_summary_get(sl_groups *g, const char *group, const char *topic,
                             sl_qgroup_summary *out);

/*
 * Move partition `partition` of queue group (group, topic) to `offset`
 * (clamped to the log's [start, end]): the window is dropped, records
 * held by consumers are forgotten (their acks then fail with
 * SL_ERR_NOT_ACQUIRED), and delivery resumes at offset. Purge is a seek
 * to the log end; reset a seek anywhere. Persisted with the next round
 * (sl_groups_wait). SL_ERR_UNKNOWN_GROUP, SL_ERR_UNKNOWN_PARTITION.
 * @thread loop
 */
sl_err sl_qgroup_seek(sl_groups *g, const char *group, const char *topic,
                      int32_t partition, int64_t offset);

/* One record a peek found; rec is valid during the call only. */
typedef void (*sl_qpeek_fn)(void *arg, int32_t partition, int64_t offset,
                            uint32_t attempts, const sl_record *rec);
/*
 * Browse up to max ready records of (group, topic), lowest offsets of each
 * partition first, partition by partition, without changing any state
 * (no delivery is counted, nothing is locked). Returns how many were
 * passed to fn, or -1 for an unknown group. @thread loop
 */
int64_t sl_qgroup_peek(sl_groups *g, const char *group, const char *topic,
                       int64_t max, sl_qpeek_fn fn, void *arg);

/* Forget stream group `group` (its committed offsets, persisted with the
 * next round). SL_ERR_UNKNOWN_GROUP; SL_ERR_BUSY while it has members
 * (as Kafka refuses to delete a non-empty group). @thread loop */
sl_err sl_sgroup_delete(sl_groups *g, const char *group);
/* Members of stream group `group` (0 if unknown). */
size_t sl_sgroup_members(sl_groups *g, const char *group);

/* ---- stream groups --------------------------------------------------- */

typedef struct sl_gtp {
    char topic[256];
    int32_t partition;
} sl_gtp;

/*
 * Join (or rejoin) stream group `group` subscribing to topics. member_id
 * NULL or "" = a new member (the broker names it). The group's generation
 * increases and its partitions are reassigned across members at once (a
 * range assignor per topic over members sorted by id). On SL_OK:
 * *member_out (caller frees), *generation, and the member's assignment
 * (*assign, caller frees; *nassign entries). Other members learn about the
 * new generation from their next heartbeat (SL_ERR_REBALANCE) and rejoin.
 * session_ms: missing heartbeats for that long removes the member.
 */
sl_err sl_sgroup_join(sl_groups *g, const char *group, const char *member_id,
                      const char *client_name, const char *const *topics,
                      size_t ntopics, int64_t session_ms, char **member_out,
                      int32_t *generation, sl_gtp **assign, size_t *nassign);
/* SL_OK, SL_ERR_UNKNOWN_GROUP, SL_ERR_UNKNOWN_MEMBER (rejoin as new),
 * SL_ERR_REBALANCE (rejoin with the same id). */
sl_err sl_sgroup_heartbeat(sl_groups *g, const char *group,
                           const char *member_id, int32_t generation);
sl_err sl_sgroup_leave(sl_groups *g, const char *group, const char *member_id);
/*
 * Commit offset (the next to consume) for topic/partition. member_id NULL
 * or generation < 0 = commit without membership (standalone consumers);
 * otherwise the member must exist with this generation and be assigned
 * the partition (SL_ERR_REBALANCE / SL_ERR_UNKNOWN_MEMBER). Creates the
 * group if needed. Wait for durability with sl_groups_wait.
 */
sl_err sl_sgroup_commit(sl_groups *g, const char *group, const char *member_id,
                        int32_t generation, const char *topic,
                        int32_t partition, int64_t offset);
/* Committed offset or -1 (also for an unknown group). */
int64_t sl_sgroup_committed(sl_groups *g, const char *group, const char *topic,
                            int32_t partition);

#endif
