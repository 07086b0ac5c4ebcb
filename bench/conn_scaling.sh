#!/usr/bin/env bash
# bench/conn_scaling.sh - producer connections and idle connections
# (issue 20 item 4, issue 18's idle cost).
#
#   bench/conn_scaling.sh [BUILD_DIR] [ROUNDS]       (default build, 3)
#   env: CONNS ("1 4 16 64 256"), RECORDS (in total per run, 2000000),
#        SIZE (100), ACKS (durable), IDLE (idle connections, 10000)
#
# 1. Throughput: `sluice-bench produce --producers N` (N threads, one
#    libsluice producer and so one connection each; RECORDS in total, one
#    partition, libsluice's defaults) for each N, in rounds that run the
#    counts ascending, then descending, and so on, on one sluiced; the
#    broker's CPU (user+system, all threads, /proc/PID/stat) per record.
#    The client's CPU (/usr/bin/time) per record is printed beside it:
#    both share the machine's 2 cores.
# 2. Idle cost: IDLE connections opened and left idle, binary ones (no
#    handshake), then STOMP ones (CONNECT answered by CONNECTED, nothing
#    more), each on a fresh sluiced; the broker's RSS and descriptors
#    before and after, and its CPU over 5 s with them open.
#    bench/idle_conns.py does the connecting.
# Stops the broker by pid.
set -euo pipefail
cd "$(dirname "$0")/.."
B=$(pwd)/${1:-build}
ROUNDS=${2:-3}
CONNS=${CONNS:-"1 4 16 64 256"}
RECORDS=${RECORDS:-2000000}
SIZE=${SIZE:-100}
ACKS=${ACKS:-durable}
IDLE=${IDLE:-10000}
. bench/sluiced.sh
sluiced_start "$B" conns --max-connections $((IDLE + 1000))
out=$(mktemp)
trap 'rm -f "$out"; kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$d"' EXIT
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
echo "== producer connections (load: $(cut -d' ' -f1-3 /proc/loadavg))"
order=$CONNS
rev=$(echo "$CONNS" | tr ' ' '\n' | tac | tr '\n' ' ')
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then list=$order; else list=$rev; fi
  for n in $list; do
    t0=$(ticks)
    # the client's own CPU too (user+system of sluice-bench, in s)
    line=$( { /usr/bin/time -f "client_cpu_s=%U+%S" "$B/bin/sluice-bench" produce \
      -b "127.0.0.1:$bport" --topic "c$n-$r" --records "$RECORDS" --size "$SIZE" \
      --acks "$ACKS" --producers "$n"; } 2>&1 | tail -2 | tr '\n' ' ')
    t1=$(ticks)
    echo "conns=$n $line cpu_ticks=$((t1 - t0)) load=$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$out"
  done
done
python3 - "$out" "$RECORDS" <<'PY'
import os, re, statistics, sys
hz = os.sysconf("SC_CLK_TCK")
rows = {}
for line in open(sys.argv[1]):
    kv = dict(re.findall(r"(\S+)=(\S+)", line))
    rows.setdefault(int(kv["conns"]), []).append(
        (float(kv["records_per_sec"]),
         float(kv["cpu_ticks"]) / hz * 1e6 / float(sys.argv[2]),
         eval(kv["client_cpu_s"]) * 1e6 / float(sys.argv[2])))
best = max(statistics.median([x[0] for x in v]) for v in rows.values())
for n in sorted(rows):
    r = [x[0] for x in rows[n]]; u = [x[1] for x in rows[n]]
    cl = [x[2] for x in rows[n]]
    print("conns %4d  records/s median %10.0f worst %10.0f (%.2fx the best median) | broker CPU us/record median %.3f worst %.3f | client CPU us/record median %.3f (%d runs)"
          % (n, statistics.median(r), min(r), statistics.median(r) / best,
             statistics.median(u), max(u), statistics.median(cl), len(r)))
PY
kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$d"
echo "== $IDLE idle connections, each kind on a fresh sluiced (a broker that"
echo "   ran the workload above holds freed heap that would hide the cost)"
for kind in binary stomp; do
  (
    sluiced_start "$B" idle --max-connections $((IDLE + 1000))
    python3 bench/idle_conns.py "$pid" "$bport" "$sport" "$IDLE" "$kind"
  )
done
