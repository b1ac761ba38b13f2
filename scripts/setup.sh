#!/usr/bin/env bash
# Installs what building the page and running the browser test need, skipping what is there.
# Every tool comes from a package registry (crates.io, npm, Debian), never from a download.
#
#   scripts/setup.sh page      # wasm32 target, trunk, wasm-bindgen-cli, wasm-opt (binaryen)
#   scripts/setup.sh browser   # Chromium for the browser test (Debian package; needs root)
#   scripts/setup.sh           # both
#
# Afterwards put the npm tools on PATH:  export PATH="$PWD/frontend/node_modules/.bin:$PATH"
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TRUNK_VERSION=${TRUNK_VERSION:-0.21.14}
what=${1:-all}
say() { printf '==> %s\n' "$*"; }
need() { command -v "$1" >/dev/null 2>&1 || { echo "$1 is missing: $2" >&2; exit 1; }; }

setup_page() {
  need cargo "install Rust with rustup (https://rustup.rs)"
  need npm "install Node.js 20 and npm (apt-get install nodejs npm)"

  if command -v rustup >/dev/null 2>&1; then
    rustup target list --installed | grep -qx wasm32-unknown-unknown \
      || { say "adding the wasm32-unknown-unknown target"; rustup target add wasm32-unknown-unknown; }
  fi

  if [ "$(trunk --version 2>/dev/null)" != "trunk $TRUNK_VERSION" ]; then
    say "installing trunk $TRUNK_VERSION (a few minutes, once)"
    # Without LTO and with parallel codegen the build takes half as long; speed is irrelevant.
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
      cargo install --locked trunk --version "$TRUNK_VERSION"
  fi

  # The CLI must be exactly the wasm-bindgen the page links (Cargo.lock).
  local bindgen
  bindgen=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
  if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $bindgen" ]; then
    say "installing wasm-bindgen-cli $bindgen (a few minutes, once)"
    # Not --locked: one of its locked dependencies is no longer on the registry.
    cargo install wasm-bindgen-cli --version "$bindgen"
  fi

  # wasm-opt (binaryen 132) and playwright-core, as pinned in frontend/package-lock.json.
  if ! frontend/node_modules/.bin/wasm-opt --version 2>/dev/null | grep -q 'version 132' \
    || [ ! -d frontend/node_modules/playwright-core ]; then
    say "installing wasm-opt and playwright-core from npm"
    npm ci --prefix frontend --no-audit --no-fund
  fi
  say "page tools: $(trunk --version), $(wasm-bindgen --version), $(frontend/node_modules/.bin/wasm-opt --version)"
}

setup_browser() {
  if [ -x /usr/bin/chromium ]; then
    say "browser: $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
    return
  fi
  need apt-get "install Chromium with your system's package manager"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  say "installing Chromium (Debian package)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
  say "browser: $(/usr/bin/chromium --version)"
}

case "$what" in
  page) setup_page ;;
  browser) setup_browser ;;
  all) setup_page; setup_browser ;;
  *) echo "usage: $0 [page|browser|all]" >&2; exit 2 ;;
esac
