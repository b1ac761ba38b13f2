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
#   start_redis_replicated 6379 26379 data/redis

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

# start_redis PORT DIR [SETTING...]: redis-server on loopback, its data in DIR, every write
# appended to its log and fsynced before it answers (the durability the Redis store promises),
# its own log in DIR/redis.log, with more settings (`--name value`) after; ready when it
# answers PING. Sets $redis_pid.
start_redis() {
  local port=$1 dir=$2
  shift 2
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --logfile "$dir/redis.log" \
    --appendonly yes --appendfsync always --save "" "$@" &
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

# start_redis_replicated PORT SENTINEL_PORT DIR: a replicated Redis on loopback, as production
# runs one: a primary on PORT and two replicas on PORT+1 and PORT+2 (each with start_redis's
# durability; the primary takes a write only while a replica is connected and at most 10 s
# behind), watched by three sentinels on SENTINEL_PORT..SENTINEL_PORT+2 (`redis-server
# --sentinel`, quorum 2, the master named msglog, a server called down after
# SENTINEL_DOWN_AFTER_MS, default 2000; failover-timeout 2 s, so an election lost to a split vote
# is tried again after 4 s rather than 20). Data and logs under DIR/PORT and DIR/sentinel-PORT.
# Returns once the replicas are in sync and each sentinel names the primary. Sets
# $redis_pids (the three servers, in port order) and $redis_sentinels (HOST:PORT,...).
start_redis_replicated() {
  local port=$1 sentinel_port=$2 dir=$3 n p s
  local safety=(--min-replicas-to-write 1 --min-replicas-max-lag 10 --repl-diskless-sync-delay 0)
  redis_pids=()
  start_redis "$port" "$dir/$port" "${safety[@]}"
  redis_pids+=("$redis_pid")
  for n in 1 2; do
    p=$((port + n))
    start_redis "$p" "$dir/$p" "${safety[@]}" --replicaof 127.0.0.1 "$port"
    redis_pids+=("$redis_pid")
  done
  for n in 1 2; do
    within_10s replica_synced $((port + n)) \
      || { echo "the replica on port $((port + n)) did not sync within 10 s" >&2; return 1; }
  done
  redis_sentinels=""
  for n in 0 1 2; do
    s=$((sentinel_port + n))
    mkdir -p "$dir/sentinel-$s"
    # A sentinel rewrites its own configuration file (the current primary, the others).
    cat > "$dir/sentinel-$s/sentinel.conf" <<CONF
port $s
bind 127.0.0.1
dir $(cd "$dir/sentinel-$s" && pwd)
logfile $(cd "$dir/sentinel-$s" && pwd)/sentinel.log
sentinel monitor msglog 127.0.0.1 $port 2
sentinel down-after-milliseconds msglog ${SENTINEL_DOWN_AFTER_MS:-2000}
sentinel failover-timeout msglog 2000
CONF
    redis-server "$dir/sentinel-$s/sentinel.conf" --sentinel &
    pids+=("$!")
    within_10s sentinel_names_primary "$s" \
      || { echo "the sentinel on port $s did not start within 10 s" >&2; return 1; }
    redis_sentinels+="${redis_sentinels:+,}127.0.0.1:$s"
  done
}

# within_10s COMMAND...: runs COMMAND until it succeeds, every 50 ms for up to 10 s; fails if
# it never does.
within_10s() {
  local _
  for _ in $(seq 1 200); do
    "$@" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}
# replica_synced PORT: the Redis replica on PORT is in sync with its primary.
replica_synced() { redis-cli -p "$1" info replication | grep -q '^master_link_status:up'; }
# sentinel_names_primary PORT: the sentinel on PORT answers with the primary of msglog.
sentinel_names_primary() { redis-cli -p "$1" sentinel get-master-addr-by-name msglog >/dev/null; }

# stop PID...: asks the processes to stop (SIGTERM: each service drains and exits) and waits,
# asking again each second those still running (a Redis writing its first append-only file,
# say, a replica just synced, refuses a shutdown and does not retry it); after 15 s, kills
# (SIGKILL) what is left, saying so.
stop() {
  local pid left tries=0
  kill -TERM "$@" 2>/dev/null || true
  while :; do
    left=()
    # Running, not merely unreaped (an exited child stays a zombie until `wait`).
    for pid in "$@"; do
      case "$(ps -o stat= -p "$pid" 2>/dev/null)" in ''|Z*) ;; *) left+=("$pid") ;; esac
    done
    [ ${#left[@]} -gt 0 ] || break
    tries=$((tries + 1))
    if [ "$tries" -ge 300 ]; then
      echo "still running 15 s after SIGTERM, killed: ${left[*]}" >&2
      kill -KILL "${left[@]}" 2>/dev/null || true
      break
    fi
    [ $((tries % 20)) -ne 0 ] || kill -TERM "${left[@]}" 2>/dev/null || true
    sleep 0.05
  done
  wait "$@" 2>/dev/null || true
}

# stop_services: stops every process in $pids.
stop_services() {
  [ ${#pids[@]} -eq 0 ] || stop "${pids[@]}"
}
