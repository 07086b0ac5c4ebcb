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

/* ADMIN verbs of groups answered for the whole cluster
 * (admin_groups_cluster.c): the request sent to other nodes carries the
 * argument scope=node, "answer for this node only". */
#define SL_GROUTE_SCOPE_KEY "scope"
#define SL_GROUTE_SCOPE_NODE "node"

/* One node's answer to an ADMIN request: rc SL_OK with its JSON document
 * (json, len; not NUL-terminated), or the error (the node's own, or why
 * it did not answer: down, refused, no answer within 5 s) and msg. */
typedef struct sl_groute_ans {
    int32_t node;
    sl_err rc;
    const char *msg;
    const char *json;
    size_t len;
} sl_groute_ans;

/* The answers, valid during the call only; n is 0 when nobody was asked. */
typedef void (*sl_groute_admin_fn)(void *arg, const sl_groute_ans *ans,
                                   size_t n);

/* Send ADMIN verb with args (plus scope=node) to node `node`, or, node < 0,
 * to every other node of the image that is not fenced. group (may be
 * NULL) only names the request in log lines. A node that has not
 * answered after timeout_ms (0: 5 s) is given up. SL_OK: fn runs exactly once,
 * later, from the loop (never before this returns), also at shutdown
 * (answers SL_ERR_SHUTTING_DOWN); otherwise fn never runs. */
sl_err sl_groute_admin(sl_broker *b, int32_t node, const char *group,
                       const char *verb, size_t nargs, const char *const *keys,
                       const char *const *values, int timeout_ms,
                       sl_groute_admin_fn fn, void *arg);

/* sl_groute_call, one request to one node: group_state.h (beside
 * sl_groute_new), so that group_state.c can hand it to the observer
 * without an include cycle. */

#endif
