'use strict'
// The package's entry point (hand-written). The native addon is found by the loader that
// `napi build` generates (binding.js): first `kite-rs.<platform>.node` beside it (a build
// from source), then the platform package `kite-rs-<platform>` (an optional dependency
// that npm installs only on its platform). When neither loads, the error below says why in
// terms a user can act on, instead of the loader's generic "Cannot find native binding".

const path = require('path')
const { existsSync } = require('fs')

/** The platform suffixes of the packages this version publishes (package.json napi.targets). */
const PUBLISHED = ['linux-x64-gnu', 'linux-arm64-gnu', 'darwin-x64', 'darwin-arm64', 'win32-x64-msvc']

/** This process's platform suffix, as napi-rs names packages (`linux-x64-gnu`, `darwin-arm64`). */
function platformSuffix() {
  const { platform, arch } = process
  if (platform === 'linux') {
    let glibc = true
    try {
      const report = process.report && process.report.getReport()
      glibc = Boolean(report && report.header && report.header.glibcVersionRuntime)
    } catch {
      // keep glibc
    }
    return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`
  }
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

/** The load errors the generated loader collected, flattened (it chains them via `cause`). */
function causes(error) {
  const all = []
  for (let e = error && error.cause; e && all.length < 64; e = e.cause) all.push(e)
  return all
}

/** A `KiteLoadError` that says which file failed and why, or which package is missing. */
function explain(error) {
  const suffix = platformSuffix()
  const pkg = `kite-rs-${suffix}`
  const fromSource =
    'To build it from source (Rust 1.89+ and a C compiler): git clone https://github.com/kite-rs/kite-rs && ' +
    'cd kite-rs && npm ci && npm run build, then install that directory or set NAPI_RS_NATIVE_LIBRARY_PATH ' +
    'to the built kite-rs.<platform>.node.'
  // A native file that exists but failed to load (wrong architecture, too old a glibc,
  // a damaged file): name it and the reason the dynamic loader gave.
  // (The loader re-creates the errors it chains, so they are told apart by their message.)
  const notFound = /^(Cannot find module|Unsupported (architecture|OS)|WASI binding)/
  const failed = causes(error).find((e) => e && e.code !== 'MODULE_NOT_FOUND' && !notFound.test(String(e.message)))
  let message
  if (failed) {
    const local = path.join(__dirname, `kite-rs.${suffix}.node`)
    let file = existsSync(local) ? local : null
    if (!file) {
      try {
        file = require.resolve(pkg)
      } catch {
        file = process.env.NAPI_RS_NATIVE_LIBRARY_PATH || `kite-rs.${suffix}.node`
      }
    }
    message = `kite-rs: the native addon ${file} failed to load: ${failed.message}`
  } else if (!PUBLISHED.includes(suffix)) {
    message =
      `kite-rs: no prebuilt native addon for this platform (${suffix}); prebuilt ones exist for ` +
      `${PUBLISHED.join(', ')}. ${fromSource}`
  } else {
    message =
      `kite-rs: the native addon package ${pkg} is not installed. npm installs it as an optional ` +
      'dependency of kite-rs on its platform; it is missing when optional dependencies were ' +
      `omitted (--omit=optional, --no-optional) or the lock file came from another platform: ` +
      `run \`npm install ${pkg}\`. ${fromSource}`
  }
  const explained = new Error(message, { cause: error })
  explained.name = 'KiteLoadError'
  explained.code = 'ERR_KITE_RS_NATIVE'
  return explained
}

try {
  require('./binding.js')
} catch (error) {
  throw explain(error)
}
// Loaded (and cached) above; written as a plain re-export so that Node's CommonJS export
// detection lists the binding's names for `import { Kite } from 'kite-rs'`.
module.exports = require('./binding.js')
