// The page's live list across a break of its stream (and, first, what goes in through a second
// facade shown live, as behind a load balancer): what was stored while the page could not
// hear of it shows once each, in order, counted in the DOM. The break is made two ways: the
// facade the page talks to stops (messages go in through a second facade on the same logging
// meanwhile), and the browser goes offline (messages go in through the same facade).
//
// Run by scripts/test.sh. Settings: see harness.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  assertWhole, binDir, feed, listHas, listTexts, postMessage as post, skipUnlessReady, staticDir, stopService, withStack,
} from './harness.mjs';
import { startService } from './services.mjs';

/** What the page shows, oldest first, is exactly what logging holds: nothing missing, nothing twice. */
async function showsExactly(page, stack, expected) {
  assert.deepEqual(await stack.logged(), expected, 'logging holds each once');
  assert.deepEqual(await listTexts(page), expected, 'the page shows each once, in order');
  await assertWhole(page);
}

const numbered = (label, n) => Array.from({ length: n }, (_, i) => `${label} ${i + 1}`);

test('the facade restarts: what was stored meanwhile through another facade shows once each, in order', async (t) => {
  if (skipUnlessReady(t)) return;
  await withStack('resume-facade', async (stack, chrome) => {
    // A second facade on the same logging: the way in while the page's facade is down.
    const other = await startService(binDir, 'facade-service', [
      '--addr', '127.0.0.1:0',
      '--logging-url', `http://${stack.logging.addr}`,
      '--messages-url', `http://${stack.messages.addr}`,
      '--static-dir', staticDir,
    ]);
    stack.services.push(other);

    const page = await chrome.open('A');
    await page.goto(stack.url);
    await feed(page, 'live');
    await post(stack.facade.addr, 'before 1');
    await listHas(page, 'before 1');
    // Facades behind a load balancer: what goes in through the other shows here, live.
    await post(other.addr, 'through the other facade');
    await listHas(page, 'through the other facade');

    await stopService(stack.facade);
    await feed(page, 'interrupted');
    const gap = numbered('during the gap', 5);
    for (const text of gap) await post(other.addr, text);
    // Nothing of the gap reached the page while its facade was down.
    assert.deepEqual(await listTexts(page), ['before 1', 'through the other facade']);

    await stack.restartFacade();
    await feed(page, 'live');
    await listHas(page, gap.at(-1));
    await post(stack.facade.addr, 'after 1');
    await listHas(page, 'after 1');
    await showsExactly(page, stack, ['before 1', 'through the other facade', ...gap, 'after 1']);
  });
});

test('a tab that was offline: what was stored meanwhile shows once each, in order', async (t) => {
  if (skipUnlessReady(t)) return;
  await withStack('resume-offline', async (stack, chrome) => {
    const context = await chrome.browser.newContext();
    const page = await chrome.open('A', context);
    await page.goto(stack.url);
    await feed(page, 'live');
    await post(stack.facade.addr, 'before 1');
    await listHas(page, 'before 1');

    await context.setOffline(true);
    await feed(page, 'interrupted');
    const gap = numbered('while offline', 5);
    for (const text of gap) await post(stack.facade.addr, text);
    assert.deepEqual(await listTexts(page), ['before 1']);

    await context.setOffline(false);
    await feed(page, 'live');
    await listHas(page, gap.at(-1));
    await post(stack.facade.addr, 'after 1');
    await listHas(page, 'after 1');
    await showsExactly(page, stack, ['before 1', ...gap, 'after 1']);
  });
});
