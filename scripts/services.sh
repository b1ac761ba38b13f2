# How every script builds and starts the services: scripts/run.sh, the benches and the
# failover bench. Sourced, not run.
#
# Each start_* starts one process in the background, adds it to the caller's $pids (the
# caller stops them, e.g. with `stop_services` in its EXIT trap) and returns once the service
# answers; a service that exits first, or does not answer within 10 s, fails the start. Flags
# after the address go to the binary as they are (`--help` lists them); settings in the
# environment (FACADE_*, LOGGING_*, MESSAGES_*) reach it too.
#
#   build_services bench-hello              # the services and an extra binary; sets $bin
#   start_logging 127.0.0.1:8081 --store memory
#   start_messages 127.0.0.1:8082
#   start_facade 127.0.0.1:8080 --logging-url http://127.0.0.1:8081
#   start_redis 6379 data/redis

# build_services [EXTRA_BIN...]: builds logging, messages and the facade (and the named extra
# binaries of the workspace) with cargo's profile $PROFILE (default release); sets $bin to the
# directory that holds them.
build_services() {
  local profile=${PROFILE:-release} extra=() name target_dir
  for name in "$@"; do extra+=(--bin "$name"); done
  cargo build --locked --profile "$profile" \
    --bin logging-service --bin messages-service --bin facade-service "${extra[@]}" >&2
  target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  [ "$profile" = dev ] && bin=$target_dir/debug || bin=$target_dir/$profile
}

# local_url ADDR: where this machine reaches a service listening on ADDR (0.0.0.0:8080 too).
local_url() { echo "http://127.0.0.1:${1##*:}"; }

# wait_ready PID URL [CURL_ARGS...]: waits until URL answers with a 2xx status, while process
# PID lives; up to 10 s. An empty gRPC frame is on curl's stdin, for CURL_ARGS that post it.
wait_ready() {
  local pid=$1 url=$2
  shift 2
  for _ in $(seq 1 200); do
    printf '\x00\x00\x00\x00\x00' \
      | curl -fsS -o /dev/null --max-time 1 "$@" "$url" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { echo "the service for $url exited during start-up" >&2; return 1; }
    sleep 0.05
  done
  echo "$url did not answer within 10 s" >&2
  return 1
}

# start_binary NAME ADDR [FLAG...]: the service binary NAME on ADDR in the background, added
# to $pids; sets $started_pid. (The start_* below wait for it too.)
start_binary() {
  local name=$1 addr=$2
  shift 2
  "$bin/$name" --addr "$addr" "$@" &
  started_pid=$!
  pids+=("$started_pid")
}

# start_logging ADDR [FLAG...]: logging on ADDR, ready when it answers a gRPC health check
# (sent as gRPC-web, an empty HealthCheckRequest). Sets $logging_pid.
start_logging() {
  start_binary logging-service "$@"
  logging_pid=$started_pid
  wait_ready "$logging_pid" "$(local_url "$1")/grpc.health.v1.Health/Check" \
    -X POST -H 'content-type: application/grpc-web+proto' --data-binary @-
}

# start_messages ADDR [FLAG...]: the messages stub on ADDR, ready on /healthz. Sets
# $messages_pid.
start_messages() {
  start_binary messages-service "$@"
  messages_pid=$started_pid
  wait_ready "$messages_pid" "$(local_url "$1")/healthz"
}

# start_facade ADDR [FLAG...]: the facade on ADDR, ready on /healthz (which says the facade is
# up, not that logging is: start it before logging as well as after). Sets $facade_pid.
start_facade() {
  start_binary facade-service "$@"
  facade_pid=$started_pid
  wait_ready "$facade_pid" "$(local_url "$1")/healthz"
}

# start_redis PORT DIR: redis-server on loopback, its data in DIR, every write appended to its
# log and fsynced before it answers (the durability the Redis store promises), its own log in
# DIR/redis.log; ready when it answers PING. Sets $redis_pid.
start_redis() {
  local port=$1 dir=$2
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --logfile "$dir/redis.log" \
    --appendonly yes --appendfsync always --save "" &
  redis_pid=$!
  pids+=("$redis_pid")
  for _ in $(seq 1 200); do
    [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && return 0
    if ! kill -0 "$redis_pid" 2>/dev/null; then
      echo "redis-server exited during start-up; its log ($dir/redis.log) ends:" >&2
      tail -n 5 "$dir/redis.log" >&2
      return 1
    fi
    sleep 0.05
  done
  echo "redis-server did not answer on port $port within 10 s" >&2
  return 1
}

# stop PID...: asks the processes to stop (SIGTERM: each service drains and exits) and waits.
stop() {
  kill -TERM "$@" 2>/dev/null || true
  wait "$@" 2>/dev/null || true
}

# stop_services: stops every process in $pids.
stop_services() {
  [ ${#pids[@]} -eq 0 ] || stop "${pids[@]}"
}
