# bench/sluiced.sh - sourced by the bench scripts: one sluiced per run.
#
#   sluiced_start BUILD_DIR NAME [SLUICED ARGS...]
#
# Starts BUILD_DIR/bin/sluiced on loopback port 0 with a temporary data
# directory ($d, /tmp/sluice-NAME.XXXXXX), waits for its ready line and
# sets pid, bport (binary) and sport (STOMP). Its EXIT trap kills
# $extra_pids (set them to what the script starts besides), stops the
# broker by pid and removes $d.
extra_pids=
sluiced_start() {
  local b=$1 name=$2
  shift 2
  d=$(mktemp -d "/tmp/sluice-$name.XXXXXX")
  # builds from before the HTTP listener (issue 17) do not know the flag
  local http=()
  if "$b/bin/sluiced" --help 2>/dev/null | grep -q -- --http-listen; then
    http=(--http-listen 127.0.0.1:0)
  fi
  "$b/bin/sluiced" --listen 127.0.0.1:0 --stomp-listen 127.0.0.1:0 \
    "${http[@]}" --data "$d/data" --log-level warn "$@" >"$d/ready" 2>"$d/log" &
  pid=$!
  trap 'kill $extra_pids 2>/dev/null || true; kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$d"' EXIT
  for _ in $(seq 100); do grep -q '^sluiced ready' "$d/ready" && break; sleep 0.1; done
  bport=$(sed -nE 's/.*binary=127\.0\.0\.1:([0-9]+).*/\1/p' "$d/ready")
  sport=$(sed -nE 's/.*stomp=127\.0\.0\.1:([0-9]+).*/\1/p' "$d/ready")
}
