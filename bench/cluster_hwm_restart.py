#!/usr/bin/env python3
"""bench/cluster_hwm_restart.py BUILD_DIR [MIB] [PAIRS] [--traffic KIBPS]
- what a follower
restarted after kill -9 spends checking its log against its leader
(issue 14, docs/cluster.md 3.2), without and with the high-water mark
checkpoint.

Each run: a 3-node cluster (the test harness's timings), topic `hwb`
(1 partition, RF 3, the default segment-bytes of 1 GiB, so everything is
in the active segment) filled with MIB MiB (default 64) in batches of 16
records of 16 KiB, acks=durable. A follower is killed -9 once every
replica holds it all (and, with the checkpoint, once its file names that
end), 20 more records (acks=written) go to the leader meanwhile, and the
follower is started again. Measured on the restarted follower: the range
it checks, the bytes it compares and the time that takes (its own log
lines), and the time from its "sluiced started" line to the leader's
"follower N caught up: joins the in-sync set" (log timestamps).

--traffic KIBPS: after the fill, a producer writes KIBPS KiB/s (batches
of 4 records of 4 KiB, acks=written) to the leader for 4 s, and the
follower is killed -9 3 s into it: its log then ends past its last
checkpoint (written every 5 s), as after a crash under load.

"before" runs with --replica-hwm-checkpoint-ms 0 (no file written or
read: the behaviour before the checkpoint), "after" with the default
(5000). PAIRS (default 3) alternating before/after pairs; prints each run
and the medians and worst of each side.
"""
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "cluster"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "harness"))

ARGS = sys.argv[1:]
TRAFFIC = 0
if "--traffic" in ARGS:
    i = ARGS.index("--traffic")
    TRAFFIC = int(ARGS[i + 1])
    del ARGS[i:i + 2]
BUILD = os.path.abspath(ARGS[0] if len(ARGS) > 0 else "build")
MIB = int(ARGS[1]) if len(ARGS) > 1 else 64
PAIRS = int(ARGS[2]) if len(ARGS) > 2 else 3
os.environ["SLUICE_BIN_DIR"] = os.path.join(BUILD, "bin")

import cluster_harness  # noqa: E402
import sluice_wire as sw  # noqa: E402
from test_cluster_durable import isr_of, leader_of  # noqa: E402
from test_cluster_failover import wait_all_up  # noqa: E402

ALL3 = [1, 2, 3]
TOPIC = "hwb"
REC = 16 * 1024
PER_BATCH = 16


def ts(line):
    return datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f").timestamp()


def produce(c, nid, values, acks):
    with sw.Client(c.nodes[nid].binary_addr, timeout=60) as w:
        w.handshake()
        r = sw.decode_produce(w.call(sw.API_PRODUCE, sw.produce_body(
            acks, {TOPIC: {0: sw.encode_batch(values)}},
            timeout_ms=30000)))[(TOPIC, 0)]
    assert r["error"] == 0, r
    return r["base_offset"]


def ckpt_mark(c, nid):
    try:
        with open(os.path.join(c.nodes[nid].data_dir,
                               "replication-offset-checkpoint")) as f:
            for ln in f.read().splitlines()[2:-1]:
                t, p, h = ln.split()
                if (t, p) == (TOPIC, "0"):
                    return int(h)
    except OSError:
        pass
    return None


def one_run(ckpt_ms):
    tmp = tempfile.mkdtemp(prefix="hwmbench-")
    c = cluster_harness.Cluster(
        tmp, n=3, extra=["--replica-hwm-checkpoint-ms", str(ckpt_ms)])
    try:
        c.start()
        wait_all_up(c, ALL3)
        c.cli(1, "topic", "create", TOPIC, "--partitions", "1",
              "--replication-factor", "3")
        ldr = c.wait(lambda: leader_of(c, TOPIC, ALL3), "a leader", 60)
        val = os.urandom(REC)
        nb = MIB * 1024 * 1024 // (REC * PER_BATCH)
        with sw.Client(c.nodes[ldr].binary_addr, timeout=60) as w:
            w.handshake()
            for i in range(nb):
                r = sw.decode_produce(w.call(sw.API_PRODUCE, sw.produce_body(
                    sw.ACKS_DURABLE, {TOPIC: {0: sw.encode_batch(
                        [val] * PER_BATCH)}})))[(TOPIC, 0)]
                assert r["error"] == 0, r
        end = nb * PER_BATCH
        fol = next(n for n in ALL3 if n != ldr)
        c.wait(lambda: all(c.ends(n, TOPIC) == [end] for n in ALL3),
               "every node at %d" % end, 120)
        if ckpt_ms:
            c.wait(lambda: ckpt_mark(c, fol) == end,
                   "node %d's checkpoint at %d" % (fol, end), 60)
        extra = 0
        if TRAFFIC:
            stop = threading.Event()
            sent = [0]

            def traffic():
                rec = os.urandom(4096)
                t0 = time.monotonic()
                with sw.Client(c.nodes[ldr].binary_addr, timeout=60) as w:
                    w.handshake()
                    while not stop.is_set():
                        if sent[0] * 4 * 4 > TRAFFIC * (time.monotonic() - t0):
                            time.sleep(0.005)  # the producer's pace
                            continue
                        r = sw.decode_produce(w.call(
                            sw.API_PRODUCE, sw.produce_body(
                                sw.ACKS_WRITTEN, {TOPIC: {0: sw.encode_batch(
                                    [rec] * 4)}})))[(TOPIC, 0)]
                        assert r["error"] == 0, r
                        sent[0] += 1
            th = threading.Thread(target=traffic)
            th.start()
            time.sleep(3.0)  # the load's duration before the crash
            c.kill9(fol)
            time.sleep(1.0)
            stop.set()
            th.join()
            extra = sent[0] * 4
        else:
            c.kill9(fol)
        for i in range(20):
            produce(c, ldr, [b"t%d" % i], sw.ACKS_WRITTEN)
        end += extra
        # out of the ISR first, so that its return is logged by the leader
        c.wait(lambda: fol not in (isr_of(c, ldr, TOPIC) or [fol]),
               "node %d out of the ISR" % fol, 60)
        lead_log0 = len(c.nodes[ldr].log())
        c.restart(fol)
        flog = c.nodes[fol].log()
        started = [ln for ln in flog.splitlines()
                   if "INFO server sluiced started" in ln][-1]
        pat = re.compile(r"%s/0: follower %d caught up: joins the in-sync set"
                         % (TOPIC, fol))
        joined = c.wait(lambda: [ln for ln in c.nodes[ldr].log()[lead_log0:]
                                 .splitlines() if pat.search(ln)],
                        "node %d back in the ISR" % fol, 120)[0]
        c.wait(lambda: c.ends(fol, TOPIC) == [end + 20], "caught up", 60)
        flog = c.nodes[fol].log()
        chk = re.findall(r"%s/0: log \[(\d+), (\d+)\) checked against leader "
                         r"\d+ \(epoch \d+\): (\d+) bytes compared in (\d+) ms"
                         % TOPIC, flog)
        frm = re.findall(r"%s/0: checking log \[\d+, \d+\) against leader \d+ "
                         r"\(epoch \d+\) from ([a-z' -]+)" % TOPIC, flog)
        rng = "[%s, %s)" % chk[-1][:2] if chk else "none"
        nbytes = int(chk[-1][2]) if chk else 0
        ms = int(chk[-1][3]) if chk else 0
        return {"range": rng, "bytes": nbytes, "check_ms": ms,
                "from": frm[-1] if frm else "-",
                "isr_ms": int((ts(joined) - ts(started)) * 1000),
                "end": end}
    finally:
        c.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    runs = {"before": [], "after": []}
    print("MIB=%d PAIRS=%d TRAFFIC=%d KiB/s load: %s"
          % (MIB, PAIRS, TRAFFIC, os.getloadavg()))
    for i in range(PAIRS):
        for side, ms in (("before", 0), ("after", 5000)):
            t0 = time.monotonic()
            r = one_run(ms)
            runs[side].append(r)
            print("pair %d %-6s check %-14s %10d bytes %6d ms (from %s); "
                  "back in ISR %6d ms after start  [run %.0f s]"
                  % (i + 1, side, r["range"], r["bytes"], r["check_ms"],
                     r["from"], r["isr_ms"], time.monotonic() - t0),
                  flush=True)
    for side in ("before", "after"):
        rs = runs[side]
        print("%-6s median: %d bytes compared, check %d ms, back in ISR %d "
              "ms; worst: %d bytes, %d ms, %d ms"
              % (side, statistics.median(r["bytes"] for r in rs),
                 statistics.median(r["check_ms"] for r in rs),
                 statistics.median(r["isr_ms"] for r in rs),
                 max(r["bytes"] for r in rs), max(r["check_ms"] for r in rs),
                 max(r["isr_ms"] for r in rs)))
    print("load: %s" % (os.getloadavg(),))


if __name__ == "__main__":
    main()
