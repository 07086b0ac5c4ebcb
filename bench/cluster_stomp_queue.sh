#!/usr/bin/env bash
# bench/cluster_stomp_queue.sh BUILD_DIR [PAIRS] [MESSAGES] [ACK] - STOMP
# queue consumption in a 3-node cluster on this machine, through the node
# that coordinates the queue's group against through another node, which
# relays the subscription to the coordinator (docs/cluster.md 5.1; issue
# 13). One cluster; per run a new queue (3 partitions, RF 3) is filled
# with MESSAGES 100-byte messages (a STOMP producer on the coordinator),
# then drained by 2 consumers (ack ACK, default client-individual,
# prefetch 1000) connected to the coordinator or to another node,
# alternating which goes first in each pair. Prints sluice-bench's line
# per run and the medians of out_msg_s (drain messages/s).
# PERF_RELAY=PREFIX: `perf record -g` of the relaying node over each
# relayed drain, into PREFIX.N.data (N: the run's number);
# PERF_RELAY_ARGS: its options instead of -g (e.g. "--call-graph dwarf");
# PERF_COORD=1: record the coordinator over the relayed drain instead.
set -euo pipefail
b=$(cd "${1:-build}" && pwd)
pairs=${2:-3}
msgs=${3:-100000}
ack=${4:-client-individual}
tmp=$(mktemp -d /tmp/sluice-relay-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

ready_line() { # FILE -> the ready line, once there
  for _ in $(seq 300); do grep -q '^sluiced ready' "$1" 2>/dev/null && break; sleep 0.1; done
  grep '^sluiced ready' "$1"
}

ports=$(python3 -c '
import socket
ss=[socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
set -- $ports
peers="1@127.0.0.1:$1,2@127.0.0.1:$2,3@127.0.0.1:$3"
rp=("$1" "$2" "$3")
bp=() sp=()
for i in 1 2 3; do
  "$b/bin/sluiced" --listen 127.0.0.1:0 --stomp-listen 127.0.0.1:0 \
    --http-listen 127.0.0.1:0 --data "$tmp/n$i" --log-level warn \
    --node-id "$i" --cluster-listen "127.0.0.1:${rp[$((i-1))]}" \
    --cluster-peers "$peers" >"$tmp/ready$i" 2>"$tmp/log$i" &
  pids+=("$!")
done
for i in 1 2 3; do
  line=$(ready_line "$tmp/ready$i")
  bp+=("$(sed -nE 's/.*binary=127\.0\.0\.1:([0-9]+).*/\1/p' <<<"$line")")
  sp+=("$(sed -nE 's/.*stomp=127\.0\.0\.1:([0-9]+).*/\1/p' <<<"$line")")
done

# The group state topic is created on the first queue subscription (and
# tried again on the next one if that failed): make one, so that
# new_queue can read the coordinators from it.
warmup() {
  "$b/bin/sluice" -b "127.0.0.1:${bp[0]}" topic create warmup --partitions 1 \
    --replication-factor 3 >/dev/null 2>&1 || true
  python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"CONNECT\naccept-version:1.2\nhost:/\n\n\0"
          b"SUBSCRIBE\nid:0\ndestination:/queue/warmup\nreceipt:r\n\n\0")
buf = b""
while b"RECEIPT" not in buf and b"ERROR" not in buf:
    d = s.recv(4096)
    if not d:
        break
    buf += d
s.close()' "${sp[0]}" || true
}

# A new queue: prints "COORDINATOR OTHER" once every partition has its
# full ISR. The coordinator of queue group Q is the leader of partition
# fnv1a32(Q) mod partitions of __sluice_group_state (docs/cluster.md 6),
# as node 1 sees it (the nodes agree once the ISRs are full).
new_queue() {
  local q=$1 out="" st=""
  for _ in $(seq 300); do
    "$b/bin/sluice" -b "127.0.0.1:${bp[0]}" topic create "$q" --partitions 3 \
      --replication-factor 3 >/dev/null 2>&1 && break
    sleep 0.1
  done
  # every node's own image: a SEND is forwarded by what its node sees
  local i
  for i in 0 1 2; do
    for _ in $(seq 300); do
      out=$("$b/bin/sluice" -b "127.0.0.1:${bp[$i]}" topic describe "$q" 2>/dev/null |
        sed -nE 's/^partition ([0-9]+) .* leader ([0-9]+) .* isr [0-9]+,[0-9]+,[0-9]+.*/\1 \2/p')
      [ "$(wc -l <<<"$out")" = 3 ] && break
      sleep 0.1
    done
  done
  local co_ot=""
  for _ in $(seq 300); do
    st=$("$b/bin/sluice" -b "127.0.0.1:${bp[0]}" topic describe __sluice_group_state 2>/dev/null |
      sed -nE 's/^partition ([0-9]+) .* leader (-?[0-9]+) .*/\1 \2/p')
    [ -n "$st" ] || warmup
    # every partition led, and the answer complete (else ask again)
    co_ot=$(python3 -c '
import sys
q, lines = sys.argv[1], sys.argv[2].splitlines()
h = 0x811c9dc5
for c in q.encode():
    h = ((h ^ c) * 0x01000193) & 0xffffffff
lead = dict(l.split() for l in lines)
c = int(lead[str(h % len(lead))])
assert sorted(map(int, lead)) == list(range(len(lead)))
assert c > 0 and all(int(v) > 0 for v in lead.values())
print(c, next(n for n in (1, 2, 3) if n != c))' "$q" "$st" 2>/dev/null) && break
    sleep 0.1
  done
  echo "$co_ot"
}

run() { # MODE(coordinator|relayed) N -> sluice-bench's line
  local mode=$1 q=q$2 co ot node
  read -r co ot <<<"$(new_queue "$q")"
  "$b/bin/sluice-bench" stomp --port "${sp[$((co-1))]}" --producers 1 \
    --consumers 0 --count "$msgs" --size 100 --dest "/queue/$q" \
    --receipt-every 1000 >/dev/null
  node=$co
  [ "$mode" = relayed ] && node=$ot
  echo -n "$mode (coordinator $co, consumers on $node): "
  local c0 c1 u1
  c0=$(cpu_ticks "${pids[$((co-1))]}")
  local perf_pid=""
  if [ "$node" != "$co" ]; then
    c1=$(cpu_ticks "${pids[$((node-1))]}")
    u1=$(cpu_ticks "${pids[$((node-1))]}" 14)
    if [ -n "${PERF_RELAY:-}" ]; then
      # PERF_COORD=1: the coordinator instead of the relaying node
      local pp=${pids[$((node-1))]}
      [ -n "${PERF_COORD:-}" ] && pp=${pids[$((co-1))]}
      perf record -q ${PERF_RELAY_ARGS:--g} -p "$pp" -o "$PERF_RELAY.$2.data" \
        >/dev/null 2>&1 &
      perf_pid=$!
    fi
  fi
  /usr/bin/time -f "%U %S" -o "$tmp/time" \
    "$b/bin/sluice-bench" stomp --port "${sp[$((node-1))]}" --producers 0 \
    --consumers 2 --count "$msgs" --size 100 --dest "/queue/$q" \
    --ack "$ack" --prefetch 1000 | tr -d '\n'
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
  fi
  # CPU per message of the drain (load-independent, unlike msg/s), of the
  # nodes and of the consumers (sluice-bench; 10 ms resolution)
  echo -n " client_cpu_us_msg=$(awk -v n="$msgs" '{printf "%.2f", ($1 + $2) * 1e6 / n}' "$tmp/time")"
  echo -n " coordinator_cpu_us_msg=$(cpu_us_msg "${pids[$((co-1))]}" "$c0")"
  if [ "$node" != "$co" ]; then
    echo -n " relay_cpu_us_msg=$(cpu_us_msg "${pids[$((node-1))]}" "$c1")"
    echo -n " relay_user_us_msg=$(cpu_us_msg "${pids[$((node-1))]}" "$u1" 14)"
  fi
  echo
}

cpu_ticks() { # PID [FIELD] -> utime + stime (FIELD 14: utime) in clock ticks
  if [ -n "${2:-}" ]; then
    awk -v f="$2" '{print $f}' "/proc/$1/stat"
  else
    awk '{print $14 + $15}' "/proc/$1/stat"
  fi
}

cpu_us_msg() { # PID TICKS_BEFORE [FIELD] -> microseconds of CPU per message since
  local now hz
  now=$(cpu_ticks "$1" "${3:-}")
  hz=$(getconf CLK_TCK)
  awk -v a="$2" -v b="$now" -v hz="$hz" -v n="$msgs" \
    'BEGIN {printf "%.2f", (b - a) * 1e6 / hz / n}'
}

echo "uptime: $(uptime)"
n=0
for i in $(seq "$pairs"); do
  if [ $((i % 2)) = 1 ]; then order="coordinator relayed"; else order="relayed coordinator"; fi
  for m in $order; do
    n=$((n + 1))
    run "$m" "$n" | tee -a "$tmp/out"
  done
done
echo "uptime: $(uptime)"
for m in coordinator relayed; do
  grep "^$m " "$tmp/out" | sed -nE 's/.*out_msg_s=([0-9]+).*/\1/p' | sort -n |
    awk -v m="$m" '{v[NR]=$1} END {printf "%s: median out_msg_s %d, worst %d (%d runs)\n", m, v[int((NR+1)/2)], v[1], NR}'
done
grep "^relayed " "$tmp/out" | sed -nE 's/.*relay_cpu_us_msg=([0-9.]+).*/\1/p' | sort -n |
  awk '{v[NR]=$1} END {if (NR) printf "relaying node: median CPU %.2f us/msg, worst %.2f (%d runs)\n", v[int((NR+1)/2)], v[NR], NR}'
grep "" "$tmp/out" | sed -nE 's/.*coordinator_cpu_us_msg=([0-9.]+).*/\1/p' | sort -n |
  awk '{v[NR]=$1} END {if (NR) printf "coordinator: median CPU %.2f us/msg, worst %.2f (%d runs)\n", v[int((NR+1)/2)], v[NR], NR}'
