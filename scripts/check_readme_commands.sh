#!/usr/bin/env bash
# Runs the commands of the README and of docs/ the way they are written, from a plain shell
# (the measuring commands of docs/performance.md and docs/limits.md excepted: they print
# figures, and each doc says when it was run): scripts/run.sh
# (which installs the page's tools, builds the page with a plain `trunk build --release`, and
# builds and starts the three services), the original's curl scripts against it, the page it
# serves, the gateway's gRPC-web on the same port, HTTPS, the request id in the logs, Ctrl-C,
# which must stop all three, three logging replicas on Redis, and a replicated Redis with two
# facades losing its primary. Free ports and a temporary
# data directory are passed through the environment (as the README shows), so services
# already running on the default ports are not disturbed. Ends with "README commands: P passed, F failed".
#
#   scripts/check_readme_commands.sh
#   RUN_TIMEOUT_S=1800 scripts/check_readme_commands.sh   # a slower machine's first build
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

for tool in curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is missing: apt-get install $tool" >&2; exit 1; }
done
RUN_TIMEOUT_S=${RUN_TIMEOUT_S:-1200}

. scripts/run_lib.sh
passed=0
failed=0
check() {
  local name=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
    echo "ok: $name"
  else
    failed=$((failed + 1))
    echo "FAILED: $name"
  fi
}
contains() { grep -qF -- "$2" <<<"$1"; }
# Ctrl-C to scripts/run.sh (started by start_services): it exits with status 0.
ctrl_c() {
  local status=0
  kill -INT -- "-$run_pid"
  wait "$run_pid" || status=$?
  [ "$status" = 0 ]
}

work=$(mktemp -d)
log=$work/run.log
run_pid=
cleanup() {
  [ -z "$run_pid" ] || kill -KILL -- "-$run_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# HTTPS too, as the README shows it (MSGLOG_TLS=1), its certificate in the work directory.
export MSGLOG_TLS=1 FACADE_TLS_ADDR=127.0.0.1:0
export FACADE_TLS_CERT=$work/tls/cert.pem FACADE_TLS_KEY=$work/tls/key.pem
scripts/dev_cert.sh "$work/tls"

started=0
start_services "$work" "$log" "$RUN_TIMEOUT_S" && started=1
base=http://$FACADE_ADDR
check "scripts/run.sh builds and starts the three services" test "$started" = 1
if [ "$started" != 1 ]; then
  echo "--- scripts/run.sh said:" >&2
  tail -n 40 "$log" >&2
  echo "README commands: $passed passed, $((failed)) failed"
  exit 1
fi

answer=$(BASE_URL=$base scripts/test_requests_post.sh)
check "test_requests_post.sh stores msg2" contains "$answer" '"status":"success","message":"Message logged successfully"'
answer=$(BASE_URL=$base scripts/test_requests_post.sh)
check "test_requests_post.sh again is a duplicate" contains "$answer" '"status":"duplicate","message":"Duplicate message ignored"'
answer=$(BASE_URL=$base scripts/test_requests_post.sh "different message")
check "test_requests_post.sh \"different message\" stores it" contains "$answer" '"status":"success"'
answer=$(BASE_URL=$base scripts/test_requests_get.sh)
check "test_requests_get.sh lists both in order" test "$answer" = \
  '{"logged_messages":["msg2","different message"],"message_from_service":"not implemented yet"}'
# The metrics after the walk-through, as the README shows them.
metrics=$(curl -sS "$base/metrics" | grep -E '^(messages|logging_calls)_total' | sort)
check "the facade's /metrics counts the walk-through" test "$metrics" = \
'logging_calls_total{method="ListMessages",code="OK"} 1
logging_calls_total{method="LogMessage",code="OK"} 3
messages_total{outcome="duplicate"} 1
messages_total{outcome="stored"} 2'
metrics=$(curl -sS "http://$LOGGING_ADMIN_ADDR/metrics" | grep -E '^store_inserts_total' | sort)
check "logging's admin /metrics counts the walk-through" test "$metrics" = \
'store_inserts_total{outcome="conflict"} 0
store_inserts_total{outcome="duplicate"} 1
store_inserts_total{outcome="error"} 0
store_inserts_total{outcome="stored"} 2'
page=$(curl -sS -D - "$base/")
check "the page is built and served with its policy" contains "$page" "content-security-policy: default-src 'self'"
check "the page loads its WebAssembly" contains "$page" "_bg.wasm"
# The gateway on the same port, as the README's tour calls it: a gRPC-web Status call (an
# empty request frame), answered with grpc-status 0 in its trailer frame and the messages
# service's text in its message.
status=$(printf '\x00\x00\x00\x00\x00' | curl -s --data-binary @- "$base/msglog.v1.MessageLog/Status" \
  -H 'content-type: application/grpc-web+proto' | strings)
check "the gateway answers gRPC-web on the facade's port" contains "$status" "grpc-status:0"
check "the gateway's Status reports the messages service" contains "$status" "not implemented yet"
secure=$(curl -sS --http2 --cacert "$FACADE_TLS_CERT" -w ' %{http_version}' "https://localhost:${FACADE_TLS_ADDR##*:}/get_messages")
check "MSGLOG_TLS=1: the same log over HTTPS, by HTTP/2" test "$secure" = \
  '{"logged_messages":["msg2","different message"],"message_from_service":"not implemented yet"} 2'

# The tour's curl lines: a client's own idempotency key (a resend is a duplicate), the list by
# pages, the status, the API document.
keyed() {
  curl -s "$base/send_message" -H 'content-type: application/json' \
    -H 'Idempotency-Key: order-42' -d '{"message": "hello"}'
}
answer=$(keyed)
check "a POST with an Idempotency-Key stores it" contains "$answer" '"status":"success"'
answer=$(keyed)
check "the same POST again is a duplicate" contains "$answer" '"status":"duplicate"'
answer=$(curl -s "$base/api/messages?limit=10&direction=backward")
check "/api/messages pages the list" contains "$answer" '"text":"hello"'
answer=$(curl -s "$base/api/status")
check "/api/status reports the services" contains "$answer" '"messages":{"up":true'
answer=$(curl -s "$base/api/openapi.json")
check "/api/openapi.json is the API document" contains "$answer" '"/send_message"'
# The log followed live: curl -N gets the history at once (cut after a second here, as Ctrl-C
# would); follow=false ends by itself after it (docs/api.md).
answer=$(curl -sN --max-time 1 "$base/api/messages/watch?after=0" || true)
check "curl -N on /api/messages/watch streams the log" contains "$answer" 'data: {"seq":1,'
ended=0
answer=$(curl -s --max-time 10 "$base/api/messages/watch?after=1&follow=false") && ended=1
check "its catch-up (follow=false) ends by itself" test "$ended" = 1
check "the catch-up starts after the cursor" contains "$answer" 'data: {"seq":2,'


# docs/api.md: the API document read by a JSON tool, and the gateway's Status with its bytes
# filtered as the page shows them.
answer=$(curl -s "$base/api/openapi.json" | python3 -m json.tool)
check "docs/api.md: the API document is JSON" contains "$answer" '"openapi":'
answer=$(printf '\x00\x00\x00\x00\x00' | curl -s -X POST --data-binary @- \
  -H 'content-type: application/grpc-web+proto' -H 'x-grpc-web: 1' \
  "$base/msglog.v1.MessageLog/Status" | strings)
check "docs/api.md: the gRPC-web Status through strings reads as shown" test "$answer" = \
'serving
SERVING
not implemented yet"
grpc-status:0'
# The Connect protocol on the same paths (README, docs/api.md): a POST of JSON, a GET of a
# page, and an error in Connect's words.
answer=$(curl -s "$base/msglog.v1.MessageLog/Send" -H 'content-type: application/json' -d '{"text": "hi"}')
check "a Connect Send is a POST of JSON" contains "$answer" '"status":"SEND_STATUS_STORED","attempts":1}'
answer=$(curl -s "$base/msglog.v1.MessageLog/List?encoding=json&message=%7B%22limit%22%3A2%7D")
check "a Connect List is a GET too" contains "$answer" '{"messages":[{"seq":"1","id":'
answer=$(curl -s "$base/msglog.v1.MessageLog/Send" -H 'content-type: application/json' -d '{"text": " "}')
check "a Connect error says what was wrong" test "$answer" = \
  '{"code":"invalid_argument","message":"text must not be empty or blank"}'
# docs/settings.md: a request id given by the client is in the facade's and logging's log lines.
curl -s -o /dev/null -X POST "$base/send_message" -H 'content-type: application/json' \
  -H 'x-request-id: demo-1' -d '{"message": "traced"}'
check "docs/settings.md: the facade logs the request id" \
  grep -qE 'request_id="demo-1".*message sent to logging' "$log"
check "docs/settings.md: logging logs the same request id" \
  grep -qE 'item\{request_id="demo-1".*message stored' "$log"

# Ctrl-C: run.sh stops the three services and exits cleanly.
check "Ctrl-C stops scripts/run.sh cleanly" ctrl_c
still_up=0
for addr in "$FACADE_ADDR" "$LOGGING_ADDR" "$MESSAGES_ADDR"; do
  curl -s -o /dev/null --max-time 1 "http://$addr/" && still_up=1
done
check "Ctrl-C stops all three services" test "$still_up" = 0

# docs/operations.md: three logging replicas on Redis (which run.sh installs and starts), the
# facade balancing across them. The page is built already; HTTPS was checked above.
export LOGGING_REPLICAS=3 LOGGING_STORE=redis SKIP_PAGE=1 MSGLOG_TLS=0
unset FACADE_TLS_ADDR FACADE_TLS_CERT FACADE_TLS_KEY
started=0
start_services "$work/replicas" "$log" "$RUN_TIMEOUT_S" && started=1
check "LOGGING_REPLICAS=3 LOGGING_STORE=redis scripts/run.sh starts them" test "$started" = 1
if [ "$started" = 1 ]; then
  base=http://$FACADE_ADDR
  for n in 1 2 3 4 5 6; do
    curl -s -o /dev/null -X POST "$base/send_message" -H 'content-type: application/json' \
      -d "{\"message\": \"replicated $n\"}"
  done
  answer=$(curl -s "$base/get_messages")
  check "the replicas store one log, in order" test "$answer" = \
    '{"logged_messages":["replicated 1","replicated 2","replicated 3","replicated 4","replicated 5","replicated 6"],"message_from_service":"not implemented yet"}'
  # Each replica's admin port counts what it stored: the facade's calls went to all three.
  each=1
  for admin in "${LOGGING_ADMIN_ADDR##*:}" $((LOGGING_REPLICA_BASE_PORT + 1002)) $((LOGGING_REPLICA_BASE_PORT + 1003)); do
    stored=$(curl -s "http://127.0.0.1:$admin/metrics" | awk '/^store_inserts_total\{outcome="stored"\}/ { print $2 }')
    [ "${stored:-0}" -ge 1 ] || each=0
  done
  check "the facade's POSTs reach each of the three replicas" test "$each" = 1
  check "Ctrl-C stops the replicas, Redis and the rest" ctrl_c
  check "Redis is stopped too" sh -c "! redis-cli -p $REDIS_PORT ping >/dev/null 2>&1"
else
  echo "--- scripts/run.sh said:" >&2
  tail -n 40 "$log" >&2
fi

echo "==> no single machine to lose: LOGGING_STORE=redis-sentinel scripts/run.sh, the primary killed"
export LOGGING_STORE=redis-sentinel SENTINEL_DOWN_AFTER_MS=500
unset LOGGING_REPLICAS
started=0
start_services "$work/sentinel" "$log" "$RUN_TIMEOUT_S" && started=1
check "LOGGING_STORE=redis-sentinel scripts/run.sh starts them" test "$started" = 1
if [ "$started" = 1 ]; then
  first=http://$FACADE_ADDR
  second=http://127.0.0.1:$((FACADE_REPLICA_BASE_PORT + 2))
  curl -s -o /dev/null -X POST "$first/send_message" -H 'content-type: application/json' -d '{"message": "before"}'
  primary_pid=$(sed -n 's/.*To see a failover:  kill -9 \([0-9]*\).*/\1/p' "$log")
  check "it says which process is the Redis primary" test -n "$primary_pid"
  [ -z "$primary_pid" ] || kill -9 "$primary_pid"
  code=
  for _ in $(seq 1 300); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$second/send_message" \
      -H 'content-type: application/json' -d '{"message": "after the failover"}')
    [ "$code" = 200 ] && break
    sleep 0.1
  done
  check "after the primary's kill, POSTs succeed again (through the second facade)" test "$code" = 200
  answer=$(curl -s "$first/get_messages")
  check "both facades' messages are in the one log, once each" test "$answer" = \
    '{"logged_messages":["before","after the failover"],"message_from_service":"not implemented yet"}' \
    || echo "  it answered: $answer" >&2
  promoted=$(redis-cli -p "$SENTINEL_PORT" sentinel get-master-addr-by-name msglog | tail -n 1)
  check "the sentinels name a replica as the new primary" test "$promoted" != "$REDIS_PORT"
  check "Ctrl-C stops the facades, the replicas, Redis and its sentinels" ctrl_c
  check "the sentinels are stopped too" sh -c "! redis-cli -p $SENTINEL_PORT ping >/dev/null 2>&1"
else
  echo "--- scripts/run.sh said:" >&2
  tail -n 40 "$log" >&2
fi

echo "README commands: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
