#!/usr/bin/env bash
# bench/compare.sh - sluiced vs RabbitMQ vs ActiveMQ over STOMP, with the
# same client (`sluice-bench stomp`, bench/sluice_bench_stomp.c) and the
# same workloads:
#
#   1p/1c and 4p/4c, 100 B and 1 KiB bodies, persistent:true, a receipt
#   every 100 sends (4 outstanding), client-individual ack of every
#   message; and a receipt on every send (one at a time) for latency.
#
# Prints, per broker and workload: msg/s in and out, end-to-end and receipt
# p50/p99/p99.9 (ms), broker CPU (% of one core over the run), its CPU per
# message sent (µs, from its clock ticks over the run) and RSS (MiB).
# Installs rabbitmq-server and activemq with apt when missing (NO_INSTALL=1
# skips), runs every broker on loopback with its data in a temp dir, and
# stops what it started, by pid.
#
#   bench/compare.sh [BUILD_DIR]        (default build)
#   env: COUNT (messages per producer, default 20000), LAT_COUNT (2000),
#        BROKERS ("sluiced rabbitmq activemq"), OUT (also write the table),
#        WINDOW (receipts outstanding per producer, default 4),
#        ONLY (regex: run only the workloads whose name matches),
#        RCHUNKS (rounds of the receipt-vs-fdatasync measurement, default 5),
#        SLUICED_ARGS (more sluiced flags, e.g. "--flush-inline-us 0"),
#        PAIRS (see below)
#
# PAIRS=N: the brokers of BROKERS are started once and kept running side
# by side, and each throughput workload (ONLY; not receipt-every-send)
# runs N rounds, on each broker back to back (the order alternating
# round by round), so each pair of runs shares the machine's load: on a
# shared 2-core box the load moves within seconds, and a broker measured
# a minute after the other can meet a different machine. Prints every
# run with the load average, then per workload each round's ratio
# (sluiced / RabbitMQ, msg/s in and e2e p99), their medians and the
# worst, and how many rounds reached 10x and 0.1x (issue 20 item 6).
# The idle brokers' own CPU while the other runs is printed beside
# (ticks of each over the round), and the fdatasync p50 of 100 small
# appends probed right before and after each run (their mean): with one
# receipt window per producer each window waits for one fdatasync, so
# 100 / that time bounds a producer's msg/s, and the table gives,
# per round, sluiced's time per window of 100 beside it, with the mean
# time of sluiced's own fsync rounds in the run (its /metrics) and the
# time its threads waited in the run queue (schedstat) over the run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${1:-build}
COUNT=${COUNT:-20000}
LAT_COUNT=${LAT_COUNT:-2000}
BROKERS=${BROKERS:-"sluiced rabbitmq activemq"}
WINDOW=${WINDOW:-4}
ONLY=${ONLY:-.}
bench="$root/$build/bin/sluice-bench"
sluiced="$root/$build/bin/sluiced"
for f in "$bench" "$sluiced"; do
  [ -x "$f" ] || { echo "compare: $f missing: build first" >&2; exit 1; }
done

work=$(mktemp -d /tmp/sluice-compare.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    # give each a few seconds, then SIGKILL
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

need_pkgs=()
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need_pkgs+=(rabbitmq-server)
[ -f /usr/share/activemq/bin/activemq.jar ] || need_pkgs+=(activemq)
if [ ${#need_pkgs[@]} -gt 0 ] && [ "${NO_INSTALL:-0}" != 1 ]; then
  echo "== apt-get install ${need_pkgs[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" \
    >/dev/null
fi

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() { # port timeout_s
  local i
  for i in $(seq $(( $2 * 10 ))); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}
listener_pid() { # port -> pid of the process listening on it
  ss -ltnpH "sport = :$1" | sed -nE 's/.*pid=([0-9]+).*/\1/p' | head -1
}
cpu_ticks() { # pid -> utime+stime of the whole process (all threads)
  awk '{print $14 + $15}' "/proc/$1/stat"
}
# run-queue waits of all of a process's threads (schedstat: time on a
# CPU, time runnable but waiting for one), ns
sched_ns() {
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ r += $1; w += $2 } END { printf "%.0f %.0f\n", r, w }'
}
# sluiced's fdatasync rounds so far: sum of their times (s) and count
fsync_sum() {
  curl -s "http://127.0.0.1:$1/metrics" 2>/dev/null |
    awk '/^sluice_fsync_duration_seconds_sum/ { s = $2 } /^sluice_fsync_duration_seconds_count/ { c = $2 } END { print s + 0, c + 0 }'
}
rss_mib() {
  awk '/^VmRSS/ {printf "%.0f", $2/1024}' "/proc/$1/status"
}

# ---- brokers ---------------------------------------------------------------

start_sluiced() {
  local d="$work/sluiced"
  mkdir -p "$d"
  # shellcheck disable=SC2086
  "$sluiced" --listen 127.0.0.1:0 --stomp-listen 127.0.0.1:0 \
    --http-listen 127.0.0.1:0 --data "$d/data" \
    --log-level warn ${SLUICED_ARGS:-} >"$d/ready" 2>"$d/log" &
  pids+=($!)
  for _ in $(seq 100); do grep -q '^sluiced ready' "$d/ready" && break; sleep 0.1; done
  port=$(sed -nE 's/.*stomp=127\.0\.0\.1:([0-9]+).*/\1/p' "$d/ready")
  hport=$(sed -nE 's/.*http=127\.0\.0\.1:([0-9]+).*/\1/p' "$d/ready")
  bpid=$(sed -nE 's/.* pid=([0-9]+).*/\1/p' "$d/ready")
  login=guest
}

start_rabbitmq() {
  local d="$work/rabbitmq" epmd_port node_port dist_port
  mkdir -p "$d/mnesia" "$d/log"
  port=$(free_port); epmd_port=$(free_port); node_port=$(free_port)
  dist_port=$(free_port)
  echo '[rabbitmq_stomp].' >"$d/enabled_plugins"
  cat >"$d/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$node_port
stomp.listeners.tcp.1 = 127.0.0.1:$port
stomp.default_user = guest
stomp.default_pass = guest
EOF
  # our own epmd, so we stop what we started
  epmd -port "$epmd_port" >/dev/null 2>&1 &
  pids+=($!)
  env HOME="$d" ERL_EPMD_PORT="$epmd_port" \
    RABBITMQ_NODENAME="sluicebench@localhost" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$node_port" \
    RABBITMQ_DIST_PORT="$dist_port" RABBITMQ_MNESIA_BASE="$d/mnesia" \
    RABBITMQ_LOG_BASE="$d/log" RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" \
    RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" RABBITMQ_PID_FILE="$d/pid" \
    /usr/lib/rabbitmq/bin/rabbitmq-server >"$d/out" 2>&1 &
  pids+=($!)
  wait_port "$port" 120 || { echo "compare: RabbitMQ did not start" >&2; tail -20 "$d/out" >&2; return 1; }
  bpid=$(listener_pid "$port")
  pids+=("$bpid")
  login=guest
}

start_activemq() {
  local d="$work/activemq" ow
  mkdir -p "$d/data" "$d/tmp"
  port=$(free_port)
  cat >"$d/activemq.xml" <<EOF
<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans
    http://www.springframework.org/schema/beans/spring-beans.xsd
    http://activemq.apache.org/schema/core
    http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="bench"
          dataDirectory="$d/data" useJmx="false" persistent="true">
    <persistenceAdapter><kahaDB directory="$d/data/kahadb"/></persistenceAdapter>
    <transportConnectors>
      <transportConnector name="stomp" uri="stomp://127.0.0.1:$port"/>
    </transportConnectors>
  </broker>
</beans>
EOF
  cp /etc/activemq/instances-available/main/log4j2.properties* "$d/" 2>/dev/null || true
  java -Xms512M -Xmx512M -Djava.io.tmpdir="$d/tmp" \
    -Dactivemq.home=/usr/share/activemq -Dactivemq.base="$d" \
    -Dactivemq.conf="$d" -Dactivemq.data="$d/data" \
    -jar /usr/share/activemq/bin/activemq.jar start "xbean:file:$d/activemq.xml" \
    >"$d/out" 2>&1 &
  pids+=($!)
  bpid=$!
  wait_port "$port" 120 || { echo "compare: ActiveMQ did not start" >&2; tail -20 "$d/out" >&2; return 1; }
  login=admin
}

# ---- workloads ---------------------------------------------------------------

workloads=(
  "1p1c-100B|--producers 1 --consumers 1 --size 100 --count $COUNT --persistent --receipt-every 100"
  "1p1c-1KiB|--producers 1 --consumers 1 --size 1024 --count $COUNT --persistent --receipt-every 100"
  "4p4c-100B|--producers 4 --consumers 4 --size 100 --count $COUNT --persistent --receipt-every 100"
  "4p4c-1KiB|--producers 4 --consumers 4 --size 1024 --count $COUNT --persistent --receipt-every 100"
  "receipt-every-send|--producers 1 --consumers 1 --size 100 --count $LAT_COUNT --persistent --sync-receipts"
)

# the yardstick for "a receipt on every send": one fdatasync of a small
# append on the same file system (probe [N]: N appends, default 500).
# Measured once at the start, and interleaved with each broker's receipts
# (RCHUNKS rounds of: probe 100, LAT_COUNT / RCHUNKS receipts; then a last
# probe): this shared disk's fdatasync time drifts within seconds, so each
# round's receipt p50 is set against the probes right before and after it
# and the table gives the median over the rounds.
RCHUNKS=${RCHUNKS:-5}
probe() {
  /usr/bin/python3 - "$work" "${1:-500}" <<'PY'
import os, sys, time
path = os.path.join(sys.argv[1], "fsync-probe")
n = int(sys.argv[2])
fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC)
ts = []
for _ in range(n):
    os.write(fd, b"x" * 100)
    t = time.perf_counter(); os.fdatasync(fd); ts.append(time.perf_counter() - t)
os.close(fd)
os.unlink(path)
ts.sort()
print("fdatasync_p50_ms=%.3f fdatasync_p99_ms=%.3f" % (ts[n // 2] * 1e3, ts[n * 99 // 100] * 1e3))
PY
}
fsync_ref=$(probe)
echo "== $fsync_ref" >&2

field() { sed -nE "s/.*(^| )$1=([^ ]+).*/\2/p" <<<"$2"; }

if [ -n "${PAIRS:-}" ]; then
  declare -A bport blogin bbpid
  for broker in $BROKERS; do
    echo "== start $broker" >&2
    "start_$broker" || { echo "compare: $broker did not start" >&2; exit 1; }
    bport[$broker]=$port blogin[$broker]=$login bbpid[$broker]=$bpid
    [ "$broker" = sluiced ] && shport=$hport
    "$bench" stomp --port "$port" --login "$login" --passcode \
      "$([ "$login" = admin ] && echo admin || echo guest)" \
      --dest /queue/cmp-warmup --producers 2 --consumers 2 --count 5000 \
      --persistent --receipt-every 100 >/dev/null 2>&1 || true
  done
  runs="$work/runs"
  : >"$runs"
  for r in $(seq "$PAIRS"); do
    for w in "${workloads[@]}"; do
      name=${w%%|*}; args="${w#*|} --window $WINDOW"
      [ "$name" = receipt-every-send ] && continue
      [[ $name =~ $ONLY ]] || continue
      order=($BROKERS)
      [ $((r % 2)) = 0 ] && order=($(printf '%s\n' "${order[@]}" | tac))
      for broker in "${order[@]}"; do
        port=${bport[$broker]} login=${blogin[$broker]}
        pre=$(probe 100)
        declare -A t0=()
        for b in $BROKERS; do t0[$b]=$(cpu_ticks "${bbpid[$b]}"); done
        read -r run0 wait0 < <(sched_ns "${bbpid[$broker]}")
        [ "$broker" = sluiced ] && read -r fs0 fc0 < <(fsync_sum "$shport")
        # shellcheck disable=SC2086
        line=$("$bench" stomp --port "$port" --login "$login" --passcode \
               "$([ "$login" = admin ] && echo admin || echo guest)" \
               --dest "/queue/cmp-$name-$r-$RANDOM" --ack client-individual \
               $args 2>&1 | tail -1) || true
        ticks=""
        for b in $BROKERS; do
          ticks="$ticks ticks_$b=$(( $(cpu_ticks "${bbpid[$b]}") - ${t0[$b]} ))"
        done
        read -r run1 wait1 < <(sched_ns "${bbpid[$broker]}")
        extra="run_ms=$(( (run1 - run0) / 1000000 )) rq_wait_ms=$(( (wait1 - wait0) / 1000000 ))"
        if [ "$broker" = sluiced ]; then
          read -r fs1 fc1 < <(fsync_sum "$shport")
          extra="$extra $(awk -v a="$fs0" -v b="$fs1" -v c="$fc0" -v d="$fc1" \
            'BEGIN { printf "rounds=%d round_fsync_ms=%.3f", d - c, (d > c) ? (b - a) / (d - c) * 1e3 : 0 }')"
        fi
        post=$(probe 100)
        fs=$(awk -v a="$(field fdatasync_p50_ms "$pre")" \
             -v b="$(field fdatasync_p50_ms "$post")" 'BEGIN { printf "%.3f", (a + b) / 2 }')
        echo "round=$r broker=$broker workload=$name load=$(cut -d' ' -f1 /proc/loadavg) fdatasync_ms=$fs$ticks $extra $line" | tee -a "$runs" >&2
      done
    done
  done
  /usr/bin/python3 - "$runs" <<'PY' | tee "${OUT:-/dev/null}"
import re, statistics, sys
runs = {}
order = []
for line in open(sys.argv[1]):
    kv = dict(re.findall(r"(\S+)=(\S+)", line))
    if "in_msg_s" not in kv:
        continue
    key = (kv["workload"], int(kv["round"]))
    if kv["workload"] not in order:
        order.append(kv["workload"])
    runs.setdefault(key, {})[kv["broker"]] = kv
med = statistics.median
print("| workload | rounds | sluiced msg/s median (worst) | RabbitMQ msg/s median (worst) | msg/s ratio per round | median | worst | >= 10x | e2e p99 ratio per round | median | worst | <= 0.1x | load |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
lines = []
for w in order:
    rs = sorted(r for (x, r) in runs if x == w)
    pairs = [runs[(w, r)] for r in rs
             if "sluiced" in runs[(w, r)] and "rabbitmq" in runs[(w, r)]]
    if not pairs:
        continue
    s = [float(p["sluiced"]["in_msg_s"]) for p in pairs]
    q = [float(p["rabbitmq"]["in_msg_s"]) for p in pairs]
    tr = [a / b for a, b in zip(s, q)]
    er = [float(p["sluiced"]["e2e_p99_ms"]) / float(p["rabbitmq"]["e2e_p99_ms"])
          for p in pairs]
    loads = [float(p[b]["load"]) for p in pairs for b in p]
    print("| %s | %d | %.0f (%.0f) | %.0f (%.0f) | %s | %.1fx | %.1fx | %d of %d | %s | %.2f | %.2f | %d of %d | %.1f-%.1f |" % (
        w, len(pairs), med(s), min(s), med(q), min(q),
        ", ".join("%.1f" % x for x in tr), med(tr), min(tr),
        sum(x >= 10 for x in tr), len(tr),
        ", ".join("%.2f" % x for x in er), med(er), max(er),
        sum(x <= 0.1 for x in er), len(er), min(loads), max(loads)))
    prod = 4 if w.startswith("4p") else 1
    lines.append("%s, per round: sluiced's ms per window of 100 (per producer) / its fdatasync rounds' mean ms / the probe's fdatasync p50 ms around it / its threads' run-queue wait ms: %s" % (
        w, "; ".join("%.2f / %.2f / %.2f / %s" % (
            100 * prod / float(p["sluiced"]["in_msg_s"]) * 1e3,
            float(p["sluiced"].get("round_fsync_ms", 0)),
            float(p["sluiced"]["fdatasync_ms"]),
            p["sluiced"].get("rq_wait_ms", "-"))
                     for p in pairs)))
print()
for l in lines:
    print("* " + l)
PY
  exit 0
fi

results="$work/results"
: >"$results"

for broker in $BROKERS; do
  echo "== $broker" >&2
  if ! "start_$broker"; then
    echo "$broker|(did not start)" >>"$results"
    continue
  fi
  # warm-up (JIT, allocators, queue creation paths): not measured
  "$bench" stomp --port "$port" --login "$login" --passcode \
    "$([ "$login" = admin ] && echo admin || echo guest)" \
    --dest /queue/cmp-warmup --producers 2 --consumers 2 --count 5000 \
    --persistent --receipt-every 100 >/dev/null 2>&1 || true
  for w in "${workloads[@]}"; do
    name=${w%%|*}; args="${w#*|} --window $WINDOW"
    [[ $name =~ $ONLY ]] || continue
    dest="/queue/cmp-$name-$RANDOM"
    t0=$(cpu_ticks "$bpid"); s0=$(date +%s.%N)
    # shellcheck disable=SC2086
    line=$("$bench" stomp --port "$port" --login "$login" --passcode \
           "$([ "$login" = admin ] && echo admin || echo guest)" \
           --dest "$dest" --ack client-individual $args 2>&1 | tail -1) || true
    t1=$(cpu_ticks "$bpid"); s1=$(date +%s.%N)
    cpu=$(awk -v a="$t0" -v b="$t1" -v s="$s0" -v e="$s1" -v hz="$(getconf CLK_TCK)" \
          'BEGIN { printf "%.0f", (b - a) / hz / (e - s) * 100 }')
    # the broker's CPU per message sent, from its clock ticks (not from
    # the rounded percentage): issue 20's window-of-one target
    cpumsg=$(awk -v a="$t0" -v b="$t1" -v n="$(field sent "$line")" \
             -v hz="$(getconf CLK_TCK)" \
             'BEGIN { if (n + 0 > 0) printf "%.1f", (b - a) / hz * 1e6 / n; else print "-" }')
    rss=$(rss_mib "$bpid")
    if [ "$name" = receipt-every-send ]; then
      # interleaved with probes, for the ratio (see probe above)
      pre=$(probe 100)
      for _ in $(seq "$RCHUNKS"); do
        # shellcheck disable=SC2086
        l=$("$bench" stomp --port "$port" --login "$login" --passcode \
            "$([ "$login" = admin ] && echo admin || echo guest)" \
            --dest "$dest-r" --ack client-individual \
            ${args/--count $LAT_COUNT/--count $((LAT_COUNT / RCHUNKS))} \
            2>&1 | tail -1) || true
        post=$(probe 100)
        printf '%s|%s|%s|%s\n' "$broker" "$(field receipt_p50_ms "$l")" \
          "$(field fdatasync_p50_ms "$pre")" \
          "$(field fdatasync_p50_ms "$post")" >>"$work/receipt"
        pre=$post
      done
    fi
    echo "  $name: $line cpu=${cpu}% cpu_us_per_msg=$cpumsg rss=${rss}MiB" >&2
    printf '%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s\n' "$broker" "$name" \
      "$(field in_msg_s "$line")" "$(field out_msg_s "$line")" \
      "$(field e2e_p50_ms "$line")" "$(field e2e_p99_ms "$line")" \
      "$(field e2e_p999_ms "$line")" "$(field receipt_p50_ms "$line")" \
      "$(field receipt_p99_ms "$line")" "$(field receipt_p999_ms "$line")" \
      "$cpu" "$rss" "$cpumsg" >>"$results"
  done
  # stop this broker (and its helpers) before starting the next one
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  pids=()
done

{
  echo "| broker | workload | msg/s in | msg/s out | e2e p50 ms | e2e p99 ms | e2e p99.9 ms | receipt p50 ms | receipt p99 ms | receipt p99.9 ms | broker CPU % | RSS MiB | broker CPU µs/msg |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  awk -F'|' '{ printf "|"; for (i = 1; i <= NF; i++) printf " %s |", $i; print "" }' "$results"
  echo
  echo "Reference on the same file system: $fsync_ref (500 appends of 100 B)."
  echo
  echo "Ratios sluiced / RabbitMQ (throughput: higher is better; p99: lower is better):"
  echo
  echo "| workload | in x | out x | e2e p99 / | receipt p99 / | CPU per msg: RabbitMQ's / sluiced's |"
  echo "|---|---|---|---|---|---|"
  awk -F'|' '
    $1 == "sluiced" { si[$2]=$3; so[$2]=$4; se[$2]=$6; sr[$2]=$9; sc[$2]=$13; order[++n]=$2 }
    $1 == "rabbitmq" { ri[$2]=$3; ro[$2]=$4; re[$2]=$6; rr[$2]=$9; rc[$2]=$13 }
    function q(a, b) { return (b + 0 > 0 && a != "") ? sprintf("%.2f", a / b) : "-" }
    END { for (i = 1; i <= n; i++) { w = order[i];
      printf "| %s | %s | %s | %s | %s | %s |\n", w, q(si[w], ri[w]), q(so[w], ro[w]),
             q(se[w], re[w]), q(sr[w], rr[w]), q(rc[w], sc[w]) } }' "$results"
  echo
  echo "A receipt on every send: $RCHUNKS rounds of $((LAT_COUNT / RCHUNKS)) receipts, each"
  echo "round's receipt p50 against the mean p50 of the fdatasync probes (100"
  echo "appends of 100 B) right before and after it:"
  echo
  echo "| broker | per round: receipt p50 ms / fdatasync p50 ms = ratio | median ratio |"
  echo "|---|---|---|"
  if [ -f "$work/receipt" ]; then
    awk -F'|' '
      { m = ($3 + $4) / 2; r = (m > 0) ? $2 / m : 0
        if (!($1 in n)) order[++nb] = $1
        k = ++n[$1]; ratio[$1, k] = r
        txt[$1] = txt[$1] sprintf("%s%s / %.3f = %.2f", (k > 1 ? "; " : ""), $2, m, r) }
      END { for (i = 1; i <= nb; i++) { b = order[i]; c = n[b]
        for (x = 1; x <= c; x++) for (y = x + 1; y <= c; y++)
          if (ratio[b, y] < ratio[b, x]) { t = ratio[b, x]; ratio[b, x] = ratio[b, y]; ratio[b, y] = t }
        med = (c % 2) ? ratio[b, (c + 1) / 2] : (ratio[b, c / 2] + ratio[b, c / 2 + 1]) / 2
        printf "| %s | %s | %.2f |\n", b, txt[b], med } }' "$work/receipt"
  fi
} | tee "${OUT:-/dev/null}"
