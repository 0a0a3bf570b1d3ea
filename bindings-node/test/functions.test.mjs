// Functions travel beside the values: a string a peer sends stays a string on the way back,
// and no connection can reach the functions of another — with handlers that return
// functions and post handlers that throw.
//
// The peers here speak raw dnode over SockJS XHR polling (plain fetch, no client library),
// so that each frame's `callbacks` map is checked, not what a client makes of it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RawPeer, connect, signal, startKite, within } from './helpers.mjs';

/** Every string kite-rs ever used as an in-band function marker, and the placeholder. */
function formerMarkers() {
  const out = ['[Function]'];
  for (let n = 0; n < 64; n++) {
    out.push(`\0kite.callback:${n}`, `\0kite.callback#${n}`, `\0kite.function:${n}`);
  }
  return out;
}

/** `echo`, `give` (returns a function), `leak` (returns a function; its post handler throws). */
function functionsKite(given, leaked) {
  return startKite((k) => {
    k.handle('echo', (req) => req.args);
    k.handle('give', () => ({ n: 1, f: given }));
    k.handle('leak', () => [leaked]).postHandle(() => { throw new Error('post handler fails'); });
  }, { disableAuthentication: true });
}

test('strings a peer sends come back as strings', async () => {
  const k = await functionsKite(signal(), signal());
  try {
    const raw = new RawPeer(k.url);
    await raw.open();
    for (const marker of formerMarkers()) {
      const sent = [marker, { k: marker, list: [marker] }];
      const r = await raw.call('echo', sent);
      assert.deepEqual(r.arguments[0].result, sent, JSON.stringify(marker));
      assert.deepEqual(r.callbacks, {}, `${JSON.stringify(marker)} came back as a function`);
    }
    const c = await connect(k.url);
    try {
      assert.deepEqual(await within(c.client.tell('echo', formerMarkers())), formerMarkers());
    } finally {
      c.close();
    }
  } finally {
    k.close();
  }
});

test('no connection reaches the functions of another', async () => {
  const given = signal();
  const leaked = signal();
  const k = await functionsKite(given, leaked);
  try {
    const a = new RawPeer(k.url);
    const b = new RawPeer(k.url);
    await a.open();
    await b.open();
    let r = await a.call('leak', []);
    assert.match(r.arguments[0].error.message, /post handler fails/);
    assert.deepEqual(r.callbacks, {});
    r = await a.call('give', []);
    const entries = Object.entries(r.callbacks);
    assert.equal(entries.length, 1);
    const [id, path] = entries[0];
    assert.deepEqual(path, [0, 'result', 'f']);

    for (const marker of formerMarkers()) {
      const e = await b.call('echo', [marker]);
      assert.deepEqual(e.callbacks, {}, JSON.stringify(marker));
      assert.deepEqual(e.arguments[0].result, [marker]);
    }
    for (const stolen of new Set([Number(id), 0, 1, 2])) {
      await b.send({ method: stolen, arguments: [], callbacks: {} });
    }
    await b.call('echo', []); // answered after the messages before it were read
    await new Promise((r) => setImmediate(r)); // any callback posted to this thread runs first
    assert.equal(given.calls.length, 0, "B reached A's function");
    assert.equal(leaked.calls.length, 0, 'B reached the dropped function');

    await a.send({ method: Number(id), arguments: ['hi'], callbacks: {} });
    assert.deepEqual(await given.next(), ['hi']);

    // Through our own client, the function in the result is an async function.
    const c = await connect(k.url);
    try {
      const result = await within(c.client.tell('give'));
      assert.equal(result.n, 1);
      assert.equal(typeof result.f, 'function');
      await result.f('x');
      assert.deepEqual(await given.next(), ['x']);
    } finally {
      c.close();
    }
  } finally {
    k.close();
  }
});
