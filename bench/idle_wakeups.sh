#!/usr/bin/env bash
# bench/idle_wakeups.sh - how often an idle sluiced wakes up.
#
#   bench/idle_wakeups.sh [BUILD_DIR] [none|held|unsub]
#
# Starts BUILD_DIR/bin/sluiced (default build) on loopback port 0 with a
# temporary data directory; a STOMP client sends 21 persistent messages to
# /queue/a and then, per scenario: none = nothing more; held = subscribes
# with prefetch 1 and holds its message; unsub = subscribes, then
# unsubscribes (the message goes back to the queue). It then stays
# connected and idle, and the script counts the voluntary context switches
# of all the broker's threads over 2 seconds (/proc/PID/task/*/status).
# Stops the broker by pid.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
scen=${2:-none}
. bench/sluiced.sh
sluiced_start "$B" idle
port=$sport
/usr/bin/python3 - "$port" "$scen" <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"CONNECT\naccept-version:1.2\nhost:x\n\n\0")
for i in range(20):
    s.sendall(b"SEND\ndestination:/queue/a\npersistent:true\n"
              b"content-length:5\n\nhello\0")
s.sendall(b"SEND\ndestination:/queue/a\nreceipt:r\ncontent-length:1\n\nx\0")
sub = (b"SUBSCRIBE\ndestination:/queue/a\nid:0\nack:client-individual\n"
       b"activemq.prefetchSize:1\n\n\0")
if sys.argv[2] in ("held", "unsub"):
    s.sendall(sub)
if sys.argv[2] == "unsub":
    time.sleep(0.3)
    s.sendall(b"UNSUBSCRIBE\nid:0\n\n\0")
time.sleep(6)
PY
extra_pids=$!
sleep 1.5
sw() { awk '/^voluntary_ctxt_switches/ {s += $2} END {print s}' /proc/$pid/task/*/status; }
a=$(sw); sleep 2; b=$(sw)
echo "scenario=$scen voluntary_context_switches_2s=$((b - a))"
