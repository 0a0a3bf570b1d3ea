#!/usr/bin/env bash
# Soak test of our kite server: holds SOAK_CONNECTIONS SockJS websockets (default 15000) open
# for SOAK_SECONDS (default 600) with SOAK_RATE calls/s of `square` in total (default 3000),
# spread evenly: each connection calls at its own steady pace (every connections/rate
# seconds, one call in flight at most), phases spread over that period.
#
#   bash scripts/soak.sh                                   # 15,000 connections, 10 minutes
#   SOAK_SECONDS=120 SOAK_RATE=5000 bash scripts/soak.sh   # shorter, faster
#   SOAK_CLOSED=1 SOAK_SECONDS=120 bash scripts/soak.sh     # closed loop: the starvation test
#   bash scripts/soak.sh --kite-bench OTHER/kite-bench     # any kite-soak option (--help)
#
# SOAK_CLOSED=1 drops the steady rate: every connection keeps one call in flight and sends the
# next as soon as the last is answered, so the server runs flat out. Fair service then gives
# every call about connections / (calls/s); the summary prints that figure and the p99 against
# it (a server that starves some connections shows a p99 many times the mean).
#
# Every SOAK_INTERVAL seconds (10) it prints: seconds elapsed, connections still open, the
# server's RSS, calls/s answered, p50/p99 latency of that interval (from the time a call was
# due to its answer), timeouts (no answer within SOAK_TIMEOUT, 10 s) and failed calls (a
# wrong answer or a lost connection). At the end: RSS first/last/max and whether memory
# stayed flat (the mean RSS of the last quarter of the samples under 10% above the first
# quarter's), overall p50/p99/mean latency and p99/mean (the goal: p99 at most twice the
# mean), error counts and the server's CPU per call.
#
# It builds kite-bench (the server: `kite-bench --serve`, its own process) and kite-soak
# (the load, in benches/kite_soak/) in release mode, and raises the open-file limit to the
# hard limit: both processes need one descriptor per connection.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p kite-rs-bench --bin kite-bench --bin kite-soak

soft=$(ulimit -Sn)
hard=$(ulimit -Hn)
if [ "$soft" != "$hard" ]; then
    ulimit -n "$hard"
fi
echo "open-file limit: $(ulimit -n) (soft was $soft, hard $hard)"
want=${SOAK_CONNECTIONS:-15000}
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -le "$((want + 100))" ]; then
    echo "warning: $want connections need more than $(ulimit -n) descriptors; some will be refused" >&2
fi

target=${CARGO_TARGET_DIR:-target}
exec "$target/release/kite-soak" "$@"
