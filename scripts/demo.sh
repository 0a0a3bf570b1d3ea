#!/usr/bin/env bash
# The main job on a fresh machine: builds what its mesh needs and starts a small kite mesh
# — Kontrol on its embedded SQLite store, the math kite registering to it, and clients that
# find math through Kontrol and call it — then stops it. Last, the SockJS layer alone: the
# echo service, talked to over a websocket and over XHR polling.
#
# Only Rust (cargo) and a C compiler are needed: no Python wheel, no Node addon, no Go peers,
# no database servers (scripts/setup.sh, which scripts/test.sh runs, installs those). The
# commands are built without etcd storage, whose build needs protoc; `cargo run --bin
# kontrol` (README) builds them with every storage.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null 2>&1 || { echo "demo: cargo is required (https://rustup.rs)" >&2; exit 1; }
# The dev profile: a few calls do not need optimised code, and a cold debug build takes under
# 3 minutes on two cores where a release build takes 10 (the README's `cargo run --release`
# commands build the optimised ones).
cargo build -p kite-rs-cli -p kite-rs --no-default-features \
  --features kite-rs-cli/sqlite,kite-rs-cli/postgres --bin kontrol --bin kitectl \
  --example math --example math-client --example sockjs-echo --example sockjs-client

bin=${CARGO_TARGET_DIR:-target}/debug
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# start NAME CMD…: runs CMD in the background, its stdout readable on fd ${fd[NAME]}, its
# stderr in $work/NAME.log.
declare -A fd
start() {
  local name=$1 f
  shift
  exec {f}< <(exec "$@" 2>"$work/$name.log")
  pids+=($!)
  fd[$name]=$f
}
# await NAME PREFIX: reads NAME's stdout until a line starts with PREFIX (60 s at most);
# prints the rest of that line.
await() {
  local line
  while IFS= read -r -t 60 -u "${fd[$1]}" line; do
    if [[ $line == "$2"* ]]; then
      printf '%s\n' "${line#"$2"}"
      return 0
    fi
  done
  echo "demo: $1 did not print '$2'; its log:" >&2
  cat "$work/$1.log" >&2
  return 1
}
step() { printf '\n== %s\n' "$*"; }

# Everything below lives in a scratch kite home: kite.key and Kontrol's kontrol.db.
export KITE_HOME="$work/kite" KITE_ENVIRONMENT=demo

step "kontrol --initial: a key pair in SQLite, and kite.key for the operator"
"$bin/kontrol" --initial --username demo 2>"$work/initial.log" || { cat "$work/initial.log" >&2; exit 1; }
"$bin/kitectl" showkey | sed -n '1,3p'

step "kontrol: on SQLite under \$KITE_HOME, on a free port"
start kontrol "$bin/kontrol" --ip 127.0.0.1 --port 0
kontrol_url=$(await kontrol "kontrol listening on ")
echo "kontrol listening on $kontrol_url"
# kite.key names the default port; kites and kitectl take the real one from here.
export KITE_KONTROL_URL=$kontrol_url

step "math kite: serves square and echo, registers to Kontrol with kite.key"
start math "$bin/examples/math" --port 0
echo "math kite listening on $(await math "math kite listening on ")"
echo "math kite registered to kontrol at $(await math "math kite registered to kontrol at ")"

step "kitectl query --environment demo --name math"
"$bin/kitectl" query --environment demo --name math

step "math-client --query 7: finds math through Kontrol, calls it with Kontrol's token"
"$bin/examples/math-client" --query 7

step "kitectl tell --environment demo --name math --method square 12"
"$bin/kitectl" tell --environment demo --name math --method square 12

step "stopping the mesh"
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
wait "${pids[@]}" 2>/dev/null || true
pids=()

step "SockJS alone: the echo service over a websocket and over XHR polling"
start echo "$bin/examples/sockjs-echo" --port 0
url=$(await echo "listening on ")
for transport in websocket xhr-polling; do
  "$bin/examples/sockjs-client" --url "$url/echo" --transport "$transport" hello "from kite-rs"
done
echo "demo: ok"
