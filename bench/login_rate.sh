#!/bin/bash
# bench/login_rate.sh SLUICED USERSFILE -- MODE ARGS...: start a fresh
# sluiced (loopback, port 0, temporary data directory) with USERSFILE as
# its stomp-users-file, run bench/login_rate.py MODE ADDR ARGS... against
# it (the binary port for scram, the STOMP port otherwise), stop it.
# docs/benchmarks.md (issue 16) has the figures it produced.
set -euo pipefail
bin=$1
users=$2
shift 3
here=$(cd "$(dirname "$0")" && pwd)
d=$(mktemp -d /tmp/sluice-login-bench.XXXXXX)
"$bin" --data "$d/data" --listen 127.0.0.1:0 --stomp-listen 127.0.0.1:0 \
  --http-listen 127.0.0.1:0 --stomp-users-file "$users" >"$d/out" 2>"$d/err" &
pid=$!
while ! grep -q ready "$d/out" 2>/dev/null; do
  kill -0 $pid 2>/dev/null || { cat "$d/err" >&2; exit 1; }
  sleep 0.1
done
bp=$(grep -o 'binary=[^ ]*' "$d/out" | cut -d= -f2)
sp=$(grep -o 'stomp=[^ ]*' "$d/out" | cut -d= -f2)
mode=$1
shift
if [ "$mode" = scram ]; then addr=$bp; else addr=$sp; fi
python3 "$here/login_rate.py" "$mode" "$addr" "$@"
kill $pid
wait $pid 2>/dev/null || true
rm -rf "$d"
