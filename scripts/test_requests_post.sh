#!/usr/bin/env bash
# Posts a message to the facade, as the original's script did.
#   scripts/test_requests_post.sh              # posts "msg2"
#   scripts/test_requests_post.sh "some text"
#   BASE_URL=http://host:8080 scripts/test_requests_post.sh
set -euo pipefail
BASE_URL=${BASE_URL:-http://localhost:8080}
MESSAGE=${1:-msg2}
command -v curl >/dev/null 2>&1 || { echo "curl is missing: apt-get install curl" >&2; exit 1; }

# JSON string escaping for the characters a shell argument can carry.
json_escape() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  printf '%s' "$s"
}

curl -sS -X POST "$BASE_URL/send_message" \
  -H 'Content-Type: application/json' \
  -d "{\"message\": \"$(json_escape "$MESSAGE")\"}" \
  -w '\n'
