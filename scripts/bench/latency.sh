#!/usr/bin/env bash
# One person's message: the latency of a POST at concurrency 1 against the limit of one HTTP
# hop on this machine, in one run, RUNS times over (alternating, so every row meets the same
# machine):
#   - the bare hello server, c=1 (the reference);
#   - two hops and nothing else, c=1 (bench-relay): an HTTP/1.1 server that asks the hello
#     server over HTTP/1.1, and one that makes a one-item LogMessages call to a gRPC server
#     answering at once (the least a POST's two hops cost, over HTTP/1.1 and over gRPC);
#   - the facade's own GET /healthz, c=1 (the facade alone);
#   - POST /send_message, c=1, logging on memory and on SQLite (every POST a new message; on
#     SQLite each is fsynced before its 200);
#   - POST /send_message, c=32, on memory, as a share of hello at c=32 (throughput kept).
# Prints each run's rows and the medians, with the c=1 p50s as multiples of hello's.
#
#   scripts/bench/latency.sh                  # 3 runs, 5 s per row
#   RUNS=5 DURATION=10 scripts/bench/latency.sh
#   BIN_DIR=/tmp/before scripts/bench/latency.sh   # another build's facade and logging
#
# Uses wrk (Debian package; installed if missing), the release build, and ports
# BENCH_BASE_PORT..+6 (default 19380..19386).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

RUNS=${RUNS:-3}
DURATION=${DURATION:-5}

. scripts/bench/lib.sh
bench_start 19380 bench-hello bench-relay
services_bin=${BIN_DIR:-$bin}

# wrk at CONNECTIONS for DURATION after a 1 s warm-up; prints "rps p50_ms p99_ms errors".
load() {
  local connections=$1 threads=1
  shift
  [ "$connections" -lt 2 ] || threads=2
  wrk -t"$threads" -c"$connections" -d1s "$@" >/dev/null
  wrk -t"$threads" -c"$connections" -d"${DURATION}s" --latency "$@" > "$work/wrk.txt"
  wrk_figures "$work/wrk.txt"
}

start_hello "$hello_port"
start_messages "127.0.0.1:$messages_port"
# The two-hop references (bench-relay): a gRPC server answering at once, an HTTP/1.1 server
# calling it, and one asking the hello server.
relay_grpc=$((BASE_PORT + 4)) relay_via_grpc=$((BASE_PORT + 5)) relay_via_http1=$((BASE_PORT + 6))
start_relay() {
  "$bin/bench-relay" "$@" &
  pids+=("$!")
  wait_ready "$!" "http://127.0.0.1:${2##*:}/"
}
"$bin/bench-relay" grpc "127.0.0.1:$relay_grpc" &
pids+=("$!")
start_relay http "127.0.0.1:$relay_via_grpc" "http://127.0.0.1:$relay_grpc"
start_relay http1 "127.0.0.1:$relay_via_http1" "127.0.0.1:$hello_port"
# The facade and logging of the build measured, logging on STORE (fresh).
up() {
  bin=$services_bin start_logging "127.0.0.1:$logging_port" --store "$1" --dedup-by id
  bin=$services_bin start_facade "127.0.0.1:$facade_port" --dedup unique \
    --logging-url "http://127.0.0.1:$logging_port" --messages-url "http://127.0.0.1:$messages_port"
  wait_post "$facade"
}
down() { stop "$facade_pid" "$logging_pid"; }

results=$work/results
: > "$results"
for run in $(seq 1 "$RUNS"); do
  echo "hello_c1 $(load 1 "http://127.0.0.1:$hello_port/")" >> "$results"
  echo "hello_c32 $(load 32 "http://127.0.0.1:$hello_port/")" >> "$results"
  echo "relay_http1_c1 $(load 1 "http://127.0.0.1:$relay_via_http1/")" >> "$results"
  echo "relay_grpc_c1 $(load 1 "http://127.0.0.1:$relay_via_grpc/")" >> "$results"
  up memory
  echo "healthz_c1 $(load 1 "$facade/healthz")" >> "$results"
  echo "post_memory_c1 $(load 1 -s "$work/post.lua" "$facade/send_message")" >> "$results"
  echo "post_memory_c32 $(load 32 -s "$work/post.lua" "$facade/send_message")" >> "$results"
  down
  up "sqlite:$work/run-$run.sqlite3"
  echo "post_sqlite_c1 $(load 1 -s "$work/post.lua" "$facade/send_message")" >> "$results"
  down
  echo "run $run of $RUNS done" >&2
done

echo
echo "$RUNS runs, ${DURATION} s per row after a 1 s warm-up, wrk (1 thread at c=1, 2 at c=32); $(nproc) cores, shared by all"
awk '
  { rps[$1] = rps[$1] " " $2; p50[$1] = p50[$1] " " $3; p99[$1] = p99[$1] " " $4; errors[$1] += $5 }
  function median(list,    n, v, i, j, t) {
    n = split(list, v, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  END {
    n = split("hello_c1 relay_http1_c1 relay_grpc_c1 healthz_c1 post_memory_c1 post_sqlite_c1 hello_c32 post_memory_c32", order, " ")
    name["hello_c1"] = "hello, c=1"; name["healthz_c1"] = "facade GET /healthz, c=1"
    name["relay_http1_c1"] = "two hops: HTTP/1.1 to hello, c=1"; name["relay_grpc_c1"] = "two hops: one gRPC call, c=1"
    name["post_memory_c1"] = "POST /send_message, memory, c=1"; name["post_sqlite_c1"] = "POST /send_message, SQLite, c=1"
    name["hello_c32"] = "hello, c=32"; name["post_memory_c32"] = "POST /send_message, memory, c=32"
    printf "%-36s %11s %9s %9s %7s %14s\n", "median of the runs", "requests/s", "p50 ms", "p99 ms", "errors", "vs hello"
    h1 = median(p50["hello_c1"]); h32 = median(rps["hello_c32"])
    for (i = 1; i <= n; i++) {
      k = order[i]
      vs = ""
      if (k ~ /_c1$/ && k != "hello_c1") vs = sprintf("p50 %.1fx", median(p50[k]) / h1)
      if (k == "post_memory_c32") vs = sprintf("%.1f %% rps", 100 * median(rps[k]) / h32)
      printf "%-36s %11.0f %9.3f %9.3f %7d %14s\n", name[k], median(rps[k]), median(p50[k]), median(p99[k]), errors[k], vs
    }
    printf "POST on SQLite against memory, c=1 p50: %.2fx\n", median(p50["post_sqlite_c1"]) / median(p50["post_memory_c1"])
    printf "POST on memory, c=1 p50, over the two hops of one gRPC call: +%.3f ms\n", median(p50["post_memory_c1"]) - median(p50["relay_grpc_c1"])
  }' "$results"
