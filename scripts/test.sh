#!/usr/bin/env bash
# Runs every test: formatting, manifests, Rust unit and integration tests (including the
# interop tests against real SockJS peers from npm), doc tests, the Python and Node bindings'
# suites, and the packages installed as users install them. CI runs exactly this (.ci/run);
# scripts/setup.sh (first line) installs and builds everything these need.
set -euo pipefail
cd "$(dirname "$0")/.."
# One full build per run: incremental caches would only add gigabytes to target/.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

bash scripts/setup.sh
cargo fmt --all -- --check
# rust-version of every package = the highest its resolved dependencies need; one version
# across Cargo.toml, pyproject.toml and the npm packages.
python3 scripts/check-manifests.py
# The architecture: every import points down the core's layers, no two files (core or
# bindings) import each other, lib.rs only re-exports; the checker tests itself first.
python3 scripts/check-layers.py --self-test
python3 scripts/check-layers.py
# The workspace includes kite-rs-cli, whose default features turn on every storage (etcd too),
# so the core's etcd tests (storage_etcd, kontrol_backends etcd::) run here as well.
# The Python binding (kite-rs-python) has no Rust tests (`test = false`; its suite is Python,
# below) and, as an extension module whose `Kite` methods pyo3 registers at load time
# (`multiple-pymethods`), no test harness that links without libpython: --all-targets would
# build one, so it is left out here.
cargo test --workspace --all-targets --locked --exclude kite-rs-python
cargo test --workspace --doc --locked
# The Python binding (bindings-python/tests): unit, end-to-end and interop tests, the typing
# stub against the native module (stubtest) and mypy --strict on the examples.
.venv/bin/python -m pytest -q
# The Node binding (bindings-node/test): unit, end-to-end, kite.js and Go interop tests, and
# that processes exit once their kites and clients are closed (exit.test.mjs checks that in
# child processes; --test-force-exit keeps a failed test's open kite from hanging the run).
node --test --test-force-exit bindings-node/test/*.test.mjs
# The packages as users install them, from the wheel and addon setup.sh built (and the tests
# above used): the wheel in a new virtual environment, the npm tarballs in a new project,
# both outside the repository, with the load errors a user may meet.
bash scripts/test-python-package.sh
bash scripts/test-npm-package.sh
# The documentation, run as written: the shell commands and Rust, Python and Node blocks of
# README.md and the binding READMEs, on the binaries, wheel and addon built above (the etcd
# tests above leave target/debug/kontrol built with etcd); skips are printed with reasons.
# The README's `cargo run --bin/--example` commands run these debug builds (cargo test built
# the examples only as test harnesses).
cargo build --workspace --bins --examples --locked
# Kontrol's /ui in Debian's chromium (puppeteer-core): kites appear and leave live; writes
# docs/kontrol-ui.png, the README's screenshot.
npm test --prefix tests/ui
python3 scripts/readme_check.py --self-test
python3 scripts/readme_check.py
echo "test.sh: all tests passed"
