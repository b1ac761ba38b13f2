// The live feed as server-sent events, read by the browser's own EventSource from a page of
// the facade's origin (so under the page's Content-Security-Policy): the messages stored after
// its cursor, then each new one live, each once and in order; and when the stream breaks
// (the facade restarted on the same port), EventSource reconnects by itself with the last id
// it got, and what was stored meanwhile arrives once each.
//
// Run by scripts/test.sh. Settings: see harness.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { binDir, postMessage as post, skipUnlessReady, stopService, WAIT, withStack } from './harness.mjs';
import { startService } from './services.mjs';

/** Opens an EventSource in the page that records every message event in `window.seen`. */
const listen = (page, query) =>
  page.evaluate((query) => {
    window.seen = [];
    window.feedEvents = [];
    const source = new EventSource(`/api/messages/watch${query}`);
    source.onmessage = (event) => {
      const message = JSON.parse(event.data);
      window.seen.push({ id: event.lastEventId, seq: message.seq, text: message.text });
    };
    source.addEventListener('feed', (event) => window.feedEvents.push(JSON.parse(event.data)));
    window.source = source;
  }, query);

/** Waits until the page's EventSource has seen `count` messages; returns them. */
async function seen(page, count) {
  await page.waitForFunction((count) => window.seen.length >= count, count, { timeout: WAIT });
  return page.evaluate(() => window.seen);
}

test("a browser's EventSource gets history, then live messages, and resumes by itself after a break", async (t) => {
  if (skipUnlessReady(t)) return;
  await withStack('events', async (stack, chrome) => {
    for (const text of ['one', 'two', 'three']) await post(stack.facade.addr, text);
    const page = await chrome.open('events');
    await page.goto(stack.url);
    await listen(page, '?after=1');
    let messages = await seen(page, 2);
    assert.deepEqual(messages.map((m) => m.text), ['two', 'three'], 'the history after the cursor');
    assert.deepEqual(messages.map((m) => m.id), messages.map((m) => String(m.seq)), 'each id is its seq');
    await post(stack.facade.addr, 'four');
    messages = await seen(page, 3);
    assert.equal(messages[2].text, 'four', 'live');

    // The facade goes away and comes back on the same port; two messages are stored while
    // it is down (through a second facade on the same logging).
    const other = await startService(binDir, 'facade-service', [
      '--addr', '127.0.0.1:0',
      '--logging-url', `http://${stack.logging.addr}`,
      '--messages-url', `http://${stack.messages.addr}`,
    ]);
    stack.services.push(other);
    await stopService(stack.facade);
    await post(other.addr, 'five');
    await post(other.addr, 'six');
    await stack.restartFacade();
    messages = await seen(page, 5);
    await post(stack.facade.addr, 'seven');
    messages = await seen(page, 6);
    assert.deepEqual(
      messages.map((m) => m.text),
      ['two', 'three', 'four', 'five', 'six', 'seven'],
      'each once, in order, across the break',
    );
    assert.deepEqual(messages.map((m) => m.seq), [2, 3, 4, 5, 6, 7]);
    await page.evaluate(() => window.source.close());
  });
});
