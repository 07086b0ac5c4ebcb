#!/usr/bin/env python3
"""bench/rolling_restart.py BUILD_DIR [ROUNDS] - the pause a queue consumer
sees during a rolling restart of a 3-node cluster (issue 14,
docs/cluster.md 10.2).

A topic `jq` (1 partition, RF 3) read as queue group `jq`; one producer
(sluice-failover-client, acks=durable, idempotent, RATE records/s) and two
consumers, each one long `sluice queue consume jq --group jq --format
json` (libsluice's queue consumer: prefetch, one ack per record) given all
three nodes. Each round restarts the three nodes one by one as an operator
does: wait until every partition is in sync, SIGTERM (controlled shutdown:
drain, fence), wait until the others lead the data and the group, start the
node again on its addresses, wait until every node is up.

Every record a consumer prints is stamped when it is read. Per node stop,
from the SIGTERM until the next one (or the end): the longest gap between
two deliveries of the two consumers together (what the application sees
as "the queue paused") and of each consumer on its own, and whether the
stopped node coordinated the group. A consumer that exits is an error its
application saw (counted, and started again); drain_ms and moved_ms are
what the stopped node logged: its drain's length, and the time from the
SIGTERM until the fence was applied (drain included; -1: not logged, as
by a build without the drain); a record delivered more
than once had its ack lost or refused (libsluice's consumer reports such
settlement failures only at flush, so a long-running consumer does not
see them as errors, but the work is done twice). Prints one line per stop,
then median and worst of the merged gap for coordinator stops and for the
others. The producer's rate bounds the resolution: at 100 records/s the
normal gap is about 10 ms.

The cluster runs with the test harness's timings (tests/cluster/
cluster_harness.py: session timeout 1500 ms, election 500 ms, heartbeat
50 ms) and sluiced's default controlled-shutdown-timeout-ms (10 s, of which
the drain takes at most half).
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

args = [a for a in sys.argv[1:] if not a.startswith("--")]
build = os.path.abspath(args[0] if args else "build")
rounds = int(args[1]) if len(args) > 1 else 3
RATE = 100
here = os.path.dirname(os.path.abspath(__file__))
os.environ["SLUICE_BIN_DIR"] = os.path.join(build, "bin")
sys.path.insert(0, os.path.join(here, "..", "tests", "cluster"))
sys.path.insert(0, os.path.join(here, "..", "tests", "harness"))
import cluster_harness  # noqa: E402
from test_cluster_failover import wait_all_up  # noqa: E402
from test_cluster_jepsen_queue import (ALL3, TOPIC, Producer,  # noqa: E402
                                       coordinator, create_queue, in_sync,
                                       leader, restart_same)


class Consumer(threading.Thread):
    """One long `sluice queue consume`; started again when it exits."""

    def __init__(self, c, name):
        super().__init__(daemon=True)
        self.c, self.name = c, name
        self.times = []  # when each record was read
        self.offsets = []  # (partition, offset) of each, in order
        self.errors = []
        self.stop = threading.Event()
        self.p = None

    def run(self):
        while not self.stop.is_set():
            boot = ",".join("%s:%d" % self.c.nodes[n].binary_addr
                            for n in ALL3)
            self.p = subprocess.Popen(
                [cluster_harness.cli_path(), "-b", boot,
                 "-X", "connect.timeout.ms=1000",
                 "queue", "consume", TOPIC, "--group", TOPIC,
                 "--format", "json"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for ln in self.p.stdout:
                try:
                    m = json.loads(ln)
                except ValueError:
                    continue
                self.times.append(time.monotonic())
                self.offsets.append((m["partition"], m["offset"]))
            rc = self.p.wait()
            if not self.stop.is_set():
                self.errors.append((time.monotonic(), rc,
                                    self.p.stderr.read().strip()[-300:]))

    def finish(self):
        self.stop.set()
        if self.p and self.p.poll() is None:
            self.p.terminate()
        self.join(30)


def max_gap(ts, lo, hi):
    """The longest gap between consecutive stamps that ends in [lo, hi)
    (the first one from the last delivery before lo)."""
    ts = sorted(ts)
    prev = max([t for t in ts if t < lo], default=lo)
    gap = 0.0
    for t in ts:
        if t < lo:
            continue
        if t >= hi:
            break
        gap = max(gap, t - prev)
        prev = t
    return gap


def main():
    tmp = tempfile.mkdtemp(prefix="sluice-rolling-")
    c = cluster_harness.Cluster(tmp, n=3)
    c.start()
    cons = []
    prod = None
    stops = []  # (node, t_sigterm, coordinated the group)
    try:
        create_queue(c)
        prod = Producer(c, "p0", RATE)
        cons = [Consumer(c, "bin%d" % i) for i in range(2)]
        for x in cons:
            x.start()
        c.wait(lambda: all(len(x.times) >= 20 for x in cons),
               "both consumers consuming", timeout=60)
        for r in range(rounds):
            for n in ALL3:
                c.wait(lambda: in_sync(c), "in sync before node %d" % n,
                       timeout=90)
                coord = coordinator(c, ALL3)
                t0 = time.monotonic()
                rc = c.nodes[n].stop()
                assert rc == 0, "node %d exited with %r" % (n, rc)
                # the stop's own account: drain, then fence (its log)
                log = c.nodes[n].log()
                d = re.findall(r"drained its queue groups in (\d+) ms", log)
                f = re.findall(r"leadership moved off this node \((\d+) ms",
                               log)
                stops.append((n, t0, coord == n,
                              int(d[-1]) if d else -1,
                              int(f[-1]) if f else -1))
                rest = [x for x in ALL3 if x != n]
                c.wait(lambda: leader(c, rest) and coordinator(c, rest),
                       "leader and coordinator off node %d" % n, timeout=60)
                restart_same(c, n)
                wait_all_up(c, ALL3)
        end = time.monotonic() + 2.0
        c.wait(lambda: time.monotonic() >= end, "2 s more of deliveries",
               timeout=10)
    finally:
        for x in cons:
            x.finish()
        if prod:
            prod.kill()
        c.stop_all()
    allt = [t for x in cons for t in x.times]
    rows = {True: [], False: []}
    print("stop node coordinator drain_ms moved_ms merged_gap_ms " +
          " ".join("%s_gap_ms" % x.name for x in cons))
    for i, (n, t0, was, dms, fms) in enumerate(stops):
        hi = stops[i + 1][1] if i + 1 < len(stops) else max(allt)
        g = max_gap(allt, t0, hi)
        rows[was].append(g)
        print("%4d %4d %11s %8d %8d %13.0f " % (
            i + 1, n, "yes" if was else "no", dms, fms, g * 1e3) +
              " ".join("%11.0f" % (max_gap(x.times, t0, hi) * 1e3)
                       for x in cons))
    for was in (True, False):
        if rows[was]:
            print("%s stops: %d, merged gap median %.0f ms, worst %.0f ms" % (
                "coordinator" if was else "other", len(rows[was]),
                statistics.median(rows[was]) * 1e3, max(rows[was]) * 1e3))
    errs = [(x.name,) + e for x in cons for e in x.errors]
    seen = {}
    for x in cons:
        for k in x.offsets:
            seen[k] = seen.get(k, 0) + 1
    print("records delivered: %d (%d distinct, %d delivered again: acks "
          "lost or refused at a stop); consumer exits (errors the "
          "application saw): %d" % (len(allt), len(seen),
                                    sum(n - 1 for n in seen.values()),
                                    len(errs)))
    for e in errs[:10]:
        print("  %s rc %d: %s" % (e[0], e[2], e[3]))


if __name__ == "__main__":
    main()
