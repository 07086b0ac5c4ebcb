#!/usr/bin/env bash
# bench/stomp_builds.sh ROUNDS BUILD... - the STOMP workload of
# bench/metrics_scrape.sh pair (2 producers, 2 consumers, persistent, a
# receipt every 100, client-individual acks, 100 B) on several builds in
# turn, ROUNDS times, a fresh broker per run. One line per run: the build,
# msg/s in and the broker's CPU ticks (/proc/PID/stat utime+stime).
#   env: COUNT (messages per producer, default 250000)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: stomp_builds.sh ROUNDS BUILD...}
shift
echo "# $(date -u +%FT%TZ) uptime: $(uptime)"
. bench/sluiced.sh
for i in $(seq "$rounds"); do
  for b in "$@"; do
    sluiced_start "$b" stompb
    c0=$(awk '{print $14+$15}' "/proc/$pid/stat")
    line=$("$b/bin/sluice-bench" stomp --port "$sport" --producers 2 \
           --consumers 2 --count "${COUNT:-250000}" --size 100 --persistent \
           --receipt-every 100 --ack client-individual 2>/dev/null)
    c1=$(awk '{print $14+$15}' "/proc/$pid/stat")
    kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$d"; trap - EXIT
    echo "$b $(sed -nE 's/.*(in_msg_s=[0-9]+).*/\1/p' <<<"$line") cpu_ticks=$((c1 - c0))"
  done
done
echo "# uptime after: $(uptime)"
