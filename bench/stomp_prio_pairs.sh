#!/usr/bin/env bash
# bench/stomp_prio_pairs.sh - what a queue's max_priority costs (issue 19):
# the same STOMP workload on a queue without and with max_priority=9, on
# one sluiced, in alternating pairs. The bench sends no priority header
# (every record counts as 4), so the runs measure the mechanism itself:
# the look-ahead read and the scan and sort of each delivery pass
# (groups/queue_deliver.c, deliver_prio); the order is the log's in both.
#
#   bench/stomp_prio_pairs.sh [BUILD_DIR] [PAIRS]      (default build, 4)
#   env: ARGS (the sluice-bench workload; default 1p1c, 100 B, persistent,
#        a receipt every 100 sends with 4 outstanding, client-individual
#        acks, 100000 messages)
#
# Prints per run: the mode, the bench's result line and the broker's CPU
# ticks (user+system) during it; then medians and the worst run per mode.
set -euo pipefail
cd "$(dirname "$0")/.."
B=$(pwd)/${1:-build}
PAIRS=${2:-4}
ARGS=${ARGS:-"--producers 1 --consumers 1 --size 100 --count 100000 \
--persistent --receipt-every 100 --window 4 --ack client-individual"}
. bench/sluiced.sh
sluiced_start "$B" prio
cli() { "$B/bin/sluice" -b "127.0.0.1:$bport" "$@"; }
out=$(mktemp)
trap 'rm -f "$out"; kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$d"' EXIT
n=0
run() { # plain|prio
  local q t0 t1 line
  n=$((n + 1))
  q=p$n
  cli topic create "$q" >/dev/null
  # the group made here in both modes (key_ordered as STOMP makes it)
  cli group config "$q" --topic "$q" key_ordered=1 \
    max_priority=$([ "$1" = prio ] && echo 9 || echo 0) >/dev/null
  t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  # shellcheck disable=SC2086
  line=$("$B/bin/sluice-bench" stomp --port "$sport" --dest "/queue/$q" \
    $ARGS 2>&1 | tail -1)
  t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  echo "$1 $line broker_cpu_ticks=$((t1 - t0)) load=$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$out"
}
for i in $(seq "$PAIRS"); do
  if [ $((i % 2)) = 1 ]; then run plain; run prio; else run prio; run plain; fi
done
python3 bench/pairs_summary.py "$out"
