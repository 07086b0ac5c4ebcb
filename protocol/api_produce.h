/*
 * api_produce.h - PRODUCE and INIT_PRODUCER_ID codecs (api_produce.c).
 * Byte layouts: docs/protocol.md; the conventions every codec follows are at
 * the top of protocol/api.h.
 */
#ifndef SL_API_PRODUCE_H
#define SL_API_PRODUCE_H

#include "protocol/api_common.h"

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

#endif
