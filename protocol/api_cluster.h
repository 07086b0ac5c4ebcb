/*
 * api_cluster.h - CLUSTER_STATUS and CLUSTER_FORWARD codecs
 * (api_cluster.c). Byte layouts: docs/protocol.md; the conventions every codec
 * follows are at the top of protocol/api.h.
 */
#ifndef SL_API_CLUSTER_H
#define SL_API_CLUSTER_H

#include "protocol/api_common.h"

/* ---- 28 CLUSTER_STATUS (protocol/api_cluster.c, docs/protocol.md 4.28) -- */

typedef struct sl_cl_node {
    int32_t id;
    uint8_t up;       /* 1 = not fenced (the controller hears from it) */
    sl_str raft_addr; /* --cluster-listen */
    sl_str addr;      /* binary protocol; empty until it registered */
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

/* ---- 30 CLUSTER_FORWARD (between brokers, docs/protocol.md 4.30) -------
 * Request body: bytes32 command (a cluster/meta.h command). Response:
 * status (error-only frame; error 0 = applied on the leader). */
sl_err sl_cluster_forward_req_encode(sl_wb *wb, uint32_t corr, const void *cmd,
                                     size_t len);
sl_err sl_cluster_forward_req_decode(const uint8_t *body, size_t len,
                                     const uint8_t **cmd, size_t *cmd_len);

#endif
