#!/usr/bin/env bash
# Install what is missing, build, and start sluiced with its defaults
# (binary protocol 127.0.0.1:7410, STOMP 127.0.0.1:61613, data ./sluice-data).
# Extra arguments are passed to sluiced.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./scripts/build.sh build
exec ./build/bin/sluiced "$@"
