#!/usr/bin/env bash
# Builds every artifact this machine can build into dist/ and checks each one:
#   - the wheel (scripts/build-wheel.sh: manylinux_2_34 x86_64, abi3) and the sdist
#     (maturin sdist): `twine check`, LICENSE inside, and the sdist built from source into a
#     new virtual environment that then runs a kite and a call;
#   - the npm tarballs (kite-rs and kite-rs-linux-x64-gnu, addon built with `npm run build`):
#     listed and installed offline into a new project (scripts/test-npm-package.sh);
#   - the crates (kite-rs, kite-rs-cli): `cargo package --list`, then `cargo package`, which
#     builds each from its packaged sources (verification);
#   - the release workflow (.github/workflows/release.yml), checked with actionlint; it builds
#     the platforms this machine cannot (Linux arm64, macOS, Windows) and publishes on a tag.
# The slow checks live here, not in scripts/test.sh. Publishing: scripts/set-version.sh X.Y.Z,
# commit, `git tag vX.Y.Z && git push --tags`.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
say() { printf '\n== release: %s\n' "$*"; }
have_license() { # WHAT LISTING...
  local what=$1
  shift
  printf '%s\n' "$@" | grep -Eq '(^|/)LICENSE$' || { echo "release: no LICENSE in $what" >&2; exit 1; }
  echo "release: $what carries LICENSE"
}

python3 scripts/check-manifests.py
version=$(python3 -c "import tomllib; print(tomllib.load(open('Cargo.toml', 'rb'))['workspace']['package']['version'])")

# Tools: maturin, auditwheel and twine in .venv; the npm devDependencies; actionlint from the
# Go module proxy (pinned).
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check "maturin>=1.7,<2" "auditwheel>=6" "twine>=6"
[ -d node_modules ] || npm install --no-save --no-audit --no-fund --loglevel=error  # not ci: see setup.sh
actionlint=$(go env GOPATH)/bin/actionlint
[ -x "$actionlint" ] || GOFLAGS=-mod=mod go install github.com/rhysd/actionlint/cmd/actionlint@v1.7.7

rm -rf dist
mkdir -p dist

say "GitHub Actions workflows (actionlint)"
"$actionlint" -shellcheck= .github/workflows/*.yml
echo "release: actionlint: no findings"

say "Python: wheel and sdist"
bash scripts/build-wheel.sh dist
.venv/bin/maturin sdist --out dist
wheel=$(ls dist/kite_rs-"$version"-*.whl)
sdist=$(ls dist/kite_rs-"$version".tar.gz)
.venv/bin/twine check --strict "$wheel" "$sdist"
WHEEL=$wheel bash scripts/test-python-package.sh
have_license "$(basename "$wheel")" $(python3 -c "import sys, zipfile; print('\n'.join(zipfile.ZipFile(sys.argv[1]).namelist()))" "$wheel")
have_license "$(basename "$sdist")" $(tar tzf "$sdist")
echo "release: sdist contents:"
tar tzf "$sdist" | sed 's/^/  /' | head -400 | awk 'NR <= 12 || /LICENSE|pyproject|Cargo.toml$/' 
echo "  ($(tar tzf "$sdist" | wc -l) files)"

say "Python: the sdist builds from source into a working install"
work=$(mktemp -d "${TMPDIR:-/tmp}/kite-rs-release.XXXXXX")
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
# A persistent target dir keeps repeated runs incremental; the build itself is pip's.
CARGO_TARGET_DIR=$repo/target/sdist-build "$work/venv/bin/pip" install -q --disable-pip-version-check "$sdist"
(
  cd "$work"
  KITE_HOME=$work/home "$work/venv/bin/python" - <<'PY'
import asyncio

import kite_rs
from kite_rs import Kite, Request


async def main() -> None:
    k = Kite("math", "1.0.0")

    @k.handle("square", auth=False)
    async def square(req: Request, n: float) -> float:
        return n * n

    port = await k.start(port=0, host="127.0.0.1")
    me = Kite("math-client", "1.0.0")
    async with me.client(f"http://127.0.0.1:{port}/kite") as math:
        r = await math.tell("square", 7, timeout=5.0)
    me.close()
    k.close()
    assert r == 49, r
    print(f"release: sdist install ({kite_rs.__file__}): square(7) = {r}")


asyncio.run(main())
PY
)

say "npm: kite-rs and kite-rs-linux-x64-gnu"
npm run build --silent
bash scripts/test-npm-package.sh --keep dist
for t in kite-rs-"$version".tgz kite-rs-linux-x64-gnu-"$version".tgz; do
  [ -f "dist/$t" ] || { echo "release: dist/$t missing" >&2; exit 1; }
done

say "crates: kite-rs and kite-rs-cli"
for p in kite-rs kite-rs-cli; do
  list=$(cargo package --locked -p "$p" --list)
  echo "release: cargo package --list -p $p: $(wc -l <<<"$list") files"
  sed 's/^/  /' <<<"$list" | awk 'NR <= 8 || /LICENSE|README|Cargo.toml$/'
  have_license "$p crate" $list
done
# Verifies both: each is built from its packaged sources (kite-rs-cli against the packaged
# kite-rs, through cargo's local overlay of the registry).
cargo package --locked -p kite-rs -p kite-rs-cli
cp target/package/kite-rs-"$version".crate target/package/kite-rs-cli-"$version".crate dist/

say "dist/"
(cd dist && for f in *; do printf '%10s KiB  %s  %s\n' "$(($(stat -c %s "$f") / 1024))" "$(sha256sum "$f" | cut -c1-16)" "$f"; done)
echo "release: ok — publish with: git tag v$version && git push origin v$version (.github/workflows/release.yml)"
