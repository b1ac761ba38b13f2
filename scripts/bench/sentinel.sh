#!/usr/bin/env bash
# What a replicated store costs and what it buys, in one run:
#   - POST /send_message at concurrency 32 (wrk; every POST a new message) through one logging
#     on SQLite, on a single Redis, and on a replicated Redis found through Sentinel (a primary
#     and two replicas, each write acknowledged once a replica holds it), then through three
#     logging replicas on the replicated Redis; every store fsyncs each write;
#   - the failover, RUNS times (default 5): a fresh replicated Redis (sentinels calling a server
#     down after 500 ms, as the tests do), three logging replicas and two facades, 16 clients
#     POSTing through both; the primary killed (SIGKILL) after 2 s; then the time from the kill
#     to the first POST sent after it and answered 200, the POSTs answered 200 and not, and,
#     read back from the new primary, how many acknowledged messages are missing or stored
#     twice (both must be 0).
#
#   scripts/bench/sentinel.sh
#   DURATION=30 RUNS=10 scripts/bench/sentinel.sh
#
# Uses wrk and redis-server (Debian packages; installed if missing), python3, the release build,
# and ports BENCH_BASE_PORT..+32 (default 20080..20112).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

DURATION=${DURATION:-10}
RUNS=${RUNS:-5}

. scripts/bench/lib.sh
bench_start 20080 bench-hello
command -v python3 >/dev/null 2>&1 || { echo "python3 is missing" >&2; exit 1; }
scripts/setup.sh redis >&2

# Runs wrk at concurrency 32 for DURATION after a 2 s warm-up; prints "rps p50_ms p99_ms errors".
load32() {
  wrk -t2 -c32 -d2s "$@" >/dev/null
  wrk -t2 -c32 -d"${DURATION}s" --latency "$@" > "$work/wrk.txt"
  wrk_figures "$work/wrk.txt"
}
rows=()
row() {
  local name=$1 p50 p99 errors
  read -r rps p50 p99 errors <<<"$2"
  rows+=("$(awk -v n="$name" -v r="$rps" -v a="$p50" -v b="$p99" -v e="$errors" -v h="${hello:-$rps}" \
    'BEGIN { printf "%-52s %10.0f %8.2f %8.2f %7d %7.1f %%", n, r, a, b, e, 100 * r / h }')")
}

start_hello "$hello_port"
row "hello (the limit of one HTTP hop)" "$(load32 "http://127.0.0.1:$hello_port/")"
hello=$rps
stop "$hello_pid"
start_messages "127.0.0.1:$messages_port"

# POSTs through a facade on the logging replicas at PORT... (each on STORE), fresh.
through() { # STORE PORT...
  local store=$1 urls="" port
  shift
  logging_pids=()
  for port in "$@"; do
    start_logging "127.0.0.1:$port" --store "$store" --dedup-by id
    logging_pids+=("$logging_pid")
    urls+="${urls:+,}http://127.0.0.1:$port"
  done
  start_facade "127.0.0.1:$facade_port" --dedup unique \
    --logging-url "$urls" --messages-url "http://127.0.0.1:$messages_port"
  wait_post "$facade"
  load32 -s "$work/post.lua" "$facade/send_message"
  stop "$facade_pid" "${logging_pids[@]}"
}

row "POST /send_message, SQLite, c=32" "$(through "sqlite:$work/messages.sqlite3" "$logging_port")"
start_redis $((BASE_PORT + 4)) "$work/redis"
row "POST /send_message, Redis, c=32" "$(through "redis://127.0.0.1:$((BASE_PORT + 4))" "$logging_port")"
stop "$redis_pid"
redis_base=$((BASE_PORT + 10)) sentinel_base=$((BASE_PORT + 20))
sentinels="127.0.0.1:$sentinel_base,127.0.0.1:$((sentinel_base + 1)),127.0.0.1:$((sentinel_base + 2))"
SENTINEL_DOWN_AFTER_MS=500 start_redis_replicated "$redis_base" "$sentinel_base" "$work/replicated"
row "POST /send_message, replicated Redis, c=32" \
  "$(through "redis-sentinel://$sentinels/msglog" "$logging_port")"
row "POST /send_message, replicated Redis, 3 replicas, c=32" \
  "$(through "redis-sentinel://$sentinels/msglog" "$logging_port" $((BASE_PORT + 5)) $((BASE_PORT + 6)))"
stop_services
pids=()

# One failover run: prints "seconds_to_recover acknowledged failed missing doubled".
failover_run() {
  local dir=$work/run-$1 second_facade=$((BASE_PORT + 7)) urls="" port
  SENTINEL_DOWN_AFTER_MS=500 start_redis_replicated "$redis_base" "$sentinel_base" "$dir"
  for port in "$logging_port" $((BASE_PORT + 5)) $((BASE_PORT + 6)); do
    start_logging "127.0.0.1:$port" --store "redis-sentinel://$sentinels/msglog"
    urls+="${urls:+,}http://127.0.0.1:$port"
  done
  start_messages "127.0.0.1:$messages_port"
  for port in "$facade_port" "$second_facade"; do
    start_facade "127.0.0.1:$port" --logging-url "$urls" \
      --messages-url "http://127.0.0.1:$messages_port" --logging-health-ms 50
  done
  python3 - "$facade" "http://127.0.0.1:$second_facade" "${redis_pids[0]}" "$1" <<'PY'
import http.client, json, os, signal, sys, threading, time, urllib.parse
first, second, primary, run = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
lock = threading.Lock()
outcomes = []          # (text, status, sent, answered)
stop = threading.Event()
killed = [None]

def post(base, text):
    url = urllib.parse.urlparse(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        connection.request("POST", "/send_message", json.dumps({"message": text}),
                           {"content-type": "application/json"})
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()

def worker(n):
    i = 0
    while not stop.is_set():
        text = f"run {run} client {n} message {i}"
        sent = time.monotonic()
        status = post(first if (n + i) % 2 == 0 else second, text)
        with lock:
            outcomes.append((text, status, sent, time.monotonic()))
        i += 1

threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
for thread in threads:
    thread.start()
time.sleep(2)
killed[0] = time.monotonic()
os.kill(primary, signal.SIGKILL)
# Until POSTs sent after the kill have succeeded for a second, or 30 s.
deadline = killed[0] + 30
while time.monotonic() < deadline:
    with lock:
        recovered = [answered for (_, status, sent, answered) in outcomes
                     if status == 200 and sent > killed[0]]
    if recovered and time.monotonic() - min(recovered) > 1:
        break
    time.sleep(0.1)
stop.set()
for thread in threads:
    thread.join()
acknowledged = {text for (text, status, _, _) in outcomes if status == 200}
failed = sum(1 for (_, status, _, _) in outcomes if status != 200)
recovered = [answered for (_, status, sent, answered) in outcomes if status == 200 and sent > killed[0]]
url = urllib.parse.urlparse(first)
connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
connection.request("GET", "/get_messages")
stored = json.loads(connection.getresponse().read())["logged_messages"]
missing = len(acknowledged - set(stored))
doubled = len(stored) - len(set(stored))
print(f"{min(recovered) - killed[0] if recovered else float('nan'):.2f} {len(acknowledged)} {failed} {missing} {doubled}")
PY
  stop_services
  pids=()
}

failovers=()
for run in $(seq 1 "$RUNS"); do
  failovers+=("$(failover_run "$run")")
done

echo
echo "one run, ${DURATION} s per row after a 2 s warm-up, wrk -t2 -c32; $(nproc) cores, shared by all (Redis and its replicas and sentinels too)"
printf '%-52s %10s %8s %8s %7s %9s\n' scenario "requests/s" "p50 ms" "p99 ms" errors "of hello"
printf '%s\n' "${rows[@]}"
echo
echo "failover: the Redis primary killed under load (16 clients, two facades, three logging replicas)"
printf '%-6s %22s %14s %12s %9s %9s\n' run "kill to a 200 (s)" acknowledged "not 200" missing doubled
n=0
for line in "${failovers[@]}"; do
  n=$((n + 1))
  read -r seconds acked failed missing doubled <<<"$line"
  printf '%-6s %22s %14s %12s %9s %9s\n' "$n" "$seconds" "$acked" "$failed" "$missing" "$doubled"
done
printf '%s\n' "${failovers[@]}" | sort -n | awk '{ s[NR] = $1; m += $4; d += $5 }
  END { printf "median kill to a 200: %s s over %d runs; acknowledged but missing: %d, stored twice: %d\n",
        s[int((NR + 1) / 2)], NR, m, d }'
