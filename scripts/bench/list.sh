#!/usr/bin/env bash
# The whole list under load: GET /get_messages with gzip at concurrency 32 for DURATION seconds
# over a log of MESSAGES messages (SQLite, filled by bench-fill through logging's own store),
# then the list's requests/s and errors, and the resident memory of the facade and logging
# after the load (what answering the list held at its peak).
#
#   scripts/bench/list.sh                       # 60,000 messages, 10 s
#   MESSAGES=200000 DURATION=20 scripts/bench/list.sh
#
# Uses wrk (Debian package; installed if missing), the release build (or the binaries in
# BIN_DIR, to measure another build), and ports BENCH_BASE_PORT..+2 (default 19180..19182).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

MESSAGES=${MESSAGES:-60000}
DURATION=${DURATION:-10}

. scripts/bench/lib.sh
bench_ports 19180
require_curl
ensure_wrk

if [ -n "${BIN_DIR:-}" ]; then
  bin=$BIN_DIR
else
  build_services bench-fill
fi

bench_workdir

"$bin/bench-fill" "$work/list.sqlite3" "$MESSAGES"
start_logging "127.0.0.1:$logging_port" --store "sqlite:$work/list.sqlite3"
start_messages "127.0.0.1:$messages_port"
start_facade "127.0.0.1:$facade_port" \
  --logging-url "http://127.0.0.1:$logging_port" --messages-url "http://127.0.0.1:$messages_port"
bytes=$(curl -s "$facade/get_messages" | wc -c)
before="facade $(rss_mb "$facade_pid") MB, logging $(rss_mb "$logging_pid") MB"

wrk -t2 -c32 -d"${DURATION}s" -H 'Accept-Encoding: gzip' "$facade/get_messages" > "$work/wrk.txt"
rps=$(awk '/^Requests\/sec:/ { print $2 }' "$work/wrk.txt")
errors=$(awk '/Non-2xx/ { e += $NF } /Socket errors/ { e += $4 + $6 + $8 + $10 } END { print e + 0 }' "$work/wrk.txt")

echo
echo "GET /get_messages with gzip, c=32, ${DURATION} s; $MESSAGES messages ($bytes bytes of JSON); $(nproc) cores"
echo "lists/s: $rps, errors: $errors"
echo "resident memory before the load: $before"
echo "resident memory after the load:  facade $(rss_mb "$facade_pid") MB, logging $(rss_mb "$logging_pid") MB"
