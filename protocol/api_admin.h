/*
 * api_admin.h - HANDSHAKE, METADATA, CREATE_TOPICS, DELETE_TOPICS,
 * LIST_TOPICS and ADMIN codecs (api_admin.c). Byte layouts:
 * docs/protocol.md; the conventions every codec follows are at the top of
 * protocol/api.h.
 */
#ifndef SL_API_ADMIN_H
#define SL_API_ADMIN_H

#include "protocol/api_common.h"

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
     * (docs/protocol.md 4.1, version 2); 3 = and the brokers' TLS
     * addresses; 0 or 1 = version 1 */
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
    sl_str addr;     /* HOST:PORT, empty until it registered */
    uint8_t up;      /* 0 = fenced */
    sl_str tls_addr; /* version 3: over TLS, empty = none (or unknown) */
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
    /* version 2 (encoded when version >= 2; decoded when present; the
     * brokers' tls_addr: version 3, likewise) */
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

#endif
