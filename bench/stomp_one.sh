#!/usr/bin/env bash
# bench/stomp_one.sh - one STOMP workload against a fresh sluiced, for
# before/after comparisons of the broker itself (bench/compare.sh runs the
# whole matrix against RabbitMQ and ActiveMQ too).
#
#   bench/stomp_one.sh BUILD_DIR "SLUICE-BENCH ARGS" [SLUICED ARGS...]
#
# Starts BUILD_DIR/bin/sluiced on loopback port 0 with a temporary data
# directory (plus SLUICED ARGS, e.g. --flush-spin-us 0), runs an unmeasured
# warm-up, then `sluice-bench stomp --port P --dest /queue/tRANDOM ARGS`,
# and prints the bench's result line and the broker's CPU time during it
# (broker_cpu_ticks, clock ticks of user+system over all its threads) and
# its context switches (broker_ctx_switches, all threads, voluntary and
# not, and per thread name: threads that exited meanwhile do not count).
# Stops the broker by pid. Examples (docs/benchmarks.md):
#
#   bench/stomp_one.sh build "--producers 4 --consumers 4 --size 100 \
#       --count 20000 --persistent --receipt-every 100 --window 4 \
#       --ack client-individual"
#   bench/stomp_one.sh build "--producers 1 --consumers 1 --size 100 \
#       --count 2000 --persistent --sync-receipts --ack client-individual"
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,21p "$0" >&2; exit 2; }
B=$1; args=$2; shift 2
case $B in /*) ;; *) B=$(cd "$(dirname "$0")/.." && pwd)/$B ;; esac
. "$(dirname "$0")/sluiced.sh"
sluiced_start "$B" one "$@"
port=$sport
"$B/bin/sluice-bench" stomp --port "$port" --dest /queue/warm --producers 2 \
  --consumers 2 --count 5000 --persistent --receipt-every 100 >/dev/null 2>&1
t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
# context switches (voluntary + not) per thread name (the event loop and
# any other unnamed thread: sluiced; storage/flusher.c names its threads)
cs() { for t in /proc/"$pid"/task/*; do
         awk -v c="$(cat "$t/comm" 2>/dev/null)" \
           '/^(non)?voluntary_ctxt_switches/ { n += $2 } END { print c, n }' \
           "$t/status" 2>/dev/null
       done | awk '{ n[$1] += $2 } END { for (c in n) print c, n[c] }' | sort; }
c0=$(cs)
# shellcheck disable=SC2086
"$B/bin/sluice-bench" stomp --port "$port" --dest "/queue/t$RANDOM" $args 2>&1 |
  tail -1
t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
c1=$(cs)
by=$(join -a 2 <(echo "$c0") <(echo "$c1") |
     awk '{ d = NF == 3 ? $3 - $2 : $2; t += d; s = s sep $1 ":" d; sep = "," }
          END { print t, s }')
echo "broker_cpu_ticks=$((t1 - t0)) broker_ctx_switches=${by% *}" \
  "broker_ctx_switches_by_thread=${by#* }"
