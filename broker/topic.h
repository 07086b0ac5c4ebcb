/*
 * topic.h - the topic registry: topics and their configs in SQLite
 * (DATA/meta.db, WAL), partition logs in DATA/topics/<topic>/<partition>/.
 *
 * Crash rules. Create: the partition directories are made first, then the
 * row is committed (a crash in between leaves orphan directories that a
 * later create of the same name moves to DATA/trash/ first: a topic is only
 * visible once its row exists). Delete: the row is deleted (committed)
 * first, then the directory is moved to DATA/trash/ and removed; start-up
 * empties DATA/trash/. meta.db writes happen on the loop thread: they are
 * rare (admin operations, the first produce to a new topic).
 * @thread loop for everything here.
 */
#ifndef SL_TOPIC_H
#define SL_TOPIC_H

#include <stddef.h>
#include <stdint.h>

#include "broker/config.h"
#include "protocol/err.h"
#include "storage/partition.h"

/* Topic names: 1..249 chars of [A-Za-z0-9._-], not "." or "..". */
#define SL_TOPIC_NAME_MAX 249
/* SL_OK or SL_ERR_INVALID_TOPIC. */
sl_err sl_topic_name_check(const char *name, size_t len);

typedef struct sl_topic sl_topic;
typedef struct sl_ops_wait sl_ops_wait;
typedef struct sl_watch_link sl_watch_link;

/* One partition of a topic, with the broker's per-partition state. */
typedef struct sl_tpart {
    sl_topic *topic;
    int32_t id;
    sl_part *part; /* owned */
    /* durable waiters (ops.c), FIFO by offset */
    sl_ops_wait *dw_head, *dw_tail;
    struct sl_tpart *dw_next; /* on the broker's list of tparts waiting */
    int on_dw_list;
    int64_t last_append_us; /* flush-inline-us: gap between appends */
    /* watches (ops.c) */
    sl_watch_link *watches;
    /* watches to wake when the durable offset passes dv_fired (ops.c) */
    struct sl_tpart *dv_next;
    int on_dv_list;
    int64_t dv_fired;
    /* traffic counters for /metrics (ops.c; loop thread only, read by the
     * scrape on the loop thread too: plain integers) */
    uint64_t records_in, bytes_in; /* out: sl_part_read_stats */
    /* deferred append hooks (ops.c) */
    struct sl_tpart *ap_next;
    int on_ap_list;
    /* cluster (sl_ops_set_follower_marks): durable acks wait for
     * min(local durable, fol_durable); INT64_MAX = the local fsync alone
     * (every single-node partition), -1 = too few in-sync replicas */
    int64_t fol_durable;
} sl_tpart;

struct sl_topic {
    char *name;
    int32_t nparts;
    sl_tpart **parts; /* nparts, each allocated on its own (their addresses
                         stay put when partitions are added) */
    sl_part_cfg pcfg;
    size_t ncfg; /* per-topic overrides */
    char **cfg_keys;
    char **cfg_values;
    sl_topic *hnext;
};

typedef struct sl_topics sl_topics;

/* Open meta.db under data_dir, load every topic and open (recover) its
 * partitions. err names the problem. *out written on success. */
sl_err sl_topics_open(const char *data_dir, const sl_config *cfg,
                      sl_topics **out, char *err, size_t errlen);
/* Close everything (no fsync: sync first). Accepts NULL. */
void sl_topics_free(sl_topics *ts);

sl_topic *sl_topics_find(sl_topics *ts, const char *name);
/* Create (see ops.h sl_ops_topic_create for the contract). */
sl_err sl_topics_create(sl_topics *ts, const char *name, int32_t nparts,
                        const char *const *keys, const char *const *values,
                        size_t ncfg, sl_topic **out, char *err, size_t errlen);
/* Remove the row, close the partitions (the caller has detached waiters
 * and told the flusher to forget them) and delete the files. t is freed. */
sl_err sl_topics_delete(sl_topics *ts, sl_topic *t);
/* Set per-topic config overrides (merged into the existing ones; an
 * empty value removes an override) and apply them to the open
 * partitions. Validated as a whole first: nothing changes on error (err
 * names the key). Persisted in meta.db before returning. */
sl_err sl_topics_alter(sl_topics *ts, sl_topic *t, const char *const *keys,
                       const char *const *values, size_t n, char *err,
                       size_t errlen);
/* Grow the topic to nparts partitions (more than it has; at most 10000).
 * The new partition directories are made first, then the row's count is
 * committed (a crash in between leaves directories that the next add
 * removes first). Records keep their partitions: keys hash differently
 * from now on, as in Kafka. */
sl_err sl_topics_add_partitions(sl_topics *ts, sl_topic *t, int32_t nparts,
                                char *err, size_t errlen);
/* Every topic, sorted by name; the array is malloc'ed (caller frees it,
 * not the topics). */
sl_topic **sl_topics_sorted(sl_topics *ts, size_t *n);
size_t sl_topics_count(const sl_topics *ts);
/* meta.db's PRAGMA synchronous (2 = FULL, what every commit but a
 * flush=never topic's uses), -1 on error. For tests. */
int sl_topics_synchronous(sl_topics *ts);

#endif
