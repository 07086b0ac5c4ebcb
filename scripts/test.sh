#!/usr/bin/env bash
# Install what is missing, build, and run every test: C unit and integration
# tests (ctest), the Python bindings' pytest suite, then the C suite once more
# under AddressSanitizer + UndefinedBehaviorSanitizer.
#
# Time (docs/development.md, Test time): most ctest tests wait (elections,
# heartbeats, sessions, a sluiced's start-up) rather than compute, so ctest
# runs twice as many tests as there are cores (SLUICE_TEST_JOBS sets it),
# the longest first (their COST, tests/CMakeLists.txt), and the Python
# suite and the short fuzz runs go beside the release ctest (their output
# follows ctest's).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
jobs=${SLUICE_TEST_JOBS:-$(($(nproc) * 2))}

echo "== build (release)"
./scripts/build.sh build
echo "== formatting (scripts/format-files.txt)"
./scripts/format.sh --check
echo "== no include cycle between the modules of any library directory"
# (docs/broker.md, Files)
python3 scripts/include-cycles.py protocol storage groups cluster broker client cli
echo "== docs/configuration.md and sluiced.conf match the config table"
./scripts/gen-config-doc.sh --check build
echo "== build (fuzz targets, clang)"
./scripts/fuzz.sh --build-only

# Beside the release ctest, in the background (output printed after it):
# the Python bindings' suite, and a short run of each fuzz target.
bg_pids=() bg_what=() bg_logs=()
beside() { # WHAT LOG CMD...
  local what=$1 log=$2
  shift 2
  "$@" >"$log" 2>&1 &
  bg_pids+=($!) bg_what+=("$what") bg_logs+=("$log")
}
trap 'for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
if [ -f bindings/python/setup.py ]; then
  beside "python bindings" build/python-test.log ./scripts/python-test.sh build
fi
beside "fuzz targets (a short run of each; scripts/fuzz.sh SECONDS for more)" \
  build/fuzz-short.log env FUZZ_SEED="${FUZZ_SEED:-1}" \
  ./scripts/fuzz.sh "${SLUICE_FUZZ_SECONDS:-8}"
echo "== ctest (release; the Python suite and the fuzz runs go beside it)"
failed=()
(cd build && ctest --output-on-failure -j"$jobs") || failed+=("release ctest")
for i in "${!bg_pids[@]}"; do
  echo "== ${bg_what[$i]} (${bg_logs[$i]})"
  wait "${bg_pids[$i]}" || failed+=("${bg_what[$i]%% (*}")
  cat "${bg_logs[$i]}"
done
trap - EXIT
if [ ${#failed[@]} -ne 0 ]; then
  echo "== FAILED: $(printf "[%s] " "${failed[@]}")"
  exit 1
fi

echo "== build (ASan + UBSan)"
./scripts/build.sh build-asan -DSLUICE_SANITIZE=ON
echo "== ctest (ASan + UBSan)"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --output-on-failure -j"$jobs")
echo "== all tests passed"
