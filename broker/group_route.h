/*
 * group_route.h - GROUP_LIST and GROUP_DESCRIBE answered for the whole
 * cluster by any node (broker/group_route.c, docs/cluster.md 6.4).
 * @thread loop
 */
#ifndef SL_BROKER_GROUP_ROUTE_H
#define SL_BROKER_GROUP_ROUTE_H

#include "broker/binary.h"
#include "protocol/err.h"

typedef struct sl_groute sl_groute;

/* sl_groute_new and sl_groute_free: group_state.h (its state hangs on
 * the group state's). */

/* This node's own groups as a whole GROUP_LIST response frame (any
 * correlation id, nothing filtered). */
typedef sl_err (*sl_groute_local_fn)(sl_broker *b, sl_wb *wb);

/* GROUP_LIST version 1 in a cluster: every live node is asked for its
 * own groups (version 2) and the answer is their union, filtered by what
 * c may see; local gives this node's. 1: taken (r is answered later); 0: answer
 * locally (a single node, or a version 2 request). */
int sl_groute_list(sl_broker *b, sl_conn *c, const sl_req *req, sl_reply *r,
                   sl_groute_local_fn local);
/* GROUP_DESCRIBE of group in a cluster: version 1 is sent on to the
 * group's coordinator (as version 2) unless this node is it; version 2
 * is refused with NOT_COORDINATOR unless this node is it. 1: taken (r is
 * answered, now or later); 0: answer locally. */
int sl_groute_describe(sl_broker *b, const sl_req *req, const char *group,
                       sl_reply *r);

#endif
