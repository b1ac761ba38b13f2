#!/usr/bin/env bash
# The built page's weight: each file raw, gzipped (-9) and as served (the brotli and gzip
# copies the build writes beside it), and wasm + js together, the figure the budget holds.
#
#   scripts/page_size.sh           # print
#   scripts/page_size.sh --check   # print, and fail when wasm + js gzipped is over the budget
#
# Build first: trunk build --release (scripts/run.sh and scripts/test.sh do).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The page's budget: wasm + js, gzip -9, at most 150 KB. The one place it is set; scripts/test.sh
# checks it. PAGE_BUDGET overrides it for one run (to see the check fail, say).
BUDGET=${PAGE_BUDGET:-153600}

DIST=${DIST:-frontend/dist}
ls "$DIST"/*.wasm >/dev/null 2>&1 || { echo "no page in $DIST: run trunk build --release" >&2; exit 1; }
size_of() { if [ -f "$1" ]; then stat -c %s "$1"; else echo -; fi; }
total_raw=0; total_gz=0; total_br=0
printf '%-48s %10s %10s %10s\n' file raw 'gzip -9' brotli
for file in "$DIST"/*.wasm "$DIST"/*.js "$DIST"/*.css "$DIST"/index.html; do
  raw=$(stat -c %s "$file"); gz=$(gzip -9c "$file" | wc -c); br=$(size_of "$file.br")
  printf '%-48s %10d %10d %10s\n' "$(basename "$file")" "$raw" "$gz" "$br"
  case "$file" in *.wasm|*.js)
    total_raw=$((total_raw + raw)); total_gz=$((total_gz + gz))
    [ "$br" = - ] || total_br=$((total_br + br)) ;;
  esac
done
printf '%-48s %10d %10d %10d   (%d KB gzipped; budget %d B)\n' "wasm + js" \
  "$total_raw" "$total_gz" "$total_br" $((total_gz / 1024)) "$BUDGET"

if [ "${1:-}" = --check ] && [ "$total_gz" -gt "$BUDGET" ]; then
  echo "the page is over its budget: wasm + js is $total_gz B gzipped, the budget $BUDGET B (scripts/page_size.sh)" >&2
  exit 1
fi
