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
#   create  creates topic `many` of PARTITIONS partitions (default 10000)
#           and writes one record to each (their files are made at the
#           first append): timed apart, as topics are made before a
#           producer runs (Kafka's producer benchmarks do the same);
#   one     RECORDS into a topic of 1 partition (the baseline);
#   each    RECORDS into `many`, record i to partition i mod PARTITIONS:
#           one record per partition per batch;
#   sticky  the same topic, the client's sticky partitioner (one partition
#           per batch, batches rotate over the partitions).
# The rounds' data directories are deleted at the end, not between rounds
# (SLUICE_BENCH_TRASH, bench/sluiced.sh), and a `sync` before each
# measured run writes back what the one before left dirty.
# Extra arguments after -- go to sluiced (e.g. --journal no for the
# per-partition fsync as before). Prints one line per run (records/s) and
# the ratio of each spread run to the one-partition run of its round.
#
#   bench/many_partitions.sh --scale [BUILD_DIR] [PARTITIONS] [-- ARGS...]
#
# Scale mode (issue 18 item 11, issue 20 restart): one sluiced on one
# data directory; creates PARTITIONS (default 100000) partitions as topics
# of at most 10,000, produces one durable record to each (--spread each)
# and reads them all back, then stops it with SIGTERM, starts it again
# (after a clean stop), kills it with -9 and starts it again. Prints the
# time of each step, descriptors and RSS after each start, and disk use.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--scale" ]; then
  shift
  B=${1:-build}
  N=${2:-100000}
  shift $(($# < 2 ? $# : 2))
  [ "${1:-}" = "--" ] && shift
  X="-X request.timeout.ms=3600000"
  d=$(mktemp -d /tmp/sluice-scale.XXXXXX)
  pid=
  trap 'if [ -n "$pid" ]; then kill -9 $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; fi; rm -rf "$d"' EXIT
  now() { date +%s.%N; }
  ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }
  start() {
    : >"$d/ready"
    local t0
    t0=$(now)
    "$B/bin/sluiced" --listen 127.0.0.1:0 --stomp-listen 127.0.0.1:0 \
      --http-listen 127.0.0.1:0 --data "$d/data" --log-level warn "$@" \
      >"$d/ready" 2>>"$d/log" &
    pid=$!
    until grep -q '^sluiced ready' "$d/ready"; do
      kill -0 $pid 2>/dev/null || { cat "$d/log"; exit 1; }
      sleep 0.01
    done
    start_ms=$(ms "$t0" "$(now)")
    bport=$(sed -nE 's/.*binary=127\.0\.0\.1:([0-9]+).*/\1/p' "$d/ready")
  }
  # descriptors, RSS, and the CPU time sluiced used so far (user+sys,
  # clock ticks): on a loaded machine the start-up's wall time is mostly
  # waiting for a CPU, its CPU time is not
  stats() {
    local cpu
    cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.0f", ($14 + $15) * 1000 / hz }' /proc/$pid/stat)
    echo "fds=$(ls /proc/$pid/fd | wc -l) rss_kib=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status) cpu_ms=$cpu"
  }
  topics=$(((N + 9999) / 10000))
  per() { local t=$1; [ $((t * 10000)) -le "$N" ] && echo 10000 || echo $((N - (t - 1) * 10000)); }
  echo "# $(date -u +%FT%TZ) uptime: $(uptime)"
  echo "# $B partitions=$N sluiced args: $*"
  start "$@"
  echo "first start: ${start_ms} ms $(stats)"
  t0=$(now)
  for t in $(seq "$topics"); do
    "$B/bin/sluice-bench" produce -b 127.0.0.1:$bport --topic s$t $X \
      --partitions "$(per $t)" --records "$(per $t)" --size 100 \
      --acks durable --spread each >/dev/null
  done
  echo "create+produce 1 record each: $(ms "$t0" "$(now)") ms $(stats)"
  # Fetch offset 0 of every partition, 500 partitions per FETCH request,
  # through the test harness's wire client; prints the records found.
  consume_all() {
    local t0 got
    t0=$(now)
    got=$(/usr/bin/python3 - "$bport" "$N" <<'PY'
import sys
sys.path.insert(0, "tests/harness")
import sluice_wire as sw
port, n = int(sys.argv[1]), int(sys.argv[2])
c = sw.Client(("127.0.0.1", port), timeout=600)
got = 0
for t in range((n + 9999) // 10000):
    parts = min(10000, n - t * 10000)
    for lo in range(0, parts, 500):
        res = sw.decode_fetch(c.call(sw.API_FETCH, sw.fetch_body(
            {"s%d" % (t + 1): [(p, 0, 1 << 16)
                               for p in range(lo, min(parts, lo + 500))]})))
        for r in res.values():
            got += len(sw.decode_batches(r["records"]))
print(got)
PY
)
    echo "fetch all ($got records): $(ms "$t0" "$(now)") ms $(stats)"
  }
  consume_all
  echo "disk: $(du -sm "$d/data" | cut -f1) MiB"
  t0=$(now)
  kill -TERM $pid
  wait $pid || true
  echo "clean stop: $(ms "$t0" "$(now)") ms"
  start "$@"
  echo "start after clean stop: ${start_ms} ms $(stats)"
  consume_all
  kill -9 $pid
  wait $pid 2>/dev/null || true
  start "$@"
  echo "start after kill -9: ${start_ms} ms $(stats)"
  consume_all
  kill -TERM $pid
  wait $pid || true
  pid=
  echo "# uptime after: $(uptime)"
  exit 0
fi
B=${1:-build}
N=${2:-10000}
R=${3:-2000000}
PAIRS=${4:-3}
shift $(($# < 4 ? $# : 4))
[ "${1:-}" = "--" ] && shift
. bench/sluiced.sh
SLUICE_BENCH_TRASH=$(mktemp -d "${TMPDIR:-/tmp}/sluice-trash.XXXXXX")
export SLUICE_BENCH_TRASH
trap 'rm -rf "$SLUICE_BENCH_TRASH"' EXIT
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
    t0=$(date +%s.%N)
    "$B/bin/sluice" -b "$bb" topic create many --partitions "$N" >/dev/null
    "$B/bin/sluice-bench" produce -b "$bb" --topic many $X \
      --partitions "$N" --records "$N" --size 100 --acks durable \
      --spread each >/dev/null
    create=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    # each run starts with nothing of the previous one's left to write
    # back: a 0.3-4 s run otherwise pays for the one before it (the
    # journal's checkpoint of 10,000 partitions, their dirty pages)
    sync
    one=$("$B/bin/sluice-bench" produce -b "$bb" --topic one --partitions 1 $X \
      --records "$R" --size 100 --acks durable | rate)
    sync
    each=$("$B/bin/sluice-bench" produce -b "$bb" --topic many $X \
      --partitions "$N" --records "$R" --size 100 --acks durable \
      --spread each | rate)
    sync
    sticky=$("$B/bin/sluice-bench" produce -b "$bb" --topic many $X \
      --partitions "$N" --records "$R" --size 100 --acks durable \
      --spread sticky | rate)
    fds=$(ls /proc/$pid/fd | wc -l)
    rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
    du=$(du -sm "$d/data" | cut -f1)
    awk -v o="$one" -v e="$each" -v s="$sticky" -v n="$N" -v f="$fds" \
      -v r="$rss" -v u="$du" -v c="$create" 'BEGIN {
      printf "run partitions=%d create_s=%s one=%.0f each=%.0f (%.2fx) " \
             "sticky=%.0f (%.2fx) fds=%d rss_kib=%d disk_mib=%d\n",
             n, c, o, e, e / o, s, s / o, f, r, u }'
  )
done
echo "# uptime after: $(uptime)"
