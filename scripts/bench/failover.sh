#!/usr/bin/env bash
# Measures what a client of the facade sees when logging fails: how long a POST takes to
# fail with logging down or hung, how the retry budget shortens later failures, and whether
# the first POST after logging comes back succeeds. Prints one line per figure.
#
# Uses its own ports (FAILOVER_BASE_PORT, default 18080..18082) and the release build, set up
# as every bench is (scripts/bench/lib.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

. scripts/bench/lib.sh
BENCH_BASE_PORT=${FAILOVER_BASE_PORT:-18080} bench_ports 18080
require_curl
command -v python3 >/dev/null 2>&1 || { echo "python3 is missing" >&2; exit 1; }
build_services
bench_workdir
data=$work
facade_up() {
  start_facade "127.0.0.1:$facade_port" \
    --logging-url "http://127.0.0.1:$logging_port" --messages-url "http://127.0.0.1:$messages_port"
}
logging_up() { start_logging "127.0.0.1:$logging_port" --data-dir "$data"; }
post() { # label text
  curl -s -o "$work/answer" -w '%{http_code} %{time_total}\n' -X POST \
    "http://127.0.0.1:$facade_port/send_message" -H 'content-type: application/json' \
    -d "{\"message\": \"$2\"}" | {
      read -r code seconds
      printf '%-46s HTTP %s in %6.1f ms  %s\n' "$1" "$code" "$(echo "$seconds * 1000" | bc -l 2>/dev/null || python3 -c "print($seconds*1000)")" "$(cat "$work/answer")"
    }
}

start_messages "127.0.0.1:$messages_port"

echo "== logging down (connection refused)"
facade_up
for i in 1 2 3 4; do post "POST $i" "down-$i"; done

echo "== logging comes back"
logging_up
post "first POST after logging started" "back"
post "the same text again" "back"

echo "== logging restarted (stopped, then started on the same port)"
stop "$logging_pid"
logging_up
post "first POST after the restart" "after-restart"

echo "== logging hung (port open, never answers); fresh facade, full retry budget"
stop "$logging_pid" "$facade_pid"
python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $logging_port)); s.listen(128); time.sleep(60)" & pids+=($!)
# Listening once a connection is accepted into its backlog.
for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$logging_port") 2>/dev/null && break; sleep 0.05; done
facade_up
for i in 1 2 3; do post "POST $i" "hung-$i"; done
