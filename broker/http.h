/*
 * http.h - the HTTP adapter of sluiced (an ops table on conn.c): /metrics,
 * /healthz, /readyz, the JSON management API under /api/ (every route maps
 * onto a verb of broker/admin.h) and the web console at /.
 * docs/http-api.md documents the routes. Loopback by default
 * (--http-listen); the same routes over TLS with --http-tls-listen
 * (docs/security.md).
 * @thread loop
 */
#ifndef SL_HTTP_H
#define SL_HTTP_H

#include "broker/ops.h"

/* Module life cycle (server.c's table): attach the HTTP ops to the
 * http listeners, which server.c binds (http-listen, http-tls-listen). */
void sl_http_module_init(sl_broker *b);
void sl_http_module_fini(sl_broker *b);

#endif
