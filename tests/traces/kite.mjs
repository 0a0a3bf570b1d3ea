// A Node kite of core/tests/tracing_bindings.rs, with tracing on (spans exported to
// OTEL_EXPORTER_OTLP_ENDPOINT): `kite.mjs leaf` serves `leaf` (answers 42); `kite.mjs
// middle URL` serves `middle`, which returns what `leaf` of the kite at URL answers.
// Prints {"url": …} once serving; when stdin closes, closes, sends its spans and exits.

import { Kite, flushTraces } from 'kite-rs';

const [name, next] = process.argv.slice(2);
const kite = new Kite({ name, version: '1.0.0', ip: '127.0.0.1', tracing: true });
let toLeaf;
if (name === 'leaf') {
  kite.handle('leaf', () => 42, { auth: false });
} else {
  toLeaf = kite.client(next, { transport: 'WebSocket' });
  kite.handle('middle', async () => await toLeaf.tell('leaf'), { auth: false });
}
await kite.listen(0);
if (toLeaf) await toLeaf.dial();
console.log(JSON.stringify({ url: kite.url }));
process.stdin.on('data', () => {});
process.stdin.on('end', () => {
  toLeaf?.close();
  kite.close();
  if (!flushTraces()) {
    console.error('no OTLP exporter: OTEL_EXPORTER_OTLP_ENDPOINT is not set');
    process.exit(1);
  }
  process.exit(0);
});
