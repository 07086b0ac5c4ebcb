/*
 * internal.h - shared between the files of groups/ only.
 */
#ifndef SL_GROUPS_INTERNAL_H
#define SL_GROUPS_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>

#include "groups/groups.h"
#include "protocol/rd.h"

/* Record states in a queue window. ACQUIRED is never persisted: it is
 * written as AVAILABLE with its counts (locks do not survive restarts). */
enum sl_qstate {
    SL_Q_AVAIL = 0,
    SL_Q_ACQ = 1,
    SL_Q_ACKED = 2,
    SL_Q_ARCHIVED = 3,
    SL_Q_DLQ = 4 /* dead-lettering: DLQ append not yet durable */
};

enum sl_qreason {
    SL_R_NONE = 0,
    SL_R_REJECTED = 1,
    SL_R_MAX_DELIVERIES = 2,
    SL_R_EXPIRED = 3,
    SL_R_LOCK_EXPIRED = 4
};

#define SL_QE_META 0x1     /* expires / keyhash parsed from the record */
#define SL_QE_DLQ_SENT 0x2 /* DLQ append done in this process */
/* read with a future not-before, never handed out yet: does not count as
 * in flight */
#define SL_QE_DELAYED 0x4
/* may carry a key (keyhash != 0, or not parsed yet): counted in n_keyed */
#define SL_QE_KEYED 0x8

typedef struct sl_qent {
    int64_t t;        /* ACQ: lock deadline; AVAIL: due time (0 = now) */
    int64_t expires;  /* 0 = never */
    int64_t first_ms; /* first delivery, 0 = never delivered */
    int64_t last_ms;
    uint64_t keyhash; /* 0 = no key */
    uint32_t consumer;
    uint16_t attempts;
    uint16_t failures;
    uint8_t state;
    uint8_t reason;
    uint8_t flags;
    uint8_t prio; /* with max_priority: the record's priority (META) */
} sl_qent;

typedef struct sl_qgroup sl_qgroup;

typedef struct sl_qdlq_pending {
    struct sl_qpart *qp;
    int64_t off;
    sl_part *dlq_part;
    int64_t dlq_off;
} sl_qdlq_pending;

typedef struct sl_qpart {
    sl_qgroup *qg;
    int32_t partition;
    int64_t start;  /* everything below is done */
    int64_t cursor; /* first offset never read; window = [start, cursor) */
    sl_qent *ents;  /* ring, index off & mask */
    uint32_t mask;
    sl_part *part;    /* cached; NULL = look up */
    sl_part_iter *it; /* positioned at cursor (it_pos) */
    int64_t it_pos;
    sl_part_iter *rit; /* for re-reads */
    int64_t rit_pos;
    uint32_t n_avail;
    uint32_t n_acq;
    uint32_t n_dlq_redo;   /* SL_Q_DLQ entries loaded from disk */
    uint32_t n_delayed;    /* entries with SL_QE_DELAYED */
    uint32_t n_keyed;      /* window entries with SL_QE_KEYED */
    int64_t next_deadline; /* <= min lock deadline (may be stale-low) */
    int64_t next_due;      /* <= min due of available entries */
    int dirty;
    /* start=latest, its offset not known yet (env.latest): nothing handed
     * out, nothing staged, until sl_q__latest_settle; since when */
    int latest_pending;
    int64_t latest_since;
    uint64_t archived;
} sl_qpart;

struct sl_qconsumer {
    sl_qgroup *qg;
    uint32_t id;
    int64_t lock_ms;
    char name[64];
    sl_qconsumer_cb cb;
    int64_t credits;
    uint64_t held;
    int32_t rr_part;
    int delivered_in_pass;
    int (*accept)(void *arg, const sl_record *rec); /* filter, or NULL */
    void *accept_arg;
    struct sl_qconsumer *next;
};

struct sl_qgroup {
    sl_groups *g;
    char *name;
    char *topic;
    sl_qgroup_cfg cfg;
    int64_t topic_ttl_ms; /* the topic's message TTL, -1 = none (cached) */
    sl_qpart **parts;
    int32_t nparts;
    sl_qconsumer *consumers;
    int32_t rr; /* index of the consumer the next pass starts at */
    int pumping;
    int repump;
    int cfg_dirty;
    sl_qgroup_counters st; /* since the broker started (/metrics) */
    sl_qgroup *next;
};

typedef struct sl_soffset {
    char *topic;
    int32_t partition;
    int64_t offset;
    int dirty;
} sl_soffset;

typedef struct sl_smember {
    char id[64];
    char name[64];
    char **topics;
    size_t ntopics;
    int64_t session_ms;
    int64_t last_hb;
    sl_gtp *assign;
    size_t nassign;
} sl_smember;

typedef struct sl_sgroup {
    char *name;
    int32_t generation;
    sl_smember *members;
    size_t nmembers;
    sl_soffset *offs;
    size_t noffs;
    int members_dirty;  /* membership changed: staged as SL_OP_SMEMBERS */
    int64_t parts_seen; /* partitions of its topics at the last rebalance */
    struct sl_sgroup *next;
} sl_sgroup;

/* One staged buffer: ops for the hook to apply, the mutations it covers,
 * and the flusher token its commit must wait for (0 = none: it refers to
 * durable records only). */
typedef struct sl_stage {
    sl_wb buf;
    uint64_t seq;
    uint64_t token;
    struct sl_stage *next;
} sl_stage;

typedef struct sl_waiter {
    uint64_t seq;
    void (*cb)(void *arg, sl_err rc);
    void *arg;
    struct sl_waiter *next;
} sl_waiter;

struct sl_groups {
    sl_groups_env env;
    sl_qgroup_cfg qdefaults; /* of new queue groups */
    sl_flusher *flusher;
    sqlite3 *db;
    char *path;

    sl_qgroup *qgroups;
    sl_sgroup *sgroups;
    uint32_t next_consumer_id;
    uint64_t next_member_id;

    /* Dead-letter appends waiting to become durable. */
    sl_qdlq_pending *dlqp;
    size_t ndlqp, dlqp_cap;

    /* Staging (loop) -> commit (flusher). seq counts mutations. */
    uint64_t seq;             /* loop: last mutation */
    uint64_t staged_upto;     /* loop: mutations covered by staged buffers */
    int need_stage;           /* loop: something dirty not yet staged */
    int stage_requested;      /* loop: env.request_stage called, not run */
    pthread_mutex_t db_mu;    /* one transaction at a time on g->db */
    pthread_mutex_t mu;       /* protects the fields below */
    sl_stage *stq, *stq_tail; /* staged buffers, oldest first */
    uint64_t committed_seq;
    int commit_err;

    sl_waiter *waiters, *waiters_tail;
    /* Lazy commits: with no waiter, stage at most once per interval. */
    int64_t commit_interval_ms; /* 0 = every flusher round */
    int64_t last_stage_ms;

    sl_groups_stats st;
    sl_groups_hist commit_hist; /* atomics: the hook thread writes */
    int64_t ttl_refreshed;      /* last refresh of topic TTLs (ms) */
    int64_t wake_hint;          /* earliest tick asked for (ms), see wake_at */
    int in_tick;                /* inside sl_groups_tick: collect in tick_min */
    int64_t tick_min; /* earliest deadline that appeared in the tick */
    int64_t now_cache;
    int early; /* hand out flush=always records before their fdatasync */
    int in_free;
    /* Replication (env.replicate): mutations up to repl_seq are in the
     * replicated state log. @thread loop */
    uint64_t repl_seq;
    /* sl_groups_reload: load only these groups' rows (NULL = all). */
    int (*load_mine)(void *arg, const char *group);
    void *load_arg;
    /* sl_groups_set_draining: hand nothing out (controlled shutdown) */
    int draining;
};

/* groups.c */
int64_t sl_groups_now(sl_groups *g);
/* Record a mutation: bumps seq and makes sure it gets staged. */
void sl_groups_mutated(sl_groups *g);
sl_qgroup *sl_groups_qgroup_find(sl_groups *g, const char *group,
                                 const char *topic);
sl_sgroup *sl_groups_sgroup_find(sl_groups *g, const char *name);

/* Stage ops (loop). */
enum {
    SL_OP_QPART = 1,
    SL_OP_QGROUP = 2,
    SL_OP_OFFSET = 3,
    SL_OP_QDEL = 4,    /* group + topic: drop a queue group's rows */
    SL_OP_TDEL = 5,    /* topic (group empty): drop every row of a topic */
    SL_OP_SDEL = 6,    /* group (topic empty): drop a stream group's offsets */
    SL_OP_SMEMBERS = 7 /* group (topic empty): a stream group's generation
                        * and members (the state log only, stream.c) */
};
/* Stage one delete op directly (it must reach the db even though the
 * objects are gone). */
void sl_groups_stage_delete(sl_groups *g, int op, const char *group,
                            const char *topic);

/* A deadline at at_ms appeared: make sure sl_groups_tick runs by then
 * (env.wake_at, only when earlier than what was asked for already). */
void sl_groups_deadline(sl_groups *g, int64_t at_ms);
/* Serialize everything dirty into a staged buffer now (loop). */
void sl_groups_stage_now(sl_groups *g);
/* Is the oldest staged buffer ready to commit? Holds g->mu. */
int sl_groups_stq_ready(sl_groups *g);
/* Answer the waiters the commit (and the replication) covers; a failed
 * commit fails them all and re-stages (loop). */
void sl_groups_complete_waiters(sl_groups *g);

/* groups_db.c (flusher thread or under g->db_mu) */
/* Run sql on db; SL_ERR_STORAGE, logged, on failure. */
sl_err sl_groups_db_exec(sqlite3 *db, const char *sql);
/* Apply one staged op buffer inside a transaction. */
sl_err sl_groups_apply_ops(sl_groups *g, const uint8_t *p, size_t len);

/* queue.c */
/* Serialize dirty queue state into wb; returns 1 if some of it refers to
 * records not yet durable (handed out early, see sl_groups_set_early). */
int sl_queue_stage(sl_groups *g, sl_wb *wb);
sl_err sl_queue_load(sl_groups *g);
void sl_queue_on_flushed(sl_groups *g);
int64_t sl_queue_tick(sl_groups *g, int64_t now);
void sl_queue_on_append(sl_groups *g, const char *topic, int32_t partition);
void sl_qgroup_free_all(sl_groups *g);
/* Unlink and free the queue groups for which mine(arg, name) is 1. */
void sl_qgroup_unload(sl_groups *g, int (*mine)(void *arg, const char *group),
                      void *arg);
void sl_queue_forget_topic(sl_groups *g, const char *topic);
void sl_queue_mark_all_dirty(sl_groups *g);
sl_err sl_queue_describe(sl_groups *g, const char *group, sl_group_info *info);

/* stream.c */
/* Stage the dirty offsets; 1 if one of them is past the durable end of a
 * flush=always partition (its commit must wait for the flusher). */
int sl_stream_stage(sl_groups *g, sl_wb *wb);
sl_err sl_stream_load(sl_groups *g);
/* Read the body of an SL_OP_SMEMBERS op (after its group and topic) from
 * rd; sg non-NULL: make it the group's generation and members. */
sl_err sl_stream_members_read(sl_groups *g, sl_rd *rd, sl_sgroup *sg);
/* The generation and members of the groups load_mine names, from the
 * SL_OP_SMEMBERS ops of a rebuilt state log (sl_groups_reload). */
sl_err sl_stream_load_members(sl_groups *g, const uint8_t *ops, size_t len);
int64_t sl_stream_tick(sl_groups *g, int64_t now);
void sl_sgroup_free_all(sl_groups *g);
/* Unlink and free the stream groups for which mine(arg, name) is 1. */
void sl_sgroup_unload(sl_groups *g, int (*mine)(void *arg, const char *group),
                      void *arg);
void sl_stream_forget_topic(sl_groups *g, const char *topic);
sl_err sl_stream_describe(sl_groups *g, const char *group, sl_group_info *info);

#endif
