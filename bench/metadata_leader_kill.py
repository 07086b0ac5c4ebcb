#!/usr/bin/env python3
"""A read right after the metadata leader died (docs/cluster.md 2.7):
3 nodes with sluiced's default timings (no test hooks); a topic is
created through the metadata leader, the leader is killed with -9 at
once, and `sluice topic describe` runs through a follower. Prints
whether the topic was seen and how long the describe took, per round
and build (builds alternate within a round).

    python3 bench/metadata_leader_kill.py BUILD [BUILD...] [--rounds N]
"""
import argparse
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "cluster"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "harness"))
import cluster_harness  # noqa: E402


def one(build):
    os.environ["SLUICE_BIN_DIR"] = os.path.join(os.path.abspath(build), "bin")
    c = cluster_harness.Cluster(tempfile.mkdtemp(prefix="mdkill-"), n=3)
    c.timings = {}
    c.start()
    try:
        ldr = c.wait(lambda: c.agreed_leader([1, 2, 3]), "a leader")
        c.wait(lambda: all(len((c.status(n) or {"nodes": {}})["nodes"]) == 3
                           for n in (1, 2, 3)), "3 nodes registered")
        fol = [n for n in (1, 2, 3) if n != ldr][0]
        c.wait(lambda: c.cli(fol, "topic", "create", "warm",
                             check=False).returncode == 0, "a first topic")
        c.cli(ldr, "topic", "create", "k", "--partitions", "2")
        c.kill9(ldr)
        t0 = time.monotonic()
        p = c.cli(fol, "topic", "describe", "k", check=False)
        ms = (time.monotonic() - t0) * 1000
        return "partitions 2" in p.stdout, ms, c.tmpdir
    finally:
        c.stop_all()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("builds", nargs="+")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    print("load %s" % open("/proc/loadavg").read().split()[:3])
    for r in range(a.rounds):
        for b in a.builds:
            seen, ms, tmp = one(b)
            print("round %d build %s: %s after %.0f ms%s" %
                  (r, b, "seen" if seen else "MISSED", ms,
                   "" if seen else " (logs in %s)" % tmp), flush=True)
    print("load %s" % open("/proc/loadavg").read().split()[:3])


if __name__ == "__main__":
    main()
