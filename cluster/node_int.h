/*
 * node_int.h - what node.c (the thread, the queues, proposals,
 * membership, start and stop) shares with node_ctl.c (the controller,
 * failure detection and the coordinator lease): the node's struct and the
 * items on its queues. Not for use outside cluster/node*.c; the design is
 * in node.h.
 */
#ifndef SL_CLUSTER_NODE_INT_H
#define SL_CLUSTER_NODE_INT_H

#include <pthread.h>
#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "cluster/fsm.h"
#include "cluster/lease.h"
#include "cluster/node.h"

enum { IT_APPLY = 1, IT_RESTORE, IT_DONE, IT_PROPOSE };

typedef struct item {
    struct item *next;
    int kind;
    uint64_t index;
    uint8_t *buf;
    size_t len;
    sl_err rc;
    char msg[160];
    sl_cluster_done_fn fn;
    void *arg;
    struct raft_apply req;
    struct raft_change change; /* membership requests */
    int32_t member;
    struct sl_cluster_node *node;
} item;

typedef struct ilist {
    item *head, *tail;
} ilist;

/* Liveness of one member, as this node sees it (raft thread; the
 * controller's rules are in docs/cluster.md, "Failure detection"):
 * - heard: when its last Raft message arrived (any message: heartbeat
 *   replies, votes), noted by io_recv_hook as it arrives;
 * - seen: the start of its current session: heard, or the moment a new
 *   metadata leader gave it a fresh session; fenced when now - seen
 *   reaches session_ms;
 * - refused: consecutive connects to its Raft address refused while it
 *   was silent (probe_cb). A refused connect is a definite signal: the
 *   machine answered that nothing listens there, so the process is gone;
 *   two of them, a tick apart, fence it without waiting out the session.
 *   A paused process (its socket still listens) or a lost machine or
 *   link (no answer at all) never refuses: those wait for the session. */
struct probe;
struct live {
    int32_t id;
    uint64_t heard, seen;
    unsigned refused;
    int wiped;           /* answered below what it had acknowledged */
    uint64_t probe_done; /* when the last probe finished */
    struct probe *probe; /* in flight */
};

/* A connect to a silent member's Raft address (struct live). */
typedef struct probe {
    struct sl_cluster_node *n;
    int32_t id;
    uint64_t start;
    uv_tcp_t tcp;
    uv_connect_t req;
} probe;

struct sl_cluster_node {
    int32_t id;
    char listen[SL_CLUSTER_ADDR_MAX];
    char addr[SL_CLUSTER_ADDR_MAX], stomp_addr[SL_CLUSTER_ADDR_MAX];
    char tls_addr[SL_CLUSTER_ADDR_MAX];
    char *dir;
    sl_cluster_peer peers[SL_CLUSTER_MAX_PEERS];
    size_t npeers;
    unsigned session_ms;
    void (*notify)(void *arg);
    void *notify_arg;
    uint64_t start_index; /* raft_last_index after raft_start */

    uv_loop_t loop;
    uv_async_t async;
    uv_timer_t tick;
    struct raft_uv_transport transport;
    struct raft_uv_transport auth_transport; /* with a secret: raft_auth.c */
    struct raft_io io;
    struct raft raft;
    sl_meta_fsm fsm;
    int loop_init, transport_init, io_init, raft_init;
    pthread_t thr;
    int thr_started;

    pthread_mutex_t mu; /* guards inbox, outbox, stopping, st */
    ilist inbox, outbox;
    int stopping;
    int leaving; /* controlled shutdown: do not register again */
    int closing; /* raft_close called (raft thread) */
    unsigned election_ms;
    struct raft_transfer xfer;
    sl_cluster_status st;

    /* controller, raft thread only */
    raft_term barrier_term, barrier_for;
    int barrier_pending;
    struct raft_barrier barrier;
    int ctl_pending;
    /* liveness of every member of the Raft configuration (live_slot) */
    struct live live[SL_META_MAX_NODES];
    size_t nlive;
    unsigned heartbeat_ms;
    /* the io's start and libraft's receive callback, wrapped to note when
     * each message arrives (sl_node_io_start_hook) */
    int (*io_start)(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                    raft_io_recv_cb recv);
    raft_io_recv_cb raft_recv;
    /* a wiped voter's demotion and promotion (wiped_step) */
    struct raft_change wchange;
    int wchange_busy;
    /* as a follower: the Raft leader */
    raft_id prev_leader;
    uint64_t last_tick; /* the controller's previous tick (uv_now) */

    /* the coordinator lease (cluster/lease.c): rules on the raft thread;
     * until and the outbox position the loop must have drained to trust
     * it are published under mu */
    sl_lease lease;
    uint64_t pushed;     /* outbox items ever pushed (mu) */
    uint64_t drained;    /* pushed count the loop has applied (loop) */
    int64_t lease_until; /* CLOCK_MONOTONIC ms (mu) */
    uint64_t lease_seq;  /* pushed when lease_until was computed (mu) */
    /* the term whose barrier applied (the leader's "committed an entry of
     * its term") and the outbox position the loop must have drained to
     * hold everything before it (mu; sl_cluster_leader_ready) */
    uint64_t ready_term;
    uint64_t ready_seq;
};
/* node_ctl.c (@thread raft) */

/* The controller's tick (node.h): registration, fencing, a wiped voter's
 * demotion, reassignments; as a follower, the leader's probe. */
void sl_node_controller(sl_cluster_node *n);
/* Every tick: the coordinator lease, published for
 * sl_cluster_lease_valid. */
void sl_node_lease_update(sl_cluster_node *n);
/* The io's start, wrapped: libraft's receive callback notes each
 * message's sender as heard (raft_io.start). */
int sl_node_io_start_hook(struct raft_io *io, unsigned msecs,
                          raft_io_tick_cb tick, raft_io_recv_cb recv);
/* Stop l's probe, if any (it counts as not refused). */
void sl_node_probe_cancel(struct live *l);

#endif
