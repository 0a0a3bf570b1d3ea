#!/usr/bin/env bash
# Sets the release version everywhere it is written: the workspace version (Cargo.toml, the
# one source: every Rust package inherits it and the Python package takes it through maturin),
# kite-rs-cli's dependency on kite-rs, package.json (its own and its optionalDependencies)
# and npm/*/package.json; then Cargo.lock. scripts/check-manifests.py checks they agree.
#   bash scripts/set-version.sh 0.2.0 && git commit -am "v0.2.0" && git tag v0.2.0
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?usage: set-version.sh X.Y.Z}
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?$ ]] || { echo "set-version: not a version: $version" >&2; exit 1; }
python3 - "$version" <<'PY'
import glob, json, re, sys
version = sys.argv[1]
def sub(path, pattern, repl, count=1):
    text = open(path).read()
    new, n = re.subn(pattern, repl, text, count=count, flags=re.M)
    if n != count:
        sys.exit(f"set-version: {path}: {pattern!r} not found")
    open(path, "w").write(new)
sub("Cargo.toml", r'(\[workspace\.package\]\nversion = )"[^"]*"', rf'\g<1>"{version}"')
sub("cli/Cargo.toml", r'(kite = \{ package = "kite-rs", path = "../core", version = )"[^"]*"', rf'\g<1>"{version}"')
subs = sorted(glob.glob("npm/*/package.json"))
for path in subs:
    d = json.load(open(path)); d["version"] = version
    open(path, "w").write(json.dumps(d, indent=2) + "\n")
d = json.load(open("package.json")); d["version"] = version
d["optionalDependencies"] = {json.load(open(p))["name"]: version for p in subs}
open("package.json", "w").write(json.dumps(d, indent=2) + "\n")
PY
cargo update --workspace --offline -q
npm install --package-lock-only --ignore-scripts --no-audit --no-fund --loglevel=error
python3 scripts/check-manifests.py
