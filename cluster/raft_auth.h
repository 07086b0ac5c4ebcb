/*
 * raft_auth.h - the cluster secret on the Raft port (cluster/raft_auth.c
 * has the design): a libraft transport that wraps the TCP one.
 * @thread raft (the Raft thread's uv loop), except init/fini as noted
 */
#ifndef SL_CLUSTER_RAFT_AUTH_H
#define SL_CLUSTER_RAFT_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>

typedef struct sl_raft_auth sl_raft_auth;

/*
 * Make outer a transport that delegates to inner (raft_uv_tcp_init'ed)
 * and adds the proof of secret to every connection: written first on
 * each outgoing one, checked on each incoming one before libraft sees
 * it. Hand outer to raft_uv_init. 0, or RAFT_NOMEM. @thread loop
 */
int sl_raft_auth_init(struct raft_uv_transport *outer,
                      struct raft_uv_transport *inner, struct uv_loop_s *loop,
                      const uint8_t *secret, size_t len);
/* Free what init allocated, after libraft closed outer (and inner was
 * closed with raft_uv_tcp_close). Accepts an outer init never ran on. */
void sl_raft_auth_fini(struct raft_uv_transport *outer);

#endif
