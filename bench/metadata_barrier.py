#!/usr/bin/env python3
"""What a read barrier costs (docs/cluster.md 2.7): METADATA latency on
the metadata leader and on a follower of a 3-node cluster, one request at
a time and in pipelined bursts, for one or more builds, alternating.

    python3 bench/metadata_barrier.py BUILD [BUILD...] [--pairs N]
        [--requests N] [--burst N] [--api metadata|admin]

--api admin sends the ADMIN verb `topic` (what `sluice topic describe`,
Admin.topic() and sluice_admin_describe_topic ask first) instead of
METADATA: admin reads wait for a read barrier on a follower, METADATA
does not.

Each run starts 3 nodes with sluiced's default timings (no test hooks),
creates one topic, then on one connection per node sends --requests
METADATA requests for that topic one after the other (latency), and
then --burst requests pipelined (requests/s). Prints one line per run
and node role; builds alternate within each pair."""
import argparse
import os
import statistics
import struct
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "cluster"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "harness"))
import cluster_harness  # noqa: E402
import sluice_wire  # noqa: E402

API_ADMIN = 29


def admin_body(verb, **args):
    return (sluice_wire.str16(verb) + struct.pack("<I", len(args)) +
            b"".join(sluice_wire.str16(k) + sluice_wire.str16(v)
                     for k, v in args.items()))


def one_run(build, requests, burst, api="metadata"):
    os.environ["SLUICE_BIN_DIR"] = os.path.join(os.path.abspath(build), "bin")
    tmp = tempfile.mkdtemp(prefix="mdbar-")
    c = cluster_harness.Cluster(tmp, n=3)
    c.timings = {}
    c.start()
    try:
        ldr = c.wait(lambda: c.agreed_leader([1, 2, 3]), "a leader")
        c.wait(lambda: all(v == "up" for v in
                           (c.status(ldr) or {"nodes": {0: 0}})["nodes"]
                           .values()) and
               len(c.status(ldr)["nodes"]) == 3, "3 nodes up")
        c.wait(lambda: c.cli(ldr, "topic", "create", "mb", "--partitions",
                             "3", check=False).returncode == 0 or
               c.describe(ldr, "mb"), "the topic created")
        c.wait(lambda: all(c.describe(n, "mb") for n in (1, 2, 3)),
               "the topic everywhere")
        fol = [n for n in (1, 2, 3) if n != ldr][0]
        out = {}
        if api == "admin":
            key, body = API_ADMIN, admin_body("topic", topic="mb")
        else:
            key, body = sluice_wire.API_METADATA, sluice_wire.metadata_body(
                ["mb"])
        for role, nid in (("leader", ldr), ("follower", fol)):
            with sluice_wire.Client(c.nodes[nid].binary_addr) as w:
                w.handshake()
                for _ in range(20):  # warm up
                    w.call(key, body)
                lat = []
                for _ in range(requests):
                    t0 = time.perf_counter()
                    w.call(key, body)
                    lat.append((time.perf_counter() - t0) * 1e6)
                t0 = time.perf_counter()
                for _ in range(burst):
                    w.send(key, body)
                for _ in range(burst):
                    w.recv()
                rate = burst / (time.perf_counter() - t0)
            lat.sort()
            out[role] = (statistics.median(lat),
                         lat[int(len(lat) * 0.99) - 1], rate)
        return out
    finally:
        c.stop_all()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("builds", nargs="+")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--burst", type=int, default=2000)
    ap.add_argument("--api", choices=("metadata", "admin"),
                    default="metadata")
    a = ap.parse_args()
    print("load %s" % open("/proc/loadavg").read().split()[:3])
    for p in range(a.pairs):
        for b in a.builds:
            r = one_run(b, a.requests, a.burst, a.api)
            for role in ("leader", "follower"):
                med, p99, rate = r[role]
                print("pair %d build %s %-8s %s p50 %7.1f us p99 "
                      "%7.1f us, pipelined %8.0f req/s" %
                      (p, b, role, a.api.upper(), med, p99, rate),
                      flush=True)
    print("load %s" % open("/proc/loadavg").read().split()[:3])


if __name__ == "__main__":
    main()
