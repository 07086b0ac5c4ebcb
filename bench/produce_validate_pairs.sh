#!/usr/bin/env bash
# bench/produce_validate_pairs.sh: alternating before/after pairs of
# produce throughput (issue 18, produce-time record validation), see
# docs/benchmarks.md. BEFORE and AFTER are build directories (with bin/).
set -u
BEFORE=${BEFORE:-/tmp/sh-before/build}
AFTER=${AFTER:-build}
BENCH=${BENCH:-$AFTER/bin/sluice-bench}
run() { # build name args...
  local b=$1 name=$2; shift 2
  d=$(mktemp -d /tmp/sh-bench.XXXXXX)
  "$b/bin/sluiced" --listen 127.0.0.1:0 --stomp-listen 127.0.0.1:0 --data "$d/data" --log-level warn >"$d/ready" 2>"$d/log" &
  local pid=$!
  for _ in $(seq 100); do grep -q '^sluiced ready' "$d/ready" && break; sleep 0.1; done
  local port=$(sed -nE 's/.*binary=127\.0\.0\.1:([0-9]+).*/\1/p' "$d/ready")
  local out=$($BENCH produce -b 127.0.0.1:$port "$@" 2>&1 | grep -oE "records_per_sec=[0-9]+|mb_per_sec=[0-9.]+|p99=[0-9.]+" | tr '\n' ' ')
  echo "$name $* :: $out"
  kill $pid; wait $pid 2>/dev/null; rm -rf "$d"
}
for i in 1 2 3; do
  for args in "--records 300000 --size 100 --acks written" "--records 300000 --size 100 --acks written --compression zstd"; do
    run "$BEFORE" before $args
    run "$AFTER" after $args
  done
done
