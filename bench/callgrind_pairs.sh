#!/usr/bin/env bash
# bench/callgrind_pairs.sh - the broker's instruction count (callgrind's
# Ir, start to stop) for one STOMP workload, two builds in alternating
# pairs: a figure the machine's load does not move, where throughput on a
# shared machine swings by +-40% (this VM has no hardware counters for
# `perf stat -e instructions`). Needs valgrind.
#
#   BEFORE=/tmp/before/build bench/callgrind_pairs.sh [AFTER_DIR] [PAIRS]
#                                        (default build, 3 pairs)
#   env: WORKLOADS (default "queue topic"; "none" = start and stop only),
#        COUNT (messages, default 20000)
#
# Each run: BUILD/bin/sluiced under valgrind --tool=callgrind on loopback
# port 0, then AFTER's `sluice-bench stomp` (1 producer, 1 consumer,
# 100-byte persistent messages, a receipt every 100 sends, window 4;
# queue: /queue/b with client-individual acks, topic: /topic/b), then
# SIGTERM. Prints "mode workload Ir=N" per run, then the median, lowest
# and highest per mode and workload. Stops every broker by pid.
set -euo pipefail
cd "$(dirname "$0")/.."
AFTER=$(pwd)/${1:-build}
PAIRS=${2:-3}
BEFORE=${BEFORE:?set BEFORE to the build directory to compare against}
WORKLOADS=${WORKLOADS:-queue topic}
COUNT=${COUNT:-20000}
BENCH=$AFTER/bin/sluice-bench
out=$(mktemp /tmp/callgrind-pairs.XXXXXX)
pid=
d=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; [ -n "$d" ] && rm -rf "$d"; true' EXIT

run() { # build-dir mode workload
  local b=$1 mode=$2 w=$3 sport ir dest
  d=$(mktemp -d "/tmp/sluice-cg-$mode.XXXXXX")
  valgrind --tool=callgrind --callgrind-out-file="$d/cg.out" \
    "$b/bin/sluiced" --listen 127.0.0.1:0 --stomp-listen 127.0.0.1:0 \
    --data "$d/data" --log-level warn >"$d/ready" 2>"$d/log" &
  pid=$!
  for _ in $(seq 600); do
    grep -q '^sluiced ready' "$d/ready" 2>/dev/null && break
    sleep 0.1
  done
  sport=$(sed -nE 's/.*stomp=127\.0\.0\.1:([0-9]+).*/\1/p' "$d/ready")
  case $w in
  queue) dest=(--dest /queue/b --ack client-individual) ;;
  topic) dest=(--dest /topic/b) ;;
  *) dest=() ;;
  esac
  if [ ${#dest[@]} -gt 0 ]; then
    "$BENCH" stomp --port "$sport" "${dest[@]}" --producers 1 --consumers 1 \
      --size 100 --count "$COUNT" --persistent --receipt-every 100 \
      --window 4 >/dev/null
  fi
  kill -TERM "$pid"
  wait "$pid" || true
  pid=
  ir=$(grep -m1 '^summary:' "$d/cg.out" | awk '{print $2}')
  echo "$mode $w Ir=$ir" | tee -a "$out"
  rm -rf "$d"
  d=
}

for i in $(seq "$PAIRS"); do
  for w in $WORKLOADS; do
    if [ $((i % 2)) = 1 ]; then
      run "$BEFORE" before "$w"; run "$AFTER" after "$w"
    else
      run "$AFTER" after "$w"; run "$BEFORE" before "$w"
    fi
  done
done
python3 - "$out" <<'EOF'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    m = re.match(r'(\S+) (\S+) Ir=(\d+)', line)
    if m:
        runs.setdefault((m[2], m[1]), []).append(int(m[3]))
for (w, mode), v in sorted(runs.items()):
    print(f"{mode}:{w} Ir median {statistics.median(v):,.0f} "
          f"lowest {min(v):,} highest {max(v):,} ({len(v)} runs)")
EOF
rm -f "$out"
