#!/usr/bin/env bash
# The main job on a fresh machine: installs what is needed, builds, starts the SockJS echo
# service and talks to it with our client over a websocket and over XHR polling.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo build --release --example sockjs-echo --example sockjs-client

out=$(mktemp)
./target/release/examples/sockjs-echo --port 0 >"$out" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$out"' EXIT
# Wait for the readiness line ("listening on http://…").
for _ in $(seq 1 200); do
  url=$(sed -n 's/^listening on //p' "$out")
  [ -n "$url" ] && break
  kill -0 $server 2>/dev/null || { cat "$out"; exit 1; }
  read -rt 0.05 <> <(:) || true
done
[ -n "$url" ] || { echo "demo: server did not start" >&2; cat "$out"; exit 1; }

for transport in websocket xhr-polling; do
  ./target/release/examples/sockjs-client --url "$url/echo" --transport "$transport" hello "from kite-rs"
done
echo "demo: ok"
