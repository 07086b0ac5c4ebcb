/*
 * api.h - the Sluice binary protocol: api keys, versions, request and
 * response structures, encoders and decoders. Pure codec: no I/O.
 *
 * The wire format is specified byte by byte in docs/protocol.md; this header
 * is the C view of it. Shared by the broker (decode requests, encode
 * responses) and libsluice (encode requests, decode responses).
 *
 * Framing (protocol/frame.h):
 *
 *   request  = u32 length | u16 api_key | u16 api_version | u32 corr_id | body
 *   response = u32 length | u32 corr_id | i32 error | body
 *
 * `length` counts the bytes after itself. Everything is little-endian.
 * Strings are "str16": u16 length + bytes (no NUL); 0xFFFF = null.
 * Byte strings are "bytes32": u32 length + bytes. Arrays are a u32 count
 * followed by the elements.
 *
 * Top-level response error: every response body starts with an i32 error
 * (an sl_err). When it is not SL_OK, a str16 message naming the problem
 * follows and the body ENDS there (no API-specific fields). This is also the
 * shape of the replies to unknown api keys (SL_ERR_UNSUPPORTED_API),
 * unsupported versions (SL_ERR_UNSUPPORTED_VERSION) and malformed requests
 * (SL_ERR_MALFORMED). Per-item errors (per topic, partition, range) are
 * i32 fields inside a successful body.
 *
 * C conventions of this header:
 * - sl_str: a borrowed, length-counted string, NOT NUL-terminated. p == NULL
 *   is the null string (encoded as 0xFFFF); {"" , 0} is the empty string.
 * - Encoders (`*_encode`) append ONE WHOLE FRAME (length prefix included) to
 *   wb at wb->len, so several requests can be pipelined in one buffer. They
 *   return SL_OK, SL_ERR_NOMEM, SL_ERR_TOO_LARGE (a string >= 65535 bytes,
 *   or a frame >= 4 GiB) or SL_ERR_INVALID_ARG; on failure wb->len is
 *   restored to what it was and wb->err cleared.
 * - Request decoders (`*_req_decode`) take the request BODY: the bytes after
 *   the 12-byte request header (frame + SL_REQ_HDR_SIZE). Response decoders
 *   (`*_resp_decode`) take the response BODY starting at the i32 error
 *   (frame + SL_RESP_HDR_SIZE). They read only through sl_rd and return
 *   SL_OK, SL_ERR_MALFORMED (truncated input, trailing bytes, counts larger
 *   than the remaining bytes could hold, bad enum values), SL_ERR_NOMEM,
 *   or SL_ERR_TOO_LARGE (the arena's limit, see sl_arena).
 *   *out is written only on success.
 * - Decoded structures BORROW from the input buffer (strings, record bytes)
 *   and from the arena (arrays): both must outlive the structure. Arrays are
 *   allocated in the caller's sl_arena; before allocating, every count is
 *   checked against the bytes left (count * minimum element size), so the
 *   memory a decoder uses is bounded by a small multiple of the frame size.
 *   On error the arena may hold partial allocations: reset or fini it.
 * - A response decoder that reads a non-zero top-level error fills only
 *   out->error and out->error_msg (other fields zero) and returns SL_OK.
 * - All functions are @thread any (no shared state).
 */
#ifndef SL_API_H
#define SL_API_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/err.h"
#include "protocol/frame.h"
#include "protocol/rd.h"

/* ---- api keys and versions ------------------------------------------- */

enum sl_api_key {
    SL_API_HANDSHAKE = 0,
    SL_API_METADATA = 1,
    SL_API_CREATE_TOPICS = 2,
    SL_API_DELETE_TOPICS = 3,
    SL_API_LIST_TOPICS = 4,
    SL_API_PRODUCE = 5,
    SL_API_FETCH = 6,
    SL_API_LIST_OFFSETS = 7,
    /* stream groups */
    SL_API_GROUP_JOIN = 10,
    SL_API_GROUP_HEARTBEAT = 11,
    SL_API_GROUP_LEAVE = 12,
    SL_API_OFFSET_COMMIT = 13,
    SL_API_OFFSET_FETCH = 14,
    SL_API_GROUP_LIST = 15,
    SL_API_GROUP_DESCRIBE = 16,
    /* queue groups */
    SL_API_QUEUE_ACQUIRE = 20,
    SL_API_QUEUE_ACK = 21,
    SL_API_QUEUE_NACK = 22,
    SL_API_QUEUE_REJECT = 23,
    SL_API_QUEUE_TOUCH = 24,
    SL_API_DLQ_LIST = 25,
    SL_API_DLQ_REDRIVE = 26,
    SL_API_QUEUE_GROUP_CONFIG = 27,
    SL_API_CLUSTER_STATUS = 28,
    /* management */
    SL_API_ADMIN = 29,
    SL_API_CLUSTER_FORWARD = 30,
    /* authentication (before any other request but HANDSHAKE) */
    SL_API_SASL_HANDSHAKE = 31,
    SL_API_SASL_AUTHENTICATE = 32,
    /* idempotent producer (docs/cluster.md 4) */
    SL_API_INIT_PRODUCER_ID = 33,
    SL_API__MAX = 34 /* one past the largest key */
};

/* Every api is at version 1. */
#define SL_API_V1 1

typedef struct sl_api_info {
    uint16_t key;
    const char *name; /* "PRODUCE" */
    uint16_t min_version;
    uint16_t max_version;
} sl_api_info;

/* The info for key, or NULL for an unknown key. */
const sl_api_info *sl_api_lookup(uint16_t key);
/* All known apis, ordered by key; *n = how many. Static storage. */
const sl_api_info *sl_api_all(size_t *n);
/* "PRODUCE", or "UNKNOWN" for an unknown key. Never NULL. */
const char *sl_api_name(uint16_t key);
/* SL_OK, SL_ERR_UNSUPPORTED_API (unknown key) or
 * SL_ERR_UNSUPPORTED_VERSION (known key, version outside its range). */
sl_err sl_api_check(uint16_t key, uint16_t version);

/* ---- common types ----------------------------------------------------- */

typedef struct sl_str {
    const char *p; /* borrowed; NULL = null string */
    size_t len;
} sl_str;

/* A string literal or NUL-terminated string as an sl_str (NULL -> null). */
sl_str sl_str_c(const char *s);
#define SL_STR_LIT(s) ((sl_str){(s), sizeof(s) - 1})
/* 1 if a equals the NUL-terminated b (null equals only NULL). */
int sl_str_eq(sl_str a, const char *b);

typedef struct sl_kv {
    sl_str key;
    sl_str value;
} sl_kv;

/*
 * sl_arena: a bump allocator for decoded arrays. Chunked malloc; nothing is
 * freed individually. sl_arena_reset frees everything but keeps one chunk
 * for reuse; sl_arena_fini frees all (accepts a zeroed arena).
 *
 * Memory bound: decoded arrays take at most 8 times the bytes of the body
 * they come from (an empty str16 is 2 bytes on the wire and a 16-byte
 * sl_str), plus chunk overhead. A broker that wants a tighter cap than
 * 8 x max frame sets a limit: an allocation beyond it fails, and a decoder
 * then returns SL_ERR_TOO_LARGE (rather than SL_ERR_NOMEM).
 */
typedef struct sl_arena_chunk sl_arena_chunk;
typedef struct sl_arena {
    sl_arena_chunk *head; /* owned */
    size_t used;          /* bytes handed out since init/reset */
    size_t limit;         /* 0 = unlimited */
    int over_limit;       /* set when an allocation hit the limit */
} sl_arena;

void sl_arena_init(sl_arena *a);
/* Cap the bytes handed out between resets (0 = unlimited; the default). */
void sl_arena_set_limit(sl_arena *a, size_t limit);
void sl_arena_reset(sl_arena *a);
void sl_arena_fini(sl_arena *a);
/* n bytes aligned for any type, zeroed; NULL on allocation failure or when
 * the limit would be exceeded (then a->over_limit = 1). */
void *sl_arena_alloc(sl_arena *a, size_t n);

/* A topic with a list of partition ids (assignments, offset fetch). */
typedef struct sl_topic_parts {
    sl_str topic;
    uint32_t nparts;
    uint32_t *parts;
} sl_topic_parts;

/* One (topic, partition) pair. */
typedef struct sl_tp {
    sl_str topic;
    uint32_t partition;
} sl_tp;

/* Result of a per-partition operation without payload. */
typedef struct sl_part_err {
    uint32_t partition;
    int32_t error;
} sl_part_err;

typedef struct sl_part_err_topic {
    sl_str topic;
    uint32_t nparts;
    sl_part_err *parts;
} sl_part_err_topic;

/* Result of a per-topic admin operation. */
typedef struct sl_topic_result {
    sl_str name;
    int32_t error;
    sl_str message; /* null when error == SL_OK */
} sl_topic_result;

/*
 * Error-only response (any api): u32 length, u32 corr, i32 err, str16 msg.
 * msg may be NULL. err must not be SL_OK.
 */
sl_err sl_resp_error_encode(sl_wb *wb, uint32_t corr, int32_t err,
                            const char *msg);
/*
 * Read the top-level error of a response body. *err always set on SL_OK;
 * *msg set to the message (null string when err == SL_OK). Returns
 * SL_ERR_MALFORMED if the body is too short. Works for every api.
 */
sl_err sl_resp_error_decode(const uint8_t *body, size_t len, int32_t *err,
                            sl_str *msg);

/* ---- records blobs ---------------------------------------------------- */

/*
 * A "records" field (produce, fetch, queue acquire) holds zero or more whole
 * record batches back to back (protocol/batch.h). Iterate them:
 *     size_t off = 0, boff, blen; sl_err e;
 *     while (sl_records_next(p, len, &off, &boff, &blen, &e)) ... p + boff
 * Returns 1 with *batch_off / *batch_len set (and *off advanced past the
 * batch), 0 at the end. On a bad batch header or a batch that overruns len,
 * returns 0 with *err = SL_ERR_MALFORMED or SL_ERR_TOO_LARGE (err may be
 * NULL; it is set to SL_OK at a clean end). Checks framing only, not CRCs.
 */
int sl_records_next(const uint8_t *p, size_t len, size_t *off,
                    size_t *batch_off, size_t *batch_len, sl_err *err);

/* ---- 0 HANDSHAKE ------------------------------------------------------ */

typedef struct sl_api_range {
    uint16_t api_key;
    uint16_t min_version;
    uint16_t max_version;
} sl_api_range;

typedef struct sl_handshake_req {
    sl_str client_name;
    uint32_t napis; /* 0 = "tell me everything you support" */
    sl_api_range *apis;
} sl_handshake_req;

typedef struct sl_handshake_resp {
    int32_t error;
    sl_str error_msg;
    sl_str server_name;    /* "sluiced" */
    sl_str server_version; /* "0.1.0" */
    uint32_t max_frame;    /* largest frame the server accepts (bytes) */
    uint32_t napis;        /* every api the server supports */
    sl_api_range *apis;
} sl_handshake_resp;

sl_err sl_handshake_req_encode(sl_wb *wb, uint32_t corr,
                               const sl_handshake_req *r);
sl_err sl_handshake_req_decode(const uint8_t *body, size_t len, sl_arena *a,
                               sl_handshake_req *out);
sl_err sl_handshake_resp_encode(sl_wb *wb, uint32_t corr,
                                const sl_handshake_resp *r);
sl_err sl_handshake_resp_decode(const uint8_t *body, size_t len, sl_arena *a,
                                sl_handshake_resp *out);
/*
 * Pick the version to use for key given the server's ranges: the highest
 * version both this codec and the server support. SL_OK with *version,
 * SL_ERR_UNSUPPORTED_API if the server lacks the api,
 * SL_ERR_UNSUPPORTED_VERSION if the ranges do not overlap.
 */
sl_err sl_api_version_pick(const sl_handshake_resp *r, uint16_t key,
                           uint16_t *version);

/* ---- 1 METADATA ------------------------------------------------------- */

typedef struct sl_metadata_req {
    uint32_t ntopics; /* 0 = all topics */
    sl_str *topics;
    /* 2 = also the placement (leaders, replicas, ISR) and the brokers
     * (docs/protocol.md 4.1, version 2); 0 or 1 = version 1 */
    uint16_t version;
} sl_metadata_req;

/* Version 2 per partition: SL_META_LEADER_ANY = no placement (a single
 * node, or a topic the cluster image does not hold): any node serves it;
 * SL_META_LEADER_NONE = offline (no leader right now). */
#define SL_META_LEADER_ANY 0
#define SL_META_LEADER_NONE (-1)

typedef struct sl_meta_part {
    uint32_t partition;
    int64_t start_offset; /* log start */
    int64_t end_offset;   /* log end: next offset to be assigned */
    /* version 2 */
    int32_t leader; /* node id, SL_META_LEADER_ANY or _NONE */
    int32_t leader_epoch;
    uint32_t nreplicas;
    int32_t *replicas;
    uint32_t nisr;
    int32_t *isr;
} sl_meta_part;

/* Version 2: a broker of the cluster and its binary address. */
typedef struct sl_meta_broker {
    int32_t id;
    sl_str addr; /* HOST:PORT, empty until it registered */
    uint8_t up;  /* 0 = fenced */
} sl_meta_broker;

typedef struct sl_meta_topic {
    sl_str name;
    int32_t error; /* SL_ERR_UNKNOWN_TOPIC for a requested missing one */
    uint32_t nparts;
    sl_meta_part *parts;
    uint32_t nconfigs;
    sl_kv *configs;
} sl_meta_topic;

typedef struct sl_metadata_resp {
    int32_t error;
    sl_str error_msg;
    uint32_t ntopics;
    sl_meta_topic *topics;
    /* version 2 (encoded when version >= 2; decoded when present) */
    uint16_t version;
    int32_t node_id; /* the answering node, 0 = a single node */
    uint32_t nbrokers;
    sl_meta_broker *brokers;
} sl_metadata_resp;

sl_err sl_metadata_req_encode(sl_wb *wb, uint32_t corr,
                              const sl_metadata_req *r);
sl_err sl_metadata_req_decode(const uint8_t *body, size_t len, sl_arena *a,
                              sl_metadata_req *out);
sl_err sl_metadata_resp_encode(sl_wb *wb, uint32_t corr,
                               const sl_metadata_resp *r);
sl_err sl_metadata_resp_decode(const uint8_t *body, size_t len, sl_arena *a,
                               sl_metadata_resp *out);

/* ---- 2 CREATE_TOPICS -------------------------------------------------- */

typedef struct sl_create_topic {
    sl_str name;
    uint32_t partitions; /* 0 = broker default */
    uint32_t nconfigs;
    sl_kv *configs;
} sl_create_topic;

typedef struct sl_create_topics_req {
    uint32_t ntopics;
    sl_create_topic *topics;
} sl_create_topics_req;

typedef struct sl_topics_result_resp {
    int32_t error;
    sl_str error_msg;
    uint32_t ntopics;
    sl_topic_result *topics; /* in request order */
} sl_topics_result_resp;

typedef sl_topics_result_resp sl_create_topics_resp;

sl_err sl_create_topics_req_encode(sl_wb *wb, uint32_t corr,
                                   const sl_create_topics_req *r);
sl_err sl_create_topics_req_decode(const uint8_t *body, size_t len, sl_arena *a,
                                   sl_create_topics_req *out);
sl_err sl_create_topics_resp_encode(sl_wb *wb, uint32_t corr,
                                    const sl_create_topics_resp *r);
sl_err sl_create_topics_resp_decode(const uint8_t *body, size_t len,
                                    sl_arena *a, sl_create_topics_resp *out);

/* ---- 3 DELETE_TOPICS -------------------------------------------------- */

typedef struct sl_delete_topics_req {
    uint32_t ntopics;
    sl_str *topics;
} sl_delete_topics_req;

typedef sl_topics_result_resp sl_delete_topics_resp;

sl_err sl_delete_topics_req_encode(sl_wb *wb, uint32_t corr,
                                   const sl_delete_topics_req *r);
sl_err sl_delete_topics_req_decode(const uint8_t *body, size_t len, sl_arena *a,
                                   sl_delete_topics_req *out);
sl_err sl_delete_topics_resp_encode(sl_wb *wb, uint32_t corr,
                                    const sl_delete_topics_resp *r);
sl_err sl_delete_topics_resp_decode(const uint8_t *body, size_t len,
                                    sl_arena *a, sl_delete_topics_resp *out);

/* ---- 4 LIST_TOPICS ---------------------------------------------------- */

/* The request body is empty. */
typedef struct sl_topic_entry {
    sl_str name;
    uint32_t partitions;
} sl_topic_entry;

typedef struct sl_list_topics_resp {
    int32_t error;
    sl_str error_msg;
    uint32_t ntopics;
    sl_topic_entry *topics;
} sl_list_topics_resp;

sl_err sl_list_topics_req_encode(sl_wb *wb, uint32_t corr);
sl_err sl_list_topics_req_decode(const uint8_t *body, size_t len);
sl_err sl_list_topics_resp_encode(sl_wb *wb, uint32_t corr,
                                  const sl_list_topics_resp *r);
sl_err sl_list_topics_resp_decode(const uint8_t *body, size_t len, sl_arena *a,
                                  sl_list_topics_resp *out);

/* ---- 5 PRODUCE -------------------------------------------------------- */

enum sl_acks {
    SL_ACKS_NONE = 0,    /* no response frame at all */
    SL_ACKS_WRITTEN = 1, /* answered once written to the page cache */
    SL_ACKS_DURABLE = 2  /* answered once fsynced (group commit) */
};

typedef struct sl_produce_part {
    uint32_t partition;
    /* One or more whole record batches (sl_records_next). After
     * sl_produce_req_decode this points INTO the request buffer (no copy),
     * so the broker can write base offsets in place. */
    uint8_t *records;
    size_t records_len;
} sl_produce_part;

typedef struct sl_produce_topic {
    sl_str topic;
    uint32_t nparts;
    sl_produce_part *parts;
} sl_produce_topic;

typedef struct sl_produce_req {
    uint8_t acks; /* enum sl_acks */
    uint32_t timeout_ms;
    uint32_t ntopics;
    sl_produce_topic *topics;
} sl_produce_req;

typedef struct sl_produce_part_resp {
    uint32_t partition;
    int32_t error;
    int64_t base_offset;    /* base offset of the first batch; -1 on error */
    int64_t last_offset;    /* offset of the last record of the last batch */
    int64_t log_end_offset; /* log end after the append */
} sl_produce_part_resp;

typedef struct sl_produce_topic_resp {
    sl_str topic;
    uint32_t nparts;
    sl_produce_part_resp *parts;
} sl_produce_topic_resp;

typedef struct sl_produce_resp {
    int32_t error;
    sl_str error_msg;
    uint32_t ntopics;
    sl_produce_topic_resp *topics;
} sl_produce_resp;

sl_err sl_produce_req_encode(sl_wb *wb, uint32_t corr, const sl_produce_req *r);
/* body is mutable: parts[].records point into it (see sl_produce_part). */
sl_err sl_produce_req_decode(uint8_t *body, size_t len, sl_arena *a,
                             sl_produce_req *out);
sl_err sl_produce_resp_encode(sl_wb *wb, uint32_t corr,
                              const sl_produce_resp *r);
sl_err sl_produce_resp_decode(const uint8_t *body, size_t len, sl_arena *a,
                              sl_produce_resp *out);

/* ---- 33 INIT_PRODUCER_ID ---------------------------------------------- */

/* A producer id for the idempotent producer (docs/protocol.md 4.33):
 * producer_id -1 asks for a new one; an id the client holds, with its
 * epoch, asks for the next epoch of it (after a failed batch). */
typedef struct sl_init_pid_req {
    int64_t producer_id;
    int16_t producer_epoch;
} sl_init_pid_req;

typedef struct sl_init_pid_resp {
    int32_t error;
    sl_str error_msg;
    int64_t producer_id;
    int16_t producer_epoch;
} sl_init_pid_resp;

sl_err sl_init_pid_req_encode(sl_wb *wb, uint32_t corr,
                              const sl_init_pid_req *r);
sl_err sl_init_pid_req_decode(const uint8_t *body, size_t len,
                              sl_init_pid_req *out);
sl_err sl_init_pid_resp_encode(sl_wb *wb, uint32_t corr,
                               const sl_init_pid_resp *r);
sl_err sl_init_pid_resp_decode(const uint8_t *body, size_t len,
                               sl_init_pid_resp *out);

/* ---- 6 FETCH ---------------------------------------------------------- */

typedef struct sl_fetch_part {
    uint32_t partition;
    int64_t fetch_offset;
    uint32_t max_bytes; /* partition_max_bytes */
    int64_t durable_offset; /* version 2 (replica fetch): the follower's */
    /* version 3: the leader epoch the follower's metadata names for this
     * partition (the leader refuses an older one: FENCED_LEADER_EPOCH,
     * a newer one: UNKNOWN_LEADER_EPOCH); -1 when not sent */
    int32_t leader_epoch;
    /* not on the wire: the receiving broker's answer for this partition
     * decided before reading (set by its replica hook), 0 = read it */
    int32_t refused;
} sl_fetch_part;

typedef struct sl_fetch_topic {
    sl_str topic;
    uint32_t nparts;
    sl_fetch_part *parts;
} sl_fetch_topic;

/*
 * Version 2 is a follower's fetch in a cluster (broker/replica.c): the
 * version 1 body, then `i32 replica_id` and one `i64 durable_offset` per
 * partition in request order. The leader records the follower's log end
 * (fetch_offset) and durable offset for its high-water marks, and reads
 * past them. Version 3 adds one `i32 leader_epoch` per partition after
 * those (KIP-320's current_leader_epoch). sl_fetch_req_encode writes
 * version 2 when replica_id != 0, 3 when epochs is set too.
 */
typedef struct sl_fetch_req {
    uint32_t max_wait_ms; /* long-poll until min_bytes or this */
    uint32_t min_bytes;
    uint32_t max_bytes; /* for the whole response */
    uint32_t ntopics;
    sl_fetch_topic *topics;
    int32_t replica_id; /* 0 = a consumer (version 1) */
    int epochs;         /* version 3: parts carry leader_epoch */
} sl_fetch_req;

typedef struct sl_fetch_part_resp {
    uint32_t partition;
    int32_t error;
    int64_t high_watermark; /* records below it are visible (durable) */
    int64_t log_start_offset;
    int64_t log_end_offset;
    /* Whole stored batches, the first one containing fetch_offset (it may
     * start before it: skip records < fetch_offset). Borrowed. */
    const uint8_t *records;
    size_t records_len;
} sl_fetch_part_resp;

typedef struct sl_fetch_topic_resp {
    sl_str topic;
    uint32_t nparts;
    sl_fetch_part_resp *parts;
} sl_fetch_topic_resp;

typedef struct sl_fetch_resp {
    int32_t error;
    sl_str error_msg;
    uint32_t ntopics;
    sl_fetch_topic_resp *topics;
} sl_fetch_resp;

sl_err sl_fetch_req_encode(sl_wb *wb, uint32_t corr, const sl_fetch_req *r);
sl_err sl_fetch_req_decode(const uint8_t *body, size_t len, sl_arena *a,
                           sl_fetch_req *out);
/* Whole response with the records copied in (tests, small brokers). */
sl_err sl_fetch_resp_encode(sl_wb *wb, uint32_t corr, const sl_fetch_resp *r);
sl_err sl_fetch_resp_decode(const uint8_t *body, size_t len, sl_arena *a,
                            sl_fetch_resp *out);

/*
 * Zero-copy response encoding (FETCH and QUEUE_ACQUIRE).
 *
 * Each partition entry ENDS with u32 records_len + records, so an encoder
 * can write everything of a partition up to and including records_len into
 * wb, and leave the records themselves out ("external"): the broker then
 * sends wb[0, split_0), file range 0, wb[split_0, split_1), file range 1,
 * ..., wb[split_n, wb->len). The frame length counts the external bytes,
 * so all record lengths must be known before sl_resp_enc_finish (they are:
 * sl_part_read returns slices with their length).
 *
 *     sl_resp_enc e;
 *     sl_fetch_resp_begin(&e, wb, corr);
 *     sl_resp_enc_topic(&e, topic);            // FETCH only
 *     split = sl_fetch_resp_part(&e, &ph, 1);  // ph.records_len = slice.len
 *     ...
 *     rc = sl_resp_enc_finish(&e);
 *
 * Topic and partition counts are patched in by the encoder. If ph.records
 * is given and external is 0, the bytes are copied into wb instead.
 * Errors are sticky in e.err and reported by finish (which on error
 * restores wb->len to where begin found it).
 */
typedef struct sl_resp_enc {
    sl_wb *wb;         /* borrowed */
    size_t start;      /* frame start in wb */
    size_t ntopics_at; /* position of the topic count, or SIZE_MAX */
    uint32_t ntopics;
    size_t nparts_at; /* position of the current partition count */
    uint32_t nparts;
    uint64_t external; /* record bytes not in wb */
    uint16_t api;
    sl_err err;
} sl_resp_enc;

void sl_fetch_resp_begin(sl_resp_enc *e, sl_wb *wb, uint32_t corr);
/* Start a topic; its partitions follow. */
void sl_resp_enc_topic(sl_resp_enc *e, sl_str topic);
/* Add a partition (ph->records_len bytes of records). Returns the wb offset
 * at which the records belong (the split point). */
size_t sl_fetch_resp_part(sl_resp_enc *e, const sl_fetch_part_resp *ph,
                          int external);
/* Patch counts and the frame length. SL_OK, SL_ERR_NOMEM,
 * SL_ERR_TOO_LARGE (frame >= 4 GiB), SL_ERR_INVALID_ARG (misuse). */
sl_err sl_resp_enc_finish(sl_resp_enc *e);
/* Total frame size including external bytes (valid after finish). */
uint64_t sl_resp_enc_frame_size(const sl_resp_enc *e);

/* ---- 7 LIST_OFFSETS --------------------------------------------------- */

#define SL_OFFSET_LATEST (-1)
#define SL_OFFSET_EARLIEST (-2)

typedef struct sl_lo_part {
    uint32_t partition;
    int64_t timestamp; /* SL_OFFSET_LATEST, SL_OFFSET_EARLIEST, or ms */
} sl_lo_part;

typedef struct sl_lo_topic {
    sl_str topic;
    uint32_t nparts;
    sl_lo_part *parts;
} sl_lo_topic;

typedef struct sl_list_offsets_req {
    uint32_t ntopics;
    sl_lo_topic *topics;
} sl_list_offsets_req;

typedef struct sl_lo_part_resp {
    uint32_t partition;
    int32_t error;
    int64_t offset; /* first offset with timestamp >= ts; log end if none */
} sl_lo_part_resp;

typedef struct sl_lo_topic_resp {
    sl_str topic;
    uint32_t nparts;
    sl_lo_part_resp *parts;
} sl_lo_topic_resp;

typedef struct sl_list_offsets_resp {
    int32_t error;
    sl_str error_msg;
    uint32_t ntopics;
    sl_lo_topic_resp *topics;
} sl_list_offsets_resp;

sl_err sl_list_offsets_req_encode(sl_wb *wb, uint32_t corr,
                                  const sl_list_offsets_req *r);
sl_err sl_list_offsets_req_decode(const uint8_t *body, size_t len, sl_arena *a,
                                  sl_list_offsets_req *out);
sl_err sl_list_offsets_resp_encode(sl_wb *wb, uint32_t corr,
                                   const sl_list_offsets_resp *r);
sl_err sl_list_offsets_resp_decode(const uint8_t *body, size_t len, sl_arena *a,
                                   sl_list_offsets_resp *out);

/* ---- 10 GROUP_JOIN ---------------------------------------------------- */

enum sl_assignor { SL_ASSIGN_RANGE = 0, SL_ASSIGN_ROUNDROBIN = 1 };

typedef struct sl_group_join_req {
    sl_str group;
    sl_str member_id; /* null or empty on the first join */
    sl_str client_id; /* free text shown by GROUP_DESCRIBE */
    uint32_t session_timeout_ms;
    uint32_t rebalance_timeout_ms;
    uint8_t assignor; /* enum sl_assignor */
    uint32_t ntopics;
    sl_str *topics;
} sl_group_join_req;

typedef struct sl_group_join_resp {
    int32_t error;
    sl_str error_msg;
    sl_str member_id;
    int32_t generation;
    uint32_t heartbeat_interval_ms; /* suggested */
    uint32_t ntopics;               /* this member's assignment */
    sl_topic_parts *assignment;
} sl_group_join_resp;

sl_err sl_group_join_req_encode(sl_wb *wb, uint32_t corr,
                                const sl_group_join_req *r);
sl_err sl_group_join_req_decode(const uint8_t *body, size_t len, sl_arena *a,
                                sl_group_join_req *out);
sl_err sl_group_join_resp_encode(sl_wb *wb, uint32_t corr,
                                 const sl_group_join_resp *r);
sl_err sl_group_join_resp_decode(const uint8_t *body, size_t len, sl_arena *a,
                                 sl_group_join_resp *out);

/* ---- 11 GROUP_HEARTBEAT, 12 GROUP_LEAVE ------------------------------- */

typedef struct sl_group_member_req {
    sl_str group;
    sl_str member_id;
    int32_t generation; /* HEARTBEAT only (not on the wire for LEAVE) */
} sl_group_member_req;

/* api: SL_API_GROUP_HEARTBEAT or SL_API_GROUP_LEAVE. */
sl_err sl_group_member_req_encode(sl_wb *wb, uint16_t api, uint32_t corr,
                                  const sl_group_member_req *r);
sl_err sl_group_member_req_decode(uint16_t api, const uint8_t *body, size_t len,
                                  sl_group_member_req *out);

/*
 * Responses that carry only the top-level error (HEARTBEAT, LEAVE):
 * body = i32 error (+ str16 message when non-zero).
 */
sl_err sl_status_resp_encode(sl_wb *wb, uint32_t corr, int32_t err,
                             const char *msg);
sl_err sl_status_resp_decode(const uint8_t *body, size_t len, int32_t *err,
                             sl_str *msg);

/* ---- 13 OFFSET_COMMIT ------------------------------------------------- */

typedef struct sl_commit_part {
    uint32_t partition;
    int64_t offset; /* the next offset to consume */
    sl_str metadata;
} sl_commit_part;

typedef struct sl_commit_topic {
    sl_str topic;
    uint32_t nparts;
    sl_commit_part *parts;
} sl_commit_topic;

typedef struct sl_offset_commit_req {
    sl_str group;
    sl_str member_id; /* null with generation -1: commit without joining */
    int32_t generation;
    uint32_t ntopics;
    sl_commit_topic *topics;
} sl_offset_commit_req;

typedef struct sl_offset_commit_resp {
    int32_t error;
    sl_str error_msg;
    uint32_t ntopics;
    sl_part_err_topic *topics;
} sl_offset_commit_resp;

sl_err sl_offset_commit_req_encode(sl_wb *wb, uint32_t corr,
                                   const sl_offset_commit_req *r);
sl_err sl_offset_commit_req_decode(const uint8_t *body, size_t len, sl_arena *a,
                                   sl_offset_commit_req *out);
sl_err sl_offset_commit_resp_encode(sl_wb *wb, uint32_t corr,
                                    const sl_offset_commit_resp *r);
sl_err sl_offset_commit_resp_decode(const uint8_t *body, size_t len,
                                    sl_arena *a, sl_offset_commit_resp *out);

/* ---- 14 OFFSET_FETCH -------------------------------------------------- */

typedef struct sl_offset_fetch_req {
    sl_str group;
    uint32_t ntopics; /* 0 = every committed offset of the group */
    sl_topic_parts *topics;
} sl_offset_fetch_req;

typedef struct sl_committed_part {
    uint32_t partition;
    int32_t error;
    int64_t offset; /* -1 = nothing committed */
    sl_str metadata;
} sl_committed_part;

typedef struct sl_committed_topic {
    sl_str topic;
    uint32_t nparts;
    sl_committed_part *parts;
} sl_committed_topic;

typedef struct sl_offset_fetch_resp {
    int32_t error;
    sl_str error_msg;
    uint32_t ntopics;
    sl_committed_topic *topics;
} sl_offset_fetch_resp;

sl_err sl_offset_fetch_req_encode(sl_wb *wb, uint32_t corr,
                                  const sl_offset_fetch_req *r);
sl_err sl_offset_fetch_req_decode(const uint8_t *body, size_t len, sl_arena *a,
                                  sl_offset_fetch_req *out);
sl_err sl_offset_fetch_resp_encode(sl_wb *wb, uint32_t corr,
                                   const sl_offset_fetch_resp *r);
sl_err sl_offset_fetch_resp_decode(const uint8_t *body, size_t len, sl_arena *a,
                                   sl_offset_fetch_resp *out);

/* ---- 15 GROUP_LIST ---------------------------------------------------- */

enum sl_group_kind { SL_GROUP_STREAM = 0, SL_GROUP_QUEUE = 1 };

/* The request body is empty. */
typedef struct sl_group_entry {
    sl_str group;
    uint8_t kind; /* enum sl_group_kind */
    sl_str state; /* "Empty", "Rebalancing", "Stable" (stream); "Active",
                     "Empty" (queue) */
    uint32_t members;
} sl_group_entry;

typedef struct sl_group_list_resp {
    int32_t error;
    sl_str error_msg;
    uint32_t ngroups;
    sl_group_entry *groups;
} sl_group_list_resp;

sl_err sl_group_list_req_encode(sl_wb *wb, uint32_t corr);
sl_err sl_group_list_req_decode(const uint8_t *body, size_t len);
sl_err sl_group_list_resp_encode(sl_wb *wb, uint32_t corr,
                                 const sl_group_list_resp *r);
sl_err sl_group_list_resp_decode(const uint8_t *body, size_t len, sl_arena *a,
                                 sl_group_list_resp *out);

/* ---- 16 GROUP_DESCRIBE ------------------------------------------------ */

typedef struct sl_group_describe_req {
    sl_str group;
} sl_group_describe_req;

typedef struct sl_member_desc {
    sl_str member_id; /* stream: member id; queue: consumer id */
    sl_str client_id; /* client name / peer address */
    uint32_t nassigned;
    sl_tp *assigned; /* stream groups; empty for queue groups */
} sl_member_desc;

typedef struct sl_group_part_desc {
    sl_str topic;
    uint32_t partition;
    int64_t committed; /* stream: committed offset; queue: start offset */
    int64_t log_end;
    int64_t lag;        /* log_end - committed */
    uint32_t in_flight; /* queue: acquired records; stream: 0 */
} sl_group_part_desc;

typedef struct sl_group_describe_resp {
    int32_t error;
    sl_str error_msg;
    sl_str group;
    uint8_t kind; /* enum sl_group_kind */
    sl_str state;
    int32_t generation; /* stream groups; 0 for queue groups */
    sl_str dlq_topic;   /* queue groups; null otherwise */
    int64_t dlq_depth;  /* records in the DLQ topic; -1 if none */
    uint32_t nmembers;
    sl_member_desc *members;
    uint32_t nparts;
    sl_group_part_desc *parts;
} sl_group_describe_resp;

sl_err sl_group_describe_req_encode(sl_wb *wb, uint32_t corr,
                                    const sl_group_describe_req *r);
sl_err sl_group_describe_req_decode(const uint8_t *body, size_t len,
                                    sl_group_describe_req *out);
sl_err sl_group_describe_resp_encode(sl_wb *wb, uint32_t corr,
                                     const sl_group_describe_resp *r);
sl_err sl_group_describe_resp_decode(const uint8_t *body, size_t len,
                                     sl_arena *a, sl_group_describe_resp *out);

/* ---- 20 QUEUE_ACQUIRE ------------------------------------------------- */

typedef struct sl_queue_acquire_req {
    sl_str group;
    sl_str topic;
    sl_str consumer_id;
    uint32_t max_records;
    uint32_t max_bytes;
    uint32_t lock_ms;     /* 0 = group default */
    uint32_t max_wait_ms; /* long-poll while nothing is available */
} sl_queue_acquire_req;

typedef struct sl_qentry {
    int64_t offset;
    uint16_t attempts;        /* deliveries including this one */
    uint16_t failures;        /* nacks, rejects, lock expiries so far */
    int64_t lock_deadline_ms; /* ms since the epoch */
} sl_qentry;

typedef struct sl_qacq_part {
    uint32_t partition;
    uint32_t nentries; /* ascending offsets */
    sl_qentry *entries;
    /* Whole stored batches covering every entry; they may contain other
     * records too: deliver only the listed offsets. Borrowed. */
    const uint8_t *records;
    size_t records_len;
} sl_qacq_part;

typedef struct sl_queue_acquire_resp {
    int32_t error;
    sl_str error_msg;
    uint32_t nparts;
    sl_qacq_part *parts;
} sl_queue_acquire_resp;

sl_err sl_queue_acquire_req_encode(sl_wb *wb, uint32_t corr,
                                   const sl_queue_acquire_req *r);
sl_err sl_queue_acquire_req_decode(const uint8_t *body, size_t len,
                                   sl_queue_acquire_req *out);
sl_err sl_queue_acquire_resp_encode(sl_wb *wb, uint32_t corr,
                                    const sl_queue_acquire_resp *r);
sl_err sl_queue_acquire_resp_decode(const uint8_t *body, size_t len,
                                    sl_arena *a, sl_queue_acquire_resp *out);
/* Zero-copy encoding (see sl_resp_enc): no topics level here. */
void sl_queue_acquire_resp_begin(sl_resp_enc *e, sl_wb *wb, uint32_t corr);
size_t sl_queue_acquire_resp_part(sl_resp_enc *e, const sl_qacq_part *p,
                                  int external);

/* ---- 21 ACK, 22 NACK, 23 REJECT, 24 TOUCH ----------------------------- */

typedef struct sl_qrange {
    int64_t first;      /* inclusive */
    int64_t last;       /* inclusive, >= first */
    int32_t delay_ms;   /* NACK: redelivery delay; -1 = group backoff */
    uint32_t extend_ms; /* TOUCH: new lock = now + extend_ms */
    sl_str reason;      /* REJECT: why (goes into the DLQ headers) */
} sl_qrange;

typedef struct sl_qsettle_part {
    uint32_t partition;
    uint32_t nranges;
    sl_qrange *ranges;
} sl_qsettle_part;

typedef struct sl_qsettle_req {
    sl_str group;
    sl_str topic;
    sl_str consumer_id;
    uint32_t nparts;
    sl_qsettle_part *parts;
} sl_qsettle_req;

typedef struct sl_qrange_result {
    int64_t first;
    int64_t last;
    int32_t error; /* first failure in the range; SL_OK if all settled */
} sl_qrange_result;

typedef struct sl_qsettle_part_resp {
    uint32_t partition;
    uint32_t nranges; /* request order */
    sl_qrange_result *ranges;
} sl_qsettle_part_resp;

typedef struct sl_qsettle_resp {
    int32_t error;
    sl_str error_msg;
    uint32_t nparts;
    sl_qsettle_part_resp *parts;
} sl_qsettle_resp;

/* api: SL_API_QUEUE_ACK, _NACK, _REJECT or _TOUCH (others: INVALID_ARG,
 * or MALFORMED when decoding). Only that api's range field is on the wire. */
sl_err sl_qsettle_req_encode(sl_wb *wb, uint16_t api, uint32_t corr,
                             const sl_qsettle_req *r);
sl_err sl_qsettle_req_decode(uint16_t api, const uint8_t *body, size_t len,
                             sl_arena *a, sl_qsettle_req *out);
sl_err sl_qsettle_resp_encode(sl_wb *wb, uint32_t corr,
                              const sl_qsettle_resp *r);
sl_err sl_qsettle_resp_decode(const uint8_t *body, size_t len, sl_arena *a,
                              sl_qsettle_resp *out);

/* ---- 25 DLQ_LIST ------------------------------------------------------ */

typedef struct sl_dlq_list_req {
    sl_str topic; /* source topic filter; null = any */
    sl_str group; /* queue group filter; null = any */
} sl_dlq_list_req;

typedef struct sl_dlq_entry {
    sl_str dlq_topic;
    sl_str source_topic;
    sl_str group;
    int64_t depth; /* records currently in the DLQ topic */
    int64_t start_offset;
    int64_t end_offset;
} sl_dlq_entry;

typedef struct sl_dlq_list_resp {
    int32_t error;
    sl_str error_msg;
    uint32_t ndlqs;
    sl_dlq_entry *dlqs;
} sl_dlq_list_resp;

sl_err sl_dlq_list_req_encode(sl_wb *wb, uint32_t corr,
                              const sl_dlq_list_req *r);
sl_err sl_dlq_list_req_decode(const uint8_t *body, size_t len,
                              sl_dlq_list_req *out);
sl_err sl_dlq_list_resp_encode(sl_wb *wb, uint32_t corr,
                               const sl_dlq_list_resp *r);
sl_err sl_dlq_list_resp_decode(const uint8_t *body, size_t len, sl_arena *a,
                               sl_dlq_list_resp *out);

/* ---- 26 DLQ_REDRIVE --------------------------------------------------- */

typedef struct sl_dlq_redrive_req {
    sl_str dlq_topic;
    sl_str target_topic;   /* null = each record's original topic */
    sl_str reason;         /* only records with this reason; null = all */
    uint32_t max_records;  /* 0 = no limit */
    uint32_t rate_per_sec; /* 0 = no limit */
} sl_dlq_redrive_req;

typedef struct sl_dlq_redrive_resp {
    int32_t error;
    sl_str error_msg;
    int64_t moved;   /* records appended to their target */
    int64_t skipped; /* records not matching the reason filter */
} sl_dlq_redrive_resp;

sl_err sl_dlq_redrive_req_encode(sl_wb *wb, uint32_t corr,
                                 const sl_dlq_redrive_req *r);
sl_err sl_dlq_redrive_req_decode(const uint8_t *body, size_t len,
                                 sl_dlq_redrive_req *out);
sl_err sl_dlq_redrive_resp_encode(sl_wb *wb, uint32_t corr,
                                  const sl_dlq_redrive_resp *r);
sl_err sl_dlq_redrive_resp_decode(const uint8_t *body, size_t len,
                                  sl_dlq_redrive_resp *out);

/* ---- 27 QUEUE_GROUP_CONFIG -------------------------------------------- */

enum sl_qgc_mode {
    SL_QGC_UPSERT = 0,  /* create the group if missing, set the given keys */
    SL_QGC_ALTER = 1,   /* SL_ERR_UNKNOWN_GROUP if the group is missing */
    SL_QGC_DESCRIBE = 2 /* change nothing (configs must be empty) */
};

typedef struct sl_queue_group_config_req {
    sl_str group;
    sl_str topic;
    uint8_t mode; /* enum sl_qgc_mode */
    uint32_t nconfigs;
    sl_kv *configs; /* max_deliveries, lock_ms, backoff_initial_ms, ... */
} sl_queue_group_config_req;

typedef struct sl_queue_group_config_resp {
    int32_t error;
    sl_str error_msg;  /* names the bad key on SL_ERR_INVALID_CONFIG */
    uint32_t nconfigs; /* the effective configuration after the change */
    sl_kv *configs;
} sl_queue_group_config_resp;

sl_err sl_queue_group_config_req_encode(sl_wb *wb, uint32_t corr,
                                        const sl_queue_group_config_req *r);
sl_err sl_queue_group_config_req_decode(const uint8_t *body, size_t len,
                                        sl_arena *a,
                                        sl_queue_group_config_req *out);
sl_err sl_queue_group_config_resp_encode(sl_wb *wb, uint32_t corr,
                                         const sl_queue_group_config_resp *r);
sl_err sl_queue_group_config_resp_decode(const uint8_t *body, size_t len,
                                         sl_arena *a,
                                         sl_queue_group_config_resp *out);

/* ---- 28 CLUSTER_STATUS (protocol/api_cluster.c, docs/protocol.md 4.28) -- */

typedef struct sl_cl_node {
    int32_t id;
    uint8_t up;         /* 1 = not fenced (the controller hears from it) */
    sl_str raft_addr;   /* --cluster-listen */
    sl_str addr;        /* binary protocol; empty until it registered */
    sl_str stomp_addr;
} sl_cl_node;

typedef struct sl_cl_part {
    uint32_t partition;
    int32_t leader; /* node id, -1 = offline */
    int32_t leader_epoch;
    uint32_t nreplicas;
    int32_t *replicas;
    uint32_t nisr;
    int32_t *isr;
} sl_cl_part;

typedef struct sl_cl_topic {
    sl_str name;
    int32_t error; /* SL_ERR_UNKNOWN_TOPIC */
    uint32_t nparts;
    sl_cl_part *parts;
} sl_cl_topic;

typedef struct sl_cluster_status_req {
    uint32_t ntopics; /* placement of these topics too (may be 0) */
    sl_str *topics;
} sl_cluster_status_req;

typedef struct sl_cluster_status_resp {
    int32_t error;
    sl_str error_msg;
    int32_t node_id;   /* 0 = a single node (not a cluster) */
    int32_t leader_id; /* metadata leader, 0 = none known */
    uint64_t term;     /* Raft term this node is in */
    uint64_t applied;  /* metadata log index applied here */
    uint32_t nnodes;
    sl_cl_node *nodes;
    uint32_t ntopics;
    sl_cl_topic *topics;
} sl_cluster_status_resp;

sl_err sl_cluster_status_req_encode(sl_wb *wb, uint32_t corr,
                                    const sl_cluster_status_req *r);
sl_err sl_cluster_status_req_decode(const uint8_t *body, size_t len,
                                    sl_arena *a, sl_cluster_status_req *out);
sl_err sl_cluster_status_resp_encode(sl_wb *wb, uint32_t corr,
                                     const sl_cluster_status_resp *r);
sl_err sl_cluster_status_resp_decode(const uint8_t *body, size_t len,
                                     sl_arena *a, sl_cluster_status_resp *out);

/* ---- 29 ADMIN -------------------------------------------------------- */

/*
 * One management operation named by a verb ("queues", "queue.purge",
 * "group.reset", ...; docs/protocol.md 4.28 lists them) with string
 * arguments; the answer is a JSON document (UTF-8), the same document the
 * HTTP API (docs/http-api.md) returns for the same operation. A verb the
 * broker does not know is answered SL_ERR_INVALID_ARG naming it.
 */
typedef struct sl_admin_req {
    sl_str verb;
    uint32_t nargs;
    sl_kv *args;
} sl_admin_req;

typedef struct sl_admin_resp {
    int32_t error;
    sl_str error_msg;
    const uint8_t *json; /* borrowed; not NUL-terminated */
    size_t json_len;
} sl_admin_resp;

sl_err sl_admin_req_encode(sl_wb *wb, uint32_t corr, const sl_admin_req *r);
sl_err sl_admin_req_decode(const uint8_t *body, size_t len, sl_arena *a,
                           sl_admin_req *out);
sl_err sl_admin_resp_encode(sl_wb *wb, uint32_t corr, const sl_admin_resp *r);
sl_err sl_admin_resp_decode(const uint8_t *body, size_t len,
                            sl_admin_resp *out);

/* ---- 30 CLUSTER_FORWARD (between brokers, docs/protocol.md 4.30) -------
 * Request body: bytes32 command (a cluster/meta.h command). Response:
 * status (error-only frame; error 0 = applied on the leader). */
sl_err sl_cluster_forward_req_encode(sl_wb *wb, uint32_t corr,
                                     const void *cmd, size_t len);
sl_err sl_cluster_forward_req_decode(const uint8_t *body, size_t len,
                                     const uint8_t **cmd, size_t *cmd_len);

/* ---- 31 SASL_HANDSHAKE, 32 SASL_AUTHENTICATE ------------------------- */

/*
 * SASL (docs/protocol.md 4.31, 4.32): HANDSHAKE picks a mechanism
 * ("SCRAM-SHA-256", or "PLAIN" over TLS), then AUTHENTICATE carries the
 * mechanism's messages until the broker answers complete = 1. The
 * response to SASL_HANDSHAKE lists the mechanisms the connection may use
 * (also when the one asked for is refused: then error is
 * SL_ERR_AUTHENTICATION_FAILED and the message names them).
 */
typedef struct sl_sasl_handshake_req {
    sl_str mechanism;
} sl_sasl_handshake_req;

typedef struct sl_sasl_handshake_resp {
    int32_t error;
    sl_str error_msg;
    uint32_t nmechanisms;
    sl_str *mechanisms;
} sl_sasl_handshake_resp;

typedef struct sl_sasl_auth_req {
    const uint8_t *data; /* the mechanism's message (borrowed) */
    size_t len;
} sl_sasl_auth_req;

typedef struct sl_sasl_auth_resp {
    int32_t error;
    sl_str error_msg;
    const uint8_t *data; /* the broker's message, may be empty */
    size_t len;
    uint8_t complete; /* 1: authenticated */
} sl_sasl_auth_resp;

sl_err sl_sasl_handshake_req_encode(sl_wb *wb, uint32_t corr,
                                    const sl_sasl_handshake_req *r);
sl_err sl_sasl_handshake_req_decode(const uint8_t *body, size_t len,
                                    sl_sasl_handshake_req *out);
sl_err sl_sasl_handshake_resp_encode(sl_wb *wb, uint32_t corr,
                                     const sl_sasl_handshake_resp *r);
sl_err sl_sasl_handshake_resp_decode(const uint8_t *body, size_t len,
                                     sl_arena *a, sl_sasl_handshake_resp *out);
sl_err sl_sasl_auth_req_encode(sl_wb *wb, uint32_t corr,
                               const sl_sasl_auth_req *r);
sl_err sl_sasl_auth_req_decode(const uint8_t *body, size_t len,
                               sl_sasl_auth_req *out);
sl_err sl_sasl_auth_resp_encode(sl_wb *wb, uint32_t corr,
                                const sl_sasl_auth_resp *r);
sl_err sl_sasl_auth_resp_decode(const uint8_t *body, size_t len,
                                sl_sasl_auth_resp *out);

#endif
