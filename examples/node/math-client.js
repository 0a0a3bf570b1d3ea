#!/usr/bin/env node
// Calls the math kite: `square` of a number and `echo` of some arguments.
//
//   node examples/node/math-client.js --url http://127.0.0.1:3636/kite 7

'use strict';

const { parseArgs } = require('node:util');
const { Kite } = require('kite-rs');

async function main() {
  const { values, positionals } = parseArgs({
    options: { url: { type: 'string', default: 'http://127.0.0.1:3636/kite' } },
    allowPositionals: true,
  });
  const number = positionals.length ? Number(positionals[0]) : 4;

  const local = new Kite({ name: 'math-client', version: '1.0.0' });
  const client = local.client(values.url);
  try {
    await client.dial();
    const squared = await client.tell('square', [number]);
    console.log(`square(${number}) = ${squared}`);
    const echoed = await client.tell('echo', ['hello', { from: 'kite-rs' }]);
    console.log(`echo = ${JSON.stringify(echoed)}`);
  } finally {
    client.close();
    local.close();
  }
}

main().catch((err) => {
  console.error(`math-client.js: ${err.code ? `${err.code}: ` : ''}${err.message}`);
  process.exitCode = 1;
});
