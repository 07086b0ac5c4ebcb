/*
 * ops.h - the internal operations every protocol front end uses.
 *
 * The binary protocol (broker/binary.c), the STOMP adapter (broker/stomp*.c)
 * and the group code (broker/ops_groups.c, broker/binary_groups.c) all end
 * in the same places: an append to a partition log and a read from one.
 * This header is the one way in. Everything here runs on the event loop
 * thread (@thread loop) unless a function says otherwise.
 *
 * How a module plugs in
 * ---------------------
 *  - Start-up: write `void sl_NAME_module_init(sl_broker *b)` and, if
 *    needed, `..._module_fini(sl_broker *b)`, declare them in the module's
 *    header, and add a line to the module table in server.c: init runs
 *    after topics are open and before the listeners accept, fini at
 *    shutdown before partitions close. Return nothing; on a fatal problem
 *    log it and call sl_broker_fail(). Keep the module's state on the
 *    broker object (broker.h) and pass it to callbacks as their argument.
 *  - Config keys: a section of broker/config_table.h.
 *  - Binary API handlers: sl_binary_register() in broker/binary.h; state
 *    tied to a connection: sl_conn_on_close() there.
 *  - Listeners: a protocol attaches its connection ops to the binary or
 *    STOMP listener with sl_conn_set_proto() (broker/conn.h); the
 *    connection layer accepts, reads, paces and closes, the protocol
 *    translates.
 *  - Wake-ups: sl_ops_on_append() (deferred, once per partition per loop
 *    iteration) and sl_ops_watch_*() (long-poll style, with a timeout).
 *  - Flusher: sl_flusher_add_hook(sl_broker_flusher(b), fn, arg) runs fn on
 *    the flusher thread every round after the fsyncs (groups' SQLite batch).
 *  - Shutdown: sl_broker_on_stop() + sl_broker_hold()/sl_broker_release()
 *    let a module finish in-flight work (receipts) before fini.
 *
 * Lifetimes: sl_part pointers returned by sl_ops_part() stay valid until
 * the topic is deleted (sl_ops_on_topic_delete() tells you, before the
 * partitions are freed) or the broker shuts down (after module fini).
 */
#ifndef SL_OPS_H
#define SL_OPS_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/util.h>

#include "protocol/api.h" /* enum sl_acks, SL_OFFSET_LATEST/EARLIEST */
#include "broker/broker_api.h"
#include "broker/topic.h"
#include "broker/types.h"
#include "protocol/err.h"
#include "storage/flusher.h"
#include "storage/partition.h"

/* The broker's accessors (sl_broker_base, ... sl_now_ms) and event
 * priorities: broker/broker_api.h, included here. */

/* ---- topics ---------------------------------------------------------- */

/* Topic names (SL_TOPIC_NAME_MAX, sl_topic_name_check): broker/topic.h,
 * included here. */

enum sl_ops_create {
    SL_OPS_NO_CREATE = 0,   /* unknown topic -> SL_ERR_UNKNOWN_TOPIC */
    SL_OPS_AUTO_CREATE = 1, /* create if the auto-create-topics setting is on
                               (with default-partitions partitions) */
    SL_OPS_CREATE = 2       /* always create if missing (DLQ, temp queues) */
};

/*
 * Create a topic with `partitions` partitions (<= 0: the default-partitions
 * setting) and per-topic config overrides given as `ncfg` key/value pairs
 * (keys as in config_table.h: "segment-bytes", "retention-ms", "flush",
 * "flush-interval-ms", "cleanup-policy", ...). Persisted in meta.db before
 * returning. SL_OK, SL_ERR_TOPIC_EXISTS, SL_ERR_INVALID_TOPIC,
 * SL_ERR_INVALID_CONFIG (errstr names the key), or a storage error.
 * errstr (may be NULL) receives a message naming the problem.
 */
sl_err sl_ops_topic_create(sl_broker *b, const char *name, int32_t partitions,
                           const char *const *keys, const char *const *values,
                           size_t ncfg, char *errstr, size_t errlen);
/* Delete the topic, its partitions and files. Runs the topic-delete hooks
 * first. SL_OK or SL_ERR_UNKNOWN_TOPIC. */
sl_err sl_ops_topic_delete(sl_broker *b, const char *name);
/* Look the topic up (creating it per `create`); *partitions = its count. */
sl_err sl_ops_topic_get(sl_broker *b, const char *name,
                        enum sl_ops_create create, int32_t *partitions);
/* fn(arg, name, partitions) for every topic, in name order. */
void sl_ops_topic_list(sl_broker *b,
                       void (*fn)(void *arg, const char *name,
                                  int32_t partitions),
                       void *arg);
/* fn(arg, key, value) for every per-topic config override of `name`.
 * SL_ERR_UNKNOWN_TOPIC if missing. */
sl_err sl_ops_topic_configs(sl_broker *b, const char *name,
                            void (*fn)(void *arg, const char *key,
                                       const char *value),
                            void *arg);

/*
 * The partition log of (topic, partition), creating the topic per `create`.
 * *out is borrowed (see Lifetimes above). SL_ERR_UNKNOWN_TOPIC,
 * SL_ERR_UNKNOWN_PARTITION, SL_ERR_INVALID_TOPIC.
 */
sl_err sl_ops_part(sl_broker *b, const char *topic, int32_t partition,
                   enum sl_ops_create create, sl_part **out);
/* Drop every record of (topic, partition) here, files included (a
 * replica moved off this node, broker/replica.c): durable waiters on it
 * fail with SL_ERR_NOT_LEADER, the log starts again empty at offset 0
 * (sl_part_reset). *bytes (may be NULL) = the bytes deleted. */
sl_err sl_ops_part_reset(sl_broker *b, const char *topic, int32_t partition,
                         uint64_t *bytes);
/* The same, the empty log starting at `at` (sl_part_reset_at: an
 * observer's copy, broker/observer.c). */
sl_err sl_ops_part_reset_at(sl_broker *b, const char *topic, int32_t partition,
                            int64_t at, uint64_t *bytes);

/* ---- produce ----------------------------------------------------------- */

/*
 * Append one record batch (exactly len bytes, as the producer encoded it)
 * to (topic, partition). The batch's CRC is checked and its base offset is
 * written into `batch` (the caller's buffer is modified; borrowed only
 * during the call). Asks the flusher to cover the append (per the topic's
 * flush policy) and schedules the append hooks and watches.
 * On SL_OK: *base_out = first offset assigned, *next_out = offset after the
 * last record (either may be NULL). Errors: SL_ERR_UNKNOWN_TOPIC /
 * _PARTITION / SL_ERR_INVALID_TOPIC, SL_ERR_MALFORMED / SL_ERR_CORRUPT
 * (bad batch), SL_ERR_TOO_LARGE, SL_ESYS(ENOSPC) etc., SL_ERR_STORAGE;
 * nothing is appended then.
 *
 * Idempotent producer (docs/cluster.md 4): a batch with producer_id >= 0
 * that repeats one of the producer's last 64 batches appends nothing and
 * returns SL_OK with the original base offset and *next_out after it (the
 * caller's durable wait covers the original); an older repeat returns
 * SL_ERR_DUPLICATE_SEQUENCE with *next_out an offset it lies below;
 * SL_ERR_OUT_OF_ORDER_SEQUENCE and SL_ERR_PRODUCER_FENCED refuse it.
 * While b->replicating (a follower's copy) the batch is only recorded.
 */
sl_err sl_ops_append(sl_broker *b, const char *topic, int32_t partition,
                     enum sl_ops_create create, uint8_t *batch, size_t len,
                     int64_t *base_out, int64_t *next_out);
/* sl_ops_append for a client's batch that nobody waits on: its fsync
 * round may wait up to flush-lazy-ms (single node, queue-dispatch
 * written, flush=always), unless a durable wait (sl_ops_wait_durable, a
 * later append that is waited on, a group commit that refers to it) asks
 * for the round first. The STOMP SEND path (a SEND batch without a
 * receipt on a persistent SEND) and the binary PRODUCE path (acks below
 * durable) use it; the receipt or durable ack that follows starts one
 * round for all of them. A caller about to wait for the batch uses
 * sl_ops_append (its round may run inline, flush-inline-us). */
sl_err sl_ops_append_lazy(sl_broker *b, const char *topic, int32_t partition,
                          enum sl_ops_create create, uint8_t *batch, size_t len,
                          int64_t *base_out, int64_t *next_out);
/* sl_ops_append (lazy: sl_ops_append_lazy) for a batch whose CRC the
 * caller has just checked (sl_batch_verify) on these very bytes, in the
 * same callback: the append decodes its header without a second pass over
 * the batch (the binary PRODUCE path; issue 20: the second pass was half
 * of the event loop's CRC time). */
sl_err sl_ops_append_checked(sl_broker *b, const char *topic, int32_t partition,
                             enum sl_ops_create create, uint8_t *batch,
                             size_t len, int lazy, int64_t *base_out,
                             int64_t *next_out);

/*
 * Cluster: sl_ops_append answered SL_ERR_NOT_LEADER; send the batch (copied)
 * to the node that leads the partition instead (broker/forward.c). SL_OK:
 * cb(arg, err) runs once, later, with the leader's answer (durable: after
 * its durable ack; cb may be NULL). Otherwise nothing was sent:
 * SL_ERR_NOT_LEADER (no leader known, or not a cluster), SL_ERR_DISCONNECTED,
 * SL_ERR_BUSY.
 */
sl_err sl_ops_forward_append(sl_broker *b, const char *topic, int32_t partition,
                             const uint8_t *batch, size_t len, int durable,
                             void (*cb)(void *arg, sl_err err), void *arg);

/* A pending completion; cancel with sl_ops_wait_cancel. */
typedef struct sl_ops_wait sl_ops_wait;
/* err = SL_OK (durable), SL_ERR_STORAGE (fsync failed), SL_ERR_TIMEOUT,
 * SL_ERR_SHUTTING_DOWN, SL_ERR_UNKNOWN_TOPIC (deleted meanwhile). */
typedef void (*sl_ops_durable_cb)(void *arg, sl_err err);

/*
 * Wait until every offset below `upto` (a next_out of sl_ops_append) of
 * (topic, partition) is fsynced. When that is already true, or the topic's
 * flush policy is "never" (durability left to the OS), returns SL_OK with
 * *wait_out = NULL and cb is NOT called. Otherwise returns SL_OK with
 * *wait_out set, and cb(arg, err) runs exactly once later from the loop
 * (never from inside this call) unless cancelled first. Waiters of a
 * partition complete in FIFO order, right after the fdatasyncs of the
 * flusher round that covered them (before that round's hooks). The flusher
 * answers within flush-interval-ms for "interval".
 */
sl_err sl_ops_wait_durable(sl_broker *b, const char *topic, int32_t partition,
                           int64_t upto, sl_ops_durable_cb cb, void *arg,
                           sl_ops_wait **wait_out);
/* Cancel: cb will not run. Only for a wait whose cb has not run yet. */
void sl_ops_wait_cancel(sl_ops_wait *w);
/* Free the durable waits this thread keeps for reuse, and keep none
 * from now on (the broker's end). @thread loop */
void sl_ops_wait_cache_drop(void);

/*
 * Cluster (broker/replica.c, the partition leader; docs/cluster.md 3.3):
 * fol_durable = the lowest durable offset the in-sync followers reported
 * (INT64_MAX: no follower to wait for; -1: fewer in-sync replicas than
 * min-insync-replicas, so sl_ops_wait_durable refuses with
 * SL_ERR_NOT_ENOUGH_REPLICAS). Durable waiters are answered once both the
 * local and fol_durable pass them. read_cap = the high-water mark readers
 * stop at (sl_part_set_read_cap; INT64_MAX = none); readers are woken when
 * it rises. fail != SL_OK fails the waiting durable waiters with it (the
 * ISR shrank below the minimum, or this node lost the leadership).
 */
sl_err sl_ops_set_follower_marks(sl_broker *b, const char *topic,
                                 int32_t partition, int64_t fol_durable,
                                 int64_t read_cap, sl_err fail);

/* ---- fetch and wake-ups ------------------------------------------------ */

/*
 * The offset below which records of (topic, partition) are visible to
 * stream readers (FETCH, STOMP /topic subscribers): the one rule of
 * groups/visible.c, decided by queue-dispatch (written: the log end, as
 * queue groups hand records out; durable: the durable offset of
 * flush=always|interval topics), capped by the cluster's high-water mark.
 */
sl_err sl_ops_visible_offset(sl_broker *b, const char *topic, int32_t partition,
                             int64_t *out);

/*
 * Append hooks: fn(arg, topic, partition, end_offset) after records were
 * appended to a partition. Deferred: runs from the loop at most once per
 * partition per loop iteration, never inside sl_ops_append, so the hook may
 * append itself (e.g. the DLQ). Register at module init. Never removed.
 */
/* typedef sl_ops_append_fn: broker/types.h */
void sl_ops_on_append(sl_broker *b, sl_ops_append_fn fn, void *arg);

/*
 * Read more of what the socket of bev holds into its input buffer, after
 * the bufferevent's own read: up to `limit` bytes in readv calls of up to
 * 64 KiB, stopping at the first short read. Call at the top of a
 * bufferevent read callback with `before` = the input buffer's length
 * after the previous processing: only when the bufferevent's read filled
 * its 4096 bytes is more likely waiting (else a readv would only see
 * EAGAIN). libevent 2.1 reads at most 4096 bytes per readiness event,
 * after an ioctl(FIONREAD), so 1 KiB messages cost three system calls
 * (epoll_wait, ioctl, readv) per 4 messages. EOF and errors are left to
 * the bufferevent (its next read sees them). Returns the bytes read.
 */
struct bufferevent;
#define SL_OPS_EV_READ_MAX 4096 /* libevent 2.1's bytes per read event */
size_t sl_ops_read_more(struct bufferevent *bev, size_t before, size_t limit);
/* The same without the check: read what the socket holds, up to limit
 * (for a connection the loop has not served from its own read event). */
size_t sl_ops_read_now(struct bufferevent *bev, size_t limit);

/* Durable hooks: fn(arg) from the loop after each of the flusher's notifies
 * was handled (durable waiters answered), i.e. after every round that made
 * records durable, before (and again after) the groups' commit of that
 * round. Register at module init. Never removed. */
void sl_ops_on_durable(sl_broker *b, void (*fn)(void *arg), void *arg);

/* Topic-delete hooks: fn(arg, topic) before the topic's partitions are
 * freed; drop every sl_part pointer of it. */
void sl_ops_on_topic_delete(sl_broker *b,
                            void (*fn)(void *arg, const char *topic),
                            void *arg);

/*
 * Watches (long-poll fetch, STOMP topic subscribers): cb(arg, timed_out)
 * runs from the loop when new records became visible in a watched
 * partition (sl_ops_visible_offset advanced: after the append when the
 * rule shows the log end, after the flusher round when it shows the
 * durable offset, when the cluster's high-water mark rose;
 * deferred as above, timed_out = 0), and once when timeout_ms passes
 * (timed_out = 1; timeout_ms < 0 = never). At shutdown every watch times
 * out at once. The watch stays armed until freed: free it from
 * cb or elsewhere when satisfied. sl_ops_watch_free is safe inside cb.
 */
typedef struct sl_ops_watch sl_ops_watch;
typedef void (*sl_ops_watch_cb)(void *arg, int timed_out);
sl_err sl_ops_watch_new(sl_broker *b, int64_t timeout_ms, sl_ops_watch_cb cb,
                        void *arg, sl_ops_watch **out);
/* Also watch (topic, partition). SL_ERR_UNKNOWN_TOPIC/_PARTITION. */
sl_err sl_ops_watch_add(sl_ops_watch *w, const char *topic, int32_t partition);
/* Accepts NULL. */
void sl_ops_watch_free(sl_ops_watch *w);

/* List offsets: earliest (ts = SL_OFFSET_EARLIEST), latest
 * (SL_OFFSET_LATEST), or the first offset with timestamp >= ts. */
sl_err sl_ops_list_offset(sl_broker *b, const char *topic, int32_t partition,
                          int64_t ts, int64_t *offset_out);

#endif
