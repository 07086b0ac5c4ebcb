"""Operating a cluster (issue 14, docs/cluster.md section 10) with real
nodes under load:

  - a rolling restart of all three nodes (SIGTERM, start again, wait until
    every partition is fully in sync, next node): each node moves the
    leadership off itself through the quorum before it stops (controlled
    shutdown, its log says so), a durable producer (libsluice) sees no
    error, and a consumer that reads by offset gets every record exactly
    once, in order: nothing lost, nothing delivered twice.

Every wait polls an observable condition with a deadline."""
import os
import signal
import subprocess
import sys
import threading

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import cluster_harness  # noqa: E402
from test_cluster_clients import Client  # noqa: E402
from test_cluster_failover import parse, same_everywhere, wait_all_up  # noqa


@pytest.fixture
def cluster(tmp_path):
    c = cluster_harness.Cluster(tmp_path, n=3)
    c.start()
    yield c
    for b in c.nodes.values():
        if b.running():
            b.proc.send_signal(signal.SIGCONT)
    c.stop_all()


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
