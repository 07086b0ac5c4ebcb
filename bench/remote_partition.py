#!/usr/bin/env python3
"""bench/remote_partition.py BUILD_DIR [PAIRS] [RECORDS] [backlog [ACKED]]

Issue 14, a queue-group coordinator without a replica (docs/cluster.md
5.1): the throughput of a queue group reading a partition its coordinator
holds (local) against one it holds no replica of (remote: the coordinator
copies it from the leader as an observer, broker/observer.c).

One 3-node cluster (the test harness's, tests/cluster/cluster_harness.py,
log level warn). Each pair creates a fresh topic with one partition and
replication factor 1 (so exactly one node holds it), produces RECORDS
records of 100 bytes to it (acks durable), then drains it twice, in
alternating order: with a new queue group coordinated by the partition's
leader (local), and with a new queue group coordinated by another node
(remote; its copy of the topic starts empty, so the run includes copying
it). Then a second new group on that remote coordinator drains it again
(remote-warm: the copy is already there). Each drain is one `sluice queue
consume --count RECORDS --format raw > /dev/null` (every record acked; the
CLI sends the acks in batches), timed from its start to its exit (all
acks answered). A second new group on the leader drains it again too
(local-again), in the opposite order to remote-warm. Also printed: the disk the copy takes on the remote
coordinator against the leader's log, and the remote coordinator's
resident memory after the drain.

With `backlog` (docs/benchmarks.md "Issue 14: observer copies, session
13"): a large backlog already acked when a coordinator without a replica
takes the group over. The cluster's group state partitions have one
replica each (--cluster-replication-factor 1), so the coordinator is the
node holding the group's state partition. Each run creates a fresh RF 1
topic on node L, produces RECORDS records of 100 bytes, and has a queue
group coordinated by node F (not L) ack the first ACKED of them (default
0.9 * RECORDS; F copies the topic as an observer while it does). Then:
  moved:   the group's state partition is reassigned to the third node G
           (no replica of the topic, no copy): the time from the
           reassignment to the first record G delivers, to the last one
           of the tail (RECORDS - ACKED records, all acked), and the
           bytes G fetched from L;
  restart: a second group on F, same backlog acked; F is killed with -9
           and started again: the time from the start of the process to
           the first record delivered (ready line included), and the
           bytes F fetched from L after its restart.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
pairs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
records = int(sys.argv[3]) if len(sys.argv) > 3 else 100000
backlog = len(sys.argv) > 4 and sys.argv[4] == "backlog"
acked = int(sys.argv[5]) if len(sys.argv) > 5 else records * 9 // 10
here = os.path.dirname(os.path.abspath(__file__))
os.environ["SLUICE_BIN_DIR"] = os.path.join(build, "bin")
sys.path.insert(0, os.path.join(here, "..", "tests", "cluster"))
sys.path.insert(0, os.path.join(here, "..", "tests", "harness"))
import cluster_harness  # noqa: E402
from test_cluster_failover import parse, same_everywhere  # noqa: E402
from test_cluster_failover import wait_all_up  # noqa: E402

STATE = "__sluice_group_state"
ALL3 = [1, 2, 3]


def fnv1a32(s):
    h = 0x811C9DC5
    for ch in s.encode():
        h = ((h ^ ch) * 0x01000193) & 0xFFFFFFFF
    return h


def group_on(view, node, prefix):
    """A group name whose coordinator is node."""
    i = 0
    while True:
        g = "%s-%d" % (prefix, i)
        if view[fnv1a32(g) % len(view)][0] == node:
            return g
        i += 1


def drain(c, nid, topic, group):
    t0 = time.monotonic()
    with open(os.devnull, "w") as null:
        subprocess.run([cluster_harness.cli_path(), "-b",
                        "%s:%d" % c.nodes[nid].binary_addr, "queue",
                        "consume", topic, "--group", group, "--count",
                        str(records), "--format", "raw"], stdout=null,
                       check=True, timeout=1800)
    return records / (time.monotonic() - t0)


def du(path):
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            st = os.stat(os.path.join(d, f))
            total += st.st_blocks * 512
    return total


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


def fetched(c, nid):
    """sluice_replica_fetched_bytes_total of node nid (since its start)."""
    url = "http://%s:%d/metrics" % c.nodes[nid].http_addr
    with urllib.request.urlopen(url, timeout=30) as r:
        for ln in r.read().decode().splitlines():
            if ln.startswith("sluice_replica_fetched_bytes_total "):
                return int(ln.split()[1])
    return 0


def consume_stream(c, nid, topic, group, count):
    """A `sluice queue consume` of count records through node nid:
    (seconds to its first record, seconds to its exit)."""
    t0 = time.monotonic()
    p = subprocess.Popen([cluster_harness.cli_path(), "-b",
                          "%s:%d" % c.nodes[nid].binary_addr, "queue",
                          "consume", topic, "--group", group, "--count",
                          str(count), "--format", "raw", "--wait-ms",
                          "120000"], stdout=subprocess.PIPE)
    first = None
    for _ in p.stdout:
        if first is None:
            first = time.monotonic() - t0
    p.wait(timeout=1800)
    if p.returncode != 0:
        raise RuntimeError("queue consume exited with %d" % p.returncode)
    return first, time.monotonic() - t0


def backlog_runs():
    line = "x" * 99 + "\n"
    moved_first, moved_all, moved_bytes = [], [], []
    rs_first, rs_bytes = [], []
    tail = records - acked
    with tempfile.TemporaryDirectory() as tmp:
        c = cluster_harness.Cluster(
            tmp, n=3, extra=["--log-level", "warn",
                             "--cluster-replication-factor", "1"])
        c.start()
        try:
            wait_all_up(c, ALL3)
            c.cli(1, "queue", "consume", "warm-up", "--group", "w",
                  "--wait-ms", "1", check=False)
            sv = parse(c.wait(lambda: same_everywhere(c, STATE, ALL3, 16),
                              "the state topic"))
            for i in range(pairs):
                t = "bl%d" % i
                c.cli(1, "topic", "create", t, "--partitions", "1",
                      "--replication-factor", "1")
                v = parse(c.wait(lambda: same_everywhere(c, t, ALL3, 1), t))
                leader = v[0][0]
                far = ALL3[(ALL3.index(leader) + 1 + i % 2) % 3]
                third = next(n for n in ALL3 if n not in (leader, far))
                c.cli(leader, "produce", t, "--acks", "durable",
                      input=line * records)
                gm = group_on(sv, far, t + "-m")
                p = cluster_harness.fnv1a32(gm) % len(sv)
                k = 0
                while True:  # a group of another state partition of far
                    gr = group_on(sv, far, "%s-r%d" % (t, k))
                    if cluster_harness.fnv1a32(gr) % len(sv) != p:
                        break
                    k += 1
                for g in (gm, gr):
                    subprocess.run(
                        [cluster_harness.cli_path(), "-b",
                         "%s:%d" % c.nodes[far].binary_addr, "queue",
                         "consume", t, "--group", g, "--count", str(acked),
                         "--format", "raw"], stdout=subprocess.DEVNULL,
                        check=True, timeout=1800)
                # moved: the state partition of gm to the third node
                b0 = fetched(c, third)
                t0 = time.monotonic()
                c.cli(leader, "partition", "reassign", "%s/%d" % (STATE, p),
                      "--replicas", str(third))
                # (while a partition of a topic is reassigned, the topic
                # counts as RF 2: its RF 1 partitions refuse durable
                # appends, acks included; wait for the end)
                c.wait(lambda: all(
                    "no reassignment in progress" in c.cli(
                        n, "partition", "reassign", "--status").stdout
                    for n in ALL3), "the reassignment done", timeout=120)
                first, done = consume_stream(c, third, t, gm, tail)
                setup = time.monotonic() - t0 - done
                moved_first.append(setup + first)
                moved_all.append(setup + done)
                moved_bytes.append(fetched(c, third) - b0)
                # restart: kill -9 the coordinator of gr, start it again
                c.kill9(far)
                t0 = time.monotonic()
                c.restart(far)  # returns at its ready line
                t1 = time.monotonic()
                first, _ = consume_stream(c, far, t, gr, 1)
                rs_first.append(t1 - t0 + first)
                rs_bytes.append(fetched(c, far))
                print("run %d: moved: first record after %.2f s, tail of %d "
                      "after %.2f s, %.1f MiB fetched | restart: first "
                      "record %.2f s after the start, %.1f MiB fetched "
                      "(load %.1f)"
                      % (i + 1, moved_first[-1], tail, moved_all[-1],
                         moved_bytes[-1] / 2**20, rs_first[-1],
                         rs_bytes[-1] / 2**20, os.getloadavg()[0]),
                      flush=True)
        finally:
            c.stop_all()
    med = statistics.median
    print("records=%d acked=%d runs=%d | moved: first record median %.2f s "
          "worst %.2f s, tail median %.2f s worst %.2f s, fetched median "
          "%.1f MiB | restart: first record median %.2f s worst %.2f s, "
          "fetched median %.1f MiB"
          % (records, acked, pairs, med(moved_first), max(moved_first),
             med(moved_all), max(moved_all), med(moved_bytes) / 2**20,
             med(rs_first), max(rs_first), med(rs_bytes) / 2**20))


def main():
    if backlog:
        backlog_runs()
        return
    local, remote, warm, lwarm = [], [], [], []
    line = "x" * 99 + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        c = cluster_harness.Cluster(tmp, n=3, extra=["--log-level", "warn"])
        c.start()
        try:
            wait_all_up(c, ALL3)
            c.cli(1, "queue", "consume", "warm-up", "--group", "w",
                  "--wait-ms", "1", check=False)
            sv = parse(c.wait(lambda: same_everywhere(c, STATE, ALL3, 16),
                              "the state topic"))
            for i in range(pairs):
                t = "rb%d" % i
                c.cli(1, "topic", "create", t, "--partitions", "1",
                      "--replication-factor", "1")
                v = parse(c.wait(lambda: same_everywhere(c, t, ALL3, 1), t))
                leader = v[0][0]
                far = next(n for n in ALL3 if n != leader)
                c.cli(leader, "produce", t, "--acks", "durable",
                      input=line * records)
                gl = group_on(sv, leader, t + "-l")
                gr = group_on(sv, far, t + "-r")
                gw = group_on(sv, far, t + "-w")
                glw = group_on(sv, leader, t + "-lw")
                if i % 2 == 0:
                    local.append(drain(c, leader, t, gl))
                    remote.append(drain(c, far, t, gr))
                    warm.append(drain(c, far, t, gw))
                    lwarm.append(drain(c, leader, t, glw))
                else:
                    remote.append(drain(c, far, t, gr))
                    local.append(drain(c, leader, t, gl))
                    lwarm.append(drain(c, leader, t, glw))
                    warm.append(drain(c, far, t, gw))
                lead_disk = du(os.path.join(c.nodes[leader].data_dir,
                                            "topics", t))
                copy_disk = du(os.path.join(c.nodes[far].data_dir,
                                            "topics", t))
                print("pair %d: local %.0f rec/s, remote %.0f rec/s, "
                      "local-again %.0f rec/s, remote-warm %.0f rec/s; "
                      "leader log %.1f MiB, copy %.1f MiB; remote "
                      "coordinator RSS %.1f MiB (load %.1f)"
                      % (i + 1, local[-1], remote[-1], lwarm[-1], warm[-1],
                         lead_disk / 2**20, copy_disk / 2**20,
                         rss_kib(c.nodes[far].proc.pid) / 1024.0,
                         os.getloadavg()[0]), flush=True)
        finally:
            c.stop_all()
    ml, mr, mlw, mw = (statistics.median(x)
                       for x in (local, remote, lwarm, warm))
    print("records=%d pairs=%d local median=%.0f worst=%.0f | remote "
          "median=%.0f worst=%.0f (%.2fx) | local-again median=%.0f "
          "worst=%.0f | remote-warm median=%.0f worst=%.0f (%.2fx of "
          "local-again)" % (records, pairs, ml, min(local), mr, min(remote),
                            mr / ml, mlw, min(lwarm), mw, min(warm),
                            mw / mlw))


main()
