// The Node examples run as the README says: examples/node/math.js --port PORT serves square
// and echo without authentication on 127.0.0.1; math-client.js calls it.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { connect, run, within } from './helpers.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));

test('math.js serves square and echo; math-client.js calls them', async () => {
  const math = spawn(process.execPath, ['examples/node/math.js', '--port', '0'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const [line] = await within(once(createInterface({ input: math.stdout }), 'line'), 30_000, 'math.js');
    const url = line.match(/listening on (http:\/\/127\.0\.0\.1:\d+\/kite)$/)?.[1];
    assert.ok(url, line);
    const { client, close } = await connect(url);
    assert.equal(await client.tell('square', [9]), 81);
    assert.deepEqual(await client.tell('echo', ['a', { b: 1 }]), ['a', { b: 1 }]);
    await assert.rejects(client.tell('square', ['x']), { code: 'argumentError' });
    close();
    const out = await run(process.execPath, ['examples/node/math-client.js', '--url', url, '7'], { cwd: root });
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /^square\(7\) = 49\necho = \["hello",\{"from":"kite-rs"\}\]\n$/);
  } finally {
    const exited = once(math, 'exit');
    math.kill('SIGTERM');
    const [code] = await within(exited, 10_000, 'math.js exit');
    assert.equal(code, 0);
  }
});

test('math.js refuses a bad port', async () => {
  const out = await run(process.execPath, ['examples/node/math.js', '--port', 'x'], { cwd: root });
  assert.equal(out.code, 2);
  assert.match(out.stderr, /--port/);
});
