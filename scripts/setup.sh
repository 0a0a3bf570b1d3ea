#!/usr/bin/env bash
# Installs everything the tests and examples need beyond the toolchains (Rust, Node 20 +
# npm, Python 3.11, Go, gcc). Idempotent: safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "setup: '$1' is required but not installed" >&2; exit 1; }; }
need cargo
need node
need npm
need go

# Real SockJS peers for the interop tests (sockjs-client and the sockjs-node server).
if [ ! -d tests/interop/sockjs/node_modules ] || [ tests/interop/sockjs/package-lock.json -nt tests/interop/sockjs/node_modules ]; then
  echo "setup: installing SockJS interop peers from npm"
  npm ci --prefix tests/interop/sockjs --no-audit --no-fund --loglevel=error
  touch tests/interop/sockjs/node_modules
fi

# kite.js 1.0.13, the JavaScript interop peer (core/tests/interop.rs, tests/interop/kitejs).
if [ ! -d tests/interop/kitejs/node_modules ] || [ tests/interop/kitejs/package-lock.json -nt tests/interop/kitejs/node_modules ]; then
  echo "setup: installing kite.js interop peer from npm"
  npm ci --prefix tests/interop/kitejs --no-audit --no-fund --loglevel=error
  touch tests/interop/kitejs/node_modules
fi

# puppeteer-core for the browser test of Kontrol's /ui (tests/ui); the browser is Debian's
# chromium, installed below.
if [ ! -d tests/ui/node_modules ] || [ tests/ui/package-lock.json -nt tests/ui/node_modules ]; then
  echo "setup: installing puppeteer-core for the /ui browser test from npm"
  npm ci --prefix tests/ui --no-audit --no-fund --loglevel=error
  touch tests/ui/node_modules
fi

# The Go reference kite's interop programs (server, client, mint, capture) in
# tests/interop/go/bin, from the Go module proxy; quick when already built.
echo "setup: building the Go reference interop programs"
bash tests/interop/go/build.sh

# From Debian: protoc and its well-known .proto files, which the build of the optional
# `etcd` feature (etcd-client) needs, the etcd server that core/tests/storage_etcd.rs
# starts, and chromium for the /ui browser test. Only what is missing.
missing=()
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
[ -f /usr/include/google/protobuf/descriptor.proto ] || missing+=(libprotobuf-dev)
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
# The headless browser of the /ui test (tests/ui/live_view.test.mjs).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} from Debian"
  as_root=""; [ "$(id -u)" -eq 0 ] || as_root="sudo"
  $as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# PostgreSQL server binaries from Debian, for the storage tests: core/tests/storage.rs starts
# its own server in a scratch directory (as the `postgres` user when run as root). No
# system-wide service is started: a temporary policy-rc.d forbids it during the install.
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  echo "setup: installing postgresql from Debian"
  as_root=""; [ "$(id -u)" -eq 0 ] || as_root="sudo"
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $as_root tee "$policy" >/dev/null
    $as_root chmod 755 "$policy"
  fi
  status=0
  { $as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null; } || status=$?
  [ -z "$policy" ] || $as_root rm -f "$policy"
  [ "$status" -eq 0 ] || { echo "setup: installing postgresql failed" >&2; exit "$status"; }
fi

# The Python package kite-rs (bindings-python, built by maturin) and its test tools, in the
# virtual environment .venv. The wheel is built once (`maturin build`, profile dist, the same
# manylinux wheel scripts/release.sh ships) into target/wheels and installed from there; the
# pytest suite and scripts/test-python-package.sh both test that file. It is rebuilt only
# when a Rust or Python source of the package is newer than the last install.
need python3
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating the Python virtual environment .venv"
  python3 -m venv .venv
fi
# prometheus_client: its OpenMetrics parser reads the kites' /metrics in the tests.
if ! .venv/bin/python -c "import pytest, pytest_asyncio, mypy, auditwheel, prometheus_client" >/dev/null 2>&1 || [ ! -x .venv/bin/maturin ]; then
  echo "setup: installing pytest, pytest-asyncio, mypy, maturin, auditwheel and prometheus_client into .venv"
  .venv/bin/pip install -q --disable-pip-version-check "pytest>=8" "pytest-asyncio>=0.23" "mypy>=1.10" \
    "maturin>=1.7,<2" "auditwheel>=6" "prometheus_client>=0.20"
fi
py_stamp=.venv/.kite-rs-installed
if [ ! -f "$py_stamp" ] || [ ! -f target/wheels/.built ] || [ -n "$(find pyproject.toml Cargo.toml Cargo.lock core/Cargo.toml core/src \
    bindings-python/Cargo.toml bindings-python/src bindings-python/python LICENSE -newer "$py_stamp" -print -quit)" ]; then
  echo "setup: building the kite-rs wheel (maturin build --profile dist) and installing it into .venv"
  bash scripts/build-wheel.sh target/wheels
  .venv/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps target/wheels/kite_rs-*.whl
  touch "$py_stamp"
fi

# The Node binding (bindings-node/): the npm packages at the top (napi-rs CLI, kite.js,
# TypeScript, @types/node), then the native addon, built once (`npm run build`: napi build,
# profile dist, stripped) into bindings-node/kite-rs.linux-x64-gnu.node, where the loader
# finds it first; the node tests and scripts/test-npm-package.sh (which packs it) use that
# file. It is rebuilt whenever the Rust sources changed since the last build.
node_stamp=node_modules/.kite-rs-addon-built
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  # `npm install`, not `npm ci`: the lock lists the platform packages (optionalDependencies,
  # published with each release) without entries until they exist on the registry, which
  # `npm ci` refuses; `npm install --no-save` takes everything else from the lock, skips
  # them, and leaves package-lock.json as it is.
  echo "setup: installing the Node binding's packages (npm install --no-save)"
  npm install --no-save --no-audit --no-fund --loglevel=error
  touch node_modules
fi
if [ ! -f "$node_stamp" ] || [ -n "$(find Cargo.toml Cargo.lock core/Cargo.toml core/src package.json \
    bindings-node/Cargo.toml bindings-node/build.rs bindings-node/src bindings-node/header.d.ts \
    -newer "$node_stamp" -print -quit)" ]; then
  echo "setup: building the Node binding's native addon (npm run build)"
  npm run build --silent
  touch "$node_stamp"
fi

echo "setup: done"
