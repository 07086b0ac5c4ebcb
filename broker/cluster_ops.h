/*
 * cluster_ops.h - operating a cluster (issue 14, docs/cluster.md section
 * 10): controlled shutdown on SIGTERM, and the admin verbs that move
 * partitions and change the membership. All of it goes through the
 * metadata quorum (broker/cluster.c, cluster/meta.h). @thread loop
 */
#ifndef SL_BROKER_CLUSTER_OPS_H
#define SL_BROKER_CLUSTER_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/err.h"

typedef struct sl_broker sl_broker;
typedef struct sl_bops sl_bops;

/* Registers the controlled-shutdown stop hook. Called by
 * sl_bcluster_start once the quorum member runs. */
sl_err sl_bops_new(sl_broker *b, sl_bops **out);
/* Accepts NULL. Called after the quorum member stopped (its completions
 * have run). */
void sl_bops_free(sl_bops *o);
/* The loop's image changed (after each drain): waiters look again. */
void sl_bops_changed(sl_bops *o);

/* Whether a CLUSTER_FORWARD may carry cmd: a node's own controlled-shutdown
 * fence, and the operations' commands. */
int sl_bops_forwardable(const void *cmd, size_t len);

/* Its admin verbs (partition.reassign, partition.reassignments,
 * cluster.rebalance, cluster.add_node, cluster.remove_node) are declared
 * with the others in broker/admin_int.h. */

struct sl_admin_call;
/* topic.alter and topic.add_partitions in a cluster (admin_topics.c calls
 * them when the broker is one): through the metadata log; every node
 * applies the change when it sees it (sl_bops_sync_topics). keys/vals and
 * name are borrowed for the call. */
sl_err sl_bops_topic_alter(struct sl_admin_call *x, const char *name,
                           const char *const *keys, const char *const *vals,
                           size_t n);
sl_err sl_bops_topic_add_partitions(struct sl_admin_call *x, const char *name,
                                    int32_t count);
/* Make the local topics match the image's partition counts and configs
 * (cluster.c's reconcile, after it created missing topics). */
void sl_bops_sync_topics(sl_broker *b);

#endif
