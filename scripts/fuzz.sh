#!/usr/bin/env bash
# Coverage-guided fuzzing of the wire parsers (cargo-fuzz, libFuzzer): runs every target in
# fuzz/fuzz_targets for FUZZ_SECONDS each (default 30 s: three minutes in all) from the
# committed seed corpus, then prints executions per target and what was found.
#
#   scripts/fuzz.sh                       # every target, 30 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh jwt  # one target, ten minutes
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). The fuzz crate uses libFuzzer's nightly-only
# compiler flags; only the stable toolchain is installed here, so its builds (and only
# those) run with RUSTC_BOOTSTRAP=1. New inputs go to a scratch corpus under fuzz/target/;
# a crash is saved under fuzz/artifacts/<target>/ and makes the script exit non-zero —
# after fixing it, commit the input as fuzz/corpus/<target>/regress-<what> so that
# core/tests/fuzz_corpus.rs replays it in CI. FUZZ_SANITIZER=address adds AddressSanitizer
# (default none: the code under test has no unsafe code, and ASan halves the speed).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${FUZZ_SECONDS:-30}"
sanitizer="${FUZZ_SANITIZER:-none}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is missing; install it with: cargo install cargo-fuzz" >&2
    exit 2
fi
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

export RUSTC_BOOTSTRAP=1
cargo fuzz build -O -s "$sanitizer"

status=0
report=()
for t in "${targets[@]}"; do
    scratch="target/corpus-run/$t"
    mkdir -p "$scratch" "artifacts/$t"
    log="target/fuzz-$t.log"
    echo "fuzz.sh: $t for ${seconds}s"
    set +e
    cargo fuzz run -O -s "$sanitizer" "$t" "$scratch" "corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -close_fd_mask=1 >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    found=$(sed -n 's/.*Test unit written to \([^ ]*\).*/\1/p' "$log" | sort -u | tr '\n' ' ')
    if [ "$rc" -ne 0 ]; then
        status=1
        echo "fuzz.sh: $t FAILED (exit $rc); the end of its log ($log):" >&2
        tail -40 "$log" >&2
    fi
    report+=("$(printf '| %-15s | %12s | %8s | %6s | %s |' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${found:-none}")")
done

echo
echo "| target          |   executions |  execs/s | cover. | found |"
echo "|---|---:|---:|---:|---|"
printf '%s\n' "${report[@]}"
exit "$status"
