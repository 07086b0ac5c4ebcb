/*
 * api_group.h - stream group codecs: GROUP_JOIN, GROUP_HEARTBEAT,
 * GROUP_LEAVE, OFFSET_COMMIT, OFFSET_FETCH, GROUP_LIST, GROUP_DESCRIBE
 * (api_group.c). Byte layouts: docs/protocol.md; the conventions every codec
 * follows are at the top of protocol/api.h.
 */
#ifndef SL_API_GROUP_H
#define SL_API_GROUP_H

#include "protocol/api_common.h"

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

#endif
