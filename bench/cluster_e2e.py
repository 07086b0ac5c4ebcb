#!/usr/bin/env python3
"""bench/cluster_e2e.py BUILD_DIR [PAIRS] [RECORDS] [RATE] - end-to-end
latency, single node against a 3-node cluster (RF 3, min-insync-replicas
2) on this machine, in alternating pairs (issue 13).

One producer sends RECORDS records of 100 bytes (default 2000) to one
partition, one per request, at RATE records/s (default 200), with
acks=none so the producer never waits; one consumer long-polls FETCH on
the partition leader. End-to-end latency of a record = the time from just
before its produce request is written to the moment the consumer's FETCH
answer holding it is read, both in this process (one clock). A consumer
sees a record only below the high-water mark: on a single node once it is
fsynced (the topic default, flush always), in the cluster once every
in-sync replica has fetched it (and the leader fsynced it). Prints, per
run, p50/p99/p99.9/max in ms, then the medians per side.

The cluster runs with the test harness's timings (tests/cluster/
cluster_harness.py); they do not matter here (no failure)."""
import os
import statistics
import sys
import tempfile
import threading
import time

build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
pairs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
records = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
rate = float(sys.argv[4]) if len(sys.argv) > 4 else 200.0
here = os.path.dirname(os.path.abspath(__file__))
os.environ["SLUICE_BIN_DIR"] = os.path.join(build, "bin")
sys.path.insert(0, os.path.join(here, "..", "tests", "cluster"))
sys.path.insert(0, os.path.join(here, "..", "tests", "harness"))
import cluster_harness  # noqa: E402
import sluice_harness  # noqa: E402
import sluice_wire as sw  # noqa: E402
from test_cluster_failover import parse, same_everywhere  # noqa: E402
from test_cluster_failover import wait_all_up  # noqa: E402


def run(addr):
    """Latencies in ms of `records` records through the leader at addr."""
    sent = [0.0] * records
    lat = []
    done = threading.Event()

    def consume():
        with sw.Client(addr, timeout=60) as cl:
            off = 0
            while off < records:
                r = cl.fetch("e", 0, off, max_wait_ms=1000, min_bytes=1)
                now = time.monotonic()
                for x in sw.decode_batches(r["records"]):
                    if x["offset"] < off:
                        continue
                    i = int(x["value"][:8])
                    lat.append((now - sent[i]) * 1000.0)
                    off = x["offset"] + 1
        done.set()

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    with sw.Client(addr, timeout=60) as pr:
        t0 = time.monotonic()
        for i in range(records):
            due = t0 + i / rate
            d = due - time.monotonic()
            if d > 0:
                time.sleep(d)  # pacing the producer, not synchronisation
            v = b"%08d" % i + b"x" * 92
            sent[i] = time.monotonic()
            pr.produce("e", 0, [v], acks=sw.ACKS_NONE)
        if not done.wait(120):
            raise SystemExit("the consumer did not get every record")
    lat.sort()

    def pct(q):
        return lat[min(len(lat) - 1, int(q * len(lat)))]
    return pct(0.5), pct(0.99), pct(0.999), lat[-1]


def single(tmp, k):
    b = sluice_harness.Broker(data_dir=os.path.join(tmp, "s%d" % k),
                              args=["--log-level", "warn"])
    b.start()
    try:
        with b.client() as cl:
            cl.create_topic("e", 1)
        return run(b.binary_addr)
    finally:
        b.stop()


def cluster(tmp, k):
    all3 = [1, 2, 3]
    c = cluster_harness.Cluster(os.path.join(tmp, "c%d" % k), n=3,
                                extra=["--log-level", "warn"])
    c.start()
    try:
        ldr = wait_all_up(c, all3)
        c.cli(ldr, "topic", "create", "e", "--partitions", "1",
              "--replication-factor", "3")
        v = parse(c.wait(lambda: same_everywhere(c, "e", all3, 1), "e"))
        return run(c.nodes[v[0][0]].binary_addr)
    finally:
        c.stop_all()


def main():
    res = {"single": [], "rf3": []}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(pairs):
            for name, fn in (("single", single), ("rf3", cluster)):
                r = fn(tmp, k)
                res[name].append(r)
                print("pair %d %-6s p50=%.2f p99=%.2f p99.9=%.2f max=%.2f ms"
                      % ((k + 1, name) + r), flush=True)
    for name, rs in res.items():
        print("%-6s median p50=%.2f p99=%.2f p99.9=%.2f; worst p99=%.2f ms"
              % (name, statistics.median(r[0] for r in rs),
                 statistics.median(r[1] for r in rs),
                 statistics.median(r[2] for r in rs),
                 max(r[1] for r in rs)))


main()
