#!/usr/bin/env bash
# Builds and starts the three services, prints where they listen, and stops them all on
# Ctrl-C (or when any of them exits).
#
# Settings pass through the environment (see README), e.g.:
#   FACADE_ADDR=127.0.0.1:9000 scripts/run.sh
#   PROFILE=dev scripts/run.sh      # debug build instead of release
#   RUST_LOG=debug scripts/run.sh   # every retry attempt and request in detail
#   SKIP_PAGE=1 scripts/run.sh      # services only, without installing tools or building the page
#   MSGLOG_TLS=1 scripts/run.sh     # the facade on HTTPS too (https://localhost:8443/, HTTP/2),
#                                   # with a certificate made for this machine in data/tls
#                                   # (or FACADE_TLS_CERT and FACADE_TLS_KEY of your own)
#   LOGGING_REPLICAS=3 LOGGING_STORE=redis scripts/run.sh
#                                   # Redis (installed if missing; its data in data/redis, or
#                                   # LOGGING_DATA_DIR/redis) and three logging replicas on it
#                                   # (:8081, :8084, :8085), the facade balancing across them;
#                                   # LOGGING_REPLICA_BASE_PORT=N moves replica n to port N+n
#                                   # (its admin port to N+1000+n)
#   LOGGING_STORE=redis-sentinel scripts/run.sh
#                                   # no single machine to lose: a replicated Redis (a primary on
#                                   # :6379, replicas on :6380 and :6381, three sentinels on
#                                   # :26379-26381; REDIS_PORT and SENTINEL_PORT move them), three
#                                   # logging replicas on it and two facades (:8080 and :8090;
#                                   # FACADES=N for more, facade n on FACADE_REPLICA_BASE_PORT+n,
#                                   # default 8088+n); prints what to kill to see a failover
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PROFILE=${PROFILE:-release}
export FACADE_ADDR=${FACADE_ADDR:-0.0.0.0:8080}
# Logging serves the facade, not the public: loopback (to open it wider, give it a token with
# LOGGING_TOKEN_FILE, which the facade reads too).
export LOGGING_ADDR=${LOGGING_ADDR:-127.0.0.1:8081}
export MESSAGES_ADDR=${MESSAGES_ADDR:-0.0.0.0:8082}
# Logging's admin port: its Prometheus metrics at /metrics.
export LOGGING_ADMIN_ADDR=${LOGGING_ADMIN_ADDR:-127.0.0.1:9081}
port() { echo "${1##*:}"; }
REDIS_PORT=${REDIS_PORT:-6379}
SENTINEL_PORT=${SENTINEL_PORT:-26379}
if [ "${LOGGING_STORE:-}" = redis-sentinel ]; then
  export LOGGING_STORE=redis-sentinel://127.0.0.1:$SENTINEL_PORT,127.0.0.1:$((SENTINEL_PORT + 1)),127.0.0.1:$((SENTINEL_PORT + 2))/msglog
  start_redis=replicated
  LOGGING_REPLICAS=${LOGGING_REPLICAS:-3}
  FACADES=${FACADES:-2}
fi
LOGGING_REPLICAS=${LOGGING_REPLICAS:-1}
FACADES=${FACADES:-1}
FACADE_REPLICA_BASE_PORT=${FACADE_REPLICA_BASE_PORT:-8088}
case "$LOGGING_REPLICAS" in ''|*[!0-9]*|0) echo "LOGGING_REPLICAS must be a number from 1" >&2; exit 1 ;; esac
case "$FACADES" in ''|*[!0-9]*|0) echo "FACADES must be a number from 1" >&2; exit 1 ;; esac
if [ "${LOGGING_STORE:-}" = redis ]; then
  export LOGGING_STORE=redis://127.0.0.1:$REDIS_PORT
  start_redis=1
fi
if [ "$LOGGING_REPLICAS" -gt 1 ] && [[ "${LOGGING_STORE:-}" != redis://* && "${LOGGING_STORE:-}" != redis-sentinel://* ]]; then
  echo "several logging replicas need a store they share: add LOGGING_STORE=redis" >&2
  exit 1
fi
# Replica 1 on LOGGING_ADDR (the original's port), replica n on port LOGGING_REPLICA_BASE_PORT+n
# (default 8082+n: 8084, 8085, ...), its admin port 1000 above it (9084, 9085, ...).
LOGGING_REPLICA_BASE_PORT=${LOGGING_REPLICA_BASE_PORT:-8082}
replica_port() { [ "$1" -eq 1 ] && port "$LOGGING_ADDR" || echo $((LOGGING_REPLICA_BASE_PORT + $1)); }
replica_admin_port() { [ "$1" -eq 1 ] && port "$LOGGING_ADMIN_ADDR" || echo $((LOGGING_REPLICA_BASE_PORT + 1000 + $1)); }
if [ -z "${LOGGING_URL:-}" ]; then
  LOGGING_URL=""
  for n in $(seq 1 "$LOGGING_REPLICAS"); do
    LOGGING_URL+="${LOGGING_URL:+,}http://127.0.0.1:$(replica_port "$n")"
  done
fi
export LOGGING_URL
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

[ -z "${start_redis:-}" ] || scripts/setup.sh redis

if [ "${MSGLOG_TLS:-0}" = 1 ] && [ -z "${FACADE_TLS_CERT:-}" ]; then
  scripts/dev_cert.sh data/tls
  export FACADE_TLS_CERT=$PWD/data/tls/cert.pem FACADE_TLS_KEY=$PWD/data/tls/key.pem
fi
[ -z "${FACADE_TLS_CERT:-}" ] || export FACADE_TLS_ADDR=${FACADE_TLS_ADDR:-0.0.0.0:8443}

. scripts/services.sh
echo "==> building the services ($PROFILE)"
build_services

pids=()
stop_all() {
  trap - INT TERM EXIT
  if [ ${#pids[@]} -gt 0 ]; then
    echo
    echo "==> stopping the services"
    stop_services
  fi
}
on_signal() { stop_all; exit 0; }
trap on_signal INT TERM
trap stop_all EXIT

# Every Redis write appended to its log and fsynced before Redis answers (docs/operations.md).
case "${start_redis:-}" in
  1) start_redis "$REDIS_PORT" "${LOGGING_DATA_DIR:-data}/redis" ;;
  replicated) start_redis_replicated "$REDIS_PORT" "$SENTINEL_PORT" "${LOGGING_DATA_DIR:-data}/redis" ;;
esac
for n in $(seq 1 "$LOGGING_REPLICAS"); do
  LOGGING_ADMIN_ADDR=${LOGGING_ADMIN_ADDR%:*}:$(replica_admin_port "$n") \
    start_logging "${LOGGING_ADDR%:*}:$(replica_port "$n")"
done
start_messages "$MESSAGES_ADDR"
start_facade "$FACADE_ADDR"
[ -z "${FACADE_TLS_CERT:-}" ] || wait_ready "$facade_pid" "https://localhost:$(port "$FACADE_TLS_ADDR")/healthz" --insecure
# More facades (plain HTTP only), each on the same logging replicas: behind any load balancer.
facade_pids=("$facade_pid")
for n in $(seq 2 "$FACADES"); do
  (
    unset FACADE_TLS_CERT FACADE_TLS_KEY FACADE_TLS_ADDR
    exec "$bin/facade-service" --addr "${FACADE_ADDR%:*}:$((FACADE_REPLICA_BASE_PORT + n))"
  ) &
  pids+=("$!")
  facade_pids+=("$!")
  wait_ready "$!" "http://127.0.0.1:$((FACADE_REPLICA_BASE_PORT + n))/healthz"
done

cat <<INFO

  page      http://localhost:$(port "$FACADE_ADDR")/   <- open this in a browser
$(for n in $(seq 2 "$FACADES"); do echo "            http://localhost:$((FACADE_REPLICA_BASE_PORT + n))/   (facade $n: the same log, live)"; done)
$([ -z "${FACADE_TLS_CERT:-}" ] || echo "            https://localhost:$(port "$FACADE_TLS_ADDR")/  (HTTPS and HTTP/2: every tab on one connection)")
  facade    http://localhost:$(port "$FACADE_ADDR")   (POST /send_message, GET /get_messages, /api/;
                                   gRPC and gRPC-web: msglog.v1.MessageLog)
  logging   $(for n in $(seq 1 "$LOGGING_REPLICAS"); do printf 'grpc://localhost:%s ' "$(replica_port "$n")"; done)(gRPC and gRPC-web;
                                   metrics at http://localhost:$(replica_admin_port 1)/metrics$([ "$LOGGING_REPLICAS" -gt 1 ] && echo ", …"))
                                   store: ${LOGGING_STORE:-SQLite, data/logging.sqlite3}
  messages  http://localhost:$(port "$MESSAGES_ADDR")   (GET /get_message)

  Try:  scripts/test_requests_post.sh "hello"  and  scripts/test_requests_get.sh
$([ "${start_redis:-}" = replicated ] && cat <<FAILOVER

  To see a failover:  kill -9 ${redis_pids[0]}   (the Redis primary, port $REDIS_PORT)
      within a few seconds the sentinels promote a replica, and POSTs succeed again;
      redis-cli -p $SENTINEL_PORT sentinel get-master-addr-by-name msglog   names the new one.
  Or lose a facade (kill -9 ${facade_pids[1]:-}, port $((FACADE_REPLICA_BASE_PORT + 2))) or a logging replica: the rest serve.
FAILOVER
)
  Ctrl-C stops them all.

INFO

# Runs until Ctrl-C (handled by on_signal), or until a service exits: then the EXIT trap
# stops the other two. With a replicated Redis, the parts there are several of (the Redis
# servers and sentinels, the logging replicas, the facades after the first) are there to be
# lost: only the first facade or messages exiting stops the rest.
watched=("${pids[@]}")
[ "${start_redis:-}" != replicated ] || watched=("$messages_pid" "${facade_pids[0]}")
set +e
wait -n "${watched[@]}"
status=$?
echo "a service exited (status $status); stopping the others" >&2
exit "$status"
