// Errors users can work with: KiteError is a real class (instanceof, type, code, the stack of
// the call site), a handler sends any error kind, a callback or listener that throws or
// rejects is reported (to the remote caller when it waits, to the kite's 'error' event and
// the log) and never ends the process, and log records reach a JavaScript logger.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Kite, KiteError, kiteError, setLogger } from 'kite-rs';
import { connect, run, startKite, within } from './helpers.mjs';

const open = { auth: false };
const root = fileURLToPath(new URL('../..', import.meta.url));

/** Resolves with the next `event` of kite `k`. */
function next(k, event) {
  return within(new Promise((resolve) => {
    const f = (v) => { k.off(event, f); resolve(v); };
    k.on(event, f);
  }), 10_000, `the ${event} event`);
}

test('KiteError is an exported class: instanceof, type, code, appCode, the stack of the call', async () => {
  const k = await startKite((k) => {
    k.handle('custom', () => { throw new KiteError('quotaExceeded', 'too many', { appCode: 'Q1' }); }, open);
    k.handle('plain', () => { throw new TypeError('bad input'); }, open);
    k.handle('coded', () => { throw kiteError('argumentError', 'want a number', 'E_ARG'); }, open);
  });
  const { local, client } = await connect(k.url);
  try {
    // A kind of your own travels as is (as Python's KiteError(kind=...) does).
    const e = await client.tell('custom').then(() => assert.fail('resolved'), (err) => err);
    assert.ok(e instanceof KiteError);
    assert.ok(e instanceof Error);
    assert.equal(e.name, 'KiteError');
    assert.equal(e.type, 'quotaExceeded');
    assert.equal(e.code, 'quotaExceeded');
    assert.equal(e.appCode, 'Q1');
    assert.equal(e.message, 'too many');
    assert.match(e.requestId, /^.{16}$/);
    // The stack is the caller's: this file, not the binding's internals.
    const frames = e.stack.split('\n');
    assert.equal(frames[0], 'KiteError: too many');
    assert.match(frames[1], /errors\.test\.mjs/, e.stack);

    const plain = await client.tell('plain').catch((err) => err);
    assert.ok(plain instanceof KiteError);
    assert.equal(plain.type, 'genericError');
    assert.equal(plain.message, 'bad input');

    const coded = await client.tell('coded').catch((err) => err);
    assert.equal(coded.type, 'argumentError');
    assert.equal(coded.appCode, 'E_ARG');

    const missing = await client.tell('nope').catch((err) => err);
    assert.ok(missing instanceof KiteError);
    assert.equal(missing.type, 'methodNotFound');
    assert.ok(KiteError.isWireKind(missing.type));
    assert.ok(!KiteError.isWireKind('quotaExceeded'));
  } finally {
    client.close(); local.close(); k.close();
  }
});

test('errors the binding throws and local failures are KiteErrors too', async () => {
  assert.throws(() => new Kite({ name: 'x', version: '1.0.0', port: 70000 }),
    (e) => e instanceof KiteError && e.type === 'configError');
  const k = new Kite({ name: 'x', version: '1.0.0', ip: '127.0.0.1' });
  k.handle('a', () => 1);
  assert.throws(() => k.handle('a', () => 2), (e) => e instanceof KiteError && e.code === 'duplicateMethod');
  // A dial to a port nobody listens on: dialError, with this file in the stack.
  const c = k.client('http://127.0.0.1:9/kite');
  const e = await c.dial(2000).catch((err) => err);
  assert.ok(e instanceof KiteError, String(e));
  assert.equal(e.type, 'dialError');
  assert.match(e.stack.split('\n')[1], /errors\.test\.mjs/, e.stack);
  c.close(); k.close();
});

test('a callback that throws on unexpected arguments from the remote side is reported, not fatal', async () => {
  // The remote kite calls our callback with a string where a number is expected.
  const k = await startKite((k) => {
    k.handle('feed', async (req) => {
      const [fn] = req.args;
      await fn('not a number', { unexpected: true });
      await fn(2);
      return 'fed';
    }, open);
  });
  const { local, client } = await connect(k.url);
  try {
    const errors = [];
    local.on('error', (e) => errors.push(e));
    const seen = [];
    const reported = next(local, 'error');
    assert.equal(await client.tell('feed', [(n) => seen.push(n.toFixed(1))]), 'fed');
    const e = await reported;
    assert.ok(e instanceof TypeError, String(e));
    assert.match(e.message, /toFixed/);
    assert.match(e.stack, /errors\.test\.mjs/);
    // The second call of the callback still ran, and the connection still works.
    await within((async () => { while (seen.length < 1) await new Promise((r) => setImmediate(r)); })());
    assert.deepEqual(seen, ['2.0']);
    assert.equal(await client.tell('feed', [() => {}]), 'fed');
    assert.equal(errors.length, 1);
  } finally {
    client.close(); local.close(); k.close();
  }
});

test('an async callback that rejects is reported, never an unhandled rejection', async () => {
  const unhandled = [];
  const onUnhandled = (r) => unhandled.push(r);
  process.on('unhandledRejection', onUnhandled);
  const k = await startKite((k) => {
    k.handle('ping', async (req) => { await req.args[0]('x'); return 'ok'; }, open);
  });
  const { local, client } = await connect(k.url);
  try {
    const reported = next(local, 'error');
    assert.equal(await client.tell('ping', [async () => { throw new KiteError('myKind', 'async failure'); }]), 'ok');
    const e = await reported;
    assert.ok(e instanceof KiteError);
    assert.equal(e.message, 'async failure');
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
    client.close(); local.close(); k.close();
  }
});

test('an event listener that throws is reported on the error event', async () => {
  const k = await startKite();
  const reported = next(k, 'error');
  k.on('connect', () => { throw new Error('listener bug'); });
  const { local, client } = await connect(k.url);
  try {
    const e = await reported;
    assert.equal(e.message, 'listener bug');
  } finally {
    client.close(); local.close(); k.close();
  }
});

test('without an error listener the failure is printed with its stack and the process lives on', async () => {
  const program = `
    const { Kite } = require('kite-rs');
    (async () => {
      const k = new Kite({ name: 'a', version: '1.0.0', ip: '127.0.0.1' });
      k.handle('call', async (req) => { await req.args[0](42); return 'done'; }, { auth: false });
      await k.listen(0);
      const me = new Kite({ name: 'b', version: '1.0.0' });
      const c = me.client(k.url); await c.dial();
      const r = await c.tell('call', [function throwing(n) { throw new Error('callback bug ' + n); }]);
      console.log('still alive', r);
      c.close(); k.close(); me.close();
    })();
  `;
  const r = await run(process.execPath, ['-e', program], { cwd: root });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /still alive done/);
  assert.match(r.stderr, /a callback failed/);
  assert.match(r.stderr, /Error: callback bug 42\n\s+at throwing/);
  assert.doesNotMatch(r.stderr, /Error: Error/);
});

test('log records go to the JavaScript logger at its level; null stops them', async () => {
  const records = [];
  setLogger((r) => records.push(r), 'info');
  try {
    const k = await startKite();
    assert.ok(records.some((r) => r.level === 'info' && r.target.startsWith('kite') && /serving/.test(r.message)),
      JSON.stringify(records));
    assert.ok(records.every((r) => ['error', 'warn', 'info'].includes(r.level)));
    setLogger((r) => records.push(r), 'error');
    const before = records.length;
    const k2 = await startKite();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(records.length, before, 'no info record at level error');
    // A logger that throws does not break the kite.
    setLogger(() => { throw new Error('logger bug'); }, 'info');
    const k3 = await startKite();
    k.close(); k2.close(); k3.close();
  } finally {
    setLogger(null);
  }
  const n = records.length;
  const k4 = await startKite();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(records.length, n);
  k4.close();
  assert.throws(() => setLogger(() => {}, 'loud'), (e) => e instanceof KiteError && e.type === 'configError');
});

test('KITE_LOG_LEVEL takes the reference\'s names and directives; unset, stderr stays quiet', async () => {
  // A kite that listens (an info record) and dials with certificates unchecked (a warning).
  const program = `
    const { Kite } = require('kite-rs');
    (async () => {
      const k = new Kite({ name: 'a', version: '1.0.0', ip: '127.0.0.1' });
      await k.listen(0);
      const c = k.client('https://127.0.0.1:1/kite');
      await c.dial().catch(() => {});
      c.close(); k.close();
    })();
  `;
  const info = /INFO kite::server::listen: serving/;
  const warning = /WARN kite::tls: KITE_TLS_INSECURE_SKIP_VERIFY/;
  for (const [level, shown] of [['INFO', [info, warning]], ['kite=info', [info, warning]],
    ['WARNING', [warning]], ['warn', [warning]], ['FATAL', []], ['', []], [undefined, []]]) {
    const env = { ...process.env, KITE_LOG_NOCOLOR: '1', KITE_TLS_INSECURE_SKIP_VERIFY: '1' };
    delete env.KITE_LOG_LEVEL;
    if (level !== undefined) env.KITE_LOG_LEVEL = level;
    const r = await run(process.execPath, ['-e', program], { cwd: root, env });
    assert.equal(r.code, 0, r.stderr);
    for (const re of [info, warning]) {
      if (shown.includes(re)) assert.match(r.stderr, re, `KITE_LOG_LEVEL=${level}`);
      else assert.doesNotMatch(r.stderr, re, `KITE_LOG_LEVEL=${level}`);
    }
    if (shown.length === 0) assert.equal(r.stderr, '', `KITE_LOG_LEVEL=${level}`);
  }
});
