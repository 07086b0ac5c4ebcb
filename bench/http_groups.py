#!/usr/bin/env python3
"""What answering the HTTP API's group lists for the whole cluster costs
(issue 14, docs/cluster.md 6.4): GET /api/queues on one node of a 3-node
cluster, gathered from every node (the default), against the same node's
own list (?scope=node), in alternating pairs.

    python3 bench/http_groups.py BUILD_DIR [GROUPS] [PAIRS]

GROUPS queue groups (default 30) over one topic; PAIRS alternating pairs
(default 20). Prints the median and worst latency of each, and how many
groups each answer listed. Real nodes on loopback (tests/cluster's
harness)."""
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    ngroups = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    pairs = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    os.environ["SLUICE_BIN_DIR"] = os.path.join(build, "bin")
    import cluster_harness
    from test_cluster_stomp import create, ready

    with tempfile.TemporaryDirectory() as tmp:
        c = cluster_harness.Cluster(tmp, n=3)
        c.start()
        try:
            ldr = ready(c)
            create(c, ldr, "hb", 3)
            c.cli(ldr, "produce", "hb", "--acks", "durable",
                  input="".join("r%d\n" % i for i in range(300)))
            for i in range(ngroups):
                c.cli(1 + i % 3, "queue", "consume", "hb", "--group",
                      "g%03d" % i, "--count", "1")
            url = "http://%s:%d/api/queues" % c.nodes[1].http_addr

            def get(u):
                t0 = time.perf_counter()
                with urllib.request.urlopen(u, timeout=30) as r:
                    doc = json.loads(r.read())
                return (time.perf_counter() - t0) * 1000, len(doc["queues"])
            res = {"cluster": [], "node": []}
            seen = {}
            for _ in range(pairs):
                for k, u in (("cluster", url), ("node", url + "?scope=node")):
                    ms, n = get(u)
                    res[k].append(ms)
                    seen[k] = n
            for k, v in res.items():
                print("%-8s groups listed %3d  median %.2f ms  worst %.2f ms"
                      % (k, seen[k], statistics.median(v), max(v)))
        finally:
            c.stop_all()


if __name__ == "__main__":
    main()
