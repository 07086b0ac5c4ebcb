/*
 * server.h - the broker's life cycle: start (lock the data directory, open
 * topics, start the flusher, call module inits, bind listeners), run the
 * event loop, and stop (SIGTERM/SIGINT: stop accepting, finish in-flight
 * requests, final flush, exit 0).
 */
#ifndef SL_SERVER_H
#define SL_SERVER_H

#include "broker/config.h"
#include "broker/ops.h"

/*
 * Start a broker with cfg (the broker takes ownership of cfg's strings;
 * cfg itself is copied). On failure err names the problem (e.g. "data
 * directory ./d is locked by another sluiced (pid 12)", "cannot listen on
 * 127.0.0.1:7410: Address already in use") and the return code says why:
 * SL_ERR_BUSY for a locked data directory. *out written on success.
 */
sl_err sl_server_start(sl_config *cfg, sl_broker **out, char *err,
                       size_t errlen);
/* "IP:PORT" actually bound (after port 0). */
const char *sl_server_binary_addr(const sl_broker *b);
const char *sl_server_stomp_addr(const sl_broker *b);
/* The STOMP-over-WebSocket listener's address, NULL when it is off. */
const char *sl_server_ws_addr(const sl_broker *b);
/* The TLS listeners' bound addresses, NULL when not configured. */
const char *sl_server_binary_tls_addr(const sl_broker *b);
const char *sl_server_stomp_tls_addr(const sl_broker *b);
const char *sl_server_wss_addr(const sl_broker *b);
/* The HTTP listener's bound address (http-listen), and the HTTPS one's
 * (http-tls-listen, NULL when not set). */
const char *sl_server_http_addr(const sl_broker *b);
const char *sl_server_http_tls_addr(const sl_broker *b);
/* Run until stopped; then shut down and free b. Returns the exit status
 * (0 after a clean SIGTERM/SIGINT, 1 after sl_broker_fail). */
int sl_server_run(sl_broker *b);

#endif
