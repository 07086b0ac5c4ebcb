/*
 * cluster.h - cluster mode in the broker (broker/cluster.c,
 * docs/cluster.md). @thread loop
 */
#ifndef SL_BROKER_CLUSTER_H
#define SL_BROKER_CLUSTER_H

#include <stddef.h>

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

/* Put an encoded metadata command (cluster/meta.h) in the log: proposed
 * here on the metadata leader, else forwarded to it (CLUSTER_FORWARD).
 * fn(arg, rc, msg) runs exactly once, later, when SL_OK is returned. */
sl_err sl_bcluster_propose(sl_broker *b, const void *cmd, size_t len,
                           void (*fn)(void *arg, sl_err rc, const char *msg),
                           void *arg);

#endif
