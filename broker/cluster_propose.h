/*
 * cluster_propose.h - putting a metadata command in the quorum's log
 * (implemented by cluster.c; broker/cluster.h includes it). Apart from
 * cluster.h so that the modules cluster.c starts (replica.c) can propose
 * without depending on cluster.c's module (scripts/include-cycles.py).
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

#endif
