#!/usr/bin/env python3
"""bench/stream_failover.py BUILD_DIR [KILLS] [--defaults] [--auto-commit]
                           [--join]

Issue 14: the pause a stream-group consumer sees when its group
coordinator is killed (docs/cluster.md 6, "Stream groups across a
failover").

Three nodes (tests/cluster/cluster_harness.py), a topic of 2 partitions
(RF 3) with a backlog of 2000 records produced up front (acks durable)
and a producer adding about 500 records/s (sluice.Producer, its
defaults) while the rounds run. One
sluice.Consumer in group "sfo" (Python bindings over libsluice, built
against BUILD_DIR: `cd bindings/python && SLUICE_BUILD_DIR=BUILD_DIR
/usr/bin/python3 setup.py -q build_ext --inplace`, then run this with
PYTHONPATH=bindings/python)
polls one record at a time, spends 1 ms on each, and commits every 20
records. Each round kill -9s the group's coordinator (the leader of its
__sluice_group_state partition) while the consumer runs, then restarts
it and waits until every state partition's ISR is full again.

Per round: commit pause = time from the kill to the first commit() that
returns after it (the commit in flight at the kill, or the next one,
rides through: it finds the new coordinator and is sent again); poll gap
= the longest time between two records handed out by poll() in the
5 s after the kill (the killed node may also lead a data partition; its
new leader is found the same way). Also counted: exceptions raised by
poll() or commit() (want 0), records handed out twice (re-reads), and
whether a committed offset ever went backwards (checked with
committed() after each round). Cluster timings of the test harness
(session timeout 1.5 s, election 500 ms, heartbeat 50 ms); --defaults:
sluiced's own.

--auto-commit (session 13): the consumer commits with enable.auto.commit
(auto.commit.interval.ms 200) instead of commit(); at the end of each
round it is closed and a new one takes its place (same group), and the
records the new one hands out again are counted (records read twice).
The commit pause is then the time to the first auto-commit that
succeeded after the kill, from Consumer.auto_commit_failures() (the
count stops rising); it is not reported.

--join (session 13): each round a second consumer joins the group and
its coordinator replicates the join, holds its reply
(SLUICE_TEST_HOLD_JOIN_REPLY, the test hook of
broker/binary_stream_groups.c) and is killed with -9. Join pause = time
from the kill to the first record the joiner hands out (its subscribe()
returned and it owns a partition), and partition gap = the longest time
in the 15 s after the kill that one partition handed out no record to
either consumer (a member lost with the held reply keeps its partition
unread until its session timeout, 10 s, whichever consumer had it). The
joiner is closed at the end of the round. Records read twice are not
counted in this mode (a partition that moves is read again from its
last commit).
"""
import os
import sys
import tempfile
import threading
import time

build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
here = os.path.dirname(os.path.abspath(__file__))
os.environ["SLUICE_BIN_DIR"] = os.path.join(build, "bin")
sys.path.insert(0, os.path.join(here, "..", "tests", "cluster"))
sys.path.insert(0, os.path.join(here, "..", "tests", "harness"))
import cluster_harness  # noqa: E402
from test_cluster_failover import parse, same_everywhere  # noqa: E402
from test_cluster_failover import wait_all_up  # noqa: E402

import sluice  # noqa: E402

STATE = "__sluice_group_state"
ALL3 = [1, 2, 3]
GROUP = "sfo"
TOPIC = "sf"


def fnv1a32(s):
    h = 0x811C9DC5
    for ch in s.encode():
        h = ((h ^ ch) * 0x01000193) & 0xFFFFFFFF
    return h


def state_full(c, nodes):
    v = same_everywhere(c, STATE, nodes, 16)
    if not v:
        return None
    v = parse(v)
    return v if all(sorted(x[3]) == nodes and x[0] in nodes for x in v) \
        else None


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]


def run(kills, defaults, auto, join):
    records = 2000
    with tempfile.TemporaryDirectory() as tmp:
        hold = os.path.join(tmp, "hold-join")
        if join:
            os.environ["SLUICE_TEST_HOLD_JOIN_REPLY"] = hold
        c = cluster_harness.Cluster(tmp, n=3, extra=["--log-level", "warn"])
        if defaults:
            c.timings = {}
        c.start()
        try:
            wait_all_up(c, ALL3)
            c.cli(1, "topic", "create", TOPIC, "--partitions", "2",
                  "--replication-factor", "3")
            c.wait(lambda: same_everywhere(c, TOPIC, ALL3, 2), TOPIC)
            c.cli(1, "produce", TOPIC, "--acks", "durable",
                  input="".join("r-%d\n" % i for i in range(records)))
            bs = ",".join("%s:%d" % c.nodes[n].binary_addr for n in ALL3)
            cconf = dict(auto_offset_reset="earliest",
                         enable_auto_commit=auto)
            if auto:
                cconf["auto_commit_interval_ms"] = 200
            con = sluice.Consumer(bs, GROUP, **cconf)
            con.subscribe([TOPIC])
            lock = threading.Lock()
            st = {"stop": False, "polls": [], "commits": [], "errors": [],
                  "seen": set(), "again": 0, "con": con, "swap": False,
                  "afail": 0, "pt": []}

            def consume():
                n = 0
                while not st["stop"]:
                    if st["swap"]:
                        # --auto-commit: a new consumer takes over
                        old = st["con"]
                        f = getattr(old, "auto_commit_failures", None)
                        st["afail"] += f()[0] if f else 0
                        old.close()
                        st["con"] = sluice.Consumer(bs, GROUP, **cconf)
                        st["con"].subscribe([TOPIC])
                        st["swap"] = False
                    con = st["con"]
                    try:
                        m = con.poll(0.5)
                    except sluice.SluiceError as e:
                        st["errors"].append("poll: %s" % e)
                        continue
                    if m is None:
                        continue
                    t = time.monotonic()
                    with lock:
                        st["polls"].append(t)
                        st["pt"].append((t, m.partition))
                        k = (m.partition, m.offset)
                        st["again"] += k in st["seen"] and not join
                        st["seen"].add(k)
                    time.sleep(0.001)
                    n += 1
                    if n % 20 == 0 and not auto:
                        try:
                            con.commit()
                            with lock:
                                st["commits"].append(time.monotonic())
                        except sluice.SluiceError as e:
                            st["errors"].append("commit: %s" % e)

            def produce():
                pr = sluice.Producer(bs)
                i = records
                while not st["stop"]:
                    for _ in range(10):
                        try:
                            pr.send(TOPIC, b"r-%d" % i, partition=i % 2)
                        except sluice.SluiceError as e:
                            st["perrors"].append(str(e))
                        i += 1
                    time.sleep(0.02)
                pr.close()

            st["perrors"] = []
            th = threading.Thread(target=consume)
            th.start()
            tp = threading.Thread(target=produce)
            tp.start()
            pauses, gaps, last, joins, pgaps = [], [], {}, [], []
            backwards = 0
            try:
                for k in range(kills):
                    v = c.wait(lambda: state_full(c, ALL3), "full state ISRs",
                               timeout=120)
                    coord = v[fnv1a32(GROUP) % len(v)][0]
                    time.sleep(1.0)  # the consumer commits on the old one
                    if join:
                        jst = {}
                        seen0 = c.nodes[coord].log().count(
                            "test hook: join of member")

                        def joiner():
                            j = sluice.Consumer(bs, GROUP,
                                                auto_offset_reset="earliest",
                                                enable_auto_commit=False)
                            jst["con"] = j
                            try:
                                j.subscribe([TOPIC])
                                while not jst.get("stop") and \
                                        not st["stop"]:
                                    m = j.poll(0.2)
                                    if m is None:
                                        continue
                                    t = time.monotonic()
                                    jst.setdefault("first", t)
                                    with lock:
                                        st["pt"].append((t, m.partition))
                            except sluice.SluiceError as e:
                                st["errors"].append("join: %s" % e)
                                jst["first"] = None

                        open(hold, "w").close()
                        tj = threading.Thread(target=joiner)
                        tj.start()
                        c.nodes[coord].wait_log(
                            lambda t: t.count("test hook: join of member") >
                            seen0, "the held join", timeout=60)
                    t0 = time.monotonic()
                    c.kill9(coord)
                    if join:
                        time.sleep(15.0)  # the partition gap window
                        jst["stop"] = True
                        tj.join(120)
                        if jst.get("first"):
                            joins.append(jst["first"] - t0)
                        jst["con"].close()
                        with lock:
                            pg = 0.0
                            for part in (0, 1):
                                ts = [t0] + sorted(
                                    x for x, q in st["pt"]
                                    if q == part and t0 < x <= t0 + 15.0) + \
                                    [t0 + 15.0]
                                pg = max([pg] + [b - a for a, b in
                                                 zip(ts, ts[1:])])
                        pgaps.append(pg)
                        print("round %d: join pause %s s, partition gap "
                              "%.3f s" % (
                                  k + 1, "%.3f" % joins[-1]
                                  if jst.get("first") else "-", pg),
                              flush=True)
                    if auto:
                        pause = 0.0
                    else:
                        c.wait(lambda: any(x > t0 for x in st["commits"]),
                               "a commit after the kill", timeout=120)
                        with lock:
                            pause = min(x for x in st["commits"]
                                        if x > t0) - t0
                    time.sleep(5.0)  # the poll gap window
                    with lock:
                        ts = [t0] + [x for x in st["polls"]
                                     if t0 < x <= t0 + 5.0]
                    gap = max(b - a for a, b in zip(ts, ts[1:])) \
                        if len(ts) > 1 else 5.0
                    pauses.append(pause)
                    gaps.append(gap)
                    if auto:
                        st["swap"] = True  # a new consumer takes over
                    rest = [n for n in ALL3 if n != coord]
                    chk = sluice.Consumer(
                        ",".join("%s:%d" % c.nodes[n].binary_addr
                                 for n in rest), GROUP)
                    now = {p: chk.committed(TOPIC, p) for p in (0, 1)}
                    chk.close()
                    backwards += sum(now[p] < last.get(p, -1) for p in now)
                    last = now
                    print("round %d: coordinator %d killed: commit pause "
                          "%.3f s, longest poll gap %.3f s, committed %s" %
                          (k + 1, coord, pause, gap, now), flush=True)
                    c.restart(coord)
                    wait_all_up(c, ALL3)
            finally:
                st["stop"] = True
                th.join()
                tp.join()
                st["afail"] += st["con"].auto_commit_failures()[0] \
                    if hasattr(st["con"], "auto_commit_failures") else 0
                st["con"].close()
        finally:
            c.stop_all()
    print("stream failover (%s timings) kills=%d commit pause p50=%.3f s "
          "p99=%.3f s max=%.3f s | poll gap p50=%.3f s p99=%.3f s "
          "max=%.3f s | errors raised %d, records read twice %d, "
          "committed offsets gone backwards %d" % (
              "default" if defaults else "test-harness", len(pauses),
              pct(pauses, 0.5), pct(pauses, 0.99), max(pauses),
              pct(gaps, 0.5), pct(gaps, 0.99), max(gaps),
              len(st["errors"]), st["again"], backwards))
    if auto:
        print("  auto-commit: failed auto-commits counted %d (rounds end "
              "with a new consumer)" % st["afail"])
    if join:
        print("  join pause (kill -> joiner's first record) over %d joins: "
              "p50=%.3f s max=%.3f s%s" % (
                  len(joins), pct(joins, 0.5) if joins else -1,
                  max(joins) if joins else -1,
                  "" if len(joins) == kills else
                  ", %d joiner(s) never got a record" % (kills - len(joins))))
        print("  partition gap (longest time one partition was not read, "
              "15 s after the kill): p50=%.3f s max=%.3f s, rounds over "
              "5 s: %d of %d" % (pct(pgaps, 0.5), max(pgaps),
                                 sum(g > 5.0 for g in pgaps), len(pgaps)))
    for e in st["errors"][:5]:
        print("  raised:", e)


args = [a for a in sys.argv[2:] if not a.startswith("--")]
run(int(args[0]) if args else 10, "--defaults" in sys.argv,
    "--auto-commit" in sys.argv, "--join" in sys.argv)
