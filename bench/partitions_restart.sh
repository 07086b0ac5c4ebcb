#!/usr/bin/env bash
# bench/partitions_restart.sh - restart cost with many partitions (issue 20).
#
#   bench/partitions_restart.sh [BUILD_DIR] [PARTITIONS]
#
# One sluiced (BUILD_DIR, default build) on a temporary data directory:
# creates PARTITIONS (default 100000) partitions as topics of 10,000 with
# one durable 100-byte record each (sluice-bench produce --spread each),
# then SIGTERM and start, twice (the second clean stop finds nothing
# loaded), then kill -9 and start, twice: with nothing written before the
# kill, then with one record written to each of WRITTEN (default 1000)
# partitions. Prints the wall time of each step and,
# after each start, descriptors, RSS and the CPU sluiced used so far
# (user+sys), plus the broker's own "opened N topic(s)" line. Stops it by
# pid. bench/many_partitions.sh --scale does the same with FETCHes of
# every partition in between.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}; N=${2:-100000}
d=$(mktemp -d /tmp/sluice-restart.XXXXXX); pid=
trap 'if [ -n "$pid" ]; then kill -9 $pid 2>/dev/null || true; fi; rm -rf "$d"' EXIT
now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }
start() {
  : >"$d/ready"; local t0; t0=$(now)
  "$B/bin/sluiced" --listen 127.0.0.1:0 --stomp-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \
    --data "$d/data" --log-level info >"$d/ready" 2>>"$d/log" &
  pid=$!
  until grep -q '^sluiced ready' "$d/ready"; do kill -0 $pid 2>/dev/null || { tail "$d/log"; exit 1; }; sleep 0.01; done
  start_ms=$(ms "$t0" "$(now)")
  bport=$(sed -nE 's/.*binary=127\.0\.0\.1:([0-9]+).*/\1/p' "$d/ready")
}
stats() { echo "fds=$(ls /proc/$pid/fd | wc -l) rss_kib=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status) cpu_ms=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.0f", ($14 + $15) * 1000 / hz }' /proc/$pid/stat)"; }
per() { local t=$1; [ $((t * 10000)) -le "$N" ] && echo 10000 || echo $((N - (t - 1) * 10000)); }
echo "# $(date -u +%FT%TZ) uptime: $(uptime)"
echo "# $B partitions=$N"
start; echo "first start: $start_ms ms $(stats)"
t0=$(now)
for t in $(seq $(((N + 9999) / 10000))); do
  "$B/bin/sluice-bench" produce -b 127.0.0.1:$bport --topic s$t -X request.timeout.ms=3600000 \
    --partitions "$(per $t)" --records "$(per $t)" --size 100 --acks durable --spread each >/dev/null
done
echo "create+produce: $(ms "$t0" "$(now)") ms $(stats)"
for r in 1 2; do
  t0=$(now); kill -TERM $pid; wait $pid || true; echo "clean stop: $(ms "$t0" "$(now)") ms"
  start; echo "start after clean stop: $start_ms ms $(stats)"
  grep 'opened .* topic' "$d/log" | tail -1
done
# crashes (issue 20: a start after a crash recovers only the partitions
# the crashed run changed): one with nothing written since the start,
# one after a durable record to each of WRITTEN (default 1000)
# partitions of the first topic
kill -9 $pid; wait $pid 2>/dev/null || true
start; echo "start after kill -9, nothing written before it: $start_ms ms $(stats)"
grep 'opened .* topic' "$d/log" | tail -1
W=${WRITTEN:-1000}
"$B/bin/sluice-bench" produce -b 127.0.0.1:$bport --topic s1 -X request.timeout.ms=3600000 \
  --partitions "$(per 1)" --records "$W" --size 100 --acks durable --spread each >/dev/null
kill -9 $pid; wait $pid 2>/dev/null || true
start; echo "start after kill -9, $W partitions written before it: $start_ms ms $(stats)"
grep 'opened .* topic' "$d/log" | tail -1
kill -TERM $pid; wait $pid || true; pid=
echo "# uptime after: $(uptime)"
