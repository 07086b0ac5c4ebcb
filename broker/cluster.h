/*
 * cluster.h - cluster mode in the broker (broker/cluster.c,
 * docs/cluster.md). @thread loop
 */
#ifndef SL_BROKER_CLUSTER_H
#define SL_BROKER_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "broker/cluster_propose.h"
#include "protocol/err.h"

typedef struct sl_broker sl_broker;
typedef struct sl_bcluster sl_bcluster;

/* Register CLUSTER_STATUS; with node-id set, start this node's metadata
 * quorum member (after the listeners are bound: it registers their
 * addresses) and route topic creation through it. err names the problem. */
sl_err sl_bcluster_start(sl_broker *b, char *err, size_t errlen);
/* Stop the quorum member (pending proposals complete first). Accepts a
 * broker without cluster mode. */
void sl_bcluster_stop(sl_broker *b);

/* sl_bcluster_propose, sl_bcluster_image, sl_bcluster_node:
 * broker/cluster_propose.h, included above. */

/* METADATA version 2 (docs/protocol.md 4.1): this node's id, the brokers
 * and their binary addresses, and per partition of r's topics the leader,
 * leader epoch, replicas and ISR from this node's image. Topics the image
 * does not hold keep leader SL_META_LEADER_ANY. No-op without cluster
 * mode (node id 0, no brokers). Arrays come from a (or the image, which
 * outlives the reply's encoding). */
struct sl_metadata_resp;
struct sl_arena;
void sl_bcluster_meta_fill(sl_broker *b, struct sl_arena *a,
                           struct sl_metadata_resp *r);

/* The address TLS clients reach this node's binary protocol at, which it
 * registers in the metadata (REGISTER_NODE's tls_addr; METADATA version
 * 3 hands it to clients, as Kafka's advertised listeners): its
 * --tls-listen address, "" without one. */
const char *sl_bcluster_tls_addr(const sl_broker *b);

/* For /metrics: this node's view of the cluster. 0, or -1 without
 * cluster mode. */
typedef struct sl_bcluster_stats {
    int32_t node_id, leader_id; /* metadata (Raft) leader; 0 = none */
    int role;                   /* 0 unavailable, 1 follower, 2 candidate,
                                   3 leader */
    uint64_t term, applied;
    int64_t nodes, nodes_up;
    int64_t partitions, partitions_led;  /* led: by this node */
    int64_t partitions_offline;          /* no leader */
    int64_t partitions_under_replicated; /* in-sync < replicas */
    int64_t replica_fetched_bytes;       /* sl_replicas_bytes */
    int64_t reassign_copied_bytes;
} sl_bcluster_stats;
int sl_bcluster_stats_get(sl_broker *b, sl_bcluster_stats *out);
/* Per partition of the metadata image: fn(arg, topic, partition, leader,
 * replicas, in_sync). No-op without cluster mode. */
void sl_bcluster_foreach_part(sl_broker *b,
                              void (*fn)(void *arg, const char *topic,
                                         int32_t partition, int32_t leader,
                                         int32_t replicas, int32_t in_sync),
                              void *arg);

#endif
