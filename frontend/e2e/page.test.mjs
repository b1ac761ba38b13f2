// The page in real headless Chromium, against the real services built by cargo and the page
// built by Trunk: send, duplicate, logging down (failure shown, text kept), logging back.
//
// Run by scripts/test.sh (which installs Chromium and builds everything first). Alone:
//   node --test frontend/e2e/
// Settings: MSGLOG_BIN_DIR (target/debug), MSGLOG_STATIC_DIR (frontend/dist),
// CHROMIUM (/usr/bin/chromium), E2E_ARTIFACTS (target/e2e), E2E_REQUIRED=1 to fail rather
// than skip when Chromium or the built page is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const binDir = process.env.MSGLOG_BIN_DIR ?? path.join(root, 'target/debug');
const staticDir = process.env.MSGLOG_STATIC_DIR ?? path.join(root, 'frontend/dist');
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const artifacts = process.env.E2E_ARTIFACTS ?? path.join(root, 'target/e2e');
const required = process.env.E2E_REQUIRED === '1';
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

/** Starts a service binary and resolves once it logs the address it listens on. */
async function startService(name, args) {
  const child = spawn(path.join(binDir, name), args, {
    env: { ...process.env, RUST_LOG: 'info', NO_COLOR: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log = [];
  const addr = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stderr });
    lines.on('line', (line) => {
      log.push(line);
      const found = line.match(/listening.*addr=(\S+)/);
      if (found) resolve(found[1]);
    });
    child.once('exit', (code) => reject(new Error(`${name} exited (${code}):\n${log.join('\n')}`)));
  });
  return { name, child, addr, log };
}

async function stopService(service) {
  if (service.child.exitCode !== null) return;
  const exited = once(service.child, 'exit');
  service.child.kill('SIGTERM');
  await exited;
}

test('the page sends, shows duplicates, survives logging going down and coming back', async (t) => {
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
  const consoleLines = [];
  page.on('console', (message) => consoleLines.push(`[${message.type()}] ${message.text()}`));
  page.on('pageerror', (error) => consoleLines.push(`[pageerror] ${error.message}`));

  const pill = (service, state) => page.locator(`.pill[data-service="${service}"][data-state="${state}"]`);
  const listHas = (text) =>
    page.waitForFunction(
      (wanted) => [...document.querySelectorAll('ol.list li')].some((li) => li.textContent === wanted),
      text,
      { timeout: WAIT },
    );

  try {
    await page.goto(`http://${facade.addr}/`);
    await pill('facade', 'up').waitFor({ timeout: WAIT });
    await pill('logging', 'up').waitFor({ timeout: WAIT });
    await pill('messages', 'up').waitFor({ timeout: WAIT });
    await page.getByText('not implemented yet').waitFor({ timeout: WAIT });

    // Send with Enter: stored, shown in the list, the box cleared.
    const first = 'hello from the browser';
    await page.fill('#message', first);
    await page.press('#message', 'Enter');
    await page.locator('[data-outcome="success"]').waitFor({ timeout: WAIT });
    await listHas(first);
    assert.equal(await page.inputValue('#message'), '');

    // The same text again, with the button: a duplicate of the same id.
    const storedId = await page.locator('[data-outcome="success"] code').textContent();
    await page.fill('#message', first);
    await page.getByRole('button', { name: 'Send' }).click();
    const duplicate = page.locator('[data-outcome="duplicate"]');
    await duplicate.waitFor({ timeout: WAIT });
    assert.match(await duplicate.textContent(), /Duplicate/);
    assert.equal(await duplicate.locator('code').textContent(), storedId);

    // Logging stops: the send fails with its attempts and code, and the text stays.
    await stopService(logging);
    const kept = 'sent while logging is down';
    await page.fill('#message', kept);
    await page.press('#message', 'Enter');
    const failure = page.locator('[data-outcome="error"]');
    await failure.waitFor({ timeout: WAIT });
    const failureText = await failure.textContent();
    assert.match(failureText, /Logging service error/);
    assert.match(failureText, /attempts? to logging, last answer UNAVAILABLE/);
    assert.equal(await page.inputValue('#message'), kept);
    await pill('logging', 'down').waitFor({ timeout: WAIT });
    // The list that loaded before stays on screen, marked stale.
    await page.getByRole('button', { name: 'Refresh' }).click();
    await page.getByText('showing the last list that loaded').waitFor({ timeout: WAIT });
    await listHas(first);

    // Logging comes back on the same address: the strip follows, and the kept text is stored.
    logging = await startService('logging-service', loggingArgs(logging.addr));
    services.push(logging);
    await page.getByRole('button', { name: 'Refresh' }).click();
    await pill('logging', 'up').waitFor({ timeout: WAIT });
    await page.press('#message', 'Enter');
    await page.locator('[data-outcome="success"]').waitFor({ timeout: WAIT });
    await listHas(kept);
    await listHas(first); // kept on disk across the restart
    assert.equal(await page.inputValue('#message'), '');

    // A phone-sized screen: nothing wider than the screen.
    await page.setViewportSize({ width: 360, height: 740 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `page is ${overflow}px wider than a phone screen`);

    const errors = consoleLines.filter((line) => line.startsWith('[pageerror]'));
    assert.deepEqual(errors, [], 'no script errors');
  } catch (error) {
    mkdirSync(artifacts, { recursive: true });
    const shot = path.join(artifacts, 'page-failure.png');
    const consoleFile = path.join(artifacts, 'page-console.log');
    const logsFile = path.join(artifacts, 'services.log');
    await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
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
