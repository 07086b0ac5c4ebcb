/*
 * tls.h - the broker's TLS context (broker/tls.c has the essay): one
 * server SSL_CTX built from tls-cert, tls-key, tls-ca and tls-client-auth,
 * shared by every TLS listener (binary, STOMP, HTTP) and rebuilt on
 * SIGHUP.
 * @thread loop (everything here)
 */
#ifndef SL_TLS_H
#define SL_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

typedef struct sl_broker sl_broker;

/* True when a TLS listener is configured (tls-listen, stomp-tls-listen or
 * http-tls-listen). */
int sl_tls_wanted(const sl_broker *b);
/* Build the context from the configuration when a TLS listener is set up
 * (nothing to do otherwise). 0, or -1 with the reason in err (a missing
 * or unreadable file, a key that does not match the certificate, ...). */
int sl_tls_init(sl_broker *b, char *err, size_t errlen);
/* SIGHUP: build a new context from the same files. On success new
 * connections use it, open ones keep the one they started with; on
 * failure the old one stays (an ERROR line says why). No-op without TLS. */
void sl_tls_reload(sl_broker *b);
/* A new SSL object for an accepted connection, NULL without TLS or when
 * out of memory. */
SSL *sl_tls_ssl_new(sl_broker *b);
void sl_tls_fini(sl_broker *b);
/* The reason of the first error in OpenSSL's queue (for a log line),
 * e.g. "wrong version number"; the queue is cleared. */
const char *sl_tls_err_reason(unsigned long e, char *buf, size_t len);

#endif
