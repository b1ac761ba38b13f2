# What the scripts that start scripts/run.sh in the background share; sourced, not run.

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Points scripts/run.sh at free ports (the three services and logging's admin port) and at a
# data directory under $1, so services already running on the default ports are not disturbed.
use_free_ports() {
  export FACADE_ADDR=127.0.0.1:$(free_port)
  export LOGGING_ADDR=127.0.0.1:$(free_port)
  export MESSAGES_ADDR=127.0.0.1:$(free_port)
  export LOGGING_ADMIN_ADDR=127.0.0.1:$(free_port)
  export LOGGING_DATA_DIR=$1/data
}

# Waits until scripts/run.sh (process $1, writing to $2) prints its banner, which it does once
# all three services answer their health checks; fails if it exits first, or after $3 seconds
# (default 1200: a first build of the page's tools is slow).
wait_for_banner() {
  local pid=$1 log=$2 limit=${3:-1200}
  for _ in $(seq 1 $((limit * 5))); do
    grep -q "Ctrl-C stops them all" "$log" && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}
