#!/usr/bin/env bash
# bench/conn_scaling.sh - producer connections and idle connections
# (issue 20 item 4, issue 18's idle cost).
#
#   bench/conn_scaling.sh [BUILD_DIR] [ROUNDS]       (default build, 3)
#   env: CONNS ("1 4 16 64 256"), RECORDS (in total per run, 2000000),
#        SIZE (100), ACKS (durable), IDLE (idle connections, 10000),
#        BASE (a second build directory: before/after pairs, see below),
#        WARM (records produced, unmeasured, before the first run: 0),
#        CLIENT (threads, mux, or "threads mux" for both: threads),
#        CLIENT_BASE (a second build whose sluice-bench, so libsluice,
#        runs against BUILD_DIR's one sluiced: see below),
#        EVICT (1: the broker's data out of the page cache before each
#        run, see WARM)
#
# 1. Throughput: `sluice-bench produce --producers N` (N threads, one
#    libsluice producer and so one connection each; RECORDS in total, one
#    partition, libsluice's defaults) for each N, in rounds that run the
#    counts ascending, then descending, and so on, on one sluiced; the
#    broker's CPU (user+system, all threads, /proc/PID/stat) and page
#    faults (minflt) per run. The client's CPU and page faults
#    (/usr/bin/time) are printed beside them, and the two CPUs' sum per
#    record: both share the machine's 2 cores, so under load throughput
#    follows that sum. With BASE=DIR, each count runs with BASE's
#    sluiced and sluice-bench and with BUILD_DIR's, alternating which
#    goes first, each build on its own sluiced (both started once): the
#    summary gives each build's medians side by side.
#    CLIENT_BASE=DIR is the same with one sluiced (BUILD_DIR's) for both:
#    only the client alternates, so a client change is compared without
#    two brokers' memory states between them (the broker's CPU per record
#    steps by 2.5x with the VM's memory state, see WARM).
#    CLIENT=mux runs `sluice-bench produce-mux --conns N` instead: the N
#    connections on one client thread with epoll (bench/sluice_bench_mux.c,
#    pre-built batches of libsluice's default size and max.in.flight), as
#    an application server holds its connections; its client CPU per
#    record is small and the same for every N, so the broker's scaling
#    shows without N client threads competing for the 2 cores.
#    CLIENT="threads mux" runs both, one after the other for each count
#    (alternating which first), and summarises each client on its own.
#    Each run also gives the broker's event loop thread's time on a CPU
#    and time runnable but waiting for one (/proc/PID/task/PID/schedstat),
#    per record: on a machine whose cores other processes keep busy the
#    throughput follows the second as much as the first.
#    sluice-bench produce also reports the measured window alone (from
#    the clock's start to the last report: connecting 256 producers and
#    closing them left out): its own CPU, page faults and context
#    switches, and the broker's CPU (its threads' schedstat; the script
#    passes the broker's pid in SLUICE_BENCH_PEER_PID); printed as
#    "window only" under each count.
#    WARM: on a VM whose host takes freed guest memory back (free page
#    reporting), the page cache's first write to a page the host has to
#    fault in costs several times a write to a page in use (about 2.2
#    against 0.5 ms of CPU per MB here, docs/benchmarks.md "Issue 20:
#    session 11"): the broker's CPU per record steps up about 2.5x once
#    a fresh broker's appends have used up the memory freed recently
#    (1.2-1.4 GB here) and stays there. Runs before and after that step
#    do not compare; WARM=16000000 (1.6 GB) makes every measured run
#    come after it.
#    EVICT=1: before each run, every file of the broker's data directory
#    is synced and dropped from the page cache (fdatasync, then
#    posix_fadvise DONTNEED): the next run's appends then take pages
#    the previous runs freed, not fresh memory, and every run stays in
#    the fast state (docs/benchmarks.md "Issue 20: client at 256
#    producer connections, session 15"). Say which state a figure is
#    from.
# 2. Idle cost: IDLE connections opened and left idle, binary ones (no
#    handshake), then STOMP ones (CONNECT answered by CONNECTED, nothing
#    more), each on a fresh sluiced; the broker's RSS and descriptors
#    before and after, and its CPU over 5 s with them open.
#    bench/idle_conns.py does the connecting.
# Stops the brokers by pid.
set -euo pipefail
cd "$(dirname "$0")/.."
B=$(pwd)/${1:-build}
ROUNDS=${2:-3}
CONNS=${CONNS:-"1 4 16 64 256"}
RECORDS=${RECORDS:-2000000}
SIZE=${SIZE:-100}
ACKS=${ACKS:-durable}
IDLE=${IDLE:-10000}
BASE=${BASE:+$(pwd)/$BASE}
CLIENT_BASE=${CLIENT_BASE:+$(pwd)/$CLIENT_BASE}
. bench/sluiced.sh
out=$(mktemp)
builds=("$B")
[ -n "$BASE" ] && builds=("$BASE" "$B")
[ -n "$CLIENT_BASE" ] && builds=("$CLIENT_BASE" "$B")
declare -A bpid bbport bdir
for bd in "${builds[@]}"; do
  if [ "$bd" = "$CLIENT_BASE" ]; then continue; fi
  sluiced_start "$bd" conns --max-connections $((IDLE + 1000))
  bpid[$bd]=$pid bbport[$bd]=$bport bdir[$bd]=$d
done
if [ -n "$CLIENT_BASE" ]; then # its clients use BUILD_DIR's sluiced
  bpid[$CLIENT_BASE]=${bpid[$B]} bbport[$CLIENT_BASE]=${bbport[$B]}
  bdir[$CLIENT_BASE]=${bdir[$B]}
fi
stop_all() {
  for bd in "${builds[@]}"; do
    kill "${bpid[$bd]}" 2>/dev/null || true
    wait "${bpid[$bd]}" 2>/dev/null || true
    rm -rf "${bdir[$bd]}"
  done
}
trap 'rm -f "$out"; stop_all' EXIT
stat_of() { awk '{print $14 + $15, $10}' "/proc/$1/stat"; }
# the event loop thread (tid = pid): ns on a CPU, ns runnable but waiting
loop_of() { awk '{print $1, $2}' "/proc/$1/task/$1/schedstat"; }
WARM=${WARM:-0}
EVICT=${EVICT:-0}
evict() { # the broker's data files out of the page cache (EVICT=1)
  [ "$EVICT" = 1 ] || return 0
  python3 - "$1/data" <<'PY'
import os, sys
for root, _, files in os.walk(sys.argv[1]):
    for f in files:
        try:
            fd = os.open(os.path.join(root, f), os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass
        os.close(fd)
PY
}
CLIENT=${CLIENT:-threads}
if [ "$WARM" -gt 0 ]; then
  for bd in "${builds[@]}"; do
    [ "$bd" = "$CLIENT_BASE" ] && continue
    "$bd/bin/sluice-bench" produce -b "127.0.0.1:${bbport[$bd]}" \
      --topic warm --records "$WARM" --size "$SIZE" --acks "$ACKS" \
      --producers 1 >/dev/null 2>&1
  done
fi
echo "== producer connections (load: $(cut -d' ' -f1-3 /proc/loadavg))"
order=$CONNS
rev=$(echo "$CONNS" | tr ' ' '\n' | tac | tr '\n' ' ')
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then list=$order; else list=$rev; fi
  for n in $list; do
    if [ $(((r + n) % 2)) = 1 ]; then bl=("${builds[@]}"); else
      bl=($(printf '%s\n' "${builds[@]}" | tac)); fi
    cl=($CLIENT)
    [ $(((r + n) % 2)) = 1 ] || cl=($(printf '%s\n' "${cl[@]}" | tac))
    for bd in "${bl[@]}"; do
     for c in "${cl[@]}"; do
      p=${bpid[$bd]}
      if [ "$c" = mux ]; then
        cmd=(produce-mux --conns "$n")
      else
        cmd=(produce --producers "$n")
      fi
      evict "${bdir[$bd]}"
      read -r t0 f0 < <(stat_of "$p")
      read -r l0 w0 < <(loop_of "$p")
      # the client's own CPU and faults too (sluice-bench, in s)
      line=$( { SLUICE_BENCH_PEER_PID=$p \
        /usr/bin/time -f "client_cpu_s=%U+%S client_minflt=%R" \
        "$bd/bin/sluice-bench" "${cmd[0]}" -b "127.0.0.1:${bbport[$bd]}" \
        --topic "c$n-$r-$c-$(basename "$bd")" --records "$RECORDS" --size "$SIZE" \
        --acks "$ACKS" "${cmd[@]:1}"; } 2>&1 | tail -2 | tr '\n' ' ')
      read -r t1 f1 < <(stat_of "$p")
      read -r l1 w1 < <(loop_of "$p")
      echo "build=$(basename "$bd") client=$c conns=$n $line cpu_ticks=$((t1 - t0)) broker_minflt=$((f1 - f0)) loop_run_ms=$(((l1 - l0) / 1000000)) loop_wait_ms=$(((w1 - w0) / 1000000)) load=$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$out"
     done
    done
  done
done
python3 - "$out" "$RECORDS" "${builds[@]##*/}" <<'PY'
import os, re, statistics, sys
hz = os.sysconf("SC_CLK_TCK")
rows = {}
for line in open(sys.argv[1]):
    kv = dict(re.findall(r"(\S+)=(\S+)", line))
    # produce-mux sends whole batches: its records= is the count it made
    n_rec = float(kv.get("records", sys.argv[2]))
    rows.setdefault((kv["build"], kv["client"], int(kv["conns"])), []).append(
        (float(kv["records_per_sec"]),
         float(kv["cpu_ticks"]) / hz * 1e6 / n_rec,
         eval(kv["client_cpu_s"]) * 1e6 / n_rec,
         int(kv["broker_minflt"]), int(kv["client_minflt"]),
         float(kv.get("loop_run_ms", "nan")) * 1e3 / n_rec,
         float(kv.get("loop_wait_ms", "nan")) * 1e3 / n_rec,
         # the measured window only (sluice-bench produce): client and
         # broker CPU, client faults and context switches
         float(kv.get("win_cpu_us", "nan")) / n_rec,
         float(kv.get("peer_cpu_us", "nan")) / n_rec,
         float(kv.get("win_minflt", "nan")),
         float(kv.get("win_vcsw", "nan")), float(kv.get("win_ivcsw", "nan"))))
med = statistics.median
for build, client in dict.fromkeys((b, c) for a in sys.argv[3:]
                                    for (b, c, n) in rows if b == a):
    mine = {n: v for (b, c, n), v in rows.items()
            if b == build and c == client}
    best = max(med([x[0] for x in v]) for v in mine.values())
    print("== %s, client %s" % (build, client))
    for n in sorted(mine):
        v = mine[n]
        r = [x[0] for x in v]; u = [x[1] for x in v]; cl = [x[2] for x in v]
        tot = [x[1] + x[2] for x in v]
        print("  conns %4d  records/s median %10.0f worst %10.0f (%.2fx the best median) | CPU us/record: broker median %.3f worst %.3f, client median %.3f, sum median %.3f | loop thread us/record: on a CPU %.3f, waiting for one %.3f | page faults: broker %d, client %d (medians, %d runs)"
              % (n, med(r), min(r), med(r) / best, med(u), max(u), med(cl),
                 med(tot), med([x[5] for x in v]), med([x[6] for x in v]),
                 med([x[3] for x in v]), med([x[4] for x in v]),
                 len(r)))
        if any(x[7] == x[7] for x in v):  # produce: the window's figures
            print("             window only: CPU us/record broker %.3f client %.3f sum %.3f | client page faults %d, context switches %d waits + %d preemptions (medians)"
                  % (med([x[8] for x in v]), med([x[7] for x in v]),
                     med([x[7] + x[8] for x in v]), med([x[9] for x in v]),
                     med([x[10] for x in v]), med([x[11] for x in v])))
PY
stop_all
trap 'rm -f "$out"' EXIT
echo "== $IDLE idle connections, each kind on a fresh sluiced (a broker that"
echo "   ran the workload above holds freed heap that would hide the cost)"
for kind in binary stomp; do
  (
    sluiced_start "$B" idle --max-connections $((IDLE + 1000))
    python3 bench/idle_conns.py "$pid" "$bport" "$sport" "$IDLE" "$kind"
  )
done
