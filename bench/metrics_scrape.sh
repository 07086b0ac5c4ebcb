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
  hport=$(sed -nE 's/.*http=127\.0\.0\.1:([0-9]+).*/\1/p' "$d/ready")
  if [ "$m" = scraped ]; then
    ( while :; do curl -s -o /dev/null "http://127.0.0.1:$hport/metrics";
                  sleep "$INTERVAL"; done ) &
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
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "$d"
  trap - EXIT
  rate=$(sed -nE 's/.*records_per_sec=([0-9]+).*/\1/p' <<<"$line")
  echo "$w $m $rate (one scrape afterwards: ${scrapes}s)"
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
