// TLS from Node: a kite served over HTTPS with a certificate of a CA made for the test
// (openssl), called by a Node client that trusts the CA through KITE_TLS_CA_FILE (read by
// the core when the kite is created), over websocket and XHR polling; without the CA the
// dial fails at once with a `tlsError` naming the URL.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Kite } from 'kite-rs';
import { startKite, within } from './helpers.mjs';

/** A CA and a certificate for 127.0.0.1 it signed: `{ dir, ca, cert, key }`. */
function makePki() {
  const dir = mkdtempSync(join(tmpdir(), 'kite-tls-'));
  const f = (name) => join(dir, name);
  const openssl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', f('ca-key.pem'), '-out', f('ca.pem'), '-days', '2',
    '-subj', '/CN=kite test CA');
  openssl('req', ...ec, '-keyout', f('key.pem'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1');
  openssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca-key.pem'),
    '-CAcreateserial', '-out', f('cert.pem'), '-days', '2', '-extfile', f('ext.cnf'));
  return { dir, ca: f('ca.pem'), cert: f('cert.pem'), key: f('key.pem') };
}

test('a Node client calls a TLS kite over both transports; an untrusted one gets tlsError', async () => {
  const pki = makePki();
  const server = await startKite((k) => k.handle('square', (req) => req.args[0] ** 2, { auth: false }),
    { tls: { cert: pki.cert, key: pki.key } });
  const url = server.url;
  assert.match(url, /^https:\/\/127\.0\.0\.1:\d+\/kite$/);

  process.env.KITE_TLS_CA_FILE = pki.ca;
  const caller = new Kite({ name: 'caller', version: '1.0.0', username: 'testuser' });
  delete process.env.KITE_TLS_CA_FILE;
  for (const transport of ['WebSocket', 'XHRPolling']) {
    const c = caller.client(url, { transport });
    await within(c.dial(), 10_000, 'dial');
    assert.equal(await c.tell('square', [7]), 49);
    c.close();
  }

  const stranger = new Kite({ name: 'stranger', version: '1.0.0', username: 'testuser' });
  const c = stranger.client(url, { transport: 'WebSocket' });
  const t0 = Date.now();
  const err = await within(c.dial().then(() => null, (e) => e), 10_000, 'failing dial');
  assert.ok(err, 'the dial should fail');
  assert.ok(Date.now() - t0 < 4000, `took ${Date.now() - t0} ms`);
  assert.equal(err.code, 'tlsError');
  assert.ok(err.message.includes(url) && err.message.includes('unknown authority'), err.message);

  c.close();
  caller.close();
  stranger.close();
  server.close();
  rmSync(pki.dir, { recursive: true, force: true });
});
