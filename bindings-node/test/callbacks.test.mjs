// Callbacks both ways (JavaScript functions as arguments, the remote side's functions as
// async functions), timeouts, disconnects, the AbortSignal of requests, and that nothing
// the bridge keeps for JavaScript outlives its call or connection.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Kite } from 'kite-rs';
import { connect, signal, startKite, within } from './helpers.mjs';

const open = { auth: false };

/** Waits until `cond()` holds (polling the event loop, bounded). */
async function eventually(cond, what) {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`${what}: not reached`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('JavaScript functions sent as arguments are callbacks the remote side calls many times', async () => {
  const k = await startKite((k) => {
    k.handle('callback', async (req) => {
      const [n, fn] = req.args;
      assert.equal(typeof fn, 'function');
      for (let i = 0; i < n; i++) await fn(i, { i });
      return n;
    }, open);
    k.handle('nested', async (req) => {
      const [{ a, b }] = req.args;
      await a('a');
      await b.c[0]('c', b.c[1]);
      return 'ok';
    }, open);
    k.handle('keep', (req) => {
      const [fn] = req.args;
      setTimeout(() => fn('later'), 20);
      return 'kept';
    }, open);
  });
  const { local, client: c, close } = await connect(k.url);
  const got = signal();
  assert.equal(await c.tell('callback', [3, got]), 3);
  for (let i = 0; i < 3; i++) assert.deepEqual(await got.next(), [i, { i }]);
  // Functions anywhere in the arguments, and a function passed back to us as an argument.
  const a = signal();
  const cc = signal();
  const inner = () => {};
  assert.equal(await c.tell('nested', [{ a, b: { c: [cc, inner] } }]), 'ok');
  assert.deepEqual(await a.next(), ['a']);
  const [word, back] = await cc.next();
  assert.equal(word, 'c');
  assert.equal(typeof back, 'function');
  // The remote side may keep a callback and call it after the call returned.
  const later = signal();
  assert.equal(await c.tell('keep', [later]), 'kept');
  assert.deepEqual(await later.next(), ['later']);
  // Callbacks live while the connection does; closing it releases them all.
  assert.ok(local.handleCounts().functions > 0);
  close();
  await eventually(() => local.handleCounts().functions === 0, 'caller functions released');
  k.close();
});

test('functions received from the remote side are async functions, callable many times', async () => {
  const k = await startKite((k) => {
    k.handle('subscribe', async (req) => {
      const [onEvent] = req.args;
      const sent = [];
      for (let i = 0; i < 5; i++) sent.push(await onEvent(`event ${i}`));
      return sent.length;
    }, open);
    k.handle('twoWay', async (req) => {
      const [ask] = req.args;
      const answers = signal();
      await ask('question?', answers);
      const [answer] = await answers.next();
      return `got ${answer}`;
    }, open);
  });
  const { client: c, close } = await connect(k.url);
  const events = signal();
  assert.equal(await c.tell('subscribe', [events]), 5);
  for (let i = 0; i < 5; i++) assert.deepEqual(await events.next(), [`event ${i}`]);
  // A callback that answers through a callback the server sent along.
  const ask = async (q, reply) => {
    assert.equal(q, 'question?');
    const r = reply('42');
    assert.ok(r instanceof Promise);
    await r;
  };
  assert.equal(await c.tell('twoWay', [ask]), 'got 42');
  close();
  k.close();
});

test('results may carry callbacks', async () => {
  const called = signal();
  const k = await startKite((k) => {
    k.handle('withResultFn', (req) => ({ n: 1, fn: (...a) => called(req.args[0], ...a) }), open);
  });
  const { client: c, close } = await connect(k.url);
  const r = await c.tell('withResultFn', ['x']);
  assert.equal(r.n, 1);
  // The caller gets the function itself (an async function calling back the handler's).
  assert.equal(typeof r.fn, 'function');
  await r.fn('y');
  assert.deepEqual(await called.next(), ['x', 'y']);
  close();
  k.close();
});

test('timeouts, disconnects and the request AbortSignal', async () => {
  let aborted;
  const started = signal();
  const k = await startKite((k) => {
    k.handle('hang', (req) => {
      aborted = new Promise((resolve) => req.signal.addEventListener('abort', () => resolve(req.signal.aborted)));
      assert.equal(req.signal, req.signal);
      assert.equal(req.signal.aborted, false);
      started();
      return new Promise(() => {});
    }, open);
    k.handle('slow', () => new Promise((r) => setTimeout(() => r('slow'), 300)), open);
  });
  const { client: c, close, local } = await connect(k.url);
  await assert.rejects(c.tell('slow', [], { timeout: 50 }), {
    code: 'timeout', message: 'No response to "slow" method in 50ms',
  });
  const pending = c.tell('hang', [], { timeout: 60_000 });
  await started.next();
  // `slow` finishes on the server though its caller gave up; then only `hang` is pending.
  await eventually(() => k.handleCounts().pending === 1, 'only hang pending');
  close();
  await assert.rejects(pending, { code: 'disconnect', message: 'Remote kite has disconnected' });
  assert.equal(await within(aborted), true);
  await eventually(() => k.handleCounts().pending === 0, 'server pending calls released');
  assert.equal(local.handleCounts().pending, 0);
  k.close();
});

test('many concurrent calls settle and leave nothing behind', async () => {
  const k = await startKite((k) => {
    k.handle('square', (req) => req.args[0] ** 2, open);
    k.handle('asyncSquare', async (req) => req.args[0] ** 2, open);
  });
  const baseline = k.handleCounts();
  const { client: c, close } = await connect(k.url);
  const calls = [];
  for (let i = 0; i < 2000; i++) calls.push(c.tell(i % 2 ? 'square' : 'asyncSquare', [i]));
  const results = await within(Promise.all(calls), 30_000);
  results.forEach((r, i) => assert.equal(r, i * i));
  assert.deepEqual(k.handleCounts(), baseline);
  close();
  k.close();
});

test('a kite that never listened and clients that never dialed need no closing', async () => {
  const k = new Kite({ name: 'idle', version: '1.0.0' });
  k.client('http://127.0.0.1:1/kite');
  k.handle('x', () => 1);
  assert.deepEqual(k.handleCounts(), { functions: 1, pending: 0 });
});
