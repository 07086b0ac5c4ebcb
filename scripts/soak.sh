#!/usr/bin/env bash
# Soak: kill -9 rounds under mixed load (tests/crash/soak.py): binary and
# STOMP producers, a binary queue consumer acking and dead-lettering, one
# SIGKILL per round with requests in flight, then a drain and a check that
# nothing acked was lost or redelivered. Ends with a verdict line
# (`soak: PASS ...` / `soak: FAIL ...`); exit status 0 only on PASS.
#   scripts/soak.sh [--rounds N] [--seed S] [BUILD_DIR]   (default 1000, build)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=1000
extra=()
build=build
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --seed) extra+=("$1" "$2"); shift 2 ;;
    -h|--help) sed -n 2,8p "$0"; exit 0 ;;
    *) build=$1; shift ;;
  esac
done
[ -x "$build/bin/sluiced" ] || ./scripts/build.sh "$build" >/dev/null
SLUICE_BIN_DIR="$PWD/$build/bin" PYTHONDONTWRITEBYTECODE=1 \
  exec python3 tests/crash/soak.py --rounds "$rounds" "${extra[@]}"
