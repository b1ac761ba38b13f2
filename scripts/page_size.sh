#!/usr/bin/env bash
# Prints the built page's sizes, raw and gzipped (-9), per file and for wasm + js together.
# Build first: trunk build --release (scripts/run.sh does).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DIST=${DIST:-frontend/dist}
ls "$DIST"/*.wasm >/dev/null 2>&1 || { echo "no page in $DIST: run trunk build --release" >&2; exit 1; }
total_raw=0; total_gz=0
printf '%-48s %10s %10s\n' file raw gzip
for file in "$DIST"/*.wasm "$DIST"/*.js "$DIST"/*.css "$DIST"/index.html; do
  raw=$(stat -c %s "$file"); gz=$(gzip -9c "$file" | wc -c)
  printf '%-48s %10d %10d\n' "$(basename "$file")" "$raw" "$gz"
  case "$file" in *.wasm|*.js) total_raw=$((total_raw + raw)); total_gz=$((total_gz + gz)) ;; esac
done
printf '%-48s %10d %10d   (%d KB gzipped)\n' "wasm + js" "$total_raw" "$total_gz" $((total_gz / 1024))
