/*
 * topic_int.h - inside the topic registry (topic.c, topic_summary.c,
 * topic_alter.c): the registry's structure and the helpers its files
 * share. Not for other modules: they use broker/topic.h.
 */
#ifndef SL_TOPIC_INT_H
#define SL_TOPIC_INT_H

#include <sqlite3.h>

#include "broker/topic.h"

#define NBUCKETS 4096

/* One partition's line of DATA/partitions.summary (see "PARTITION
 * SUMMARIES" below). */
typedef struct psum {
    const char *topic; /* into the file's buffer */
    int32_t part;
    sl_part_summary sum;
} psum;

struct sl_topics {
    char *dir;
    const sl_config *cfg; /* borrowed from the broker */
    sqlite3 *db;
    sl_topic *buckets[NBUCKETS];
    size_t count;
    int opened; /* every partition opened: a clean stop may mark it */
    /* While loading after a clean stop: the summaries, sorted. */
    psum *sums;
    size_t nsums;
    size_t lazy_opened; /* partitions opened from their summary */
    /* After a crash: the summary holds for partitions not listed in
     * partitions.touched (storage/partition_startup.c). */
    int crash_lazy;
    size_t recovered; /* partitions recovered at start */
};

/* DATA/partitions.summary (topic_summary.c) */
#define SL_TOPICS_SUMMARY_FILE "partitions.summary"

/* Run sql on meta.db; SL_ERR_STORAGE with err filled on failure. */
sl_err sl_topics_db_exec(sl_topics *ts, const char *sql, char *err,
                         size_t errlen);
/* rm -rf path (each failure logged). */
void sl_topics_rm_rf(const char *path);
/* Open partition `part` of topic `name` at path: from its summary (start
 * after a clean stop), empty (fresh: a new directory), or the whole
 * recovery. */
sl_err sl_topics_part_open(sl_topics *ts, const char *path, const char *name,
                           int32_t part, int fresh, const sl_part_cfg *pcfg,
                           sl_part **out);

/* topic_summary.c. Read DATA/partitions.summary if its token is `token`;
 * ts->sums. The buffer holding the names is returned (freed after
 * loading). */
char *sl_topics_summaries_read(sl_topics *ts, const char *token);
/* The summary of topic/part read at start, or NULL. */
sl_part_summary *sl_topics_summary_find(sl_topics *ts, const char *topic,
                                        int32_t part);
/* Write every partition's summary (durably: FILE.tmp, fsync, rename,
 * fsync of the directory) under `token`. @thread loop, at a clean stop */
sl_err sl_topics_summaries_write(sl_topics *ts, const char *token);

#endif
