#!/usr/bin/env python3
"""bench/client_failover.py BUILD_DIR [KILLS] [RATE] [--stop [--no-controlled]]
- failover time as the client sees it (issue 13, docs/cluster.md section 5): one
sluice-failover-client producer sends RATE records/s (default 2000,
100-byte-ish values, acks=durable) to a 1-partition topic with RF 3 on a
3-node cluster for the whole run, routing by itself; each round the
partition's leader is kill -9ed and the time from the kill to the first
acknowledgement the producer reports after it is taken. The killed node
is restarted and the next round waits until it is back in the in-sync
set. At the end the producer must have had every record acknowledged
(none failed). Prints each round and p50/p99/max.

--stop (issue 14): the leader is stopped with SIGTERM instead, and the
figure is the longest pause between two acknowledgements around the stop
(a stopping leader still answers what it holds, so the first ack after
the signal says little). With the controlled shutdown the leadership
moves before the node goes; --no-controlled sets
controlled-shutdown-timeout-ms 0 (the node just stops and the controller
fences it after the session timeout), for comparison.

Timings as in the test harness (tests/cluster/cluster_harness.py):
cluster-session-timeout-ms 1500, election timeout 500 ms, heartbeat
50 ms; the client: retry.backoff.ms 100 (default), request.timeout.ms
2000. bench/cluster_failover.py measures the same with one CLI produce
per attempt (the server side).
"""
import os
import subprocess
import sys
import tempfile
import threading
import time

# --stop: stop the leader with SIGTERM (a clean stop: with the controlled
# shutdown of issue 14 it moves leadership off itself first) instead of
# kill -9; --no-controlled: with controlled-shutdown-timeout-ms 0 (the
# leader just stops; the controller fences it after the session timeout)
flags = [a for a in sys.argv[1:] if a.startswith("--")]
args = [a for a in sys.argv[1:] if not a.startswith("--")]
build = os.path.abspath(args[0] if len(args) > 0 else "build")
kills = int(args[1]) if len(args) > 1 else 20
rate = int(args[2]) if len(args) > 2 else 2000
stop = "--stop" in flags
extra = ["--controlled-shutdown-timeout-ms", "0"] \
    if "--no-controlled" in flags else []
here = os.path.dirname(os.path.abspath(__file__))
os.environ["SLUICE_BIN_DIR"] = os.path.join(build, "bin")
sys.path.insert(0, os.path.join(here, "..", "tests", "cluster"))
import cluster_harness  # noqa: E402
from test_cluster_failover import parse, same_everywhere  # noqa: E402
from test_cluster_failover import wait_all_up  # noqa: E402


class Acks:
    def __init__(self, proc):
        self.proc = proc
        self.cond = threading.Condition()
        self.last_ms = 0
        self.times = []  # every ack's time (ms)
        self.n = 0
        self.bad = []
        self.done = None
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for ln in self.proc.stdout:
            f = ln.split()
            with self.cond:
                if f[0] == "ack":
                    self.n += 1
                    self.last_ms = int(f[4])
                    self.times.append(self.last_ms)
                elif f[0] == "done":
                    self.done = ln.strip()
                else:
                    self.bad.append(ln.strip())
                self.cond.notify_all()

    def first_after(self, t_ms, timeout=60):
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.last_ms <= t_ms:
                left = deadline - time.monotonic()
                if left <= 0 or self.bad:
                    raise SystemExit("no ack after the kill: %r" % self.bad)
                self.cond.wait(left)
            return self.last_ms


def main():
    all3 = [1, 2, 3]
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        c = cluster_harness.Cluster(tmp, n=3,
                                    extra=["--log-level", "warn"] + extra)
        c.start()
        prod = None
        try:
            wait_all_up(c, all3)
            c.cli(1, "topic", "create", "f", "--partitions", "1",
                  "--replication-factor", "3")

            def full():
                v = same_everywhere(c, "f", all3, 1)
                return v and sorted(parse(v)[0][3]) == all3 and \
                    parse(v)[0][0]
            c.wait(full, "f with a full ISR", timeout=60)
            boot = ",".join("%s:%d" % c.nodes[n].binary_addr for n in all3)
            prod = subprocess.Popen(
                [os.path.join(build, "bin", "sluice-failover-client"),
                 "-b", boot, "-t", "f", "-r", str(rate), "-n",
                 "x" * 80, "-X", "request.timeout.ms=2000", "-X",
                 "connect.timeout.ms=1000"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            acks = Acks(prod)
            for k in range(kills):
                pl = c.wait(full, "a full ISR", timeout=60)
                acks.first_after(time.monotonic() * 1000)  # flowing
                t0 = time.monotonic() * 1000
                if stop:
                    c.nodes[pl].stop()  # SIGTERM, waits for the exit
                else:
                    c.kill9(pl)
                t1 = acks.first_after(t0)
                dt = (t1 - t0) / 1000.0
                if stop:
                    # a stopping leader still answers what it holds, so
                    # the first ack after the signal says little: the
                    # pause is the longest gap between two acks from the
                    # signal until 5 s after the first ack that follows it
                    acks.first_after(t1 + 5000)
                    with acks.cond:
                        ts = [t for t in acks.times if t >= t0 - 1000 and
                              t <= t1 + 5000]
                    dt = max(b - a for a, b in zip(ts, ts[1:])) / 1000.0
                times.append(dt)
                print("round %d: leader %d %s %.3f s (%d acked so far)" % (
                    k + 1, pl, "stopped, longest pause" if stop else
                    "killed, first ack after", dt, acks.n), flush=True)
                c.restart(pl)
                wait_all_up(c, all3)
            prod.stdin.write("stop\n")
            prod.stdin.flush()
            rc = prod.wait(300)
            acks.t.join(30)  # the reader takes the last line
            print("producer: exit %d, %s, errors %r" % (rc, acks.done,
                                                         acks.bad[:3]))
            if rc != 0 or acks.bad:
                raise SystemExit("the producer saw an error")
        finally:
            if prod and prod.poll() is None:
                prod.kill()
            c.stop_all()
    times.sort()

    def pct(q):
        return times[min(len(times) - 1, int(q * len(times)))]
    print("client failover %s kills=%d rate=%d/s p50=%.3f s p99=%.3f s "
          "max=%.3f s" % (("SIGTERM" + (" no-controlled" if extra else ""))
                          if stop else "kill-9", len(times), rate, pct(0.5),
                          pct(0.99), times[-1]))


main()
