// The Node kite at the end of core/tests/tracing_bindings.rs: `leaf` answers 42, with
// tracing on (spans exported to OTEL_EXPORTER_OTLP_ENDPOINT). Prints {"url": …} once
// serving; when stdin closes, closes, sends its spans and exits.

import { Kite, flushTraces } from 'kite-rs';

const kite = new Kite({ name: 'leaf', version: '1.0.0', ip: '127.0.0.1', tracing: true });
kite.handle('leaf', () => 42, { auth: false });
await kite.listen(0);
console.log(JSON.stringify({ url: kite.url }));
process.stdin.on('data', () => {});
process.stdin.on('end', () => {
  kite.close();
  if (!flushTraces()) {
    console.error('no OTLP exporter: OTEL_EXPORTER_OTLP_ENDPOINT is not set');
    process.exit(1);
  }
  process.exit(0);
});
