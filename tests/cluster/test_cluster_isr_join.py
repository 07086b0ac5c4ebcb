"""A follower rejoins a partition's in-sync set only once its fetch offset
reaches the high-water mark (broker/replica_leader.c, docs/cluster.md
3.3). Before that rule (84e443c) it joined as soon as one fetch showed all
the leader had at its previous fetch, which says nothing about what was
committed in between: a follower could join without acknowledged records
and, made leader, lose them.

Each node runs in its own network namespace with a second address for its
client listeners (test_cluster_registration.TwoAddrCluster), and every
node's connections to another node's client address leave from its own
client address, so a blackhole route in the leader's namespace to one
follower's client address drops the leader's answers to that follower's
fetches and nothing else (Raft keeps running). The steps, each one waited
for, none timed:

  1. a topic with one partition, RF 3: leader P, replicas in the order
     P, B, A (so B is the next leader while it is in the in-sync set);
     10 records acknowledged with acks=durable;
  2. B paused (SIGSTOP). One record, acks=durable: acknowledged once P
     drops B from the in-sync set (replica-lag-time-max-ms). B's pending
     fetch was answered before that (its answer waits in B's socket).
     Then 39 more records, acknowledged by P and A: the high-water mark
     is 50;
  3. P's answers to B are dropped, B resumed: B appends what its socket
     held and fetches once more, from an offset at most 11, which is all
     P had at B's previous fetch (the old join rule's "caught up");
  4. P must not let B join below the mark: its log says "does not join
     yet" (debug), or, with the old rule, "joins" at offset 11. In the
     first case the route is removed and B catches up and joins at 50;
  5. once B is in the in-sync set everywhere, P is killed (-9). B leads
     (the first replica in the set), and its copy must hold all 50
     acknowledged records.

With the old rule B joins at offset 11, P's death makes it leader, and
the 39 records acknowledged after its last fetch are gone (step 5 fails
naming them).

The second test checks the rule's other half: from the proposal of the
join until the image applies it, the joiner counts in the high-water mark
(see the comment above it)."""
import os
import re
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import cluster_harness  # noqa: E402
import sluice_wire as sw  # noqa: E402
from test_cluster_failover import parse, same_everywhere, \
    wait_all_up  # noqa: E402
from test_cluster_registration import TwoAddrCluster  # noqa: E402

TOPIC = "ij"
LAG_MS = 3000  # a paused follower leaves the ISR after this (+ a tick)


@pytest.fixture
def cluster(tmp_path):
    c = TwoAddrCluster(tmp_path, n=3, timings={
        # no fence of the paused follower: only the ISR rules act
        "cluster-session-timeout-ms": "20000",
        "cluster-election-timeout-ms": "500",
        "cluster-heartbeat-ms": "50"},
        extra=["--replica-lag-time-max-ms", str(LAG_MS)])
    c.start()
    yield c
    c.stop_all()  # resumes a paused node first


def produce(c, nid, values):
    c.cli(nid, "produce", TOPIC, "--acks", "durable",
          input="".join(v + "\n" for v in values))


def isr_everywhere(c, nodes):
    v = same_everywhere(c, TOPIC, nodes, 1)
    return parse(v)[0] if v else None


def test_follower_joins_isr_only_at_the_high_water_mark(cluster):
    c = cluster
    all3 = [1, 2, 3]
    wait_all_up(c, all3)
    for i in all3:
        for j in all3:
            if i != j:
                c.via_client_addr(i, c.client_addr(j))

    # 1. leader P, then B, then A in replica order
    c.cli(1, "topic", "create", TOPIC, "--partitions", "1",
          "--replication-factor", "3")
    p, _, rep, isr = c.wait(lambda: isr_everywhere(c, all3), "topic " + TOPIC)
    assert sorted(isr) == all3 and rep[0] == p, (rep, isr)
    b, a = rep[1], rep[2]
    acked = ["a-%02d" % i for i in range(10)]
    produce(c, p, acked)

    # 2. B paused; one record acknowledged once B left the ISR, then more
    c.nodes[b].proc.send_signal(signal.SIGSTOP)
    produce(c, p, ["r-00"])
    acked.append("r-00")
    assert sorted(isr_everywhere(c, [p])[3]) == sorted([p, a])
    more = ["r-%02d" % i for i in range(1, 40)]
    produce(c, p, more)
    acked += more

    # 3. P's answers to B dropped; B resumed
    c.block(p, c.client_addr(b))
    mark = len(c.nodes[p].log())
    c.nodes[b].proc.send_signal(signal.SIGCONT)

    # 4. no join below the mark
    joins = r"%s/0: follower %d caught up at offset (\d+) \(high-water " \
        r"mark (\d+)\): joins" % (TOPIC, b)
    not_yet = r"%s/0: follower %d at offset (\d+), below the high-water " \
        r"mark (\d+): does not join" % (TOPIC, b)
    m = c.nodes[p].wait_log(
        lambda t: re.search(joins, t[mark:]) or re.search(not_yet, t[mark:]),
        "node %d's verdict on node %d" % (p, b))
    if "does not join" in m.group(0):  # let B catch up: then it joins
        assert int(m.group(1)) <= 11 and int(m.group(2)) == len(acked), \
            m.group(0)
        c.via_client_addr(p, c.client_addr(b))
        m = c.nodes[p].wait_log(lambda t: re.search(joins, t[mark:]),
                                "node %d joining" % b)
    joined_at, hw_then = int(m.group(1)), int(m.group(2))

    # 5. B in the ISR everywhere; P killed; B leads with every ack
    c.wait(lambda: sorted((isr_everywhere(c, all3) or (0, 0, 0, []))[3])
           == all3,
           "node %d back in the in-sync set" % b)
    c.kill9(p)
    c.wait(lambda: (isr_everywhere(c, [a, b]) or (0,))[0] == b,
           "node %d leading" % b)
    have = [v for _, v in cluster_harness.replica_records(
        c.nodes[b].data_dir, TOPIC)]
    missing = [v for v in acked if v not in have]
    assert not missing, (
        "node %d joined the in-sync set at offset %d with the high-water "
        "mark at %d, then led without %d acknowledged record(s): %s" % (
            b, joined_at, hw_then, len(missing), missing[:5]))
    assert have == acked
    assert joined_at >= hw_then


# ---- the joiner counts in the mark from the proposal on -----------------
#
# The second half of 84e443c: between the leader's PARTITION_CHANGE that
# adds B and the image applying it, B counts in the high-water mark
# (Kafka's "maximal ISR"). Without that, the leader commits and
# acknowledges records that only it and A have; the change then applies
# and B is in the ISR without them.
#
# The partition is led by the metadata leader P (so its PARTITION_CHANGE
# is a local Raft proposal), and P's Raft messages to the two others are
# dropped (blackhole routes to their Raft addresses; the client addresses
# still carry A's and B's fetches) from before B's join until after one
# acks=durable produce has its answer, so the join is proposed but not
# committed meanwhile. P's answers to B are dropped once B joined (at the
# mark), so B gets nothing more. The produce must not be acknowledged
# (the broker answers TIMEOUT after the request's 1 s): B, a joiner at
# offset 11, holds the mark. Then P's Raft routes are restored, the join
# commits, P is killed, and B leads: every acknowledged record must be in
# its copy. Without the rule the 10 records are acknowledged by P and A
# and lost.

TOPIC2 = "ij2"
SLOW_ELECTION_MS = 5000  # P keeps the metadata leadership while cut off


@pytest.fixture
def cluster_slow(tmp_path):
    c = TwoAddrCluster(tmp_path, n=3, timings={
        "cluster-session-timeout-ms": "30000",
        "cluster-election-timeout-ms": str(SLOW_ELECTION_MS),
        "cluster-heartbeat-ms": "50"},
        # B, blocked once joined, stays in the ISR this long: until P dies
        extra=["--replica-lag-time-max-ms", "4000"])
    c.start()
    yield c
    c.stop_all()


def produce_direct(c, nid, part, values, timeout_ms):
    """One acks=durable batch straight to node nid: (error, base)."""
    with sw.Client(c.nodes[nid].binary_addr, timeout=30) as w:
        w.handshake()
        r = sw.decode_produce(w.call(sw.API_PRODUCE, sw.produce_body(
            sw.ACKS_DURABLE,
            {TOPIC2: {part: sw.encode_batch([v.encode() for v in values])}},
            timeout_ms=timeout_ms)))[(TOPIC2, part)]
    return r["error"], r["base_offset"]



def test_joiner_counts_in_the_mark_until_applied(cluster_slow):
    c = cluster_slow
    all3 = [1, 2, 3]
    m = wait_all_up(c, all3)  # the metadata leader
    for i in all3:
        for j in all3:
            if i != j:
                c.via_client_addr(i, c.client_addr(j))
    c.cli(m, "topic", "create", TOPIC2, "--partitions", "3",
          "--replication-factor", "3")

    def views():
        v = same_everywhere(c, TOPIC2, all3, 3)
        return parse(v) if v else None
    parts = c.wait(views, "topic " + TOPIC2)
    # placement rotates the leaders: one partition is led by P = m
    part = [i for i, v in enumerate(parts) if v[0] == m][0]
    p, _, rep, isr = parts[part]
    assert sorted(isr) == all3 and rep[0] == p, (rep, isr)
    b, a = rep[1], rep[2]
    acked = ["a-%02d" % i for i in range(10)]
    assert produce_direct(c, p, part, acked, 20000) == (0, 0)

    # B paused until it left the ISR: one record acknowledged without it
    c.nodes[b].proc.send_signal(signal.SIGSTOP)
    assert produce_direct(c, p, part, ["r-00"], 20000) == (0, 10)
    acked.append("r-00")

    # P's Raft cut off; B resumed: it catches up and P proposes its join
    c.block(p, c.addr(a))
    c.block(p, c.addr(b))
    mark = len(c.nodes[p].log())
    c.nodes[b].proc.send_signal(signal.SIGCONT)
    joins = r"%s/%d: follower %d caught up at offset (\d+) \(high-water " \
        r"mark (\d+)\): joins" % (TOPIC2, part, b)
    j = c.nodes[p].wait_log(lambda t: re.search(joins, t[mark:]),
                            "node %d joining" % b)
    assert (int(j.group(1)), int(j.group(2))) == (11, 11), j.group(0)
    c.block(p, c.client_addr(b))  # B gets nothing more from P

    # the join is not applied yet (P's Raft is cut): B holds the mark
    more = ["r-%02d" % i for i in range(1, 11)]
    err, base = produce_direct(c, p, part, more, 1000)
    if err == 0:
        acked += more
    assert sorted(parse(c.describe(p, TOPIC2))[part][3]) == sorted([p, a]), \
        "the join was applied while P's Raft was cut off"

    # the join commits; P dies; B leads
    c.unblock(p, c.addr(a))
    c.unblock(p, c.addr(b))

    def part_view(nodes):
        v = same_everywhere(c, TOPIC2, nodes, 3)
        return parse(v)[part] if v else (0, 0, [], [])
    c.wait(lambda: sorted(part_view(all3)[3]) == all3,
           "node %d in the in-sync set everywhere" % b)
    c.kill9(p)
    c.wait(lambda: part_view([a, b])[0] == b,
           "node %d leading partition %d" % (b, part))
    have = [v for _, v in cluster_harness.replica_records(
        c.nodes[b].data_dir, TOPIC2, part)]
    missing = [v for v in acked if v not in have]
    assert not missing, (
        "records acknowledged while node %d's join was proposed but not "
        "applied are missing on it, now leader: %s" % (b, missing))
    assert err != 0, "acknowledged without the joining follower (%d, %d)" % (
        err, base)
