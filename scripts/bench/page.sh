#!/usr/bin/env bash
# The page's figures: its size (wasm + js, gzipped), how long a message takes to show in an
# open page after its POST is answered (median and max of COUNT, default 20), how long the
# page's outbox takes to empty once logging is back (median and max of ROUNDS, default 10),
# and, with 2,000 messages stored, the time from navigation to the list shown (LOADS cold and
# warm loads, default 10) and the frame times while 300 arrive live with 2,000 in the page,
# in headless Chromium. Builds the page and the services, and installs Chromium, first.
#
#   scripts/bench/page.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
scripts/setup.sh page >&2
scripts/setup.sh browser >&2
trunk build --release >&2
cargo build --locked --bin facade-service --bin logging-service --bin messages-service >&2
scripts/page_size.sh
node frontend/e2e/live_delay.mjs
node frontend/e2e/outbox_drain.mjs
node frontend/e2e/list_timing.mjs
