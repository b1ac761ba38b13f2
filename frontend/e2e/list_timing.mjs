// How fast the page shows the list, and how smooth it stays: one page in headless Chromium
// against the services built by cargo and the page built by Trunk.
//
// - from navigation to the list shown (its first row in the DOM, on the page's own clock from
//   navigation start): LOADS loads (default 10) in a fresh browser context each (cold: nothing
//   cached), then LOADS reloads in one context (warm); median and max of each;
// - frame times while 300 messages arrive live (as fast as one client posts them) with 2,000
//   loaded in the page (the newest 50, then "Load older" until 2,000 rows show): the
//   intervals between animation frames, median, 95th percentile and max, and how many took
//   over 50 ms.
//
// Run by scripts/bench/page.sh, which builds what it needs.
import { feed, launchBrowser, startStack } from './harness.mjs';

const loads = Number(process.env.LOADS ?? 10);
const stack = await startStack();
const chrome = await launchBrowser();
const post = async (text) => {
  const response = await fetch(`http://${stack.facade.addr}/send_message`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ message: text }),
  });
  if (response.status !== 200) throw new Error(`POST answered ${response.status}`);
};
const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return (sorted[(sorted.length - 1) >> 1] + sorted[sorted.length >> 1]) / 2;
};
const percentile = (values, p) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * p))];

// The moment the first row appears, on the page's clock (ms from navigation start).
const noteListShown = () => {
  new MutationObserver((_, observer) => {
    if (document.querySelector('ul.list li')) {
      window.listShownAt = performance.now();
      observer.disconnect();
    }
  }).observe(document, { childList: true, subtree: true });
};
const shownAt = async (page) => {
  await page.waitForFunction(() => window.listShownAt !== undefined, null, { timeout: 20_000 });
  return page.evaluate(() => window.listShownAt);
};

try {
  let next = 0;
  const fill = async (count) => {
    const worker = async () => {
      while (next < count) await post(`stored message ${next++}`);
    };
    await Promise.all(Array.from({ length: 16 }, worker));
  };
  await fill(2_000);

  const cold = [];
  let wire = 0;
  for (let i = 0; i < loads; i++) {
    const context = await chrome.browser.newContext();
    await context.addInitScript(noteListShown);
    const page = await context.newPage();
    await page.goto(stack.url);
    cold.push(await shownAt(page));
    // What the first load took off the wire: the page and its files as received, headers
    // included (the gRPC-web calls are streams still open or small; the files are the bulk).
    if (i === 0) {
      wire = await page.evaluate(() =>
        [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]
          .filter((entry) => !entry.name.includes('/msglog.v1.MessageLog/'))
          .reduce((sum, entry) => sum + entry.transferSize, 0),
      );
    }
    await context.close();
  }
  const warm = [];
  const context = await chrome.browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.addInitScript(noteListShown);
  const page = await context.newPage();
  await page.goto(stack.url);
  await shownAt(page);
  for (let i = 0; i < loads; i++) {
    await page.reload();
    warm.push(await shownAt(page));
  }
  console.log(`a cold first load takes ${wire} bytes off the wire for the page and its files`);
  console.log(`navigation to the list shown, 2,000 stored (${loads} loads each):`);
  console.log(`  cold: median ${median(cold).toFixed(0)} ms, max ${Math.max(...cold).toFixed(0)} ms`);
  console.log(`  warm: median ${median(warm).toFixed(0)} ms, max ${Math.max(...warm).toFixed(0)} ms`);

  // 2,000 rows in the page, then 300 live.
  await feed(page, 'live');
  while ((await page.locator('ul.list li').count()) < 2_000) {
    const shown = await page.locator('ul.list li').count();
    await page.getByRole('button', { name: 'Load older' }).click();
    await page.waitForFunction((n) => document.querySelectorAll('ul.list li').length > n, shown, { timeout: 20_000 });
  }
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.evaluate(() => {
    window.frames = [];
    let last = performance.now();
    const tick = (now) => {
      window.frames.push(now - last);
      last = now;
      if (!window.stopFrames) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  for (let i = 0; i < 300; i++) await post(`live message ${i}`);
  await page.waitForFunction(
    () => [...document.querySelectorAll('ul.list li .text')].some((row) => row.textContent === 'live message 299'),
    null,
    { timeout: 20_000 },
  );
  const frames = await page.evaluate(() => {
    window.stopFrames = true;
    return window.frames.slice(1);
  });
  const rows = await page.locator('ul.list li').count();
  console.log(`frames while 300 messages arrived live, ${rows} rows in the page (${frames.length} frames):`);
  console.log(
    `  median ${median(frames).toFixed(1)} ms, p95 ${percentile(frames, 0.95).toFixed(1)} ms, ` +
      `max ${Math.max(...frames).toFixed(1)} ms, ${frames.filter((f) => f > 50).length} over 50 ms`,
  );
} finally {
  await chrome.browser.close();
  await stack.stop();
}
