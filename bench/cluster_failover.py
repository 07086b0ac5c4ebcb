#!/usr/bin/env python3
"""bench/cluster_failover.py BUILD_DIR [KILLS] [--load] [--defaults]
[--set KEY=VALUE ...] [--watch SECONDS] - failover time of a 3-node
cluster (issue 13): a topic with RF 3, min-insync-replicas 2; the leader of
its partition is kill -9ed; the time from the kill to the first durable
produce acknowledged by the new leader (tried on every survivor in turn,
each attempt a `sluice produce --acks durable` of one record). Then the
killed node is restarted and the next round waits until it is back in the
in-sync set. Prints each round and p50/p99/max.

The cluster runs with the test harness's timings (tests/cluster/
cluster_harness.py): cluster-session-timeout-ms 1500, election timeout
500 ms, heartbeat 50 ms. Failover time is dominated by the session
timeout (the controller fences the dead node after it).

--load: the same, while three loader threads keep every node busy: each
writes batches of 50 records of 100 bytes with acks=durable, 8 in
flight, to one partition of a second topic `load` (3 partitions, RF 3, so
each node leads one and follows two), following its partition's leader
when it moves. Prints the load's records/s over the run too.

--defaults: the cluster runs with sluiced's default timings instead
(cluster-session-timeout-ms, -election-timeout-ms and -heartbeat-ms as
docs/cluster.md section 7 lists them).

--set cluster-session-timeout-ms=2000 (repeatable): that timing instead
(on top of --defaults or the harness's).

--watch SECONDS: no kills; the cluster (with --load, loaded) runs for
SECONDS and the script counts the nodes fenced meanwhile ("controller:
fencing" in the logs): with nobody killed, each one is a false alarm of
the session timeout on this machine.

Each round also says whether the killed node was the metadata (Raft)
leader too (then a Raft election comes first) and when a survivor's
metadata first named the new partition leader ("named"), so the time
splits into detection + election (named) and the new leader's first
durable round trip (ack - named).
"""
import os
import subprocess
import sys
import tempfile
import threading
import time

argv = sys.argv[1:]
sets, watch = {}, None
while "--set" in argv:
    i = argv.index("--set")
    k, v = argv[i + 1].split("=", 1)
    sets[k] = v
    del argv[i:i + 2]
if "--watch" in argv:
    i = argv.index("--watch")
    watch = float(argv[i + 1])
    del argv[i:i + 2]
args = [a for a in argv if not a.startswith("--")]
load = "--load" in argv
defaults = "--defaults" in argv
build = os.path.abspath(args[0] if args else "build")
kills = int(args[1]) if len(args) > 1 else 20
here = os.path.dirname(os.path.abspath(__file__))
os.environ["SLUICE_BIN_DIR"] = os.path.join(build, "bin")
sys.path.insert(0, os.path.join(here, "..", "tests", "cluster"))
import cluster_harness  # noqa: E402
from test_cluster_failover import parse, same_everywhere  # noqa: E402
from test_cluster_failover import wait_all_up  # noqa: E402
sys.path.insert(0, os.path.join(here, "..", "tests", "harness"))
import sluice_wire  # noqa: E402


WINDOW = 8


class Loader(threading.Thread):
    """Durable batches to one partition of `load`, to its leader."""

    def __init__(self, c, p):
        super().__init__(daemon=True)
        self.c, self.p = c, p
        self.stop = threading.Event()
        self.records = 0
        self.values = [b"x" * 100] * 50
        self.body = sluice_wire.produce_body(
            sluice_wire.ACKS_DURABLE,
            {"load": {p: sluice_wire.encode_batch(self.values)}})

    def leader(self):
        for n in (1, 2, 3):
            if not self.c.nodes[n].running():
                continue
            try:
                v = self.c.describe(n, "load")
            except subprocess.TimeoutExpired:
                continue
            if v and len(v) == 3:
                ldr = parse(v)[self.p][0]
                if ldr > 0 and self.c.nodes[ldr].running():
                    return ldr
        return None

    def run(self):
        while not self.stop.is_set():
            ldr = self.leader()
            if not ldr:
                self.stop.wait(0.05)
                continue
            try:
                with sluice_wire.Client(self.c.nodes[ldr].binary_addr,
                                        timeout=5) as cl:
                    # WINDOW requests in flight, answered in order
                    inflight = 0
                    while not self.stop.is_set():
                        while inflight < WINDOW:
                            cl.send(sluice_wire.API_PRODUCE, self.body)
                            inflight += 1
                        _, body = cl.recv()
                        inflight -= 1
                        r = sluice_wire.decode_produce(body)[("load",
                                                              self.p)]
                        if r["error"]:
                            break
                        self.records += len(self.values)
            except (OSError, ConnectionError, AssertionError):
                pass


def produce_one(c, nid, i):
    b = c.nodes[nid]
    p = subprocess.run([cluster_harness.cli_path(), "-b",
                        "%s:%d" % b.binary_addr, "-X",
                        "request.timeout.ms=2000", "produce", "f",
                        "--partition", "0", "--acks", "durable"],
                       input="r-%d\n" % i, capture_output=True, text=True,
                       timeout=30)
    return p.returncode == 0


def main():
    all3 = [1, 2, 3]
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        c = cluster_harness.Cluster(tmp, n=3,
                                    extra=["--log-level", "warn"])
        if defaults:
            c.timings = {}
        c.timings.update(sets)
        c.start()
        loaders = []
        try:
            wait_all_up(c, all3)
            c.cli(1, "topic", "create", "f", "--partitions", "1",
                  "--replication-factor", "3")
            c.wait(lambda: same_everywhere(c, "f", all3, 1), "f")
            if load:
                c.cli(1, "topic", "create", "load", "--partitions", "3",
                      "--replication-factor", "3")
                c.wait(lambda: same_everywhere(c, "load", all3, 3), "load")
                loaders = [Loader(c, p) for p in range(3)]
                for ld in loaders:
                    ld.start()
                t_load = time.monotonic()
            seq = 0
            rounds = kills
            if watch is not None:
                rounds = 0
                t_w = time.monotonic()
                while time.monotonic() - t_w < watch:
                    time.sleep(1)  # the measurement window, not a sync
                fences = sum(c.nodes[n].log().count("controller: fencing")
                             for n in all3)
                print("watch: %.0f s, timings %s: %d node(s) fenced with "
                      "nobody killed" % (watch, c.timings, fences))
            for k in range(rounds):
                def full():
                    v = same_everywhere(c, "f", all3, 1)
                    return v and sorted(parse(v)[0][3]) == all3 and \
                        parse(v)[0][0]
                pl = c.wait(full, "a full ISR", timeout=60)
                seq += 1
                assert produce_one(c, pl, seq)
                meta = c.agreed_leader(all3)
                t0 = time.monotonic()
                c.kill9(pl)
                rest = [n for n in all3 if n != pl]
                named = {}

                def watch_named():
                    while "t" not in named and time.monotonic() - t0 < 60:
                        v = same_everywhere(c, "f", rest[:1], 1)
                        if v and parse(v)[0][0] in rest:
                            named["t"] = time.monotonic() - t0
                threading.Thread(target=watch_named, daemon=True).start()
                done = False
                while not done:
                    for n in rest:
                        seq += 1
                        if produce_one(c, n, seq):
                            done = True
                            break
                    if time.monotonic() - t0 > 60:
                        raise SystemExit("no failover within 60 s")
                dt = time.monotonic() - t0
                times.append(dt)
                print("round %d: leader %d killed%s, durable ack after "
                      "%.3f s (new leader named after %s s)" % (
                          k + 1, pl, " (metadata leader too)"
                          if meta == pl else "", dt,
                          "%.3f" % named["t"] if "t" in named else "?"),
                      flush=True)
                c.restart(pl)
                wait_all_up(c, all3)
            if loaders:
                rate = sum(ld.records for ld in loaders) / (
                    time.monotonic() - t_load)
                print("load: %.0f records/s (durable, 100 B) over the run" %
                      rate)
        finally:
            for ld in loaders:
                ld.stop.set()
            c.stop_all()
    times.sort()
    if not times:
        return

    def pct(q):
        return times[min(len(times) - 1, int(q * len(times)))]
    print("failover kills=%d p50=%.3f s p99=%.3f s max=%.3f s" % (
        len(times), pct(0.5), pct(0.99), times[-1]))


main()
