#!/usr/bin/env node
// The interop test server of tests/interop/SCENARIOS.md on kite-rs from Node: the same
// methods as the Go, kite.js and Rust servers, with JavaScript handlers.
//
//   node server.mjs [--kontrol-key FILE] [--kontrol-user NAME] [--username NAME]
//                   [--kite-key FILE] [--port N]
//
// Prints one JSON line when listening, {"port":N,"url":"http://127.0.0.1:N/kite"}, and
// exits when stdin closes or on SIGTERM/SIGINT. Logs (KITE_LOG_LEVEL) go to stderr.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Kite, kiteError } from 'kite-rs';

const { values: opts } = parseArgs({
  options: {
    'kontrol-key': { type: 'string' },
    'kontrol-user': { type: 'string', default: 'testuser' },
    username: { type: 'string', default: 'testuser' },
    'kite-key': { type: 'string' },
    port: { type: 'string', default: '0' },
  },
});

const k = new Kite({
  name: 'interop',
  version: '1.0.0',
  ip: '127.0.0.1',
  port: Number(opts.port),
  ...(opts['kite-key'] ? { kiteKey: readFileSync(opts['kite-key'], 'utf8').trim() } : {}),
  username: opts.username,
  kontrolUser: opts['kontrol-user'],
  ...(opts['kontrol-key'] ? { kontrolKey: readFileSync(opts['kontrol-key'], 'utf8') } : {}),
});

const open = { auth: false };
k.handle('square', (req) => {
  const n = req.args[0];
  if (typeof n !== 'number') throw kiteError('argumentError', 'square wants a number');
  return n * n;
}, open);
k.handle('echo', (req) => req.args, open);
k.handle('callback', async (req) => {
  const [n, fn] = req.args;
  for (let i = 0; i < n; i++) await fn(i);
  return n;
}, open);
k.handle('nested', async (req) => {
  const [{ a, b }] = req.args;
  await a('a');
  await b.c[0]('c');
  return 'ok';
}, open);
k.handle('fail', () => { throw new Error('boom'); }, open);
k.handle('needString', (req) => {
  const s = req.args[0];
  if (typeof s !== 'string') throw kiteError('argumentError', `want a string, got ${typeof s}`);
  return s;
}, open);
k.handle('callMeBack', (req) => {
  const [method, args] = req.args;
  return req.client.tell(method, args);
}, open);
k.handle('secret', (req) => req.username);
k.handle('limited', () => 'ok', { auth: false, throttle: { interval: 3600_000, capacity: 1 } });
for (const m of ['kite.systemInfo', 'kite.heartbeat']) k.method(m)?.disableAuthentication();

const port = await k.listen();
process.stdout.write(`${JSON.stringify({ port, url: `http://127.0.0.1:${port}/kite` })}\n`);

const stop = () => {
  k.close();
  process.stdin.destroy();
};
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
