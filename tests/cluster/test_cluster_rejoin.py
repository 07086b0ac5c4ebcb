"""A node whose data directory was wiped (same node id, empty Raft log)
rejoins the metadata quorum as a non-voter first and becomes a voter
again only once it has caught up (docs/cluster.md 3.6, issue 13): the
leader sees it answer below the index it had acknowledged, demotes it to
a libraft standby (it replicates the log but neither votes nor counts
for a commit, so the votes it forgot cannot be cast twice), and promotes
it when its log reaches the commit index."""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(__file__))
from test_cluster_failover import wait_all_up  # noqa: E402


def test_wiped_node_rejoins_as_non_voter_then_voter(cluster):
    c = cluster
    all3 = [1, 2, 3]
    ldr = wait_all_up(c, all3)
    for i in range(5):  # some metadata history before the wipe
        c.cli(ldr, "topic", "create", "t%d" % i, "--partitions", "1",
              "--replication-factor", "3")
    c.wait(lambda: all(c.describe(n, "t4") for n in all3), "t4 everywhere")
    victim, other = [n for n in all3 if n != ldr]
    c.kill9(victim)
    shutil.rmtree(c.nodes[victim].data_dir)
    c.restart(victim)
    lead = c.nodes[ldr]
    lost = "node %d lost its Raft log" % victim
    demoted = "node %d: a non-voter of the metadata quorum" % victim
    promoted = "node %d caught up" % victim
    lead.wait_log(lambda t: promoted in t, "node %d promoted" % victim)
    log = lead.log()
    assert log.index(lost) < log.index(demoted) < log.index(promoted)
    wait_all_up(c, all3)
    c.wait(lambda: c.describe(victim, "t4"), "the wiped node has t4 again")

    # a voter again: with the third node dead, the metadata leader and the
    # wiped node are a majority and commit a new topic
    c.kill9(other)
    c.wait(lambda: c.agreed_leader([ldr, victim]), "a leader of the two")
    c.wait(lambda: c.cli(ldr, "topic", "create", "after", "--partitions",
                         "1", "--replication-factor", "1",
                         check=False).returncode == 0,
           "a topic created with node %d dead" % other)
    c.wait(lambda: c.describe(victim, "after"), "the topic on the wiped node")
