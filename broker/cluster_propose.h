/*
 * cluster_propose.h - the metadata quorum as the modules below cluster.c
 * use it: put a command in its log, read the image the log built, reach
 * the quorum member (implemented by cluster.c; broker/cluster.h includes
 * it). Apart from cluster.h so that the modules cluster.c starts or
 * calls (replica.c, cluster_ops.c, cluster_reassign.c, cluster_users.c,
 * group_state.c) can use the quorum without depending on cluster.c's
 * module (scripts/include-cycles.py).
 */
#ifndef SL_BROKER_CLUSTER_PROPOSE_H
#define SL_BROKER_CLUSTER_PROPOSE_H

#include <stddef.h>

#include "broker/types.h"
#include "protocol/err.h"

/* Put an encoded metadata command (cluster/meta.h) in the log: proposed
 * here on the metadata leader, else forwarded to it (CLUSTER_FORWARD).
 * fn(arg, rc, msg) runs exactly once, later, when SL_OK is returned. */
sl_err sl_bcluster_propose(sl_broker *b, const void *cmd, size_t len,
                           void (*fn)(void *arg, sl_err rc, const char *msg),
                           void *arg);

/* Read barrier (broker/cluster_read.c, docs/cluster.md 2.7): fn(arg, rc,
 * msg) runs exactly once, later, when SL_OK is returned, once this node's
 * image holds every change the metadata leader had applied when asked
 * (at once on the leader). rc is not SL_OK when the leader could not be
 * asked or the image did not catch up within the bound: the caller then
 * reads its own copy, as without a barrier. Without cluster mode an
 * error is returned and fn never runs. sl_bcluster_read_needed: 1 when
 * a barrier has something to wait for (a cluster node that is not the
 * metadata leader); 0: read the copy now. */
int sl_bcluster_read_needed(sl_broker *b);
sl_err sl_bcluster_read_barrier(
    sl_broker *b, void (*fn)(void *arg, sl_err rc, const char *msg), void *arg);

/* The loop's copy of the metadata image (cluster/meta.h), or NULL
 * without cluster mode. Valid until sl_bcluster_stop. */
struct sl_meta;
const struct sl_meta *sl_bcluster_image(sl_broker *b);

/* The quorum member, for broker/cluster_ops.c; NULL without cluster
 * mode. */
struct sl_cluster_node;
struct sl_cluster_node *sl_bcluster_node(const sl_broker *b);

#endif
