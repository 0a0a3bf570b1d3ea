// Kontrol's live view in a real browser: Debian's chromium, driven by puppeteer-core, opens
// /ui of a `kontrol --ui`; `math` kites (the Rust example) register and leave, and the page
// shows them appear and disappear without a reload. Writes the screenshot the README shows.
//
//   cargo build --bin kontrol --example math && npm ci --prefix tests/ui && npm test --prefix tests/ui
//
// The binaries are taken from target/debug (KITE_TARGET_DIR for another directory), the
// browser from /usr/bin/chromium (CHROMIUM for another).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import puppeteer from 'puppeteer-core';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const target = process.env.KITE_TARGET_DIR ?? join(root, 'target', 'debug');
const KONTROL = join(target, 'kontrol');
const MATH = join(target, 'examples', 'math');
const SCREENSHOT = join(root, 'docs', 'kontrol-ui.png');
const WAIT = 20_000;

function within(promise, what, ms = WAIT) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Starts `cmd`, resolves the first stdout match of `ready` (and the child) once printed. */
async function start(cmd, args, env, ready) {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const lines = createInterface({ input: child.stdout });
  const matched = new Promise((resolve) => {
    lines.on('line', (line) => {
      const m = line.match(ready);
      if (m) resolve(m);
    });
  });
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`${cmd} exited (${code}) before it was ready:\n${stderr}`);
  });
  const m = await within(Promise.race([matched, exited]), `${cmd} ready`);
  exited.catch(() => {});
  return { child, match: m };
}

async function stop(child, signal = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = once(child, 'exit');
  child.kill(signal);
  await within(done, 'exit');
}

function run(cmd, args, env) {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  return within(once(child, 'exit'), cmd).then(([code]) => {
    assert.equal(code, 0, `${cmd} ${args.join(' ')}: ${stderr}`);
  });
}

/** Rows of kites on the page, and the group headings. */
const rows = (page) => page.$$eval('tr[data-id]', (trs) => trs.map((tr) => tr.dataset.id));
const waitRows = (page, n) => within(
  page.waitForFunction((want) => document.querySelectorAll('tr[data-id]').length === want, { timeout: WAIT }, n),
  `${n} kite rows`,
);

test('kites registering and leaving appear and disappear on /ui without a reload', async () => {
  const home = mkdtempSync(join(tmpdir(), 'kite-ui-'));
  const env = { ...process.env, KITE_HOME: home, KITE_LOG_LEVEL: 'WARNING', KITE_ENVIRONMENT: 'production' };
  const children = [];
  let browser;
  try {
    // A key pair in $KITE_HOME and alice's kite key, then Kontrol with the view on.
    await run(KONTROL, ['--initial', '--username', 'alice'], env);
    const kontrol = await start(KONTROL, ['--ui', '--ip', '127.0.0.1', '--port', '0'], env, /kontrol listening on (\S+)/);
    children.push(kontrol.child);
    const kontrolUrl = kontrol.match[1];
    const base = kontrolUrl.replace(/\/kite$/, '');

    browser = await puppeteer.launch({
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-gpu'],
    });
    const page = await browser.newPage();
    await page.setViewport({ width: 1100, height: 520 });
    await page.goto(`${base}/ui`);
    await within(page.waitForFunction(() => document.getElementById('status').textContent === 'live', { timeout: WAIT }), 'live');
    assert.deepEqual(await rows(page), []);
    assert.equal(await page.$eval('#empty', (e) => e.hidden), false);
    // Set once: still there at the end means the page was never reloaded.
    await page.evaluate(() => { window.loadedOnce = true; });

    const maths = [];
    for (let i = 0; i < 3; i++) {
      const math = await start(MATH, ['--port', '0', '--kontrol', kontrolUrl], env, /math kite listening on (\S+)/);
      children.push(math.child);
      maths.push(math);
      await waitRows(page, i + 1);
    }
    const urls = await page.$$eval('tr[data-id] td:nth-child(2)', (tds) => tds.map((td) => td.textContent));
    assert.deepEqual(urls.sort(), maths.map((m) => m.match[1]).sort());
    const groups = await page.$$eval('section h2', (hs) => hs.map((h) => h.textContent));
    assert.deepEqual(groups, ['alice / production / math / 1.0.0  (3)']);
    // Kontrol's counts and rates come from its metrics (on by default for the kontrol command).
    await within(page.waitForFunction(() => {
      const stat = (label) => document.querySelector(`[data-stat="${label}"] b`)?.textContent;
      return stat('kites registered here') === '3' && stat('registrations')?.endsWith('/s');
    }, { timeout: WAIT }), 'rates');
    await page.screenshot({ path: SCREENSHOT });

    // Leaving: SIGTERM makes a kite unregister; its row goes.
    for (let left = maths.length - 1; left >= 0; left--) {
      await stop(maths[left].child);
      await waitRows(page, left);
    }
    assert.equal(await page.$eval('#empty', (e) => e.hidden), false);
    assert.equal(await page.evaluate(() => window.loadedOnce), true);

    const stats = await (await fetch(`${base}/ui/stats`)).json();
    assert.equal(stats.metrics, true);
    assert.ok(stats.register >= 3, JSON.stringify(stats));
  } finally {
    await browser?.close();
    for (const c of children.reverse()) await stop(c);
    rmSync(home, { recursive: true, force: true });
  }
});
