// How long a message takes to show in an open page after its POST is answered: one page in
// headless Chromium, COUNT messages (default 20) posted one after another by this script;
// prints the median and the maximum. Run by scripts/bench_page.sh, which builds what it needs.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startService, stopService } from './services.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const binDir = process.env.MSGLOG_BIN_DIR ?? path.join(root, 'target/debug');
const staticDir = process.env.MSGLOG_STATIC_DIR ?? path.join(root, 'frontend/dist');
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const count = Number(process.env.COUNT ?? 20);

const { chromium } = await import('playwright-core');
const dataDir = mkdtempSync(path.join(tmpdir(), 'msglog-delay-'));
const services = [];
const browser = await chromium.launch({
  executablePath: chromiumPath,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
try {
  const logging = await startService(binDir, 'logging-service', ['--addr', '127.0.0.1:0', '--data-dir', dataDir]);
  services.push(logging);
  const facade = await startService(binDir, 'facade-service', [
    '--addr', '127.0.0.1:0', '--logging-url', `http://${logging.addr}`,
    '--messages-url', 'http://127.0.0.1:9', '--static-dir', staticDir,
  ]);
  services.push(facade);
  const page = await browser.newPage();
  await page.goto(`http://${facade.addr}/`);
  await page.locator('.feed[data-feed="live"]').waitFor({ timeout: 20_000 });
  // The page notes when each item appears, on the same clock as this script (Date.now()).
  await page.evaluate(() => {
    window.appeared = {};
    new MutationObserver(() => {
      for (const li of document.querySelectorAll('ol.list li')) {
        if (!(li.textContent in window.appeared)) window.appeared[li.textContent] = Date.now();
      }
    }).observe(document.body, { childList: true, subtree: true });
  });
  const fromAnswer = [];
  const fromSend = [];
  for (let i = 0; i < count; i++) {
    const text = `delay probe ${i} ${Date.now()}`;
    const sent = Date.now();
    const response = await fetch(`http://${facade.addr}/send_message`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ message: text }),
    });
    const answered = Date.now();
    if (response.status !== 200) throw new Error(`POST answered ${response.status}`);
    const shown = await page.waitForFunction((t) => window.appeared[t], text, { timeout: 20_000, polling: 'raf' });
    const at = await shown.jsonValue();
    // The page may show it before the answer reaches this script: that counts as 0.
    fromAnswer.push(Math.max(0, at - answered));
    fromSend.push(at - sent);
  }
  const summary = (delays) => {
    delays.sort((a, b) => a - b);
    const median = (delays[(count - 1) >> 1] + delays[count >> 1]) / 2;
    return `median ${median} ms, max ${delays[count - 1]} ms`;
  };
  console.log(`shown in an open page, ${count} messages posted one at a time:`);
  console.log(`  after the POST's answer: ${summary(fromAnswer)}`);
  console.log(`  after the POST was sent: ${summary(fromSend)}`);
} finally {
  await browser.close();
  await Promise.all(services.map(stopService));
  rmSync(dataDir, { recursive: true, force: true });
}
