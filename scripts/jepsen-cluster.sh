#!/usr/bin/env bash
# scripts/jepsen-cluster.sh [BUILD_DIR] [ROUNDS] - the long mode of
# tests/cluster/test_cluster_jepsen.py: 3 real nodes, two producers with
# acks=durable, the partition leader kill -9ed or paused (SIGSTOP) every
# round and brought back, ROUNDS rounds (default 100), then the full read
# and the verdict (every acknowledged record present once, in order,
# nothing never sent, identical replicas). The suite runs 3 rounds.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
b=$(cd "${1:-$src/build}" && pwd)
rounds=${2:-100}
JEPSEN_ROUNDS=$rounds SLUICE_BIN_DIR=$b/bin SLUICE_SOURCE_DIR=$src \
  PYTHONDONTWRITEBYTECODE=1 "${PYTHON3:-python3}" -m pytest -q -p no:cacheprovider \
  -o faulthandler_timeout=0 "$src/tests/cluster/test_cluster_jepsen.py"
