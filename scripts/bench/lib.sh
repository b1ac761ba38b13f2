# What the bench scripts share; sourced, not run.

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

# Builds the three services and the named extra binaries in release, and sets $bin to where
# they are.
build_release() {
  local extra=() name
  for name in "$@"; do extra+=(--bin "$name"); done
  cargo build --locked --release --bin logging-service --bin messages-service --bin facade-service \
    "${extra[@]}" >&2
  bin="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release"
}

# A process's memory in MB from /proc: `rss_mb PID` (resident), `rss_mb PID VmHWM` (its peak).
rss_mb() { awk -v key="${2:-VmRSS}:" '$1 == key { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# A temporary directory in $work, and $pids, whose processes are stopped (and the directory
# removed) when the script exits; the services log errors only unless RUST_LOG says otherwise.
bench_workdir() {
  export RUST_LOG=${RUST_LOG:-error}
  work=$(mktemp -d)
  pids=()
  trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
}

# Waits up to 10 s for URL to answer with a 2xx status; exits the script if it does not.
wait_for() {
  for _ in $(seq 1 200); do curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "$1 did not come up" >&2; exit 1
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
