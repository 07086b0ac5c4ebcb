/*
 * dlq.h - dead-letter topics: what a dead-lettered record carries, how it
 * is written, listed and redriven. One set of rules for every interface:
 * the queue-group state machine (groups/queue.c) dead-letters through it,
 * the binary DLQ_LIST / DLQ_REDRIVE APIs (used by the `sluice dlq` CLI)
 * and STOMP consumers of a dead-letter topic see what it wrote.
 *
 * A dead-lettered record is a copy of the original (timestamp, key,
 * value) with the original's headers, minus any dlq.* ones (a record
 * dead-lettered twice names only its latest origin), and then the dlq.*
 * headers below. At most SL_DLQ_KEEP_HEADERS original headers are kept,
 * when dead-lettering and when redriving alike; further ones are dropped.
 * Redrive copies a record back (to its dlq.topic / dlq.partition, or to a
 * chosen topic) without the dlq.* headers, adding redrive.from and
 * redrive.time-ms, and records its progress as the offsets of stream
 * group "<DLQ>.redrive" over the DLQ topic, so a redrive that stops
 * resumes where it stopped and a record is moved at most once per pass.
 * docs/groups.md describes them for users.
 * @thread loop
 */
#ifndef SL_DLQ_H
#define SL_DLQ_H

#include <stddef.h>
#include <stdint.h>

#include "groups/groups.h"
#include "protocol/batch.h"

/* Header names (docs/groups.md, "Dead-letter topics"). */
#define SL_DLQ_HDR_PREFIX "dlq."
#define SL_DLQ_HDR_TOPIC "dlq.topic"         /* source topic */
#define SL_DLQ_HDR_PARTITION "dlq.partition" /* source partition */
#define SL_DLQ_HDR_OFFSET "dlq.offset"       /* source offset */
#define SL_DLQ_HDR_GROUP "dlq.group"         /* queue group */
#define SL_DLQ_HDR_ATTEMPTS "dlq.attempts"
#define SL_DLQ_HDR_FAILURES "dlq.failures"
#define SL_DLQ_HDR_REASON "dlq.reason" /* rejected|max_deliveries|... */
#define SL_DLQ_HDR_FIRST_DELIVERY "dlq.first-delivery-ms"
#define SL_DLQ_HDR_LAST_DELIVERY "dlq.last-delivery-ms"
#define SL_DLQ_HDR_TIME "dlq.time-ms"
#define SL_DLQ_HDR_REASON_TEXT "dlq.reason-text" /* NACK/REJECT text */
#define SL_DLQ_HDR_REDRIVE_FROM "redrive.from"
#define SL_DLQ_HDR_REDRIVE_TIME "redrive.time-ms"

/* Original headers a dead-lettered or redriven record keeps, at most. */
#define SL_DLQ_KEEP_HEADERS 60
/* Room for them plus the ones dead-lettering or redrive adds. */
#define SL_DLQ_MAX_HEADERS (SL_DLQ_KEEP_HEADERS + 16)
/* Longest reason text kept (a longer one is left out). */
#define SL_DLQ_REASON_TEXT_MAX 1023

/* The dead-letter topic of a queue group over `topic` with settings cfg:
 * cfg->dlq_topic, or sl_groups_dlq_name(topic) when that is empty
 * (written into buf), or NULL when it is "-" (dead-lettered records are
 * only archived). */
const char *sl_dlq_topic_name(const sl_qgroup_cfg *cfg, const char *topic,
                              char *buf, size_t len);

/* The one filter: is this header one of ours (dlq.*)? */
int sl_dlq_is_dlq_header(const sl_header *h);
/* Copy rec's headers that are not dlq.* into hs (room for
 * SL_DLQ_KEEP_HEADERS), in order, up to the cap. Returns how many. The
 * copies borrow rec's bytes. */
size_t sl_dlq_keep_headers(const sl_record *rec, sl_header *hs);

/* Where a record came from and why it is dead-lettered. */
typedef struct sl_dlq_origin {
    const char *topic, *group;
    int32_t partition;
    int64_t offset;
    uint32_t attempts, failures;
    const char *reason;        /* "rejected", "max_deliveries", ... */
    int64_t first_ms, last_ms; /* deliveries; 0 = never */
    int64_t time_ms;           /* now */
    const char *reason_text;   /* NULL/"" = none */
} sl_dlq_origin;

/*
 * Append the dead-letter copy of rec (see the top) to partition 0 of
 * dlq_topic through the groups' env (creating the topic). On SL_OK
 * *part_out / *base_out say where it went (to wait for its durability).
 * Errors: the batch builder's or the append's; nothing appended then.
 */
sl_err sl_dlq_append(sl_groups *g, const char *dlq_topic, const sl_record *rec,
                     const sl_dlq_origin *o, sl_part **part_out,
                     int64_t *base_out);

/* Records stored in topic over all partitions (end - start), and the
 * start/end offsets of partition 0 (NULL = not wanted; untouched when the
 * topic is missing). -1 when the topic does not exist. */
int64_t sl_dlq_depth(sl_groups *g, const char *topic, int64_t *start0,
                     int64_t *end0);

/* fn(arg, dlq_topic, source_topic, group) for every queue group with a
 * dead-letter topic, limited to source topic `topic` and queue group
 * `group` when they are not NULL. */
void sl_dlq_list(sl_groups *g, const char *topic, const char *group,
                 void (*fn)(void *arg, const char *dlq_topic,
                            const char *source_topic, const char *group),
                 void *arg);

/* ---- redrive ------------------------------------------------------- */

/* Where redriven records go: the broker's topics (the groups' env only
 * appends to dead-letter topics). */
typedef struct sl_dlq_sink {
    void *ctx;
    /* Partitions of topic, creating it as an auto-created topic would
     * be; < 1 when it does not exist and cannot be created. */
    int32_t (*partitions)(void *ctx, const char *topic);
    /* Append one batch (the buffer may be modified). */
    sl_err (*append)(void *ctx, const char *topic, int32_t partition,
                     uint8_t *batch, size_t len);
} sl_dlq_sink;

typedef struct sl_dlq_redrive_opts {
    const char *dlq_topic;
    const char *target; /* NULL/"" = each record's dlq.topic */
    const char *reason; /* NULL/"" = any dlq.reason */
    int64_t max;        /* records to move, < 0 = all */
    uint32_t rate;      /* records per second, 0 = as fast as possible */
} sl_dlq_redrive_opts;

/* The rate limit's step: call sl_dlq_redrive_step this often. */
#define SL_DLQ_REDRIVE_STEP_MS 50

typedef struct sl_dlq_redrive sl_dlq_redrive;
/*
 * A redrive of what the DLQ topic holds now (records appended later are
 * left for the next one). Strings are copied; sink is copied. A queue
 * group's dead-letter topic that does not exist yet (no dead letter so
 * far) is an empty one: the redrive moves nothing.
 * SL_ERR_UNKNOWN_TOPIC (no such topic), SL_ERR_INVALID_ARG (a name too
 * long), SL_ERR_NOMEM. *out written on success.
 */
sl_err sl_dlq_redrive_new(sl_groups *g, const sl_dlq_redrive_opts *o,
                          const sl_dlq_sink *sink, sl_dlq_redrive **out);
/* Move up to the step's share of the rate (all when rate is 0); progress
 * is committed to the "<DLQ>.redrive" stream group (sl_groups_wait makes
 * it durable). 1 when the redrive is finished, 0 when the caller should
 * step again SL_DLQ_REDRIVE_STEP_MS later. g is the groups it was made
 * with (the caller checks they still exist). */
int sl_dlq_redrive_step(sl_dlq_redrive *rd, sl_groups *g);
/* Records moved / skipped (not matching the reason, or not dead-lettered
 * records when no target was given) so far. */
int64_t sl_dlq_redrive_moved(const sl_dlq_redrive *rd);
int64_t sl_dlq_redrive_skipped(const sl_dlq_redrive *rd);
/* Accepts NULL. */
void sl_dlq_redrive_free(sl_dlq_redrive *rd);

#endif
