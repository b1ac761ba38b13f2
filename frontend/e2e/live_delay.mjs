// How long a message takes to show in an open page after its POST is answered: one page in
// headless Chromium, COUNT messages (default 20) posted one after another by this script;
// prints the median and the maximum. Run by scripts/bench/page.sh, which builds what it needs.
import { feed, launchBrowser, startStack } from './harness.mjs';

const count = Number(process.env.COUNT ?? 20);

const stack = await startStack();
const chrome = await launchBrowser();
const facade = stack.facade;
try {
  const page = await chrome.open('A');
  await page.goto(stack.url);
  await feed(page, 'live');
  // The page notes when each item appears, on the same clock as this script (Date.now()).
  await page.evaluate(() => {
    window.appeared = {};
    new MutationObserver(() => {
      for (const row of document.querySelectorAll('ul.list li .text')) {
        if (!(row.textContent in window.appeared)) window.appeared[row.textContent] = Date.now();
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
  await chrome.browser.close();
  await stack.stop();
}
