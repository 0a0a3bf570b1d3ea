// Interop with kite.js 1.0.13 (the JavaScript kite from npm) in the same process, both
// ways: kite.js's client against our kite (raw websocket, its default, and SockJS), and our
// client against kite.js's server (SockJS under /kite). kite.js quirks we tolerate are listed
// in tests/interop/kitejs/README.md (positional replies, callbacks rewritten to
// `{error: arg}` by its server, no reply for unknown methods).

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { after, test } from 'node:test';
import { connect, signal, startKite, within } from './helpers.mjs';

const require = createRequire(import.meta.url);
const { Kite: JsKite, KiteServer } = require('kite.js');

const open = { auth: false };
const cleanups = [];
after(() => Promise.all(cleanups.map((f) => f())));

function ourServer(k) {
  k.handle('square', (req) => req.args[0] ** 2, open);
  k.handle('echo', (req) => req.args, open);
  k.handle('callback', async (req) => {
    const [n, fn] = req.args;
    for (let i = 0; i < n; i++) await fn(i);
    return n;
  }, open);
  k.handle('fail', () => { throw new Error('boom'); }, open);
  k.handle('callMeBack', (req) => req.client.tell(req.args[0], req.args[1]), open);
}

async function kitejsClient(url, sockjs) {
  const options = {
    url,
    autoConnect: true,
    autoReconnect: false,
    logLevel: 0,
    api: { square: (n, callback) => callback(null, n * n) },
  };
  if (sockjs) {
    options.transportClass = JsKite.transport.SockJS;
    options.transportOptions = { transports: ['websocket'] };
  }
  const kite = new JsKite(options);
  kite.on('error', () => {});
  await within(once(kite, 'open'), 10_000, 'kite.js connect');
  return kite;
}

for (const [mode, path, sockjs] of [['raw websocket', '/websocket', false], ['SockJS', '', true]]) {
  test(`kite.js client (${mode}) calls our kite`, async () => {
    const k = await startKite(ourServer);
    const base = k.url;
    const url = sockjs ? base : base.replace(/^http/, 'ws') + path;
    const js = await kitejsClient(url, sockjs);
    assert.equal(await within(js.tell('square', [4])), 16);
    assert.deepEqual(await within(js.tell('echo', [{ a: 1, b: [true, null, 'x'] }])), [{ a: 1, b: [true, null, 'x'] }]);
    // kite.js sends a bare scalar as withArgs: one argument.
    assert.deepEqual(await within(js.tell('echo', 5)), [5]);
    const got = [];
    assert.equal(await within(js.tell('callback', [3, (i) => got.push(i)])), 3);
    assert.deepEqual(got, [0, 1, 2]);
    await assert.rejects(within(js.tell('fail', [])), (e) => e.type === 'genericError' && e.message === 'boom');
    await assert.rejects(within(js.tell('noSuchMethod', [])), (e) => e.type === 'methodNotFound');
    assert.equal(await within(js.tell('kite.ping', [])), 'pong');
    // Our server calls kite.js back over the same connection; kite.js answers positionally.
    assert.equal(await within(js.tell('callMeBack', ['square', [3]])), 9);
    const gone = signal();
    k.on('disconnect', gone);
    js.disconnect();
    await gone.next();
    k.close();
  });
}

class LoopbackSockJS extends KiteServer.transport.SockJS {
  constructor(options) {
    super({ ...options, hostname: '127.0.0.1', port: '0' });
  }
}

test('our client calls a kite.js server (SockJS)', async () => {
  const server = new KiteServer({
    name: 'jsserver',
    version: '1.0.0',
    auth: false,
    logLevel: 0,
    prefix: '/kite',
    serverClass: LoopbackSockJS,
    api: {
      square: { auth: false, func: (n, respond) => respond(null, n * n) },
      echo: { auth: false, func: (...all) => { all.pop(); all.pop()(null, all); } },
      callback: {
        auth: false,
        func: (n, fn, respond) => {
          for (let i = 0; i < n; i++) fn(i);
          respond(null, n);
        },
      },
      fail: { auth: false, func: (respond) => respond({ type: 'genericError', message: 'boom', code: 'E1' }) },
      throwing: { auth: false, func: (respond) => respond(new Error('plain')) },
    },
  });
  server.listen(0);
  const http = server.server.server;
  if (!http.listening) await once(http, 'listening');
  cleanups.push(() => new Promise((r) => { server.close(); r(); }));
  const url = `http://127.0.0.1:${http.address().port}/kite`;
  for (const transport of ['WebSocket', 'XHRPolling']) {
    const { client: c, close } = await connect(url, { transport });
    assert.equal(await c.tell('square', [4]), 16);
    assert.deepEqual(await c.tell('echo', [{ a: 1 }, 'x']), [{ a: 1 }, 'x']);
    // kite.js's server rewrites every message it sends, callback calls included, to
    // [{error: arg0, result: arg1}] (README.md): the callback sees that shape.
    const got = signal();
    assert.equal(await c.tell('callback', [3, got]), 3);
    for (let i = 0; i < 3; i++) assert.deepEqual(await got.next(), [{ error: i }]);
    await assert.rejects(c.tell('fail', []), { code: 'genericError', message: 'boom', appCode: 'E1' });
    await assert.rejects(c.tell('throwing', []), { code: 'genericError', message: 'plain' });
    assert.equal(await c.tell('kite.ping', []), 'pong');
    // kite.js never answers unknown methods: our timeout fires.
    await assert.rejects(c.tell('noSuchMethod', [], { timeout: 200 }), { code: 'timeout' });
    close();
  }
});
