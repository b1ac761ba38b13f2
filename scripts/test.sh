#!/usr/bin/env bash
# Every check the project has: formatting, lints, all tests (unit, router, whole services on
# port 0), and the wasm32 build of the proto crate. CI runs exactly this.
#
#   scripts/test.sh            # everything
#   TEST_LOG=1 scripts/test.sh # with the services' traces in failing tests' output
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install Rust with rustup (https://rustup.rs)" >&2
  exit 1
fi

step "toolchain components"
if command -v rustup >/dev/null 2>&1; then
  installed_components=$(rustup component list --installed 2>/dev/null || true)
  for component in rustfmt clippy; do
    grep -q "^${component}" <<<"$installed_components" || rustup component add "$component"
  done
  rustup target list --installed | grep -qx wasm32-unknown-unknown \
    || rustup target add wasm32-unknown-unknown
  echo "rustfmt, clippy and the wasm32 target are present"
else
  echo "rustup not found: assuming rustfmt, clippy and the wasm32-unknown-unknown target are installed"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "proto crate builds for wasm32 (message types, and the gRPC-web client stub)"
cargo build --locked -p msglog-proto --target wasm32-unknown-unknown
cargo build --locked -p msglog-proto --target wasm32-unknown-unknown --features client

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  echo "(cargo-nextest not found; using cargo test)"
  cargo test --workspace --locked --no-fail-fast
fi
