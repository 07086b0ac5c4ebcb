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
naming them)."""
import os
import re
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import cluster_harness  # noqa: E402
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
