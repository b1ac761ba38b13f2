// The page's built assets made ready to serve, once per build rather than on every request:
// in a release build the JS loader is minified (terser: wasm-bindgen writes it readable, and
// Trunk's own minifier cannot parse it); then brotli (quality 11) and gzip (level 9) copies are
// written beside each asset (.wasm, .js, .css), so the facade serves them compressed at their
// best. A copy that would not be smaller is not written.
//
// Run by Trunk after each build (Trunk.toml's post_build hook, in its staging directory), or
// by hand: node scripts/precompress.mjs DIR [--minify]
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const dir = process.argv[2] ?? process.env.TRUNK_STAGING_DIR;
if (!dir) {
  console.error('usage: node scripts/precompress.mjs DIR [--minify] (or TRUNK_STAGING_DIR)');
  process.exit(2);
}
const minifying = process.argv.includes('--minify') || process.env.TRUNK_PROFILE === 'release';

// terser is one of the page's build tools (frontend/package.json; scripts/setup.sh page
// installs it). Without it the page still works, only heavier: said, not fatal.
async function minifier() {
  const frontend = path.join(path.dirname(fileURLToPath(import.meta.url)), '../frontend/package.json');
  try {
    return (await import(createRequire(frontend).resolve('terser'))).minify;
  } catch {
    console.warn('precompress: terser is not installed (scripts/setup.sh page): the JS is left as it is');
    return null;
  }
}
const minify = minifying ? await minifier() : null;

for (const name of readdirSync(dir)) {
  if (!/\.(wasm|js|css)$/.test(name)) continue;
  const file = path.join(dir, name);
  let raw = readFileSync(file);
  if (minify && name.endsWith('.js')) {
    // An ES module: its exports (the loader's init and bindings) keep their names, and so do
    // the properties the wasm imports by name.
    const { code } = await minify(raw.toString('utf8'), { module: true, compress: true, mangle: true });
    raw = Buffer.from(code, 'utf8');
    writeFileSync(file, raw);
  }
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
