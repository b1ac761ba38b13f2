#!/usr/bin/env bash
# Two builds of the facade against each other: POST /send_message at concurrency 32 on the
# memory store, build A then build B, in RUNS alternating pairs, each pair after one
# measurement of the bare hello server, so both builds meet the same machine. Prints one line
# per pair (hello, A, B, B against A) and the median of B against A.
#
#   scripts/bench/ab.sh A_BIN_DIR B_BIN_DIR            # 5 pairs, 8 s per measurement
#   RUNS=7 DURATION=10 scripts/bench/ab.sh /tmp/before target/release
#
# Each directory holds a facade-service binary (copy one aside before rebuilding, to keep it);
# logging, messages and the hello server are those of the current release build. Uses wrk
# (Debian package; installed if missing) and ports BENCH_BASE_PORT..+3 (default 19280..19283).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

[ $# -eq 2 ] || { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
a_facade=$1/facade-service; b_facade=$2/facade-service
for f in "$a_facade" "$b_facade"; do [ -x "$f" ] || { echo "no facade-service in ${f%/*}" >&2; exit 2; }; done

RUNS=${RUNS:-5}
DURATION=${DURATION:-8}

. scripts/bench/lib.sh
bench_start 19280 bench-hello

# Requests/s of wrk at concurrency 32 for DURATION after a 2 s warm-up.
rate() {
  wrk -t2 -c32 -d2s "$@" >/dev/null
  wrk -t2 -c32 -d"${DURATION}s" "$@" | awk '/^Requests\/sec:/ { print $2 }'
}

# Starts facade build $1, measures its POSTs, stops it; prints "requests/s resident_MB".
post_rate() {
  bin=${1%/*} start_facade "127.0.0.1:$facade_port" --dedup unique \
    --logging-url "http://127.0.0.1:$logging_port" --messages-url "http://127.0.0.1:$messages_port" >&2
  local r; r=$(rate -s "$work/post.lua" "$facade/send_message")
  echo "$r $(rss_mb "$facade_pid")"
  stop "$facade_pid"
}

start_hello "$hello_port"
start_logging "127.0.0.1:$logging_port" --store memory --dedup-by id
start_messages "127.0.0.1:$messages_port"

printf '%-5s %10s %10s %8s %10s %8s %9s\n' pair hello "A req/s" "A MB" "B req/s" "B MB" "B vs A"
ratios=()
for pair in $(seq 1 "$RUNS"); do
  hello=$(rate "http://127.0.0.1:$hello_port/")
  read -r a a_mb <<<"$(post_rate "$a_facade")"
  read -r b b_mb <<<"$(post_rate "$b_facade")"
  [ -n "$a" ] && [ -n "$b" ] || { echo "a facade build did not come up" >&2; exit 1; }
  ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%+.1f", 100 * (b / a - 1) }')
  ratios+=("$ratio")
  awk -v p="$pair" -v h="$hello" -v a="$a" -v am="$a_mb" -v b="$b" -v bm="$b_mb" -v r="$ratio" \
    'BEGIN { printf "%-5s %10.0f %10.0f %8s %10.0f %8s %8s %%\n", p, h, a, am, b, bm, r }'
done
printf '%s\n' "${ratios[@]}" | sort -g | awk '{ v[NR] = $1 } END {
  m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
  printf "B against A, POST c=32 on memory: median %+.1f %% over %d pairs (from %+.1f to %+.1f %%)\n", m, NR, v[1], v[NR] }'
