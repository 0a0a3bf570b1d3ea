#!/usr/bin/env bash
# Runs the Go reference client against the Go reference server for every
# scenario over WebSocket and XHRPolling, with a throwaway Kontrol key pair,
# kite key and token (openssl + bin/mint). Prints the client's JSON lines
# prefixed by the transport; exits non-zero if any run failed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/build.sh" >&2
bin="$here/bin"
work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

openssl genrsa -out "$work/kontrol.pem" 2048 2>/dev/null
openssl rsa -in "$work/kontrol.pem" -pubout -out "$work/kontrol_pub.pem" 2>/dev/null
"$bin/mint" --private-key "$work/kontrol.pem" --kind kitekey --username alice --issuer testuser >"$work/client.key"
"$bin/mint" --private-key "$work/kontrol.pem" --kind kitekey --username testuser --issuer testuser >"$work/server.key"
token="$("$bin/mint" --private-key "$work/kontrol.pem" --kind token --username bob --issuer testuser \
  --audience /testuser/unknown/interop --ttl 1h)"

status=0
for transport in WebSocket XHRPolling; do
  # A fresh server per transport (the throttled method allows one call per hour).
  mkfifo "$work/stdin.$transport"
  "$bin/server" --kontrol-key "$work/kontrol_pub.pem" --kontrol-user testuser --username testuser \
    --kite-key "$work/server.key" <"$work/stdin.$transport" >"$work/ready.$transport" 2>"$work/server.$transport.log" &
  server_pid=$!
  exec 3>"$work/stdin.$transport"
  for _ in $(seq 100); do [[ -s "$work/ready.$transport" ]] && break; sleep 0.1; done
  url="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$work/ready.$transport")"
  set +e
  "$bin/client" --url "$url" --transport "$transport" --kite-key "$work/client.key" --token "$token" \
    2>"$work/client.$transport.log" | sed "s/^/$transport /"
  rc=${PIPESTATUS[0]}
  set -e
  exec 3>&-   # close the server's stdin: it exits
  wait "$server_pid" || true
  server_pid=""
  if [[ $rc -ne 0 ]]; then
    status=1
    echo "$transport: client exited $rc; client log:" >&2; cat "$work/client.$transport.log" >&2
  fi
done
exit $status
