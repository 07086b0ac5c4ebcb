#!/usr/bin/env bash
# Install what is missing, build, and run every test: C unit and integration
# tests (ctest), the Python bindings' pytest suite, then the C suite once more
# under AddressSanitizer + UndefinedBehaviorSanitizer.
#
# Time (docs/development.md, Test time): most ctest tests wait (elections,
# heartbeats, sessions, a sluiced's start-up) rather than compute, so ctest
# runs twice as many tests as there are cores (SLUICE_TEST_JOBS sets it),
# the longest first (their COST, tests/CMakeLists.txt), and the Python
# suite runs beside the release ctest (its output follows ctest's).
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
py_pid=
if [ -f bindings/python/setup.py ]; then
  ./scripts/python-test.sh build >build/python-test.log 2>&1 &
  py_pid=$!
  trap 'kill "$py_pid" 2>/dev/null || true' EXIT
fi
echo "== ctest (release; the Python bindings' suite runs beside it)"
rc=0
(cd build && ctest --output-on-failure -j"$jobs") || rc=$?
if [ -n "$py_pid" ]; then
  echo "== python bindings (build/python-test.log)"
  wait "$py_pid" || rc=$((rc ? rc : 1))
  trap - EXIT
  cat build/python-test.log
fi
[ "$rc" -eq 0 ] || { echo "== FAILED (release ctest or python bindings)"; exit "$rc"; }

echo "== fuzz targets (a short run of each; scripts/fuzz.sh SECONDS for more)"
FUZZ_SEED=${FUZZ_SEED:-1} ./scripts/fuzz.sh "${SLUICE_FUZZ_SECONDS:-8}"

echo "== build (ASan + UBSan)"
./scripts/build.sh build-asan -DSLUICE_SANITIZE=ON
echo "== ctest (ASan + UBSan)"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --output-on-failure -j"$jobs")
echo "== all tests passed"
