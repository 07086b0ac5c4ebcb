/*
 * binary_groups.h - the binary protocol's group APIs (stream groups 10-16,
 * queue groups and the DLQ 20-27) as a module of sluiced (server.c's
 * module table; after the groups module, before STOMP).
 * @thread loop
 */
#ifndef SL_BINARY_GROUPS_H
#define SL_BINARY_GROUPS_H

#include "broker/ops.h"

/* Register the handlers; keep the queue consumer registry on b. */
void sl_binary_groups_module_init(sl_broker *b);
/* Free every binary queue consumer (what they held is available again). */
void sl_binary_groups_module_fini(sl_broker *b);

#endif
