#!/usr/bin/env bash
# bench/idempotence_pairs.sh: durable produce throughput with the
# idempotent producer off and on (issue 13), in alternating pairs on one
# build, each run on a fresh broker and data directory; prints every run,
# then the median and the worst of each side. See docs/benchmarks.md.
#   BUILD=build ROUNDS=5 bench/idempotence_pairs.sh [sluice-bench args...]
# Default workload: 400,000 records of 100 B, acks=durable, 1 producer,
# 1 partition (extra args are added to both sides).
set -u
BUILD=${BUILD:-build}
ROUNDS=${ROUNDS:-5}
ARGS=${*:---records 400000 --size 100 --acks durable}
run() { # name idempotence
  local d port pid out
  d=$(mktemp -d /tmp/sl-idem-bench.XXXXXX)
  "$BUILD/bin/sluiced" --listen 127.0.0.1:0 --stomp-listen 127.0.0.1:0 \
    --http-listen 127.0.0.1:0 --data "$d/data" --log-level warn \
    >"$d/ready" 2>"$d/log" &
  pid=$!
  for _ in $(seq 200); do grep -q '^sluiced ready' "$d/ready" && break; sleep 0.1; done
  port=$(sed -nE 's/.*binary=127\.0\.0\.1:([0-9]+).*/\1/p' "$d/ready")
  out=$("$BUILD/bin/sluice-bench" produce -b "127.0.0.1:$port" $ARGS \
        -X "enable.idempotence=$2" 2>&1 |
        grep -oE "records_per_sec=[0-9]+" | head -1 | cut -d= -f2)
  echo "$1 $out"
  kill "$pid"; wait "$pid" 2>/dev/null; rm -rf "$d"
}
res=$(mktemp)
for _ in $(seq "$ROUNDS"); do
  run off false | tee -a "$res"
  run on true | tee -a "$res"
done
for side in off on; do
  grep "^$side " "$res" | awk '{print $2}' | sort -n | awk -v s="$side" '
    { v[NR] = $1 } END {
      m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "%s: median %d records/s, worst %d, runs %d\n", s, m, v[1], NR }'
done
rm -f "$res"
