/*
 * cluster_users.h - users and permission rules of a cluster, kept in the
 * metadata log (broker/cluster_users.c; docs/security.md "Clusters").
 * Proposing a change: broker/cluster_users_propose.h, included below.
 * @thread loop
 */
#ifndef SL_BROKER_CLUSTER_USERS_H
#define SL_BROKER_CLUSTER_USERS_H

#include <stddef.h>

#include "broker/auth.h"
#include "broker/cluster_users_propose.h"
#include "cluster/meta.h"
#include "protocol/err.h"

/* After the loop's image applied commands (cluster.c's reconcile): copy
 * its users and rules into the store when they changed. */
void sl_cluster_users_sync(sl_broker *b);

/* cluster.c's start and stop: the seeding of users created on this node
 * before it was part of the log (--bootstrap-admin, stomp-users-file),
 * and the answers still waiting. */
void sl_cluster_users_start(sl_broker *b);
void sl_cluster_users_stop(sl_broker *b);

#endif
