/*
 * lease.h - the coordinator lease: how long this node may still act on
 * what it believes it leads (docs/cluster.md, "Coordinator lease").
 *
 * Pure rules over times in CLOCK_MONOTONIC milliseconds, fed by the Raft
 * thread (cluster/node.c): every Raft message received, and a tick. No
 * libraft or libuv types, so tests/unit/test_cluster_lease.c drives it
 * with made-up times. @thread raft
 */
#ifndef SL_CLUSTER_LEASE_H
#define SL_CLUSTER_LEASE_H

#include <stddef.h>
#include <stdint.h>

#define SL_LEASE_RING 16
#define SL_LEASE_VOTERS 16

/* Message kinds sl_lease_on_msg cares about (libraft's codes differ). */
enum { SL_LEASE_MSG_OTHER = 0, SL_LEASE_MSG_APPEND, SL_LEASE_MSG_RESULT };
/* Raft roles as node.c's status reports them. */
enum { SL_LEASE_FOLLOWER = 1, SL_LEASE_CANDIDATE, SL_LEASE_LEADER };

typedef struct sl_lease {
    int32_t self;
    int64_t lease_ms;    /* sl_lease_ms() */
    int64_t stall_ms;    /* a silence of this thread longer: see lease.c */
    int64_t last_run;    /* last message read or tick */
    int64_t guard_until; /* after a stall: messages do not extend */
    int64_t until;       /* the lease: valid while now < until */
    uint64_t term;       /* of until */
    int role;            /* of until */
    /* follower: the latest AppendEntries (anchor, sender, term, commit) */
    struct {
        int64_t at;
        int32_t from;
        uint64_t term, commit;
    } ae[SL_LEASE_RING];
    unsigned nae;        /* written so far (ring index = nae % RING) */
    uint64_t max_commit; /* highest leader commit seen in `term` */
    uint64_t commit_term;
    /* leader: when each voter's latest AppendEntries result was read */
    struct {
        int32_t id;
        int64_t at;
        uint64_t term;
    } res[SL_LEASE_VOTERS];
    size_t nres;
} sl_lease;

/* The lease length for these Raft timings (ms): shorter than the time
 * after which a controller may fence this node and another node may
 * become coordinator, minus margins for message delay, tick granularity
 * and clock drift. Never below heartbeat_ms (then the margins are not
 * kept: *short_out is set so that the caller warns). */
int64_t sl_lease_ms(unsigned election_ms, unsigned heartbeat_ms,
                    unsigned session_ms, int *short_out);

void sl_lease_init(sl_lease *l, int32_t self, unsigned election_ms,
                   unsigned heartbeat_ms, unsigned session_ms);

/* A Raft message was read at `now`: kind (SL_LEASE_MSG_*), sender, the
 * message's term, and for an AppendEntries the leader's commit index. */
void sl_lease_on_msg(sl_lease *l, int64_t now, int kind, int32_t from,
                     uint64_t term, uint64_t commit);

/* Recompute the lease at `now` for the node's Raft state: role
 * (SL_LEASE_*), the leader it follows (0 unknown), its current term, its
 * last applied index, and the voters of its configuration (self
 * included). Returns the lease end (0 = none); also kept in l->until. */
int64_t sl_lease_tick(sl_lease *l, int64_t now, int role, int32_t leader,
                      uint64_t term, uint64_t applied, const int32_t *voters,
                      size_t nvoters);

#endif
