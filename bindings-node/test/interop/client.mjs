#!/usr/bin/env node
// The interop test client of tests/interop/SCENARIOS.md on kite-rs from Node.
//
//   node client.mjs --url URL [--transport WebSocket|XHRPolling] [--kite-key FILE] [--token JWT]
//
// Runs every scenario over one connection and prints one JSON line per scenario,
// {"scenario","ok","result","error":{"type","message"}|null}, then exits 0 if all passed.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { isDeepStrictEqual } from 'node:util';
import { Kite } from 'kite-rs';

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' },
    transport: { type: 'string', default: 'WebSocket' },
    'kite-key': { type: 'string' },
    token: { type: 'string' },
  },
});
if (!opts.url) {
  process.stderr.write('interop client: --url is required\n');
  process.exit(2);
}
const kiteKey = opts['kite-key'] ? readFileSync(opts['kite-key'], 'utf8').trim() : null;
const subject = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url')).sub;

const local = new Kite({ name: 'interop-client', version: '1.0.0' });
// Served to the server over the same connection (callMeBack).
local.handle('square', (req) => req.args[0] ** 2, { auth: false });
const c = local.client(opts.url, { transport: opts.transport });
let failed = false;

function report(scenario, ok, result, error, why) {
  if (!ok) {
    failed = true;
    process.stderr.write(`interop client: scenario ${scenario} FAILED: ${why}\n`);
  }
  const err = error ? { type: error.code ?? 'clientError', message: error.message } : null;
  process.stdout.write(`${JSON.stringify({ scenario, ok, result: result ?? null, error: err })}\n`);
}

async function call(method, args) {
  try {
    return { result: await c.tell(method, args, { timeout: 10_000 }) };
  } catch (error) {
    return { error };
  }
}

async function expectValue(scenario, method, args, want, check = () => null) {
  const { result, error } = await call(method, args);
  let why = error ? `unexpected error: ${error.code}: ${error.message}` : null;
  if (!why && !(typeof want === 'function' ? want(result) : isDeepStrictEqual(result, want))) {
    why = `result ${JSON.stringify(result)}, want ${typeof want === 'function' ? 'a match' : JSON.stringify(want)}`;
  }
  why ??= check();
  report(scenario, !why, result, error, why);
}

async function expectError(scenario, method, args, type, message) {
  const { result, error } = await call(method, args);
  let why = null;
  if (!error) why = `no error (result ${JSON.stringify(result)}), want ${type}`;
  else if (error.code !== type) why = `error ${error.code} (${error.message}), want ${type}`;
  else if (message && error.message !== message) why = `message ${JSON.stringify(error.message)}, want ${JSON.stringify(message)}`;
  report(scenario, !why, result, error, why);
}

try {
  await c.dial(10_000);
} catch (error) {
  report('connect', false, null, error, error.message);
  local.close();
  process.exit(1);
}

await expectValue('square', 'square', [4], 16);
await expectValue('echoObject', 'echo', [{ a: 1, b: [true, null, 'x'] }], [{ a: 1, b: [true, null, 'x'] }]);
await expectValue('echoScalar', 'echo', 5, (r) => isDeepStrictEqual(r, [5]) || r === 5);
await expectValue('echoNull', 'echo', undefined, (r) => r === null || isDeepStrictEqual(r, []));
{
  const got = [];
  await expectValue('callback', 'callback', [3, (i) => got.push(i)], 3,
    () => (isDeepStrictEqual(got, [0, 1, 2]) ? null : `callback called with ${JSON.stringify(got)}, want [0,1,2]`));
}
{
  const got = [];
  const fn = (s) => got.push(s);
  await expectValue('nested', 'nested', [{ a: fn, b: { c: [fn] } }], 'ok',
    () => (isDeepStrictEqual(got, ['a', 'c']) ? null : `callbacks called with ${JSON.stringify(got)}, want ["a","c"]`));
}
await expectError('fail', 'fail', [], 'genericError', 'boom');
await expectError('methodNotFound', 'noSuchMethod', [], 'methodNotFound');
await expectError('argumentError', 'needString', [1], 'argumentError');
await expectValue('ping', 'kite.ping', [], 'pong');
await expectValue('systemInfo', 'kite.systemInfo', [], (r) => r && typeof r === 'object' && 'state' in r && 'uname' in r);
{
  let beats = 0;
  let wake = () => {};
  const { result, error } = await call('kite.heartbeat', [1, () => { beats++; wake(); }]);
  if (!error) {
    const deadline = Date.now() + 5000;
    while (beats < 2 && Date.now() < deadline) {
      await new Promise((resolve) => { wake = resolve; setTimeout(resolve, deadline - Date.now()); });
    }
  }
  const why = error ? `unexpected error: ${error.message}` : beats >= 2 ? null : `heartbeat callback called ${beats} time(s) in 5s, want >= 2`;
  report('heartbeat', !why, result, error, why);
}
await expectValue('callMeBack', 'callMeBack', ['square', [3]], 9);
if (kiteKey) {
  c.auth = { type: 'kiteKey', key: kiteKey };
  await expectValue('secretWithKey', 'secret', [], subject(kiteKey));
  c.auth = null;
}
if (opts.token) {
  c.auth = { type: 'token', key: opts.token };
  await expectValue('secretWithToken', 'secret', [], subject(opts.token));
  c.auth = null;
}
await expectError('secretWithout', 'secret', [], 'authenticationError');
await call('limited', []);
await expectError('limited', 'limited', [], 'requestLimitError');

c.close();
local.close();
process.exitCode = failed ? 1 : 0;
