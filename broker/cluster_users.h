/*
 * cluster_users.h - users and permission rules of a cluster, kept in the
 * metadata log (broker/cluster_users.c; docs/security.md "Clusters").
 * @thread loop
 */
#ifndef SL_BROKER_CLUSTER_USERS_H
#define SL_BROKER_CLUSTER_USERS_H

#include <stddef.h>

#include "broker/auth.h"
#include "cluster/meta.h"
#include "protocol/err.h"

/* 1 when this broker is a cluster node: users and rules change only
 * through the metadata log. */
int sl_cluster_users_on(const sl_broker *b);

/*
 * Put a users/rules command in the metadata log (here on the leader,
 * else forwarded to it). SL_OK with later->pending set: once the log
 * applied it (and this node's store has it), the audit line is logged
 * and later->fn runs with the result; an apply refusal is named by
 * exists_msg (SL_ERR_INVALID_ARG: exists already) or missing_msg
 * (SL_ERR_NOT_FOUND), either may be NULL. Else an error with msg.
 */
sl_err sl_cluster_users_propose(sl_broker *b, const sl_wb *cmd,
                                const char *audit, const char *exists_msg,
                                const char *missing_msg, sl_auth_later *later,
                                char *msg, size_t msglen);
/* The same for a USER_UPSERT of u with flags (cluster/meta.h). */
sl_err sl_cluster_users_propose_user(sl_broker *b, const sl_user *u,
                                     int flags, const char *audit,
                                     const char *exists_msg,
                                     const char *missing_msg,
                                     sl_auth_later *later, char *msg,
                                     size_t msglen);

/* After the loop's image applied commands (cluster.c's reconcile): copy
 * its users and rules into the store when they changed. */
void sl_cluster_users_sync(sl_broker *b);

/* cluster.c's start and stop: the seeding of users created on this node
 * before it was part of the log (--bootstrap-admin, stomp-users-file),
 * and the answers still waiting. */
void sl_cluster_users_start(sl_broker *b);
void sl_cluster_users_stop(sl_broker *b);

#endif
