/*
 * lease.c - the coordinator lease (docs/cluster.md, "Coordinator lease").
 *
 * PROBLEM. A node serves a queue group while its metadata image names it
 * leader of the group's state partition. A node cut off from the quorum,
 * or paused (SIGSTOP, a stalled VM), cannot learn that the controller has
 * fenced it and that another node now coordinates the group: its image is
 * frozen. Without a lease it goes on handing out records from its stale
 * state, records the new coordinator also hands out, or has seen acked.
 *
 * RULE. A node coordinates (delivers, answers settlements) only while
 * now < until, where until = anchor + lease_ms, on CLOCK_MONOTONIC, and
 * the anchor is a moment at which the node knows the controller (or, on
 * the controller itself, a majority of voters) still heard from it:
 *
 *  - Follower: the anchor is when it last read an AppendEntries of the
 *    current leader in the current term. It answers each one at once, so
 *    the controller heard from it then (or at the previous heartbeat, if
 *    that answer is lost) and fences a live node no sooner than one
 *    session timeout after that (cluster/node.c, controller()). An
 *    anchor counts only once the node has applied every commit index it
 *    has seen: a fence committed before the heartbeat was sent is then
 *    in its image (the broker's copy too: node.c publishes the lease
 *    with the position in its outbox that the loop must have drained).
 *  - Leader (controller): the anchor is the moment by which a majority of
 *    voters (itself included) had last been read from: the k-th latest of
 *    the voters' latest AppendEntries results. A new leader needs the vote
 *    of one of them, which it gets no sooner than one election timeout
 *    after that voter last heard from this one.
 *
 * The anchor is not the time a message is read but the time this thread
 * last ran before it (last_run): a message may have waited in the socket
 * while the thread was descheduled. After a silence longer than stall_ms
 * (a SIGSTOP, a stalled VM) nothing read for lease_ms extends the lease:
 * messages queued in the socket during the pause were sent before the
 * controller's decisions of that time, and the commit indexes in fresh
 * ones name those decisions. stall_ms is the longest silence after which
 * no fence can yet have been decided: session - lease - 2 heartbeats.
 *
 * LENGTH (sl_lease_ms). lease = min(election - heartbeat - 2% of it,
 * session - election - 2 heartbeats - 2% of it), 2% at least 10 ms:
 *   - session: the controller fences a node it has not heard from for
 *     that long (a follower's bound);
 *   - election: a new controller can be elected one election timeout
 *     after a majority last heard from the old one (the leader's bound),
 *     and it may fence the old one at once;
 *   - session - election - heartbeat: with five nodes, a deposed leader
 *     may go on sending heartbeats to a minority for up to two election
 *     timeouts after the cut (its check-quorum step-down), one more than
 *     the new leader needed to be elected;
 *   - the margins: one heartbeat of read and answer jitter, and 2% of
 *     the interval the other side measures, for clock rate differences
 *     and delays.
 * Defaults (election 1000, heartbeat 100, session 3000): 880 ms; a long
 * session does not shorten it.
 *
 * ASSUMPTIONS. Clock rates differ by less than 2% (CLOCK_MONOTONIC, not
 * stepped by NTP); a voter answers an AppendEntries within the margin; a
 * suspend that CLOCK_MONOTONIC does not count (it stops during system
 * suspend) is not covered; a live node is fenced only after a session
 * of silence: the controller's fast fence of a node whose Raft address
 * refuses connections (node.c, a dead process) breaks the rule for a
 * live node behind a firewall that rejects with a TCP reset.
 * @thread raft
 */
#include "cluster/lease.h"

#include <string.h>

int64_t sl_lease_ms(unsigned election_ms, unsigned heartbeat_ms,
                    unsigned session_ms, int *short_out)
{
    int64_t e = election_ms, hb = heartbeat_ms, s = session_ms;
    int64_t a = e - hb - (e / 50 > 10 ? e / 50 : 10);
    int64_t b = s - e - 2 * hb - (s / 50 > 10 ? s / 50 : 10);
    int64_t l = a < b ? a : b;
    if (short_out)
        *short_out = l < hb;
    return l < hb ? (hb > 0 ? hb : 1) : l;
}

void sl_lease_init(sl_lease *l, int32_t self, unsigned election_ms,
                   unsigned heartbeat_ms, unsigned session_ms)
{
    memset(l, 0, sizeof(*l));
    l->self = self;
    l->lease_ms = sl_lease_ms(election_ms, heartbeat_ms, session_ms, NULL);
    l->stall_ms = (int64_t)session_ms - l->lease_ms - 2 * (int64_t)heartbeat_ms;
    if (l->stall_ms < 2 * (int64_t)heartbeat_ms)
        l->stall_ms = 2 * (int64_t)heartbeat_ms;
}

/* The thread ran at now: after a long silence, distrust what is read. */
static int64_t ran(sl_lease *l, int64_t now)
{
    int64_t anchor = l->last_run && l->last_run < now ? l->last_run : now;
    if (l->last_run && now - l->last_run > l->stall_ms)
        l->guard_until = now + l->lease_ms;
    l->last_run = now;
    return anchor;
}

void sl_lease_on_msg(sl_lease *l, int64_t now, int kind, int32_t from,
                     uint64_t term, uint64_t commit)
{
    int64_t anchor = ran(l, now);
    if (kind == SL_LEASE_MSG_APPEND) {
        if (term > l->commit_term) {
            l->commit_term = term;
            l->max_commit = commit;
        } else if (term == l->commit_term && commit > l->max_commit) {
            l->max_commit = commit;
        }
        if (now < l->guard_until)
            return;
        unsigned i = l->nae++ % SL_LEASE_RING;
        l->ae[i].at = anchor;
        l->ae[i].from = from;
        l->ae[i].term = term;
        l->ae[i].commit = commit;
    } else if (kind == SL_LEASE_MSG_RESULT && now >= l->guard_until) {
        size_t i;
        for (i = 0; i < l->nres; i++)
            if (l->res[i].id == from)
                break;
        if (i == l->nres) {
            if (l->nres == SL_LEASE_VOTERS)
                return;
            l->nres++;
        }
        l->res[i].id = from;
        l->res[i].at = anchor;
        l->res[i].term = term;
    }
}

static int64_t follower_anchor(const sl_lease *l, int32_t leader, uint64_t term,
                               uint64_t applied)
{
    unsigned n = l->nae < SL_LEASE_RING ? l->nae : SL_LEASE_RING;
    if (l->commit_term == term && applied < l->max_commit)
        return 0; /* a decision it has heard of is not in its image yet */
    for (unsigned k = 0; k < n; k++) {
        unsigned i = (l->nae - 1 - k) % SL_LEASE_RING;
        if (l->ae[i].from == leader && l->ae[i].term == term)
            return l->ae[i].at;
    }
    return 0;
}

static int64_t leader_anchor(const sl_lease *l, int64_t now, uint64_t term,
                             const int32_t *voters, size_t nvoters)
{
    int64_t at[SL_LEASE_VOTERS];
    size_t k = 0, need = nvoters / 2; /* others, besides itself */
    if (need == 0)
        return now;
    for (size_t v = 0; v < nvoters; v++) {
        if (voters[v] == l->self)
            continue;
        for (size_t i = 0; i < l->nres && k < SL_LEASE_VOTERS; i++)
            if (l->res[i].id == voters[v] && l->res[i].term == term)
                at[k++] = l->res[i].at;
    }
    if (k < need)
        return 0;
    /* the need-th latest: sort descending (k <= 16) */
    for (size_t i = 1; i < k; i++)
        for (size_t j = i; j > 0 && at[j] > at[j - 1]; j--) {
            int64_t t = at[j];
            at[j] = at[j - 1];
            at[j - 1] = t;
        }
    return at[need - 1];
}

int64_t sl_lease_tick(sl_lease *l, int64_t now, int role, int32_t leader,
                      uint64_t term, uint64_t applied, const int32_t *voters,
                      size_t nvoters)
{
    int64_t anchor = 0;
    ran(l, now);
    /* A role or term change keeps the lease: it bounds when another node
     * may coordinate whoever leads now (a new controller gives every
     * node but the old controller a full session; the old controller's
     * own lease is bounded by the election timeout). Dropping it made
     * every coordinator lapse at each leadership transfer. */
    l->role = role;
    l->term = term;
    if (role == SL_LEASE_FOLLOWER && leader > 0 && leader != l->self)
        anchor = follower_anchor(l, leader, term, applied);
    else if (role == SL_LEASE_LEADER)
        anchor = leader_anchor(l, now, term, voters, nvoters);
    if (anchor && anchor + l->lease_ms > l->until)
        l->until = anchor + l->lease_ms;
    return l->until;
}
