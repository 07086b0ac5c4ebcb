#!/usr/bin/env bash
# bench/metrics_scrape.sh - does scraping /metrics cost throughput?
# (issue 17: durable produce and queue throughput with /metrics scraped
# every second against no scraping, at most 2% lower).
#
#   bench/metrics_scrape.sh [BUILD_DIR] [PAIRS]
#   bench/metrics_scrape.sh cost [BUILD_DIR] [SCRAPES]
#       the broker's own CPU per scrape (10 topics x 4 partitions and 10
#       queue groups; one curl process fetching SCRAPES times, default
#       1000), from /proc/PID/stat: independent of the machine's load
#   bench/metrics_scrape.sh pair BUILD_A BUILD_B [PAIRS]
#       the hot path without scraping: the same workloads (durable produce,
#       queue, STOMP queue with receipts) on two builds, alternating, with
#       the broker's CPU per record from /proc/PID/stat (what the per-
#       request counters and latency histograms cost, less load-dependent
#       than throughput)
#   env: RECORDS (per run, default 200000), SIZE (100), PRODUCERS (4),
#        CONSUMERS (2), INTERVAL (scrape period in s, default 1)
#
# Each pair runs the same workload twice on a fresh broker, once with a
# curl loop scraping /metrics every INTERVAL s and once without, the order
# alternating from pair to pair. Prints one line per run and, per
# workload, the medians and the worst run of each mode.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = cost ]; then
  build=${2:-build}
  n=${3:-1000}
  . bench/sluiced.sh
  sluiced_start "$build" scrapecost
  h=$(sed -nE 's/.*http=([^ ]+).*/\1/p' "$d/ready")
  for i in $(seq 10); do
    "$build/bin/sluice" -b "127.0.0.1:$bport" topic create "t$i" --partitions 4 >/dev/null
    seq 1 100 | "$build/bin/sluice" -b "127.0.0.1:$bport" produce "t$i"
    "$build/bin/sluice" -b "127.0.0.1:$bport" group config "g$i" --topic "t$i" \
      max_deliveries=3 >/dev/null
  done
  samples=$(curl -s "http://$h/metrics" | grep -vc '^#')
  c0=$(awk '{print $14+$15}' "/proc/$pid/stat")
  urls=()
  for _ in $(seq "$n"); do urls+=("http://$h/metrics"); done
  curl -s "${urls[@]}" >/dev/null
  c1=$(awk '{print $14+$15}' "/proc/$pid/stat")
  tck=$(getconf CLK_TCK)
  echo "$(date -u +%FT%TZ) $(git rev-parse --short HEAD) uptime:$(uptime)"
  echo "$n scrapes of $samples samples: broker CPU $(( (c1 - c0) * 1000 / tck )) ms," \
       "$(( (c1 - c0) * 1000000 / tck / n )) us per scrape"
  exit 0
fi
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
# CPU time of every thread of PID in ns (schedstat: finer than ticks)
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s+=$1} END {printf "%d\n", s}'; }
if [ "${1:-}" = pair ]; then
  ba=$2 bb=$3
  PAIRS=${4:-3}
  RECORDS=${RECORDS:-200000}
  . bench/sluiced.sh
  out=$(mktemp /tmp/sluice-pair.XXXXXX)
  echo "# $(date -u +%FT%TZ) A=$ba B=$bb uptime:$(uptime)"
  for i in $(seq "$PAIRS"); do
    for w in produce queue stomp; do
      if [ $((i % 2)) -eq 1 ]; then order="$ba $bb"; else order="$bb $ba"; fi
      for b in $order; do
        sluiced_start "$b" "pair-$w"
        c0=$(cpu_ns "$pid")
        case $w in
          produce) line=$("$b/bin/sluice-bench" produce -b "127.0.0.1:$bport" \
                     --records "$RECORDS" --size 100 --producers 4 --acks durable 2>/dev/null)
                   rate=$(sed -nE 's/.*records_per_sec=([0-9]+).*/\1/p' <<<"$line") ;;
          queue) line=$("$b/bin/sluice-bench" queue -b "127.0.0.1:$bport" \
                     --records "$RECORDS" --size 100 --consumers 2 --acks durable 2>/dev/null)
                 rate=$(sed -nE 's/.*records_per_sec=([0-9]+).*/\1/p' <<<"$line") ;;
          stomp) line=$("$b/bin/sluice-bench" stomp --port "$sport" --producers 2 \
                     --consumers 2 --count $((RECORDS / 4)) --size 100 --persistent \
                     --receipt-every 100 --ack client-individual 2>/dev/null)
                 rate=$(sed -nE 's/.*in_msg_s=([0-9]+).*/\1/p' <<<"$line") ;;
        esac
        c1=$(cpu_ns "$pid")
        kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$d"; trap - EXIT
        n=$RECORDS
        [ "$w" = stomp ] && n=$(sed -nE 's/.*sent=([0-9]+).*/\1/p' <<<"$line")
        [ "${n:-0}" -gt 0 ] || n=1
        us=$(( (c1 - c0) / 10 / n ))
        echo "$w $b ${rate:-0} records/s, broker CPU $(( (c1 - c0) / 1000000 )) ms ($us us per 100 records)"
        echo "$w $b ${rate:-0} $us" >>"$out"
      done
    done
  done
  echo "# uptime after: $(uptime)"
  for w in produce queue stomp; do
    for b in "$ba" "$bb"; do
      med() { sort -n | awk '{v[NR]=$1} END {printf "%d %d %d\n", NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2, v[1], NR}'; }
      read -r rm rw rn < <(awk -v w="$w" -v b="$b" '$1==w && $2==b {print $3}' "$out" | med)
      read -r cm _ _ < <(awk -v w="$w" -v b="$b" '$1==w && $2==b {print $4}' "$out" | med)
      echo "$w $b median $rm records/s, worst $rw; broker CPU median $cm us per 100 records (n=$rn)"
    done
  done
  rm -f "$out"
  exit 0
fi
build=${1:-build}
PAIRS=${2:-3}
RECORDS=${RECORDS:-200000}
SIZE=${SIZE:-100}
PRODUCERS=${PRODUCERS:-4}
CONSUMERS=${CONSUMERS:-2}
INTERVAL=${INTERVAL:-1}
. bench/sluiced.sh
bench="$build/bin/sluice-bench"
out=$(mktemp /tmp/sluice-scrape.XXXXXX)

run_one() { # workload mode
  local w=$1 m=$2 scraper= hport line rate scrapes=0
  sluiced_start "$build" "scrape-$w-$m"
  local c0 c1
  c0=$(cpu_ticks "$pid")
  hport=$(sed -nE 's/.*http=127\.0\.0\.1:([0-9]+).*/\1/p' "$d/ready")
  if [ "$m" = scraped ]; then
    # one long-lived curl fetching every INTERVAL s (--rate), rather than
    # a process started per scrape: the scraper's own start-up would
    # compete for the cores the benchmark uses
    local urls=() per
    per=$(awk -v i="$INTERVAL" 'BEGIN {printf "%d", 3600 / i}')
    for _ in $(seq 3600); do urls+=("http://127.0.0.1:$hport/metrics"); done
    curl -s --rate "$per/h" "${urls[@]}" >/dev/null &
    scraper=$!
    extra_pids=$scraper
  fi
  if [ "$w" = produce ]; then
    line=$("$bench" produce -b "127.0.0.1:$bport" --records "$RECORDS" \
             --size "$SIZE" --producers "$PRODUCERS" --acks durable 2>/dev/null)
  else
    line=$("$bench" queue -b "127.0.0.1:$bport" --records "$RECORDS" \
             --size "$SIZE" --consumers "$CONSUMERS" --acks durable 2>/dev/null)
  fi
  if [ -n "$scraper" ]; then
    kill "$scraper" 2>/dev/null || true
    wait "$scraper" 2>/dev/null || true
    extra_pids=
  fi
  # the time of one scrape of this broker afterwards, as curl sees it
  scrapes=$(curl -s -o /dev/null -w '%{time_total}' \
              "http://127.0.0.1:$hport/metrics")
  c1=$(cpu_ticks "$pid")
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "$d"
  trap - EXIT
  rate=$(sed -nE 's/.*records_per_sec=([0-9]+).*/\1/p' <<<"$line")
  echo "$w $m $rate (broker CPU $(( (c1 - c0) * 1000 / $(getconf CLK_TCK) )) ms; one scrape afterwards: ${scrapes}s)"
  echo "$w $m $rate" >>"$out"
}

echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD) uptime:$(uptime)"
for i in $(seq "$PAIRS"); do
  for w in produce queue; do
    if [ $((i % 2)) -eq 1 ]; then order="none scraped"; else order="scraped none"; fi
    for m in $order; do run_one "$w" "$m"; done
  done
done
echo "# uptime after: $(uptime)"
for w in produce queue; do
  for m in none scraped; do
    awk -v w="$w" -v m="$m" '$1==w && $2==m {print $3}' "$out" | sort -n |
      awk -v w="$w" -v m="$m" '{v[NR]=$1} END {
        med = NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2;
        printf "%s %-8s median %d records/s, worst %d (n=%d)\n", w, m, med, v[1], NR }'
  done
done
rm -f "$out"
