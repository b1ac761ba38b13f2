// What the browser tests (and the outbox bench) share: the three services as real processes
// on free ports, headless Chromium, the page's list and outbox read from the DOM, and the
// artifacts saved when something fails.
//
// Settings: MSGLOG_BIN_DIR (target/debug), MSGLOG_STATIC_DIR (frontend/dist),
// CHROMIUM (/usr/bin/chromium), E2E_ARTIFACTS (target/e2e).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startService as start, stopService } from './services.mjs';

export { stopService };

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const binDir = process.env.MSGLOG_BIN_DIR ?? path.join(root, 'target/debug');
export const staticDir = process.env.MSGLOG_STATIC_DIR ?? path.join(root, 'frontend/dist');
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const artifacts = process.env.E2E_ARTIFACTS ?? path.join(root, 'target/e2e');
// Generous bounds for a loaded 2-core machine; every wait ends as soon as its signal comes.
export const WAIT = 20_000;

/** Why the browser tests cannot run here, or null. */
export function missingPrerequisite() {
  if (!existsSync(chromiumPath)) return `no Chromium at ${chromiumPath} (scripts/setup.sh browser)`;
  if (!existsSync(path.join(staticDir, 'index.html'))) return `the page is not built in ${staticDir} (trunk build --release)`;
  for (const name of ['facade-service', 'logging-service', 'messages-service']) {
    if (!existsSync(path.join(binDir, name))) return `${name} is not built in ${binDir} (cargo build)`;
  }
  return null;
}

/** Skips the test (or fails it, with E2E_REQUIRED=1) when a prerequisite is missing. */
export function skipUnlessReady(t) {
  const missing = missingPrerequisite();
  if (!missing) return false;
  if (process.env.E2E_REQUIRED === '1') assert.fail(missing);
  t.skip(missing);
  return true;
}

/**
 * The three services: logging on SQLite in a data directory of its own, messages, and the
 * facade serving the built page. `restartLogging()` and `restartFacade()` start one again on
 * its address after `stopService`. Options: `tls` also serves HTTPS (`stack.secureUrl`), with a
 * certificate from scripts/dev_cert.sh; `facadeArgs` and `loggingArgs` are more flags for the
 * facade and logging.
 */
export async function startStack({ tls = false, facadeArgs: extraFacadeArgs = [], loggingArgs: extraLoggingArgs = [] } = {}) {
  const services = [];
  const dataDir = mkdtempSync(path.join(tmpdir(), 'msglog-e2e-'));
  const run = async (name, args) => {
    const service = await start(binDir, name, args);
    services.push(service);
    return service;
  };
  const loggingArgs = (addr) => ['--addr', addr, '--data-dir', dataDir, ...extraLoggingArgs];
  const stack = { services };
  stack.stop = async () => {
    await Promise.all(services.map(stopService));
    rmSync(dataDir, { recursive: true, force: true });
  };
  const facadeArgs = (addr) => [
    '--addr', addr,
    '--logging-url', `http://${stack.logging.addr}`,
    '--messages-url', `http://${stack.messages.addr}`,
    '--static-dir', staticDir,
    ...(tls
      ? ['--tls-addr', '127.0.0.1:0', '--tls-cert', path.join(dataDir, 'tls/cert.pem'), '--tls-key', path.join(dataDir, 'tls/key.pem')]
      : []),
    ...extraFacadeArgs,
  ];
  try {
    if (tls) execFileSync(path.join(root, 'scripts/dev_cert.sh'), [path.join(dataDir, 'tls')]);
    stack.logging = await run('logging-service', loggingArgs('127.0.0.1:0'));
    stack.messages = await run('messages-service', ['--addr', '127.0.0.1:0']);
    stack.facade = await run('facade-service', facadeArgs('127.0.0.1:0'));
  } catch (error) {
    // Whatever did start is stopped: a failed start leaves no process behind.
    await stack.stop();
    throw error;
  }
  stack.url = `http://${stack.facade.addr}/`;
  if (tls) stack.secureUrl = `https://localhost:${stack.facade.tlsAddr.split(':').pop()}/`;
  stack.restartLogging = async () => {
    stack.logging = await run('logging-service', loggingArgs(stack.logging.addr));
  };
  stack.restartFacade = async () => {
    stack.facade = await run('facade-service', facadeArgs(stack.facade.addr));
  };
  /** A sample of the facade's /metrics (its first line starting `sample `, e.g. `watchers`). */
  stack.metric = async (sample) => {
    const text = await (await fetch(`http://${stack.facade.addr}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
    return Number(line?.split(' ')[1] ?? 0);
  };
  /** What logging holds, through the original's route. */
  stack.logged = async () => {
    const response = await fetch(`http://${stack.facade.addr}/get_messages`);
    assert.equal(response.status, 200);
    return (await response.json()).logged_messages;
  };
  return stack;
}

/** POSTs `text` through the original's route of the facade at `addr`; it must be answered 200. */
export async function postMessage(addr, text) {
  const response = await fetch(`http://${addr}/send_message`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ message: text }),
  });
  assert.equal(response.status, 200, await response.text());
}

/** Headless Chromium (with more command-line `args` when given), every page's console and errors collected. */
export async function launchBrowser(args = []) {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ...args,
    ],
  });
  const consoleLines = [];
  const pages = [];
  /** A page named `name` (in `context` when given: pages of one context share storage). */
  const open = async (name, context = browser) => {
    const page = await context.newPage();
    page.on('console', (message) => consoleLines.push(`[${name} ${message.type()}] ${message.text()}`));
    page.on('pageerror', (error) => consoleLines.push(`[pageerror ${name}] ${error.message}`));
    pages.push([name, page]);
    return page;
  };
  const scriptErrors = () => consoleLines.filter((line) => line.startsWith('[pageerror'));
  /** The console's warnings, of every page. */
  const warnings = () => consoleLines.filter((line) => / warning\] /.test(line));
  /** Saves each page's screenshot, the console and the services' logs; says where. */
  const saveArtifacts = async (label, services) => {
    mkdirSync(artifacts, { recursive: true });
    for (const [name, page] of pages) {
      await page.screenshot({ path: path.join(artifacts, `${label}-${name}.png`), fullPage: true }).catch(() => {});
    }
    const consoleFile = path.join(artifacts, `${label}-console.log`);
    const logsFile = path.join(artifacts, `${label}-services.log`);
    writeFileSync(consoleFile, consoleLines.join('\n') + '\n');
    writeFileSync(logsFile, services.map((s) => `== ${s.name}\n${s.log.join('\n')}`).join('\n') + '\n');
    console.error(`browser test failed: screenshots, console and service logs in ${artifacts}/${label}-*`);
  };
  return { browser, open, scriptErrors, warnings, saveArtifacts };
}

/**
 * Starts the stack (with `options`, see startStack) and a browser (with `options.browserArgs`),
 * runs `body`, saves artifacts if it throws, stops all.
 */
export async function withStack(label, body, options = {}) {
  const stack = await startStack(options);
  let chrome;
  try {
    chrome = await launchBrowser(options.browserArgs);
    await body(stack, chrome);
    assert.deepEqual(chrome.scriptErrors(), [], 'no script errors');
  } catch (error) {
    await chrome?.saveArtifacts(label, stack.services);
    throw error;
  } finally {
    await chrome?.browser.close();
    await stack.stop();
  }
}

// The page, read from the DOM.
/**
 * Waits until the feed's note reads as a person reads it: `live` is "Live", `interrupted` is
 * "Not live: <what>", with the reason behind "Why?".
 */
export const feed = (p, state) =>
  p.waitForFunction(
    (wanted) => {
      const note = document.querySelector('.feed');
      if (!note || note.offsetParent === null) return false;
      const text = note.querySelector('.feed-text').innerText.trim();
      return wanted === 'live' ? text === 'Live' : /^Not live: \S/.test(text) && note.querySelector('details.why') !== null;
    },
    state,
    { timeout: WAIT },
  );
/**
 * Opens the health indicator's details (as a person clicks it), waits until they show
 * `service` as `state` (`up`, `down`), in their text, and closes them again.
 */
export async function pill(p, service, state) {
  const toggle = (open) =>
    p.evaluate((open) => {
      const details = document.querySelector('details.health');
      if (details && details.open !== open) details.querySelector('summary').click();
    }, open);
  await toggle(true);
  await p.waitForFunction(
    ([name, wanted]) =>
      [...document.querySelectorAll('.status .pill')].some(
        (pill) =>
          pill.offsetParent !== null &&
          pill.querySelector('.name')?.innerText.trim() === name &&
          pill.querySelector('.state')?.innerText.trim() === wanted,
      ),
    [service, state],
    { timeout: WAIT },
  );
  await toggle(false);
}
/** The rows' texts, selector for one: the list shows the newest first. */
export const ROW_TEXT = 'ul.list li .text';
export const listHas = (p, text, timeout = WAIT) =>
  p.waitForFunction(
    ([selector, wanted]) => [...document.querySelectorAll(selector)].some((row) => row.textContent === wanted),
    [ROW_TEXT, text],
    { timeout },
  );
/** The texts shown, oldest first (the page shows the newest first). */
export const listTexts = async (p) => (await p.$$eval(ROW_TEXT, (items) => items.map((row) => row.textContent))).reverse();
/** The seqs shown, in the page's order (newest first). */
export const seqs = (p) => p.$$eval('ul.list li', (items) => items.map((li) => Number(li.dataset.seq)));
/** Whole and in order: seqs strictly descending down the page, so nothing is missing between or doubled. */
export async function assertWhole(p) {
  const shown = await seqs(p);
  for (let i = 1; i < shown.length; i++) assert.ok(shown[i - 1] > shown[i], `seqs descend down the page: ${shown}`);
}
/** Types `text` and presses Enter. */
export async function send(p, text) {
  await p.fill('#message', text);
  await p.press('#message', 'Enter');
}
/** Waits until the outbox shows `waiting` messages waiting and `refused` refused. */
export const outboxShows = (p, waiting, refused = 0) =>
  p.locator(`.outbox[data-waiting="${waiting}"][data-refused="${refused}"]`).waitFor({ timeout: WAIT });
/** Waits until the outbox is empty (and so not shown). */
export const outboxEmpty = (p, timeout = WAIT) =>
  p.locator('.outbox').waitFor({ state: 'detached', timeout });
/** The outbox's texts, oldest first. */
export const pendingTexts = (p) => p.$$eval('.pending .pending-text', (items) => items.map((i) => i.textContent));
