#!/usr/bin/env bash
# The same message through each door of the facade, in one run: POST /send_message (the
# original's JSON route), a gRPC-web Send (a 5-byte frame of protobuf) and a Connect Send (a
# POST of JSON), at concurrency 32 with wrk (HTTP/1.1, keep-alive), RUNS times each,
# alternating, after the bare hello server for scale; prints each run and the medians, and
# each door against POST /send_message. Logging on memory, so the store does not hide the
# doors' cost; every request a new message (--dedup unique).
#
#   scripts/bench/doors.sh                  # RUNS=3, DURATION=10 s
#   RUNS=5 DURATION=8 scripts/bench/doors.sh
#
# Uses wrk (Debian package; installed if missing), the release build, and ports
# BENCH_BASE_PORT..+3 (default 19380..19383).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

DURATION=${DURATION:-10}
RUNS=${RUNS:-3}

. scripts/bench/lib.sh
bench_start 19380 bench-hello

TEXT='a benchmark message of a realistic length, sixty-odd bytes'
# A gRPC-web Send: SendRequest { text } (field 1, length-delimited) in one uncompressed frame.
message_len=$(( ${#TEXT} + 2 ))
grpc_web_body=$(printf '\\x%02x' 0 0 0 0 "$message_len" 10 "${#TEXT}")$TEXT
cat > "$work/grpc-web.lua" <<LUA
wrk.method = "POST"
wrk.body = "$grpc_web_body"
wrk.headers["Content-Type"] = "application/grpc-web+proto"
wrk.headers["X-Grpc-Web"] = "1"
LUA
cat > "$work/connect.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"text": "$TEXT"}'
wrk.headers["Content-Type"] = "application/json"
LUA

start_hello "$hello_port"
start_logging "127.0.0.1:$logging_port" --store memory --dedup-by id
start_messages "127.0.0.1:$messages_port"
start_facade "127.0.0.1:$facade_port" --dedup unique \
  --logging-url "http://127.0.0.1:$logging_port" --messages-url "http://127.0.0.1:$messages_port"
wait_post "$facade"

# Each door answers its request as stored before it is measured.
stored() { grep -q "$1" || { echo "a door did not store its message ($2)" >&2; exit 1; }; }
curl -s "$facade/send_message" -H 'content-type: application/json' \
  -d "{\"message\": \"$TEXT\"}" | stored '"status":"success"' "POST /send_message"
curl -s "$facade/msglog.v1.MessageLog/Send" -H 'content-type: application/json' \
  -d "{\"text\": \"$TEXT\"}" | stored SEND_STATUS_STORED "Connect Send"
printf "$grpc_web_body" | curl -s --data-binary @- "$facade/msglog.v1.MessageLog/Send" \
  -H 'content-type: application/grpc-web+proto' -H 'x-grpc-web: 1' | strings \
  | stored 'grpc-status:0' "gRPC-web Send"

# wrk for DURATION after a 2 s warm-up: "rps p50_ms p99_ms"; any error fails the bench.
load() {
  wrk -t2 -c32 -d2s "$@" >/dev/null
  wrk -t2 -c32 -d"${DURATION}s" --latency "$@" > "$work/wrk.txt"
  read -r rps p50 p99 errors <<<"$(wrk_figures "$work/wrk.txt")"
  [ "$errors" -eq 0 ] || { echo "$errors errors during the run" >&2; exit 1; }
  echo "$rps $p50 $p99"
}

printf '%-4s %-18s %10s %8s %8s\n' run door 'req/s' 'p50 ms' 'p99 ms'
for run in $(seq 1 "$RUNS"); do
  for door in hello send_message grpc-web connect; do
    case "$door" in
      hello) figures=$(load "http://127.0.0.1:$hello_port/") ;;
      send_message) figures=$(load -s "$work/post.lua" "$facade/send_message") ;;
      grpc-web) figures=$(load -s "$work/grpc-web.lua" "$facade/msglog.v1.MessageLog/Send") ;;
      connect) figures=$(load -s "$work/connect.lua" "$facade/msglog.v1.MessageLog/Send") ;;
    esac
    read -r rps p50 p99 <<<"$figures"
    printf '%-4s %-18s %10.0f %8.2f %8.2f\n' "$run" "$door" "$rps" "$p50" "$p99"
    echo "$door $rps $p50 $p99" >> "$work/all.txt"
  done
done
echo
awk -v runs="$RUNS" -v cores="$(nproc)" -v duration="$DURATION" '
  { n[$1]++; rps[$1, n[$1]] = $2; p50[$1, n[$1]] = $3; p99[$1, n[$1]] = $4 }
  function median(a, door, count,   i, j, t, v) {
    for (i = 1; i <= count; i++) v[i] = a[door, i]
    for (i = 1; i <= count; i++) for (j = i + 1; j <= count; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return count % 2 ? v[(count + 1) / 2] : (v[count / 2] + v[count / 2 + 1]) / 2
  }
  END {
    printf "medians of %d runs, c=32, %d s each, %d cores shared by all:\n", runs, duration, cores
    split("hello send_message grpc-web connect", doors, " ")
    for (i = 1; i <= 4; i++) {
      d = doors[i]; r = median(rps, d, n[d])
      if (d == "send_message") base = r
      line = sprintf("  %-18s %8.0f req/s  p50 %.2f ms  p99 %.2f ms", (d == "send_message" ? "POST /send_message" : d == "connect" ? "Connect Send" : d == "grpc-web" ? "gRPC-web Send" : "hello (bare)"), r, median(p50, d, n[d]), median(p99, d, n[d]))
      if (i > 2) line = line sprintf("  (%.1f %% of POST /send_message)", 100 * r / base)
      print line
    }
  }
' "$work/all.txt"
