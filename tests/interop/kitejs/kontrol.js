#!/usr/bin/env node
// kite.js's Kontrol client against a Kontrol (core/tests/kontrol_interop.rs):
//
//   node kontrol.js --url KONTROL_URL --kite-key FILE --username U [--environment E]
//                   [--name N] [--version V] [--region R] [--hostname H] [--id ID]
//                   [--method square --arg 7 | --no-call] [--timeout MS]
//
// Connects kite.js's `Kontrol` (lib/kontrol) to KONTROL_URL over its SockJS transport
// (Kontrol's URL is a SockJS endpoint such as http://127.0.0.1:N/kite) with `kiteKey`
// authentication, asks it for kites with `fetchKites({query})`, and, unless --no-call, calls
// METHOD(ARG) on every kite returned, through the `Kite` that kite.js builds for it (token
// authentication with the token Kontrol handed out, same SockJS transport). Prints one JSON
// line on stdout:
//
//   {"kites": [{"kite": {...}, "url": U, "token": JWT, "result": R, "error": null | {"type","message"}}]}
//
// or {"error": {"type","message"}} when fetchKites fails; exits 0 when at least one kite was
// found and every call succeeded, 1 otherwise, 2 on bad usage, 3 when --timeout (default
// 20000 ms) ran out. kite.js's logs go to stderr; KITEJS_LOG_LEVEL=5 logs every message.

'use strict';

// kite.js logs with console.info/console.log (stdout); stdout is for the result line.
for (const name of ['log', 'info', 'debug']) {
  console[name] = (...args) => console.error(...args);
}

const fs = require('fs');
const { Kite, Kontrol } = require('kite.js');

function usage(msg) {
  process.stderr.write(`kontrol.js: ${msg}\nusage: node kontrol.js --url KONTROL_URL --kite-key FILE ` +
    '--username U [--environment E] [--name N] [--version V] [--region R] [--hostname H] [--id ID] ' +
    '[--method M --arg X | --no-call] [--timeout MS]\n');
  process.exit(2);
}

const opts = { url: null, kiteKey: null, query: {}, method: 'square', arg: 7, call: true, timeout: 20000 };
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--url': opts.url = value(); break;
      case '--kite-key': opts.kiteKey = fs.readFileSync(value(), 'utf8').trim(); break;
      case '--username': case '--environment': case '--name': case '--version':
      case '--region': case '--hostname': case '--id':
        opts.query[a.slice(2)] = value(); break;
      case '--method': opts.method = value(); break;
      case '--arg': opts.arg = JSON.parse(value()); break;
      case '--no-call': opts.call = false; break;
      case '--timeout': opts.timeout = Number(value()); break;
      default: usage(`unknown argument ${JSON.stringify(a)}`);
    }
  }
  if (!opts.url) usage('--url is required');
  if (!opts.kiteKey) usage('--kite-key is required');
  if (!opts.query.username) usage('--username is required');
  if (!(opts.timeout > 0)) usage('--timeout must be a positive number of milliseconds');
}

const logLevel = process.env.KITEJS_LOG_LEVEL != null ? Number(process.env.KITEJS_LOG_LEVEL) : 2;

function print(v) {
  process.stdout.write(`${JSON.stringify(v)}\n`);
}

function errorOut(err) {
  if (err == null) return null;
  return { type: err.type || err.name || 'error', message: err.message || String(err) };
}

setTimeout(() => {
  console.error(`kontrol.js: timed out after ${opts.timeout} ms`);
  print({ error: { type: 'timeout', message: `no answer within ${opts.timeout} ms` } });
  process.exit(3);
}, opts.timeout).unref();

// kite.js's Kontrol creates the kites of its results with `this.constructor.Kite`, the
// callback-style base class (lib/kontrol/base.js); the promise-style `Kite` of the package's
// index is a subclass. Either way: call with a node-style callback, or await the promise.
function tell(kite, method, params) {
  if (kite instanceof Kite) return kite.tell(method, params);
  return new Promise((resolve, reject) => kite.tell(method, params, (err, result) => (err ? reject(err) : resolve(result))));
}

async function main() {
  const kontrol = new Kontrol({
    url: opts.url,
    auth: { type: 'kiteKey', key: opts.kiteKey },
    transportClass: Kite.transport.SockJS,
    autoReconnect: false,
    logLevel,
  });
  // kite.js keeps only some fields of each result's kite descriptor (not its id): note the
  // descriptor on the Kite it builds, to report what Kontrol answered.
  const createKite = kontrol.createKite;
  kontrol.createKite = function (options) {
    const kite = createKite.call(this, options);
    kite.descriptor = options.kite;
    return kite;
  };
  // Without a listener, an 'error' event would throw.
  kontrol.on('error', (what, err) => console.error('kontrol.js: kontrol error:', what, (err && err.message) || err));

  let kites;
  try {
    kites = await kontrol.fetchKites({ query: opts.query });
  } catch (err) {
    print({ error: errorOut(err) });
    kontrol.disconnect();
    return 1;
  }

  let ok = kites.length > 0;
  const out = [];
  for (const kite of kites) {
    kite.on('error', (what, err) => console.error('kontrol.js: kite error:', what, (err && err.message) || err));
    const entry = {
      kite: kite.descriptor,
      url: kite.options.url,
      token: kite.getToken(),
      result: null,
      error: null,
    };
    if (opts.call) {
      try {
        kite.connect();
        entry.result = await tell(kite, opts.method, [opts.arg]);
      } catch (err) {
        entry.error = errorOut(err);
        ok = false;
      }
      kite.disconnect();
    }
    out.push(entry);
  }
  print({ kites: out });
  kontrol.disconnect();
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error('kontrol.js:', err && err.stack || err);
    print({ error: errorOut(err) });
    process.exit(1);
  },
);
