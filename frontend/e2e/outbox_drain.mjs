// How long the page's outbox takes to empty once logging is back: one page in headless
// Chromium; ROUNDS times (default 10): logging stopped, COUNT messages (default 3) sent from
// the page, which wait in its outbox, then logging started again on its address. Measured from
// the moment the new logging process says it listens to the moment the outbox is empty (seen
// by the page itself, on the same clock); prints each round, the median and the maximum. Run
// by scripts/bench/page.sh, which builds what it needs.
import assert from 'node:assert/strict';

import { feed, launchBrowser, outboxShows, send, startStack, stopService } from './harness.mjs';

const rounds = Number(process.env.ROUNDS ?? 10);
const count = Number(process.env.COUNT ?? 3);

const stack = await startStack();
const chrome = await launchBrowser();
try {
  const page = await chrome.open('A');
  await page.goto(stack.url);
  await feed(page, 'live');
  // The page notes when its outbox empties, on the same clock as this script (Date.now()).
  await page.evaluate(() => {
    window.emptied = null;
    new MutationObserver(() => {
      if (!document.querySelector('.outbox') && window.emptied === null) window.emptied = Date.now();
    }).observe(document.body, { childList: true, subtree: true });
  });
  const times = [];
  for (let round = 0; round < rounds; round++) {
    await stopService(stack.logging);
    await feed(page, 'interrupted');
    for (let i = 0; i < count; i++) await send(page, `round ${round} message ${i}`);
    await outboxShows(page, count);
    // Let the outbox's back-off grow as it would in a real outage.
    await page.waitForFunction(
      () => Number(document.querySelector('.pending')?.dataset.attempts) >= 2, null, { timeout: 20_000 });
    await page.evaluate(() => { window.emptied = null; });
    await stack.restartLogging();
    const back = Date.now();
    const emptied = await page.waitForFunction(() => window.emptied, null, { timeout: 60_000, polling: 'raf' });
    const ms = (await emptied.jsonValue()) - back;
    times.push(ms);
    console.log(`round ${round + 1}: outbox of ${count} empty ${ms} ms after logging was back`);
  }
  const logged = await stack.logged();
  assert.equal(logged.length, rounds * count, 'every message stored once');
  times.sort((a, b) => a - b);
  const median = (times[(rounds - 1) >> 1] + times[rounds >> 1]) / 2;
  console.log(`outbox of ${count} messages emptied after logging's return, ${rounds} rounds: median ${median} ms, max ${times[rounds - 1]} ms`);
} finally {
  await chrome.browser.close();
  await stack.stop();
}
