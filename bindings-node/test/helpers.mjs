// Shared helpers of the Node binding's tests: kites on 127.0.0.1 port 0, child processes
// that print a ready line, JWTs signed like the reference Kontrol (node:crypto, RS256), and
// a throwaway PostgreSQL server for Kontrol's storage.

import { spawn } from 'node:child_process';
import { createSign, generateKeyPairSync, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Kite } from 'kite-rs';

export const WAIT = 10_000;

/** Rejects when `promise` has not settled within `ms`. */
export function within(promise, ms = WAIT, what = 'operation') {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** A kite on 127.0.0.1; `setup(k)` registers its methods before it listens. */
export async function startKite(setup = () => {}, options = {}) {
  const k = new Kite({ name: 'math', version: '1.0.0', ip: '127.0.0.1', username: 'testuser', ...options });
  setup(k);
  await within(k.listen(0), WAIT, 'listen');
  return k;
}

/** A caller kite and a dialed client to `url`. */
export async function connect(url, options = {}, kiteOptions = {}) {
  const local = new Kite({ name: 'caller', version: '1.0.0', username: 'testuser', ...kiteOptions });
  const client = local.client(url, options);
  await within(client.dial(), WAIT, 'dial');
  return { local, client, close: () => { client.close(); local.close(); } };
}

/**
 * A function that records its calls; `await fn.next()` yields the arguments of its next
 * call not yet awaited (calls made before are not lost).
 */
export function signal() {
  const calls = [];
  const waiters = [];
  let taken = 0;
  const fn = (...args) => {
    calls.push(args);
    waiters.shift()?.(args);
  };
  fn.calls = calls;
  fn.next = () => {
    const i = taken++;
    if (i < calls.length) return Promise.resolve(calls[i]);
    return within(new Promise((resolve) => waiters.push(resolve)), WAIT, 'callback');
  };
  return fn;
}

/**
 * Starts `cmd args`, waits for its first stdout line (JSON), returns it with the child.
 * `stop()` closes its stdin and waits for the exit.
 */
export async function spawnReady(cmd, args, options = {}) {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...options });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const lines = createInterface({ input: child.stdout });
  const first = once(lines, 'line');
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`${cmd} exited (${code}) before it was ready:\n${stderr}`);
  });
  const [line] = await within(Promise.race([first, exited]), 60_000, `${cmd} ready line`);
  exited.catch(() => {});
  return {
    child,
    ready: JSON.parse(line),
    stderr: () => stderr,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const done = once(child, 'exit');
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await done;
      clearTimeout(timer);
    },
  };
}

/** Runs `cmd args` to completion; resolves {code, signal, stdout, stderr}. */
export function run(cmd, args, { timeout = 60_000, ...options } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
    child.on('error', reject);
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      resolve({ code, signal: sig, stdout, stderr });
    });
  });
}

// --- JWTs like the reference Kontrol's ----------------------------------------------------

const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

function sign(privateKey, claims) {
  const head = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64(claims)}`;
  const s = createSign('RSA-SHA256').update(head).sign(privateKey).toString('base64url');
  return `${head}.${s}`;
}

/** A Kontrol key pair: `{ privateKey, publicKey }` PEM strings. */
export function kontrolKeys() {
  return generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}

/** A kite key for `username`, signed by Kontrol `issuer`. */
export function mintKiteKey(keys, { issuer = 'testuser', username = 'testuser', kontrolURL = 'http://127.0.0.1:4000/kite' } = {}) {
  return sign(keys.privateKey, {
    iss: issuer, sub: username, iat: Math.floor(Date.now() / 1000), jti: randomUUID(),
    kontrolKey: keys.publicKey.trim(), kontrolURL,
  });
}

/** A token for `username` with audience `audience`, signed by Kontrol `issuer`. */
export function mintToken(keys, { issuer = 'testuser', username = 'testuser', audience = '/', ttl = 3600 } = {}) {
  const now = Math.floor(Date.now() / 1000);
  return sign(keys.privateKey, {
    iss: issuer, sub: username, aud: audience, exp: now + ttl, iat: now, nbf: now, jti: randomUUID(),
  });
}

// --- A PostgreSQL server of the test's own ------------------------------------------------

/**
 * The directory of PostgreSQL's server binaries: `KITE_TEST_PG_BIN`, else the newest
 * `/usr/lib/postgresql/<version>/bin` holding `initdb` (Debian's, installed by
 * scripts/setup.sh), where the core and Python tests look too.
 */
function pgBin() {
  const env = process.env.KITE_TEST_PG_BIN;
  const found = env ? [env] : (() => {
    const base = '/usr/lib/postgresql';
    if (!existsSync(base)) return [];
    return readdirSync(base).filter((v) => /^\d+$/.test(v)).sort((a, b) => b - a).map((v) => join(base, v, 'bin'));
  })();
  const bin = found.find((d) => existsSync(join(d, 'initdb')));
  if (!bin) {
    throw new Error(env
      ? `KITE_TEST_PG_BIN=${env} holds no initdb (PostgreSQL's server binaries): fix it, or unset it and run scripts/setup.sh`
      : 'PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin and KITE_TEST_PG_BIN '
        + 'is not set: run scripts/setup.sh (it installs them)');
  }
  return bin;
}

/** A TCP port free on 127.0.0.1 now (for servers that cannot listen on port 0 and tell). */
async function freePort() {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/**
 * Starts a throwaway PostgreSQL cluster, like bindings-python/tests/conftest.py's PgServer:
 * `initdb` (trust authentication, superuser `postgres`) in a scratch directory (/dev/shm when
 * writable), `pg_ctl -w` on 127.0.0.1 with a free port and its Unix socket in that directory.
 * PostgreSQL refuses to run as root, so as root it runs as the `postgres` user (runuser),
 * which then owns the directory. `newDatabase()` creates a database of its own and resolves
 * its `postgres://` URL; `stop()` shuts the server down and removes the directory. The server
 * is a daemon of its own: nothing of it keeps the Node process alive.
 */
export async function startPostgres() {
  const bin = pgBin();
  const runAs = process.getuid?.() === 0 ? 'postgres' : null;
  let scratch = tmpdir();
  try {
    accessSync('/dev/shm', constants.W_OK);
    scratch = '/dev/shm';
  } catch { /* no /dev/shm: the usual temporary directory */ }
  const root = mkdtempSync(join(scratch, 'kite-node-pg-'));
  const sock = join(root, 'sock');
  const data = join(root, 'data');
  const log = join(root, 'server.log');
  mkdirSync(sock);

  // Runs a PostgreSQL program (as `postgres` when root); rejects with its output and the log.
  const pg = async (program, args) => {
    const cmd = join(bin, program);
    const r = runAs ? await run('runuser', ['-u', runAs, '--', cmd, ...args]) : await run(cmd, args);
    if (r.code !== 0) {
      const serverLog = existsSync(log) ? `\nserver log:\n${readFileSync(log, 'utf8')}` : '';
      throw new Error(`${program} failed (${r.code ?? r.signal}): ${r.stdout}${r.stderr}${serverLog}`);
    }
    return r;
  };

  let port;
  let started = false;
  try {
    if (runAs) {
      const r = await run('chown', [`${runAs}:`, root, sock]);
      if (r.code !== 0) throw new Error(`chown ${runAs} ${root} failed: ${r.stderr}`);
    }
    await pg('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
    port = await freePort();
    const options = `-F -p ${port} -k ${sock} -c listen_addresses=127.0.0.1 `
      + '-c synchronous_commit=off -c full_page_writes=off';
    // -w: returns once the server accepts connections.
    started = true;
    await pg('pg_ctl', ['-D', data, '-l', log, '-w', '-t', '60', '-o', options, 'start']);
  } catch (e) {
    // A server that came up too slowly for pg_ctl is still running: stop it too.
    if (started) await pg('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {});
    rmSync(root, { recursive: true, force: true });
    throw e;
  }

  return {
    port,
    /** Creates a fresh database; resolves the URL Kontrol's `storage` option takes. */
    async newDatabase() {
      const name = `kite_${randomUUID().replaceAll('-', '')}`;
      await pg('createdb', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', name]);
      return `postgres://postgres@127.0.0.1:${port}/${name}?sslmode=disable`;
    },
    /** Stops the server at once (no checkpoint: nothing is kept) and removes its files. */
    async stop() {
      try {
        await pg('pg_ctl', ['-D', data, '-m', 'immediate', '-w', '-t', '60', 'stop']);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    },
  };
}

/** A dnode peer over SockJS XHR polling, written from the protocol, not our client. */
export class RawPeer {
  constructor(url) {
    this.base = `${url}/000/${randomUUID().replaceAll('-', '')}`;
    this.next = 1000;
    this.inbox = [];
  }

  async post(path, body) {
    const r = await within(fetch(this.base + path, { method: 'POST', body }), 10_000, path);
    return r.text();
  }

  async open() {
    const frame = await this.post('/xhr');
    if (!frame.startsWith('o')) throw new Error(`expected an open frame, got ${frame}`);
  }

  async send(msg) {
    await this.post('/xhr_send', JSON.stringify([JSON.stringify(msg)]));
  }

  /** Calls `method`; resolves with the whole response message. */
  async call(method, withArgs) {
    const id = ++this.next;
    const options = { kite: { name: 'raw' }, withArgs, responseCallback: '[Function]' };
    await this.send({ method, arguments: [options], callbacks: { [id]: [0, 'responseCallback'] } });
    for (;;) {
      const i = this.inbox.findIndex((m) => m.method === id);
      if (i >= 0) return this.inbox.splice(i, 1)[0];
      const frame = await this.post('/xhr');
      if (frame.startsWith('a')) this.inbox.push(...JSON.parse(frame.slice(1)).map((m) => JSON.parse(m)));
    }
  }
}
