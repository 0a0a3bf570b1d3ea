#!/usr/bin/env node
// Interop server: the real sockjs-node (0.3.24) serving the SockJS protocol test services
// on 127.0.0.1 with a free port.
//
//   node server.js
//
// Services:
//   /echo   echoes every message back
//   /close  closes every session at once with 3000 "Go away!"
//   /disabled_websocket_echo
//           echo with the websocket transport disabled (websocket requests get 404), for
//           clients that fall back to HTTP transports
//
// Prints {"port": N} as the first stdout line once listening (the readiness signal), and
// nothing else on stdout. Runs until stdin closes, SIGTERM or SIGINT.

'use strict';

const http = require('http');

// sockjs-node sometimes throws from a socket handler when a websocket upgrade is refused on a
// service with websockets disabled (the `auto` fallback test), which would end this process
// and fail the next request with "connection refused". Log it and keep serving: the peer's
// crash is not what the tests are about.
process.on('uncaughtException', (e) => {
  process.stderr.write(`server.js: uncaught exception (kept running): ${e && e.stack || e}\n`);
});
const sockjs = require('sockjs');

// sockjs-node logs every request to stdout by default; keep stdout for the readiness
// line and send only errors to stderr (all of it with SOCKJS_DEBUG=1).
const verbose = !!process.env.SOCKJS_DEBUG;
function log(severity, line) {
  if (verbose || severity === 'error') process.stderr.write(`sockjs-node ${severity}: ${line}\n`);
}

const common = {
  log,
  // Keep the protocol defaults of sockjs-node except these, which match the protocol
  // test suite's expectations.
  response_limit: 4096,
  // Never fetched: the iframe transports are not exercised.
  sockjs_url: 'http://localhost/sockjs.min.js',
};

const echo = sockjs.createServer(common);
echo.on('connection', (conn) => {
  conn.on('data', (msg) => conn.write(msg));
});

const noWebsocket = sockjs.createServer(Object.assign({}, common, { websocket: false }));
noWebsocket.on('connection', (conn) => {
  conn.on('data', (msg) => conn.write(msg));
});

const close = sockjs.createServer(common);
close.on('connection', (conn) => {
  conn.close(3000, 'Go away!');
});

const server = http.createServer();
echo.installHandlers(server, { prefix: '/echo' });
close.installHandlers(server, { prefix: '/close' });
noWebsocket.installHandlers(server, { prefix: '/disabled_websocket_echo' });

server.on('error', (e) => {
  process.stderr.write(`server.js: ${e.stack || e}\n`);
  process.exit(1);
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});

function shutdown() {
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.stdin.on('end', shutdown);
process.stdin.on('close', shutdown);
process.stdin.resume();
