// The page in real headless Chromium, two pages open, against the real services built by cargo
// and the page built by Trunk: send, live delivery to the other page (from the page and from a
// script), duplicate, logging down (feed interrupted, failure shown, text kept), logging back
// (feed live, list whole), older pages on demand.
//
// Run by scripts/test.sh (which installs Chromium and builds everything first). Alone:
//   node --test frontend/e2e/
// Settings: MSGLOG_BIN_DIR (target/debug), MSGLOG_STATIC_DIR (frontend/dist),
// CHROMIUM (/usr/bin/chromium), E2E_ARTIFACTS (target/e2e), E2E_REQUIRED=1 to fail rather
// than skip when Chromium or the built page is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startService as start, stopService } from './services.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const binDir = process.env.MSGLOG_BIN_DIR ?? path.join(root, 'target/debug');
const staticDir = process.env.MSGLOG_STATIC_DIR ?? path.join(root, 'frontend/dist');
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const artifacts = process.env.E2E_ARTIFACTS ?? path.join(root, 'target/e2e');
const required = process.env.E2E_REQUIRED === '1';
const startService = (name, args) => start(binDir, name, args);
// Generous bounds for a loaded 2-core machine; every wait ends as soon as its signal comes.
const WAIT = 20_000;

function missingPrerequisite() {
  if (!existsSync(chromiumPath)) return `no Chromium at ${chromiumPath} (scripts/setup.sh browser)`;
  if (!existsSync(path.join(staticDir, 'index.html'))) return `the page is not built in ${staticDir} (trunk build --release)`;
  for (const name of ['facade-service', 'logging-service', 'messages-service']) {
    if (!existsSync(path.join(binDir, name))) return `${name} is not built in ${binDir} (cargo build)`;
  }
  return null;
}

test('two pages: live delivery, duplicates, a logging restart, older pages', async (t) => {
  const missing = missingPrerequisite();
  if (missing) {
    if (required) assert.fail(missing);
    t.skip(missing);
    return;
  }
  const { chromium } = await import('playwright-core');

  const services = [];
  // Logging on its default store (SQLite) in a data directory of its own.
  const dataDir = mkdtempSync(path.join(tmpdir(), 'msglog-e2e-'));
  const loggingArgs = (addr) => ['--addr', addr, '--data-dir', dataDir];
  let logging = await startService('logging-service', loggingArgs('127.0.0.1:0'));
  services.push(logging);
  const messages = await startService('messages-service', ['--addr', '127.0.0.1:0']);
  services.push(messages);
  const facade = await startService('facade-service', [
    '--addr', '127.0.0.1:0',
    '--logging-url', `http://${logging.addr}`,
    '--messages-url', `http://${messages.addr}`,
    '--static-dir', staticDir,
  ]);
  services.push(facade);

  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  const page = await browser.newPage();
  const other = await browser.newPage();
  const consoleLines = [];
  for (const [name, p] of [['A', page], ['B', other]]) {
    p.on('console', (message) => consoleLines.push(`[${name} ${message.type()}] ${message.text()}`));
    p.on('pageerror', (error) => consoleLines.push(`[pageerror ${name}] ${error.message}`));
  }

  const pill = (service, state) => page.locator(`.pill[data-service="${service}"][data-state="${state}"]`);
  const feed = (p, state) => p.locator(`.feed[data-feed="${state}"]`).waitFor({ timeout: WAIT });
  const listHas = (p, text, timeout = WAIT) =>
    p.waitForFunction(
      (wanted) => [...document.querySelectorAll('ol.list li')].some((li) => li.textContent === wanted),
      text,
      { timeout },
    );
  const listTexts = (p) => p.$$eval('ol.list li', (items) => items.map((li) => li.textContent));
  const seqs = (p) => p.$$eval('ol.list li', (items) => items.map((li) => Number(li.dataset.seq)));
  const post = async (text) => {
    const response = await fetch(`http://${facade.addr}/send_message`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ message: text }),
    });
    assert.equal(response.status, 200, await response.text());
  };
  // Whole and in order: seqs strictly ascending, so nothing is missing between or doubled.
  const assertWhole = async (p) => {
    const shown = await seqs(p);
    for (let i = 1; i < shown.length; i++) assert.ok(shown[i - 1] < shown[i], `seqs ascend: ${shown}`);
  };

  try {
    await page.goto(`http://${facade.addr}/`);
    await other.goto(`http://${facade.addr}/`);
    await pill('facade', 'up').waitFor({ timeout: WAIT });
    await pill('logging', 'up').waitFor({ timeout: WAIT });
    await pill('messages', 'up').waitFor({ timeout: WAIT });
    await page.getByText('not implemented yet').waitFor({ timeout: WAIT });
    await feed(page, 'live');
    await feed(other, 'live');

    // Send with Enter: stored, shown in the list, the box cleared; and live in page B within
    // a second, without a reload.
    const first = 'hello from the browser';
    await page.fill('#message', first);
    await page.press('#message', 'Enter');
    await page.locator('[data-outcome="success"]').waitFor({ timeout: WAIT });
    await listHas(other, first, 1_000);
    await listHas(page, first);
    assert.equal(await page.inputValue('#message'), '');

    // A message sent by curl (any HTTP client) reaches page B live too.
    await post('sent by a script');
    await listHas(other, 'sent by a script', 1_000);

    // The same text again, with the button: a duplicate of the same id.
    const storedId = await page.locator('[data-outcome="success"] code').textContent();
    await page.fill('#message', first);
    await page.getByRole('button', { name: 'Send' }).click();
    const duplicate = page.locator('[data-outcome="duplicate"]');
    await duplicate.waitFor({ timeout: WAIT });
    assert.match(await duplicate.textContent(), /Duplicate/);
    assert.equal(await duplicate.locator('code').textContent(), storedId);

    // Logging stops: both pages show the live feed interrupted, keep what they show, and a
    // send fails with the reason while its text stays in the box.
    await stopService(logging);
    await feed(other, 'interrupted');
    await feed(page, 'interrupted');
    const kept = 'sent while logging is down';
    await page.fill('#message', kept);
    await page.press('#message', 'Enter');
    const failure = page.locator('[data-outcome="error"][data-code="UNAVAILABLE"]');
    await failure.waitFor({ timeout: WAIT });
    const failureText = await failure.textContent();
    assert.match(failureText, /Logging service error: UNAVAILABLE after \d+ attempts?/);
    assert.equal(await page.inputValue('#message'), kept);
    await pill('logging', 'down').waitFor({ timeout: WAIT });
    await listHas(other, first);
    // The strip counts the failed call (the facade's counts since it started).
    const calls = page.locator('.calls');
    await page.waitForFunction(() => Number(document.querySelector('.calls')?.dataset.errors) >= 1, null, { timeout: WAIT });
    assert.match(await calls.textContent(), /^\d+ retries · [1-9]\d* errors$/);

    // Logging comes back on the same address: the feed resumes, the strip follows, the kept
    // text is stored, and page B's list is whole: everything once, in order.
    logging = await startService('logging-service', loggingArgs(logging.addr));
    services.push(logging);
    await feed(other, 'live');
    await pill('logging', 'up').waitFor({ timeout: WAIT });
    await page.press('#message', 'Enter');
    await page.locator('[data-outcome="success"]').waitFor({ timeout: WAIT });
    await listHas(other, kept);
    await listHas(page, kept);
    assert.equal(await page.inputValue('#message'), '');
    assert.deepEqual(await listTexts(other), [first, 'sent by a script', kept]);
    await assertWhole(other);

    // Older pages on demand: with more than a page stored, a fresh page shows the newest 50
    // and loads the rest when asked.
    for (let i = 0; i < 60; i++) await post(`bulk ${i}`);
    await listHas(other, 'bulk 59');
    await other.reload();
    await listHas(other, 'bulk 59');
    assert.equal((await listTexts(other)).length, 50);
    await other.getByRole('button', { name: 'Load older' }).click();
    await listHas(other, first);
    const all = await listTexts(other);
    assert.equal(all.length, 63);
    assert.deepEqual(all.slice(0, 3), [first, 'sent by a script', kept]);
    await assertWhole(other);
    assert.equal(await other.getByRole('button', { name: 'Load older' }).count(), 0, 'nothing older');

    // A phone-sized screen: nothing wider than the screen.
    await page.setViewportSize({ width: 360, height: 740 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `page is ${overflow}px wider than a phone screen`);

    const errors = consoleLines.filter((line) => line.startsWith('[pageerror'));
    assert.deepEqual(errors, [], 'no script errors');
  } catch (error) {
    mkdirSync(artifacts, { recursive: true });
    const shot = path.join(artifacts, 'page-failure.png');
    const consoleFile = path.join(artifacts, 'page-console.log');
    const logsFile = path.join(artifacts, 'services.log');
    await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
    await other.screenshot({ path: shot.replace('.png', '-b.png'), fullPage: true }).catch(() => {});
    writeFileSync(consoleFile, consoleLines.join('\n') + '\n');
    writeFileSync(logsFile, services.map((s) => `== ${s.name}\n${s.log.join('\n')}`).join('\n') + '\n');
    console.error(`browser test failed: screenshot ${shot}, console ${consoleFile}, service logs ${logsFile}`);
    throw error;
  } finally {
    await browser.close();
    await Promise.all(services.map(stopService));
    rmSync(dataDir, { recursive: true, force: true });
  }
});
