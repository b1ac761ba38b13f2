#!/usr/bin/env bash
# What HTTPS costs: POST /send_message at concurrency 32 (wrk: HTTP/1.1 with keep-alive, so
# one handshake per connection) on the facade's plain port and on its HTTPS port, in the same
# run, RUNS times each, alternating; prints each run and the medians. Logging on memory, so
# the store does not hide the cost; every POST a new message (--dedup unique).
#
#   scripts/bench/tls.sh                  # RUNS=3, DURATION=10 s
#   RUNS=5 DURATION=8 scripts/bench/tls.sh
#
# Uses wrk (Debian package; installed if missing), openssl (scripts/dev_cert.sh), the release
# build, and ports BENCH_BASE_PORT..+4 (default 19180..19184).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

DURATION=${DURATION:-10}
RUNS=${RUNS:-3}

. scripts/bench/lib.sh
bench_start 19180
tls_port=$((BASE_PORT + 4))
scripts/dev_cert.sh "$work/tls"

start_logging "127.0.0.1:$logging_port" --store memory --dedup-by id
start_facade "127.0.0.1:$facade_port" --dedup unique \
  --tls-addr "127.0.0.1:$tls_port" --tls-cert "$work/tls/cert.pem" --tls-key "$work/tls/key.pem" \
  --logging-url "http://127.0.0.1:$logging_port" --messages-url "http://127.0.0.1:$messages_port"
wait_post "$facade"
wait_post "https://localhost:$tls_port"

# Runs wrk (2 threads, 32 connections) for DURATION after a 2 s warm-up; prints "rps p50_ms p99_ms".
load() {
  wrk -t2 -c32 -d2s -s "$work/post.lua" "$1/send_message" >/dev/null
  wrk -t2 -c32 -d"${DURATION}s" --latency -s "$work/post.lua" "$1/send_message" > "$work/wrk.txt"
  read -r rps p50 p99 errors <<<"$(wrk_figures "$work/wrk.txt")"
  [ "$errors" -eq 0 ] || { echo "$errors errors during the run" >&2; exit 1; }
  echo "$rps $p50 $p99"
}

printf '%-6s %-8s %10s %8s %8s\n' run door 'req/s' 'p50 ms' 'p99 ms'
for run in $(seq 1 "$RUNS"); do
  for door in http https; do
    if [ "$door" = http ]; then url=$facade; else url=https://localhost:$tls_port; fi
    read -r rps p50 p99 <<<"$(load "$url")"
    printf '%-6s %-8s %10.0f %8.2f %8.2f\n' "$run" "$door" "$rps" "$p50" "$p99"
    echo "$door $rps $p50 $p99" >> "$work/all.txt"
  done
done
echo
awk '
  { n[$1]++; rps[$1, n[$1]] = $2; p50[$1, n[$1]] = $3; p99[$1, n[$1]] = $4 }
  function median(a, door, count,   i, j, t, v) {
    for (i = 1; i <= count; i++) v[i] = a[door, i]
    for (i = 1; i <= count; i++) for (j = i + 1; j <= count; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return count % 2 ? v[(count + 1) / 2] : (v[count / 2] + v[count / 2 + 1]) / 2
  }
  END {
    for (door in n) { r[door] = median(rps, door, n[door]); a[door] = median(p50, door, n[door]); b[door] = median(p99, door, n[door]) }
    printf "medians of %d runs, POST c=32:\n", n["http"]
    printf "  http   %8.0f req/s  p50 %.2f ms  p99 %.2f ms\n", r["http"], a["http"], b["http"]
    printf "  https  %8.0f req/s  p50 %.2f ms  p99 %.2f ms\n", r["https"], a["https"], b["https"]
    printf "  HTTPS serves %.1f %% of the plain port'"'"'s requests/s\n", 100 * r["https"] / r["http"]
  }
' "$work/all.txt"
