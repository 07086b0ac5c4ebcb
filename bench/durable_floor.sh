#!/usr/bin/env bash
# bench/durable_floor.sh - issue 20's window of one: what a durable append
# costs by the call that makes it durable (sluice-durable-call), beside
# the brokers' CPU per message with a receipt on every persistent SEND
# (bench/compare.sh's receipt-every-send: sluiced and RabbitMQ), in the
# same minutes, round after round.
#
#   bench/durable_floor.sh [BUILD_DIR]          (default build)
#   env: ROUNDS (default 5), COUNT (appends per mode and round, 1000),
#        BYTES (1024), MODES (sluice-durable-call's, default every mode
#        but the SQPOLL ones, whose polling thread takes a core),
#        LAT_COUNT (messages per broker run, 4000), BROKERS ("sluiced
#        rabbitmq"; empty: the tool alone), OUT (directory for the raw
#        output, default a temp dir, kept)
#
# Each round runs every mode once (the order rotated by one each round),
# then compare.sh with each broker (the order of the brokers reversed
# every other round). The brokers' data and the tool's file are on the
# same file system (/tmp). Prints each round's lines with the load
# average, then per mode the median (worst) over the rounds, and per
# broker its CPU per message and the ratio RabbitMQ / sluiced per round.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
ROUNDS=${ROUNDS:-5}
COUNT=${COUNT:-1000}
BYTES=${BYTES:-1024}
MODES=${MODES:-idle,none,fdatasync,rwf-dsync,odsync,sfr,direct,direct-dsync,uring-dsync,uring-link,uring-direct-dsync,uring-direct-link}
LAT_COUNT=${LAT_COUNT:-4000}
BROKERS=${BROKERS-"sluiced rabbitmq"}
tool="$build/bin/sluice-durable-call"
[ -x "$tool" ] || { echo "durable_floor: $tool missing: build first" >&2; exit 1; }
OUT=${OUT:-$(mktemp -d /tmp/sluice-durable-floor.XXXXXX)}
mkdir -p "$OUT"
dir=$(mktemp -d /tmp/sluice-durable-call.XXXXXX)
trap 'rm -rf "$dir"' EXIT
IFS=, read -r -a modes <<<"$MODES"
n=${#modes[@]}
read -r -a brokers <<<"$BROKERS"

for r in $(seq "$ROUNDS"); do
  rot=()
  for i in $(seq 0 $((n - 1))); do rot+=("${modes[$(((i + r - 1) % n))]}"); done
  echo "== round $r $(date -u +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)"
  "$tool" --dir "$dir" --count "$COUNT" --bytes "$BYTES" --rounds 1 \
    --modes "$(IFS=,; echo "${rot[*]}")" | grep '^round=' |
    sed "s/^round=1/round=$r/" | tee -a "$OUT/tool"
  order=("${brokers[@]}")
  if [ $((r % 2)) -eq 0 ] && [ ${#brokers[@]} -gt 1 ]; then
    order=()
    for ((i = ${#brokers[@]} - 1; i >= 0; i--)); do order+=("${brokers[$i]}"); done
  fi
  for b in "${order[@]}"; do
    l0=$(cut -d' ' -f1 /proc/loadavg)
    LAT_COUNT=$LAT_COUNT BROKERS=$b ONLY=receipt-every-send NO_INSTALL=1 \
      bench/compare.sh "$build" >"$OUT/cmp-$r-$b.out" 2>"$OUT/cmp-$r-$b.err" || true
    line=$(grep 'receipt-every-send: sent=' "$OUT/cmp-$r-$b.err" | tail -1)
    echo "round=$r broker=$b load=$l0 ${line#*: }" | tee -a "$OUT/brokers"
  done
done

echo "== summary ($ROUNDS rounds, $COUNT appends of $BYTES B per mode and round; raw output in $OUT)"
/usr/bin/python3 - "$OUT" <<'PY'
import os, re, statistics, sys
out = sys.argv[1]
def kv(line):
    return dict(re.findall(r'(\w+)=([-\d.]+)', line))
rows = {}
for line in open(os.path.join(out, "tool")):
    mode = line.split()[1]
    rows.setdefault(mode, []).append({k: float(v) for k, v in kv(line).items()})
# the machine's kworker CPU per microsecond of wall time, from idle
bg = None
if "idle" in rows:
    bg = statistics.median(x["kthreads"] / x["mean"] for x in rows["idle"])
def mw(vals, fmt):
    return f"{fmt.format(statistics.median(vals))} ({fmt.format(max(vals))})"
print("| mode | process CPU us | caller | io_uring threads | kworkers - idle's | voluntary switches | p50 us | p99 us |")
print("|---|---|---|---|---|---|---|---|")
for mode, xs in rows.items():
    kw = [x["kthreads"] - (bg * x["mean"] if bg is not None else 0) for x in xs]
    print(f"| {mode} | {mw([x['cpu'] for x in xs], '{:.1f}')} | "
          f"{mw([x['caller'] for x in xs], '{:.1f}')} | "
          f"{mw([x['helpers'] for x in xs], '{:.1f}')} | {mw(kw, '{:.1f}')} | "
          f"{mw([x['vcsw'] for x in xs], '{:.2f}')} | {mw([x['p50'] for x in xs], '{:.0f}')} | "
          f"{mw([x['p99'] for x in xs], '{:.0f}')} |")
path = os.path.join(out, "brokers")
if os.path.exists(path):
    per = {}
    for line in open(path):
        d = dict(re.findall(r'(\w+)=([^\s]+)', line))
        try:
            per.setdefault(d["broker"], {})[d["round"]] = float(d["cpu_us_per_msg"])
        except (KeyError, ValueError):
            pass
    for b, v in per.items():
        print(f"{b}: CPU us per message, median (worst) {mw(list(v.values()), '{:.1f}')}: "
              + " ".join(f"{v[k]:.1f}" for k in sorted(v, key=int)))
    if "sluiced" in per and "rabbitmq" in per:
        ks = sorted(set(per["sluiced"]) & set(per["rabbitmq"]), key=int)
        rat = [per["rabbitmq"][k] / per["sluiced"][k] for k in ks if per["sluiced"][k] > 0]
        if rat:
            print(f"RabbitMQ / sluiced per round: " + " ".join(f"{x:.1f}x" for x in rat)
                  + f"; median {statistics.median(rat):.1f}x, worst {min(rat):.1f}x")
PY
