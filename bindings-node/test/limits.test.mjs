// The limits per peer are options of the Node kite (the README's "Limits per peer"): each is
// checked by what a peer meets when it is reached, over raw SockJS XHR polling.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Kite } from 'kite-rs';
import { RawPeer, startKite } from './helpers.mjs';

test('sessions per client is an option', async () => {
  const k = await startKite(() => {}, { disableAuthentication: true, maxSessionsPerClient: 2 });
  try {
    const frames = [];
    for (let i = 0; i < 3; i++) frames.push(await new RawPeer(k.url).post('/xhr'));
    assert.deepEqual(frames, ['o\n', 'o\n', 'c[1013,"Too many sessions"]\n']);
  } finally {
    k.close();
  }
});

test('callbacks per connection is an option', async () => {
  const k = await startKite((kite) => {
    kite.handle('functions', (req) => Array.from({ length: req.args[0] }, () => () => {}));
  }, { disableAuthentication: true, maxCallbacks: 3 });
  try {
    const raw = new RawPeer(k.url);
    await raw.open();
    assert.equal((await raw.call('functions', [2])).arguments[0].error, null);
    const refused = (await raw.call('functions', [5])).arguments[0].error;
    assert.equal(refused.type, 'requestLimitError', JSON.stringify(refused));
  } finally {
    k.close();
  }
});

test('bad limits name the option', () => {
  assert.throws(() => new Kite({ name: 'l', version: '1.0.0', trustedProxies: ['proxy.example'] }), /trustedProxies/);
  assert.throws(() => new Kite({ name: 'l', version: '1.0.0', maxCallbacks: -1 }), /maxCallbacks/);
});
