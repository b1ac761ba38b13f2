// The page in real headless Chromium, two pages open, against the real services built by cargo
// and the page built by Trunk: send, live delivery to the other page (from the page and from a
// script), duplicate, logging down (feed interrupted, failure shown, the message kept in the
// outbox), logging back (feed live, the outbox sent by itself, list whole), older pages on
// demand.
//
// Run by scripts/test.sh (which installs Chromium and builds everything first). Alone:
//   node --test frontend/e2e/
// Settings: see harness.mjs; E2E_REQUIRED=1 fails rather than skips when Chromium or the
// built page is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  WAIT, assertWhole, feed, listHas, listTexts, outboxEmpty, outboxShows, pendingTexts, pill, postMessage, send,
  skipUnlessReady, stopService, withStack,
} from './harness.mjs';

test('two pages: live delivery, duplicates, a logging restart, older pages', async (t) => {
  if (skipUnlessReady(t)) return;
  await withStack('page', async (stack, chrome) => {
    const page = await chrome.open('A');
    const other = await chrome.open('B');
    const post = (text) => postMessage(stack.facade.addr, text);

    await page.goto(stack.url);
    await other.goto(stack.url);
    // The browser has nothing to warn about, and fetched the wasm once (its preload used, and
    // compiled as it streams in: served as application/wasm).
    const wasmFetches = await page.evaluate(() =>
      performance.getEntriesByType('resource').filter((entry) => entry.name.endsWith('.wasm')).length,
    );
    assert.equal(wasmFetches, 1, 'the wasm is fetched once');
    await pill(page, 'facade', 'up');
    await pill(page, 'logging', 'up');
    await pill(page, 'messages', 'up');
    await page.locator('.from-service').getByText('not implemented yet').waitFor({ timeout: WAIT });
    await feed(page, 'live');
    await feed(other, 'live');

    // Send with Enter: stored, shown in the list, the box cleared; and live in page B within
    // a second, without a reload.
    const first = 'hello from the browser';
    await send(page, first);
    await page.locator('[data-outcome="success"]').waitFor({ timeout: WAIT });
    await listHas(other, first, 1_000);
    await listHas(page, first);
    assert.equal(await page.inputValue('#message'), '');

    // A message sent by curl (any HTTP client) reaches page B live too.
    await post('sent by a script');
    await listHas(other, 'sent by a script', 1_000);

    // The same text again, with the button: a duplicate, stored once.
    await page.fill('#message', first);
    await page.getByRole('button', { name: 'Send' }).click();
    const duplicate = page.locator('[data-outcome="duplicate"]');
    await duplicate.waitFor({ timeout: WAIT });
    assert.match(await duplicate.innerText(), /Already stored: this text was sent before/);
    assert.deepEqual(await stack.logged(), [first, 'sent by a script']);

    // Logging stops: both pages show the live feed interrupted and keep what they show; a
    // send fails with the reason, the box is free again, and the message waits in the outbox
    // with its last error.
    await stopService(stack.logging);
    await feed(other, 'interrupted');
    await feed(page, 'interrupted');
    const kept = 'sent while logging is down';
    await send(page, kept);
    const failure = page.locator('[data-outcome="error"][data-code="UNAVAILABLE"]');
    await failure.waitFor({ timeout: WAIT });
    // In plain words; the gRPC code and the facade's own words one click away.
    assert.match(await failure.innerText(), /^Not stored yet\. Storage is unreachable right now\. Your message is kept here/);
    assert.doesNotMatch(await failure.innerText(), /UNAVAILABLE/);
    await failure.locator('summary').click();
    assert.match(await failure.innerText(), /UNAVAILABLE Logging service error: UNAVAILABLE after \d+ attempts?/);
    assert.equal(await page.inputValue('#message'), '');
    await outboxShows(page, 1);
    assert.deepEqual(await pendingTexts(page), [kept]);
    const pending = page.locator('.pending[data-code="UNAVAILABLE"]');
    assert.match(await pending.innerText(), /Not stored yet, tried (once|\d+ times)\. Storage is unreachable right now\./);
    assert.match(await page.locator('.outbox-summary').textContent(), /1 message waiting to be stored · oldest \d+ s ago/);
    await pill(page, 'logging', 'down');
    await listHas(other, first);
    // The strip counts the failed call (the facade's counts since it started).
    const calls = page.locator('.calls');
    await page.waitForFunction(() => Number(document.querySelector('.calls')?.dataset.errors) >= 1, null, { timeout: WAIT });
    assert.match(await calls.textContent(), /^Since the facade last started: \d+ retries · [1-9]\d* errors$/);

    // Logging comes back on the same address: the feed resumes, the strip follows, the
    // outbox is sent by itself, and page B's list is whole: everything once, in order.
    await stack.restartLogging();
    await feed(other, 'live');
    await pill(page, 'logging', 'up');
    await outboxEmpty(page);
    await page.locator('[data-outcome="success"]').waitFor({ timeout: WAIT });
    await listHas(other, kept);
    await listHas(page, kept);
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

    assert.deepEqual(chrome.warnings(), [], 'no console warnings');

    // A phone-sized screen: nothing wider than the screen.
    await page.setViewportSize({ width: 360, height: 740 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    const wide = await page.evaluate(() =>
      [...document.querySelectorAll('body *')]
        .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
        .map((e) => `${e.tagName.toLowerCase()}.${e.className}`),
    );
    assert.ok(overflow <= 0, `page is ${overflow}px wider than a phone screen: ${wide.slice(0, 5)}`);
  });
});
