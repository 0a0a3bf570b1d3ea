#!/usr/bin/env bash
# The npm packages as a user meets them: packs the main package (kite-rs) and the platform
# package (npm/linux-x64-gnu, with the addon `npm run build` made), installs both with
# `npm install --offline --no-save` into a new project in a temporary directory outside the
# repository with no Rust toolchain on PATH, and runs a kite and a call from it in plain
# JavaScript (CommonJS and ESM) and in TypeScript compiled by `tsc --strict` with only
# @types/node (no DOM lib). Then the load errors: platform package missing, addon damaged,
# unsupported platform. Run by scripts/test.sh; `--keep DIR` leaves the tarballs in DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
keep=""
# Absolute: the checks below run in other directories.
[ "${1:-}" = "--keep" ] && keep=$(realpath -m "$2")

addon=bindings-node/kite-rs.linux-x64-gnu.node
[ -f "$addon" ] || { echo "test-npm-package: $addon missing; run 'npm run build'" >&2; exit 1; }
size=$(stat -c %s "$addon")
max=$((15 * 1024 * 1024))
echo "test-npm-package: addon $addon is $((size / 1024)) KiB (at most $((max / 1024)) KiB)"
[ "$size" -le "$max" ] || { echo "test-npm-package: the addon is over 15 MB: build it with 'npm run build' (profile dist)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/kite-rs-npm.XXXXXX")
trap 'rm -rf "$work"' EXIT
case "$work" in "$repo"/*) echo "test-npm-package: $work is inside the repository" >&2; exit 1 ;; esac

# The platform package carries the addon (copied in, ignored by git) and a LICENSE.
cp "$addon" npm/linux-x64-gnu/
mkdir -p "$work/tgz"
npm pack --silent --json --pack-destination "$work/tgz" . >"$work/main.json"
npm pack --silent --json --pack-destination "$work/tgz" ./npm/linux-x64-gnu >"$work/platform.json"
main_tgz=$(node -p "require('$work/main.json')[0].filename")
platform_tgz=$(node -p "require('$work/platform.json')[0].filename")
# What each tarball holds: the loader, its types and the LICENSE; the addon only in the
# platform package.
node - "$work/main.json" "$work/platform.json" <<'EOF'
const [main, platform] = process.argv.slice(2).map((f) => require(f)[0])
const list = (p) => p.files.map((f) => f.path)
const need = (p, files) => {
  for (const f of files) if (!list(p).includes(f)) throw new Error(`${p.filename} lacks ${f}: ${list(p)}`)
}
need(main, ['LICENSE', 'README.md', 'package.json', 'bindings-node/index.js', 'bindings-node/binding.js', 'bindings-node/index.d.ts'])
if (list(main).some((f) => f.endsWith('.node'))) throw new Error(`${main.filename} ships an addon: ${list(main)}`)
need(platform, ['LICENSE', 'package.json', 'kite-rs.linux-x64-gnu.node'])
for (const p of [main, platform]) {
  console.log(`test-npm-package: ${p.filename}: ${p.files.length} files, ${(p.size / 1024).toFixed(0)} KiB packed`)
  for (const f of p.files) console.log(`  ${f.path} (${f.size} B)`)
}
EOF

# TypeScript and @types/node come from npm's cache (the repository's devDependencies, which
# `npm ci` put there): the install below is offline.
ts=$(node -p "require('./node_modules/typescript/package.json').version")
types=$(node -p "require('./node_modules/@types/node/package.json').version")
npm cache add --prefer-offline --loglevel=error "typescript@$ts" "@types/node@$types" \
  "undici-types@$(node -p "require('./node_modules/undici-types/package.json').version")"

app=$work/app
mkdir -p "$app" "$work/home"
cd "$app"
echo '{ "name": "kite-rs-user", "version": "1.0.0", "private": true }' >package.json
# No Rust toolchain on PATH: node and npm only.
export PATH=/usr/bin:/bin
if command -v cargo >/dev/null || command -v rustc >/dev/null; then
  echo "test-npm-package: cargo or rustc on PATH=$PATH" >&2
  exit 1
fi
export KITE_HOME=$work/home
npm install --offline --no-save --no-audit --no-fund --loglevel=error \
  "$work/tgz/$main_tgz" "$work/tgz/$platform_tgz" "typescript@$ts" "@types/node@$types"

cat >main.js <<'EOF'
const { Kite } = require('kite-rs')
async function main() {
  const k = new Kite({ name: 'math', version: '1.0.0' })
  k.handle('square', async (req) => req.args[0] ** 2, { auth: false })
  await k.listen(0, '127.0.0.1')
  const c = k.client(k.url)
  await c.dial()
  const r = await c.tell('square', [4], { timeout: 5000 })
  c.close()
  k.close()
  if (r !== 16) throw new Error(`square(4) = ${r}`)
  console.log(`javascript: square(4) = ${r}`)
}
main().catch((e) => { console.error(e); process.exit(1) })
EOF
node main.js

cat >main.mjs <<'EOF'
import { Kite } from 'kite-rs'
const k = new Kite({ name: 'math', version: '1.0.0' })
k.handle('square', async (req) => req.args[0] ** 2, { auth: false })
await k.listen(0, '127.0.0.1')
const c = k.client(k.url)
await c.dial()
const r = await c.tell('square', [5], { timeout: 5000 })
c.close()
k.close()
if (r !== 25) throw new Error(`square(5) = ${r}`)
console.log(`javascript (ESM): square(5) = ${r}`)
EOF
node main.mjs

cat >main.ts <<'EOF'
import { Kite, Request } from 'kite-rs'

async function main(): Promise<void> {
  const k = new Kite({ name: 'math', version: '1.0.0' })
  k.handle('square', async (req: Request): Promise<number> => (req.args[0] as number) ** 2, { auth: false })
  await k.listen(0, '127.0.0.1')
  const url: string | null = k.url
  if (url === null) throw new Error('not listening')
  const c = k.client(url)
  await c.dial()
  const r: unknown = await c.tell('square', [6], { timeout: 5000 })
  c.close()
  k.close()
  if (r !== 36) throw new Error(`square(6) = ${String(r)}`)
  console.log(`typescript: square(6) = ${String(r)}`)
}
main().catch((e: unknown) => {
  console.error(e)
  process.exit(1)
})
EOF
cat >tsconfig.json <<'EOF'
{
  "compilerOptions": {
    "strict": true,
    "target": "ES2022",
    "lib": ["ES2022"],
    "types": ["node"],
    "module": "nodenext",
    "moduleResolution": "nodenext",
    "outDir": "out"
  },
  "files": ["main.ts"]
}
EOF
node node_modules/typescript/bin/tsc --strict -p tsconfig.json
node out/main.js

# Load errors a user can act on.
expect_error() { # NAME PATTERN SCRIPT
  local out
  if out=$(node -e "$3" 2>&1); then
    echo "test-npm-package: $1: require('kite-rs') succeeded" >&2
    exit 1
  fi
  grep -q -- "$2" <<<"$out" || { echo "test-npm-package: $1: no '$2' in:" >&2; echo "$out" >&2; exit 1; }
  echo "test-npm-package: $1: $(grep -m1 KiteLoadError <<<"$out" | cut -c1-220)…"
}
platform_dir=node_modules/kite-rs-linux-x64-gnu
expect_error "unsupported platform" "no prebuilt native addon for this platform (linux-riscv64-gnu); prebuilt ones exist for linux-x64-gnu" \
  "Object.defineProperty(process, 'arch', { value: 'riscv64' }); require('kite-rs')"
mv "$platform_dir" "$work/platform-package"
expect_error "platform package missing" "the native addon package kite-rs-linux-x64-gnu is not installed.*build it from source" "require('kite-rs')"
mv "$work/platform-package" "$platform_dir"
head -c 4096 /dev/zero | tr '\0' x >"$platform_dir/kite-rs.linux-x64-gnu.node"
expect_error "damaged addon" "native addon $app/$platform_dir/kite-rs.linux-x64-gnu.node failed to load: .*invalid ELF header" "require('kite-rs')"

if [ -n "$keep" ]; then
  mkdir -p "$keep"
  cp "$work/tgz/$main_tgz" "$work/tgz/$platform_tgz" "$keep/"
  echo "test-npm-package: kept $main_tgz and $platform_tgz in $keep"
fi
echo "test-npm-package: ok"
