#!/usr/bin/env bash
# Installs everything the tests and examples need beyond the toolchains (Rust, Node 20 +
# npm, Python 3.11, Go, gcc). Idempotent: safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "setup: '$1' is required but not installed" >&2; exit 1; }; }
need cargo
need node
need npm

# Real SockJS peers for the interop tests (sockjs-client and the sockjs-node server).
if [ ! -d tests/interop/sockjs/node_modules ] || [ tests/interop/sockjs/package-lock.json -nt tests/interop/sockjs/node_modules ]; then
  echo "setup: installing SockJS interop peers from npm"
  npm ci --prefix tests/interop/sockjs --no-audit --no-fund --loglevel=error
  touch tests/interop/sockjs/node_modules
fi
echo "setup: done"
