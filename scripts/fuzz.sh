#!/usr/bin/env bash
# Build the libFuzzer targets (tests/fuzz/) with clang and run each one for
# SECONDS (default 60), one after the other:
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (targets: request response
#     stomp_frame batch zstd segment config users http relay_frame
#     meta_cmd;
#     default all)
# Each run starts from the seed corpus tests/fuzz/corpus/TARGET (every seed
# and regression input is replayed first) plus what earlier runs found,
# kept in BUILD/fuzz-work/TARGET (not in the repository). A crash, leak,
# timeout or sanitizer report fails the script; the input that caused it is
# saved as BUILD/fuzz-work/crash-TARGET-* (add it to the corpus with the
# fix). A summary line per target gives executions, edges covered (cov),
# features (ft) and the corpus size. See docs/fuzzing.md.
# Env: FUZZ_BUILD (default build-fuzz), FUZZ_JOBS (build jobs, default 2),
# FUZZ_SEED (libFuzzer -seed; default 0 = a new random seed each run; the
# suite's short run uses a fixed one so CI explores the same inputs each
# time and a new finding shows up in a campaign, not as a flaky CI run).
# scripts/fuzz.sh --build-only: build the targets and stop (scripts/test.sh
# builds first, then runs them beside the release ctest).
set -euo pipefail
cd "$(dirname "$0")/.."
build_only=
[ "${1:-}" = "--build-only" ] && { build_only=1; shift; }
secs=${1:-60}
shift || true
all=(request response stomp_frame batch zstd segment config users http
  relay_frame meta_cmd)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")
build=${FUZZ_BUILD:-build-fuzz}

CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSLUICE_FUZZ=ON -DSLUICE_TESTS=OFF >/dev/null
cmake --build "$build" -j"${FUZZ_JOBS:-2}" --target fuzz_all >/dev/null
[ -n "$build_only" ] && exit 0

work="$build/fuzz-work"
mkdir -p "$work"
failed=()
for t in "${targets[@]}"; do
  bin="$build/bin/fuzz_$t"
  [ -x "$bin" ] || { echo "fuzz: no target $t" >&2; exit 2; }
  mkdir -p "$work/$t"
  log="$work/$t.log"
  maxlen=4096
  case $t in segment|config|response|request) maxlen=65536 ;; esac
  rc=0
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$bin" -max_total_time="$secs" -seed="${FUZZ_SEED:-0}" -timeout=10 -rss_limit_mb=2048 \
      -max_len=$maxlen -print_final_stats=1 \
      -artifact_prefix="$work/crash-$t-" \
      "$work/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" |
          grep -o '[0-9]*$' || echo "?")
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*' || echo "?")
  ft=$(echo "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*' || echo "?")
  corp=$(echo "$last" | grep -o 'corp: [0-9]*' | grep -o '[0-9]*' || echo "?")
  if [ $rc -ne 0 ]; then
    echo "fuzz $t: FAILED (exit $rc) after $execs execs; log $log"
    grep -E 'ERROR|runtime error|SUMMARY|Test unit written' "$log" | head -5
    failed+=("$t")
  else
    echo "fuzz $t: ${secs}s, $execs execs, cov $cov, ft $ft, corpus $corp"
  fi
done
if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}"
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets passed"
