#!/usr/bin/env bash
# bench/replay_restart.sh - restart after a kill -9 in the middle of
# durable produce spread over many partitions: the journal's replay
# (storage/journal.c) and the recovery of every partition left unclean.
#
#   bench/replay_restart.sh [BUILD_DIR] [RECORDS] [PARTITIONS] [-- SLUICED ARGS...]
#
# Starts BUILD_DIR/bin/sluiced (default build) on a temporary data
# directory (bench/sluiced.sh), produces RECORDS (default 1300000) durable
# 100-byte records with `sluice-bench produce --spread each` over a topic
# of PARTITIONS (default 10000), kills the broker with -9 right after the
# last acknowledgment, and starts it again on the same data directory:
# prints the journal's size at the kill, the time from the start to the
# ready line, and the broker's own replay and topic lines. DROP=1 syncs
# and drops the page cache before the second start (as after a reboot;
# needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}; recs=${2:-1300000}; N=${3:-10000}
shift $(($# < 3 ? $# : 3))
[ "${1:-}" = "--" ] && shift
. bench/sluiced.sh
sluiced_start "$B" replay "$@"
X="-X request.timeout.ms=3600000"
"$B/bin/sluice-bench" produce -b 127.0.0.1:$bport --topic many --partitions "$N" \
  --spread each $X --records "$recs" --size 100 --acks durable 2>&1 | grep -oE "records_per_sec=[0-9]+"
kill -9 $pid; wait $pid 2>/dev/null || true
echo "journal at the kill: $(du -sm "$d/data/journal" | cut -f1) MiB in $(ls "$d/data/journal" | wc -l) file(s)"
if [ "${DROP:-0}" = 1 ]; then sync; echo 3 >/proc/sys/vm/drop_caches; fi
t0=$(date +%s.%N)
"$B/bin/sluiced" --listen 127.0.0.1:0 --stomp-listen 127.0.0.1:0 --data "$d/data" \
  --log-level info "$@" >"$d/ready" 2>"$d/log2" &
pid=$!
until grep -q '^sluiced ready' "$d/ready"; do
  kill -0 $pid 2>/dev/null || { tail "$d/log2"; exit 1; }
  sleep 0.02
done
t1=$(date +%s.%N)
echo "start after kill -9: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", (b - a) * 1000 }') ms, $(wc -l <"$d/log2") log lines"
grep -E "journal.*replayed|topic.*opened|loaded topic" "$d/log2" | sed 's/^/  /' | head -5
