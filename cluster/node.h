/*
 * node.h - this broker's member of the metadata quorum: a libraft instance
 * on its own thread and uv loop, the controller it runs while it is the
 * Raft leader, and the queues between it and the broker loop.
 *
 * Why a thread (docs/cluster.md, Threads): libraft runs on libuv, sluiced
 * on libevent; a busy broker loop must not delay Raft heartbeats. The two
 * threads share no state but two mutex-protected lists and a status struct:
 *
 *   loop  -> raft: sl_cluster_propose() queues a command and wakes the
 *                  thread (uv_async_send); the thread raft_apply()s it.
 *   raft  -> loop: every applied command (index + bytes), every restored
 *                  snapshot, and every proposal's result go to an outbox in
 *                  log order, and cfg.notify(arg) is called (the broker
 *                  activates a libevent event, as for the flusher). The loop
 *                  calls sl_cluster_drain(), which applies the same bytes to
 *                  the loop's own sl_meta and then runs completions, so a
 *                  proposer's callback sees its command already applied.
 *
 * The controller (docs/cluster.md 2.3), on the Raft thread, every
 * heartbeat while leader: a barrier first in each new term (so its image
 * holds everything committed before it won), then REGISTER_NODE for
 * configuration members missing from the image and for itself with its
 * client addresses, then a wiped voter made a standby, or a caught-up
 * standby a voter again, then FENCE/UNFENCE from when each node's last
 * Raft message arrived (not heard from for session_ms = fenced, or
 * sooner when its Raft address refuses connections twice in a row: the
 * process is gone; a node that fenced itself in a controlled shutdown
 * stays fenced until it registers again), then REASSIGN_DONE for every
 * reassignment whose targets are all in sync. As a follower it probes a
 * silent Raft leader the same way and stands for election at once when
 * its address refuses.
 * "Configuration members" are libraft's configuration, which cluster
 * add-node and remove-node change (membership requests, below), not the
 * --cluster-peers a node bootstrapped with.
 */
#ifndef SL_CLUSTER_NODE_H
#define SL_CLUSTER_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/meta.h"
#include "protocol/err.h"

#define SL_CLUSTER_MAX_PEERS 16
#define SL_CLUSTER_ADDR_MAX 64

typedef struct sl_cluster_peer {
    int32_t id;
    char addr[SL_CLUSTER_ADDR_MAX];
} sl_cluster_peer;

/* Parse "1@HOST:PORT,2@HOST:PORT,..." (ids 1..1000000, unique, sorted on
 * output). SL_ERR_INVALID_CONFIG with err naming the bad entry. */
sl_err sl_cluster_parse_peers(const char *s, sl_cluster_peer *out, size_t *n,
                              char *err, size_t errlen);

typedef struct sl_cluster_cfg {
    int32_t node_id;
    const char *listen; /* Raft address; must equal this node's peer entry */
    const char *peers;  /* as for sl_cluster_parse_peers */
    const char *dir;    /* Raft directory (created) */
    const char *addr, *stomp_addr; /* client-facing, for REGISTER_NODE */
    const char *tls_addr; /* the binary TLS listener's, NULL or "" none */
    unsigned election_ms, heartbeat_ms, session_ms, snapshot_threshold;
    int join; /* joining a running cluster: do not bootstrap (docs/cluster.md
                 10.4) */
    void (*notify)(void *arg); /* @thread raft: wake the loop */
    void *notify_arg;
    /* cluster-secret-file: every Raft connection proves it
     * (cluster/raft_auth.c); secret_len 0: none */
    const uint8_t *secret;
    size_t secret_len;
} sl_cluster_cfg;

typedef struct sl_cluster_node sl_cluster_node;

/* Init libraft (bootstrapping an empty directory), bind the Raft listener,
 * and start the thread. err names the problem (e.g. the address that
 * cannot be bound). @thread loop */
sl_err sl_cluster_node_start(const sl_cluster_cfg *cfg, sl_cluster_node **out,
                             char *err, size_t errlen);
/* Close Raft and join the thread; pending proposals complete with
 * SL_ERR_SHUTTING_DOWN at the next drain (none runs after stop). Accepts
 * NULL. @thread loop */
void sl_cluster_node_stop(sl_cluster_node *n);

/* Result of a proposal: SL_OK or the command's error (meta.h), or
 * SL_ERR_BUSY when this node is not the leader (msg then names the leader),
 * SL_ERR_TIMEOUT / SL_ERR_SHUTTING_DOWN. msg is "" when nothing to add. */
typedef void (*sl_cluster_done_fn)(void *arg, sl_err rc, const char *msg);

/* Queue cmd (copied) for the log; fn(arg, ...) runs from sl_cluster_drain.
 * A membership request (SL_MREQ_MEMBER_ADD: raft_add as a spare, then
 * raft_assign to voter once libraft caught it up; SL_MREQ_MEMBER_REMOVE:
 * raft_remove) is executed instead of logged; SL_ERR_BUSY when another
 * change is in progress or the leader would remove itself (it hands the
 * leadership over first).
 * SL_ERR_NOMEM, else SL_OK. @thread loop */
sl_err sl_cluster_propose(sl_cluster_node *n, const void *cmd, size_t len,
                          sl_cluster_done_fn fn, void *arg);

/* Apply what the Raft thread applied to image (in order), run completions,
 * and return how many commands or snapshots changed image. @thread loop */
size_t sl_cluster_drain(sl_cluster_node *n, sl_meta *image);

/* Controlled shutdown began: the controller stops registering this node
 * (which would undo its SL_MI_STOPPED fence). @thread any */
void sl_cluster_node_set_leaving(sl_cluster_node *n);

typedef struct sl_cluster_status {
    int32_t node_id;
    int32_t leader_id; /* 0 = no known leader */
    int role;          /* 0 unavailable, 1 follower, 2 candidate, 3 leader */
    uint64_t term, applied;
    /* the last index of this node's Raft log when it started: an image
     * applied this far is as new as anything this node acted on before
     * (broker/replica.c deletes moved-off replicas only then) */
    uint64_t start_index;
} sl_cluster_status;

/* A copy of the latest status the Raft thread published. @thread any */
void sl_cluster_status_get(sl_cluster_node *n, sl_cluster_status *st);

/* The coordinator lease (cluster/lease.c, docs/cluster.md "Coordinator
 * lease"): 1 while this node may act on what its image says it leads,
 * i.e. the lease computed on the Raft thread has not run out on
 * CLOCK_MONOTONIC and sl_cluster_drain has applied every command the
 * Raft thread had applied when it computed it. *left_ms (may be NULL):
 * what is left of it. @thread loop */
int sl_cluster_lease_valid(sl_cluster_node *n, int64_t *left_ms);
/* How long ago the lease ran out, in ms: 0 while it is valid (or only
 * waits for sl_cluster_drain), INT64_MAX if this node never held one.
 * @thread loop */
int64_t sl_cluster_lease_lapsed_ms(sl_cluster_node *n);
/* 1 while this node is the metadata leader and its copy holds every
 * change committed before its term: the barrier the controller appends
 * at the start of each term (Raft's no-op, section 6.4 of Ongaro's
 * thesis) has applied and sl_cluster_drain has applied everything before
 * it. Until then a new leader may lack a change its predecessor
 * answered, and must not answer read barriers (broker/cluster_read.c).
 * The loop is notified when it becomes true. @thread loop */
int sl_cluster_leader_ready(sl_cluster_node *n);
/* The lease length in ms for this node's Raft timings. @thread any */
int64_t sl_cluster_lease_ms(sl_cluster_node *n);

#endif
