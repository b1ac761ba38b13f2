#!/usr/bin/env bash
# Lets schemathesis (a fuzzer no one here wrote) loose on the facade's JSON API, as described by
# the facade's own OpenAPI document (GET /api/openapi.json): every operation, in every phase
# (the document's examples, its boundary values, random valid and invalid requests, and
# chains of calls along the document's links), with every check. The three services are the
# real binaries (started by scripts/run.sh on free ports, with a temporary data directory).
# A fixed seed and a bounded number of examples keep the run repeatable and short.
#
#   scripts/fuzz_api.sh                         # as scripts/test.sh runs it
#   FUZZ_EXAMPLES=1000 FUZZ_SEED=7 scripts/fuzz_api.sh
#
# Ends with "API fuzzing: P passed, F failed", counting the operations tested. Leaves its
# report (JUnit XML) in target/schemathesis.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

FUZZ_SEED=${FUZZ_SEED:-20261129}
FUZZ_EXAMPLES=${FUZZ_EXAMPLES:-100}
here=backend/system-tests/schemathesis

for tool in curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is missing: apt-get install $tool" >&2; exit 1; }
done
venv=target/python-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/requirements.txt"

. scripts/run_lib.sh
work=$(mktemp -d)
log=$work/run.log
run_pid=
cleanup() {
  [ -z "$run_pid" ] || { kill -INT -- "-$run_pid" 2>/dev/null && wait "$run_pid" 2>/dev/null; } || true
  rm -rf "$work"
}
trap cleanup EXIT

export PROFILE=${PROFILE:-dev} SKIP_PAGE=1
if ! start_services "$work" "$log" 1200; then
  echo "scripts/run.sh did not bring the services up:" >&2
  tail -n 40 "$log" >&2
  echo "API fuzzing: 0 passed, 1 failed"
  exit 1
fi
base=http://$FACADE_ADDR

# Run from its report directory, where it also keeps its cache (.schemathesis).
root=$PWD
report=$root/target/schemathesis
rm -rf "$report"
mkdir -p "$report"
status=0
(cd "$report" && "$root/$venv/bin/schemathesis" --config-file "$root/$here/schemathesis.toml" \
  --no-color run "$base/api/openapi.json" \
  --checks all \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "$FUZZ_EXAMPLES" \
  --seed "$FUZZ_SEED" \
  --workers 1 \
  --report junit --report-junit-path "$report/junit.xml") || status=$?

# One line for scripts/test.sh's count: the operations, each passed when no check failed.
python3 - "$report"/junit.xml "$status" <<'EOF'
import sys
import xml.etree.ElementTree as ElementTree

path, status = sys.argv[1], int(sys.argv[2])
try:
    cases = ElementTree.parse(path).getroot().iter("testcase")
    outcomes = [case.find("failure") is None and case.find("error") is None for case in cases]
except (OSError, ElementTree.ParseError) as error:
    print(f"no report from schemathesis ({error})", file=sys.stderr)
    outcomes = []
passed = sum(outcomes)
failed = len(outcomes) - passed
if status != 0 and failed == 0:
    failed = 1  # schemathesis failed outside any operation (the schema, the connection)
print(f"API fuzzing: {passed} passed, {failed} failed")
EOF
exit "$status"
