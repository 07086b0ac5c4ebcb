/*
 * api_fetch.h - FETCH and LIST_OFFSETS codecs (api_fetch.c, which also
 * holds the zero-copy response encoder of api_common.h).
 * Byte layouts: docs/protocol.md; the conventions every codec follows are at
 * the top of protocol/api.h.
 */
#ifndef SL_API_FETCH_H
#define SL_API_FETCH_H

#include "protocol/api_common.h"

/* ---- 6 FETCH ---------------------------------------------------------- */

typedef struct sl_fetch_part {
    uint32_t partition;
    int64_t fetch_offset;
    uint32_t max_bytes;     /* partition_max_bytes */
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

/* Zero-copy encoding (sl_resp_enc, api_common.h). */

void sl_fetch_resp_begin(sl_resp_enc *e, sl_wb *wb, uint32_t corr);

/* Add a partition (ph->records_len bytes of records). Returns the wb offset
 * at which the records belong (the split point). */
size_t sl_fetch_resp_part(sl_resp_enc *e, const sl_fetch_part_resp *ph,
                          int external);

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

#endif
