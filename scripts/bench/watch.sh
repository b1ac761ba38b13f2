#!/usr/bin/env bash
# The live feed under load: WATCHERS gRPC-web watchers (one HTTP/1.1 connection each, as
# browsers over plain HTTP; or HTTP2_STREAMS to an HTTP/2 connection) on one facade while RATE
# messages a second are posted for DURATION seconds. Prints the delay from each POST being sent
# to each watcher receiving it (p50, p99, max), whether every watcher got every message once
# and in order, the facade's CPU for the load, and its resident memory (idle, with the watchers
# open, after the load, once it stops falling after they closed, and once newer messages have
# replaced those the facade's feed keeps for watchers), with what its allocator says of it.
#
#   scripts/bench/watch.sh                                  # 1,000 watchers, 200 msg/s, 10 s
#   WATCHERS=200 RATE=50 DURATION=5 scripts/bench/watch.sh
#   PROTOCOL=connect scripts/bench/watch.sh                 # Connect (connect+proto) watchers
#   BIN_DIR=/tmp/before scripts/bench/watch.sh              # another build's facade
#   HTTP2_STREAMS=50 WATCHERS=5000 scripts/bench/watch.sh   # 50 watchers an HTTP/2 connection,
#                                                           # as tabs share one over HTTPS
#
# Uses the release build, logging on the memory store, and ports BENCH_BASE_PORT..+2
# (default 19180..19182).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

WATCHERS=${WATCHERS:-1000}
RATE=${RATE:-200}
SECONDS_POSTING=${DURATION:-10}
PROTOCOL=${PROTOCOL:-grpc-web}
HTTP2_STREAMS=${HTTP2_STREAMS:-0}
# Messages the facade's live feed keeps for watchers (its --watch-buffer).
WATCH_BUFFER=${WATCH_BUFFER:-1000}

. scripts/bench/lib.sh
bench_ports 19180
# A process's CPU time so far (user and system), in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
require_curl
# One socket per watcher on both sides, and the facade's connection cap follows this limit.
ulimit -n "$(( WATCHERS * 2 + 1024 ))" 2>/dev/null || {
  echo "cannot raise the open-file limit to $(( WATCHERS * 2 + 1024 )) (ulimit -Hn: $(ulimit -Hn))" >&2; exit 1; }

build_services watch-bench

bench_workdir

start_logging "127.0.0.1:$logging_port" --store memory
start_messages "127.0.0.1:$messages_port"
bin=${BIN_DIR:-$bin} start_facade "127.0.0.1:$facade_port" --max-connections $(( WATCHERS + 256 )) \
  --watch-buffer "$WATCH_BUFFER" \
  --logging-url "http://127.0.0.1:$logging_port" --messages-url "http://127.0.0.1:$messages_port"
# The live feed connected: the status says so.
for _ in $(seq 1 200); do
  curl -fsS "http://127.0.0.1:$facade_port/api/status" | grep -q '"live":true' && break; sleep 0.05
done
# What the allocator holds (from the facade's /metrics, when it allocates with jemalloc): live
# allocations, the pages holding them, its own bookkeeping.
heap() {
  { curl -fsS "http://127.0.0.1:$facade_port/metrics" || true; } | awk '
    $1 == "allocator_allocated_bytes" { a = $2 } $1 == "allocator_active_bytes" { p = $2 }
    $1 == "allocator_metadata_bytes" { m = $2 }
    END { if (a != "") printf "; the allocator: %.1f MB in live allocations, %.1f MB of pages holding them, %.1f MB of its bookkeeping", a / 1048576, p / 1048576, m / 1048576 }'
}
idle=$(rss_mb "$facade_pid" VmRSS) idle_heap=$(heap)

echo "==> $WATCHERS watchers, $RATE messages/s for ${SECONDS_POSTING} s (machine: $(nproc) cores)"
"$bin/watch-bench" --facade "127.0.0.1:$facade_port" --watchers "$WATCHERS" --rate "$RATE" \
  --protocol "$PROTOCOL" --http2-streams "$HTTP2_STREAMS" --seconds "$SECONDS_POSTING" | while IFS= read -r line; do
  if [ "$line" = READY ]; then
    echo "facade RSS with the watchers open: $(rss_mb "$facade_pid" VmRSS) MB"
    cpu_ticks "$facade_pid" > "$work/cpu.ready"
  else
    echo "$line"
  fi
done
# The facade's CPU from the watchers open to the last delivery, and its share of each delivery.
awk -v from="$(cat "$work/cpu.ready")" -v to="$(cpu_ticks "$facade_pid")" -v hz="$(getconf CLK_TCK)" \
  -v deliveries=$(( RATE * SECONDS_POSTING * WATCHERS )) \
  'BEGIN { s = (to - from) / hz; printf "facade CPU for the load: %.2f s, %.2f us a delivery\n", s, s * 1e6 / deliveries }'
echo "facade RSS: idle ${idle} MB${idle_heap}"
echo "facade RSS after the load $(rss_mb "$facade_pid" VmRSS) MB; peak $(rss_mb "$facade_pid" VmHWM) MB"
# What the facade gives back once the watchers have gone: its RSS each second until it has not
# fallen for SETTLE seconds (default 15: an allocator may give memory back over some seconds),
# for at most 60.
# Sets $lowest and $since (the second of the last fall).
settle() {
  local settle=${SETTLE:-15} second now
  lowest=$(rss_mb "$facade_pid" VmRSS) since=0
  for second in $(seq 1 60); do
    sleep 1
    now=$(rss_mb "$facade_pid" VmRSS)
    if awk -v a="$now" -v b="$lowest" 'BEGIN { exit !(a < b - 0.05) }'; then lowest=$now since=$second; fi
    [ $((second - since)) -lt "$settle" ] || break
  done
}
settle
echo "facade RSS after the watchers closed: $lowest MB (the last fall ${since} s after the load)$(heap)"
# The feed keeps the last WATCH_BUFFER messages of the load, and they hold the pages they were
# allocated among: once as many newer ones have replaced them (posted with no watcher open),
# those pages can go back too.
"$bin/watch-bench" --facade "127.0.0.1:$facade_port" --watchers 0 --rate "$WATCH_BUFFER" --seconds 1 \
  | grep '^posted' >/dev/null
settle
echo "facade RSS after $WATCH_BUFFER newer messages: $lowest MB (the last fall ${since} s after them)$(heap)"
