#!/usr/bin/env bash
# Installs what building the page and running the Node tests need, skipping what is there.
# Every tool comes from a package registry (crates.io, npm, Debian), never from a download.
#
#   scripts/setup.sh page      # wasm32 target, trunk, wasm-bindgen-cli, wasm-opt (binaryen)
#   scripts/setup.sh browser   # Chromium (Debian package; needs root) and playwright-core
#   scripts/setup.sh connect   # protoc (Debian package) and the Connect client for Node
#   scripts/setup.sh redis     # redis-server (Debian package; needs root), for the Redis store
#                              # (and, as `redis-server --sentinel`, the sentinels of a replicated one)
#   scripts/setup.sh           # all four
#
# trunk and wasm-bindgen go where `cargo install` puts programs (~/.cargo/bin), and wasm-opt
# is linked into the same directory, so a plain `trunk build --release` finds all three.
#   BINARYEN_DIR=...   where binaryen's npm package is installed
#                      (default: ~/.local/share/msglog/binaryen-132)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TRUNK_VERSION=${TRUNK_VERSION:-0.21.14}
BINARYEN_VERSION=132
BINARYEN_DIR=${BINARYEN_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/msglog/binaryen-$BINARYEN_VERSION}
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

  # wasm-opt from binaryen's npm package (Debian's binaryen is too old: its wasm crashes in
  # the browser), linked next to trunk: Trunk, offline, finds its tools on PATH only.
  local tools_dir
  tools_dir=$(dirname "$(command -v trunk)")
  if ! "$tools_dir/wasm-opt" --version 2>/dev/null | grep -q "version $BINARYEN_VERSION"; then
    say "installing wasm-opt (binaryen $BINARYEN_VERSION, npm) into $BINARYEN_DIR"
    mkdir -p "$BINARYEN_DIR"
    npm install --prefix "$BINARYEN_DIR" --no-audit --no-fund --no-save \
      "binaryen@$BINARYEN_VERSION.0.0" >/dev/null
    ln -sf "$BINARYEN_DIR/node_modules/binaryen/bin/wasm-opt" "$tools_dir/wasm-opt"
  fi
  if [ "$(command -v wasm-opt)" != "$tools_dir/wasm-opt" ]; then
    echo "warning: another wasm-opt comes first on PATH ($(command -v wasm-opt));" \
      "trunk needs $tools_dir/wasm-opt (binaryen $BINARYEN_VERSION)" >&2
  fi
  # terser, which minifies the page's JS loader in release builds (scripts/precompress.mjs),
  # as pinned in frontend/package-lock.json with the browser tests' tools.
  if [ ! -d frontend/node_modules/terser ]; then
    say "installing the page's npm tools (terser; playwright-core and axe-core for its tests)"
    npm ci --prefix frontend --no-audit --no-fund
  fi
  say "page tools: $(trunk --version), $(wasm-bindgen --version), $("$tools_dir/wasm-opt" --version), terser $(node -p "require('./frontend/node_modules/terser/package.json').version")"
}

setup_browser() {
  need npm "install Node.js 20 and npm (apt-get install nodejs npm)"
  # The browser driver and the accessibility checker, as pinned in frontend/package-lock.json.
  if [ ! -d frontend/node_modules/playwright-core ] || [ ! -d frontend/node_modules/axe-core ]; then
    say "installing playwright-core and axe-core from npm"
    npm ci --prefix frontend --no-audit --no-fund
  fi
  # A local certificate for the page over HTTPS (scripts/dev_cert.sh).
  command -v openssl >/dev/null 2>&1 || apt_install openssl
  [ -x /usr/bin/chromium ] || apt_install chromium
  # Its WebDriver, through which wasm-bindgen-test-runner runs the page's browser-API tests.
  [ -x /usr/bin/chromedriver ] || apt_install chromium-driver
  say "browser: $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
}

# Installs Debian packages (the package lists are refreshed once per run).
apt_updated=""
apt_install() {
  need apt-get "install $* with your system's package manager"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  say "installing $* (Debian)"
  [ -n "$apt_updated" ] || { $sudo apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

setup_connect() {
  need npm "install Node.js 20 and npm (apt-get install nodejs npm)"
  command -v protoc >/dev/null 2>&1 || apt_install protobuf-compiler
  # A local certificate for the HTTPS tests (scripts/dev_cert.sh).
  command -v openssl >/dev/null 2>&1 || apt_install openssl
  # Connect for Node and protoc-gen-es, as pinned in its package-lock.json.
  if [ ! -d backend/system-tests/connect/node_modules/@connectrpc/connect-node ]; then
    say "installing the Connect client and protoc-gen-es from npm"
    npm ci --prefix backend/system-tests/connect --no-audit --no-fund
  fi
  say "connect: $(protoc --version), protoc-gen-es $(npm ls --prefix backend/system-tests/connect --depth=0 2>/dev/null | sed -n 's/.*@bufbuild\/protoc-gen-es@//p')"
}

setup_redis() {
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  say "redis: $(redis-server --version | cut -d' ' -f3)"
}

case "$what" in
  page) setup_page ;;
  browser) setup_browser ;;
  connect) setup_connect ;;
  redis) setup_redis ;;
  all) setup_page; setup_browser; setup_connect; setup_redis ;;
  *) echo "usage: $0 [page|browser|connect|redis|all]" >&2; exit 2 ;;
esac
