#!/usr/bin/env bash
# Chaos run of Kontrol: kills and restarts Kontrol and its PostgreSQL and etcd servers under
# load, and prints how long the kites took to register again and whether any call was lost
# or executed twice.
#
#   bash scripts/chaos.sh                                   # sqlite, postgres, etcd; 50 kites
#   bash scripts/chaos.sh --kites 50 --steady 10            # any kite-chaos option (--help)
#   CHAOS_BACKENDS=postgres CHAOS_DOWNTIME=5 bash scripts/chaos.sh
#
# For each backend (CHAOS_BACKENDS, default sqlite,postgres,etcd) it starts the database
# server (PostgreSQL and etcd as the tests do, on free ports, in scratch directories), then
# Kontrol as its own process (the `kontrol` binary: `--initial` writes a kite.key, then it
# serves on a fixed port so a restart comes back at the same URL), then CHAOS_KITES worker
# kites (50) registered with register_forever, and a caller doing CHAOS_RATE calls/s (200)
# spread over them, each call with an id of its own whose executions the workers count, plus
# getKites to Kontrol every CHAOS_GETKITES_EVERY seconds (0.5). After CHAOS_STEADY seconds
# (10) of steady load each fault follows, each followed by another steady period: kill -9
# Kontrol and start it again; for postgres an immediate stop (a crash) and start; for etcd a
# kill and start; each server stays down CHAOS_DOWNTIME seconds (2).
#
# Per fault it prints: how long the server was down, then how long until Kontrol answered a
# fresh connection's getKites, and until every kite was registered again (after a Kontrol
# restart: each kite's own registration; after a database restart: getKites listing them all),
# against the goal — the smaller of Kontrol's heartbeat interval (10 s) and the redial
# backoff's cap (60 s). At the end a table per backend and window (the steady start, then each
# fault until the next): calls sent, answered, failed with an error, lost (no answer and no
# error within CHAOS_TIMEOUT, 5 s), executed twice, and the periodic getKites answered, failed
# and short of kites. Exit status 1 when a call was lost or executed twice (a slow
# re-registration is printed as MISSED), 2 when the run itself failed.
#
# It builds `kontrol` (every storage; etcd's build needs protoc) and `kite-chaos`
# (benches/kite_chaos/) in release mode, in one cargo run. PostgreSQL (Debian's
# `postgresql`) and etcd (`etcd-server`) come from scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
case "${1:-}" in
-h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    if [ -x "$target/release/kite-chaos" ]; then
        echo
        exec "$target/release/kite-chaos" --help
    fi
    exit 0
    ;;
esac

cargo build --release -p kite-rs-cli --bin kontrol -p kite-rs-bench --bin kite-chaos
exec "$target/release/kite-chaos" --kontrol "$target/release/kontrol" "$@"
