#!/usr/bin/env node
// Records kite.js's raw wire messages into tests/interop/golden/kitejs/<name>.json.
//
//   node golden.js [OUTDIR]
//
// 1. Client side: a kite.js Kite (default raw websocket transport) dials a recording `ws`
//    server here, which stores every message the Kite sends (calls with and without
//    arguments, with callbacks, with kiteKey and token authentication) and also calls methods
//    on the Kite to record its replies.
// 2. Server side: server.js (kite.js's KiteServer) is started and sent hand-written calls in
//    the Go reference's shape; every message it sends back is stored.
//
// Each file holds one message exactly as it was on the wire, plus a newline. Messages carry
// random kite ids, machine data (kite.systemInfo) and test keys, so a new run differs in
// those values; the shapes are what matter. Exit 0 when everything was recorded.

'use strict';

for (const name of ['log', 'info', 'debug']) {
  console[name] = (...args) => console.error(...args);
}

const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');
const WebSocket = require('ws');
const { Kite } = require('kite.js');

const OUT = path.resolve(process.argv[2] || path.join(__dirname, '..', 'golden', 'kitejs'));
fs.mkdirSync(OUT, { recursive: true });

const written = [];
function save(name, raw) {
  fs.writeFileSync(path.join(OUT, `${name}.json`), raw + '\n');
  written.push(name);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Fixed JWT-shaped test strings: kite.js's client sends them as given (it only reads a
// token's `exp` claim, to schedule renewal), and no one verifies them here.
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
const FAKE_KITE_KEY = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({ iss: 'testuser', sub: 'alice', iat: 1700000000, jti: 'golden-kite-key', kontrolKey: '-----BEGIN PUBLIC KEY-----\n...\n-----END PUBLIC KEY-----\n', kontrolURL: 'http://127.0.0.1:4000/kite' })}.c2lnbmF0dXJl`;
const FAKE_TOKEN = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({ iss: 'testuser', sub: 'bob', aud: '/testuser/interop/interop', exp: 4102444800, iat: 1700000000, nbf: 1700000000, jti: 'golden-token' })}.c2lnbmF0dXJl`;

const GO_KITE = { username: 'testuser', environment: 'interop', name: 'golden', version: '1.0.0', region: 'local', hostname: 'golden-host', id: 'golden-id' };

// --- 1. kite.js client -> recording server -------------------------------------------------

async function recordClient() {
  const wss = new WebSocket.Server({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => wss.once('listening', resolve));
  const url = `ws://127.0.0.1:${wss._server.address().port}/kite`;

  const received = []; // raw strings
  const waiters = [];
  let conn = null;
  wss.on('connection', (ws) => {
    conn = ws;
    ws.on('message', (raw) => {
      received.push(raw);
      const msg = JSON.parse(raw);
      // Answer calls the Go way so the Kite's promises settle.
      const opts = msg.arguments && msg.arguments[0];
      if (typeof msg.method === 'string' && opts && opts.responseCallback === '[Function]') {
        const id = Object.keys(msg.callbacks).find((k) => msg.callbacks[k].join('/') === '0/responseCallback');
        ws.send(JSON.stringify({ method: Number(id), arguments: [{ error: null, result: null }], callbacks: {} }));
      }
      for (const w of waiters.splice(0)) w();
    });
  });
  const next = async (pred, what) => {
    const deadline = Date.now() + 3000;
    for (;;) {
      const hit = received.find((r) => pred(JSON.parse(r)));
      if (hit) return hit;
      if (Date.now() > deadline) throw new Error(`no client message for ${what}`);
      await new Promise((resolve) => { waiters.push(resolve); setTimeout(resolve, 50); });
    }
  };

  const newKite = (extra) => new Kite(Object.assign({
    url, autoReconnect: false, logLevel: 1,
    api: { square: (n, callback) => callback(null, n * n) },
  }, extra));

  const kite = newKite();
  await new Promise((resolve) => kite.once('open', resolve));
  await sleep(50);

  kite.tell('square', [4]);
  save('client-square', await next((m) => m.method === 'square', 'square'));
  kite.tell('echo');
  save('client-no-args', await next((m) => m.method === 'echo' && Array.isArray(m.arguments[0].withArgs) && m.arguments[0].withArgs.length === 0, 'echo without args'));
  kite.tell('echo', 5);
  save('client-scalar-args', await next((m) => m.method === 'echo' && m.arguments[0].withArgs === 5, 'echo 5'));
  kite.tell('callback', [3, () => {}]);
  save('client-callback-arg', await next((m) => m.method === 'callback', 'callback'));
  kite.tell('nested', [{ a: () => {}, b: { c: [() => {}] } }]);
  save('client-nested-callbacks', await next((m) => m.method === 'nested', 'nested'));

  // The server side calls the Kite: its replies are positional (err, result).
  const before = received.length;
  // withArgs [] rather than Go's null: with a falsy withArgs kite.js calls kite.ping(null, ...)
  // and its `callback is not a function` TypeError kills the client process (README.md).
  conn.send(JSON.stringify({ method: 'kite.ping', arguments: [{ kite: GO_KITE, authentication: null, withArgs: [], responseCallback: '[Function]' }], callbacks: { 0: [0, 'responseCallback'] } }));
  save('client-reply-ping', await next((m) => received.indexOf(JSON.stringify(m)) >= before && m.method === 0, 'reply to kite.ping'));
  conn.send(JSON.stringify({ method: 'square', arguments: [{ kite: GO_KITE, authentication: null, withArgs: [3], responseCallback: '[Function]' }], callbacks: { 1: [0, 'responseCallback'] } }));
  save('client-reply-square', await next((m) => m.method === 1, 'reply to square'));
  conn.send(JSON.stringify({ method: 'kite.heartbeat', arguments: [{ kite: GO_KITE, authentication: null, withArgs: [10, '[Function]'], responseCallback: '[Function]' }], callbacks: { 2: [0, 'responseCallback'], 3: [0, 'withArgs', 1] } }));
  save('client-reply-heartbeat', await next((m) => m.method === 2, 'reply to kite.heartbeat'));
  // A call carrying kiteKey authentication (as a Go kite with a kite key sends): kite.js
  // knows only `token`, so it does not run the method and answers through its kite.echo with a
  // *successful* positional reply whose result holds the error.
  conn.send(JSON.stringify({ method: 'kite.ping', arguments: [{ kite: GO_KITE, authentication: { type: 'kiteKey', key: FAKE_KITE_KEY }, withArgs: [], responseCallback: '[Function]' }], callbacks: { 4: [0, 'responseCallback'] } }));
  save('client-reply-kitekey-call', await next((m) => m.method === 4, 'reply to a kiteKey-authenticated kite.ping'));
  kite.disconnect();

  const keyed = newKite({ auth: { type: 'kiteKey', key: FAKE_KITE_KEY } });
  await new Promise((resolve) => keyed.once('open', resolve));
  keyed.tell('secret', []);
  save('client-kitekey-auth', await next((m) => m.method === 'secret' && m.arguments[0].authentication && m.arguments[0].authentication.type === 'kiteKey', 'kiteKey call'));
  keyed.disconnect();

  const tokened = newKite({ auth: { type: 'token', key: FAKE_TOKEN } });
  await new Promise((resolve) => tokened.once('open', resolve));
  tokened.tell('secret', []);
  save('client-token-auth', await next((m) => m.method === 'secret' && m.arguments[0].authentication && m.arguments[0].authentication.type === 'token', 'token call'));
  tokened.disconnect();

  await sleep(100);
  wss.close();
}

// --- 2. hand-written calls -> kite.js server (server.js) -------------------------------------

async function recordServer() {
  const child = spawn(process.execPath, [path.join(__dirname, 'server.js')], { stdio: ['pipe', 'pipe', 'inherit'] });
  const ready = await new Promise((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve(JSON.parse(buf.slice(0, nl)));
    });
    child.once('exit', (code) => reject(new Error(`server.js exited with ${code}`)));
  });

  // One websocket connection with helpers to send Go-shaped calls and await replies.
  async function session() {
    const ws = new WebSocket(ready.url);
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    ws.on('error', () => {}); // kite.js may break the connection (see the withArgs-null probe)
    const received = [];
    ws.on('message', (raw) => received.push(raw));
    let nextId = 0;
    // Send a call shaped like the Go reference's; returns the callback ids used.
    const call = (method, withArgs, fnPaths = []) => {
      const id = nextId++;
      const callbacks = { [id]: [0, 'responseCallback'] };
      const ids = [id];
      for (const p of fnPaths) {
        const fid = nextId++;
        callbacks[fid] = [0, 'withArgs', ...p];
        ids.push(fid);
      }
      ws.send(JSON.stringify({ method, arguments: [{ kite: GO_KITE, authentication: null, withArgs, responseCallback: '[Function]' }], callbacks }));
      return ids;
    };
    const waitFor = async (pred, what, ms = 3000) => {
      const deadline = Date.now() + ms;
      for (;;) {
        const hit = received.find((r) => pred(JSON.parse(r)));
        if (hit) return hit;
        if (Date.now() > deadline) return null;
        await sleep(20);
      }
    };
    const must = async (pred, what, ms) => {
      const hit = await waitFor(pred, what, ms);
      if (!hit) throw new Error(`kite.js server sent nothing for ${what}`);
      return hit;
    };
    return { ws, call, waitFor, must };
  }

  const { ws, call, waitFor, must } = await session();

  let [r] = call('square', [4]);
  save('server-square-reply', await must((m) => m.method === r, 'square'));

  [r] = call('noSuchMethod', []);
  if (await waitFor((m) => m.method === r, 'noSuchMethod', 2000)) throw new Error('kite.js answered an unknown method; update README.md');
  // (no file: kite.js never answers an unknown method)

  [r] = call('fail', []);
  save('server-error-reply', await must((m) => m.method === r, 'fail'));

  [r] = call('kite.tunnel', []);
  save('server-error-instance-reply', await must((m) => m.method === r, 'kite.tunnel'));

  [r] = call('kite.ping', []);
  save('server-ping-reply', await must((m) => m.method === r, 'kite.ping'));

  [r] = call('kite.systemInfo', []);
  save('server-systeminfo-reply', await must((m) => m.method === r, 'kite.systemInfo'));

  let fn;
  [r, fn] = call('callback', [1, '[Function]'], [[1]]);
  save('server-callback-invocation', await must((m) => m.method === fn, 'callback fn(0)'));
  save('server-callback-reply', await must((m) => m.method === r, 'callback result'));

  [r, fn] = call('kite.heartbeat', [1, '[Function]'], [[1]]);
  save('server-heartbeat-reply', await must((m) => m.method === r, 'kite.heartbeat'));
  save('server-heartbeat-ping', await must((m) => m.method === fn, 'heartbeat ping', 2500));

  // callMeBack: the server calls `square` on us; record its request, answer the Go way.
  [r] = call('callMeBack', ['square', [3]]);
  const request = await must((m) => m.method === 'square', 'callMeBack request');
  save('server-request-to-client', request);
  const req = JSON.parse(request);
  const rc = Object.keys(req.callbacks).find((k) => req.callbacks[k].map(String).join('/') === '0/responseCallback');
  ws.send(JSON.stringify({ method: Number(rc), arguments: [{ error: null, result: 9 }], callbacks: {} }));
  save('server-callmeback-reply', await must((m) => m.method === r, 'callMeBack result'));

  ws.close();

  // Go sends withArgs null for a call without arguments. kite.js then calls the default
  // method with (null, responseCallback, ...): kite.ping(callback) gets null as its callback,
  // throws out of the websocket's message handler (which also wrecks ws's frame parser for
  // that connection) and never answers (README.md). That is why the kite.* calls above send [].
  const probe = await session();
  [r] = probe.call('kite.ping', null);
  if (await probe.waitFor((m) => m.method === r, 'kite.ping with withArgs null', 1000)) {
    throw new Error('kite.js answered kite.ping with withArgs null; update README.md');
  }
  probe.ws.close();

  await sleep(100);
  child.stdin.end();
  await new Promise((resolve) => child.once('exit', resolve));
}

(async () => {
  await recordClient();
  await recordServer();
  console.error(`golden.js: wrote ${written.length} files to ${OUT}: ${written.join(', ')}`);
  process.exit(0);
})().catch((e) => {
  console.error('golden.js:', e && e.stack || e);
  process.exit(1);
});
