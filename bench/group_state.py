#!/usr/bin/env python3
"""bench/group_state.py BUILD_DIR queue [PAIRS] [RECORDS]
   bench/group_state.py BUILD_DIR failover [KILLS] [--defaults]

Issue 14, group state replicated with the data (docs/cluster.md 6).

queue: a queue group's throughput, single node against a 3-node cluster
(RF 3, min-insync-replicas 2: every ack is answered only once its state
record is fsynced on every in-sync replica of the group's state
partition), in alternating pairs, each run on fresh brokers: RECORDS
records of 100 bytes produced to a 4-partition topic (acks durable),
then `sluice-bench queue --consumers 4`: four queue consumers of one
group, every record acked on its own (sluice_queue_consumer_ack; libsluice
batches the acks of a poll into requests, its defaults). Prints one line
per run and the medians.

failover: coordinator failover time. A queue group with a backlog; each
round kill -9s the group's coordinator (the leader of its
__sluice_group_state partition) and measures the time from the kill to
the first ack answered again: one `sluice queue consume --count 1`
bootstrapped on the two survivors (it finds the new coordinator, is
handed a record and exits once its ack is answered). The killed node is
restarted and the next round waits until the state topic's ISRs are
full again. Prints each round and p50/p99/max. Cluster timings of the
test harness (tests/cluster/cluster_harness.py): session timeout 1.5 s,
election timeout 500 ms, heartbeat 50 ms; with --defaults sluiced's own
(cluster-session-timeout-ms 3000 and the rest, docs/configuration.md).
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
mode = sys.argv[2] if len(sys.argv) > 2 else "queue"
here = os.path.dirname(os.path.abspath(__file__))
os.environ["SLUICE_BIN_DIR"] = os.path.join(build, "bin")
sys.path.insert(0, os.path.join(here, "..", "tests", "cluster"))
sys.path.insert(0, os.path.join(here, "..", "tests", "harness"))
import cluster_harness  # noqa: E402
import sluice_harness  # noqa: E402
from test_cluster_failover import parse, same_everywhere  # noqa: E402
from test_cluster_failover import wait_all_up  # noqa: E402

BENCH = os.path.join(build, "bin", "sluice-bench")
STATE = "__sluice_group_state"
ALL3 = [1, 2, 3]


def fnv1a32(s):
    h = 0x811C9DC5
    for ch in s.encode():
        h = ((h ^ ch) * 0x01000193) & 0xFFFFFFFF
    return h


def bench(*args):
    p = subprocess.run([BENCH] + list(args), capture_output=True, text=True,
                       timeout=1800)
    if p.returncode != 0:
        raise SystemExit("sluice-bench %s: %s%s" % (" ".join(args),
                                                    p.stdout, p.stderr))
    return p.stdout


def rate(out):
    """records/s from sluice-bench's report line."""
    for w in out.split():
        if w.startswith("records_per_sec="):
            return float(w.split("=")[1])
    raise SystemExit("no rate in: %s" % out)


def queue_run(bs, records):
    bench("produce", "-b", bs, "--topic", "q4", "--partitions", "4",
          "--records", str(records), "--size", "100", "--acks", "durable")
    return rate(bench("queue", "-b", bs, "--topic", "q4", "--records",
                      str(records), "--consumers", "4"))


def single(records):
    with tempfile.TemporaryDirectory() as tmp:
        b = sluice_harness.Broker(data_dir=tmp, args=["--log-level",
                                                      "warn"])
        b.start()
        try:
            return queue_run("%s:%d" % b.binary_addr, records)
        finally:
            b.stop()


def cluster(records):
    with tempfile.TemporaryDirectory() as tmp:
        c = cluster_harness.Cluster(tmp, n=3, extra=["--log-level", "warn"])
        c.start()
        try:
            wait_all_up(c, ALL3)
            c.cli(1, "topic", "create", "q4", "--partitions", "4",
                  "--replication-factor", "3")
            c.wait(lambda: same_everywhere(c, "q4", ALL3, 4), "q4")
            bs = ",".join("%s:%d" % c.nodes[n].binary_addr for n in ALL3)
            return queue_run(bs, records)
        finally:
            c.stop_all()


def queue_pairs(pairs, records):
    one, three = [], []
    for i in range(pairs):
        one.append(single(records))
        print("pair %d single node: %.0f records/s" % (i + 1, one[-1]),
              flush=True)
        three.append(cluster(records))
        print("pair %d 3 nodes RF 3: %.0f records/s" % (i + 1, three[-1]),
              flush=True)
    m1, m3 = statistics.median(one), statistics.median(three)
    print("queue single median=%.0f worst=%.0f | RF3 median=%.0f worst=%.0f "
          "| ratio %.2f" % (m1, min(one), m3, min(three), m3 / m1))


def state_full(c, nodes):
    v = same_everywhere(c, STATE, nodes, 16)
    if not v:
        return None
    v = parse(v)
    return v if all(sorted(x[3]) == nodes and x[0] in nodes for x in v) \
        else None


def failover(kills, defaults):
    times = []
    group = "fo"
    with tempfile.TemporaryDirectory() as tmp:
        c = cluster_harness.Cluster(tmp, n=3, extra=["--log-level", "warn"])
        if defaults:
            c.timings = {}
        c.start()
        try:
            wait_all_up(c, ALL3)
            c.cli(1, "topic", "create", "fq", "--partitions", "1",
                  "--replication-factor", "3")
            c.wait(lambda: same_everywhere(c, "fq", ALL3, 1), "fq")
            c.cli(1, "produce", "fq", "--acks", "durable",
                  input="".join("r-%d\n" % i for i in range(kills + 5)))
            bs = ",".join("%s:%d" % c.nodes[n].binary_addr for n in ALL3)
            subprocess.run([cluster_harness.cli_path(), "-b", bs, "queue",
                            "consume", "fq", "--group", group, "--count",
                            "1"], check=True, capture_output=True,
                           timeout=120)
            for k in range(kills):
                v = c.wait(lambda: state_full(c, ALL3), "full state ISRs",
                           timeout=120)
                coord = v[fnv1a32(group) % len(v)][0]
                rest = [n for n in ALL3 if n != coord]
                rbs = ",".join("%s:%d" % c.nodes[n].binary_addr
                               for n in rest)
                t0 = time.monotonic()
                c.kill9(coord)
                p = subprocess.run([cluster_harness.cli_path(), "-b", rbs,
                                    "queue", "consume", "fq", "--group",
                                    group, "--count", "1"],
                                   capture_output=True, text=True,
                                   timeout=120)
                dt = time.monotonic() - t0
                if p.returncode != 0:
                    raise SystemExit("round %d: %s" % (k + 1, p.stderr))
                times.append(dt)
                print("round %d: coordinator %d killed, ack answered after "
                      "%.3f s" % (k + 1, coord, dt), flush=True)
                c.restart(coord)
                wait_all_up(c, ALL3)
        finally:
            c.stop_all()
    times.sort()

    def pct(q):
        return times[min(len(times) - 1, int(q * len(times)))]
    print("coordinator failover (%s timings) kills=%d p50=%.3f s p99=%.3f s "
          "max=%.3f s" % ("default" if defaults else "test-harness",
                          len(times), pct(0.5), pct(0.99), times[-1]))


if mode == "queue":
    queue_pairs(int(sys.argv[3]) if len(sys.argv) > 3 else 3,
                int(sys.argv[4]) if len(sys.argv) > 4 else 200000)
elif mode == "failover":
    args = [a for a in sys.argv[3:] if a != "--defaults"]
    failover(int(args[0]) if args else 20, "--defaults" in sys.argv)
else:
    raise SystemExit(__doc__)
