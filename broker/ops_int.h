/*
 * ops_int.h - what ops.c and ops_watch.c share (not for use outside
 * broker/ops*.c; ops.h is the interface). @thread loop
 */
#ifndef SL_BROKER_OPS_INT_H
#define SL_BROKER_OPS_INT_H

#include "broker/ops.h"
#include "broker/topic.h"

/* ops.c */
/* topic/partition's sl_tpart, created as create says (cluster: through
 * the quorum). */
sl_err sl_ops_tp_get(sl_broker *b, const char *topic, int32_t partition,
                     enum sl_ops_create create, sl_tpart **out);
/* Are tp's records visible to readers as soon as they are appended? */
int sl_ops_visible_at_append(const sl_broker *b, const sl_tpart *tp);

/* ops_watch.c */
/* Take l out of its partition's watch list. */
void sl_ops_watch_unlink(sl_watch_link *l);
/* Queue tp's watches on the fire list; sl_ops_run_fire_list calls them. */
void sl_ops_fire(sl_broker *b, sl_tpart *tp);
void sl_ops_run_fire_list(sl_broker *b);

#endif
