#!/usr/bin/env bash
# bench/many_partitions.sh - durable produce spread over many partitions,
# against one partition, in the same run (issue 20, item 1).
#
#   bench/many_partitions.sh [BUILD_DIR] [PARTITIONS] [RECORDS] [PAIRS]
#                            [-- SLUICED ARGS...]
#
# For each of PAIRS rounds (default 3) it starts BUILD_DIR/bin/sluiced
# (default build) on loopback port 0 with a fresh temporary data directory
# and runs, one after the other, with acks=durable and 100-byte records:
#   one     RECORDS into a topic of 1 partition (the baseline);
#   each    RECORDS into a topic of PARTITIONS partitions (default 10000),
#           record i to partition i mod PARTITIONS: one record per
#           partition per batch;
#   sticky  the same topic, the client's sticky partitioner (one partition
#           per batch, batches rotate over the partitions).
# Extra arguments after -- go to sluiced (e.g. --journal no for the
# per-partition fsync as before). Prints one line per run (records/s) and
# the ratio of each spread run to the one-partition run of its round.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
N=${2:-10000}
R=${3:-2000000}
PAIRS=${4:-3}
shift $(($# < 4 ? $# : 4))
[ "${1:-}" = "--" ] && shift
. bench/sluiced.sh
# no request timeout: per-partition fsync rounds over thousands of
# partitions take longer than the default 30 s
X="-X request.timeout.ms=3600000"
rate() { sed -nE 's/.*records_per_sec=([0-9.]+).*/\1/p'; }
echo "# $(date -u +%FT%TZ) uptime: $(uptime)"
echo "# sluiced args: $*"
for i in $(seq "$PAIRS"); do
  (
    sluiced_start "$B" many "$@"
    bb=127.0.0.1:$bport
    one=$("$B/bin/sluice-bench" produce -b "$bb" --topic one --partitions 1 $X \
      --records "$R" --size 100 --acks durable | rate)
    each=$("$B/bin/sluice-bench" produce -b "$bb" --topic many $X \
      --partitions "$N" --records "$R" --size 100 --acks durable \
      --spread each | rate)
    sticky=$("$B/bin/sluice-bench" produce -b "$bb" --topic many $X \
      --partitions "$N" --records "$R" --size 100 --acks durable \
      --spread sticky | rate)
    fds=$(ls /proc/$pid/fd | wc -l)
    rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
    du=$(du -sm "$d/data" | cut -f1)
    awk -v o="$one" -v e="$each" -v s="$sticky" -v n="$N" -v f="$fds" \
      -v r="$rss" -v u="$du" 'BEGIN {
      printf "run partitions=%d one=%.0f each=%.0f (%.2fx) sticky=%.0f " \
             "(%.2fx) fds=%d rss_kib=%d disk_mib=%d\n",
             n, o, e, e / o, s, s / o, f, r, u }'
  )
done
echo "# uptime after: $(uptime)"
