#!/usr/bin/env bash
# Power-loss rounds (tests/crash/powerloss.py, storage/powerloss.h): each
# round starts sluiced with SLUICE_POWERLOSS=at=N (a random I/O operation),
# runs durable produces, queue acks and stream commits until the layer cuts
# power, restarts the broker on what survived and checks that no acked
# record was lost, no acked consumption redone, and no group state is
# ahead of the log. Ends with a verdict line.
#   scripts/powerloss.sh [--rounds N] [--seed S] [--nmax OPS] [BUILD_DIR]
# Default 1000 rounds on build/ (built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=1000
extra=()
build=build
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --seed|--nmax) extra+=("$1" "$2"); shift 2 ;;
    -h|--help) sed -n 2,10p "$0"; exit 0 ;;
    *) build=$1; shift ;;
  esac
done
[ -x "$build/bin/sluiced" ] || ./scripts/build.sh "$build" >/dev/null
SLUICE_BIN_DIR="$PWD/$build/bin" PYTHONDONTWRITEBYTECODE=1 \
  exec python3 tests/crash/powerloss.py --rounds "$rounds" "${extra[@]}"
