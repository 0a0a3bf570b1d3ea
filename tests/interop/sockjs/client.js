#!/usr/bin/env node
// Interop client: drives the real sockjs-client (in Node) against a SockJS echo service.
//
//   node client.js URL TRANSPORT N
//
// URL        the service, e.g. http://127.0.0.1:8081/echo
// TRANSPORT  one sockjs-client transport name; in Node these are usable:
//            websocket, xhr-streaming, xhr-polling, eventsource
//            (htmlfile, jsonp-polling, the iframe-* and xdr-* transports need a browser
//            DOM / XDomainRequest and are never enabled in Node)
// N          number of messages to send (>= 1; with N >= TRICKY.length every tricky
//            string below is sent at least once)
//
// Opens the session with `{transports: [TRANSPORT]}`, sends N messages at once, expects
// them echoed back in the same order, checks that sockjs-client really used TRANSPORT,
// closes, and prints one JSON line. Exit 0 on success; 1 on any mismatch, unexpected
// close or the 20 s overall timeout; 2 on bad usage.

'use strict';

const SockJS = require('sockjs-client');

const NODE_TRANSPORTS = ['websocket', 'xhr-streaming', 'xhr-polling', 'eventsource'];
const OVERALL_TIMEOUT_MS = 20000;

function usage(msg) {
  process.stderr.write(`client.js: ${msg}\nusage: node client.js URL TRANSPORT N\n` +
    `  TRANSPORT: one of ${NODE_TRANSPORTS.join(', ')}\n`);
  process.exit(2);
}

const [url, transport, nArg] = process.argv.slice(2);
if (!url || !transport || nArg === undefined) usage('missing arguments');
if (!NODE_TRANSPORTS.includes(transport)) {
  usage(`transport ${JSON.stringify(transport)} is not usable by sockjs-client in Node`);
}
const n = Number(nArg);
if (!Number.isInteger(n) || n < 1) usage(`N must be a positive integer, got ${JSON.stringify(nArg)}`);

// Strings that exercise the framing and escaping on both sides. sockjs-client sends
// control characters, surrogates, U+FFFE/U+FFFF, U+FFF0.. and many combining marks as
// \uXXXX escapes; servers may send them raw or escaped.
const big = 'x'.repeat(64 * 1024); // 64 KiB of ASCII
const bigUnicode = 'é☃😀\u2028'.repeat(8 * 1024); // ~80 KiB of UTF-8, mostly escaped
const TRICKY = [
  'hello',
  '',
  'zażółć gęślą jaźń ☃ 中文 русский 😀🎉 e\u0301',
  'quotes " \' ` and backslashes \\ \\\\ \\u0041 \\n',
  'newlines\nand\r\nCRLF\tand tab',
  'line sep \u2028 para sep \u2029 end',
  'nonchars \uFFFF \uFFFE \uFFF0 and BOM \uFEFF',
  'controls \u0000 \u0001 \u001f \u007f',
  '["a json array", "in a string"]',
  'a[] c[3000,"Go away!"] o h',
  '</script><script>alert(1)</script>',
  big,
  bigUnicode,
];

const messages = [];
for (let i = 0; i < n; i++) {
  messages.push(i < TRICKY.length ? TRICKY[i] : `message #${i}: ${TRICKY[i % TRICKY.length].slice(0, 100)}`);
}

// A readable, ASCII-only rendering of a (possibly huge) message for error reports.
function describe(s) {
  if (typeof s !== 'string') return String(s);
  const ascii = (t) => JSON.stringify(t).replace(/[\u007f-\uffff]/g,
    (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
  return s.length > 80 ? `${ascii(s.slice(0, 80))}... (${s.length} UTF-16 units)` : ascii(s);
}

const started = Date.now();
let received = 0;
let opened = false;
let finished = false;
let usedTransport = null;

function finish(ok, extra) {
  if (finished) return;
  finished = true;
  const result = Object.assign({
    ok,
    url,
    requested_transport: transport,
    transport: usedTransport,
    sent: opened ? messages.length : 0,
    received,
    elapsed_ms: Date.now() - started,
  }, extra);
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(ok ? 0 : 1));
}

function fail(error, extra) {
  process.stderr.write(`client.js: FAIL (${transport}): ${error}\n`);
  finish(false, Object.assign({ error }, extra));
}

const timer = setTimeout(() => {
  fail(`timed out after ${OVERALL_TIMEOUT_MS} ms (opened=${opened}, received ${received}/${messages.length})`);
}, OVERALL_TIMEOUT_MS);
timer.unref();

let sock;
try {
  sock = new SockJS(url, null, { transports: [transport], timeout: 10000 });
} catch (e) {
  fail(`new SockJS threw: ${e && e.stack || e}`);
}

let closing = false;

sock.onopen = () => {
  opened = true;
  usedTransport = sock.transport;
  if (usedTransport !== transport) {
    fail(`sockjs-client opened with transport ${JSON.stringify(usedTransport)}, requested ${JSON.stringify(transport)}`);
    return;
  }
  for (const m of messages) sock.send(m);
};

sock.onmessage = (e) => {
  if (finished) return;
  const expected = messages[received];
  if (received >= messages.length) {
    fail(`unexpected extra message ${describe(e.data)} after all ${messages.length} echoes`);
    return;
  }
  if (e.data !== expected) {
    let at = 0;
    while (at < expected.length && at < e.data.length && expected[at] === e.data[at]) at++;
    fail(`echo #${received} differs at UTF-16 index ${at}: expected ${describe(expected)}, got ${describe(e.data)}`, {
      expected_len: expected.length,
      got_len: typeof e.data === 'string' ? e.data.length : null,
    });
    return;
  }
  received++;
  if (received === messages.length) {
    // Check again at the end: the transport must not have changed under us.
    if (sock.transport !== transport) {
      fail(`transport changed to ${JSON.stringify(sock.transport)} during the session`);
      return;
    }
    closing = true;
    sock.close();
  }
};

sock.onclose = (e) => {
  if (finished) return;
  if (closing && received === messages.length) {
    finish(true, { close_code: e.code, close_reason: e.reason });
  } else {
    fail(`session closed early with ${e.code} ${JSON.stringify(e.reason)} (opened=${opened}, ` +
      `received ${received}/${messages.length})`, { close_code: e.code, close_reason: e.reason });
  }
};

sock.onerror = (e) => {
  // sockjs-client reports errors through onclose; log anything else for diagnosis.
  process.stderr.write(`client.js: error event: ${e && (e.message || e.type) || e}\n`);
};
