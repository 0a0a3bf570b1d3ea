#!/usr/bin/env node
// Interop test server (tests/interop/SCENARIOS.md) built on kite.js's KiteServer.
//
//   node server.js [--sockjs] [--kite-key FILE] [--kontrol-key FILE]
//                  [--kontrol-user NAME] [--username NAME]
//
// Default mode: kite.js's default server transport, a plain `ws` websocket server that
// accepts an upgrade on any path and speaks raw dnode (one JSON message per websocket text
// message, no SockJS framing). The ready line's url is then ws://127.0.0.1:N/kite.
// --sockjs: kite.js's SockJS server transport (sockjs-node) under the prefix /kite; the ready
// line's url is http://127.0.0.1:N/kite (sockjs-node also serves the raw websocket at
// ws://127.0.0.1:N/kite/websocket in this mode).
//
// Prints exactly one JSON line on stdout when listening: {"port":N,"url":"..."}; kite.js's own
// logging goes to stderr. Exits when stdin closes, on SIGTERM or SIGINT.
//
// Log level: KITEJS_LOG_LEVEL (kite.js levels: 0 critical .. 4 info (default) .. 5 debug,
// which logs every message received and sent).
//
// What kite.js cannot do, and the workarounds used here, are listed in README.md.

'use strict';

// kite.js logs with console.info/console.log (stdout); stdout is reserved for the ready line.
for (const name of ['log', 'info', 'debug']) {
  console[name] = (...args) => console.error(...args);
}

const fs = require('fs');
const { KiteServer } = require('kite.js');

function usage(msg) {
  process.stderr.write(`server.js: ${msg}\nusage: node server.js [--sockjs] [--kite-key FILE] ` +
    '[--kontrol-key FILE] [--kontrol-user NAME] [--username NAME]\n');
  process.exit(2);
}

const opts = { sockjs: false, kiteKey: null, kontrolKey: null, kontrolUser: 'testuser', username: 'testuser' };
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--sockjs': opts.sockjs = true; break;
      case '--kite-key': opts.kiteKey = fs.readFileSync(value(), 'utf8').trim(); break;
      case '--kontrol-key': opts.kontrolKey = fs.readFileSync(value(), 'utf8'); break;
      case '--kontrol-user': opts.kontrolUser = value(); break;
      case '--username': opts.username = value(); break;
      default: usage(`unknown argument ${JSON.stringify(a)}`);
    }
  }
}

const logLevel = process.env.KITEJS_LOG_LEVEL != null ? Number(process.env.KITEJS_LOG_LEVEL) : 4;

function log(...args) {
  console.error('[interop server]', ...args);
}

// kite.js bugs can throw out of its websocket 'message' listeners and timers (see README.md:
// a message without `arguments`, a heartbeat firing after its connection closed). Node would
// exit; keep serving the other connections, but say so loudly.
process.on('uncaughtException', (err) => {
  log('UNCAUGHT EXCEPTION (a kite.js bug; the server keeps running):', err && err.stack || err);
});

// --- Transport: kite.js's own server classes, bound to 127.0.0.1 ---------------------------
//
// KiteServer#listen(port) constructs `new Transport({port, prefix, name, logLevel})` and never
// passes a host, so both transports bind 0.0.0.0. The SockJS transport also refuses port 0
// (`if (!this.options.port) throw`), though Node's listen() takes the string '0'. These
// subclasses only fix the host and the ephemeral port and expose the bound address; all
// protocol handling is kite.js's.

const loopback = (options) => Object.assign({}, options, {
  hostname: '127.0.0.1',
  port: options.port === 0 ? '0' : options.port,
});

class LoopbackWebSocketServer extends KiteServer.transport.WebSocket {
  constructor(options) { super(loopback(options)); }
  // ws 3.x keeps its http.Server in `_server`.
  httpServer() { return this.server._server; }
}

class LoopbackSockJSServer extends KiteServer.transport.SockJS {
  constructor(options) { super(loopback(options)); }
  httpServer() { return this.server; }
}

// --- Per-request context ------------------------------------------------------------------
//
// kite.js hands a method `(...withArgs, responseCallback, {kite, authentication})`: withArgs
// is spread (a scalar becomes one argument, so `echo 5` and `echo [5]` look the same) and the
// connection the request came on is not passed at all, so a method cannot call back its
// caller. KiteServer#handleMessage(proto, message, remoteKite) does receive the connection's
// remote Kite (and ignores it); this wrapper notes it, with the raw withArgs, keyed by the
// request's OPTIONS.kite object, which kite.js passes through to the method unchanged.
const requestContext = new WeakMap();

function contextOf(meta) {
  return meta && meta.kite && typeof meta.kite === 'object' ? requestContext.get(meta.kite) : undefined;
}

// Split kite.js's method arguments: (...args, responseCallback, {kite, authentication}).
function method(fn, { auth = false } = {}) {
  return {
    auth,
    func(...all) {
      const meta = all.pop();
      const respond = all.pop();
      if (typeof respond !== 'function') {
        log('request without a responseCallback; nothing to answer to');
        return;
      }
      fn(all, respond, meta);
    },
  };
}

// kite.js serializes an Error instance as {"message": ...} (no type); answer with the
// protocol's error object instead.
const kiteError = (type, message) => ({ type, message, code: '' });

let limitedLast = -Infinity; // userland throttling: 1 call per hour, capacity 1
const LIMITED_INTERVAL_MS = 60 * 60 * 1000;

let server; // set below; `secret` reads its current token

const api = {
  square: method(([n], respond) => {
    if (typeof n !== 'number') return respond(kiteError('argumentError', `square: want a number, got ${JSON.stringify(n)}`));
    respond(null, n * n);
  }),

  echo: method((args, respond, meta) => {
    const ctx = contextOf(meta);
    if (ctx) {
      respond(null, ctx.withArgs === undefined ? null : ctx.withArgs);
    } else {
      respond(null, args); // what kite.js itself lets a method see
    }
  }),

  callback: method(([n, fn], respond) => {
    if (typeof n !== 'number' || typeof fn !== 'function') {
      return respond(kiteError('argumentError', 'callback: want [number, function]'));
    }
    for (let i = 0; i < n; i++) fn(i);
    respond(null, n);
  }),

  nested: method(([arg], respond) => {
    const fn1 = arg && arg.a;
    const fn2 = arg && arg.b && arg.b.c && arg.b.c[0];
    if (typeof fn1 !== 'function' || typeof fn2 !== 'function') {
      return respond(kiteError('argumentError', 'nested: want [{"a": fn, "b": {"c": [fn]}}]'));
    }
    fn1('a');
    fn2('c');
    respond(null, 'ok');
  }),

  fail: method((args, respond) => respond(kiteError('genericError', 'boom'))),

  needString: method(([s], respond) => {
    if (typeof s !== 'string') return respond(kiteError('argumentError', `needString: want a string, got ${JSON.stringify(s)}`));
    respond(null, s);
  }),

  callMeBack: method(([name, args], respond, meta) => {
    const ctx = contextOf(meta);
    if (!ctx || !ctx.remote) return respond(kiteError('genericError', 'callMeBack: the connection of this request is unknown'));
    if (typeof name !== 'string') return respond(kiteError('argumentError', 'callMeBack: want [method, args]'));
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      respond(kiteError('timeout', `No response to "${name}" method in 10s`));
    }, 10000);
    // ws.kite is a kite.js Kite whose socket is this connection; tell() returns a promise.
    ctx.remote.tell(name, args).then((result) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      respond(null, result === undefined ? null : result);
    }, (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      respond(kiteError(err && err.type || 'genericError', err && err.message || String(err)));
    });
  }),

  // Authenticated. kite.js verifies the token before calling the method and leaves the
  // decoded token in server.currentToken for the duration of the synchronous call.
  secret: method((args, respond, meta) => {
    const token = server.getToken();
    if (!token || !token.claims || !token.claims.sub) {
      // kite.js let the call through unauthenticated: it never requires authentication
      // (`auth: true` is not honoured) and skips the check of a given one when withArgs is
      // falsy (README.md). Refuse here, in the method.
      const given = meta && meta.authentication;
      log(`secret reached without a verified token (authentication ${given ? `of type ${JSON.stringify(given.type)} not verified by kite.js` : 'absent'})`);
      return respond(kiteError('authenticationError', given
        ? `kite.js did not verify the ${given.type} authentication (it skips the check when withArgs is null)`
        : 'No authentication information is provided'));
    }
    respond(null, token.claims.sub);
  }, { auth: true }),

  limited: method((args, respond) => {
    const now = Date.now();
    if (now - limitedLast < LIMITED_INTERVAL_MS) {
      return respond(kiteError('requestLimitError', 'The maximum request rate is exceeded.'));
    }
    limitedLast = now;
    respond(null, 'ok');
  }),
};

server = new KiteServer({
  name: 'interop',
  version: '1.0.0',
  username: opts.username,
  environment: 'interop',
  region: 'local',
  auth: false, // per-method `auth` above: only `secret` needs authentication
  logLevel,
  prefix: opts.sockjs ? '/kite' : '',
  serverClass: opts.sockjs ? LoopbackSockJSServer : LoopbackWebSocketServer,
  api,
});

// kite.js verifies a `token` with the `kontrolKey` claim of `this.key` (its own kite key),
// which nothing in kite.js sets. Give it the kite key (--kite-key) or, failing that, a
// JWT-shaped string that only carries --kontrol-key as that claim (kite.js does not check the
// kite key's signature; it only reads the claim).
if (opts.kiteKey) {
  server.key = opts.kiteKey;
} else if (opts.kontrolKey) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  server.key = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: opts.kontrolUser, sub: opts.username, kontrolKey: opts.kontrolKey })}.`;
}

const originalHandleMessage = server.handleMessage;
server.handleMessage = function handleMessage(proto, message, remoteKite) {
  const first = message && Array.isArray(message.arguments) ? message.arguments[0] : undefined;
  if (remoteKite && first && typeof first === 'object' && first.kite && typeof first.kite === 'object') {
    requestContext.set(first.kite, { remote: remoteKite, withArgs: first.withArgs });
  }
  return originalHandleMessage.call(this, proto, message);
};

server.listen(0);

const httpServer = server.server.httpServer();
const ready = () => {
  const { port } = httpServer.address();
  const url = opts.sockjs ? `http://127.0.0.1:${port}/kite` : `ws://127.0.0.1:${port}/kite`;
  process.stdout.write(JSON.stringify({ port, url }) + '\n');
  log(`kite.js ${KiteServer.version} serving ${opts.sockjs ? 'SockJS' : 'raw websocket'} at ${url}`);
};
if (httpServer.listening) ready(); else httpServer.once('listening', ready);
httpServer.on('error', (e) => {
  log('listen failed:', e && e.stack || e);
  process.exit(1);
});

function shutdown() {
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.stdin.on('end', shutdown);
process.stdin.on('close', shutdown);
process.stdin.resume();
