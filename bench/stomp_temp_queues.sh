#!/usr/bin/env bash
# bench/stomp_temp_queues.sh - the cost of a STOMP session that uses a temp
# queue (RabbitMQ-style request/reply), against one that does not.
#
#   bench/stomp_temp_queues.sh [BUILD_DIR] [SESSIONS]
#
# Starts BUILD_DIR/bin/sluiced (default build) on loopback port 0 with a
# temporary data directory, then runs SESSIONS (default 200) times, twice
# each, alternated: CONNECT, one SEND to /queue/rpc with a receipt
# (plain, or with reply-to:/temp-queue/x, which creates the connection's
# temp queue), DISCONNECT with a receipt (which deletes it). Prints the
# mean wall time per session. Stops the broker by pid.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
N=${2:-200}
. bench/sluiced.sh
sluiced_start "$B" tq
port=$sport
/usr/bin/python3 - "$port" "$N" <<'PY'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])

def frames(s, buf, k):
    while buf.count(b"\0") < k:
        d = s.recv(4096)
        if not d:
            break
        buf += d
    return buf

def session(temp):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"CONNECT\naccept-version:1.2\nhost:x\n\n\0"
              b"SEND\ndestination:/queue/rpc\nreceipt:r\n" +
              (b"reply-to:/temp-queue/x\n" if temp else b"") + b"\nhi\0")
    buf = frames(s, b"", 2)
    s.sendall(b"DISCONNECT\nreceipt:d\n\n\0")
    frames(s, buf, 3)
    s.close()

for temp in (0, 1, 0, 1):
    t = time.perf_counter()
    for _ in range(n):
        session(temp)
    print("%s ms_per_session=%.2f" % ("temp-queue" if temp else "plain",
                                      (time.perf_counter() - t) * 1e3 / n))
PY
