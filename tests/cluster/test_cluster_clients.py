"""Clients fail over on their own (issue 13, docs/cluster.md section 5):
libsluice asks any node for the placement (METADATA version 2), sends each
partition's records to its leader, and on NOT_LEADER, a lost connection or
a silent one refreshes the placement and resends, within
delivery.timeout.ms. So the CLI works through any node, and a producer
sending continuously while the partition's leader is kill -9ed, and then
paused with SIGSTOP, never sees an error: every record it sent is
acknowledged and present afterwards, in the order sent."""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(__file__))
import cluster_harness  # noqa: E402
from test_cluster_failover import parse, same_everywhere, wait_all_up  # noqa


def test_cli_produce_through_a_node_that_leads_nothing_of_it(cluster):
    """`sluice produce` given a node that is not the leader of the
    partitions it writes: the records go to the leaders (before, each
    failed with NOT_LEADER and the application had to resend)."""
    c = cluster
    all3 = [1, 2, 3]
    wait_all_up(c, all3)
    c.cli(1, "topic", "create", "nl", "--partitions", "3",
          "--replication-factor", "2")
    view = parse(c.wait(lambda: same_everywhere(c, "nl", all3, 3), "nl"))
    ldr0 = view[0][0]
    other = next(n for n in all3 if n != ldr0)
    recs = ["nl-%03d" % i for i in range(60)]
    # partition 0 explicitly, through a node that does not lead it
    c.cli(other, "produce", "nl", "--partition", "0",
          input="\n".join(recs[:30]) + "\n")
    # keyed records over every partition, through that same node
    c.cli(other, "produce", "nl", "--key-separator", ":",
          input="".join("k%d:%s\n" % (i, r)
                        for i, r in enumerate(recs[30:])))
    out = c.cli(ldr0, "consume", "nl", "--partition", "0",
                "--from-beginning", "--count", "30").stdout.split()
    assert out == recs[:30]
    total = 0
    for p in range(3):
        ldr = view[p][0]
        end = c.ends(ldr, "nl")[p]
        total += end
    assert total == 60


class Client(cluster_harness.FailoverClient):
    """sluice-failover-client in the background at 500 records a second."""

    def __init__(self, c, topic, nodes):
        super().__init__(c, topic, nodes, 500)


def test_producer_rides_through_leader_kill_and_pause(cluster):
    c = cluster
    all3 = [1, 2, 3]
    wait_all_up(c, all3)
    c.cli(1, "topic", "create", "fo", "--partitions", "1",
          "--replication-factor", "3")

    def full_isr():
        v = same_everywhere(c, "fo", all3, 1)
        return v and sorted(parse(v)[0][3]) == all3 and parse(v)[0][0]
    c.wait(full_isr, "fo with a full ISR")
    cl = Client(c, "fo", all3)
    try:
        for fault in ("kill", "pause"):
            pl = c.wait(full_isr, "a leader with a full ISR", timeout=60)
            n0 = cl.acked()
            c.wait(lambda: cl.acked() >= n0 + 50, "acks before the " + fault,
                   timeout=60)
            rest = [n for n in all3 if n != pl]
            if fault == "kill":
                c.kill9(pl)
            else:
                c.nodes[pl].proc.send_signal(signal.SIGSTOP)

            def moved():
                v = same_everywhere(c, "fo", rest, 1)
                return v and parse(v)[0][0] in rest
            c.wait(moved, "a new leader after the " + fault, timeout=60)
            n1 = cl.acked()
            c.wait(lambda: cl.acked() >= n1 + 50,
                   "acks from the new leader after the " + fault, timeout=60)
            assert cl.errors() == []
            if fault == "kill":
                c.restart(pl)
            else:
                c.nodes[pl].proc.send_signal(signal.SIGCONT)
            wait_all_up(c, all3)
        rc = cl.stop()
    finally:
        cl.kill()
    done = cl.lines[-1]
    assert rc == 0 and cl.errors() == [done], (cl.errors()[:5],
                                               cl.p.stderr.read()[-2000:])
    sent = int(done[1].split("=")[1])
    assert done == ["done", "sent=%d" % sent, "acked=%d" % sent, "failed=0"]
    acks = [f for f in cl.lines if f[0] == "ack"]
    # reports come in the order sent, offsets increase with them
    assert [int(f[1]) for f in acks] == list(range(sent))
    offs = [int(f[3]) for f in acks]
    assert offs == sorted(offs)

    ldr = c.wait(full_isr, "a settled leader", timeout=60)
    c.wait(lambda: (c.ends(ldr, "fo") or [0])[0] >= sent,
           "every record stored")
    end = c.ends(ldr, "fo")[0]
    log = c.cli(ldr, "consume", "fo", "--partition", "0",
                "--from-beginning", "--count", str(end)).stdout.split()
    want = ["p-%08d" % i for i in range(sent)]
    assert set(log) == set(want), "lost: %r" % sorted(set(want) - set(log))[:5]
    # each acknowledged record at the offset its report named
    for f in acks:
        assert log[int(f[3])] == "p-%08d" % int(f[1])


def test_queue_group_members_share_one_node(cluster):
    """A queue group's state lives on the node serving it (issue 14
    replicates it), so every member must reach the same node: libsluice
    sends a group's requests to its coordinator (the leader of partition
    fnv1a(group) mod partitions) whichever node it was given. Two
    consumers of group g bootstrapped on two different nodes share the
    records: each exactly once (before, the second node's group started
    over and handed out the first consumer's records again)."""
    c = cluster
    all3 = [1, 2, 3]
    wait_all_up(c, all3)
    c.cli(1, "topic", "create", "qg", "--partitions", "3",
          "--replication-factor", "3")
    c.wait(lambda: same_everywhere(c, "qg", all3, 3), "qg")
    recs = ["q-%03d" % i for i in range(30)]
    c.cli(1, "produce", "qg", "--key-separator", ":",
          input="".join("k%d:%s\n" % (i, r) for i, r in enumerate(recs)))
    first = c.cli(2, "queue", "consume", "qg", "--group", "g", "--count",
                  "10").stdout.split()
    second = c.cli(3, "queue", "consume", "qg", "--group", "g", "--count",
                   "20").stdout.split()
    assert len(first) == 10 and len(second) == 20
    assert sorted(first + second) == recs


def test_consume_through_a_node_without_a_replica(cluster):
    """A stream consumer given a node that holds no replica of its
    partitions fetches from their leaders (before: that node had nothing
    to serve and `consume` printed nothing)."""
    c = cluster
    all3 = [1, 2, 3]
    wait_all_up(c, all3)
    c.cli(1, "topic", "create", "nr", "--partitions", "3",
          "--replication-factor", "1")
    view = parse(c.wait(lambda: same_everywhere(c, "nr", all3, 3), "nr"))
    recs = ["nr-%03d" % i for i in range(30)]
    c.cli(1, "produce", "nr", input="\n".join(recs) + "\n")
    for p in range(3):
        ldr = view[p][0]
        other = next(n for n in all3 if n != ldr)
        n = c.ends(ldr, "nr")[p]
        out = c.cli(other, "consume", "nr", "--partition", str(p),
                    "--from-beginning").stdout.split()
        mine = c.cli(ldr, "consume", "nr", "--partition", str(p),
                     "--from-beginning").stdout.split()
        assert len(mine) == n and out == mine
    out = c.cli(1, "consume", "nr", "--from-beginning").stdout.split()
    assert sorted(out) == recs
