// Interop with the Go reference kite (github.com/koding/kite): the SCENARIOS.md test client
// and server built by tests/interop/go/build.sh, against our Node interop server and client
// (test/interop/server.mjs, client.mjs), over websocket and XHR polling, with kite keys and
// tokens signed by a test Kontrol key.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { kontrolKeys, mintKiteKey, mintToken, run, spawnReady } from './helpers.mjs';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const goDir = join(repo, 'tests/interop/go');
const bin = (name) => join(goDir, 'bin', name);
const nodeServer = fileURLToPath(new URL('./interop/server.mjs', import.meta.url));
const nodeClient = fileURLToPath(new URL('./interop/client.mjs', import.meta.url));

// Every scenario of SCENARIOS.md; each must pass in both directions.
const SCENARIOS = [
  'square', 'echoObject', 'echoScalar', 'echoNull', 'callback', 'nested', 'fail', 'methodNotFound',
  'argumentError', 'ping', 'systemInfo', 'heartbeat', 'callMeBack', 'secretWithKey', 'secretWithToken',
  'secretWithout', 'limited',
];

let dir;
let creds;

before(async () => {
  if (!['server', 'client'].every((b) => existsSync(bin(b)))) {
    const built = await run('bash', [join(goDir, 'build.sh')], { timeout: 600_000 });
    assert.equal(built.code, 0, `tests/interop/go/build.sh failed:\n${built.stderr}`);
  }
  dir = mkdtempSync(join(tmpdir(), 'kite-node-go-'));
  const keys = kontrolKeys();
  const file = (name, text) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  creds = {
    kontrolKey: file('kontrol.pub', keys.publicKey),
    clientKey: file('client.key', mintKiteKey(keys, { issuer: 'testuser', username: 'alice' })),
    token: mintToken(keys, { issuer: 'testuser', username: 'bob', audience: '/' }),
  };
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Checks a SCENARIOS client's output: one passing line per scenario. */
function checkLines(out, who) {
  const lines = out.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const failed = lines.filter((l) => !l.ok);
  assert.deepEqual(failed, [], `${who}: failing scenarios\n${out.stderr}`);
  assert.deepEqual(lines.map((l) => l.scenario).sort(), [...SCENARIOS].sort(), who);
  assert.equal(out.code, 0, `${who} exited ${out.code}\n${out.stderr}`);
}

for (const transport of ['WebSocket', 'XHRPolling']) {
  test(`Go reference client -> our Node server (${transport})`, async () => {
    const server = await spawnReady(process.execPath, [nodeServer, '--kontrol-key', creds.kontrolKey], { cwd: repo });
    try {
      const out = await run(bin('client'), [
        '--url', server.ready.url, '--transport', transport, '--kite-key', creds.clientKey, '--token', creds.token,
      ], { timeout: 120_000 });
      checkLines(out, 'Go client');
    } finally {
      await server.stop();
    }
    assert.equal(server.child.exitCode, 0, `our server did not exit cleanly:\n${server.stderr()}`);
  });

  test(`our Node client -> Go reference server (${transport})`, async () => {
    const server = await spawnReady(bin('server'), ['--kontrol-key', creds.kontrolKey]);
    try {
      const out = await run(process.execPath, [
        nodeClient, '--url', server.ready.url, '--transport', transport, '--kite-key', creds.clientKey, '--token', creds.token,
      ], { timeout: 120_000, cwd: repo });
      checkLines(out, 'Node client');
    } finally {
      await server.stop();
    }
  });
}
