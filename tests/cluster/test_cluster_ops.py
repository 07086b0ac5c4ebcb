"""Operating a cluster (issue 14, docs/cluster.md section 10) with real
nodes under load:

  - a rolling restart of all three nodes (SIGTERM, start again, wait until
    every partition is fully in sync, next node): each node moves the
    leadership off itself through the quorum before it stops (controlled
    shutdown, its log says so), a durable producer (libsluice) sees no
    error, and a consumer that reads by offset gets every record exactly
    once, in order: nothing lost, nothing delivered twice.

Every wait polls an observable condition with a deadline. The `cluster`
fixture is in conftest.py."""
import os
import subprocess
import sys
import threading
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import cluster_harness  # noqa: E402
import sluice_harness  # noqa: E402
from test_cluster_clients import Client  # noqa: E402
from test_cluster_failover import parse, same_everywhere, wait_all_up  # noqa


class Reader(threading.Thread):
    """Reads each partition from its current position on (by offset, as a
    consumer that stores its own offsets), through any running node."""

    def __init__(self, c, topic, nparts):
        super().__init__(daemon=True)
        self.c, self.topic = c, topic
        self.got = {p: [] for p in range(nparts)}
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def read_once(self, p):
        for n, b in list(self.c.nodes.items()):
            if not b.running():
                continue
            with self.lock:
                pos = len(self.got[p])
            try:
                r = subprocess.run(
                    [cluster_harness.cli_path(), "-b",
                     "%s:%d" % b.binary_addr, "-X",
                     "request.timeout.ms=3000", "consume", self.topic,
                     "--partition", str(p), "--offset", str(pos),
                     "--count", "1000"],
                    capture_output=True, text=True, timeout=30)
            except (subprocess.TimeoutExpired, AttributeError, TypeError):
                continue
            if r.returncode != 0:
                continue
            with self.lock:
                self.got[p].extend(r.stdout.split())
            return True
        return False

    def run(self):
        while not self.stop.is_set():
            for p in self.got:
                self.read_once(p)

    def count(self):
        with self.lock:
            return sum(len(v) for v in self.got.values())


def full_isr(c, topic, nodes, nparts):
    v = same_everywhere(c, topic, nodes, nparts)
    if not v:
        return None
    view = parse(v)
    if all(sorted(isr) == sorted(nodes) and ldr in nodes
           for ldr, _, _, isr in view):
        return view
    return None


def test_rolling_restart_under_load_loses_nothing(cluster):
    c = cluster
    all3 = [1, 2, 3]
    wait_all_up(c, all3)
    c.cli(1, "topic", "create", "rr", "--partitions", "2",
          "--replication-factor", "3")
    c.wait(lambda: full_isr(c, "rr", all3, 2), "rr fully in sync")
    cl = Client(c, "rr", all3)
    rd = Reader(c, "rr", 2)
    rd.start()
    try:
        for n in all3:
            c.wait(lambda: full_isr(c, "rr", all3, 2),
                   "every partition fully in sync before node %d" % n,
                   timeout=60)
            a0, r0 = cl.acked(), rd.count()
            c.wait(lambda: cl.acked() >= a0 + 50 and rd.count() >= r0 + 20,
                   "acks and reads before node %d stops" % n, timeout=60)
            rc = c.nodes[n].stop()  # SIGTERM
            assert rc == 0, "node %d exited with %r" % (n, rc)
            log = c.nodes[n].log()
            assert ("controlled shutdown of node %d: leadership moved off "
                    "this node" % n) in log, log[-3000:]
            rest = [x for x in all3 if x != n]

            def moved():
                v = same_everywhere(c, "rr", rest, 2)
                return v and all(ldr in rest and n not in isr
                                 for ldr, _, _, isr in parse(v))
            c.wait(moved, "leadership off node %d" % n, timeout=30)
            a1 = cl.acked()
            c.wait(lambda: cl.acked() >= a1 + 50,
                   "acks while node %d is down" % n, timeout=60)
            assert cl.errors() == [], cl.errors()[:5]
            c.restart(n)
            wait_all_up(c, all3)
        c.wait(lambda: full_isr(c, "rr", all3, 2), "fully in sync at the end",
               timeout=60)
        rc = cl.stop()
    finally:
        cl.kill()
        rd.stop.set()
        rd.join(120)
    done = cl.lines[-1]
    assert rc == 0 and cl.errors() == [done], (cl.errors()[:5],
                                               cl.p.stderr.read()[-2000:])
    sent = int(done[1].split("=")[1])
    assert done == ["done", "sent=%d" % sent, "acked=%d" % sent, "failed=0"]
    acks = [f for f in cl.lines if f[0] == "ack"]
    assert len(acks) == sent and sent >= 300
    ldr = c.wait(lambda: full_isr(c, "rr", all3, 2), "settled")
    logs = {}
    for p in range(2):
        end = c.ends(ldr[p][0], "rr")[p]
        logs[p] = c.cli(ldr[p][0], "consume", "rr", "--partition", str(p),
                        "--from-beginning", "--count", str(end)
                        ).stdout.split()
        # the same log on every replica
        for n in all3:
            assert c.cli(n, "consume", "rr", "--partition", str(p),
                         "--from-beginning", "--count", str(end)
                         ).stdout.split() == logs[p], (p, n)
    # every acknowledged record at the offset its report named
    for f in acks:
        assert logs[int(f[2])][int(f[3])] == "p-%08d" % int(f[1]), f
    stored = logs[0] + logs[1]
    assert len(stored) == len(set(stored)), "a record stored twice"
    # the reader got each partition's log exactly, in order: nothing
    # skipped, nothing delivered twice
    for p in range(2):
        got = rd.got[p]
        assert got == logs[p][:len(got)], "partition %d read differs" % p
        assert len(got) > 0


def reassign_status(c, nid, topic=None):
    args = ["partition", "reassign", "--status"] + ([topic] if topic else [])
    return c.cli(nid, *args).stdout


@pytest.fixture
def slow_cluster(tmp_path):
    # a small copy throttle, so a reassignment is seen in progress
    yield from cluster_harness.running(
        tmp_path, extra=["--reassign-throttle-bytes", "256k"])


def test_reassign_under_load_then_rebalance(slow_cluster):
    c = slow_cluster
    all3 = [1, 2, 3]
    wait_all_up(c, all3)
    c.cli(1, "topic", "create", "mv", "--partitions", "3",
          "--replication-factor", "2")
    view = c.wait(lambda: full_isr_of(c, "mv", all3, 3), "mv in sync")
    ldr, _, reps, _ = view[0]
    newcomer = next(n for n in all3 if n not in reps)
    # ~1.5 MB already in partition 0: the newcomer copies it throttled
    blob = "x" * 1000
    c.cli(ldr, "produce", "mv", "--partition", "0", "--acks", "durable",
          input="".join("pre-%05d-%s\n" % (i, blob) for i in range(1500)))
    cl = Client(c, "mv", all3)
    try:
        c.wait(lambda: cl.acked() >= 50, "acks before the reassignment")
        target = [newcomer, reps[0]]
        out = c.cli(2, "partition", "reassign", "mv/0", "--replicas",
                    "%d,%d" % tuple(target)).stdout
        assert "reassigning mv/0 to %d,%d" % tuple(target) in out
        # in progress: all three hold it, the newcomer is still copying
        # (node 1's image may apply the command a heartbeat later)
        st = c.wait(lambda: "mv/0" in reassign_status(c, 1, "mv") and
                    reassign_status(c, 1, "mv"), "the reassignment on node 1")
        assert st.startswith("mv/0 leader=%d" % ldr), st
        assert ("replicas=%d,%d,%d" % (reps[0], reps[1], newcomer)) in st, st
        assert ("target=%d,%d adding=%d removing=%d" % (
            newcomer, reps[0], newcomer, reps[1])) in st, st

        def done():
            v = same_everywhere(c, "mv", all3, 3)
            return v and parse(v)[0][2] == target and \
                sorted(parse(v)[0][3]) == sorted(target) and \
                "no reassignment in progress" in reassign_status(c, 3)
        c.wait(done, "the reassignment completes", timeout=120)
        assert parse(same_everywhere(c, "mv", all3, 3))[0][0] == newcomer
        n0 = cl.acked()
        c.wait(lambda: cl.acked() >= n0 + 50, "acks after the reassignment")
        rc = cl.stop()
    finally:
        cl.kill()
    assert rc == 0 and cl.errors()[:-1] == [], cl.errors()[:5]
    acks = [f for f in cl.lines if f[0] == "ack"]
    # every acknowledged record, on both new replicas, at its offset
    for p in range(3):
        v = parse(same_everywhere(c, "mv", all3, 3))[p]
        end = c.ends(v[0], "mv")[p]
        logs = [c.cli(n, "consume", "mv", "--partition", str(p),
                      "--from-beginning", "--count", str(end)
                      ).stdout.split() for n in v[2]]
        assert logs[0] == logs[1], "replicas of mv/%d differ" % p
        for f in acks:
            if int(f[2]) == p:
                assert logs[0][int(f[3])] == "p-%08d" % int(f[1]), f
        if p == 0:
            assert logs[0][:1500] == ["pre-%05d-%s" % (i, blob)
                                      for i in range(1500)]
    # rebalance: back to the even placement, one leader per node
    out = c.cli(3, "cluster", "rebalance").stdout
    assert "partition(s) reassigned" in out, out

    def balanced():
        v = same_everywhere(c, "mv", all3, 3)
        if not v or "no reassignment" not in reassign_status(c, 1):
            return None
        view = parse(v)
        return view if sorted(x[0] for x in view) == all3 else None
    view = c.wait(balanced, "leaders spread after the rebalance", timeout=120)
    for ldr, _, reps, isr in view:
        assert reps[0] == ldr and len(reps) == 2 and sorted(isr) == \
            sorted(reps)
    out = c.cli(1, "cluster", "rebalance").stdout
    assert out.startswith("rebalance: 0 partition(s) reassigned, 3 already")


def full_isr_of(c, topic, nodes, nparts):
    v = same_everywhere(c, topic, nodes, nparts)
    if not v:
        return None
    view = parse(v)
    return view if all(sorted(isr) == sorted(reps) and ldr > 0
                       for ldr, _, reps, isr in view) else None


def test_reassign_refuses_bad_input(cluster):
    c = cluster
    all3 = [1, 2, 3]
    wait_all_up(c, all3)
    c.cli(1, "topic", "create", "bad", "--partitions", "1",
          "--replication-factor", "2")
    c.wait(lambda: full_isr_of(c, "bad", all3, 1), "bad in sync")
    for args, want in [
            (["bad/0", "--replicas", "1,9"], "node 9 is not a member"),
            (["bad/0", "--replicas", "1,1"], "node 1 twice"),
            (["bad/5", "--replicas", "1,2"], "has 1 partition(s)"),
            (["nope/0", "--replicas", "1,2"], "unknown topic 'nope'"),
            (["bad", "--replicas", "1,2"], "expected TOPIC/PARTITION"),
            (["bad/0"], "--replicas A,B,C is required")]:
        p = c.cli(2, "partition", "reassign", *args, check=False)
        assert p.returncode != 0 and want in p.stderr, (args, p.stderr)
    assert "no reassignment in progress" in reassign_status(c, 2)


def start_joiner(c, nid):
    """A new node started with --cluster-join: its peers are the current
    nodes and itself (docs/cluster.md 10.5). Returns its Raft address."""
    port = cluster_harness.reserve_ports(1)[0]
    raft = "127.0.0.1:%d" % port
    d = os.path.join(c.tmpdir, "n%d" % nid)
    os.makedirs(d, exist_ok=True)
    args = ["--node-id", str(nid), "--cluster-listen", raft,
            "--cluster-peers", c.peers + ",%d@%s" % (nid, raft),
            "--cluster-join",
            "--cluster-session-timeout-ms", "1500",
            "--cluster-election-timeout-ms", "500",
            "--cluster-heartbeat-ms", "50"] + c.extra
    c.nodes[nid] = sluice_harness.Broker(data_dir=d, args=args)
    c.nodes[nid].start()
    return raft


def test_add_node_reassign_to_it_then_remove_an_old_one(cluster):
    """Under load: node 4 joins (add-node), a partition is moved onto it,
    then node 1 is removed (its partitions move first) and stopped.
    Nothing acknowledged is lost, the reader gets every record once."""
    c = cluster
    all3, all4 = [1, 2, 3], [1, 2, 3, 4]
    wait_all_up(c, all3)
    c.cli(1, "topic", "create", "gr", "--partitions", "2",
          "--replication-factor", "3")
    c.wait(lambda: full_isr(c, "gr", all3, 2), "gr in sync")
    cl = Client(c, "gr", all3)
    rd = Reader(c, "gr", 2)
    rd.start()
    try:
        c.wait(lambda: cl.acked() >= 50 and rd.count() >= 20,
               "acks and reads before node 4")
        # a node 4 that was not added is refused as a replica
        p = c.cli(2, "partition", "reassign", "gr/0", "--replicas", "4,2,3",
                  check=False)
        assert p.returncode != 0 and "node 4 is not a member" in p.stderr
        raft4 = start_joiner(c, 4)
        out = c.cli(3, "cluster", "add-node", "4", raft4).stdout
        assert out.strip() == ("node 4 at %s is a voter of the metadata "
                               "quorum" % raft4)
        wait_all_up(c, all4)
        # every node, node 4 included, knows the topic
        c.wait(lambda: same_everywhere(c, "gr", all4, 2), "gr on node 4")
        c.cli(1, "partition", "reassign", "gr/0", "--replicas", "4,2,3")

        def moved():
            v = same_everywhere(c, "gr", all4, 2)
            return v and parse(v)[0][2] == [4, 2, 3] and \
                sorted(parse(v)[0][3]) == [2, 3, 4] and parse(v)[0][0] == 4
        c.wait(moved, "gr/0 on 4,2,3 led by 4", timeout=120)
        a0 = cl.acked()
        c.wait(lambda: cl.acked() >= a0 + 50, "acks with node 4 leading")
        # removing node 1: gr/1 still has it and moves first
        out = c.cli(2, "cluster", "remove-node", "1").stdout
        assert "moving 1 partition(s) off node 1" in out, out
        assert "node 1 removed from the cluster" in out, out
        # the metadata leader answered once the removal was committed; node
        # 2's own image applies it when it learns of the commit
        c.wait(lambda: sorted((c.status(2) or {}).get("nodes", {})) ==
               [2, 3, 4], "node 2's image without node 1")
        v = parse(c.wait(lambda: same_everywhere(c, "gr", [2, 3, 4], 2),
                         "gr without node 1"))
        for ldr, _, reps, isr in v:
            assert 1 not in reps and 1 not in isr and ldr in (2, 3, 4)
        c.nodes[1].stop()
        a1 = cl.acked()
        c.wait(lambda: cl.acked() >= a1 + 50, "acks without node 1")
        # and a node cannot be removed when its partitions have nowhere to
        # go (3 replicas, 3 nodes)
        p = c.cli(3, "cluster", "remove-node", "2", check=False)
        assert p.returncode != 0 and "under its replication factor 3" in \
            p.stderr, p.stderr
        rc = cl.stop()
    finally:
        cl.kill()
        rd.stop.set()
        rd.join(120)
    done = cl.lines[-1]
    assert rc == 0 and cl.errors() == [done], cl.errors()[:5]
    sent = int(done[1].split("=")[1])
    assert done == ["done", "sent=%d" % sent, "acked=%d" % sent, "failed=0"]
    acks = [f for f in cl.lines if f[0] == "ack"]
    rest = [2, 3, 4]
    view = c.wait(lambda: full_isr(c, "gr", rest, 2), "settled on 2,3,4")
    for p in range(2):
        end = c.ends(view[p][0], "gr")[p]
        logs = [c.cli(n, "consume", "gr", "--partition", str(p),
                      "--from-beginning", "--count", str(end)
                      ).stdout.split() for n in rest]
        assert logs[0] == logs[1] == logs[2], "replicas of gr/%d differ" % p
        for f in acks:
            if int(f[2]) == p:
                assert logs[0][int(f[3])] == "p-%08d" % int(f[1]), f
        assert len(logs[0]) == len(set(logs[0])), "a record stored twice"
        got = rd.got[p]
        assert got and got == logs[0][:len(got)], "gr/%d read differs" % p


def test_topic_changes_go_through_the_quorum(cluster):
    """topic alter and add-partitions on a cluster node reach every node
    (through the metadata log), and the new partitions are replicated."""
    c = cluster
    all3 = [1, 2, 3]
    wait_all_up(c, all3)
    c.cli(1, "topic", "create", "tc", "--partitions", "2",
          "--replication-factor", "3", "--config", "retention-ms=86400000")
    c.wait(lambda: full_isr(c, "tc", all3, 2), "tc in sync")
    out = c.cli(2, "topic", "alter", "tc", "--config",
                "retention-ms=3600000", "--config", "segment-bytes=1048576"
                ).stdout
    assert "altered topic tc" in out, out

    def configs(n):
        p = c.cli(n, "topic", "describe", "tc", check=False)
        return sorted(ln for ln in p.stdout.splitlines()
                      if ln.startswith("config "))
    want = ["config retention-ms=3600000", "config segment-bytes=1048576"]
    c.wait(lambda: all(configs(n) == want for n in all3),
           "the new configs on every node")
    # removing an override (k=) removes it everywhere
    c.cli(3, "topic", "alter", "tc", "--config", "segment-bytes=")
    c.wait(lambda: all(configs(n) == want[:1] for n in all3),
           "segment-bytes removed on every node")
    # a bad value is refused before it reaches the log
    p = c.cli(2, "topic", "alter", "tc", "--config", "retention-ms=soon",
              check=False)
    assert p.returncode != 0 and "retention-ms" in p.stderr, p.stderr
    out = c.cli(3, "topic", "add-partitions", "tc", "--count", "4").stdout
    assert "topic tc now has 4 partitions" in out, out
    view = c.wait(lambda: full_isr(c, "tc", all3, 4), "4 partitions in sync")
    for ldr, _, reps, _ in view:
        assert sorted(reps) == all3
    # records to a new partition reach all its replicas
    c.cli(1, "produce", "tc", "--partition", "3", "--acks", "durable",
          input="a\nb\nc\n")
    c.wait(lambda: all((c.ends(n, "tc") or [0, 0, 0, 0])[3] == 3
                       for n in all3), "partition 3 replicated")
    for n in all3:
        assert c.cli(n, "consume", "tc", "--partition", "3",
                     "--from-beginning", "--count", "3").stdout.split() == \
            ["a", "b", "c"]
    p = c.cli(1, "topic", "add-partitions", "tc", "--count", "3",
              check=False)
    assert p.returncode != 0 and "has 4 partition(s) already" in p.stderr


def test_replace_a_dead_node(cluster):
    """docs/cluster.md 10.6: node 3 dies for good (kill -9); node 4 joins,
    node 3 is removed: its replicas are copied to node 4, the quorum and
    the image lose node 3, and every record is on the new replica set."""
    c = cluster
    all3 = [1, 2, 3]
    wait_all_up(c, all3)
    c.cli(1, "topic", "create", "rp", "--partitions", "2",
          "--replication-factor", "3")
    c.wait(lambda: full_isr(c, "rp", all3, 2), "rp in sync")
    recs = ["r-%03d" % i for i in range(100)]
    c.cli(1, "produce", "rp", "--partition", "0", "--acks", "durable",
          input="\n".join(recs) + "\n")
    c.kill9(3)
    c.wait(lambda: (c.status(1) or {}).get("nodes", {}).get(3) == "down",
           "node 3 fenced")
    raft4 = start_joiner(c, 4)
    c.cli(1, "cluster", "add-node", "4", raft4)
    c.wait(lambda: all((c.status(n) or {}).get("nodes", {}).get(4) == "up"
                       for n in (1, 2, 4)), "node 4 up everywhere")
    out = c.cli(2, "cluster", "remove-node", "3").stdout
    assert "moving 2 partition(s) off node 3" in out, out
    assert "node 3 removed from the cluster" in out, out
    rest = [1, 2, 4]
    c.wait(lambda: all(sorted((c.status(n) or {}).get("nodes", {})) == rest
                       for n in rest), "node 3 gone from every image")
    view = c.wait(lambda: full_isr(c, "rp", rest, 2), "rp on 1,2,4")
    for ldr, _, reps, isr in view:
        assert sorted(reps) == rest and sorted(isr) == rest
    for n in rest:
        assert c.cli(n, "consume", "rp", "--partition", "0",
                     "--from-beginning", "--count", "100"
                     ).stdout.split() == recs
    # the quorum of three is whole again: a metadata change commits
    c.cli(4, "topic", "create", "after", "--partitions", "1",
          "--replication-factor", "3")
    c.wait(lambda: full_isr(c, "after", rest, 1), "a topic on 1,2,4")


def log_bytes(c, nid, topic, p):
    """Bytes of node nid's .log files of topic/p (its data directory)."""
    d = os.path.join(c.nodes[nid].data_dir, "topics", topic, str(p))
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)
               if f.endswith(".log"))


def test_replicas_moved_off_a_node_are_deleted_there(cluster):
    """A node a reassignment moves a partition off deletes its copy once
    the move is done (docs/cluster.md 10.3), and a node that was down
    then deletes it when it starts again. Before, the files stayed on the
    old replica for good."""
    c = cluster
    all3 = [1, 2, 3]
    wait_all_up(c, all3)
    c.cli(1, "topic", "create", "mo", "--partitions", "2",
          "--replication-factor", "2")
    view = c.wait(lambda: full_isr_of(c, "mo", all3, 2), "mo in sync")
    for p in (0, 1):
        c.cli(view[p][0], "produce", "mo", "--partition", str(p), "--acks",
              "durable", input="".join("mo%d-%04d\n" % (p, i)
                                       for i in range(500)))
    c.wait(lambda: all(log_bytes(c, n, "mo", p) > 0
                       for p in (0, 1) for n in view[p][2]),
           "every replica holds its records")

    # 1. moved off a running node: deleted there once the move is done
    reps = view[0][2]
    gone, stays = reps[1], reps[0]
    newcomer = next(n for n in all3 if n not in reps)
    c.cli(1, "partition", "reassign", "mo/0", "--replicas",
          "%d,%d" % (stays, newcomer))
    c.wait(lambda: (full_isr_of(c, "mo", all3, 2) or [[0, 0, []]])[0][2] ==
           [stays, newcomer], "mo/0 moved")
    c.wait(lambda: log_bytes(c, gone, "mo", 0) == 0,
           "node %d deleted its copy of mo/0" % gone)
    for n in (stays, newcomer):
        assert c.cli(n, "consume", "mo", "--partition", "0",
                     "--from-beginning", "--count", "500").stdout.split() \
            == ["mo0-%04d" % i for i in range(500)]

    # 2. moved off a node that was down: deleted when it starts again
    view = c.wait(lambda: full_isr_of(c, "mo", all3, 2), "mo in sync")
    reps = view[1][2]
    down = next(n for n in reps if n != view[1][0])
    stays = view[1][0]
    newcomer = next(n for n in all3 if n not in reps)
    up = [n for n in all3 if n != down]
    c.nodes[down].stop()
    c.wait(lambda: all((c.status(n) or {}).get("nodes", {}).get(down) ==
                       "down" for n in up), "node %d down" % down)
    c.cli(stays, "partition", "reassign", "mo/1", "--replicas",
          "%d,%d" % (stays, newcomer))

    def moved():
        v = same_everywhere(c, "mo", up, 2)
        return v and parse(v)[1][2] == [stays, newcomer] and \
            sorted(parse(v)[1][3]) == sorted([stays, newcomer])
    c.wait(moved, "mo/1 moved while node %d is down" % down, timeout=60)
    assert log_bytes(c, down, "mo", 1) > 0  # nobody told it yet
    c.restart(down)
    c.wait(lambda: log_bytes(c, down, "mo", 1) == 0,
           "node %d deleted its copy of mo/1 after its restart" % down)
    wait_all_up(c, all3)
    assert c.cli(newcomer, "consume", "mo", "--partition", "1",
                 "--from-beginning", "--count", "500").stdout.split() == \
        ["mo1-%04d" % i for i in range(500)]


def test_reassign_cancel_goes_back_to_the_replicas_it_started_from(
        slow_cluster):
    """`partition reassign --cancel` (Kafka's --cancel): a reassignment in
    progress goes back to the replicas it started from; the node it was
    adding stops copying and deletes what it had copied; nothing written
    before is lost. Before, a started move could only be replaced by
    another one, naming the old replicas by hand."""
    c = slow_cluster
    all3 = [1, 2, 3]
    wait_all_up(c, all3)
    c.cli(1, "topic", "create", "cx", "--partitions", "1",
          "--replication-factor", "2")
    view = c.wait(lambda: full_isr_of(c, "cx", all3, 1), "cx in sync")
    ldr, _, reps, _ = view[0]
    newcomer = next(n for n in all3 if n not in reps)
    blob = "y" * 1000  # ~2 MB: copied at 256 KiB/s, so seen in progress
    c.cli(ldr, "produce", "cx", "--partition", "0", "--acks", "durable",
          input="".join("cx-%05d-%s\n" % (i, blob) for i in range(2000)))
    p = c.cli(2, "partition", "reassign", "--cancel", "cx/0", check=False)
    assert p.returncode != 0 and "no reassignment of cx/0 in progress" in \
        p.stderr, p.stderr
    c.cli(1, "partition", "reassign", "cx/0", "--replicas",
          "%d,%d" % (newcomer, reps[1]))
    c.wait(lambda: log_bytes(c, newcomer, "cx", 0) > 0,
           "node %d copying cx/0" % newcomer)
    # the newcomer's image has the move (it copies); another node's may
    # apply it a heartbeat later, so it is asked there
    st = reassign_status(c, newcomer, "cx")
    assert ("target=%d,%d" % (newcomer, reps[1])) in st, st

    out = c.cli(newcomer, "partition", "reassign", "--cancel",
                "cx/0").stdout
    assert out.startswith("cancelled the reassignment of cx/0"), out

    def back():
        v = same_everywhere(c, "cx", all3, 1)
        return v and parse(v)[0][2] == reps and \
            sorted(parse(v)[0][3]) == sorted(reps) and \
            "no reassignment in progress" in reassign_status(c, 1)
    c.wait(back, "cx/0 back on its replicas %r" % (reps,), timeout=60)
    c.wait(lambda: log_bytes(c, newcomer, "cx", 0) == 0,
           "node %d deleted what it had copied" % newcomer)
    for n in reps:
        assert c.cli(n, "consume", "cx", "--partition", "0",
                     "--from-beginning", "--count", "2000").stdout.split() \
            == ["cx-%05d-%s" % (i, blob) for i in range(2000)]
    # nothing left to cancel (asked where back() saw it done: another
    # node's image may apply the completion a heartbeat later)
    out = c.cli(1, "partition", "reassign", "--cancel").stdout
    assert out.startswith("cancelled 0 reassignment(s)"), out


def metric(c, nid, name):
    """The value of an unlabelled counter in node nid's /metrics."""
    url = "http://%s:%d/metrics" % c.nodes[nid].http_addr
    with urllib.request.urlopen(url, timeout=30) as r:
        for ln in r.read().decode().splitlines():
            if ln.startswith(name + " "):
                return int(ln.split()[1])
    raise AssertionError("%s not in node %d's /metrics" % (name, nid))


def test_a_replica_moved_back_is_copied_again_and_counted(cluster):
    """A partition moved off a node and later back to it is copied again
    from offset 0 (docs/cluster.md 10.3: a node deletes what it no longer
    replicates, as Kafka does), and what a reassignment copies is
    observable: sluice_reassign_copied_bytes_total on the node that
    copies grows by the partition's size each time, and its log says when
    the copy is done and what it cost."""
    c = cluster
    all3 = [1, 2, 3]
    wait_all_up(c, all3)
    c.cli(1, "topic", "create", "mb", "--partitions", "1",
          "--replication-factor", "2")
    view = c.wait(lambda: full_isr_of(c, "mb", all3, 1), "mb in sync")
    ldr, _, reps, _ = view[0]
    other = next(n for n in reps if n != ldr)
    newcomer = next(n for n in all3 if n not in reps)
    c.cli(ldr, "produce", "mb", "--acks", "durable",
          input="".join("mb-%04d-%s\n" % (i, "y" * 500) for i in range(400)))
    size = log_bytes(c, ldr, "mb", 0)
    assert size > 200000

    def move(to):
        c.cli(1, "partition", "reassign", "mb/0", "--replicas",
              "%d,%d" % tuple(to))
        c.wait(lambda: (full_isr_of(c, "mb", all3, 1) or [[0, 0, []]])[0][2]
               == to and "no reassignment in progress" in
               reassign_status(c, 1), "mb/0 on %s" % (to,), timeout=60)

    copied = []
    for _ in range(2):
        before = metric(c, newcomer, "sluice_reassign_copied_bytes_total")
        move([ldr, newcomer])
        copied.append(metric(c, newcomer,
                             "sluice_reassign_copied_bytes_total") - before)
        assert log_bytes(c, newcomer, "mb", 0) == size
        c.nodes[newcomer].wait_log(
            lambda t: t.count("mb/0: reassignment copy done (in sync): "
                              "%d bytes copied" % size) == len(copied),
            "the copy logged on node %d" % newcomer)
        # moved away again: deleted there
        move([ldr, other])
        c.wait(lambda: log_bytes(c, newcomer, "mb", 0) == 0,
               "node %d deleted its copy" % newcomer)
    # the whole partition both times: a moved-back replica starts at 0
    assert copied == [size, size], (copied, size)
