/*
 * cluster_users_propose.h - changing users and permission rules in a
 * cluster: through the metadata log (implemented by cluster_users.c;
 * broker/cluster_users.h includes it). Apart from cluster_users.h so that
 * the user store and the rules (auth.c, acl.c), which cluster_users.c
 * builds on, can propose without depending on its module
 * (scripts/include-cycles.py). @thread loop
 */
#ifndef SL_BROKER_CLUSTER_USERS_PROPOSE_H
#define SL_BROKER_CLUSTER_USERS_PROPOSE_H

#include <stddef.h>

#include "broker/types.h"
#include "protocol/err.h"
#include "protocol/frame.h"

struct sl_user;
struct sl_auth_later;

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
                                const char *missing_msg,
                                struct sl_auth_later *later, char *msg,
                                size_t msglen);
/* A read barrier for users and rules (broker/cluster_read.c): fn(arg, rc,
 * msg) runs exactly once, later, when SL_OK is returned, once this node's
 * store holds every change to users and rules answered before, on any
 * node (and, right after a start, once this node's own users were
 * proposed: its store follows the log only then). rc not SL_OK: the
 * store as it is. Not a cluster: an error, fn never runs.
 * sl_cluster_users_read_needed: 1 when it has something to wait for
 * (this node is not the metadata leader, or seeds); 0: read now. */
int sl_cluster_users_read_needed(sl_broker *b);
sl_err sl_cluster_users_barrier(
    sl_broker *b, void (*fn)(void *arg, sl_err rc, const char *msg), void *arg);

/* The same for a USER_UPSERT of u with flags (cluster/meta.h). */
sl_err sl_cluster_users_propose_user(sl_broker *b, const struct sl_user *u,
                                     int flags, const char *audit,
                                     const char *exists_msg,
                                     const char *missing_msg,
                                     struct sl_auth_later *later, char *msg,
                                     size_t msglen);

#endif
