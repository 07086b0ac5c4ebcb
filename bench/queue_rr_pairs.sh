#!/usr/bin/env bash
# bench/queue_rr_pairs.sh - queue-group delivery before/after in
# alternating pairs (issue 19: round robin among consumers).
#
#   bench/queue_rr_pairs.sh BEFORE_BUILD AFTER_BUILD [PAIRS] [RECORDS]
#
# Per run: a fresh sluiced of that build, RECORDS records produced to a
# 4-partition topic (acks written), then consumed by 4 queue consumers
# (credits 8192) from the backlog, and 4 STOMP consumers of one queue fed
# by 4 STOMP producers (sluice-bench stomp). Prints one line per run:
# build, pair, queue records/s, stomp line. sluice-bench is AFTER's.
set -euo pipefail
cd "$(dirname "$0")/.."
before=$1 after=$2 pairs=${3:-3} records=${4:-500000}
. bench/sluiced.sh
run() {
  local b=$1 tag=$2 i=$3
  (
    sluiced_start "$b" rr
    q=$("$after/bin/sluice-bench" produce -b 127.0.0.1:$bport --topic q4 \
      --partitions 4 --records "$records" --acks written >/dev/null &&
      "$after/bin/sluice-bench" queue -b 127.0.0.1:$bport --topic q4 \
        --records "$records" --consumers 4 --credits 8192 | tr '\n' ' ')
    s=$("$after/bin/sluice-bench" stomp --host 127.0.0.1 --port "$sport" \
      --dest /queue/s4 --count $((records / 20)) --producers 4 \
      --consumers 4 2>&1 | tr '\n' ' ')
    echo "$tag pair=$i queue: $q | stomp: $s"
  )
}
for i in $(seq "$pairs"); do
  run "$before" before "$i"
  run "$after" after "$i"
done
