#!/usr/bin/env node
// Interop test client (tests/interop/SCENARIOS.md) built on kite.js's Kite.
//
//   node client.js --url URL [--sockjs] [--transport WebSocket|XHRPolling]
//                  [--kite-key FILE] [--token JWT] [--timeout MS]
//
// Transport: kite.js's default client transport is a raw websocket (the `ws` package; one
// dnode message per websocket text message, no SockJS framing) opened on URL as given
// (ws://, wss://, http:// and https:// all work). --sockjs switches to kite.js's SockJS
// transport (sockjs-client) on URL, e.g. http://127.0.0.1:N/kite; --transport WebSocket or
// XHRPolling then restricts sockjs-client to its websocket or xhr-polling transport
// (--transport XHRPolling implies --sockjs).
//
// Runs the scenarios in order and prints one JSON line per scenario on stdout:
//   {"scenario": NAME, "ok": BOOL, "result": VALUE, "error": {"type","message"} | null}
// then exits 0 if every scenario passed, 1 otherwise (2 on bad usage). kite.js has no call
// timeout; each call here gets --timeout MS (default 5000) and reports {"type":"timeout"}.
// secretWithKey / secretWithToken run only with --kite-key / --token (each on a connection of
// its own, made with kite.js's `auth` option).
//
// kite.js's logging goes to stderr; KITEJS_LOG_LEVEL=5 logs every message sent and received.

'use strict';

// kite.js logs with console.info/console.log (stdout); stdout is for the result lines.
for (const name of ['log', 'info', 'debug']) {
  console[name] = (...args) => console.error(...args);
}

const fs = require('fs');
const { Kite } = require('kite.js');

function usage(msg) {
  process.stderr.write(`client.js: ${msg}\nusage: node client.js --url URL [--sockjs] ` +
    '[--transport WebSocket|XHRPolling] [--kite-key FILE] [--token JWT] [--timeout MS]\n');
  process.exit(2);
}

const opts = { url: null, sockjs: false, transport: null, kiteKey: null, token: null, timeout: 5000 };
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--url': opts.url = value(); break;
      case '--sockjs': opts.sockjs = true; break;
      case '--transport': opts.transport = value(); break;
      case '--kite-key': opts.kiteKey = fs.readFileSync(value(), 'utf8').trim(); break;
      case '--token': opts.token = value(); break;
      case '--timeout': opts.timeout = Number(value()); break;
      default: usage(`unknown argument ${JSON.stringify(a)}`);
    }
  }
  if (!opts.url) usage('--url is required');
  if (opts.transport && !['WebSocket', 'XHRPolling'].includes(opts.transport)) {
    usage(`--transport must be WebSocket or XHRPolling, got ${JSON.stringify(opts.transport)}`);
  }
  if (opts.transport === 'XHRPolling') opts.sockjs = true;
  if (!(opts.timeout > 0)) usage('--timeout must be a positive number of milliseconds');
}

const logLevel = process.env.KITEJS_LOG_LEVEL != null ? Number(process.env.KITEJS_LOG_LEVEL) : 2;

function newKite(extra = {}) {
  const options = Object.assign({
    url: opts.url,
    autoConnect: true,
    autoReconnect: false,
    logLevel,
    // The client serves `square`, for callMeBack.
    api: {
      square: (n, callback) => callback(null, n * n),
    },
  }, extra);
  if (opts.sockjs) {
    options.transportClass = Kite.transport.SockJS;
    options.transportOptions = { timeout: opts.timeout };
    if (opts.transport === 'WebSocket') options.transportOptions.transports = ['websocket'];
    if (opts.transport === 'XHRPolling') options.transportOptions.transports = ['xhr-polling'];
  }
  const kite = new Kite(options);
  // Without a listener, the 'error' event kite.js emits on a websocket error would throw.
  kite.on('error', (what, err) => console.error('client.js: kite error:', what, err && err.message || err));
  return kite;
}

class Failure extends Error {
  constructor(type, message) {
    super(message);
    this.type = type;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function withTimeout(promise, what, ms = opts.timeout) {
  let timer;
  return Promise.race([
    Promise.resolve(promise).finally(() => clearTimeout(timer)),
    new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Failure('timeout', `No response to ${what} in ${ms} ms`)), ms);
    }),
  ]);
}

// kite.js's tell(method, params) sends `withArgs: params` as given: a scalar stays a scalar,
// and tell(method) with no params sends `withArgs: []`.
function tell(kite, method, ...params) {
  return withTimeout(kite.tell(method, ...params), `"${method}" method`);
}

async function connect(kite) {
  if (kite.readyState === 1) return;
  await withTimeout(new Promise((resolve, reject) => {
    kite.once('open', resolve);
    kite.once('close', (e) => reject(new Failure('disconnect', `connection closed before it opened${e && e.code ? ` (${e.code})` : ''}`)));
  }), `connect to ${opts.url}`);
  if (opts.sockjs) console.error(`client.js: connected to ${opts.url} with sockjs-client transport ${kite.ws.transport}`);
}

// Wait until cond() or ms elapse.
async function until(cond, ms) {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await sleep(20);
  return cond();
}

const json = (v) => JSON.stringify(v === undefined ? null : v);
const deepEqual = (a, b) => json(a) === json(b);

function jwtSubject(jwt) {
  try {
    return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8')).sub;
  } catch (e) {
    return undefined;
  }
}

function expectError(type, message) {
  return async (promise) => {
    let result;
    try {
      result = await promise;
    } catch (err) {
      if (err.type === type && (message === undefined || err.message === message)) return { result: null, passed: err };
      throw err;
    }
    throw new Failure('unexpectedSuccess', `expected a ${type} error, got result ${json(result)}`);
  };
}

function expectResult(check, describe) {
  return async (promise) => {
    const result = await promise;
    if (!check(result)) throw new Failure('mismatch', `expected ${describe}, got ${json(result)}`);
    return { result };
  };
}

const equals = (expected) => expectResult((r) => deepEqual(r, expected), json(expected));

// Each scenario: run(kite) resolves to {result, passed?} or rejects with the error to report.
const scenarios = [
  ['square', (k) => equals(16)(tell(k, 'square', [4]))],
  ['echoObject', (k) => equals([{ a: 1, b: [true, null, 'x'] }])(tell(k, 'echo', [{ a: 1, b: [true, null, 'x'] }]))],
  ['echoScalar', (k) => equals(5)(tell(k, 'echo', 5))],
  ['echoNull', (k) => expectResult((r) => r === null || r === undefined || deepEqual(r, []), 'null or []')(tell(k, 'echo'))],
  ['callback', async (k) => {
    const calls = [];
    const result = await tell(k, 'callback', [3, (...args) => calls.push(args)]);
    await until(() => calls.length >= 3, 1000);
    if (result !== 3 || !deepEqual(calls, [[0], [1], [2]])) {
      throw new Failure('mismatch', `expected result 3 and fn called with 0, 1, 2; got result ${json(result)}, calls ${json(calls)}`);
    }
    return { result };
  }],
  ['nested', async (k) => {
    const calls = [];
    const result = await tell(k, 'nested', [{
      a: (...args) => calls.push(['a', args]),
      b: { c: [(...args) => calls.push(['c', args])] },
    }]);
    await until(() => calls.length >= 2, 1000);
    const sorted = calls.slice().sort((x, y) => (x[0] < y[0] ? -1 : 1));
    if (result !== 'ok' || !deepEqual(sorted, [['a', ['a']], ['c', ['c']]])) {
      throw new Failure('mismatch', `expected result "ok", a("a") and c("c"); got result ${json(result)}, calls ${json(calls)}`);
    }
    return { result };
  }],
  ['fail', (k) => expectError('genericError', 'boom')(tell(k, 'fail', []))],
  ['methodNotFound', (k) => expectError('methodNotFound')(tell(k, 'noSuchMethod', []))],
  ['argumentError', (k) => expectError('argumentError')(tell(k, 'needString', [1]))],
  ['ping', (k) => equals('pong')(tell(k, 'kite.ping'))],
  ['systemInfo', (k) => expectResult((r) => r && typeof r === 'object' && 'state' in r && 'uname' in r,
    'an object with state and uname')(tell(k, 'kite.systemInfo'))],
  ['heartbeat', async (k) => {
    const beats = [];
    const result = await tell(k, 'kite.heartbeat', [1, (...args) => beats.push(args)]);
    const enough = await until(() => beats.length >= 2, 3500);
    if (!enough) throw new Failure('mismatch', `heartbeat callback called ${beats.length} times in 3.5 s, want >= 2`);
    return { result: result === undefined ? null : result };
  }],
  ['callMeBack', (k) => equals(9)(tell(k, 'callMeBack', ['square', [3]]))],
];

if (opts.kiteKey) {
  scenarios.push(['secretWithKey', { auth: { type: 'kiteKey', key: opts.kiteKey } },
    (k) => equals(jwtSubject(opts.kiteKey))(tell(k, 'secret', []))]);
}
if (opts.token) {
  scenarios.push(['secretWithToken', { auth: { type: 'token', key: opts.token } },
    (k) => equals(jwtSubject(opts.token))(tell(k, 'secret', []))]);
}
scenarios.push(['secretWithout', (k) => expectError('authenticationError')(tell(k, 'secret', []))]);
scenarios.push(['limited', async (k) => {
  // The bucket may already be empty (an earlier client); only the second call is checked.
  const first = await tell(k, 'limited', []).then((r) => ({ result: r }), (e) => ({ error: e.type }));
  await expectError('requestLimitError')(tell(k, 'limited', []));
  return { result: [first, { error: 'requestLimitError' }] };
}]);

function errorOf(err) {
  if (err == null) return { type: 'unknown', message: 'rejected without an error' };
  if (typeof err !== 'object') return { type: 'unknown', message: String(err) };
  return { type: err.type != null ? String(err.type) : 'unknown', message: err.message != null ? String(err.message) : json(err) };
}

function print(line) {
  process.stdout.write(JSON.stringify(line) + '\n');
}

async function main() {
  const kites = [];
  let main = null;
  let mainError = null;
  let allOk = true;

  for (const entry of scenarios) {
    const name = entry[0];
    const kiteOptions = entry.length === 3 ? entry[1] : null;
    const run = entry[entry.length - 1];
    let line;
    try {
      let kite;
      if (kiteOptions) {
        kite = newKite(kiteOptions);
        kites.push(kite);
        await connect(kite);
      } else {
        if (!main && !mainError) {
          main = newKite();
          kites.push(main);
          try {
            await connect(main);
          } catch (e) {
            mainError = e;
          }
        }
        if (mainError) throw mainError;
        kite = main;
      }
      const out = await run(kite);
      line = { scenario: name, ok: true, result: out.result === undefined ? null : out.result, error: null };
      if (out.passed) line.error = errorOf(out.passed); // the expected error
    } catch (err) {
      line = { scenario: name, ok: false, result: null, error: errorOf(err) };
    }
    if (!line.ok) allOk = false;
    print(line);
  }

  for (const k of kites) {
    try { k.disconnect(); } catch (e) { /* already closed */ }
  }
  // kite.js keeps timers (token expiry, heartbeats); leave explicitly once stdout is flushed.
  process.stdout.write('', () => process.exit(allOk ? 0 : 1));
}

main().catch((e) => {
  console.error('client.js:', e && e.stack || e);
  process.exit(1);
});
