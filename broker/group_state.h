/*
 * group_state.h - queue group state replicated with the data
 * (broker/group_state.c, docs/cluster.md 6). @thread loop
 */
#ifndef SL_BROKER_GROUP_STATE_H
#define SL_BROKER_GROUP_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/err.h"

/* The internal topic, its partition count when this node creates it. */
#define SL_GSTATE_TOPIC "__sluice_group_state"
#define SL_GSTATE_PARTITIONS 16

typedef struct sl_broker sl_broker;
typedef struct sl_groups sl_groups;
typedef struct sl_gstate sl_gstate;

/* With cluster mode (node-id set): *out is set first (env.replicate
 * must find it), then every queue group groups.db loaded is dropped
 * (the state log is the truth; a group is loaded again when this node
 * becomes its coordinator). *out NULL without cluster mode. */
sl_err sl_gstate_new(sl_broker *b, sl_groups *g, sl_gstate **out);
void sl_gstate_free(sl_gstate *gs); /* accepts NULL */
/* The broker's group state replication, owned by the groups module
 * (implemented by broker/ops_groups.c, which calls sl_gstate_new); NULL on
 * a single node or outside the module's init..fini. */
sl_gstate *sl_ops_gstate(sl_broker *b);

/* The state partition of `group` among nparts (fnv1a32 mod nparts, as
 * libsluice computes it). */
int32_t sl_gstate_partition(const char *group, int32_t nparts);
/* Does this node coordinate queue group `group`? Always on a single node.
 * In a cluster: it leads the group's state partition, has rebuilt the
 * state from it and holds its coordinator lease; else 0, and the first
 * call asks for the state topic's creation when the image lacks it. */
int sl_gstate_coordinates(sl_gstate *gs, const char *group);
/* 1 when this node's coordinator lease has lapsed (cluster/lease.c): then
 * sl_gstate_coordinates says no for every coordinated group. */
int sl_gstate_lease_lapsed(sl_gstate *gs);
/* sl_gstate_coordinates, or this node leads the group's state partition
 * and its lease ran out less than a session timeout ago: a settlement is
 * taken and waits for the lease (group_state.c). */
int sl_gstate_settles(sl_gstate *gs, const char *group);
/* The node id that coordinates `group` per this node's image: 0 on a
 * single node, -1 when unknown now (no state topic yet: its creation is
 * asked for; an election). */
int32_t sl_gstate_coordinator(sl_broker *b, const char *group);
/* GROUP_LIST and GROUP_DESCRIBE for the whole cluster
 * (broker/group_route.c, whose state hangs on gs): NULL when gs is. */
struct sl_groute;
struct sl_groute *sl_gstate_route(sl_gstate *gs);
sl_err sl_groute_new(sl_broker *b, struct sl_groute **out);
/* Requests in flight are answered SL_ERR_SHUTTING_DOWN. Accepts NULL. */
void sl_groute_free(struct sl_groute *gr);
/* The answer to one sl_groute_call: rc SL_OK with the node's whole
 * response frame (frame, len: valid during the call only), or why there
 * is none (down, refused, a bad reply, no answer within timeout_ms,
 * SL_ERR_SHUTTING_DOWN). */
typedef void (*sl_groute_call_fn)(void *arg, sl_err rc, const uint8_t *frame,
                                  size_t len);

/* Send one request frame (a whole request whose correlation id is corr)
 * to node `node` of the image on a connection of its own (logged in as a
 * broker with a cluster secret, TLS with cluster-tls). SL_OK: fn runs
 * exactly once, later, from the loop (also at shutdown); otherwise
 * (SL_ERR_INVALID_ARG: not a node with an address, or this node) fn never
 * runs. timeout_ms 0: 5 s. */
sl_err sl_groute_call(sl_broker *b, int32_t node, const uint8_t *frame,
                      size_t len, uint32_t corr, int timeout_ms,
                      sl_groute_call_fn fn, void *arg);
/* groups env.replicate (groups/groups.h). */
void sl_gstate_replicate(sl_gstate *gs, const uint8_t *ops, size_t len,
                         uint64_t seq);
/* The metadata image changed (broker/cluster.c): rebuild the groups of
 * state partitions this node leads now, drop those it no longer leads. */
void sl_gstate_on_image(sl_broker *b);

#endif
