#!/usr/bin/env bash
# POST throughput and latency at a fixed concurrency, for the memory store and the SQLite
# store in the same run, and their ratio. Every POST is a new message (the facade runs with
# --dedup unique), so every one is a real insert (and, with SQLite, a durable one).
#
#   scripts/bench.sh                          # 10 s per store, 32 connections
#   DURATION=30 CONNECTIONS=64 scripts/bench.sh
#
# Uses wrk (Debian package; installed if missing), the release build, and ports
# BENCH_BASE_PORT..+2 (default 19080..19082).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
BASE_PORT=${BENCH_BASE_PORT:-19080}
facade_port=$BASE_PORT; logging_port=$((BASE_PORT + 1)); messages_port=$((BASE_PORT + 2))

command -v curl >/dev/null 2>&1 || { echo "curl is missing: apt-get install curl" >&2; exit 1; }
if ! command -v wrk >/dev/null 2>&1; then
  echo "==> installing wrk (Debian package)" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >/dev/null
fi

cargo build --locked --release --bin logging-service --bin messages-service --bin facade-service >&2
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="$target_dir/release"

work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
export RUST_LOG=${RUST_LOG:-error}

cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"message": "a benchmark message of a realistic length, sixty-odd bytes"}'
wrk.headers["Content-Type"] = "application/json"
LUA

wait_for() {
  for _ in $(seq 1 200); do curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "$1 did not come up" >&2; exit 1
}

"$bin/messages-service" --addr "127.0.0.1:$messages_port" & pids+=($!)
"$bin/facade-service" --addr "127.0.0.1:$facade_port" --dedup unique \
  --logging-url "http://127.0.0.1:$logging_port" --messages-url "http://127.0.0.1:$messages_port" &
pids+=($!)
wait_for "http://127.0.0.1:$facade_port/healthz"

# Runs wrk against the facade with logging on the given store; prints "rps p99_ms errors".
measure() {
  local store=$1
  # Every POST a new message with the same text: logging keys on ids alone, as the facade's
  # --dedup unique needs.
  "$bin/logging-service" --addr "127.0.0.1:$logging_port" --store "$store" --dedup-by id &
  local logging_pid=$!
  for _ in $(seq 1 200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$facade_port/send_message" \
      -H 'content-type: application/json' -d '{"message":"warm-up"}')" = 200 ] && break
    sleep 0.05
  done
  # A short warm-up, then the measured run.
  wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -s "$work/post.lua" "http://127.0.0.1:$facade_port/send_message" >/dev/null
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/post.lua" \
    "http://127.0.0.1:$facade_port/send_message" > "$work/$2.txt"
  kill -TERM "$logging_pid"; wait "$logging_pid" 2>/dev/null || true
  local rps p99 errors
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$work/$2.txt")
  p99=$(awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } print v }' "$work/$2.txt")
  errors=$(awk '/Non-2xx/ { print $NF } /Socket errors/ { print "socket:" $0 }' "$work/$2.txt")
  echo "$rps $p99 ${errors:-0}"
}

read -r mem_rps mem_p99 mem_err < <(measure memory memory)
read -r sql_rps sql_p99 sql_err < <(measure "sqlite:$work/bench.sqlite3" sqlite)
stored=$(sqlite3 "$work/bench.sqlite3" 'select count(*) from messages' 2>/dev/null || echo "?")

echo
echo "POST /send_message, ${CONNECTIONS} connections, ${DURATION} s per store, $(nproc) cores"
printf '%-8s %12s %10s %8s\n' store "requests/s" "p99 ms" errors
printf '%-8s %12.0f %10.2f %8s\n' memory "$mem_rps" "$mem_p99" "$mem_err"
printf '%-8s %12.0f %10.2f %8s\n' sqlite "$sql_rps" "$sql_p99" "$sql_err"
awk -v s="$sql_rps" -v m="$mem_rps" 'BEGIN { printf "sqlite / memory throughput: %.0f %%\n", 100 * s / m }'
[ "$stored" = "?" ] || echo "rows in the SQLite file afterwards: $stored"
