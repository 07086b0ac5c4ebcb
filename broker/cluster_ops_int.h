/*
 * cluster_ops_int.h - what cluster_ops.c shares with cluster_reassign.c:
 * proposing a command for an admin call (not for use outside
 * broker/cluster_ops.c and broker/cluster_reassign.c). @thread loop
 */
#ifndef SL_BROKER_CLUSTER_OPS_INT_H
#define SL_BROKER_CLUSTER_OPS_INT_H

#include "broker/admin_int.h"
#include "cluster/node.h"
#include "protocol/rd.h"

/* Propose wb (consumed) to the metadata leader; fn(arg, ...) answers. */
sl_err sl_bops_propose_cmd(sl_broker *b, sl_wb *wb, sl_cluster_done_fn fn,
                           void *arg);
/* The tail of every verb that answers once one command is in the log:
 * propose wb (consumed) for call x with fn(o, ...) to answer it; x is
 * pending then. o was allocated by the caller (NULL: out of memory) and
 * is freed here when nothing was proposed; x->msg then says why. */
sl_err sl_bops_propose_for_call(sl_admin_call *x, sl_wb *wb,
                                sl_cluster_done_fn fn, void *o);

#endif
