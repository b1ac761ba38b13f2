#!/usr/bin/env bash
# One run, one table: the limit of one HTTP hop on this machine (a bare axum server answering
# `hello`), then the services under the same load tool and settings, each as a share of it:
#   - POST /send_message at concurrency 1 and 32, logging on memory and on SQLite (every POST a
#     new message: the facade runs with --dedup unique, logging with --dedup-by id; with SQLite
#     each one is fsynced before its 200);
#   - GET /get_messages at concurrency 32 with 10 and with 10,000 messages stored;
#   - a page of the list (100 messages from the middle) at concurrency 32, through the JSON door
#     (GET /api/messages) and the gRPC door (List, as gRPC-web), with 1,000 and with 1,000,000
#     messages stored in SQLite (filled by bench-fill through logging's own store: about a
#     minute for the million), and the ratio of the two;
#   - the resident memory of each service after the load;
#   - POST at concurrency 32 through one logging replica on Redis (every write fsynced), then
#     through three (the facade balancing across them; all on the same cores).
#
#   scripts/bench/throughput.sh                          # 10 s per scenario
#   DURATION=30 scripts/bench/throughput.sh
#
# Uses wrk and redis-server (Debian packages; installed if missing), the release build, and
# ports BENCH_BASE_PORT..+6 (default 19080..19086).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

DURATION=${DURATION:-10}
THREADS=${THREADS:-2}

. scripts/bench/lib.sh
bench_start 19080 bench-hello bench-fill

# Runs wrk for DURATION after a 2 s warm-up; prints "rps p50_ms p99_ms errors".
load() {
  local connections=$1 url=$2; shift 2
  local threads=$THREADS
  [ "$connections" -ge "$threads" ] || threads=$connections
  wrk -t"$threads" -c"$connections" -d2s "$@" "$url" >/dev/null
  wrk -t"$threads" -c"$connections" -d"${DURATION}s" --latency "$@" "$url" > "$work/wrk.txt"
  wrk_figures "$work/wrk.txt"
}

rows=()
# Adds one row: its name, the hello server's requests/s at the same concurrency ("" for the
# hello rows themselves), and what load() printed. Sets $rps to this row's requests/s.
row() {
  local name=$1 reference=$2 p50 p99 errors
  read -r rps p50 p99 errors <<<"$3"
  rows+=("$(awk -v n="$name" -v r="$rps" -v a="$p50" -v b="$p99" -v e="$errors" -v h="${reference:-$rps}" \
    'BEGIN { printf "%-44s %10.0f %8.2f %8.2f %7d %8.0f %%", n, r, a, b, e, 100 * r / h }')")
}

# Logging on a store, fresh; the facade finds it again on the same port (a first POST through
# it answered 200 says so).
logging_pid=""
use_store() {
  [ -z "$logging_pid" ] || stop "$logging_pid"
  start_logging "127.0.0.1:$logging_port" --store "$1" --dedup-by id
  wait_post "$facade"
}
# Stores `n` more messages through the facade, 16 at a time.
fill() {
  seq 1 "$1" | xargs -P 16 -I{} curl -s -o /dev/null -X POST "$facade/send_message" \
    -H 'content-type: application/json' -d '{"message":"a stored message of an ordinary length, number {}"}'
}

start_hello "$hello_port"
row "hello (bare axum), c=32" "" "$(load 32 "http://127.0.0.1:$hello_port/")"; hello32=$rps
row "hello (bare axum), c=1" "" "$(load 1 "http://127.0.0.1:$hello_port/")"; hello1=$rps

start_messages "127.0.0.1:$messages_port"
start_facade "127.0.0.1:$facade_port" --dedup unique \
  --logging-url "http://127.0.0.1:$logging_port" --messages-url "http://127.0.0.1:$messages_port"

use_store memory
row "POST /send_message, memory, c=32" "$hello32" "$(load 32 "$facade/send_message" -s "$work/post.lua")"
row "POST /send_message, memory, c=1" "$hello1" "$(load 1 "$facade/send_message" -s "$work/post.lua")"
use_store "sqlite:$work/bench.sqlite3"
row "POST /send_message, SQLite, c=32" "$hello32" "$(load 32 "$facade/send_message" -s "$work/post.lua")"
row "POST /send_message, SQLite, c=1" "$hello1" "$(load 1 "$facade/send_message" -s "$work/post.lua")"

use_store memory
fill 9
row "GET /get_messages, 10 stored, c=32" "$hello32" "$(load 32 "$facade/get_messages")"
fill 9990
row "GET /get_messages, 10,000 stored, c=32" "$hello32" "$(load 32 "$facade/get_messages")"
row "  the same with Accept-Encoding: gzip" "$hello32" "$(load 32 "$facade/get_messages" -H 'Accept-Encoding: gzip')"

# The body of a gRPC-web List call for 100 messages after `cursor`, as a Lua string.
list_body() {
  local cursor=$1 bytes=() lua=""
  bytes+=(8)
  while [ "$cursor" -ge 128 ]; do bytes+=($(( (cursor & 127) | 128 ))); cursor=$((cursor >> 7)); done
  bytes+=("$cursor" 16 100)
  lua=$(printf '\\x%02x' 0 0 0 0 "${#bytes[@]}" "${bytes[@]}")
  printf '%s' "$lua"
}
page_rows() {
  local stored=$1 label=$2 cursor=$(( $1 / 2 ))
  "$bin/bench-fill" "$work/list-$stored.sqlite3" "$stored"
  use_store "sqlite:$work/list-$stored.sqlite3"
  row "List page (JSON), $label stored, c=32" "$hello32" \
    "$(load 32 "$facade/api/messages?cursor=$cursor&limit=100")"
  eval "json_$stored=\$rps"
  cat > "$work/list.lua" <<LUA
wrk.method = "POST"
wrk.body = "$(list_body "$cursor")"
wrk.headers["Content-Type"] = "application/grpc-web+proto"
wrk.headers["X-Grpc-Web"] = "1"
LUA
  row "List page (gRPC-web), $label stored, c=32" "$hello32" \
    "$(load 32 "$facade/msglog.v1.MessageLog/List" -s "$work/list.lua")"
  eval "grpc_$stored=\$rps"
}
page_rows 1000 "1,000"
page_rows 1000000 "1,000,000"
memory="facade $(rss_mb "$facade_pid") MB, messages $(rss_mb "$messages_pid") MB, logging (SQLite, 1,000,000 messages) $(rss_mb "$logging_pid") MB"

# Redis (installed if missing), every write fsynced as scripts/run.sh runs it: POSTs through
# one logging replica on it, then through three with the facade balancing across them.
scripts/setup.sh redis >&2
redis_port=$((BASE_PORT + 4))
start_redis "$redis_port" "$work/redis"
use_store "redis://127.0.0.1:$redis_port"
row "POST /send_message, Redis, 1 replica, c=32" "$hello32" "$(load 32 "$facade/send_message" -s "$work/post.lua")"
urls="http://127.0.0.1:$logging_port"
for n in 5 6; do
  start_logging "127.0.0.1:$((BASE_PORT + n))" --store "redis://127.0.0.1:$redis_port" --dedup-by id
  urls+=",http://127.0.0.1:$((BASE_PORT + n))"
done
stop "$facade_pid"
start_facade "127.0.0.1:$facade_port" --dedup unique \
  --logging-url "$urls" --messages-url "http://127.0.0.1:$messages_port"
row "POST /send_message, Redis, 3 replicas, c=32" "$hello32" "$(load 32 "$facade/send_message" -s "$work/post.lua")"

echo
echo "one run, ${DURATION} s per row after a 2 s warm-up, wrk with $THREADS threads; $(nproc) cores, shared by all"
printf '%-44s %10s %8s %8s %7s %10s\n' scenario "requests/s" "p50 ms" "p99 ms" errors "of hello"
# (each row against the hello server at its own concurrency)
printf '%s\n' "${rows[@]}"
echo "resident memory after the load (before the Redis rows): $memory"
awk -v j1="$json_1000" -v j2="$json_1000000" -v g1="$grpc_1000" -v g2="$grpc_1000000" 'BEGIN {
  printf "a page at 1,000,000 stored costs %.2fx the same page at 1,000 (JSON), %.2fx (gRPC-web)\n", j1 / j2, g1 / g2 }'
