/*
 * ws.h - STOMP over WebSocket (--stomp-ws-listen): a transport under the
 * STOMP adapter (broker/ws.c has the design essay).
 * @thread loop
 */
#ifndef SL_WS_H
#define SL_WS_H

#include "broker/ops.h"

/* Attach the WebSocket transport and the STOMP ops to the WebSocket
 * listener (after the STOMP module); nothing when stomp-ws-listen is
 * empty. */
void sl_ws_module_init(sl_broker *b);
void sl_ws_module_fini(sl_broker *b);

#endif
