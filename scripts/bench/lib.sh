# What the bench scripts share; sourced, not run. The services are built and started as
# scripts/run.sh builds and starts them (scripts/services.sh), in release.

. scripts/services.sh
PROFILE=release

# Fails with how to install it when curl is missing.
require_curl() {
  command -v curl >/dev/null 2>&1 || { echo "curl is missing: apt-get install curl" >&2; exit 1; }
}

# Installs wrk (the Debian package) when it is missing.
ensure_wrk() {
  command -v wrk >/dev/null 2>&1 && return 0
  echo "==> installing wrk (Debian package)" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >/dev/null
}

# A process's memory in MB from /proc: `rss_mb PID` (resident), `rss_mb PID VmHWM` (its peak).
rss_mb() { awk -v key="${2:-VmRSS}:" '$1 == key { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# A temporary directory in $work, and $pids, whose processes are stopped (and the directory
# removed) when the script exits; the services log errors only unless RUST_LOG says otherwise.
bench_workdir() {
  export RUST_LOG=${RUST_LOG:-error}
  work=$(mktemp -d)
  pids=()
  trap 'stop_services; rm -rf "$work"' EXIT
}

# start_hello PORT: the bare axum server answering `hello` (the bench-hello binary), the
# reference every figure is set against. Sets $hello_pid.
start_hello() {
  "$bin/bench-hello" "127.0.0.1:$1" &
  hello_pid=$!
  pids+=("$hello_pid")
  wait_ready "$hello_pid" "http://127.0.0.1:$1/"
}

# wait_post BASE_URL: waits up to 10 s until a POST /send_message through BASE_URL answers 200
# (the facade up and reaching logging); exits the script if none does. HTTPS certificates are
# not checked (the benches make their own).
wait_post() {
  for _ in $(seq 1 200); do
    [ "$(curl -sk -o /dev/null -w '%{http_code}' -X POST "$1/send_message" \
      -H 'content-type: application/json' -d '{"message":"warm-up"}')" = 200 ] && return 0
    sleep 0.05
  done
  echo "no POST through $1 was answered 200 within 10 s" >&2
  exit 1
}

# Writes to FILE the wrk script of the POST benches: POST /send_message with one message of
# a realistic length.
post_script() {
  cat > "$1" <<'LUA'
wrk.method = "POST"
wrk.body = '{"message": "a benchmark message of a realistic length, sixty-odd bytes"}'
wrk.headers["Content-Type"] = "application/json"
LUA
}

# The bench's ports, from BENCH_BASE_PORT (default: DEFAULT): $BASE_PORT and $facade_port,
# then $logging_port, $messages_port and $hello_port; and $facade, the facade's URL.
bench_ports() {
  BASE_PORT=${BENCH_BASE_PORT:-$1}
  facade_port=$BASE_PORT; logging_port=$((BASE_PORT + 1)); messages_port=$((BASE_PORT + 2))
  hello_port=$((BASE_PORT + 3))
  facade=http://127.0.0.1:$facade_port
}

# What wrk's --latency report in FILE says: "rps p50_ms p99_ms errors" (non-2xx answers and
# socket errors counted as errors).
wrk_figures() {
  awk '
    function ms(v) {
      if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
      if (v ~ /ms$/) { sub(/ms$/, "", v); return v }
      if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000 }
      return v
    }
    /^Requests\/sec:/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx/ { errors += $NF }
    /Socket errors/ { errors += $4 + $6 + $8 + $10 }
    END { printf "%s %s %s %d\n", rps, p50, p99, errors }
  ' "$1"
}

# bench_start DEFAULT_BASE_PORT [EXTRA_BIN...]: what each wrk bench does first: its ports
# (bench_ports), curl and wrk, the release build (with the extra binaries), its work directory
# (bench_workdir), and in $work/post.lua the wrk script of its POSTs (post_script).
bench_start() {
  local port=$1
  shift
  bench_ports "$port"
  require_curl
  ensure_wrk
  build_services "$@"
  bench_workdir
  post_script "$work/post.lua"
}
