#!/usr/bin/env bash
# Build the Python bindings in place against BUILD_DIR's libsluice and run
# their pytest suite (which also runs examples/) with the sluiced of
# BUILD_DIR/bin.
#
#   ./scripts/python-test.sh [BUILD_DIR] [pytest args...]
#
# Always Debian's /usr/bin/python3: it has python3-dev, setuptools and pytest.
# A `python3` earlier on PATH (pyenv, ...) may have none of them.
# When BUILD_DIR was configured with -DSLUICE_SANITIZE=ON, the extension is
# built with ASan too and the interpreter runs with libasan preloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${1:-build}
shift || true
build=$(cd "$build" && pwd)
PY=/usr/bin/python3

if [ ! -x "$build/bin/sluiced" ]; then
  echo "python-test: $build/bin/sluiced not found: build first" \
       "(./scripts/build.sh $build)" >&2
  exit 1
fi

env_extra=()
if grep -q '^SLUICE_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  asan=$(gcc -print-file-name=libasan.so)
  ubsan=$(gcc -print-file-name=libubsan.so)
  # CPython's own allocations are reported as leaks at exit: leaks off.
  # SLUICE_SANITIZED: the RSS checks of test_memory.py are skipped (ASan's
  # quarantine holds freed memory); the reference-count checks still run.
  env_extra=(LD_PRELOAD="$asan:$ubsan" SLUICE_SANITIZED=1
             ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
             UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1)
fi

echo "python-test: building sluice._sluice against $build"
(cd bindings/python &&
 SLUICE_WERROR=1 SLUICE_BUILD_DIR="$build" "$PY" setup.py -q build_ext \
     --inplace --force \
     --build-temp "$build/python-ext" >/dev/null)

echo "python-test: pytest"
cd bindings/python
exec env "${env_extra[@]}" SLUICE_BIN_DIR="$build/bin" \
    SLUICE_SOURCE_DIR="$root" PYTHONPATH="$root/bindings/python" \
    "$PY" -m pytest -q -p no:cacheprovider tests "$@"
