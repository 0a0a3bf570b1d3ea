// Kontrol from Node: running one (in memory, on SQLite and on a real PostgreSQL server the
// file starts), kite keys it signs, kites that register to it, find each other with getKites
// and call each other with its tokens, getToken and getKey; two Kontrols on one PostgreSQL
// database being one registry; and that a process running it exits once it is closed.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Kite, Kontrol } from 'kite-rs';
import { signal, startPostgres, within } from './helpers.mjs';

const local = { ip: '127.0.0.1', environment: 'test', region: 'r1' };

async function startKontrol(options = {}) {
  const k = new Kite({ name: 'kontrol', version: '1.0.0', username: 'kontrol', ...local });
  const kontrol = await within(Kontrol.create(k, options));
  await within(kontrol.listen(0));
  return { kontrol, host: k };
}

// One PostgreSQL server for the file, started by the first test that needs it (each test
// gets a database of its own) and stopped after the last: it is a daemon that would outlive
// the process otherwise.
let pg;
const postgres = () => (pg ??= startPostgres());
after(async () => {
  if (pg) await (await pg.catch(() => null))?.stop();
});

/** The `storage` option for `storage` (a fresh SQLite file in `dir`, a fresh database). */
async function storageSpec(storage, dir) {
  if (storage === 'memory') return 'memory';
  if (storage === 'sqlite') return `sqlite:${join(dir, 'kontrol.db')}`;
  return (await postgres()).newDatabase();
}

for (const storage of ['memory', 'sqlite', 'postgres']) {
  test(`register, getKites, tokens and keys through a Kontrol on ${storage} storage`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kite-node-kontrol-'));
    const { kontrol } = await startKontrol({ storage: await storageSpec(storage, dir) });
    try {
      assert.match(kontrol.url, /^http:\/\/127\.0\.0\.1:\d+\/kite$/);
      const publicKey = await kontrol.publicKey();
      assert.match(publicKey, /BEGIN PUBLIC KEY/);

      // A math kite owned by alice registers; authentication stays on for its methods.
      const math = new Kite({
        name: 'math', version: '1.2.0', kiteKey: await kontrol.newKiteKey('alice'), kontrolUrl: kontrol.url, ...local,
      });
      assert.equal(math.kite.username, 'alice');
      math.handle('square', (req) => ({ n: req.args[0] ** 2, by: req.username }));
      const registered = signal();
      math.on('register', registered);
      await math.listen(0);
      const result = await within(math.register());
      assert.equal(result.url, math.url);
      const [event] = await registered.next();
      assert.equal(event.url, math.url);

      // Bob finds it and calls it with the token Kontrol gave him.
      const caller = new Kite({
        name: 'caller', version: '1.0.0', kiteKey: await kontrol.newKiteKey('bob'), kontrolUrl: kontrol.url, ...local,
      });
      const found = await within(caller.getKites({ username: 'alice', environment: 'test', name: 'math', version: '>= 1.0, < 2.0' }));
      assert.equal(found.length, 1);
      const [c] = found;
      assert.equal(c.url, math.url);
      assert.equal(c.remoteKite.name, 'math');
      assert.equal(c.auth.type, 'token');
      await c.dial();
      assert.deepEqual(await c.tell('square', [7]), { n: 49, by: 'bob' });
      await assert.rejects(caller.getKites({ username: 'alice', environment: 'test', name: 'nothing' }), { code: 'genericError', message: 'no kites available' });

      const token = await within(caller.getToken(math.kite));
      assert.equal(token.split('.').length, 3);
      const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url'));
      assert.equal(claims.sub, 'bob');
      assert.equal(claims.iss, 'kontrol');
      const forced = await within(caller.getToken(math.kite, true));
      assert.equal(forced.split('.').length, 3);
      assert.equal((await within(caller.getKey())).trim(), publicKey.trim());

      // Kontrol's own methods refuse callers without a kite key.
      const stranger = new Kite({ name: 'stranger', version: '1.0.0', kontrolUrl: kontrol.url, ...local });
      await assert.rejects(stranger.getKites({ username: 'alice' }));

      c.close();
      caller.close();
      stranger.close();
      // (That a closed kite stops redialing Kontrol is core's test client_redial.rs; that
      // the process then exits, exit.test.mjs.)
      math.close();
    } finally {
      kontrol.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('two Kontrols on one PostgreSQL database are one registry', async () => {
  // What PostgreSQL storage is for: Kontrols sharing it (behind a load balancer, say) share
  // kites and key pairs. Started one after the other, so B finds the key pair A generated.
  const url = await (await postgres()).newDatabase();
  // Closed front to back: kites and clients before the Kontrols they would redial.
  const open = [];
  try {
    const a = await startKontrol({ storage: url });
    open.unshift(a.kontrol);
    const b = await startKontrol({ storage: url });
    open.unshift(b.kontrol);
    assert.notEqual(a.kontrol.url, b.kontrol.url);
    assert.equal((await b.kontrol.publicKey()).trim(), (await a.kontrol.publicKey()).trim());

    // Alice's math kite registers through A only...
    const math = new Kite({
      name: 'math', version: '1.2.0', kiteKey: await a.kontrol.newKiteKey('alice'), kontrolUrl: a.kontrol.url, ...local,
    });
    open.unshift(math);
    math.handle('square', (req) => ({ n: req.args[0] ** 2, by: req.username }));
    await math.listen(0);
    await within(math.register());

    // ...and Bob, who knows only B, finds it there and calls it with a token B signed
    // (math trusts it: B signs with the key pair it shares with A).
    const caller = new Kite({
      name: 'caller', version: '1.0.0', kiteKey: await b.kontrol.newKiteKey('bob'), kontrolUrl: b.kontrol.url, ...local,
    });
    open.unshift(caller);
    const found = await within(caller.getKites({ username: 'alice', environment: 'test', name: 'math' }));
    assert.equal(found.length, 1);
    const [c] = found;
    open.unshift(c);
    assert.equal(c.url, math.url);
    assert.deepEqual(c.remoteKite, math.kite);
    await within(c.dial());
    assert.deepEqual(await within(c.tell('square', [6])), { n: 36, by: 'bob' });
  } finally {
    for (const o of open) o.close();
  }
});

test('register needs a URL when the kite does not listen; unknown storage is refused', async () => {
  const k = new Kite({ name: 'x', version: '1.0.0', kontrolUrl: 'http://127.0.0.1:1/kite' });
  await assert.rejects(k.register(), { code: 'configError' });
  k.close();
  const host = new Kite({ name: 'kontrol', version: '1.0.0' });
  await assert.rejects(Kontrol.create(host, { storage: 'floppy' }), { code: 'configError' });
  // Parsed by the core: a backend not built into the addon names its cargo feature.
  await assert.rejects(Kontrol.create(host, { storage: 'etcd://127.0.0.1:2379' }),
    { code: 'configError', message: /cargo feature `etcd`/ });
  // The other options are the core's too (kite::kontrol::KontrolOptions, milliseconds).
  await assert.rejects(Kontrol.create(host, { heartbeatInterval: -1 }),
    { code: 'configError', message: /heartbeatInterval must be a non-negative number of milliseconds/ });
  host.close();
});
