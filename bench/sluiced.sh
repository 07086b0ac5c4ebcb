# bench/sluiced.sh - sourced by the bench scripts: one sluiced per run.
#
#   sluiced_start BUILD_DIR NAME [SLUICED ARGS...]
#
# Starts BUILD_DIR/bin/sluiced on loopback port 0 with a temporary data
# directory ($d, /tmp/sluice-NAME.XXXXXX), waits for its ready line and
# sets pid, bport (binary) and sport (STOMP). Its EXIT trap kills
# $extra_pids (set them to what the script starts besides), stops the
# broker by pid and removes $d, or moves it into $SLUICE_BENCH_TRASH when
# that is set (the caller deletes that at its end: on ext4 without a
# journal, files created within minutes of deleting tens of thousands
# pay a scan of the recently deleted inodes, docs/benchmarks.md).
extra_pids=
sluiced_start() {
  local b=$1 name=$2
  shift 2
  d=$(mktemp -d "${TMPDIR:-/tmp}/sluice-$name.XXXXXX")
  # builds from before the HTTP listener (issue 17) do not know the flag
  local http=()
  if "$b/bin/sluiced" --help 2>/dev/null | grep -q -- --http-listen; then
    http=(--http-listen 127.0.0.1:0)
  fi
  "$b/bin/sluiced" --listen 127.0.0.1:0 --stomp-listen 127.0.0.1:0 \
    "${http[@]}" --data "$d/data" --log-level warn "$@" >"$d/ready" 2>"$d/log" &
  pid=$!
  trap 'kill $extra_pids 2>/dev/null || true; kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; if [ -n "${SLUICE_BENCH_TRASH:-}" ]; then mv "$d" "$SLUICE_BENCH_TRASH/"; else rm -rf "$d"; fi' EXIT
  for _ in $(seq 100); do grep -q '^sluiced ready' "$d/ready" && break; sleep 0.1; done
  bport=$(sed -nE 's/.*binary=127\.0\.0\.1:([0-9]+).*/\1/p' "$d/ready")
  sport=$(sed -nE 's/.*stomp=127\.0\.0\.1:([0-9]+).*/\1/p' "$d/ready")
}
