#!/usr/bin/env bash
# scripts/jepsen-cluster.sh [--netpart|--netem|--queue] [BUILD_DIR] [ROUNDS]
# - the long modes of the Jepsen-style cluster checks (docs/cluster.md 8):
#   default: tests/cluster/test_cluster_jepsen.py: 3 real nodes, two
#     producers with acks=durable, the partition leader kill -9ed or paused
#     (SIGSTOP) every round and brought back;
#   --netpart: tests/cluster/test_cluster_netpart.py: each node in its own
#     network namespace (needs root), the partition leader cut off from the
#     other two every round (blackhole routes) while a third producer
#     writes to the isolated side, then healed;
#   --netem: the --netpart check on a slow, lossy network: every node's
#     link delays and drops packets for the whole run (tc netem delay
#     NETEM_DELAY_MS, default 20, +-10 ms, loss NETEM_LOSS %, default 2;
#     where the kernel lacks the netem qdisc, a token bucket (tbf) that
#     queues bursts up to NETEM_DELAY_MS and drops the rest; the run
#     prints which);
#   --queue: tests/cluster/test_cluster_jepsen_queue.py: a queue group
#     read by four consumers (two `sluice queue consume`, two STOMP with
#     receipted ACKs, relayed by the nodes that do not coordinate it)
#     while two producers write acks=durable; each round, in turn, the
#     partition leader kill -9ed, the group's coordinator kill -9ed, the
#     leader paused (SIGSTOP), the leader cut off (network namespaces,
#     as --netpart; as root, else killed instead); verdict: nothing
#     delivered after its answered ack, every acknowledged record
#     delivered and acked, attempts never going back, nothing never sent,
#     the group settled to the log end with an empty DLQ, no more STOMP
#     members at the coordinator than STOMP consumers. The last line
#     "jepsen-queue: ..." gives the counts (-s).
# ROUNDS rounds (default 100), then the full read and the verdict (every
# acknowledged record present once, in order, nothing never sent,
# identical replicas; --netpart also: the isolated leader acknowledged
# nothing, no epoch named two leaders). The suite runs 3 rounds of each
# (--netem: 1).
set -euo pipefail
test=test_cluster_jepsen.py
var=JEPSEN_ROUNDS
only=()
if [ "${1:-}" = "--netpart" ]; then
  test=test_cluster_netpart.py
  var=NETPART_ROUNDS
  only=(-k partitioned_leader)
  shift
elif [ "${1:-}" = "--netem" ]; then
  test=test_cluster_netpart.py
  var=NETEM_ROUNDS
  only=(-k slow_lossy -s)
  shift
elif [ "${1:-}" = "--queue" ]; then
  test=test_cluster_jepsen_queue.py
  var=JEPSEN_QUEUE_ROUNDS
  only=(-k survives_kills -s)
  shift
fi
src=$(cd "$(dirname "$0")/.." && pwd)
b=$(cd "${1:-$src/build}" && pwd)
rounds=${2:-100}
env "$var=$rounds" SLUICE_BIN_DIR="$b/bin" SLUICE_SOURCE_DIR="$src" \
  PYTHONDONTWRITEBYTECODE=1 "${PYTHON3:-/usr/bin/python3}" -m pytest -q -p no:cacheprovider \
  -o faulthandler_timeout=0 "${only[@]}" "$src/tests/cluster/$test"
