// No leaked threadsafe functions: a Node process using kites exits by itself once its kites
// and clients are closed, and stays up while one listens or is connected. Each case runs in
// a child process and is judged by how (and whether) it exits.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startKite } from './helpers.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Runs `source` as an ES module in a child Node; resolves how it ended within `ms`. */
async function runChild(source, ms, env = {}) {
  const child = spawn(process.execPath, ['--input-type=module', '-e', source], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const exited = once(child, 'exit');
  let timer;
  const timedOut = new Promise((r) => { timer = setTimeout(() => r('running'), ms); });
  const first = await Promise.race([exited, timedOut]);
  clearTimeout(timer);
  if (first === 'running') {
    child.kill('SIGKILL');
    await exited;
    return { running: true, out };
  }
  return { running: false, code: first[0], out };
}

const workout = `
import { Kite } from 'kite-rs';
const k = new Kite({ name: 'server', version: '1.0.0', ip: '127.0.0.1' });
k.handle('square', (req) => req.args[0] ** 2, { auth: false });
k.handle('callback', async (req) => {
  const [n, fn] = req.args;
  for (let i = 0; i < n; i++) await fn(i);
  return n;
}, { auth: false });
k.handle('hold', (req) => { req.signal; return 'held'; }, { auth: false })
  .preHandle(() => null).finalFunc(() => undefined);
k.preHandle(() => null);
k.on('connect', () => {}).on('disconnect', () => {}).on('firstRequest', () => {});
k.addAuthenticator('x', () => 'y');
await k.listen(0);
const local = new Kite({ name: 'caller', version: '1.0.0' });
local.handle('double', (req) => req.args[0] * 2);
const c = local.client(k.url);
c.on('connect', () => {}).on('disconnect', () => {});
await c.dial();
const forever = local.client(k.url);
await forever.dialForever();
let seen = 0;
if (await c.tell('callback', [3, () => { seen++; }]) !== 3) process.exit(3);
if (await forever.tell('square', [4]) !== 16) process.exit(4);
await c.tell('hold');
try { await c.tell('nope'); } catch (e) { if (e.code !== 'methodNotFound') process.exit(5); }
try { await c.tell('square', [1], { timeout: 1 }); } catch {}
const conn = c.connection;
conn.remoteKite;
c.close();
forever.close();
local.close();
k.close();
console.log('closed', seen);
`;

test('the process exits by itself once kites and clients are closed', async () => {
  const r = await runChild(workout, 20_000);
  assert.equal(r.running, false, `still running after close:\n${r.out}`);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /closed 3/);
});

test('a process running Kontrol and registered kites exits once they are closed', async () => {
  const src = `
import { Kite, Kontrol } from 'kite-rs';
const kontrol = await Kontrol.create(new Kite({ name: 'kontrol', version: '1.0.0', username: 'kontrol', ip: '127.0.0.1' }));
await kontrol.listen(0);
const math = new Kite({ name: 'math', version: '1.0.0', ip: '127.0.0.1', kiteKey: await kontrol.newKiteKey('alice'), kontrolUrl: kontrol.url });
math.handle('square', (req) => req.args[0] ** 2);
await math.listen(0);
await math.registerForever();
const caller = new Kite({ name: 'caller', version: '1.0.0', kiteKey: await kontrol.newKiteKey('bob'), kontrolUrl: kontrol.url });
const [c] = await caller.getKites({ username: 'alice', environment: 'unknown', name: 'math' });
await c.dial();
console.log('square', await c.tell('square', [6]));
caller.close();
math.close();
kontrol.close();
`;
  const r = await runChild(src, 30_000);
  assert.equal(r.running, false, `still running:\n${r.out}`);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /square 36/);
});

test('closing the kite alone also closes the clients it made', async () => {
  const src = `
import { Kite } from 'kite-rs';
const k = new Kite({ name: 'server', version: '1.0.0', ip: '127.0.0.1' });
await k.listen(0);
const c = k.client(k.url);
await c.dialForever();
k.close();
console.log('closed');
`;
  const r = await runChild(src, 20_000);
  assert.equal(r.running, false, `still running:\n${r.out}`);
  assert.equal(r.code, 0, r.out);
});

test('a listening kite keeps the process alive', async () => {
  const src = `
import { Kite } from 'kite-rs';
const k = new Kite({ name: 'server', version: '1.0.0', ip: '127.0.0.1' });
await k.listen(0);
console.log('listening');
`;
  const r = await runChild(src, 1500);
  assert.equal(r.running, true, `exited while listening:\n${r.out}`);
  assert.match(r.out, /listening/);
});

test('a connected client keeps the process alive until the remote side drops it', async () => {
  const server = await startKite((k) => k.handle('square', (req) => req.args[0] ** 2, { auth: false }));
  const src = `
import { Kite } from 'kite-rs';
const local = new Kite({ name: 'caller', version: '1.0.0' });
const c = local.client(process.env.URL);
await c.dial();
console.log('answer', await c.tell('square', [7]));
`;
  const child = runChild(src, 20_000, { URL: server.url });
  // Connected and idle: the child waits; dropping the connection lets it exit.
  await new Promise((r) => setTimeout(r, 1500));
  server.close();
  const r = await child;
  assert.equal(r.running, false, `still running after the server closed:\n${r.out}`);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /answer 49/);
});

test('kites that never listened keep nothing alive', async () => {
  const src = `
import { Kite } from 'kite-rs';
const k = new Kite({ name: 'idle', version: '1.0.0' });
k.handle('x', () => 1);
k.on('connect', () => {});
k.client('http://127.0.0.1:1/kite').on('connect', () => {});
console.log('done');
`;
  const r = await runChild(src, 10_000);
  assert.equal(r.running, false, r.out);
  assert.equal(r.code, 0, r.out);
});
