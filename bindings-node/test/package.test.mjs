// Packaging: `require('kite-rs')` and `import { Kite } from 'kite-rs'` on this Node, the
// committed, generated index.js / index.d.ts (with the Rust docs as JSDoc), and that the
// typings describe the real API (a TypeScript program using it type-checks).

import assert from 'node:assert/strict';
import { existsSync, readFileSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as esm from 'kite-rs';
import { Kite } from 'kite-rs';
import { run } from './helpers.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const require = createRequire(import.meta.url);
const EXPORTS = ['Client', 'Connection', 'Kite', 'Kontrol', 'Method', 'Request', 'KiteError', 'kiteError', 'setLogger', 'flushTraces'];

test('require and import give the same classes', () => {
  const cjs = require('kite-rs');
  for (const name of EXPORTS) {
    assert.ok(cjs[name], `require: ${name}`);
    assert.equal(esm[name], cjs[name], `import: ${name}`);
  }
  assert.equal(Kite, cjs.Kite);
  assert.equal(typeof new Kite({ name: 'p', version: '1.0.0' }).handle, 'function');
});

test('a fresh Node process can require and import the package', async () => {
  const cjs = await run(process.execPath, ['-e', "const { Kite } = require('kite-rs'); console.log(typeof Kite)"], { cwd: root });
  assert.equal(cjs.stdout.trim(), 'function', cjs.stderr);
  const mjs = await run(process.execPath, ['--input-type=module', '-e', "import { Kite } from 'kite-rs'; console.log(typeof Kite)"], { cwd: root });
  assert.equal(mjs.stdout.trim(), 'function', mjs.stderr);
});

test('package.json: the entry points, no install script, one platform package per napi target', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  assert.equal(pkg.name, 'kite-rs');
  assert.equal(pkg.main, 'bindings-node/lib/index.js');
  assert.ok(pkg.files.some((f) => f.startsWith('bindings-node/lib')), 'lib/ ships');
  assert.match(readFileSync(join(root, 'bindings-node/lib/index.js'), 'utf8'), /require\('\.\.\/index\.js'\)/);
  assert.equal(pkg.types, 'bindings-node/index.d.ts');
  // Consumers install prebuilt addons; contributors build with `npm run build`.
  for (const hook of ['preinstall', 'install', 'postinstall']) assert.equal(pkg.scripts[hook], undefined, hook);
  assert.match(pkg.scripts.build, /napi build --platform .*--manifest-path bindings-node\/Cargo.toml .*--profile dist/);
  assert.ok(pkg.napi.targets.includes('x86_64-unknown-linux-gnu'));
  for (const name of Object.keys(pkg.optionalDependencies)) {
    const platform = name.replace(/^kite-rs-/, '');
    const sub = JSON.parse(readFileSync(join(root, 'npm', platform, 'package.json'), 'utf8'));
    assert.equal(sub.name, name);
    assert.equal(sub.main, `kite-rs.${platform}.node`);
  }
  assert.equal(Object.keys(pkg.optionalDependencies).length, pkg.napi.targets.length);
});

test('index.d.ts is generated from the Rust docs', () => {
  const dts = readFileSync(join(root, 'bindings-node/index.d.ts'), 'utf8');
  for (const name of ['Kite', 'Client', 'Connection', 'Kontrol', 'Method']) {
    assert.match(dts, new RegExp(`\\*/\\nexport declare class ${name} \\{`), `${name} has JSDoc`);
  }
  assert.match(dts, /\* Registers `handler` for `method`\.[^]*?handle\(method: string, handler: \(req: Request\) => any, options\?: MethodOptions\): Method/);
  assert.match(dts, /export declare class KiteError extends Error/);
  assert.match(dts, /export declare function setLogger\(/);
  assert.match(dts, /\*\/\nexport declare class Request \{\n  private constructor\(\)[^]*readonly signal: AbortSignal/);
});

test('a TypeScript program using the API type-checks against index.d.ts', async () => {
  const tsc = require.resolve('typescript/bin/tsc');
  const dir = mkdtempSync(join(tmpdir(), 'kite-node-ts-'));
  try {
    writeFileSync(join(dir, 'use.ts'), `
import { Kite, KiteError, kiteError, setLogger, type LogRecord, type Request } from 'kite-rs'
async function main(): Promise<void> {
  const k = new Kite({ name: 'math', version: '1.0.0', methodHandling: 'first' })
  k.handle('square', async (req: Request) => (req.args[0] as number) ** 2, { auth: false })
    .preHandle((req) => { req.signal.addEventListener('abort', () => {}) })
    .finalFunc((_req, result, error: KiteError | null) => error ? undefined : result)
  k.on('connect', (conn) => conn.remoteKite.name)
  const port: number = await k.listen(0)
  const c = k.client(k.url ?? '', { transport: 'WebSocket' })
  await c.dial()
  const n: number = await c.tell('square', [4], { timeout: 5000 })
  try { await c.tell('nope') } catch (e) { if (e instanceof KiteError) { const t: string = e.type; e.code === 'methodNotFound'; e.requestId; void t } }
  const e: KiteError = kiteError('argumentError', 'bad')
  const custom = new KiteError('myKind', 'custom', { appCode: 'E1' })
  setLogger((r: LogRecord) => { const l: 'error' | 'warn' | 'info' | 'debug' | 'trace' = r.level; void l }, 'warn')
  k.on('error', (err: unknown) => { void err })
  const relay = new Kite({ name: 'kontrol', version: '1.0.0', useWebRTC: true })
  const peers: string[] = relay.webRTCPeers()
  const sent: Promise<void> = k.sendWebRTC({ type: 'OFFER', dst: 'id', payload: { sdp: '' } })
  const viaProxy: string = await k.registerToProxy({ url: k.url ?? '', proxyUrl: 'http://127.0.0.1:3999/kite' })
  const viaTunnel: string = await k.registerToTunnel({ retry: 1000 })
  void custom; void peers; void sent; void viaProxy; void viaTunnel
  console.log(port, n, e.code, k.handleCounts().functions)
  c.close(); k.close()
}
void main()
`);
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        strict: true, noEmit: true, target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext',
        types: [], lib: ['es2022', 'dom'], skipLibCheck: false,
        paths: { 'kite-rs': [join(root, 'bindings-node/index.d.ts')] },
      },
      files: ['use.ts'],
    }));
    const r = await run(process.execPath, [tsc, '-p', dir], { timeout: 120_000 });
    assert.equal(r.code, 0, `tsc:\n${r.stdout}${r.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the committed loader and typings are what the last build generated', { skip: !existsSync(join(root, '.git')) && 'not a git checkout' }, async () => {
  // `npm run build` rewrites bindings-node/binding.js and index.d.ts in place.
  const diff = await run('git', ['diff', '--stat', '--', 'bindings-node/binding.js', 'bindings-node/index.d.ts'], { cwd: root });
  assert.equal(diff.stdout.trim(), '', 'bindings-node/binding.js or index.d.ts is stale: run `npm run build` and commit them');
});
