// Writes brotli (quality 11) and gzip (level 9) copies beside each of the page's built assets
// (.wasm, .js, .css), once per build, so the facade serves them compressed at their best
// without compressing on every request. A copy that would not be smaller is not written.
//
// Run by Trunk after each build (Trunk.toml's post_build hook, in its staging directory), or
// by hand: node scripts/precompress.mjs DIR
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const dir = process.argv[2] ?? process.env.TRUNK_STAGING_DIR;
if (!dir) {
  console.error('usage: node scripts/precompress.mjs DIR (or TRUNK_STAGING_DIR)');
  process.exit(2);
}
for (const name of readdirSync(dir)) {
  if (!/\.(wasm|js|css)$/.test(name)) continue;
  const file = path.join(dir, name);
  const raw = readFileSync(file);
  const copies = {
    br: brotliCompressSync(raw, {
      params: {
        [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
        [constants.BROTLI_PARAM_SIZE_HINT]: raw.length,
        [constants.BROTLI_PARAM_MODE]: name.endsWith('.wasm') ? constants.BROTLI_MODE_GENERIC : constants.BROTLI_MODE_TEXT,
      },
    }),
    gz: gzipSync(raw, { level: 9 }),
  };
  for (const [suffix, bytes] of Object.entries(copies)) {
    if (bytes.length < raw.length) writeFileSync(`${file}.${suffix}`, bytes);
    else rmSync(`${file}.${suffix}`, { force: true });
  }
}
