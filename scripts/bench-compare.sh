#!/usr/bin/env bash
# Our kite server of an old commit against this tree's, under the same load generator
# (issue 12, item 8: "no slower").
#
#   bash scripts/bench-compare.sh [OLD_COMMIT] [KITE_BENCH_OPTIONS…]
#   bash scripts/bench-compare.sh                      # 2f80441, before the architecture rewrite
#   bash scripts/bench-compare.sh HEAD~3 --seconds 5 --repeat 7
#
# 1. The old commit is checked out into a git worktree at target/bench-old/<commit>/src and
#    its kite-bench built in release mode with CARGO_TARGET_DIR=target/bench-old/<commit>
#    (kept, with the worktree, so that a second run builds nothing; the files get the
#    commit's time as mtime, so cargo sees them unchanged). Where kite-bench lives depends on
#    the commit: `benches/` (package kite-rs-bench) or, before, `core/examples/` (an example
#    of kite-rs). The first build compiles everything (about 10 minutes on 2 busy cores).
# 2. This tree's kite-bench is built (target/release/kite-bench).
# 3. This tree's kite-bench is the load generator for both servers, each started as
#    `<kite-bench of its commit> --serve` (the load generator speaks only the wire):
#    --repeat rounds (5) interleaved old, new, old, new, …, each round every case (1x1, 8x16,
#    64x1, 3 s each) and the server memory per connection (2000 connections). It prints one
#    table per case with the medians and new/old in percent.
#
# Remove the old builds with `git worktree remove --force target/bench-old/<commit>/src` and
# `rm -rf target/bench-old` (or `git worktree prune` after removing target/).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

old_ref=2f80441
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  old_ref=$1
  shift
fi
commit=$(git rev-parse --verify --quiet "$old_ref^{commit}") || {
  echo "bench-compare: $old_ref is not a commit" >&2
  exit 2
}
short=$(git rev-parse --short=12 "$commit")
target=${CARGO_TARGET_DIR:-$root/target}
old_target=$target/bench-old/$short
tree=$old_target/src

# --- the old commit's tree, kept between runs
git worktree prune
if [ -e "$tree/.git" ] && [ "$(git -C "$tree" rev-parse HEAD 2>/dev/null)" = "$commit" ] \
    && [ -z "$(git -C "$tree" status --porcelain --untracked-files=no)" ]; then
  echo "bench-compare: old tree $short at $tree (kept from an earlier run)" >&2
else
  if [ -e "$tree" ]; then
    git worktree remove --force "$tree" 2>/dev/null || rm -rf "$tree"
  fi
  mkdir -p "$old_target"
  git worktree add --quiet --detach "$tree" "$commit"
  # Every file gets the commit's time, so that cargo finds a rerun's sources unchanged.
  stamp=$(git log -1 --format=%ct "$commit")
  git -C "$tree" ls-files -z | (cd "$tree" && xargs -0 touch -h -d "@$stamp")
  echo "bench-compare: old tree $short checked out at $tree" >&2
fi

# --- build the old server (its own target directory)
if [ -f "$tree/benches/Cargo.toml" ] && grep -q '"kite-bench"' "$tree/benches/Cargo.toml"; then
  old_build=(-p kite-rs-bench --bin kite-bench)
  old_bin=$old_target/release/kite-bench
else
  old_build=(-p kite-rs --example kite-bench)
  old_bin=$old_target/release/examples/kite-bench
fi
echo "bench-compare: building the old server: cargo build --release --locked ${old_build[*]}" >&2
(cd "$tree" && CARGO_TARGET_DIR=$old_target cargo build --release --locked "${old_build[@]}")

# --- build this tree's kite-bench (load generator and new server)
echo "bench-compare: building this tree's kite-bench" >&2
cargo build --release --locked -p kite-rs-bench --bin kite-bench
new_bin=$target/release/kite-bench

dirty=""
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  dirty=" + uncommitted changes"
fi
echo
echo "old = $short ($(git log -1 --format='%cs %s' "$commit" | cut -c1-80))"
echo "new = this tree, $(git rev-parse --short=12 HEAD)$dirty"
echo "machine: $(nproc) core(s), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
exec "$new_bin" --servers old,new --server-bin "old=$old_bin" --server-bin "new=$new_bin" \
  --compare --repeat 5 "$@"
