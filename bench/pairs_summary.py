#!/usr/bin/env python3
"""Median and worst run per mode of an alternating-pairs benchmark.

Input (a file): one line per run, the mode first, then key=value fields
(`sluice-bench stomp`'s last line plus broker_cpu_ticks=... load=...).
For each mode and each of out_msg_s and records_per_sec (`sluice-bench
produce|consume|queue`) (worst: the lowest), e2e_p99_ms and
broker_cpu_ticks (worst: the highest) present in its runs, prints the
median and the worst run.

    bench/pairs_summary.py RUNS_FILE
"""
import re
import statistics
import sys

KEYS = (("out_msg_s", min), ("records_per_sec", min), ("e2e_p99_ms", max),
        ("broker_cpu_ticks", max))


def main(path):
    runs = {}
    with open(path) as f:
        for line in f:
            if not line.split():
                continue
            kv = dict(re.findall(r"(\S+)=(\S+)", line))
            runs.setdefault(line.split()[0], []).append(kv)
    for mode, rs in runs.items():
        for k, worst in KEYS:
            v = [float(r[k]) for r in rs if k in r]
            if v:
                print("%-5s %-17s median %10.1f  worst %10.1f  (%d runs)" %
                      (mode, k, statistics.median(v), worst(v), len(v)))


if __name__ == "__main__":
    main(sys.argv[1])
