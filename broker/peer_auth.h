/*
 * peer_auth.h - brokers of a cluster prove to each other that they hold
 * the cluster secret (cluster-secret-file), before any request on a
 * connection between them (broker/peer_auth.c has the design).
 * @thread loop
 */
#ifndef SL_BROKER_PEER_AUTH_H
#define SL_BROKER_PEER_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"
#include "protocol/err.h"

struct evbuffer;
struct bufferevent;

#define SL_PEER_MECH "SLUICE-BROKER"

/* The client side, one per connection to another broker. */
typedef struct sl_peer_login {
    int left;           /* replies of the login still to read */
    uint32_t corr;      /* of the SASL_AUTHENTICATE */
    uint8_t expect[32]; /* the server's proof */
} sl_peer_login;

/*
 * Queue the login (SASL_HANDSHAKE SLUICE-BROKER, SASL_AUTHENTICATE with
 * the proof) on bev before the connection's first request; its replies
 * come first, in order. Without a cluster secret nothing is sent.
 * SL_OK or SL_ERR_NOMEM.
 */
sl_err sl_peer_login_start(sl_broker *b, sl_peer_login *pl,
                           struct bufferevent *bev);
/*
 * The login message itself ("n=NODE,t=UNIX_MS,r=NONCE,p=PROOF"), for a
 * connection that carries it in its own protocol (a STOMP relay session's
 * CONNECT, broker/relay.c), and in expect the server's proof to check
 * its answer against with sl_peer_login_proof_ok. Needs a cluster
 * secret (sl_peer_auth_enabled). SL_OK or SL_ERR_NOMEM.
 */
sl_err sl_peer_login_message(sl_broker *b, char *msg, size_t msglen,
                             uint8_t expect[32]);
/* 1 when got ("v=" hex) is the server's proof expected. */
int sl_peer_login_proof_ok(const uint8_t expect[32], const char *got);
/*
 * At the top of the connection's read callback: consume the login's
 * replies at the head of in. 1: done (what follows is the connection's
 * own), 0: more bytes needed, -1: refused or the other side is no broker
 * of this cluster (msg says why: close the connection).
 */
int sl_peer_login_read(sl_peer_login *pl, struct evbuffer *in, char *msg,
                       size_t msglen);

/* Log a refused login (WARN, subsystem sub: "replica", "forward",
 * "cluster"), at most one line per 10 s in all, with the count of the
 * ones left out: a node with a wrong secret retries all the time. */
void sl_peer_login_warn(const char *sub, int32_t node, const char *addr,
                        const char *msg);

/*
 * A bufferevent for a connection to another broker at addr (HOST:PORT):
 * a socket one, or with cluster-tls a TLS one that checks the peer's
 * certificate (tls-ca, and the host or IP of addr) and shows this node's.
 * Connect it with bufferevent_socket_connect. NULL when out of memory or
 * the TLS context cannot be built (logged).
 */
struct bufferevent *sl_peer_bev_new(sl_broker *b, const char *addr);
/* The address other nodes reach this one at: binary (stomp 0) or STOMP
 * (stomp 1); the TLS listeners' with cluster-tls. */
const char *sl_peer_my_addr(const sl_broker *b, int stomp);

/* The cluster secret (for the Raft transport, cluster/raft_auth.c);
 * *len 0 without one. */
const uint8_t *sl_peer_secret(const sl_broker *b, size_t *len);

/* The server side (auth_sasl.c). 1 when a cluster secret is loaded. */
int sl_peer_auth_enabled(const sl_broker *b);
/*
 * Check a login message: node id, time, nonce and proof. SL_OK with
 * *node and reply (the server's proof, NUL-terminated) filled, else
 * SL_ERR_AUTHENTICATION_FAILED with why. A message is accepted once (a
 * replayed one is refused) and only within 5 minutes of its time.
 */
sl_err sl_peer_auth_check(sl_broker *b, const uint8_t *m, size_t len,
                          int32_t *node, char *reply, size_t replylen,
                          char *why, size_t whylen);

#endif
