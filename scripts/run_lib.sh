# What the scripts that start scripts/run.sh in the background share; sourced, not run.

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# free_base OFFSET...: a base port N with N+OFFSET free for each OFFSET given.
free_base() {
  python3 - "$@" <<'PY'
import socket, sys
offsets = [int(offset) for offset in sys.argv[1:]]
def free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); base = s.getsockname()[1] - min(offsets); s.close()
    if base > 0 and base + max(offsets) < 65536 and all(free(base + n) for n in offsets):
        print(base)
        break
PY
}
# A base port N for scripts/run.sh's logging replicas 2 to 9: ports N+2..N+9, and their admin
# ports N+1002..N+1009.
free_replica_base() { free_base $(seq 2 9) $(seq 1002 1009); }
# A base port N with N, N+1 and N+2 free (a replicated Redis's three servers, or its sentinels).
free_three() { free_base 0 1 2; }

# Points scripts/run.sh at free ports (the three services, logging's admin port, the logging
# replicas', the second facade's, and Redis's and its sentinels' when it starts them) and at a data directory under $1, so services
# already running on the default ports are not disturbed.
use_free_ports() {
  export FACADE_ADDR=127.0.0.1:$(free_port)
  export LOGGING_ADDR=127.0.0.1:$(free_port)
  export MESSAGES_ADDR=127.0.0.1:$(free_port)
  export LOGGING_ADMIN_ADDR=127.0.0.1:$(free_port)
  export LOGGING_REPLICA_BASE_PORT=$(free_replica_base)
  export REDIS_PORT=$(free_three)
  export SENTINEL_PORT=$(free_three)
  export FACADE_REPLICA_BASE_PORT=$(($(free_port) - 2))
  export LOGGING_DATA_DIR=$1/data
}

# Starts scripts/run.sh in the background on free ports (use_free_ports $1; a new free port
# for FACADE_TLS_ADDR too when it is set), writing to $2, and waits up to $3 seconds for its
# banner (see wait_for_banner); sets run_pid. run.sh gets a process group of its own (job
# control), which receives SIGINT as a terminal's Ctrl-C would deliver it, to run.sh and the
# services alike: `kill -INT -- -$run_pid`. A port found free can be taken by another program
# before a service binds it: then run.sh stops ("Address already in use") and is started again
# on other ports, three times at most.
start_services() {
  local dir=$1 log=$2 limit=${3:-1200}
  for _ in 1 2 3; do
    use_free_ports "$dir"
    [ -z "${FACADE_TLS_ADDR:-}" ] || export FACADE_TLS_ADDR=127.0.0.1:$(free_port)
    set -m
    scripts/run.sh >"$log" 2>&1 &
    run_pid=$!
    set +m
    wait_for_banner "$run_pid" "$log" "$limit" && return 0
    kill -KILL -- "-$run_pid" 2>/dev/null || true
    wait "$run_pid" 2>/dev/null || true
    grep -q "Address already in use" "$log" || return 1
    echo "(a port was taken between finding it free and binding it: again, on others)" >&2
  done
  return 1
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
