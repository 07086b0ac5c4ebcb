#!/usr/bin/env bash
# bench/redis_compare.sh - durable produce: sluiced against Redis 7 Streams
# with `appendfsync always` (Debian's redis-server), in the same run and in
# alternating pairs (issue 20).
#
#   bench/redis_compare.sh [BUILD_DIR] [PAIRS]      (default build, 5)
#   env: RECORDS (sluiced, per run, default 2000000), RREQ (Redis XADDs
#        per run, default 200000), SIZE (bytes per record/value, 100),
#        CLIENTS (connections on each side: "1 4"), PIPE (Redis commands
#        in flight per connection, 100)
#
# sluiced: `sluice-bench produce --acks durable` (libsluice's defaults,
# every record acknowledged only once fdatasync'd), one partition.
# Redis: `redis-benchmark -P PIPE XADD s * v VALUE` against a redis-server
# with --appendonly yes --appendfsync always (an XADD is answered after
# the AOF write and fsync of its event-loop round, Redis's group commit),
# no RDB snapshots. Both data directories are in /tmp (the same disk).
# Prints one line per run (records/s and the server's CPU ticks, all
# threads) and the medians and worst run of each side. Stops both by pid.
set -euo pipefail
cd "$(dirname "$0")/.."
B=$(pwd)/${1:-build}
PAIRS=${2:-5}
RECORDS=${RECORDS:-2000000}
RREQ=${RREQ:-200000}
SIZE=${SIZE:-100}
CLIENTS=${CLIENTS:-"1 4"}
PIPE=${PIPE:-100}
command -v redis-server >/dev/null || { echo "apt-get install redis-server" >&2; exit 1; }
. bench/sluiced.sh
sluiced_start "$B" redis
rdir=$(mktemp -d /tmp/sluice-redis.XXXXXX)
rport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$rport" --bind 127.0.0.1 --dir "$rdir" --appendonly yes \
  --appendfsync always --save '' --daemonize no --logfile "$rdir/log" &
rpid=$!
out=$(mktemp)
trap 'kill $rpid 2>/dev/null || true; wait $rpid 2>/dev/null || true; kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$d" "$rdir" "$out"' EXIT
for _ in $(seq 100); do redis-cli -p "$rport" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
val=$(head -c $((SIZE * 2)) /dev/urandom | base64 -w0 | head -c "$SIZE")
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run_sluice() { # clients
  local t0 t1 line
  t0=$(ticks "$pid")
  line=$("$B/bin/sluice-bench" produce -b "127.0.0.1:$bport" --topic "t$RANDOM$RANDOM" \
    --records "$RECORDS" --size "$SIZE" --acks durable --producers "$1" 2>&1 | tail -1)
  t1=$(ticks "$pid")
  echo "sluiced c=$1 $line cpu_ticks=$((t1 - t0)) load=$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$out"
}
run_redis() { # clients
  local t0 t1 rps
  redis-cli -p "$rport" del s >/dev/null
  t0=$(ticks "$rpid")
  rps=$(redis-benchmark -h 127.0.0.1 -p "$rport" -c "$1" -n "$RREQ" -P "$PIPE" --csv \
    XADD s '*' v "$val" | tail -1 | cut -d, -f2 | tr -d '"')
  t1=$(ticks "$rpid")
  echo "redis c=$1 records_s=$rps records=$RREQ cpu_ticks=$((t1 - t0)) load=$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$out"
}
for c in $CLIENTS; do
  for i in $(seq "$PAIRS"); do
    if [ $((i % 2)) = 1 ]; then run_sluice "$c"; run_redis "$c"; else run_redis "$c"; run_sluice "$c"; fi
  done
done
python3 - "$out" "$RECORDS" "$RREQ" <<'PY'
import os, re, statistics, sys
hz = os.sysconf("SC_CLK_TCK")
rows = {}
for line in open(sys.argv[1]):
    who, c = line.split()[:2]
    kv = dict(re.findall(r"(\S+)=(\S+)", line))
    rate = float(kv.get("records_s") or kv.get("records_per_sec") or 0)
    n = float(sys.argv[2] if who == "sluiced" else sys.argv[3])
    rows.setdefault((who, c), []).append((rate, float(kv["cpu_ticks"]) / hz * 1e6 / n))
for (who, c), rs in sorted(rows.items()):
    r = [x[0] for x in rs]; u = [x[1] for x in rs]
    print("%-7s %-5s records/s median %12.0f worst %12.0f | server CPU us/record median %.3f worst %.3f (%d runs)"
          % (who, c, statistics.median(r), min(r), statistics.median(u), max(u), len(rs)))
PY
