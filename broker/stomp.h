/*
 * stomp.h - the STOMP 1.0/1.1/1.2 adapter of sluiced.
 *
 * Translates STOMP frames into the broker's internal operations (ops.h for
 * topics, appends, reads and durability; groups.h queue consumers for
 * /queue destinations and durable subscriptions). It keeps no storage and
 * no delivery state of its own beyond what a connection needs to speak
 * STOMP: subscriptions, the messages it delivered and not yet acked (to
 * resolve ACK/NACK ids), open transactions and the replies it owes.
 * docs/stomp.md is the user-facing description.
 *
 * server.c's module table calls init and fini.
 * @thread loop
 */
#ifndef SL_STOMP_H
#define SL_STOMP_H

#include "broker/ops.h"

/* Load users, register the accept function and the append/delete hooks. */
void sl_stomp_module_init(sl_broker *b);
/* Close every STOMP connection (releasing what they held) and free. */
void sl_stomp_module_fini(sl_broker *b);

#endif
