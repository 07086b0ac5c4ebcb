#!/usr/bin/env bash
# bench/stomp_ws_pairs.sh - STOMP over WebSocket against plain STOMP, on
# one sluiced, in alternating pairs (issue 19): the same client
# (`sluice-bench stomp`, with --ws /ws for the WebSocket runs) and the same
# workload, so the difference is the transport (broker/ws.c).
#
#   bench/stomp_ws_pairs.sh [BUILD_DIR] [PAIRS]      (default build, 6)
#   env: ARGS (the sluice-bench workload; default 1p1c, 100 B, persistent,
#        a receipt every 100 sends with 4 outstanding, client-individual
#        acks, 20000 messages)
#
# Prints per run: transport, the bench's result line and the broker's CPU
# ticks (user+system, all threads) during it; then the medians and the
# worst run of each transport. Stops the broker by pid.
set -euo pipefail
cd "$(dirname "$0")/.."
B=$(pwd)/${1:-build}
PAIRS=${2:-6}
ARGS=${ARGS:-"--producers 1 --consumers 1 --size 100 --count 20000 \
--persistent --receipt-every 100 --window 4 --ack client-individual"}
. bench/sluiced.sh
sluiced_start "$B" ws --stomp-ws-listen 127.0.0.1:0
wport=$(sed -nE 's/.*stomp-ws=127\.0\.0\.1:([0-9]+).*/\1/p' "$d/ready")
[ -n "$wport" ] || { echo "no stomp-ws port: $(cat "$d/ready" "$d/log")" >&2; exit 1; }
# warm-up, unmeasured
"$B/bin/sluice-bench" stomp --port "$sport" --dest /queue/warm --count 5000 \
  --persistent --receipt-every 100 >/dev/null
out=$(mktemp)
trap 'rm -f "$out"; kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$d"' EXIT
run() { # transport
  local extra=() port=$sport t0 t1 line
  if [ "$1" = ws ]; then extra=(--ws /ws); port=$wport; fi
  t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  # shellcheck disable=SC2086
  line=$("$B/bin/sluice-bench" stomp --port "$port" --dest "/queue/p$RANDOM" \
    "${extra[@]}" $ARGS 2>&1 | tail -1)
  t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  echo "$1 $line broker_cpu_ticks=$((t1 - t0)) load=$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$out"
}
for i in $(seq "$PAIRS"); do
  if [ $((i % 2)) = 1 ]; then run plain; run ws; else run ws; run plain; fi
done
python3 bench/pairs_summary.py "$out"
