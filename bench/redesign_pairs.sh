#!/usr/bin/env bash
# bench/redesign_pairs.sh - two builds of sluiced (BEFORE and AFTER, build
# directories with bin/) in alternating pairs on the workloads issue 15
# says must not get slower: the binary protocol (`sluice-bench produce`,
# `consume`, `queue`) and STOMP (`sluice-bench stomp`, a /queue and a
# /topic), one fresh broker per run, the same client (AFTER's) for both.
#
#   BEFORE=/tmp/before/build bench/redesign_pairs.sh [AFTER_DIR] [PAIRS]
#                                        (default build, 3 pairs)
#   env: ONLY (regex over the workload names), STOMP_COUNT (messages of
#        the STOMP workloads, default 20000)
#
# Prints one line per run (mode=build:workload, the bench's result line,
# the broker's CPU ticks during the measured command, the load average),
# then the median and worst run per mode (bench/pairs_summary.py). Stops
# every broker by pid.
set -euo pipefail
cd "$(dirname "$0")/.."
AFTER=$(pwd)/${1:-build}
PAIRS=${2:-3}
BEFORE=${BEFORE:?set BEFORE to the build directory to compare against}
ONLY=${ONLY:-.}
STOMP_COUNT=${STOMP_COUNT:-20000}
BENCH=$AFTER/bin/sluice-bench
. bench/sluiced.sh
out=$(mktemp /tmp/redesign-pairs.XXXXXX)

# name | setup command (unmeasured, may be empty) | measured command
# (%B = binary HOST:PORT, %S = STOMP port)
WORKLOADS=(
  "produce_written||produce -b %B --topic p --records 1000000 --size 100 --acks written"
  "produce_durable||produce -b %B --topic d --records 200000 --size 100 --acks durable"
  "consume_2p|produce -b %B --topic c --partitions 2 --records 1000000 --acks written|consume -b %B --topic c --records 1000000 --consumers 2"
  "queue_4c|produce -b %B --topic q --partitions 4 --records 400000 --acks written|queue -b %B --topic q --records 400000 --consumers 4 --credits 8192"
  "stomp_queue||stomp --port %S --dest /queue/b --producers 1 --consumers 1 --size 100 --count ${STOMP_COUNT:-20000} --persistent --receipt-every 100 --window 4 --ack client-individual"
  "stomp_topic||stomp --port %S --dest /topic/b --producers 1 --consumers 1 --size 100 --count ${STOMP_COUNT:-20000} --persistent --receipt-every 100 --window 4"
)

subst() { local s=${1//%B/127.0.0.1:$bport}; echo "${s//%S/$sport}"; }

run() { # build-dir mode workload
  local b=$1 mode=$2 w=$3 name setup cmd t0 t1 line
  IFS='|' read -r name setup cmd <<<"$w"
  sluiced_start "$b" "$mode"
  if [ -n "$setup" ]; then
    # shellcheck disable=SC2046
    "$BENCH" $(subst "$setup") >/dev/null 2>&1
  fi
  t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  # shellcheck disable=SC2046
  line=$("$BENCH" $(subst "$cmd") 2>&1 | tail -1)
  t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  echo "$mode:$name $line broker_cpu_ticks=$((t1 - t0)) load=$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$out"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "$d"
}

for i in $(seq "$PAIRS"); do
  for w in "${WORKLOADS[@]}"; do
    [[ ${w%%|*} =~ $ONLY ]] || continue
    if [ $((i % 2)) = 1 ]; then
      run "$BEFORE" before "$w"; run "$AFTER" after "$w"
    else
      run "$AFTER" after "$w"; run "$BEFORE" before "$w"
    fi
  done
done
python3 bench/pairs_summary.py "$out"
rm -f "$out"
