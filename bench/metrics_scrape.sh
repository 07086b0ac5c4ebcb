#!/usr/bin/env bash
# bench/metrics_scrape.sh - does scraping /metrics cost throughput?
# (issue 17: durable produce and queue throughput with /metrics scraped
# every second against no scraping, at most 2% lower).
#
#   bench/metrics_scrape.sh [BUILD_DIR] [PAIRS]
#   env: RECORDS (per run, default 200000), SIZE (100), PRODUCERS (4),
#        CONSUMERS (2), INTERVAL (scrape period in s, default 1)
#
# Each pair runs the same workload twice on a fresh broker, once with a
# curl loop scraping /metrics every INTERVAL s and once without, the order
# alternating from pair to pair. Prints one line per run and, per
# workload, the medians and the worst run of each mode.
set -euo pipefail
cd "$(dirname "$0")/.."
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
  scrapes=$(curl -s "http://127.0.0.1:$hport/metrics" | wc -l)
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "$d"
  trap - EXIT
  rate=$(sed -nE 's/.*records_per_sec=([0-9]+).*/\1/p' <<<"$line")
  echo "$w $m $rate (metrics lines: $scrapes)"
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
