/*
 * api_queue.h - queue group codecs: QUEUE_ACQUIRE, QUEUE_ACK, QUEUE_NACK,
 * QUEUE_REJECT, QUEUE_TOUCH, DLQ_LIST, DLQ_REDRIVE, QUEUE_GROUP_CONFIG
 * (api_queue.c; the zero-copy QUEUE_ACQUIRE response in api_fetch.c).
 * Byte layouts: docs/protocol.md; the conventions every codec follows are at
 * the top of protocol/api.h.
 */
#ifndef SL_API_QUEUE_H
#define SL_API_QUEUE_H

#include "protocol/api_common.h"

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

#endif
