// The page's outbox in real headless Chromium: what is sent while the facade or logging is
// down (or the facade hangs) waits in the browser's storage, survives a reload, and is stored
// once each, in order, when they return; two tabs with one pending message store it once; a refused message is
// shown as refused and never sent again.
//
// Run by scripts/test.sh, like page.test.mjs (see there).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  WAIT, feed, listHas, outboxEmpty, outboxShows, pendingTexts, send, skipUnlessReady,
  stopService, withStack,
} from './harness.mjs';

const STORAGE_KEY = 'msglog.outbox.v1';

/** The facade's count of messages answered as duplicates (`/metrics`). */
const duplicateCount = (stack) => stack.metric('messages_total{outcome="duplicate"}');

/** Checks `condition` until it holds, failing after WAIT ms. */
async function waitFor(condition, what) {
  const deadline = Date.now() + WAIT;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`${what}: not within ${WAIT} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** How many times each text is stored, of those given. */
async function storedCounts(stack, texts) {
  const logged = await stack.logged();
  return texts.map((text) => logged.filter((t) => t === text).length);
}

test('logging down: three messages wait, survive a reload, and are stored once each, in order', async (t) => {
  if (skipUnlessReady(t)) return;
  await withStack('outbox-reload', async (stack, chrome) => {
    const page = await chrome.open('A');
    await page.goto(stack.url);
    await feed(page, 'live');
    await send(page, 'before');
    await listHas(page, 'before');

    await stopService(stack.logging);
    await feed(page, 'interrupted');
    const texts = ['one', 'two', 'three'];
    for (const text of texts) {
      await send(page, text);
      assert.equal(await page.inputValue('#message'), '', 'the box is free at once');
    }
    await outboxShows(page, 3);
    assert.deepEqual(await pendingTexts(page), texts);

    // A reload keeps them (the facade still serves the page; logging is still down).
    await page.reload();
    await outboxShows(page, 3);
    assert.deepEqual(await pendingTexts(page), texts);
    // And they are still being tried.
    await page.locator('.pending[data-code="UNAVAILABLE"]').first().waitFor({ timeout: WAIT });

    await stack.restartLogging();
    await outboxEmpty(page);
    assert.deepEqual(await storedCounts(stack, texts), [1, 1, 1]);
    const logged = await stack.logged();
    assert.deepEqual(logged, ['before', ...texts], 'in the order they were sent');
    for (const text of texts) await listHas(page, text);
    assert.equal(await page.evaluate((key) => localStorage.getItem(key), STORAGE_KEY), null);
  });
});

test('the facade down: a message waits and is stored once when it returns; a discarded one never', async (t) => {
  if (skipUnlessReady(t)) return;
  await withStack('outbox-facade', async (stack, chrome) => {
    const page = await chrome.open('A');
    await page.goto(stack.url);
    await feed(page, 'live');

    await stopService(stack.facade);
    const text = 'sent while the facade is down';
    const discarded = 'thought better of it';
    await send(page, text);
    await send(page, discarded);
    await outboxShows(page, 2);
    await page.locator('.pending[data-code="NETWORK"]').waitFor({ timeout: WAIT });
    assert.match(await page.locator('[data-outcome="error"]').textContent(), /the facade did not answer/);
    // A waiting message can be discarded: it is never sent.
    await page.locator('.pending', { hasText: discarded }).getByRole('button', { name: 'Discard' }).click();
    await outboxShows(page, 1);
    assert.deepEqual(await pendingTexts(page), [text]);

    await stack.restartFacade();
    await outboxEmpty(page);
    await page.locator('[data-outcome="success"]').waitFor({ timeout: WAIT });
    assert.deepEqual(await storedCounts(stack, [text, discarded]), [1, 0]);
    await listHas(page, text);
  });
});

// Each resend of a message carries the key made when it was first sent, and that key alone
// keeps it from being stored twice where equal texts are kept apart (`--dedup unique` with
// logging on `--dedup-by id`): with the default rule the text would catch a new key's double.
for (const [mode, options] of [
  ['the same text is one message', {}],
  ['equal texts kept apart', { facadeArgs: ['--dedup', 'unique'], loggingArgs: ['--dedup-by', 'id'] }],
]) {
  test(`a facade that hangs (${mode}): the send times out, waits, and is stored once after all`, async (t) => {
    if (skipUnlessReady(t)) return;
    await withStack('outbox-hung', async (stack, chrome) => {
      const page = await chrome.open('A');
      await page.goto(stack.url);
      await feed(page, 'live');

      // The facade stops answering (its process frozen): the send is taken as failed after the
      // page's 15 s, though the facade may yet act on it.
      stack.facade.child.kill('SIGSTOP');
      const text = 'sent to a facade that hangs';
      try {
        await send(page, text);
        // Past 5 s the page says it is still waiting.
        await page.locator('p.waiting').waitFor({ timeout: WAIT });
        await page.locator('.pending[data-code="DEADLINE_EXCEEDED"]').waitFor({ timeout: 30_000 });
        assert.match(await page.locator('[data-outcome="error"]').textContent(), /did not answer within 15 s/);
      } finally {
        stack.facade.child.kill('SIGCONT');
      }
      // It answers again: the abandoned send and the resend both reach it, under one key.
      await outboxEmpty(page);
      assert.deepEqual(await storedCounts(stack, [text]), [1]);
      await listHas(page, text);

      // The same text typed again is a new message: stored again only where equal texts are
      // kept apart (so the rule above was in force), and a duplicate otherwise.
      await send(page, text);
      await outboxEmpty(page);
      const again = options.facadeArgs ? 2 : 1;
      await waitFor(async () => (await storedCounts(stack, [text]))[0] === again, `${again} stored`);
    }, options);
  });
}

test('two tabs with one pending message: one sends it, both show it, it is stored once, and a late resend of it is a duplicate', async (t) => {
  if (skipUnlessReady(t)) return;
  await withStack('outbox-tabs', async (stack, chrome) => {
    // One context: the two tabs share the page's storage, as a person's two tabs do.
    const context = await chrome.browser.newContext();
    const a = await chrome.open('A', context);
    const b = await chrome.open('B', context);
    await a.goto(stack.url);
    await b.goto(stack.url);
    await feed(a, 'live');
    await feed(b, 'live');

    await stopService(stack.logging);
    await feed(a, 'interrupted');
    const text = 'one message, two tabs';
    await send(a, text);
    // Tab B sees it too, and how A's tries went: both hold it, A sends it.
    await outboxShows(a, 1);
    await outboxShows(b, 1);
    await b.locator('.pending[data-code="UNAVAILABLE"]').waitFor({ timeout: WAIT });
    const kept = await a.evaluate((key) => localStorage.getItem(key), STORAGE_KEY);
    assert.ok(kept, 'the outbox is in storage');

    await stack.restartLogging();
    await outboxEmpty(a);
    await outboxEmpty(b);
    assert.deepEqual(await storedCounts(stack, [text]), [1]);
    assert.equal(await duplicateCount(stack), 0, 'sent by one tab, not by both');

    // The same message back in storage later (as a tab that still held it would put it): its
    // owner, tab A, sees it and sends it again; the facade finds it stored (its duplicate count
    // moves by one), and nothing is stored twice.
    await b.evaluate(([key, value]) => localStorage.setItem(key, value), [STORAGE_KEY, kept]);
    await waitFor(async () => (await duplicateCount(stack)) === 1, 'the resend answered');
    await outboxEmpty(a);
    await outboxEmpty(b);
    await a.locator('[data-outcome="duplicate"]').waitFor({ timeout: WAIT });
    assert.deepEqual(await storedCounts(stack, [text]), [1]);
  });
});

test('a refused message is shown refused, is not sent again, and can be edited', async (t) => {
  if (skipUnlessReady(t)) return;
  await withStack('outbox-refused', async (stack, chrome) => {
    const page = await chrome.open('A');
    // The page learns the limit from the status check, and then will not send past it (see
    // person.test.mjs). With no status answer it does not know it, and the facade refuses.
    await page.route('**/msglog.v1.MessageLog/Status', (route) => route.abort());
    await page.goto(stack.url);
    await feed(page, 'live');

    // Over the facade's message limit (64 KiB by default).
    const tooLong = 'x'.repeat(70_000);
    await send(page, tooLong);
    const refusal = page.locator('[data-outcome="refused"][data-code="INVALID_ARGUMENT"]');
    await refusal.waitFor({ timeout: WAIT });
    assert.match(await refusal.textContent(), /message is 70000 bytes long; the limit is 65536 bytes/);
    await outboxShows(page, 0, 1);
    const refused = page.locator('.pending[data-state="refused"]');
    assert.equal(await refused.getAttribute('data-attempts'), '1');

    // It holds nothing back, and is not sent again when the outbox is.
    await send(page, 'after the refused one');
    await page.locator('[data-outcome="success"]').waitFor({ timeout: WAIT });
    await listHas(page, 'after the refused one');
    await outboxShows(page, 0, 1);
    assert.equal(await refused.getAttribute('data-attempts'), '1');
    assert.deepEqual(await storedCounts(stack, [tooLong]), [0]);

    // Edit takes it back into the box; the outbox empties.
    await refused.getByRole('button', { name: 'Edit' }).click();
    await outboxEmpty(page);
    assert.equal((await page.inputValue('#message')).length, 70_000);
  });
});
