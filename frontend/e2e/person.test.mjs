// The page as a person uses it, in headless Chromium against the real services: the newest in
// view after sending (with 2,000 stored), a jump back when reading further down, each row's
// time as the store gave it, long messages folded, outcomes that last only while true, the size
// limit shown before sending, a duplicate pointing to what it matched, "Load older" keeping the
// reading position, the services out of the way until something is down, buttons that say which
// message they act on, and no serious accessibility violation (axe-core) in light or dark.
// Screenshots at 1280x800 and 390x844, light and dark, go to target/e2e/screens/.
//
// Run by scripts/test.sh, like page.test.mjs (see there).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  ROW_TEXT, WAIT, feed, listHas, listTexts, outboxShows, postMessage, send, skipUnlessReady, stopService, withStack,
} from './harness.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const screens = path.join(process.env.E2E_ARTIFACTS ?? path.join(root, 'target/e2e'), 'screens');
const axePath = path.join(root, 'frontend/node_modules/axe-core/axe.min.js');

/** POSTs `texts` through the original's route, `parallel` at a time, in order per worker. */
async function post(stack, texts, parallel = 1) {
  let next = 0;
  const worker = async () => {
    while (next < texts.length) {
      await postMessage(stack.facade.addr, texts[next++]);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
}

/** The row showing `text`. */
const row = (p, text) => p.locator('ul.list li', { has: p.locator('.text', { hasText: text }) }).first();

/** Whether `locator` lies wholly inside the viewport. */
async function inView(p, locator) {
  const box = await locator.boundingBox();
  const height = p.viewportSize().height;
  return box !== null && box.y >= 0 && box.y + box.height <= height;
}

test('after sending, the message is in view with 2,000 stored; reading further down, new ones are offered, not pushed in', async (t) => {
  if (skipUnlessReady(t)) return;
  await withStack('person-newest', async (stack, chrome) => {
    await post(stack, Array.from({ length: 2_000 }, (_, i) => `stored ${i}`), 16);
    const page = await chrome.open('newest');
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.goto(stack.url);
    await feed(page, 'live');
    await send(page, 'mine, just sent');
    await listHas(page, 'mine, just sent');
    assert.ok(await inView(page, row(page, 'mine, just sent')), 'the sent message is in view');

    // Reading the oldest shown: new messages do not move what is read, and a jump is offered.
    await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
    const oldestShown = await page.locator(`${ROW_TEXT}`).last().textContent();
    const reading = row(page, oldestShown);
    const before = (await reading.boundingBox()).y;
    await post(stack, ['live one', 'live two', 'live three']);
    const jump = page.getByRole('button', { name: '↑ 3 new messages' });
    await jump.waitFor({ timeout: WAIT });
    // Measured once the page has drawn them (two frames on).
    await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
    const after = (await reading.boundingBox()).y;
    assert.ok(Math.abs(after - before) <= 2, `the row being read stays in place: ${before} → ${after}`);
    await jump.click();
    await jump.waitFor({ state: 'detached', timeout: WAIT });
    assert.ok(await inView(page, row(page, 'live three')), 'the jump brings the newest into view');
  });
});

test('each row shows when the store says it was stored, and no number', async (t) => {
  if (skipUnlessReady(t)) return;
  await withStack('person-time', async (stack, chrome) => {
    await post(stack, ['when was this stored']);
    const page = await chrome.open('time');
    await page.goto(stack.url);
    await feed(page, 'live');
    const stored = (await (await fetch(`http://${stack.facade.addr}/api/messages`)).json()).messages[0];
    assert.ok(stored.stored_at_ms > 0, JSON.stringify(stored));
    const time = row(page, 'when was this stored').locator('time');
    assert.equal(await time.getAttribute('datetime'), new Date(stored.stored_at_ms).toISOString());
    assert.ok((await time.getAttribute('title')).length > 8, 'the full local date and time on hover');
    assert.equal(await time.locator('span[aria-hidden="true"]').innerText(), 'just now');
    // For screen readers, the full time too.
    assert.match(await time.locator('.visually-hidden').textContent(), /^stored \S/);
    assert.equal(await page.$eval('ul.list', (list) => getComputedStyle(list).listStyleType), 'none');
  });
});

test('a 20,000-character message takes a few lines until opened', async (t) => {
  if (skipUnlessReady(t)) return;
  await withStack('person-long', async (stack, chrome) => {
    const long = 'word '.repeat(4_000).trim();
    await post(stack, [long, 'after the long one']);
    const page = await chrome.open('long');
    await page.goto(stack.url);
    await feed(page, 'live');
    const text = page.locator(ROW_TEXT, { hasText: 'word word' });
    const line = await text.evaluate((p) => parseFloat(getComputedStyle(p).lineHeight));
    const folded = (await text.boundingBox()).height;
    assert.ok(folded <= 5 * line, `folded to ${folded} px (line ${line} px)`);
    const more = page.getByRole('button', { name: 'Show more' });
    assert.equal(await more.getAttribute('aria-expanded'), 'false');
    await more.click();
    const open = (await text.boundingBox()).height;
    assert.ok(open > 20 * line, `opened to ${open} px`);
    await page.getByRole('button', { name: 'Show less' }).click();
    assert.ok((await text.boundingBox()).height <= 5 * line);
  });
});

test('an outcome lasts only while it is true', async (t) => {
  if (skipUnlessReady(t)) return;
  await withStack('person-outcomes', async (stack, chrome) => {
    const page = await chrome.open('outcomes');
    await page.goto(stack.url);
    await feed(page, 'live');
    const outcome = page.locator('[data-outcome]');

    // "Already stored" goes when the next thing is said ("Write a message first").
    await post(stack, ['said twice']);
    await send(page, 'said twice');
    await page.locator('[data-outcome="duplicate"]').waitFor({ timeout: WAIT });
    await page.press('#message', 'Enter');
    await page.getByText('Write a message first.').waitFor({ timeout: WAIT });
    assert.equal(await outcome.count(), 0, 'no outcome under the hint');

    // "Stored." does not stand while the facade is down.
    await send(page, 'stored, then the facade stops');
    await page.locator('[data-outcome="success"]').waitFor({ timeout: WAIT });
    await stopService(stack.facade);
    await feed(page, 'interrupted');
    await page.locator('[data-outcome="success"]').waitFor({ state: 'detached', timeout: WAIT });
    await stack.restartFacade();
    await feed(page, 'live');

    // Typing starts afresh.
    await send(page, 'stored, then typing');
    await page.locator('[data-outcome="success"]').waitFor({ timeout: WAIT });
    await page.type('#message', 'n');
    assert.equal(await outcome.count(), 0, 'typing clears the last outcome');
  });
});

test('a refused message: its outcome goes with it, and its buttons say which message they act on', async (t) => {
  if (skipUnlessReady(t)) return;
  await withStack('person-refused', async (stack, chrome) => {
    const page = await chrome.open('refused');
    // Without a status answer the page does not know the limit, so the facade refuses.
    await page.route('**/msglog.v1.MessageLog/Status', (route) => route.abort());
    await page.goto(stack.url);
    await feed(page, 'live');
    await send(page, `too long ${'x'.repeat(70_000)}`);
    await page.locator('[data-outcome="refused"]').waitFor({ timeout: WAIT });
    await outboxShows(page, 0, 1);
    const discard = page.getByRole('button', { name: /^Discard “too long x{31}…”$/ });
    assert.equal(await page.getByRole('button', { name: /^Edit “too long x{31}…”$/ }).count(), 1);
    await discard.click();
    await page.locator('[data-outcome="refused"]').waitFor({ state: 'detached', timeout: WAIT });
    // The focus goes back to the box, not to the page's top.
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'message');
  });
});

test('the size limit is shown before sending, from the facade; past it Send says why and sends nothing', async (t) => {
  if (skipUnlessReady(t)) return;
  await withStack(
    'person-limit',
    async (stack, chrome) => {
      const page = await chrome.open('limit');
      await page.goto(stack.url);
      await feed(page, 'live');
      const counter = page.locator('#counter');
      await page.waitForFunction(() => document.querySelector('#counter')?.innerText === '0 / 100 characters', null, { timeout: WAIT });
      await page.fill('#message', 'é'.repeat(10));
      assert.equal(await counter.innerText(), '10 / 100 characters');
      await page.fill('#message', 'x'.repeat(103));
      assert.match(await counter.innerText(), /^Too long by about 3 characters: shorten it to send it\.$/);
      assert.equal(await page.getByRole('button', { name: 'Send' }).isDisabled(), true);
      await page.press('#message', 'Enter');
      assert.equal(await page.locator('.outbox').count(), 0, 'nothing went to the outbox');
      assert.deepEqual(await stack.logged(), []);
    },
    { facadeArgs: ['--max-message-bytes', '100'] },
  );
});

test('a duplicate points to the message it matched; a stored one says where it landed', async (t) => {
  if (skipUnlessReady(t)) return;
  await withStack('person-duplicate', async (stack, chrome) => {
    await post(stack, ['the original', ...Array.from({ length: 30 }, (_, i) => `later ${i}`)]);
    const page = await chrome.open('duplicate');
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.goto(stack.url);
    await feed(page, 'live');
    await send(page, 'something new');
    const stored = page.locator('[data-outcome="success"]');
    await stored.waitFor({ timeout: WAIT });
    assert.match(await stored.innerText(), /^Stored\. It is at the top of the list\. Show it$/);
    assert.doesNotMatch(await stored.innerText(), /[0-9a-f]{8}-[0-9a-f]{4}/, 'no UUID');

    await send(page, 'the original');
    const duplicate = page.locator('[data-outcome="duplicate"]');
    await duplicate.waitFor({ timeout: WAIT });
    await duplicate.getByRole('button', { name: 'Show it' }).click();
    const original = row(page, 'the original');
    await page.waitForFunction(() => document.querySelector('li[data-highlight]') !== null, null, { timeout: WAIT });
    assert.equal(await original.getAttribute('data-highlight'), '');
    await page.waitForFunction(
      () => {
        const box = document.querySelector('li[data-highlight]').getBoundingClientRect();
        return box.top >= 0 && box.bottom <= window.innerHeight;
      },
      null,
      { timeout: WAIT },
    );
  });
});

test('"Load older" keeps the reading position, and what was loaded stays as new ones come', async (t) => {
  if (skipUnlessReady(t)) return;
  await withStack('person-older', async (stack, chrome) => {
    // One at a time, so the numbers are the order they are stored in.
    await post(stack, Array.from({ length: 120 }, (_, i) => `numbered ${i}`));
    const page = await chrome.open('older');
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.goto(stack.url);
    await feed(page, 'live');
    await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
    const oldest = row(page, 'numbered 70');
    const before = (await oldest.boundingBox()).y;
    await page.getByRole('button', { name: 'Load older' }).click();
    await listHas(page, 'numbered 20');
    await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
    const after = (await oldest.boundingBox()).y;
    assert.ok(Math.abs(after - before) <= 2, `the row read stays in place: ${before} → ${after}`);
    await post(stack, ['newer 1', 'newer 2']);
    await listHas(page, 'newer 2');
    assert.equal((await listTexts(page)).length, 102);
    assert.equal(await page.locator('.trimmed').count(), 0, 'nothing was put away');
  });
});

test('the services stay out of the way until something is down; their details open by keyboard', async (t) => {
  if (skipUnlessReady(t)) return;
  await withStack('person-health', async (stack, chrome) => {
    const page = await chrome.open('health');
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(stack.url);
    await feed(page, 'live');
    const indicator = page.locator('details.health > summary');
    await page.waitForFunction(() => document.querySelector('details.health > summary')?.innerText.trim() === 'All working', null, { timeout: WAIT });
    assert.equal(await page.locator('.trouble').count(), 0);
    assert.equal(await page.locator('.status').isVisible(), false, 'the details are closed');

    await stopService(stack.logging);
    const banner = page.locator('.trouble[data-down="storage"]');
    await banner.waitFor({ timeout: WAIT });
    assert.match(await banner.innerText(), /^Messages can't be stored right now: storage is unreachable\. What you send is kept here/);
    assert.equal((await indicator.innerText()).trim(), 'Not working');
    // The feed says it in a few words, and the title stays on one line on a phone.
    await feed(page, 'interrupted');
    assert.equal(await page.locator('.feed-text').innerText(), 'Not live: storage unreachable');
    const title = await page.locator('#list-title').evaluate((h) => h.getBoundingClientRect().height / parseFloat(getComputedStyle(h).lineHeight));
    assert.ok(title < 1.5, `the title takes ${title} lines`);

    // By keyboard: the indicator opens, and the details say which service is down and why.
    await indicator.focus();
    await page.keyboard.press('Enter');
    const logging = page.locator('.pill[data-service="logging"]');
    await logging.waitFor({ state: 'visible', timeout: WAIT });
    assert.equal(await logging.getAttribute('data-state'), 'down');
    assert.ok((await logging.locator('.pill-detail').innerText()).length > 0);
  });
});

test('no serious accessibility violation, light or dark, desktop or phone; screenshots for a look', async (t) => {
  if (skipUnlessReady(t)) return;
  await withStack('person-a11y', async (stack, chrome) => {
    await post(stack, ['a first message', `a long one ${'lorem ipsum '.repeat(80)}`, 'the newest']);
    mkdirSync(screens, { recursive: true });
    const axeSource = readFileSync(axePath, 'utf8');
    for (const colorScheme of ['light', 'dark']) {
      for (const [size, viewport] of [['1280x800', { width: 1280, height: 800 }], ['390x844', { width: 390, height: 844 }]]) {
        const context = await chrome.browser.newContext({ colorScheme, viewport });
        const page = await chrome.open(`a11y-${colorScheme}-${size}`, context);
        // A refused message waits in the outbox too (no status: no limit known), so its row
        // and buttons are checked as well.
        await page.route('**/msglog.v1.MessageLog/Status', (route) => route.abort());
        await page.goto(stack.url);
        await feed(page, 'live');
        await send(page, `refused ${'x'.repeat(70_000)}`);
        await outboxShows(page, 0, 1);
        await page.unroute('**/msglog.v1.MessageLog/Status');
        await send(page, `sent from the ${colorScheme} ${size} page`);
        await page.locator('[data-outcome="success"]').waitFor({ timeout: WAIT });
        // Evaluated by the test's driver, as the page's policy (rightly) allows no injected
        // script tag.
        await page.evaluate(axeSource);
        const violations = await page.evaluate(async () => {
          const results = await window.axe.run(document, { resultTypes: ['violations'] });
          return results.violations
            .filter((v) => v.impact === 'serious' || v.impact === 'critical')
            .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
        });
        assert.deepEqual(violations, [], `${colorScheme} ${size}`);
        await page.screenshot({ path: path.join(screens, `page-${size}-${colorScheme}.png`), fullPage: true });
        await page.locator('details.health > summary').click();
        await page.screenshot({ path: path.join(screens, `page-${size}-${colorScheme}-health.png`) });
        await context.close();
      }
    }
  });
});
