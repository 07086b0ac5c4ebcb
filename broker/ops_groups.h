/*
 * ops_groups.h - the groups module of sluiced: owns the sl_groups object
 * (groups/groups.h) and wires it to the broker (partitions, DLQ appends
 * with auto-create, append and topic-delete hooks, the flusher hook and a
 * wake-up after every flusher round, the lock/due-time timer).
 *
 * Front ends (binary: broker/binary_groups.c; STOMP) use sl_ops_groups(b)
 * and the sl_qconsumer_* / sl_groups_wait functions directly.
 * @thread loop
 */
#ifndef SL_OPS_GROUPS_H
#define SL_OPS_GROUPS_H

#include "broker/ops.h"
#include "groups/dlq.h"
#include "groups/groups.h"

/* The module (server.c's table): open groups.db, hook into the broker. */
void sl_groups_module_init(sl_broker *b);
/* Commit what is staged and free the groups. */
void sl_groups_module_fini(sl_broker *b);
/* After the flusher stopped (its hook may run until then): free the
 * module's own state. */
void sl_groups_module_release(sl_broker *b);

/* The broker's groups, or NULL before module init / after fini. */
sl_groups *sl_ops_groups(sl_broker *b);
/* Cluster: the replication of group state: sl_ops_gstate in
 * broker/group_state.h. */
/* May this node serve requests of queue group `group`? 1 on a single
 * node; in a cluster only on its coordinator, else 0 with msg saying
 * which node coordinates it (answer SL_ERR_NOT_COORDINATOR). */
int sl_ops_group_coordinated(sl_broker *b, const char *group, char *msg,
                             size_t msglen);
/* The same for a settlement (ack, nack, reject, touch): also 1 on the
 * coordinator while its lease is out for less than a session timeout
 * (sl_gstate_settles: the settlement waits for the lease). */
int sl_ops_group_settles(sl_broker *b, const char *group, char *msg,
                         size_t msglen);
/* fn(arg, now) about once a second from the groups' timer (no wake-up of
 * its own), while the groups module runs. Register after module init.
 * SL_OK, SL_ERR_NOMEM, SL_ERR_INVALID_ARG (groups not started). */
sl_err sl_ops_groups_on_second(sl_broker *b, void (*fn)(void *arg, int64_t now),
                               void *arg);

/* The sink a DLQ redrive (groups/dlq.h) writes through: topics are
 * auto-created, records appended like a PRODUCE (admin verb and API 26). */
sl_dlq_sink sl_ops_dlq_sink(sl_broker *b);

#endif
