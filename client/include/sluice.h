/*
 * sluice.h - libsluice, the C client of the Sluice message broker.
 *
 * This is the only public header of libsluice. Every name in it starts with
 * sluice_ / SLUICE_. Handles are opaque; no libevent or internal type shows
 * through. Link with `pkg-config --cflags --libs sluice` (libsluice.so or
 * libsluice.a; the static one also needs -lzstd -lssl -lcrypto -lpthread).
 *
 * Objects
 *   sluice_conf            key/value configuration, copied by every *_new
 *   sluice_producer        batching producer with delivery reports
 *   sluice_consumer        stream consumer: assign or subscribe (group),
 *                          seek by offset or time, poll, commit
 *   sluice_queue_consumer  queue-group consumer: acquire, ack, nack(delay),
 *                          reject(reason), touch; acks batched as ranges
 *   sluice_admin           topics, groups, dead-letter topics
 *
 * I/O model (read this once)
 *   libsluice uses plain blocking sockets and poll(2); it starts NO
 *   background threads. Each handle owns one TCP connection to the broker,
 *   with many pipelined requests in flight (matched by correlation id).
 *   I/O happens only inside calls on the handle: a producer sends full
 *   batches inside sluice_producer_send(), and batches whose linger.ms has
 *   expired on the next send/poll/flush. So call sluice_producer_poll()
 *   regularly (or flush) when you produce slowly. A lost connection is
 *   re-established by the next call that needs it (reconnect.backoff.ms
 *   between attempts).
 *
 * Thread safety
 *   Every function on a handle is safe to call from any thread: calls on
 *   the same handle are serialised by one mutex per handle (so a blocking
 *   call, e.g. a long poll, delays other threads' calls on that handle;
 *   use one handle per thread for parallelism). Different handles never
 *   share state. Callbacks run on the thread that called poll/flush, with
 *   the handle's mutex NOT held: they may call back into the handle.
 *   sluice_conf is not thread-safe (build it on one thread, then *_new).
 *   Messages (sluice_message) are independent objects: read and free them
 *   on any thread, after the consumer that returned them is gone too.
 *
 * Errors
 *   Fallible functions return sluice_err: SLUICE_OK (0) or an error whose
 *   number is the broker's wire error code (1:1 with the server's sl_err).
 *   System errors are wrapped, not flattened: SLUICE_ERR_SYS(errno).
 *   sluice_strerror(err) describes a code; sluice_errstr() gives the
 *   detail of the last error returned to the calling thread (which topic,
 *   which address, which field), like errno. Constructors also fill an
 *   errstr buffer (librdkafka style). Out-parameters are written only on
 *   success.
 */
#ifndef SLUICE_H
#define SLUICE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLUICE_VERSION_MAJOR 0
#define SLUICE_VERSION_MINOR 1
#define SLUICE_VERSION_PATCH 0
#define SLUICE_VERSION_STR "0.1.0"

/* Library version string, e.g. "0.1.0". Static. @thread any */
const char *sluice_version(void);

/* ---- errors ---------------------------------------------------------- */

typedef enum sluice_err {
    SLUICE_OK = 0,
    SLUICE_ERR_UNKNOWN = 1,         /* unexpected internal failure */
    SLUICE_ERR_CORRUPT = 2,         /* CRC mismatch, malformed stored data */
    SLUICE_ERR_MALFORMED = 3,       /* malformed request/frame/batch */
    SLUICE_ERR_TOO_LARGE = 4,       /* frame or batch over a size limit */
    SLUICE_ERR_UNSUPPORTED_API = 5, /* broker does not know the api */
    SLUICE_ERR_UNSUPPORTED_VERSION = 6,
    SLUICE_ERR_UNKNOWN_TOPIC = 7,
    SLUICE_ERR_UNKNOWN_PARTITION = 8,
    SLUICE_ERR_TOPIC_EXISTS = 9,
    SLUICE_ERR_INVALID_CONFIG = 10, /* also: unknown/bad sluice_conf key */
    SLUICE_ERR_OFFSET_OUT_OF_RANGE = 11,
    SLUICE_ERR_NOT_FOUND = 12,
    SLUICE_ERR_TIMEOUT = 13, /* also: poll found nothing in time */
    SLUICE_ERR_NOMEM = 14,
    SLUICE_ERR_CLOSED = 15,
    SLUICE_ERR_BUSY = 16,
    SLUICE_ERR_AUTH = 17, /* AUTHENTICATION_FAILED */
    SLUICE_ERR_INVALID_ARG = 18,
    SLUICE_ERR_UNKNOWN_GROUP = 19,
    SLUICE_ERR_UNKNOWN_MEMBER = 20,
    SLUICE_ERR_REBALANCE = 21,    /* group rebalancing (handled inside) */
    SLUICE_ERR_NOT_ACQUIRED = 22, /* ack of a record this consumer
                                     does not hold */
    SLUICE_ERR_LOCK_EXPIRED = 23,
    SLUICE_ERR_THROTTLED = 24,
    SLUICE_ERR_STORAGE = 25,      /* partition failed on the broker */
    SLUICE_ERR_DISCONNECTED = 26, /* connection lost / broker down */
    SLUICE_ERR_PROTOCOL = 27,     /* unexpected reply from the broker */
    SLUICE_ERR_IO = 28,
    SLUICE_ERR_INVALID_TOPIC = 29, /* invalid topic name */
    SLUICE_ERR_SHUTTING_DOWN = 30,
    SLUICE_ERR_COMPRESSION = 31,
    SLUICE_ERR_NOT_LEADER = 32, /* cluster: ask the partition's leader */
    SLUICE_ERR_NOT_ENOUGH_REPLICAS = 33,  /* cluster: ISR < min-insync */
    SLUICE_ERR_AUTHORIZATION_FAILED = 34, /* no rule allows it (issue 16) */
    /* idempotent producer (docs/cluster.md 4) */
    SLUICE_ERR_OUT_OF_ORDER_SEQUENCE = 35, /* a batch before it was lost */
    SLUICE_ERR_PRODUCER_FENCED = 36,       /* a newer epoch of the id */
    SLUICE_ERR_DUPLICATE_SEQUENCE = 37,    /* broker: stored long ago (the
                                              producer reports success) */
    /* cluster: leader epochs (KIP-320), retried by libsluice */
    SLUICE_ERR_FENCED_LEADER_EPOCH = 38,  /* the client's epoch is stale */
    SLUICE_ERR_UNKNOWN_LEADER_EPOCH = 39, /* the broker's epoch is stale */
    SLUICE_ERR_NOT_COORDINATOR = 40,      /* cluster: the group moved to another
                                             node (consumers follow it) */
    SLUICE_ERR_UNKNOWN_PRODUCER_ID = 41   /* idempotent producer: the leader
                                             lost its state (producers
                                             recover on their own) */
} sluice_err;

/* Issue 16's names of the login and permission errors. */
#define SLUICE_ERR_AUTHENTICATION_FAILED SLUICE_ERR_AUTH

/* System errors: SLUICE_ERR_SYS(ECONNREFUSED) etc. */
#define SLUICE_ERR_SYS_BASE 10000
#define SLUICE_ERR_SYS(e) ((sluice_err)(SLUICE_ERR_SYS_BASE + (e)))
#define SLUICE_ERR_IS_SYS(err) ((int)(err) > SLUICE_ERR_SYS_BASE)
#define SLUICE_ERR_ERRNO(err) ((int)(err)-SLUICE_ERR_SYS_BASE)

/* Static description of err ("unknown topic", strerror for SYS codes).
 * Never NULL. @thread any */
const char *sluice_strerror(int err);
/* Static name of err ("SLUICE_ERR_UNKNOWN_TOPIC", "ECONNREFUSED").
 * Never NULL. @thread any */
const char *sluice_errname(int err);
/* Detail of the last error a libsluice call returned on THIS thread, e.g.
 * "connect 127.0.0.1:7410: Connection refused" or "topic 'x': unknown
 * topic". "" if none. Valid until the next libsluice call on this
 * thread. @thread any (thread-local) */
const char *sluice_errstr(void);

/* ---- configuration --------------------------------------------------- */

/*
 * Keys (values are strings; defaults in brackets):
 *   bootstrap             HOST:PORT of the broker [the environment
 *                         variable SLUICE_BOOTSTRAP if set and not empty,
 *                         else 127.0.0.1:7410]
 *   client.id             name shown in group listings [sluice]
 *   connect.timeout.ms    [5000]
 *   request.timeout.ms    per request, also for sync calls [30000]
 *   reconnect.backoff.ms  between reconnect attempts [100]
 *   delivery.timeout.ms   how long a send (its delivery report) or a
 *                         consumer's poll rides through failures that
 *                         pass: NOT_LEADER, NOT_ENOUGH_REPLICAS, a lost
 *                         or refused connection, a broker restarting. The
 *                         library refreshes the metadata, reconnects (to
 *                         the partition's leader in a cluster) and resends
 *                         the same batch, until this long after the record
 *                         was given to send; then the report carries the
 *                         last error. 0 = no retries (as confluent-kafka's
 *                         message.timeout.ms / delivery.timeout.ms)
 *                         [120000]
 *   retry.backoff.ms      wait between two attempts of one request [100]
 *   max.in.flight         pipelined requests per connection [64]
 *   max.in.flight.process.bytes
 *                         batch bytes in flight over all the producers of
 *                         the process: past it, a producer with a request
 *                         of its own in flight waits for a reply before it
 *                         sends another (one without any always sends);
 *                         so 256 producer threads do not each run up to
 *                         max.in.flight batches ahead of the broker in
 *                         fresh memory. 0 = no bound [33554432]
 * producer:
 *   acks                  none | written | durable [durable]
 *                         none: no reply wanted (report sent=ok, offset -1)
 *                         written: appended to the log; durable: fsynced
 *   enable.idempotence    true | false: the broker stores a batch the
 *                         producer sends again (after a lost connection
 *                         or a failover) once: each batch carries a
 *                         producer id from INIT_PRODUCER_ID and a
 *                         sequence per partition; off with acks=none
 *                         [true, as the Java client since Kafka 3.0;
 *                         librdkafka and confluent-kafka default false]
 *   linger.ms             max wait to fill a batch [5]
 *   batch.size            bytes per partition batch before sending [262144]
 *   batch.records         max records per batch [100000]
 *   compression           none | zstd (level 1) [none]
 *   partitioner           fnv1a (32-bit FNV-1a of the key mod partitions;
 *                         null key: sticky round-robin, one partition per
 *                         batch) [fnv1a]
 *   partitioner.null.key  sticky | round-robin: records without a key go
 *                         to one partition per batch (sticky: fewer,
 *                         bigger batches) or each to the next partition
 *                         (round-robin; the sluice CLI's produce) [sticky]
 *   queue.max.records     records buffered + in flight (reports not yet
 *                         delivered) before send waits for replies
 *                         [1000000]
 * consumer (stream):
 *   group.id              stream group for subscribe/commit [none]
 *   session.timeout.ms    group session timeout [10000]
 *   heartbeat.interval.ms [3000] (sent from poll: poll more often)
 *   auto.offset.reset     earliest | latest: where to start without a
 *                         committed offset [latest]
 *   enable.auto.commit    true | false: commit consumed offsets from poll
 *                         every auto.commit.interval.ms [false]
 *   auto.commit.interval.ms [5000]
 *   fetch.max.bytes       per fetch request [4194304]
 *   fetch.max.wait.ms     broker long-poll wait [500]
 *   fetch.min.bytes       [1]
 * queue consumer:
 *   queue.credits         records the broker may hand out per acquire
 *                         (prefetch); 0 = adaptive [0]: a window that
 *                         starts at 1 record, doubles (up to
 *                         queue.credits.max) while
 *                         the consumer keeps up (it ran out of records
 *                         while the broker had more) and halves when the
 *                         consumer takes over 100 ms for half of it, so a
 *                         slow consumer holds few records and competing
 *                         consumers share the work. A fixed N: an acquire
 *                         carries whole stored batches, so for throughput
 *                         use at least the records per producer batch
 *   queue.credits.max     the adaptive window's ceiling [16384] (the
 *                         broker hands out at most 100000 per acquire)
 *   queue.max.wait.ms     acquire long-poll wait [500]
 *   queue.lock.ms         requested lock duration, 0 = group default [0]
 *   queue.prefetch        true | false: keep the next acquire in flight
 *                         while the buffered records are handed out (sent
 *                         when half a batch is left, ahead of pending
 *                         acks; it asks for at most what keeps the records
 *                         held, buffered + not settled, within
 *                         2 x queue.credits) [true]
 *   queue.max.unacked     at most this many records held (acquired and
 *                         not settled by the caller), as pika's basic_qos
 *                         prefetch_count: 1 = one record at a time; 0 = no
 *                         bound but the window's [0]
 *   ack.batch.records     pending acks that trigger a send [256]
 *   ack.linger.ms         max age of a pending ack before it is sent on
 *                         the next call [10]
 * TLS (librdkafka's names; docs/security.md):
 *   security.protocol     plaintext | ssl: TLS to the broker's
 *                         --tls-listen port [plaintext]
 *   ssl.ca.location       PEM file of the CAs that may sign the broker's
 *                         certificate ["" = the system's CAs]
 *   ssl.certificate.location  client certificate (PEM, chain after it) for
 *                         mutual TLS [none]
 *   ssl.key.location      its private key [the certificate file]
 *   enable.ssl.certificate.verification  true | false: verify the broker's
 *                         certificate (never turn off in production) [true]
 *   ssl.endpoint.identification.algorithm  https | none: the certificate
 *                         must name the bootstrap host (DNS name or IP
 *                         address) [https]
 *                         A failed handshake is SLUICE_ERR_DISCONNECTED with
 *                         the reason in sluice_errstr(): expired, untrusted,
 *                         another host, client certificate required.
 */
typedef struct sluice_conf sluice_conf;

/* Caller frees with sluice_conf_free. NULL only on out of memory. */
sluice_conf *sluice_conf_new(void);
/* Accepts NULL. */
void sluice_conf_free(sluice_conf *conf);
/* Deep copy; caller frees. NULL on out of memory. */
sluice_conf *sluice_conf_dup(const sluice_conf *conf);
/* Set key to value (both copied). SLUICE_ERR_INVALID_CONFIG with errstr
 * naming the key/value when the key is unknown or the value invalid. */
sluice_err sluice_conf_set(sluice_conf *conf, const char *key,
                           const char *value, char *errstr, size_t errstr_size);
/* Current value of key as a string (default if unset), borrowed until
 * the next sluice_conf_set on conf; NULL for an unknown key. */
const char *sluice_conf_get(const sluice_conf *conf, const char *key);

/* ---- records, headers, messages -------------------------------------- */

#define SLUICE_PARTITION_ANY (-1)    /* let the partitioner choose */
#define SLUICE_OFFSET_END (-1)       /* next offset to be written */
#define SLUICE_OFFSET_BEGINNING (-2) /* earliest offset still stored */
#define SLUICE_OFFSET_STORED                                                   \
    (-3) /* committed offset of the group,                                     \
            else auto.offset.reset */

typedef struct sluice_header {
    const char *key; /* not NUL-terminated in messages: use key_len */
    size_t key_len;
    const void *value; /* NULL = null value */
    size_t value_len;
} sluice_header;

/*
 * A received message. All pointers belong to the message and stay valid
 * until sluice_message_free (it keeps the data alive even after its
 * consumer is freed). key/value are NULL when null (key_len/value_len 0);
 * they are NOT NUL-terminated. topic is NUL-terminated.
 */
typedef struct sluice_message {
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp; /* ms since the epoch (producer's create time) */
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    const sluice_header *headers;
    size_t header_count;
    /* queue consumers only (0 for stream consumers): */
    uint32_t attempts;     /* deliveries so far, this one included */
    uint32_t failures;     /* nacks, rejects, lock expiries so far */
    int64_t lock_deadline; /* ms since the epoch; 0 if unknown */
} sluice_message;

/* Accepts NULL. @thread any */
void sluice_message_free(sluice_message *msg);
/* First header with this key (NUL-terminated), or NULL. Borrowed from
 * msg. */
const sluice_header *sluice_message_header(const sluice_message *msg,
                                           const char *key);

typedef struct sluice_topic_partition {
    const char *topic; /* borrowed (input) or owned by its list (output) */
    int32_t partition;
    int64_t offset; /* meaning depends on the call */
} sluice_topic_partition;

/* The partitioner: FNV-1a 32-bit hash of key, mod partitions (as an
 * unsigned value). Returns -1 if partitions <= 0. Stable across versions:
 * other clients may reproduce it. @thread any */
int32_t sluice_partition_for_key(const void *key, size_t key_len,
                                 int32_t partitions);

/* ---- producer -------------------------------------------------------- */

typedef struct sluice_producer sluice_producer;

/* One delivery report per record sent. Pointers borrowed for the
 * duration of the callback. */
typedef struct sluice_delivery {
    const char *topic;
    int32_t partition; /* -1 if it failed before a partition was chosen */
    int64_t offset;    /* -1 on error or with acks=none */
    int64_t timestamp; /* the record's timestamp, ms */
    sluice_err err;    /* SLUICE_OK or why the record was not stored */
    void *opaque;      /* msg_opaque given to sluice_producer_send */
} sluice_delivery;

typedef void (*sluice_delivery_cb)(const sluice_delivery *report,
                                   void *cb_opaque);

/* Delivery reports go to cb (on the thread calling
 * sluice_producer_poll/flush). Without it, reports are counted only. */
void sluice_conf_set_delivery_cb(sluice_conf *conf, sluice_delivery_cb cb,
                                 void *cb_opaque);

/*
 * Connect to conf's bootstrap and create a producer (conf is copied;
 * NULL = defaults). On success *out owns the producer: free with
 * sluice_producer_free. Fails with the connect error (errstr names the
 * address) or SLUICE_ERR_INVALID_CONFIG.
 */
sluice_err sluice_producer_new(const sluice_conf *conf, sluice_producer **out,
                               char *errstr, size_t errstr_size);
/*
 * Queue one record (key, value and headers are copied; each may be NULL
 * = null). partition: SLUICE_PARTITION_ANY or an explicit partition.
 * timestamp 0 = now. msg_opaque comes back in the delivery report.
 * May do I/O: sends a batch that filled up (without waiting for the
 * socket to take more than 4 MiB of it), and when queue.max.records
 * records are outstanding it first waits for every request in flight to
 * be answered (reports then wait for sluice_producer_poll/flush: call
 * poll regularly). Errors returned here mean the record was NOT queued
 * and no report will come: SLUICE_ERR_INVALID_TOPIC,
 * SLUICE_ERR_UNKNOWN_PARTITION (partition >= the topic's count),
 * SLUICE_ERR_INVALID_ARG, SLUICE_ERR_TOO_LARGE, SLUICE_ERR_DISCONNECTED
 * (metadata could not be fetched). A topic the broker does not know is
 * produced to partition 0 (the broker may create it on first produce);
 * if it does not, the reports carry SLUICE_ERR_UNKNOWN_TOPIC.
 */
sluice_err sluice_producer_send(sluice_producer *p, const char *topic,
                                int32_t partition, const void *key,
                                size_t key_len, const void *value,
                                size_t value_len, const sluice_header *headers,
                                size_t header_count, int64_t timestamp,
                                void *msg_opaque);
/* Send batches whose linger expired, read replies, and deliver reports.
 * Waits up to timeout_ms (0 = don't wait, -1 = forever) for at least one
 * report. Returns the number of reports delivered (>= 0). */
int sluice_producer_poll(sluice_producer *p, int timeout_ms);
/* Send everything queued and wait for all reports (delivered through the
 * callback) up to timeout_ms (-1 = forever). SLUICE_OK when nothing is
 * outstanding, SLUICE_ERR_TIMEOUT otherwise. Per-record failures are in
 * the reports, not in this return value. */
sluice_err sluice_producer_flush(sluice_producer *p, int timeout_ms);
/* Records queued or in flight (reports not yet delivered). */
size_t sluice_producer_outstanding(sluice_producer *p);
/* Number of partitions of topic (metadata, cached). */
sluice_err sluice_producer_partitions(sluice_producer *p, const char *topic,
                                      int32_t *count);
/* Close and free. Does NOT flush: records without a report are dropped
 * silently (call sluice_producer_flush first). Accepts NULL. */
void sluice_producer_free(sluice_producer *p);

/* ---- stream consumer ------------------------------------------------- */

typedef struct sluice_consumer sluice_consumer;

/* Connect and create a stream consumer (conf copied; NULL = defaults).
 * Free with sluice_consumer_free. */
sluice_err sluice_consumer_new(const sluice_conf *conf, sluice_consumer **out,
                               char *errstr, size_t errstr_size);
/*
 * Consume exactly these partitions (replaces any previous assignment or
 * subscription). tps[i].offset is where to start: an offset >= 0,
 * SLUICE_OFFSET_BEGINNING, SLUICE_OFFSET_END or SLUICE_OFFSET_STORED
 * (needs group.id). Topic names are copied. Unknown topic/partition:
 * SLUICE_ERR_UNKNOWN_TOPIC / SLUICE_ERR_UNKNOWN_PARTITION. With
 * enable.auto.commit and group.id the positions of the previous
 * assignment or subscription are committed first, synchronously (as
 * Kafka's assign() does; a failure is counted as an auto-commit failure).
 */
sluice_err sluice_consumer_assign(sluice_consumer *c,
                                  const sluice_topic_partition *tps,
                                  size_t count);
/* Assign every partition of topic starting at offset (as above). */
sluice_err sluice_consumer_assign_topic(sluice_consumer *c, const char *topic,
                                        int64_t offset);
/*
 * Join the stream group group.id (required) for these topics; the broker
 * assigns partitions across members and rebalances on join/leave/timeout.
 * Each partition starts at the group's committed offset, else at
 * auto.offset.reset. Joining happens here; in a cluster a join whose
 * coordinator died, paused (no reply within request.timeout.ms) or moved
 * is sent again to the new coordinator, under the same member id, for up
 * to delivery.timeout.ms. Heartbeats and rejoins happen inside poll.
 * With enable.auto.commit the positions of a previous subscription or
 * assignment are committed first.
 */
sluice_err sluice_consumer_subscribe(sluice_consumer *c,
                                     const char *const *topics, size_t count);
/* Current assignment. On success *out is an array of *count entries the
 * caller frees with sluice_topic_partitions_free (offset = position: the
 * next offset poll returns). */
sluice_err sluice_consumer_assignment(sluice_consumer *c,
                                      sluice_topic_partition **out,
                                      size_t *count);
void sluice_topic_partitions_free(sluice_topic_partition *tps, size_t count);
/* Move the position of an assigned partition (offset or SLUICE_OFFSET_*).
 * SLUICE_ERR_INVALID_ARG if the partition is not assigned. */
sluice_err sluice_consumer_seek(sluice_consumer *c, const char *topic,
                                int32_t partition, int64_t offset);
/* Seek an assigned partition (partition -1: every assigned partition of
 * topic) to the first record with timestamp >= ts_ms (end if none). */
sluice_err sluice_consumer_seek_time(sluice_consumer *c, const char *topic,
                                     int32_t partition, int64_t ts_ms);
/* First offset whose timestamp >= ts_ms (the log end if none). */
sluice_err sluice_consumer_offset_for_time(sluice_consumer *c,
                                           const char *topic, int32_t partition,
                                           int64_t ts_ms, int64_t *offset);
/* Earliest stored offset and log end (next offset to be written). */
sluice_err sluice_consumer_watermarks(sluice_consumer *c, const char *topic,
                                      int32_t partition, int64_t *low,
                                      int64_t *high);
/*
 * Next message, waiting up to timeout_ms (0 = no wait, -1 = forever).
 * On SLUICE_OK *out is a message the caller frees with
 * sluice_message_free. SLUICE_ERR_TIMEOUT when nothing arrived;
 * SLUICE_ERR_INVALID_ARG when nothing is assigned; fetch errors of a
 * partition (e.g. SLUICE_ERR_OFFSET_OUT_OF_RANGE) are returned once, with
 * sluice_errstr() naming the partition.
 */
sluice_err sluice_consumer_poll(sluice_consumer *c, int timeout_ms,
                                sluice_message **out);
/* Like poll, up to max messages at once (fewer if fewer are buffered):
 * msgs[0..*count) each freed by the caller. Cheaper per message. */
sluice_err sluice_consumer_poll_batch(sluice_consumer *c, int timeout_ms,
                                      sluice_message **msgs, size_t max,
                                      size_t *count);
/* Commit the position (offset after the last message poll returned) of
 * every assigned partition to group.id, synchronously. */
sluice_err sluice_consumer_commit(sluice_consumer *c);
/* Commit explicit offsets (the NEXT offset to consume, Kafka style). */
sluice_err sluice_consumer_commit_offsets(sluice_consumer *c,
                                          const sluice_topic_partition *tps,
                                          size_t count);
/* Committed offset of group.id for a partition; -1 if none. */
sluice_err sluice_consumer_committed(sluice_consumer *c, const char *topic,
                                     int32_t partition, int64_t *offset);
/* Auto-commits (enable.auto.commit: from poll, and on free or a new
 * subscribe/assign) that failed. A failed auto-commit is sent again, with
 * the positions of then, at the next poll reconnect.backoff.ms later (to
 * the new coordinator after a failover), unless a rebalance fenced it.
 * If err is not NULL it receives the last failure's message ("" if none).
 */
uint64_t sluice_consumer_auto_commit_failures(sluice_consumer *c, char *err,
                                              size_t err_size);
/* With enable.auto.commit and a group, commit the positions first
 * (synchronously, riding through a coordinator failover as
 * sluice_consumer_commit does, for up to request.timeout.ms or
 * delivery.timeout.ms if shorter). Then leave the
 * group (if subscribed), close and free. Blocks up to request.timeout.ms
 * for the leave. Accepts NULL. */
void sluice_consumer_free(sluice_consumer *c);

/* ---- queue consumer -------------------------------------------------- */

typedef struct sluice_queue_consumer sluice_queue_consumer;

/*
 * Connect and consume topic as a member of queue group `group` (names
 * copied): competing consumers, per-record ack. Records are acquired with
 * a lock; settle each one with ack, nack, reject (or keep it alive with
 * touch). Free with sluice_queue_consumer_free.
 */
sluice_err sluice_queue_consumer_new(const sluice_conf *conf, const char *topic,
                                     const char *group,
                                     sluice_queue_consumer **out, char *errstr,
                                     size_t errstr_size);
/*
 * Next acquired record, waiting up to timeout_ms (0 / -1 as above); sends
 * pending acks when ack.batch.records or ack.linger.ms is reached (poll
 * reads their replies as they come but never waits for them: flush does).
 * On SLUICE_OK *out is freed by the caller with sluice_message_free
 * (freeing does NOT ack). msg->attempts / failures are the counts.
 * SLUICE_ERR_TIMEOUT when nothing was available.
 */
sluice_err sluice_queue_consumer_poll(sluice_queue_consumer *qc, int timeout_ms,
                                      sluice_message **out);
sluice_err sluice_queue_consumer_poll_batch(sluice_queue_consumer *qc,
                                            int timeout_ms,
                                            sluice_message **msgs, size_t max,
                                            size_t *count);
/*
 * Settle records. These queue the operation locally (coalesced with
 * neighbours into offset ranges) and return SLUICE_OK at once; the batch
 * goes out on poll or flush, or when ack.batch.records are pending.
 * The broker's verdict (e.g. SLUICE_ERR_NOT_ACQUIRED after a lock
 * expired) is returned by the next sluice_queue_consumer_flush.
 *   ack:    done, never redelivered.
 *   nack:   available again after delay_ms (-1 = the group's backoff
 *           policy); counts a failure.
 *   reject: straight to the dead-letter topic with reason (NULL =
 *           "rejected"); counts a failure.
 */
sluice_err sluice_queue_consumer_ack(sluice_queue_consumer *qc,
                                     int32_t partition, int64_t offset);
sluice_err sluice_queue_consumer_nack(sluice_queue_consumer *qc,
                                      int32_t partition, int64_t offset,
                                      int64_t delay_ms);
sluice_err sluice_queue_consumer_reject(sluice_queue_consumer *qc,
                                        int32_t partition, int64_t offset,
                                        const char *reason);
/* Extend the lock of a held record to now + lock_ms (0 = the group's lock
 * time), synchronously (also sends pending acks). On success *deadline
 * (may be NULL) is the new deadline in ms since the epoch as computed by
 * the client (now + lock_ms), or 0 when lock_ms is 0 (not known here). */
sluice_err sluice_queue_consumer_touch(sluice_queue_consumer *qc,
                                       int32_t partition, int64_t offset,
                                       int64_t lock_ms, int64_t *deadline);
/* Send every pending ack/nack/reject and wait for the broker's answers
 * (up to timeout_ms, -1 = forever). SLUICE_OK if all succeeded since the
 * last flush; else the first error, sluice_errstr() naming the record
 * and how many failed. */
sluice_err sluice_queue_consumer_flush(sluice_queue_consumer *qc,
                                       int timeout_ms);
/* Records acquired (incl. buffered ones) and not yet settled by the
 * caller. */
size_t sluice_queue_consumer_held(sluice_queue_consumer *qc);
/*
 * Send pending acks/nacks/rejects and wait for their replies, then close
 * the consumer's connection (each queue consumer has its own) and free.
 * The broker releases every record still held (acquired, or buffered,
 * and not settled by the caller) when that connection closes: available
 * again at once, attempts kept (the next delivery has attempts + 1) and
 * NO failure counted; a record already at the group's max deliveries is
 * dead-lettered (docs/groups.md). Settle what you processed before
 * freeing. Blocks up to request.timeout.ms (plus a long poll still in
 * flight). Accepts NULL.
 */
void sluice_queue_consumer_free(sluice_queue_consumer *qc);

/* ---- admin ----------------------------------------------------------- */

typedef struct sluice_admin sluice_admin;

typedef struct sluice_kv {
    char *key;
    char *value;
} sluice_kv;

typedef struct sluice_partition_info {
    int32_t partition;
    int64_t log_start; /* earliest stored offset */
    int64_t log_end;   /* next offset to be written */
} sluice_partition_info;

typedef struct sluice_topic_info {
    char *name;
    int32_t partition_count;
    sluice_partition_info *partitions; /* partition_count entries */
    size_t config_count;
    sluice_kv *configs;
} sluice_topic_info;

typedef struct sluice_topic_list {
    size_t count;
    sluice_topic_info *topics;
} sluice_topic_list;

typedef enum sluice_group_kind {
    SLUICE_GROUP_STREAM = 0,
    SLUICE_GROUP_QUEUE = 1
} sluice_group_kind;

typedef struct sluice_group_member {
    char *member_id;
    char *client_id;
    size_t assignment_count;             /* stream groups */
    sluice_topic_partition *assignments; /* offset unused (-1) */
} sluice_group_member;

typedef struct sluice_group_partition {
    char *topic;
    int32_t partition;
    int64_t committed; /* stream: committed offset; queue: start offset
                          (everything below is done); -1 if none */
    int64_t log_end;
    int64_t lag;       /* log_end - committed */
    int64_t in_flight; /* queue: acquired records; -1 for streams */
    int64_t available; /* queue: in window and available; -1 if unknown */
} sluice_group_partition;

typedef struct sluice_group_info {
    char *name;
    sluice_group_kind kind;
    char *state; /* e.g. "stable", "rebalancing", "empty" */
    int32_t generation;
    char *dlq_topic;              /* queue groups; NULL otherwise */
    int64_t dlq_depth;            /* records in the DLQ topic; -1 if unknown */
    size_t member_count;          /* members (also from list) */
    sluice_group_member *members; /* NULL from list_groups */
    size_t partition_count;
    sluice_group_partition *partitions; /* NULL from list_groups */
} sluice_group_info;

typedef struct sluice_group_list {
    size_t count;
    sluice_group_info *groups;
} sluice_group_list;

typedef struct sluice_dlq_info {
    char *topic;        /* the dead-letter topic, e.g. "orders.DLQ" */
    char *source_topic; /* the queue it serves, e.g. "orders" */
    int64_t depth;      /* records currently stored */
} sluice_dlq_info;

typedef struct sluice_dlq_list {
    size_t count;
    sluice_dlq_info *dlqs;
} sluice_dlq_list;

/* Connect; free with sluice_admin_free. */
sluice_err sluice_admin_new(const sluice_conf *conf, sluice_admin **out,
                            char *errstr, size_t errstr_size);
void sluice_admin_free(sluice_admin *a); /* accepts NULL */

/* partitions <= 0 = broker default. configs: count key/value pairs
 * (e.g. {"flush","interval"}), may be NULL. SLUICE_ERR_TOPIC_EXISTS,
 * SLUICE_ERR_INVALID_TOPIC, SLUICE_ERR_INVALID_CONFIG. */
sluice_err sluice_admin_create_topic(sluice_admin *a, const char *name,
                                     int32_t partitions,
                                     const sluice_kv *configs, size_t count);
sluice_err sluice_admin_delete_topic(sluice_admin *a, const char *name);
/* Every topic with its partitions (offsets) and configs, as
 * sluice_admin_describe_topic gives one. Caller frees *out with
 * sluice_topic_list_free. In a cluster both read your writes: they see
 * every change answered before they were called, through any node
 * (docs/cluster.md 2.7; one admin round trip more). */
sluice_err sluice_admin_list_topics(sluice_admin *a, sluice_topic_list **out);
void sluice_topic_list_free(sluice_topic_list *list);
/* With per-partition offsets and configs. Caller frees *out with
 * sluice_topic_info_free. */
sluice_err sluice_admin_describe_topic(sluice_admin *a, const char *name,
                                       sluice_topic_info **out);
void sluice_topic_info_free(sluice_topic_info *info);

/* The cluster as the node answering sees it (CLUSTER_STATUS,
 * docs/cluster.md): node_id 0 means a single node (no cluster). */
typedef struct sluice_cluster_node {
    int32_t id;
    int up; /* 1 = the metadata leader hears from it (not fenced) */
    char *raft_addr, *addr, *stomp_addr; /* addr/stomp_addr may be "" */
} sluice_cluster_node;

typedef struct sluice_cluster_partition {
    int32_t partition;
    int32_t leader; /* node id, -1 = offline */
    int32_t leader_epoch;
    size_t replica_count;
    int32_t *replicas;
    size_t isr_count;
    int32_t *isr;
} sluice_cluster_partition;

typedef struct sluice_cluster_status {
    int32_t node_id;   /* the node that answered; 0 = single node */
    int32_t leader_id; /* metadata leader; 0 = none known */
    uint64_t term, applied;
    size_t node_count;
    sluice_cluster_node *nodes;
    size_t partition_count; /* placement of `topic`, when one was given */
    sluice_cluster_partition *partitions;
} sluice_cluster_status;

/* topic may be NULL. SLUICE_ERR_UNKNOWN_TOPIC when a topic was given and
 * the cluster has no such topic. Caller frees *out with
 * sluice_cluster_status_free. */
sluice_err sluice_admin_cluster_status(sluice_admin *a, const char *topic,
                                       sluice_cluster_status **out);
void sluice_cluster_status_free(sluice_cluster_status *s);

/* Caller frees *out with sluice_group_list_free. */
sluice_err sluice_admin_list_groups(sluice_admin *a, sluice_group_list **out);
void sluice_group_list_free(sluice_group_list *list);
/* Members, offsets, lag, in-flight, DLQ depth. SLUICE_ERR_UNKNOWN_GROUP.
 * Caller frees *out with sluice_group_info_free. */
sluice_err sluice_admin_describe_group(sluice_admin *a, const char *group,
                                       sluice_group_info **out);
void sluice_group_info_free(sluice_group_info *info);

/* Dead-letter topics (of source_topic only, or all if NULL). Caller frees
 * *out with sluice_dlq_list_free. */
sluice_err sluice_admin_dlq_list(sluice_admin *a, const char *source_topic,
                                 sluice_dlq_list **out);
void sluice_dlq_list_free(sluice_dlq_list *list);
/*
 * Move records from dead-letter topic dlq_topic back to to_topic (NULL =
 * each record's original topic, from its headers) at most rate records/s
 * (0 = unlimited), only those whose DLQ reason equals reason (NULL = all),
 * at most max_records (-1 = all currently there). The broker does the
 * move (DLQ_REDRIVE): records keep key, value and headers, and a record
 * is redriven once. Blocks until done (up to request.timeout.ms: raise it
 * for slow rates). *moved (may be NULL) = records moved.
 */
sluice_err sluice_admin_dlq_redrive(sluice_admin *a, const char *dlq_topic,
                                    const char *to_topic, double rate,
                                    const char *reason, int64_t max_records,
                                    int64_t *moved);

/*
 * Queue-group settings (QUEUE_GROUP_CONFIG). mode:
 *   SLUICE_QGROUP_UPSERT   create the group on topic if missing (with the
 *                          broker's defaults), then set the given keys
 *   SLUICE_QGROUP_ALTER    SLUICE_ERR_UNKNOWN_GROUP if the group is missing
 *   SLUICE_QGROUP_DESCRIBE change nothing; count must be 0
 *                          (SLUICE_ERR_UNKNOWN_GROUP if missing)
 * configs: count key/value pairs, borrowed for the call (may be NULL when
 * count is 0). Keys (see docs/groups.md): max_deliveries, lock_ms,
 * backoff_initial_ms, backoff_max_ms, backoff_multiplier, ttl_ms,
 * dlq_expired, key_ordered, max_inflight, max_delayed, start, dlq_topic
 * ('-' and '.' in a key count as '_'). The change is all or nothing: an
 * unknown key or a bad value fails with SLUICE_ERR_INVALID_CONFIG and
 * sluice_errstr() naming the key (e.g. "queue group config 'g' on 'orders':
 * unknown queue group setting 'max_delivery'"), and nothing is changed.
 * On SLUICE_OK, if out is not NULL, *out / *out_count are the group's
 * effective settings after the change followed by read-only broker-wide
 * counters whose keys start with "stats."; the caller frees *out with
 * sluice_kv_array_free(*out, *out_count). @thread any
 */
typedef enum sluice_qgroup_config_mode {
    SLUICE_QGROUP_UPSERT = 0,
    SLUICE_QGROUP_ALTER = 1,
    SLUICE_QGROUP_DESCRIBE = 2
} sluice_qgroup_config_mode;

sluice_err sluice_admin_queue_group_config(sluice_admin *a, const char *topic,
                                           const char *group,
                                           sluice_qgroup_config_mode mode,
                                           const sluice_kv *configs,
                                           size_t count, sluice_kv **out,
                                           size_t *out_count);
/* Frees count entries (keys, values) and the array. Accepts NULL. */
void sluice_kv_array_free(sluice_kv *kvs, size_t count);

/*
 * Management verbs (the ADMIN api, docs/protocol.md 4.29): one call per
 * operation, answered with a JSON document (UTF-8, NUL-terminated; the
 * same document the HTTP API returns for it). Verbs and their arguments
 * (keys may repeat, e.g. "config"):
 *   version, status                 broker version / uptime, listeners...
 *   topics; topic (topic)           topics, one topic with partitions
 *   topic.create (topic, partitions, config=k=v...), topic.delete (topic)
 *   topic.alter (topic, config=k=v...; an empty value removes it)
 *   topic.add_partitions (topic, count = the new total)
 *   groups; group (group)           every group; one group in detail
 *   group.delete (group)
 *   group.reset (group, topic, to = earliest|latest|offset|time, value)
 *   queues                          every queue group x topic: ready,
 *                                   in_flight, delayed, consumers, DLQ
 *   queue.purge (topic, group), queue.peek (topic, group, count)
 *   dlq.list (topic?), dlq.show (dlq, count, all), dlq.purge (dlq)
 * args: count pairs, borrowed for the call. On SLUICE_OK *json_out (may
 * be NULL) is the document, freed by the caller with sluice_free, and
 * *json_len (may be NULL) its length. Errors: the broker's code with
 * sluice_errstr() naming the problem (SLUICE_ERR_UNKNOWN_TOPIC,
 * SLUICE_ERR_UNKNOWN_GROUP, SLUICE_ERR_INVALID_ARG for an unknown verb
 * or a bad argument, SLUICE_ERR_BUSY for a reset of a stream group with
 * members, ...). @thread any
 */
sluice_err sluice_admin_call(sluice_admin *a, const char *verb,
                             const sluice_kv *args, size_t count,
                             char **json_out, size_t *json_len);
/* Frees memory libsluice handed out as a plain buffer (admin JSON).
 * Accepts NULL. */
void sluice_free(void *p);

#ifdef __cplusplus
}
#endif

#endif
