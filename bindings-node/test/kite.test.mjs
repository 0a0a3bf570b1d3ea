// The Kite from JavaScript end to end, in one process: calls, arguments, errors, requests,
// handler chains and handling modes, throttling, authentication and events.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Kite, KiteError, Request, kiteError } from 'kite-rs';
import { connect, kontrolKeys, mintKiteKey, mintToken, signal, startKite, within } from './helpers.mjs';

const open = { auth: false };

function mathKite(k) {
  k.handle('square', (req) => req.args[0] ** 2, open);
  k.handle('echo', (req) => req.args, open);
  k.handle('asyncSquare', async (req) => {
    await new Promise((r) => setTimeout(r, 1));
    return req.args[0] ** 2;
  }, open);
  k.handle('nothing', () => undefined, open);
  k.handle('fail', () => { throw new Error('boom'); }, open);
  k.handle('failAsync', async () => { throw new Error('async boom'); }, open);
  k.handle('throwString', () => { throw 'just a string'; }, open);
  k.handle('needString', (req) => {
    if (typeof req.args[0] !== 'string') throw kiteError('argumentError', 'want a string', 'E_ARG');
    return req.args[0];
  }, open);
  k.handle('secret', (req) => req.username);
}

test('handlers get instances of the exported Request class; only the kite makes them', async () => {
  const seen = [];
  const k = await startKite((k) => k.handle('whoami', (req) => {
    seen.push(req);
    return [req instanceof Request, req.method, typeof req.id, req.kite.name];
  }, open));
  const { client: c, close } = await connect(k.url);
  assert.deepEqual(await c.tell('whoami'), [true, 'whoami', 'string', 'caller']);
  assert.equal(Object.getPrototypeOf(seen[0]), Request.prototype);
  assert.throws(() => new Request(), TypeError);
  assert.throws(() => new Request(Symbol('kite-rs request'), () => null, 1, 'x', 'm', 'u', []), TypeError);
  close();
  k.close();
});

test('options the core refuses throw configError naming the option', () => {
  const bad = [
    [{ port: 70000 }, /70000/],
    [{ transport: 'pigeon' }, /transport/],
    [{ timeout: -5 }, /timeout must be a non-negative number of milliseconds/],
    [{ methodHandling: 'best' }, /method handling/],
  ];
  for (const [options, message] of bad) {
    assert.throws(() => new Kite({ name: 'x', version: '1.0.0', ...options }),
      (e) => e instanceof KiteError && e.code === 'configError' && message.test(e.message), JSON.stringify(options));
  }
  // A value of the wrong type is refused by the addon's typed options, before the core.
  assert.throws(() => new Kite({ name: 'x', version: '1.0.0', handshakeTimeout: 'soon' }),
    /KiteOptions\.handshakeTimeout/);
  const k = new Kite({ name: 'x', version: '1.0.0', methodHandling: 'latest', timeout: 2500, tls: undefined });
  k.close();
});

test('calls: results of sync and async handlers, arguments of every shape', async () => {
  const k = await startKite(mathKite);
  for (const transport of ['WebSocket', 'XHRPolling']) {
    const { client: c, close } = await connect(k.url, { transport });
    assert.equal(c.connection.transport, transport === 'WebSocket' ? 'websocket' : 'xhr-polling');
    assert.equal(await c.tell('square', [4]), 16);
    assert.equal(await c.tell('square', [1.5]), 2.25);
    assert.equal(await c.tell('asyncSquare', [5], { timeout: 5000 }), 25);
    const obj = { a: 1, b: [true, null, 'x'], c: { d: -2.5, e: '' }, big: 2 ** 53 - 1 };
    assert.deepEqual(await c.tell('echo', [obj, [], {}]), [obj, [], {}]);
    assert.deepEqual(await c.tell('echo', 5), [5]);
    assert.deepEqual(await c.tell('echo'), []);
    assert.deepEqual(await c.tell('echo', []), []);
    // Like JSON.stringify: undefined properties vanish, toJSON is used, NaN is null.
    const date = new Date(0);
    assert.deepEqual(await c.tell('echo', [{ u: undefined, d: date, n: NaN }, undefined]),
      [{ d: date.toJSON(), n: null }, null]);
    assert.equal(await c.tell('nothing'), null);
    assert.equal(await c.tell('kite.ping'), 'pong');
    close();
  }
  k.close();
});

test('errors carry the kite error kind as code and the request id', async () => {
  const k = await startKite(mathKite);
  const { client: c, close } = await connect(k.url);
  const rejects = async (p) => {
    try {
      await p;
    } catch (e) {
      return e;
    }
    assert.fail('expected a rejection');
  };
  let e = await rejects(c.tell('fail'));
  assert.ok(e instanceof Error);
  assert.equal(e.name, 'KiteError');
  assert.equal(e.code, 'genericError');
  assert.equal(e.message, 'boom');
  assert.match(e.requestId, /^[A-Za-z0-9]{16}$/);
  e = await rejects(c.tell('failAsync'));
  assert.equal(e.code, 'genericError');
  assert.equal(e.message, 'async boom');
  e = await rejects(c.tell('throwString'));
  assert.equal(e.code, 'genericError');
  assert.equal(e.message, 'just a string');
  e = await rejects(c.tell('needString', [1]));
  assert.equal(e.code, 'argumentError');
  assert.equal(e.message, 'want a string');
  assert.equal(e.appCode, 'E_ARG');
  assert.equal(e.requestId.length, 16);
  e = await rejects(c.tell('noSuchMethod'));
  assert.equal(e.code, 'methodNotFound');
  assert.equal(e.message, 'Method not found: noSuchMethod');
  assert.equal(e.requestId, undefined);
  e = await rejects(c.tell('secret'));
  assert.equal(e.code, 'authenticationError');
  assert.equal(e.message, 'No authentication information is provided');
  // Arguments that cannot be sent reject; nothing is sent.
  e = await rejects(c.tell('echo', [10n ** 30n]));
  assert.equal(e.code, 'sendError');
  // A call on a closed client.
  close();
  e = await rejects(c.tell('square', [2]));
  assert.equal(e.code, 'sendError');
  // Nobody listening.
  const nobody = new Kite({ name: 'x', version: '1.0.0' });
  e = await rejects(nobody.client('http://127.0.0.1:1/kite').dial(2000));
  assert.equal(e.code, 'dialError');
  // The cause and the URL, from the core's DialError.
  assert.match(e.message, /connection refused at http:\/\/127\.0\.0\.1:1\/kite/);
  nobody.close();
  // Registering twice, bad options.
  assert.throws(() => k.handle('square', () => 0), (err) => err.code === 'duplicateMethod');
  assert.throws(() => new Kite({ name: 'x', version: '1.0' }), (err) => err.code === 'configError');
  assert.throws(() => k.on('nope', () => {}), (err) => err.code === 'configError');
  // kiteError makes the same errors.
  const made = kiteError('timeout', 'late');
  assert.ok(made instanceof Error);
  assert.equal(made.code, 'timeout');
  k.close();
});

test('the request: id, method, username, args, auth, caller kite, client', async () => {
  let seen;
  const k = await startKite((k) => {
    k.handle('inspect', (req) => {
      seen = req;
      return {
        id: req.id, method: req.method, username: req.username, args: req.args,
        auth: req.auth, kite: req.kite, same: req.args === req.args,
      };
    }, open);
    k.handle('callMeBack', async (req) => {
      const [method, args] = req.args;
      return req.client.tell(method, args);
    }, open);
  });
  const caller = new Kite({ name: 'caller', version: '2.0.0', username: 'alice', region: 'eu' });
  caller.handle('double', (req) => req.args[0] * 2);
  const c = caller.client(k.url, { auth: { type: 'custom', key: 'k1' } });
  await c.dial();
  const r = await c.tell('inspect', [1, 'two']);
  assert.match(r.id, /^[A-Za-z0-9]{16}$/);
  assert.equal(r.method, 'inspect');
  assert.equal(r.username, 'alice');
  assert.deepEqual(r.args, [1, 'two']);
  assert.deepEqual(r.auth, { type: 'custom', key: 'k1' });
  assert.equal(r.kite.name, 'caller');
  assert.equal(r.kite.version, '2.0.0');
  assert.equal(r.kite.region, 'eu');
  assert.equal(r.kite.id, caller.kite.id);
  assert.equal(r.same, true);
  assert.equal(seen.client.remoteKite.name, 'caller');
  // The server calls the caller back over the same connection (trusted: it dialed).
  assert.equal(await c.tell('callMeBack', ['double', [21]]), 42);
  c.close();
  caller.close();
  k.close();
});

test('pre, post and final handlers share the request; handling modes choose the result', async () => {
  const order = [];
  const k = await startKite((k) => {
    k.preHandle((req) => { order.push('kite-pre'); req.user = 'set by pre'; });
    k.handle('chain', (req) => { order.push('main'); return `main saw ${req.user}`; }, open)
      .preHandle(() => { order.push('pre'); return null; })
      .postHandle(() => { order.push('post'); return 'post'; })
      .finalFunc((req, result, error) => { order.push('final'); assert.equal(error, null); return `final:${result}`; });
    k.handle('first', () => 'main', { auth: false, handling: 'first' })
      .preHandle(() => undefined)
      .preHandle(() => 'pre');
    k.handle('latest', () => 'main', open).methodHandling('latest').postHandle(() => 'post');
    k.handle('keep', () => { throw kiteError('argumentError', 'bad'); }, open)
      .finalFunc(() => undefined);
    k.handle('rescue', () => { throw new Error('bad'); }, open)
      .finalFunc((req, result, error) => `rescued ${error.code}: ${error.message}`);
    k.handle('stopped', () => 'not reached', open)
      .preHandle(() => { throw new Error('denied by pre'); });
  });
  const { client: c, close } = await connect(k.url);
  assert.equal(await c.tell('chain'), 'final:main saw set by pre');
  assert.deepEqual(order, ['pre', 'kite-pre', 'main', 'post', 'final']);
  assert.equal(await c.tell('first'), 'pre');
  assert.equal(await c.tell('latest'), 'post');
  await assert.rejects(c.tell('keep'), { code: 'argumentError', message: 'bad' });
  assert.equal(await c.tell('rescue'), 'rescued genericError: bad');
  await assert.rejects(c.tell('stopped'), { code: 'genericError', message: 'denied by pre' });
  close();
  k.close();
});

test('throttling answers requestLimitError', async () => {
  const k = await startKite((k) => {
    k.handle('limited', () => 1, { auth: false, throttle: { interval: 3_600_000, capacity: 2 } });
    k.handle('limited2', () => 2, open).throttle(3_600_000, 1);
  });
  const { client: c, close } = await connect(k.url);
  assert.equal(await c.tell('limited'), 1);
  assert.equal(await c.tell('limited'), 1);
  await assert.rejects(c.tell('limited'), { code: 'requestLimitError', message: 'The maximum request rate is exceeded.' });
  assert.equal(await c.tell('limited2'), 2);
  await assert.rejects(c.tell('limited2'), { code: 'requestLimitError' });
  close();
  k.close();
});

test('authentication: kite keys, tokens and custom authenticators', async () => {
  const keys = kontrolKeys();
  const k = await startKite(mathKite, { kontrolKey: keys.publicKey, kontrolUser: 'kontrol' });
  k.addAuthenticator('magic', async (check) => {
    assert.equal(check.local.name, 'math');
    if (check.auth.key !== 'open sesame') throw new Error('wrong word');
    return `ali-${check.caller.name}`;
  });
  const { client: c, close } = await connect(k.url);
  c.auth = { type: 'kiteKey', key: mintKiteKey(keys, { issuer: 'kontrol', username: 'alice' }) };
  assert.equal(await c.tell('secret'), 'alice');
  c.auth = { type: 'token', key: mintToken(keys, { issuer: 'kontrol', username: 'bob', audience: '/testuser' }) };
  assert.deepEqual(c.auth.type, 'token');
  assert.equal(await c.tell('secret'), 'bob');
  c.auth = { type: 'token', key: mintToken(keys, { issuer: 'kontrol', username: 'bob', audience: '/someoneelse' }) };
  await assert.rejects(c.tell('secret'), { code: 'authenticationError' });
  // A token from another Kontrol is reported as expired, so that callers renew it.
  const expired = signal();
  c.on('tokenExpire', expired);
  c.auth = { type: 'token', key: mintToken(kontrolKeys(), { issuer: 'kontrol' }) };
  await assert.rejects(c.tell('secret'), { code: 'authenticationError', message: 'token: token is expired' });
  await expired.next();
  const renewed = signal();
  c.on('tokenRenew', renewed);
  c.renewToken(mintToken(keys, { issuer: 'kontrol', username: 'carol', audience: '/' }));
  await renewed.next();
  assert.equal(await c.tell('secret'), 'carol');
  c.auth = { type: 'magic', key: 'open sesame' };
  assert.equal(await c.tell('secret'), 'ali-caller');
  c.auth = { type: 'magic', key: 'nope' };
  await assert.rejects(c.tell('secret'), { code: 'authenticationError', message: 'magic: wrong word' });
  c.auth = null;
  assert.equal(c.auth, null);
  await assert.rejects(c.tell('secret'), { code: 'authenticationError' });
  close();
  k.close();
});

test('events: connect, firstRequest and disconnect on kites; connect and disconnect on clients', async () => {
  const k = await startKite(mathKite);
  const connected = signal();
  const first = signal();
  const disconnected = signal();
  const ignored = signal();
  k.on('connect', connected).on('firstRequest', first).on('disconnect', disconnected);
  k.on('connect', ignored).off('connect', ignored);
  const local = new Kite({ name: 'caller', version: '1.0.0' });
  const c = local.client(k.url);
  const clientUp = signal();
  const clientDown = signal();
  c.on('connect', clientUp).on('disconnect', clientDown);
  await c.dial();
  await clientUp.next();
  const [conn] = await connected.next();
  assert.equal(conn.dialed, false);
  assert.equal(conn.closed, false);
  await c.tell('square', [2]);
  const [firstConn] = await first.next();
  assert.equal(firstConn.remoteKite.name, 'caller');
  await c.tell('square', [3]);
  c.close();
  await clientDown.next();
  const [gone] = await disconnected.next();
  assert.equal(gone.closed, true);
  assert.equal(first.calls.length, 1);
  assert.equal(ignored.calls.length, 0);
  assert.equal(c.connected, false);
  local.close();
  k.close();
});

test('dialForever reconnects after the connection drops', async () => {
  const k = await startKite(mathKite);
  const local = new Kite({ name: 'caller', version: '1.0.0' });
  const c = local.client(k.url);
  const up = signal();
  c.on('connect', up);
  await within(c.dialForever());
  await up.next();
  assert.equal(await c.tell('square', [3]), 9);
  c.connection.close();
  await up.next();
  assert.equal(await c.tell('square', [5]), 25);
  c.close();
  local.close();
  k.close();
});

test('identity and configuration come from options and KITE_* variables', async () => {
  const k = new Kite({ name: 'conf', version: '1.2.3', environment: 'test', region: 'r1', id: 'fixed-id', hostname: 'h' });
  assert.deepEqual(k.kite, {
    username: k.kite.username, environment: 'test', name: 'conf', version: '1.2.3', region: 'r1', hostname: 'h', id: 'fixed-id',
  });
  assert.equal(k.name, 'conf');
  assert.equal(k.version, '1.2.3');
  assert.ok(k.methods().includes('kite.ping'));
  assert.equal(k.port, null);
  assert.equal(k.url, null);
  k.handle('x', () => 1);
  assert.ok(k.methods().includes('x'));
  assert.equal(k.removeHandler('x'), true);
  assert.equal(k.removeHandler('x'), false);
  k.close();
  process.env.KITE_ENVIRONMENT = 'from-env';
  try {
    const e = new Kite({ name: 'conf', version: '1.0.0' });
    assert.equal(e.kite.environment, 'from-env');
    e.close();
  } finally {
    delete process.env.KITE_ENVIRONMENT;
  }
});
