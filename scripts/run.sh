#!/usr/bin/env bash
# Builds and starts the three services, prints where they listen, and stops them all on
# Ctrl-C (or when any of them exits).
#
# Settings pass through the environment (see README), e.g.:
#   FACADE_ADDR=127.0.0.1:9000 scripts/run.sh
#   PROFILE=dev scripts/run.sh      # debug build instead of release
#   RUST_LOG=debug scripts/run.sh   # every retry attempt and request in detail
#   SKIP_PAGE=1 scripts/run.sh      # services only, without installing tools or building the page
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PROFILE=${PROFILE:-release}
export FACADE_ADDR=${FACADE_ADDR:-0.0.0.0:8080}
export LOGGING_ADDR=${LOGGING_ADDR:-0.0.0.0:8081}
export MESSAGES_ADDR=${MESSAGES_ADDR:-0.0.0.0:8082}
# Logging's admin port: its Prometheus metrics at /metrics.
export LOGGING_ADMIN_ADDR=${LOGGING_ADMIN_ADDR:-127.0.0.1:9081}
port() { echo "${1##*:}"; }
export LOGGING_URL=${LOGGING_URL:-http://127.0.0.1:$(port "$LOGGING_ADDR")}
export MESSAGES_URL=${MESSAGES_URL:-http://127.0.0.1:$(port "$MESSAGES_ADDR")}
# The page served by the facade may call logging over gRPC-web.
export LOGGING_CORS_ORIGINS=${LOGGING_CORS_ORIGINS:-http://localhost:$(port "$FACADE_ADDR"),http://127.0.0.1:$(port "$FACADE_ADDR")}

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install Rust with rustup (https://rustup.rs)" >&2
  exit 1
fi
if ! command -v curl >/dev/null 2>&1; then
  echo "curl is missing (needed to check the services are up): apt-get install curl" >&2
  exit 1
fi

# The page: tools first (skipped when present; the first time takes several minutes), then a
# release build into frontend/dist, which the facade serves. SKIP_PAGE=1 skips both.
if [ "${SKIP_PAGE:-0}" != 1 ]; then
  scripts/setup.sh page
  echo "==> building the page (trunk build --release)"
  trunk build --release
fi

echo "==> building the services ($PROFILE)"
cargo build --locked --profile "$PROFILE" --bin logging-service --bin messages-service --bin facade-service
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ "$PROFILE" = dev ] && bin_dir="$target_dir/debug" || bin_dir="$target_dir/$PROFILE"

pids=()
stop_all() {
  trap - INT TERM EXIT
  if [ ${#pids[@]} -gt 0 ]; then
    echo
    echo "==> stopping the services"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
on_signal() { stop_all; exit 0; }
trap on_signal INT TERM
trap stop_all EXIT

"$bin_dir/logging-service" & pids+=($!)
"$bin_dir/messages-service" & pids+=($!)
"$bin_dir/facade-service" & pids+=($!)

# Ready when each service answers: messages and the facade on /healthz, logging to a gRPC
# health check sent over gRPC-web (an empty HealthCheckRequest frame).
wait_healthy() {
  local url=$1; shift
  for _ in $(seq 1 100); do
    printf '\x00\x00\x00\x00\x00' \
      | curl -fsS -o /dev/null --max-time 1 "$@" "$url" 2>/dev/null && return 0
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null || { echo "a service exited during start-up" >&2; return 1; }
    done
    sleep 0.1
  done
  echo "$url did not answer within 10 s" >&2
  return 1
}
wait_healthy "http://127.0.0.1:$(port "$LOGGING_ADDR")/grpc.health.v1.Health/Check" \
  -X POST -H 'content-type: application/grpc-web+proto' --data-binary @-
wait_healthy "http://127.0.0.1:$(port "$MESSAGES_ADDR")/healthz"
wait_healthy "http://127.0.0.1:$(port "$FACADE_ADDR")/healthz"

cat <<INFO

  page      http://localhost:$(port "$FACADE_ADDR")/   <- open this in a browser
  facade    http://localhost:$(port "$FACADE_ADDR")   (POST /send_message, GET /get_messages, /api/;
                                   gRPC and gRPC-web: msglog.v1.MessageLog)
  logging   grpc://localhost:$(port "$LOGGING_ADDR")  (gRPC and gRPC-web;
                                   metrics at http://localhost:$(port "$LOGGING_ADMIN_ADDR")/metrics)
  messages  http://localhost:$(port "$MESSAGES_ADDR")   (GET /get_message)

  Try:  scripts/test_requests_post.sh "hello"  and  scripts/test_requests_get.sh
  Ctrl-C stops all three.

INFO

# Runs until Ctrl-C (handled by on_signal), or until a service exits: then the EXIT trap
# stops the other two.
set +e
wait -n "${pids[@]}"
status=$?
echo "a service exited (status $status); stopping the others" >&2
exit "$status"
