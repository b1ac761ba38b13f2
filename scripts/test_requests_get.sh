#!/usr/bin/env bash
# Gets the logged messages and the messages service's text, as the original's script did.
#   BASE_URL=http://host:8080 scripts/test_requests_get.sh
set -euo pipefail
BASE_URL=${BASE_URL:-http://localhost:8080}
command -v curl >/dev/null 2>&1 || { echo "curl is missing: apt-get install curl" >&2; exit 1; }
curl -sS "$BASE_URL/get_messages" -w '\n'
