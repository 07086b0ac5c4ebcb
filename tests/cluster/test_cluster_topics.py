"""Topics in a 3-node cluster go through the metadata quorum however they
are made or removed (docs/cluster.md 2.6, 9): `topic delete` on any node
removes the topic from every node, and a dead-letter topic the broker
creates by itself (a queue group's "always create") is created through the
log with the cluster's replication factor, not on one node only."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import cluster_harness  # noqa: E402
from test_cluster_failover import parse, same_everywhere  # noqa: E402
from test_cluster_stomp import ready  # noqa: E402


def topics(c, nid):
    return c.cli(nid, "topic", "list").stdout.split()


def test_delete_topic_goes_through_the_quorum(cluster):
    c = cluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    f = next(n for n in all3 if n != ldr)
    c.cli(ldr, "topic", "create", "gone", "--partitions", "2")
    c.cli(ldr, "topic", "create", "kept", "--partitions", "1")
    c.wait(lambda: same_everywhere(c, "gone", all3, 2), "gone everywhere")
    c.wait(lambda: same_everywhere(c, "kept", all3, 1), "kept everywhere")
    lead = parse(c.describe(ldr, "gone"))[0][0]
    c.cli(lead, "produce", "gone", "--partition", "0", "--acks", "durable",
          input="x\ny\n")
    # deleted through a node that is not the metadata leader (forwarded)
    c.cli(f, "topic", "delete", "gone")

    def gone_everywhere():
        return all("gone" not in topics(c, n) and "kept" in topics(c, n)
                   for n in all3)
    c.wait(gone_everywhere, "the topic deleted on every node")
    for n in all3:
        assert c.cli(n, "topic", "describe", "gone",
                     check=False).returncode != 0
    # a second delete names the problem
    p = c.cli(ldr, "topic", "delete", "gone", check=False)
    assert p.returncode != 0 and "gone" in p.stderr, p.stderr
    # the name can be used again, and starts empty everywhere
    c.cli(f, "topic", "create", "gone", "--partitions", "1")
    c.wait(lambda: same_everywhere(c, "gone", all3, 1), "gone again")
    lead = parse(c.describe(ldr, "gone"))[0][0]
    c.cli(lead, "produce", "gone", "--partition", "0", "--acks", "durable",
          input="z\n")
    for n in all3:
        assert c.ends(n, "gone") == [1]
        assert c.cli(n, "consume", "gone", "--partition", "0",
                     "--from-beginning", "--count",
                     "1").stdout.split() == ["z"]


def test_dead_letter_topic_is_created_through_the_quorum(cluster):
    c = cluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    c.cli(ldr, "topic", "create", "orders", "--partitions", "1")
    pl = parse(c.wait(lambda: same_everywhere(c, "orders", all3, 1),
                      "orders"))[0][0]
    c.cli(pl, "produce", "orders", "--partition", "0", "--acks", "durable",
          input="o1\no2\no3\n")
    exe = os.path.join(os.path.dirname(cluster_harness.cli_path()),
                       "test_client_integration")
    b = c.nodes[pl]
    p = subprocess.run([exe, "reject", "%s:%d" % b.binary_addr, "orders",
                        "billing", "2"], capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    # the DLQ topic is in the metadata of every node, replicated like any
    # topic (RF 3, full ISR), led by the node that dead-lettered
    view = parse(c.wait(lambda: same_everywhere(c, "orders.DLQ", all3, 1),
                        "orders.DLQ on every node"))
    lead, _, rep, isr = view[0]
    assert lead == pl and sorted(rep) == all3 and sorted(isr) == all3
    c.wait(lambda: all(c.ends(n, "orders.DLQ") == [2] for n in all3),
           "both dead letters on every replica")
    for n in all3:
        out = c.cli(n, "consume", "orders.DLQ", "--partition", "0",
                    "--from-beginning", "--count", "2").stdout.split()
        assert sorted(out) == ["o1", "o2"]
