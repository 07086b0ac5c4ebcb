/*
 * api_common.h - what every api of the binary protocol shares: api keys
 * and versions, borrowed strings, the decode arena, per-item result
 * types, the error-only and status-only responses, the records field
 * (api_common.c). Byte layouts: docs/protocol.md; the conventions every codec
 * follows are at the top of protocol/api.h.
 */
#ifndef SL_API_COMMON_H
#define SL_API_COMMON_H

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

/*
 * Responses that carry only the top-level error (HEARTBEAT, LEAVE):
 * body = i32 error (+ str16 message when non-zero).
 */
sl_err sl_status_resp_encode(sl_wb *wb, uint32_t corr, int32_t err,
                             const char *msg);
sl_err sl_status_resp_decode(const uint8_t *body, size_t len, int32_t *err,
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

/* ---- zero-copy responses (FETCH, QUEUE_ACQUIRE; api_fetch.c) ---------- */

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

/* Start a topic; its partitions follow. */
void sl_resp_enc_topic(sl_resp_enc *e, sl_str topic);

/* Patch counts and the frame length. SL_OK, SL_ERR_NOMEM,
 * SL_ERR_TOO_LARGE (frame >= 4 GiB), SL_ERR_INVALID_ARG (misuse). */
sl_err sl_resp_enc_finish(sl_resp_enc *e);
/* Total frame size including external bytes (valid after finish). */
uint64_t sl_resp_enc_frame_size(const sl_resp_enc *e);

#endif
