#!/usr/bin/env bash
# Install what Sluice needs from Debian's packages, only if something is
# missing. Idempotent; used by run.sh and test.sh.
set -euo pipefail
PKGS=(build-essential cmake pkg-config libevent-dev libssl-dev libsqlite3-dev
      libzstd-dev libcmocka-dev python3 python3-dev python3-setuptools
      python3-pytest python3-stomp python3-mypy sqlite3
      clang libclang-rt-14-dev
      clang-format # scripts/format.sh --check (scripts/test.sh)
      libraft-dev libuv1-dev
      libwslay-dev # STOMP over WebSocket (broker/ws.c)
      libnet-stomp-perl # Net::Stomp, a third-party client (test_stomp_compat)
      ruby-stomp # the Ruby stomp gem, a third-party client (test_stomp_peers)
      rabbitmq-server activemq # the reference brokers (tests/stomp/test_stomp_peers.py)
      zstd # zstd: the CLI builds zstd bombs in tests/integration
      libcjson-dev python3-prometheus-client curl chromium
      openssl # the TLS tests make their certificates with it
      systemd # systemd-analyze verify: the example unit (test_install)
      liburing-dev # io_uring modes of bench/fsync_one.c and bench/durable_call.c
      iproute2) # ip netns: the network-partition test (tests/cluster)
missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if [ ${#missing[@]} -ne 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The console's browser test (tests/console): puppeteer-core from npm,
# installed globally (every checkout of the machine finds it through
# NODE_PATH=$(npm root -g)), driving Debian's chromium (in PKGS above).
if ! command -v npm >/dev/null; then # Debian's nodejs 18 and npm
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -d "$(npm root -g)/puppeteer-core" ]; then
  $SUDO npm install -g --no-audit --no-fund --silent puppeteer-core@25.19.0
fi
# STOMP over WebSocket's tests (tests/stomp/test_stomp_ws.py): stompjs in
# Node (with the ws package) and in chromium
if [ ! -d "$(npm root -g)/@stomp/stompjs" ] || [ ! -d "$(npm root -g)/ws" ]; then
  $SUDO npm install -g --no-audit --no-fund --silent @stomp/stompjs@7.5.0 ws@8.23.1
fi
# stompit, a Node STOMP client over TCP (tests/stomp/test_stomp_peers.py)
if [ ! -d "$(npm root -g)/stompit" ]; then
  $SUDO npm install -g --no-audit --no-fund --silent stompit@1.0.0
fi
