#!/usr/bin/env bash
# bench/stomp_beside_flood.sh - a STOMP producer and consumer next to a
# binary producer flooding the same broker: does the STOMP session still
# get served (docs/broker.md, "Event priorities")?
#
#   bench/stomp_beside_flood.sh BUILD_DIR [FLOOD_PRODUCERS]
#
# Starts BUILD_DIR/bin/sluiced on loopback port 0 with a temporary data
# directory, starts `sluice-bench produce` (20 M records of 100 B, acks
# written, FLOOD_PRODUCERS connections, default 1) against its binary
# port, and a second later `sluice-bench stomp` (1 producer, 1 consumer,
# 5000 persistent messages, a receipt every 100, client-individual acks).
# Prints the STOMP result line (its elapsed_s and e2e p99 show any wait)
# and the flood's rate. Stops everything it started by pid.
set -euo pipefail
[ $# -ge 1 ] || { sed -n 2,14p "$0" >&2; exit 2; }
B=$1; n=${2:-1}
case $B in /*) ;; *) B=$(cd "$(dirname "$0")/.." && pwd)/$B ;; esac
. "$(dirname "$0")/sluiced.sh"
sluiced_start "$B" flood
"$B/bin/sluice-bench" produce -b "127.0.0.1:$bport" --topic flood \
  --records 20000000 --size 100 --acks written --producers "$n" \
  >"$d/flood" 2>&1 &
fp=$!
extra_pids=$fp
sleep 1 # let the flood get going: this is a benchmark, not a test
"$B/bin/sluice-bench" stomp --port "$sport" --dest /queue/beside \
  --producers 1 --consumers 1 --count 5000 --persistent \
  --receipt-every 100 --ack client-individual 2>&1 | tail -1
wait $fp || true
extra_pids=
grep -o 'secs=[0-9.]* records_per_sec=[0-9]*' "$d/flood" || cat "$d/flood"
