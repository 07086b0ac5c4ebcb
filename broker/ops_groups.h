/*
 * ops_groups.h - the groups module of sluiced: owns the sl_groups object
 * (groups/groups.h), wires it to the broker (partitions, DLQ appends with
 * auto-create, append and topic-delete hooks, the flusher hook and a
 * wake-up after every flusher round, the lock/due-time timer) and
 * registers the binary APIs 10-16 and 20-27 (broker/binary_groups.c).
 *
 * Other front ends (STOMP) use sl_ops_groups(b) and the sl_qconsumer_* /
 * sl_groups_wait functions directly.
 * @thread loop
 */
#ifndef SL_OPS_GROUPS_H
#define SL_OPS_GROUPS_H

#include "broker/ops.h"
#include "groups/groups.h"

/* The broker's groups, or NULL before module init / after fini. */
sl_groups *sl_ops_groups(sl_broker *b);

/* broker/binary_groups.c: register the binary handlers. */
void sl_binary_groups_register(sl_broker *b);
/* broker/binary_groups.c: free binary queue consumers (module fini). */
void sl_binary_groups_fini(sl_broker *b);
/* broker/binary_groups.c: reap consumers idle for too long. */
void sl_binary_groups_reap(sl_broker *b, int64_t now);

#endif
