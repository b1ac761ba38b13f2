#!/usr/bin/env bash
# Every check the project has: formatting, lints, the Rust tests (unit, router, whole
# services on port 0, real binaries), the wasm32 builds, the page's weight budget, the wire
# tests against the original's gRPC stack, schemathesis on the JSON API, the browser test of
# the page in headless Chromium (and its browser-API parts by wasm-bindgen-test), the gateway
# driven by the Connect client for Node, and the
# README's own commands run as it writes them. Installs what it needs first
# (scripts/setup.sh). CI runs exactly this.
#
#   scripts/test.sh              # everything
#   TEST_LOG=1 scripts/test.sh   # with the services' traces in failing Rust tests' output
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }
results=$(mktemp)
trap 'rm -f "$results"' EXIT

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install Rust with rustup (https://rustup.rs)" >&2
  exit 1
fi

step "tools"
if command -v rustup >/dev/null 2>&1; then
  installed_components=$(rustup component list --installed 2>/dev/null || true)
  for component in rustfmt clippy; do
    grep -q "^${component}" <<<"$installed_components" || rustup component add "$component"
  done
fi
scripts/setup.sh all
# The Redis store's tests start redis-server (installed above) on free ports: here they may not
# skip.
export MSGLOG_REQUIRE_REDIS=1
# Here every test runs: one that would skip for a missing tool or right fails instead. The one
# right a test needs is root's (to make a file immutable with chattr +i), as CI has it.
if [ "$(id -u)" -eq 0 ]; then
  export MSGLOG_REQUIRE_ALL_TESTS=1
else
  echo "(not root: the test that makes a database file immutable will skip, saying why)"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "clippy -D warnings (services, and the page for wasm32)"
cargo clippy --workspace --exclude msglog-frontend --all-targets --locked -- -D warnings
cargo clippy --locked -p msglog-frontend --target wasm32-unknown-unknown --all-targets -- -D warnings

step "proto builds for wasm32 (message types, and the client stub)"
cargo build --locked -p msglog-proto --target wasm32-unknown-unknown
cargo build --locked -p msglog-proto --target wasm32-unknown-unknown --features client

step "Rust tests"
set +e
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --exclude msglog-frontend --locked --no-fail-fast 2>&1 | tee -a "$results"
else
  echo "(cargo-nextest not found; using cargo test)"
  cargo test --workspace --exclude msglog-frontend --locked --no-fail-fast 2>&1 | tee -a "$results"
fi
rust_status=${PIPESTATUS[0]}
# The page's own logic (its relay between tabs, the outbox's rules, the list's blocks), built
# natively: none of it needs a browser.
cargo test --locked -p msglog-frontend --lib 2>&1 | tee -a "$results"
[ "${PIPESTATUS[0]}" -eq 0 ] || rust_status=1
set -e

step "the page (trunk build --release) and the service binaries"
trunk build --release
cargo build --locked --bins
# Where those binaries are, for the tests below that start them (CARGO_TARGET_DIR moves them).
export MSGLOG_BIN_DIR=${MSGLOG_BIN_DIR:-$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug}

step "the page's weight: wasm + js gzipped within its budget (scripts/page_size.sh)"
set +e
scripts/page_size.sh --check 2>&1 | tee -a "$results"
page_status=${PIPESTATUS[0]}
set -e

step "wire compatibility with the original's gRPC stack (Python grpcio)"
command -v python3 >/dev/null 2>&1 || { echo "python3 is missing: apt-get install python3 python3-venv" >&2; exit 1; }
venv=target/python-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r backend/logging/tests/python/requirements.txt
set +e
"$venv/bin/python" -m pytest -q -p no:cacheprovider backend/logging/tests/python 2>&1 | tee -a "$results"
python_status=${PIPESTATUS[0]}
set -e

step "a fuzzer no one here wrote: schemathesis on the JSON API, from its OpenAPI document"
set +e
scripts/fuzz_api.sh 2>&1 | tee -a "$results"
fuzz_status=${PIPESTATUS[0]}
set -e

step "the page's browser-API parts in headless Chromium (wasm-bindgen-test: localStorage, BroadcastChannel, Web Locks)"
set +e
CHROMEDRIVER=$(command -v chromedriver) CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test --locked -p msglog-frontend --lib --target wasm32-unknown-unknown 2>&1 | tee -a "$results"
wasm_status=${PIPESTATUS[0]}
set -e

step "browser test (headless Chromium)"
set +e
E2E_REQUIRED=1 node --test frontend/e2e/ 2>&1 | tee -a "$results"
browser_status=${PIPESTATUS[0]}
set -e

step "a client no one here wrote: Connect for Node (gRPC, gRPC-web and the Connect protocol) on the facade"
set +e
(cd backend/system-tests/connect && CONNECT_REQUIRED=1 node --test) 2>&1 | tee -a "$results"
connect_status=${PIPESTATUS[0]}
set -e

step "the README's commands, as written: scripts/run.sh, the curl scripts, Ctrl-C"
set +e
scripts/check_readme_commands.sh 2>&1 | tee -a "$results"
readme_status=${PIPESTATUS[0]}
set -e

# One closing line for all runners: nextest's "N tests run: P passed, F failed" (or cargo
# test's "test result: ok. P passed; F failed"), pytest's "P passed, F failed in 1s" and
# each node run's "# pass P" / "# fail F".
passed=0; failed=0
while read -r p f; do passed=$((passed + p)); failed=$((failed + f)); done < <(
  sed -n -E \
    -e 's/.* tests? run: ([0-9]+) passed(, ([0-9]+) failed)?.*/\1 \3/p' \
    -e 's/^test result: [a-zA-Z]+\. ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/p' \
    -e 's/^(([0-9]+) failed, )?([0-9]+) passed(, ([0-9]+) failed)?.* in [0-9.]+s.*/\3 \2\5/p' "$results" \
    | awk '{ print $1, ($2 == "" ? 0 : $2) }'
  awk '/^# pass /{p=$3} /^# fail /{print p, $3}' "$results"
  # The README check: "README commands: P passed, F failed"; the fuzzer's: "API fuzzing: ...".
  sed -n -E 's/^(README commands|API fuzzing): ([0-9]+) passed, ([0-9]+) failed$/\2 \3/p' "$results"
)
echo
echo "${passed} passed, ${failed} failed"
[ "$rust_status" -eq 0 ] && [ "$python_status" -eq 0 ] && [ "$fuzz_status" -eq 0 ] \
  && [ "$browser_status" -eq 0 ] && [ "$page_status" -eq 0 ] && [ "$wasm_status" -eq 0 ] \
  && [ "$connect_status" -eq 0 ] && [ "$readme_status" -eq 0 ]
