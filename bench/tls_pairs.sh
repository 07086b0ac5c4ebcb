#!/usr/bin/env bash
# bench/tls_pairs.sh - TLS against plaintext on the same broker in the same
# run (issue 16; docs/benchmarks.md), in alternating pairs:
#
#   produce  sluice-bench produce --acks durable (binary, libsluice)
#   fetch    sluice-bench consume (binary stream fetch of a filled topic)
#   stomp    sluice-bench stomp 1p1c-100B as bench/compare.sh runs it
#            (persistent, a receipt every 100 sends, client-individual ack)
#
# One sluiced (BUILD_DIR/bin, loopback port 0, temp data dir) listens on
# --listen/--stomp-listen and on --tls-listen/--stomp-tls-listen with a
# certificate this script makes with openssl; each pair runs the workload
# plaintext then over TLS (the order flips every round). Prints one line
# per run and `uptime` before and after. Stops the broker by pid.
#
#   bench/tls_pairs.sh [BUILD_DIR]      (default build)
#   env: ROUNDS (pairs per workload, default 5), RECORDS (binary records
#        per run, default 300000), COUNT (STOMP messages, default 20000),
#        ONLY (regex of the workloads to run: produce|fetch|stomp)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
ROUNDS=${ROUNDS:-5}
RECORDS=${RECORDS:-300000}
COUNT=${COUNT:-20000}
ONLY=${ONLY:-.}
d=$(mktemp -d /tmp/sluice-tls-bench.XXXXXX)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$d"
}
trap cleanup EXIT

# the certificates (docs/security.md's commands)
(cd "$d" &&
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt \
    -days 2 -subj "/CN=bench CA" 2>/dev/null &&
  openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr \
    -subj "/CN=localhost" 2>/dev/null &&
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >srv.ext &&
  openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
    -out srv.crt -days 2 -extfile srv.ext 2>/dev/null && chmod 600 ./*.key)

"$B/bin/sluiced" --data "$d/data" --log-level warn \
  --listen 127.0.0.1:0 --stomp-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \
  --tls-listen 127.0.0.1:0 --stomp-tls-listen 127.0.0.1:0 \
  --tls-cert "$d/srv.crt" --tls-key "$d/srv.key" >"$d/ready" 2>"$d/log" &
pid=$!
for _ in $(seq 100); do grep -q '^sluiced ready' "$d/ready" && break; sleep 0.1; done
field() { tr ' ' '\n' <"$d/ready" | sed -n "s/^$1=127\.0\.0\.1://p"; }
bin=$(field binary); tls=$(field tls); st=$(field stomp); stt=$(field stomp-tls)
TLSX=(-X security.protocol=ssl -X ssl.ca.location="$d/ca.crt")

echo "# $(date -u +%FT%TZ) load: $(uptime)"
echo "# kernel TLS offered: $(grep -qw tls /proc/sys/net/ipv4/tcp_available_ulp 2>/dev/null && echo yes || echo no) (tcp_available_ulp: $(cat /proc/sys/net/ipv4/tcp_available_ulp 2>/dev/null))"
bench_bin() { # mode port tls(0/1) topic
  local mode=$1 port=$2 t=$3 topic=$4 x=()
  [ "$t" = 1 ] && x=("${TLSX[@]}")
  "$B/bin/sluice-bench" "$mode" -b "localhost:$port" --records "$RECORDS" \
    --size 100 --acks durable --topic "$topic" "${x[@]}" 2>&1 | tail -1
}
bench_stomp() { # port tls(0/1)
  local x=()
  [ "$2" = 1 ] && x=(--tls-ca "$d/ca.crt")
  "$B/bin/sluice-bench" stomp --host localhost --port "$1" \
    --dest "/queue/t$RANDOM$RANDOM" --producers 1 --consumers 1 --size 100 \
    --count "$COUNT" --persistent --receipt-every 100 --window 4 \
    --ack client-individual "${x[@]}" 2>&1 | tail -1
}
for r in $(seq "$ROUNDS"); do
  order="0 1"
  [ $((r % 2)) = 0 ] && order="1 0"
  for t in $order; do
    name=$([ "$t" = 1 ] && echo tls || echo plain)
    port=$([ "$t" = 1 ] && echo "$tls" || echo "$bin")
    if echo produce | grep -qE "$ONLY"; then
      echo "round $r produce $name :: $(bench_bin produce "$port" "$t" "p-$r-$name")"
    fi
    if echo fetch | grep -qE "$ONLY"; then
      # the same filled topic for both: its first run fills it
      echo "round $r fetch $name :: $(bench_bin consume "$port" "$t" fetch-topic)"
    fi
    if echo stomp | grep -qE "$ONLY"; then
      sport=$([ "$t" = 1 ] && echo "$stt" || echo "$st")
      echo "round $r stomp-1p1c $name :: $(bench_stomp "$sport" "$t")"
    fi
  done
done
echo "# $(date -u +%FT%TZ) load: $(uptime)"
