// WebRTC signalling and proxies from Node: a Kontrol with `useWebRTC` relays `sendWebRTC`
// messages to the destination's own `kite.handleWebRTC` method, bad messages reject with
// `argumentError`, and the relay forgets a kite that leaves (`webRTCPeers` back to empty);
// `registerToProxy` and `registerToTunnel` through the reference's `reverseproxy` and
// `tunnelproxy` (tests/interop/go/bin/proxypeer, built by tests/interop/go/build.sh), and
// `registerToTunnel` through our `kite-tunnelproxy` binary, give public URLs that callers
// reach over websocket and XHR polling (the reference's tunnel proxy: websocket only), with
// callbacks both ways.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { Kite, Kontrol } from 'kite-rs';
import { kontrolKeys, signal, spawnReady, within } from './helpers.mjs';

const local = { ip: '127.0.0.1', environment: 'test', region: 'r1' };
const repo = fileURLToPath(new URL('../../', import.meta.url));
const proxypeer = join(repo, 'tests/interop/go/bin/proxypeer');
// Our tunnel proxy's binary, built by `cargo build --bin kite-tunnelproxy` (scripts/test.sh
// builds every binary first).
const tunnelproxy = join(process.env.CARGO_TARGET_DIR || join(repo, 'target'), 'debug', 'kite-tunnelproxy');

async function startKontrol(options = {}) {
  const host = new Kite({ name: 'kontrol', version: '1.0.0', username: 'kontrol', ...local, ...options });
  const kontrol = await within(Kontrol.create(host));
  await within(kontrol.listen(0));
  return { kontrol, host };
}

/** Resolves once `check()` holds (polled), rejects after the usual wait. */
async function until(check, what) {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`${what}: still false after 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test('two kites signal through a Kontrol with useWebRTC; bad messages get clear errors', async () => {
  const { kontrol, host } = await startKontrol({ useWebRTC: true });
  const kites = [];
  const make = async (name, username) => {
    const k = new Kite({ name, version: '1.0.0', kiteKey: await kontrol.newKiteKey(username), kontrolUrl: kontrol.url, ...local });
    kites.push(k);
    return k;
  };
  try {
    const a = await make('alice', 'alice');
    const b = await make('bob', 'bob');
    const toA = signal();
    const toB = signal();
    a.handle('kite.handleWebRTC', (req) => { toA(req.args[0]); });
    b.handle('kite.handleWebRTC', (req) => {
      if (req.args[0].payload === 'fail') throw new Error('bob says no');
      toB(req.args[0]);
    });
    const [aId, bId] = [a.kite.id, b.kite.id];

    // b has not reached Kontrol yet: unknown to the relay.
    await assert.rejects(a.sendWebRTC({ type: 'OFFER', dst: bId }), { code: 'genericError', message: /dst not registered/ });
    await within(b.sendWebRTC({ type: 'ANSWER', dst: aId, payload: { sdp: 'v=0' } }));
    const [got] = await toA.next();
    assert.deepEqual(got, { type: 'ANSWER', src: bId, dst: aId, payload: { sdp: 'v=0' } });
    await within(a.sendWebRTC({ type: 'offer', dst: bId }));
    const [offer] = await toB.next();
    assert.deepEqual(offer, { type: 'offer', src: aId, dst: bId }, 'the type is relayed as sent');
    // The destination handler's error comes back to the sender.
    await assert.rejects(a.sendWebRTC({ type: 'CANDIDATE', dst: bId, payload: 'fail' }), { message: /bob says no/ });
    assert.deepEqual(host.webRTCPeers(), [aId, bId].sort());
    assert.deepEqual(a.webRTCPeers(), [], 'a relays nothing itself');

    // Bad messages, rejected before or by the relay; nothing reaches b.
    await assert.rejects(a.sendWebRTC({ type: 'JOIN', dst: bId }), { code: 'argumentError', message: /invalid signalling type "JOIN"/ });
    await assert.rejects(a.sendWebRTC('OFFER'), { code: 'argumentError', message: /want an object/ });
    await assert.rejects(a.sendWebRTC({ type: 'OFFER', dst: 42 }), { code: 'argumentError', message: /expected a string/ });
    await assert.rejects(a.sendWebRTC({ type: 'OFFER', dst: aId }), { code: 'argumentError', message: /dst is the sender itself/ });
    assert.equal(toB.calls.length, 1, 'only the one good message reached b');

    // A kite that leaves is forgotten; messages to it are refused; the table empties.
    b.close();
    await until(() => host.webRTCPeers().length === 1, 'the relay forgets b');
    assert.deepEqual(host.webRTCPeers(), [aId]);
    await assert.rejects(a.sendWebRTC({ type: 'LEAVE', dst: bId }), { code: 'genericError', message: /dst not registered/ });
    a.close();
    await until(() => host.webRTCPeers().length === 0, 'the relay table empties');
  } finally {
    for (const k of kites) k.close();
    host.close();
  }
});

/** A kite serving `square` and `twice` (which answers through a callback). */
function mathKite(name, kiteKey, kontrolUrl) {
  const k = new Kite({ name, version: '1.0.0', kiteKey, kontrolUrl, ...local });
  k.handle('square', (req) => req.args[0] ** 2);
  k.handle('twice', (req) => req.args[1](req.args[0] * 2));
  return k;
}

/** `square(3)` and `twice(5, callback)` through `url`: resolves [9, 10]. */
async function callThrough(caller, url, transport) {
  const c = caller.client(url, { transport });
  try {
    await within(c.dial(), 20_000, `dial ${url} over ${transport}`);
    const square = await within(c.tell('square', [3]));
    const back = signal();
    await within(c.tell('twice', [5, back]));
    const [doubled] = await back.next();
    return [square, doubled];
  } finally {
    c.close();
  }
}

test('a kite behind the reference reverse proxy and one behind its tunnel proxy are called through their public URLs', async () => {
  assert.ok(existsSync(proxypeer), `${proxypeer} is missing: run tests/interop/go/build.sh`);
  const dir = mkdtempSync(join(tmpdir(), 'kite-node-proxy-'));
  const { kontrol, host } = await startKontrol();
  const kites = [];
  const procs = [];
  try {
    const pub = join(dir, 'kontrol_pub.pem');
    writeFileSync(pub, await kontrol.publicKey());
    const aliceKey = await kontrol.newKiteKey('alice');
    const caller = new Kite({ name: 'caller', version: '1.0.0', kiteKey: await kontrol.newKiteKey('bob'), kontrolUrl: kontrol.url, ...local });
    kites.push(caller);

    // The reverse proxy forwards to the kite's own listener.
    const reverse = await spawnReady(proxypeer, ['reverse', '--kontrol-key', pub]);
    procs.push(reverse);
    const behind = mathKite('behind', aliceKey, kontrol.url);
    kites.push(behind);
    await assert.rejects(behind.registerToProxy({ proxyUrl: reverse.ready.url }), { code: 'configError', message: /not listening/ });
    await within(behind.listen(0));
    const viaReverse = await within(behind.registerToProxy({ proxyUrl: reverse.ready.url }), 20_000, 'registerToProxy');
    assert.ok(viaReverse.endsWith(`/proxy/${behind.kite.id}`), viaReverse);
    assert.deepEqual(await callThrough(caller, viaReverse, 'WebSocket'), [9, 10]);
    assert.deepEqual(await callThrough(caller, viaReverse, 'XHRPolling'), [9, 10]);

    // The tunnel proxy reaches a kite that never listens through the tunnels it dials.
    const keys = kontrolKeys();
    const [tPub, tPriv] = [join(dir, 'tunnel_pub.pem'), join(dir, 'tunnel.pem')];
    writeFileSync(tPub, keys.publicKey);
    writeFileSync(tPriv, keys.privateKey);
    const tunnel = await spawnReady(proxypeer, ['tunnel', '--kontrol-key', pub, '--public-key', tPub, '--private-key', tPriv]);
    procs.push(tunnel);
    const hidden = mathKite('private', aliceKey, kontrol.url);
    kites.push(hidden);
    const viaTunnel = await within(hidden.registerToTunnel({ proxyUrl: tunnel.ready.url, retry: 500 }), 20_000, 'registerToTunnel');
    assert.ok(viaTunnel.endsWith(`/proxy?kiteID=${hidden.kite.id}`), viaTunnel);
    assert.equal(hidden.url, null, 'the hidden kite does not listen');
    assert.deepEqual(await callThrough(caller, viaTunnel, 'WebSocket'), [9, 10]);
    // The reference's tunnel proxy tunnels only the websocket transport of its sessions (it
    // dials the kite as a websocket): XHR clients fail there; ours (next test) serves them.
    await assert.rejects(callThrough(caller, viaTunnel, 'XHRPolling'));

    // Kontrol knows the public URL.
    const found = await within(caller.getKites({ username: 'alice', environment: 'test', name: 'private' }));
    assert.deepEqual(found.map((c) => c.url), [viaTunnel]);
  } finally {
    for (const k of kites) k.close();
    host.close();
    for (const p of procs) await p.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Our `kite-tunnelproxy` on 127.0.0.1, port 0, with `home` as KITE_HOME; resolves its URL. */
async function startTunnelProxy(home) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KITE_')));
  const child = spawn(tunnelproxy, ['-ip', '127.0.0.1', '-port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...env, KITE_HOME: home, RUST_LOG: 'warn' },
  });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = once(child, 'exit');
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await exited;
  };
  const ready = (async () => {
    for await (const line of createInterface({ input: child.stdout })) {
      const m = /^kite-tunnelproxy listening on (\S+)$/.exec(line);
      if (m) return m[1];
    }
    throw new Error(`kite-tunnelproxy exited before it was ready:\n${stderr}`);
  })();
  try {
    return { url: await within(ready, 60_000, 'kite-tunnelproxy ready line'), stop };
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
}

test('a kite that only dials out is called through our kite-tunnelproxy over websocket and XHR', async () => {
  assert.ok(existsSync(tunnelproxy), `${tunnelproxy} is missing: run cargo build --bin kite-tunnelproxy`);
  const home = mkdtempSync(join(tmpdir(), 'kite-node-tunnel-'));
  const { kontrol, host } = await startKontrol();
  const kites = [];
  let proxy;
  try {
    // The proxy trusts kite keys from this Kontrol through its own kite.key.
    writeFileSync(join(home, 'kite.key'), await kontrol.newKiteKey('kontrol'));
    proxy = await startTunnelProxy(home);
    const caller = new Kite({ name: 'caller', version: '1.0.0', kiteKey: await kontrol.newKiteKey('bob'), kontrolUrl: kontrol.url, ...local });
    kites.push(caller);
    const hidden = mathKite('private', await kontrol.newKiteKey('alice'), kontrol.url);
    kites.push(hidden);
    const first = await within(hidden.registerToTunnel({ proxyUrl: proxy.url }), 20_000, 'registerToTunnel');
    assert.ok(first.endsWith(`/proxy/${hidden.kite.id}`), first);
    assert.equal(hidden.url, null, 'the hidden kite does not listen');
    assert.deepEqual(await callThrough(caller, first, 'WebSocket'), [9, 10]);
    assert.deepEqual(await callThrough(caller, first, 'XHRPolling'), [9, 10]);
    const found = await within(caller.getKites({ username: 'alice', environment: 'test', name: 'private' }));
    assert.deepEqual(found.map((c) => c.url), [first]);
  } finally {
    for (const k of kites) k.close();
    host.close();
    await proxy?.stop();
    rmSync(home, { recursive: true, force: true });
  }
});
