#!/usr/bin/env bash
# Mutation testing of the modules that carry the system's promises: cargo-mutants breaks the
# code in small ways (a condition flipped, an operator swapped, a return value replaced) and
# runs the tests; a mutant no test catches is a promise no test defends. Not part of
# scripts/test.sh (a run takes from minutes to hours on two cores); a developer runs it.
# Installs cargo-mutants (crates.io) when missing. Results land in mutants.out/ (caught.txt,
# missed.txt, timeout.txt, unviable.txt).
#
#   scripts/mutants.sh                        # every module listed below, each package's tests
#   scripts/mutants.sh proto/src/text.rs      # one file
#   WORKSPACE_TESTS=1 scripts/mutants.sh backend/facade/src/ids.rs
#                                             # every test of the workspace for each mutant
#                                             # (the system tests too; much slower). The
#                                             # facade's feed and logging client need it: the
#                                             # system tests are what exercise them.
#   WORKSPACE_TESTS=1 scripts/mutants.sh backend/facade/src/feed.rs -- --timeout 60
#                                             # options after `--` go to cargo-mutants: the
#                                             # timeout it sets from a package-only baseline is
#                                             # too short for the workspace's tests
#   MSGLOG_REQUIRE_REDIS=1 scripts/mutants.sh backend/logging/src/store/redis.rs
#                                             # the Redis store's tests run rather than skip
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VERSION=27.1.0
if [ "$(cargo mutants --version 2>/dev/null)" != "cargo-mutants $VERSION" ]; then
  echo "==> installing cargo-mutants $VERSION (a few minutes, once)"
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo install --locked cargo-mutants --version "$VERSION"
fi

# Files come first; anything after `--` goes to cargo-mutants as it is (e.g. `-- --timeout 60`).
files=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do files+=("$1"); shift; done
[ "${1:-}" = -- ] && shift
if [ ${#files[@]} -eq 0 ]; then
  files=(
    proto/src/text.rs proto/src/limits.rs
    backend/facade/src/ids.rs backend/facade/src/retry.rs backend/facade/src/retry/budget.rs
    backend/facade/src/logging_client.rs backend/facade/src/logging_client/batch.rs
    backend/facade/src/feed.rs backend/facade/src/feed/follower.rs backend/facade/src/feed/watcher.rs
    backend/logging/src/service.rs backend/logging/src/watch.rs
    backend/logging/src/store/memory.rs backend/logging/src/store/sqlite.rs
    backend/logging/src/store/redis.rs
  )
fi
args=(--no-shuffle --test-tool nextest)
for file in "${files[@]}"; do args+=(--file "$file"); done
[ "${WORKSPACE_TESTS:-0}" = 1 ] && args+=(--test-workspace true)
cargo mutants "${args[@]}" "$@"
