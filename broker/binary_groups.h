/*
 * binary_groups.h - the binary protocol's group APIs (stream groups 10-16,
 * queue groups and the DLQ 20-27) as a module of sluiced (server.c's
 * module table; after the groups module, before STOMP). Which file holds
 * which handlers: the top of binary_groups.c.
 * @thread loop
 */
#ifndef SL_BINARY_GROUPS_H
#define SL_BINARY_GROUPS_H

#include "broker/binary.h"
#include "broker/ops.h"
#include "groups/groups.h"
#include "protocol/api.h"

/* Register the handlers; keep the queue consumer registry on b. */
void sl_binary_groups_module_init(sl_broker *b);
/* Free every binary queue consumer (what they held is available again). */
void sl_binary_groups_module_fini(sl_broker *b);
/* The queue consumers connection c owns, as the JSON keys "groups" (an
 * array of {group, topic, consumer, in_flight}) and "in_flight" (admin
 * "connections"). */
struct sl_jw;
void sl_bg_describe_conn(sl_broker *b, sl_conn *c, struct sl_jw *j);

/* ---- inside the module (binary_*groups.c, binary_dlq.c) ---------------- */

#define SL_BG_NAME_MAX 256 /* group, topic and consumer names, with NUL */

/* NUL-terminated copy of s into buf; 0 on success, -1 if null/too long. */
int sl_bg_cstr(sl_str s, char *buf, size_t size);
/* Send wb (a whole response frame, as encoded), or an out-of-memory error
 * when building it failed. */
void sl_bg_reply_frame(sl_reply *r, sl_wb *wb);
/* The broker's groups, or NULL after answering SL_ERR_SHUTTING_DOWN. */
sl_groups *sl_bg_groups(sl_broker *b, sl_reply *r);
/* In a cluster only a group's coordinator serves it (docs/cluster.md 6):
 * 0 after answering SL_ERR_NOT_COORDINATOR (naming the coordinator) on
 * any other node; libsluice then looks for it. 1 = go on. */
int sl_bg_coordinated(sl_broker *b, const char *group, const char *what,
                      sl_reply *r);
/* sl_bg_coordinated for a settlement: also goes on while the
 * coordinator's lease is out for less than a session timeout (the
 * settlement then waits for it: sl_ops_group_settles). */
int sl_bg_settles(sl_broker *b, const char *group, const char *what,
                  sl_reply *r);
/* Send wb (a whole response frame) once the groups state is durable; takes
 * ownership of wb's buffer. */
void sl_bg_reply_when_durable(sl_groups *g, sl_reply *r, sl_wb *wb);

/* binary_stream_groups.c: register 10-14. */
void sl_bg_stream_register(sl_broker *b);
/* binary_queue_groups.c: the consumer registry (b->bgroups) and 20-24, 27;
 * fini frees every consumer. */
sl_err sl_bg_queue_init(sl_broker *b);
void sl_bg_queue_fini(sl_broker *b);
/* Answer every parked QUEUE_ACQUIRE now with what it holds (usually
 * nothing): a controlled shutdown moved this node's groups away
 * (broker/cluster_ops.c, then sl_broker_stop_conns), and a long poll
 * would keep its client here until its max wait passed; the next
 * acquire learns where to go. */
void sl_bg_queue_wake_all(sl_broker *b);
/* binary_dlq.c: register 25-26. */
void sl_bg_dlq_register(sl_broker *b);

#endif
