#!/usr/bin/env node
// The reference's math kite on kite-rs from Node: serves `square` and `echo` without
// authentication on 127.0.0.1.
//
//   node examples/node/math.js --port 3636
//
// Prints the URL when listening; stops on Ctrl-C (SIGINT) or SIGTERM.

'use strict';

const { parseArgs } = require('node:util');
const { Kite } = require('kite-rs');

const { values } = parseArgs({
  options: { port: { type: 'string', default: '3636' } },
});
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`math.js: --port must be a port number, not ${JSON.stringify(values.port)}`);
  process.exit(2);
}

const k = new Kite({ name: 'math', version: '1.0.0', ip: '127.0.0.1' });

k.handle('square', (req) => {
  const n = req.args[0];
  if (typeof n !== 'number') {
    throw Object.assign(new Error('square wants a number'), { code: 'argumentError' });
  }
  return n * n;
}, { auth: false });

k.handle('echo', (req) => req.args, { auth: false });

k.listen(port).then(() => {
  console.log(`math kite listening on ${k.url}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => k.close());
}
