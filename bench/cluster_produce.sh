#!/usr/bin/env bash
# bench/cluster_produce.sh BUILD_DIR [PAIRS] [RECORDS] - durable produce
# throughput, single node (RF 1) against a 3-node cluster on this machine
# (RF 3, min-insync-replicas 2, acks=durable), in alternating pairs
# (issue 13). 100-byte records, one partition, sluice-bench's default
# producer settings, through the partition leader. Prints one line per run
# (sluice-bench's key=value line) and the medians.
#
# COMPARE=tls (issue 16): the pairs are a 3-node cluster as above against
# the same with a cluster secret and cluster-tls (followers fetch over
# TLS after the SLUICE-BROKER login; the producer uses TLS too), so the
# cost of securing the links between brokers.
set -euo pipefail
compare=${COMPARE:-rf}
b=$(cd "${1:-build}" && pwd)
pairs=${2:-3}
records=${3:-500000}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/sluice-cluster-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

ready_port() { # FILE [FIELD] -> port of FIELD (binary), after the ready line
  for _ in $(seq 300); do grep -q '^sluiced ready' "$1" 2>/dev/null && break; sleep 0.1; done
  sed -nE "s/.* ${2:-binary}=127\.0\.0\.1:([0-9]+).*/\1/p" "$1"
}

if [ "$compare" = tls ]; then # a CA and a node certificate (docs/security.md)
  (cd "$tmp" &&
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt \
      -days 2 -subj "/CN=bench CA" 2>/dev/null &&
    openssl req -newkey rsa:2048 -nodes -keyout node.key -out node.csr \
      -subj "/CN=localhost" 2>/dev/null &&
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >node.ext &&
    openssl x509 -req -in node.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -out node.crt -days 2 -extfile node.ext 2>/dev/null &&
    openssl rand -hex 32 >secret && chmod 600 ./*.key secret)
fi

single() { # -> records/s line
  local d=$tmp/single.$1
  mkdir -p "$d"
  "$b/bin/sluiced" --listen 127.0.0.1:0 --stomp-listen 127.0.0.1:0 \
    --http-listen 127.0.0.1:0 --data "$d/data" --log-level warn \
    >"$d/ready" 2>"$d/log" &
  local pid=$!
  pids+=("$pid")
  local port
  port=$(ready_port "$d/ready")
  "$b/bin/sluice-bench" produce -b "127.0.0.1:$port" --records "$records" \
    --size 100 --partitions 1 --acks durable --topic b
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

cluster() { # RUN [tls] -> records/s line
  local d=$tmp/cluster.$1${2:-} ports peers i x=() px=() field=binary
  mkdir -p "$d"
  if [ "${2:-}" = tls ]; then
    x=(--tls-listen 127.0.0.1:0 --stomp-tls-listen 127.0.0.1:0
       --tls-cert "$tmp/node.crt" --tls-key "$tmp/node.key"
       --tls-ca "$tmp/ca.crt" --cluster-tls yes
       --cluster-secret-file "$tmp/secret")
    px=(-X security.protocol=ssl -X ssl.ca.location="$tmp/ca.crt")
    field=tls
  fi
  ports=$(python3 -c '
import socket
ss=[socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
  set -- $ports
  peers="1@127.0.0.1:$1,2@127.0.0.1:$2,3@127.0.0.1:$3"
  local rp=("$1" "$2" "$3") cp=()
  for i in 1 2 3; do
    "$b/bin/sluiced" --listen 127.0.0.1:0 --stomp-listen 127.0.0.1:0 \
      --http-listen 127.0.0.1:0 --data "$d/n$i" --log-level warn \
      --node-id "$i" --cluster-listen "127.0.0.1:${rp[$((i-1))]}" \
      --cluster-peers "$peers" "${x[@]}" >"$d/ready$i" 2>"$d/log$i" &
    pids+=("$!")
  done
  local cpids=("${pids[@]: -3}")
  for i in 1 2 3; do cp+=("$(ready_port "$d/ready$i")"); done
  # a metadata leader and every node registered, then the topic
  for _ in $(seq 300); do
    "$b/bin/sluice" -b "127.0.0.1:${cp[0]}" topic create b --partitions 1 \
      --replication-factor 3 >/dev/null 2>&1 && break
    sleep 0.1
  done
  local leader=""
  for _ in $(seq 300); do
    leader=$("$b/bin/sluice" -b "127.0.0.1:${cp[0]}" topic describe b 2>/dev/null |
      sed -nE 's/^partition 0 .* leader ([0-9]+) .* isr [0-9]+,[0-9]+,[0-9]+.*/\1/p')
    [ -n "$leader" ] && break
    sleep 0.1
  done
  local to=${cp[$((leader-1))]}
  [ "$field" = tls ] && to=$(ready_port "$d/ready$leader" tls)
  "$b/bin/sluice-bench" produce -b "localhost:$to" "${px[@]}" \
    --records "$records" --size 100 --partitions 1 --acks durable --topic b
  for p in "${cpids[@]}"; do kill "$p"; done
  for p in "${cpids[@]}"; do wait "$p" 2>/dev/null || true; done
}

echo "# $(date -u +%FT%TZ) $(uptime)"
s=() c=()
rate() { sed -nE 's/.*records_per_sec=([0-9.]+).*/\1/p' <<<"$1"; }
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
if [ "$compare" = tls ]; then
  for i in $(seq "$pairs"); do # the order flips every pair
    for m in $( [ $((i % 2)) = 1 ] && echo "plain tls" || echo "tls plain"); do
      if [ "$m" = tls ]; then
        l=$(cluster "$i" tls); echo "rf3-tls $l"; c+=("$(rate "$l")")
      else
        l=$(cluster "$i"); echo "rf3-plain $l"; s+=("$(rate "$l")")
      fi
    done
  done
  echo "median rf3-plain=$(med "${s[@]}") rf3-tls=$(med "${c[@]}") records/s"
else
  for i in $(seq "$pairs"); do
    l=$(single "$i"); echo "rf1 $l"; s+=("$(rate "$l")")
    l=$(cluster "$i"); echo "rf3 $l"; c+=("$(rate "$l")")
  done
  echo "median rf1=$(med "${s[@]}") rf3=$(med "${c[@]}") records/s"
fi
echo "# $(uptime)"
