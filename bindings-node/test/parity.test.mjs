// What the Rust API has and the Node binding gained to match it: HTTP routes beside /kite,
// registerHttpForever, the Kontrol key renewer and waitConnected.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Kite, KiteError, Kontrol } from 'kite-rs';
import { connect, startKite, within } from './helpers.mjs';

test('routes beside /kite: text, JSON with status and headers, 204, 500, refusals', async () => {
  const seen = {};
  const k = await startKite((k) => {
    k.addRoute('GET', '/health', () => 'ok')
      .addRoute('POST', '/hooks/push', async (req) => {
        Object.assign(seen, req);
        return { status: 201, headers: { 'x-hook': '1' }, body: { got: JSON.parse(req.body) } };
      })
      .addRoute('GET', '/boom', () => { throw new Error('route bug'); })
      .addRoute('DELETE', '/nothing', () => undefined);
    assert.throws(() => k.addRoute('GET', '/health', () => 'again'),
      (e) => e instanceof KiteError && e.type === 'configError' && /exists already/.test(e.message));
    assert.throws(() => k.addRoute('GET', '/kite/x', () => ''), (e) => e instanceof KiteError);
    assert.throws(() => k.addRoute('BREW', '/tea', () => ''), (e) => e instanceof KiteError);
  });
  try {
    const base = k.url.replace(/\/kite$/, '');
    let r = await fetch(`${base}/health`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/plain/);
    assert.equal(await r.text(), 'ok');

    r = await fetch(`${base}/hooks/push?from=test`, { method: 'POST', body: '{"a":[1,2]}' });
    assert.equal(r.status, 201);
    assert.equal(r.headers.get('x-hook'), '1');
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.deepEqual(await r.json(), { got: { a: [1, 2] } });
    assert.equal(seen.method, 'POST');
    assert.equal(seen.path, '/hooks/push');
    assert.equal(seen.query, 'from=test');
    assert.equal(seen.body, '{"a":[1,2]}');
    assert.equal(typeof seen.headers, 'object');

    r = await fetch(`${base}/boom`);
    assert.equal(r.status, 500);
    r = await fetch(`${base}/nothing`, { method: 'DELETE' });
    assert.equal(r.status, 204);
    r = await fetch(`${base}/missing`);
    assert.equal(r.status, 404);
    r = await fetch(`${base}/kite/info`);
    assert.equal(r.status, 200);
  } finally {
    k.close();
  }
});

test('waitConnected resolves once the client is connected', async () => {
  const k = await startKite();
  const local = new Kite({ name: 'caller', version: '1.0.0' });
  const c = local.client(k.url);
  try {
    const waiting = c.waitConnected();
    await within(c.dial());
    await within(waiting);
    await within(c.waitConnected());
    assert.equal(c.connected, true);
  } finally {
    c.close(); local.close(); k.close();
  }
});

test('registerHttpForever and the key renewer against a Kontrol', async () => {
  const host = new Kite({ name: 'kontrol', version: '1.0.0', username: 'kontrol', ip: '127.0.0.1' });
  const kontrol = await within(Kontrol.create(host));
  await within(kontrol.listen(0));
  const math = new Kite({
    name: 'math', version: '1.0.0', ip: '127.0.0.1', kiteKey: await kontrol.newKiteKey('alice'), kontrolUrl: kontrol.url,
  });
  const caller = new Kite({ name: 'caller', version: '1.0.0', kiteKey: await kontrol.newKiteKey('bob'), kontrolUrl: kontrol.url });
  try {
    math.handle('square', (req) => req.args[0] ** 2);
    await math.listen(0);
    const result = await within(math.registerHttpForever(), 30_000, 'registerHttpForever');
    assert.equal(result.url, math.url);
    assert.throws(() => math.keyRenewer(0), (e) => e instanceof KiteError && e.type === 'configError');
    math.keyRenewer(50);
    await kontrol.rotateKey();
    const [c] = await within(caller.getKites({ username: 'alice', environment: 'unknown', name: 'math' }));
    await within(c.dial());
    // Tokens are now signed with the rotated key; the renewer makes math trust it.
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        assert.equal(await c.tell('square', [3]), 9);
        break;
      } catch (e) {
        if (!(e instanceof KiteError) || Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  } finally {
    caller.close(); math.close(); kontrol.close();
  }
});
