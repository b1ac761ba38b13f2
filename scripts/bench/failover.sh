#!/usr/bin/env bash
# Measures what a client of the facade sees when logging fails: how long a POST takes to
# fail with logging down or hung, how the retry budget shortens later failures, and whether
# the first POST after logging comes back succeeds. Prints one line per figure.
#
# Uses its own ports (FAILOVER_BASE_PORT, default 18080..18082) and the release build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

BASE_PORT=${FAILOVER_BASE_PORT:-18080}
PROFILE=${PROFILE:-release}
facade_port=$BASE_PORT; logging_port=$((BASE_PORT + 1)); messages_port=$((BASE_PORT + 2))
for tool in cargo curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is missing" >&2; exit 1; }
done

cargo build --locked --profile "$PROFILE" --bin logging-service --bin messages-service --bin facade-service >&2
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ "$PROFILE" = dev ] && bin="$target_dir/debug" || bin="$target_dir/$PROFILE"

pids=()
data=$(mktemp -d)
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT
export RUST_LOG=${RUST_LOG:-error}

wait_for() { # url
  for _ in $(seq 1 100); do curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "$1 did not come up" >&2; exit 1
}
start_facade() {
  "$bin/facade-service" --addr "127.0.0.1:$facade_port" \
    --logging-url "http://127.0.0.1:$logging_port" --messages-url "http://127.0.0.1:$messages_port" &
  facade_pid=$!; pids+=("$facade_pid")
  wait_for "http://127.0.0.1:$facade_port/healthz"
}
start_logging() {
  "$bin/logging-service" --addr "127.0.0.1:$logging_port" --data-dir "$data" & logging_pid=$!; pids+=("$logging_pid")
}
post() { # label text
  curl -s -o /tmp/failover.$$ -w '%{http_code} %{time_total}\n' -X POST \
    "http://127.0.0.1:$facade_port/send_message" -H 'content-type: application/json' \
    -d "{\"message\": \"$2\"}" | {
      read -r code seconds
      printf '%-46s HTTP %s in %6.1f ms  %s\n' "$1" "$code" "$(echo "$seconds * 1000" | bc -l 2>/dev/null || python3 -c "print($seconds*1000)")" "$(cat /tmp/failover.$$)"
    }
}

"$bin/messages-service" --addr "127.0.0.1:$messages_port" & pids+=($!)
wait_for "http://127.0.0.1:$messages_port/healthz"

echo "== logging down (connection refused)"
start_facade
for i in 1 2 3 4; do post "POST $i" "down-$i"; done

echo "== logging comes back"
start_logging
wait_for_logging() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$logging_port") 2>/dev/null && return 0; sleep 0.05
  done
}
wait_for_logging
post "first POST after logging started" "back"
post "the same text again" "back"

echo "== logging restarted (stopped, then started on the same port)"
kill -TERM "$logging_pid"; wait "$logging_pid" 2>/dev/null || true
start_logging; wait_for_logging
post "first POST after the restart" "after-restart"

echo "== logging hung (port open, never answers); fresh facade, full retry budget"
kill -TERM "$logging_pid" "$facade_pid"; wait "$logging_pid" "$facade_pid" 2>/dev/null || true
python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $logging_port)); s.listen(128); time.sleep(60)" & pids+=($!)
wait_for_logging
start_facade
for i in 1 2 3; do post "POST $i" "hung-$i"; done
rm -f /tmp/failover.$$
