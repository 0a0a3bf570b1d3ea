// Prometheus metrics of a Node kite (`metrics: true`): /metrics beside /kite after known
// calls; the tracing switch (the trace itself: core/tests/tracing_bindings.rs); Kontrol's
// live view option (`ui`). Real sockets on 127.0.0.1, port 0.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Kite, Kontrol, flushTraces } from 'kite-rs';
import { connect, startKite, within } from './helpers.mjs';

const open = { auth: false };

/** The value of the sample line `name{labels}` (labels as the exposition writes them). */
function sample(text, line) {
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

test('metrics: true serves /metrics with the calls made', async () => {
  const k = await startKite((k) => {
    k.handle('square', (req) => req.args[0] ** 2, open);
    k.handle('fail', () => { throw new Error('boom'); }, open);
  }, { metrics: true });
  const { client: c, close } = await connect(k.url);
  try {
    for (const n of [1, 2, 3]) assert.equal(await within(c.tell('square', [n])), n * n);
    await assert.rejects(within(c.tell('fail')));
    const base = k.url.replace(/\/kite$/, '');
    const r = await fetch(`${base}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^application\/openmetrics-text/);
    const text = await r.text();
    assert.equal(sample(text, 'kite_calls_total{method="square",outcome="ok"}'), 3);
    assert.equal(sample(text, 'kite_calls_total{method="fail",outcome="error"}'), 1);
    assert.equal(sample(text, 'kite_call_duration_seconds_count{method="square"}'), 3);
    assert.ok(text.endsWith('# EOF\n'));
  } finally {
    close();
    k.close();
  }
});

test('metrics are off by default; a wrong type is refused', async () => {
  const k = await startKite(() => {});
  try {
    const r = await fetch(`${k.url.replace(/\/kite$/, '')}/metrics`);
    assert.equal(r.status, 404);
  } finally {
    k.close();
  }
  assert.throws(() => new Kite({ name: 'x', version: '1.0.0', metrics: 'yes' }), /metrics/);
});

test('the tracing switch takes a boolean; flushTraces says whether an exporter is set', () => {
  // Without OTEL_EXPORTER_OTLP_ENDPOINT (unset here) there is no exporter to flush.
  assert.equal(process.env.OTEL_EXPORTER_OTLP_ENDPOINT, undefined);
  new Kite({ name: 'x', version: '1.0.0', tracing: true }).close();
  assert.equal(flushTraces(), false);
  assert.throws(() => new Kite({ name: 'x', version: '1.0.0', tracing: 'yes' }), /tracing/);
});

test("Kontrol's ui option serves the live view", async () => {
  const host = new Kite({ name: 'kontrol', version: '1.0.0', username: 'kontrol', ip: '127.0.0.1' });
  const kontrol = await within(Kontrol.create(host, { ui: true }));
  try {
    await within(kontrol.listen(0));
    const r = await fetch(kontrol.url.replace(/\/kite$/, '/ui'));
    assert.equal(r.status, 200);
    assert.match(await r.text(), /EventSource/);
  } finally {
    kontrol.close();
  }
});
