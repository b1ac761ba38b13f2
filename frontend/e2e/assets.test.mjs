// The page's files as the facade delivers them, from the real build (Trunk, with the brotli
// and gzip copies scripts/precompress.mjs writes): for each Accept-Encoding a browser or a
// script may send, the right copy (its bytes, decompressed, equal the file's), the right
// Content-Encoding, Vary and Content-Length, a 304 for a matching If-None-Match, the right
// bytes of the right copy for a Range, and the page itself with an ETag and its policy.
//
// Run by scripts/test.sh, like page.test.mjs (see there).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';

import { skipUnlessReady, startStack, staticDir } from './harness.mjs';

/** GET `path` with `headers`, as raw bytes (no decompression on the way). */
function get(addr, pathname, headers = {}) {
  const [host, port] = [addr.split(':')[0], Number(addr.split(':').pop())];
  return new Promise((resolve, reject) => {
    const request = http.get({ host, port, path: pathname, headers }, (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode, headers: response.headers, body: Buffer.concat(chunks) }));
      response.on('error', reject);
    });
    request.on('error', reject);
  });
}

const decode = (encoding, body) =>
  encoding === 'br' ? brotliDecompressSync(body) : encoding === 'gzip' ? gunzipSync(body) : body;

test('each asset goes as the best copy the browser accepts, compressed once at build time', async (t) => {
  if (skipUnlessReady(t)) return;
  const wasm = readdirSync(staticDir).find((name) => name.endsWith('.wasm'));
  if (!readdirSync(staticDir).includes(`${wasm}.br`)) {
    assert.fail(`no ${wasm}.br beside the page: build it with trunk build --release (its hook runs scripts/precompress.mjs)`);
  }
  const stack = await startStack();
  try {
    const original = readFileSync(path.join(staticDir, wasm));
    for (let [accept, encoding] of [
      ['br', 'br'],
      ['gzip', 'gzip'],
      ['identity', undefined],
      ['br;q=0, gzip', 'gzip'],
      ['gzip, deflate, br, zstd', 'br'],
      ['*', 'br or gzip'],
    ]) {
      const answer = await get(stack.facade.addr, `/${wasm}`, { 'accept-encoding': accept });
      assert.equal(answer.status, 200, accept);
      if (encoding === 'br or gzip') assert.match(answer.headers['content-encoding'], /^(br|gzip)$/, accept);
      else assert.equal(answer.headers['content-encoding'], encoding, accept);
      encoding = answer.headers['content-encoding'];
      assert.equal(answer.headers['content-type'], 'application/wasm', accept);
      assert.match(answer.headers.vary ?? '', /accept-encoding/i, accept);
      assert.equal(Number(answer.headers['content-length']), answer.body.length, accept);
      assert.ok(decode(encoding, answer.body).equals(original), `${accept}: the same bytes once decoded`);
      if (encoding) assert.ok(answer.body.length < original.length / 2, `${accept}: ${answer.body.length} of ${original.length} bytes`);
      assert.match(answer.headers['cache-control'], /immutable/);

      // A matching tag: 304, nothing sent; the tag is the copy's own.
      const tag = answer.headers.etag;
      assert.match(tag, new RegExp(`-${encoding ?? 'identity'}"$`), accept);
      const again = await get(stack.facade.addr, `/${wasm}`, { 'accept-encoding': accept, 'if-none-match': tag });
      assert.equal(again.status, 304, accept);
      assert.equal(again.body.length, 0);
      assert.equal(again.headers.etag, tag);
    }
    // Another copy's tag is not this one's.
    const brTag = (await get(stack.facade.addr, `/${wasm}`, { 'accept-encoding': 'br' })).headers.etag;
    const gzip = await get(stack.facade.addr, `/${wasm}`, { 'accept-encoding': 'gzip', 'if-none-match': brTag });
    assert.equal(gzip.status, 200);

    // A range: the bytes of the copy that is sent.
    const copy = readFileSync(path.join(staticDir, `${wasm}.gz`));
    const part = await get(stack.facade.addr, `/${wasm}`, { 'accept-encoding': 'gzip', range: 'bytes=10-99' });
    assert.equal(part.status, 206);
    assert.equal(part.headers['content-encoding'], 'gzip');
    assert.ok(part.body.equals(copy.subarray(10, 100)), 'bytes 10-99 of the gzip copy');

    // The page: its policy, and a tag that a reload gets a 304 for.
    const page = await get(stack.facade.addr, '/', { accept: 'text/html' });
    assert.equal(page.status, 200);
    assert.match(page.headers['content-security-policy'], /^default-src 'self'/);
    assert.ok(page.headers.etag);
    const reload = await get(stack.facade.addr, '/', { accept: 'text/html', 'if-none-match': page.headers.etag });
    assert.equal(reload.status, 304);
    assert.equal(reload.body.length, 0);
    assert.match(reload.headers['content-security-policy'], /^default-src 'self'/);
  } finally {
    await stack.stop();
  }
});
