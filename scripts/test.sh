#!/usr/bin/env bash
# Runs every test: formatting, Rust unit and integration tests (including the interop tests
# against real SockJS peers from npm), and doc tests. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo fmt --all -- --check
cargo test --workspace --all-targets --locked
cargo test -p kite --features etcd --test storage_etcd --locked
cargo test --workspace --doc --locked
echo "test.sh: all tests passed"
