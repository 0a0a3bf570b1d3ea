// Shared helpers of the Node binding's tests: kites on 127.0.0.1 port 0, child processes
// that print a ready line, and JWTs signed like the reference Kontrol (node:crypto, RS256).

import { spawn } from 'node:child_process';
import { createSign, generateKeyPairSync, randomUUID } from 'node:crypto';
import { once } from 'node:events';
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
