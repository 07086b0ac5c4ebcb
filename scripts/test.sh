#!/usr/bin/env bash
# Install what is missing, build, and run every test: C unit and integration
# tests (ctest), the Python bindings' pytest suite, then the C suite once more
# under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
jobs=$(nproc)

echo "== build (release)"
./scripts/build.sh build
echo "== formatting (scripts/format-files.txt)"
./scripts/format.sh --check
echo "== no include cycle between the modules of any library directory"
# (docs/broker.md, Files)
python3 scripts/include-cycles.py protocol storage groups cluster broker client cli
echo "== docs/configuration.md and sluiced.conf match the config table"
./scripts/gen-config-doc.sh --check build
echo "== ctest (release)"
(cd build && ctest --output-on-failure -j"$jobs")

if [ -f bindings/python/setup.py ]; then
  echo "== python bindings"
  ./scripts/python-test.sh build
fi

echo "== fuzz targets (a short run of each; scripts/fuzz.sh SECONDS for more)"
FUZZ_SEED=${FUZZ_SEED:-1} ./scripts/fuzz.sh "${SLUICE_FUZZ_SECONDS:-8}"

echo "== build (ASan + UBSan)"
./scripts/build.sh build-asan -DSLUICE_SANITIZE=ON
echo "== ctest (ASan + UBSan)"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --output-on-failure -j"$jobs")
echo "== all tests passed"
