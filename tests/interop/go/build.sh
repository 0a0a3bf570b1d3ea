#!/usr/bin/env bash
# Builds the Go interop programs into bin/ (gitignored):
#   server   the SCENARIOS.md test server on the Go reference kite
#   client   the SCENARIOS.md test client on the Go reference kite
#   mint     signs kite keys / tokens like the reference Kontrol
#   capture  records golden frames into a directory (see README.md)
#   kontrol      the reference Kontrol on its PostgreSQL storage (Kontrol interop)
#   kontrolpeer  a reference kite that registers to a Kontrol, and a client that
#                finds kites through one (Kontrol interop)
#   webrtcpeer   a reference kite signalling through a Kontrol, and a reference
#                relay built with UseWebRTC (WebRTC signalling interop)
#   proxypeer    the reference's reverseproxy and tunnelproxy, and a reference kite
#                registering through a proxy (proxy interop)
# The reference kite and its dependencies, pinned in go.mod/go.sum, come from
# the Go module proxy (GOPROXY as configured; default proxy.golang.org).
# Idempotent; quick when nothing changed (go's build cache).
set -euo pipefail
cd "$(dirname "$0")"
export GOFLAGS="-mod=mod${GOFLAGS:+ $GOFLAGS}"
mkdir -p bin
for cmd in server client mint capture kontrol kontrolpeer webrtcpeer proxypeer; do
  go build -o "bin/$cmd" "./$cmd"
done
