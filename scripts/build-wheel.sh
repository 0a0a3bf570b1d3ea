#!/usr/bin/env bash
# Builds the kite-rs wheel (Python package, bindings-python) into DIR (default dist/): abi3
# (CPython 3.9+), profile dist (stripped, no debug info), tagged manylinux_2_34 — the glibc
# floor of a native build on this Debian 12 machine (glibc 2.36); maturin checks the
# symbols against the tag. Used by scripts/setup.sh (the wheel the tests install) and
# scripts/release.sh. MATURIN overrides the maturin command (default .venv/bin/maturin).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}
maturin=${MATURIN:-.venv/bin/maturin}
# The explicit host target shares target/<triple>/dist with the Node addon's napi build.
host=$(rustc -vV | sed -n 's/^host: //p')
mkdir -p "$out"
rm -f "$out"/kite_rs-*.whl "$out/.built"
"$maturin" build --profile dist --target "$host" --compatibility manylinux_2_34 --out "$out"
touch "$out/.built"
