#!/usr/bin/env bash
# bench/idle_partitions.sh - what idle partitions hold (issue 20).
#
#   bench/idle_partitions.sh [BUILD_DIR] [PARTITIONS] [-- SLUICED ARGS...]
#
# One sluiced (BUILD_DIR, default build; --log-level info plus SLUICED
# ARGS) on a temporary data directory: one durable 100-byte record to each
# of PARTITIONS (default 10000, as topics of 10,000) partitions (sluice-bench
# produce --spread each), then a FETCH of each (sluice-bench consume), so
# every partition was written and read once. Then descriptors and RSS
# right after, and every second while the broker sits idle, up to IDLE_S
# (default 20) seconds: with partition-idle-unload-ms (e.g. -- 
# --partition-idle-unload-ms 2000 --maintenance-interval-ms 500) the
# partitions are unloaded once idle. Stops the broker by pid.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}; N=${2:-10000}
shift $(($# >= 2 ? 2 : $#)); [ "${1:-}" = "--" ] && shift
IDLE_S=${IDLE_S:-20}
. bench/sluiced.sh
sluiced_start "$B" idleparts --log-level info "$@"
stats() { echo "fds=$(ls /proc/$pid/fd | wc -l) rss_kib=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status) cpu_ms=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.0f", ($14 + $15) * 1000 / hz }' /proc/$pid/stat)"; }
per() { local t=$1; [ $((t * 10000)) -le "$N" ] && echo 10000 || echo $((N - (t - 1) * 10000)); }
echo "# $(date -u +%FT%TZ) uptime: $(uptime)"
echo "# $B partitions=$N args: $*"
echo "empty: $(stats)"
for t in $(seq $(((N + 9999) / 10000))); do
  "$B/bin/sluice-bench" produce -b 127.0.0.1:$bport --topic s$t -X request.timeout.ms=3600000 \
    --partitions "$(per "$t")" --records "$(per "$t")" --size 100 --acks durable --spread each >/dev/null
  "$B/bin/sluice-bench" consume -b 127.0.0.1:$bport --topic s$t \
    --partitions "$(per "$t")" --records "$(per "$t")" >/dev/null
done
echo "written and read: $(stats)"
for s in $(seq "$IDLE_S"); do sleep 1; echo "idle ${s}s: $(stats)"; done
