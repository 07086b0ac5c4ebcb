#!/usr/bin/env bash
# bench/queue_defaults.sh [BUILD] [ROUNDS] - the queue group with default settings
# against --credits 8192 (issue 20, item 3): N (2,000,000) records per run,
# 4 partitions, 4 consumers, ROUNDS (5) rounds alternating the order.
set -euo pipefail
B=${1:-build}; ROUNDS=${2:-5}; N=${N:-2000000}
cd "$(dirname "$0")/.."
. bench/sluiced.sh
sluiced_start "$B" qbench
BR=127.0.0.1:$bport
echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD) uptime:$(uptime)"
"$B/bin/sluice-bench" produce -b $BR --topic q4 --partitions 4 --records $((N*ROUNDS*2)) --acks written | tail -1
tck=$(getconf CLK_TCK)
for r in $(seq "$ROUNDS"); do
  if [ $((r%2)) = 1 ]; then order="default c8192"; else order="c8192 default"; fi
  for v in $order; do
    args=(); [ $v = c8192 ] && args=(--credits 8192)
    c0=$(awk '{print $14+$15}' /proc/$pid/stat)
    out=$("$B/bin/sluice-bench" queue -b $BR --topic q4 --records $N --consumers 4 "${args[@]}" | tail -1)
    c1=$(awk '{print $14+$15}' /proc/$pid/stat)
    echo "round $r $v: $out | broker CPU $(( (c1-c0)*1000/tck )) ms"
  done
done
echo "# uptime after: $(uptime)"
