#!/usr/bin/env bash
# Checks authconform's junit.xml in a real JUnit consumer: PyPI's junitparser (installed into a
# virtualenv, bounded in time) parses each report and counts its failures and errors, which
# must be the run's gating failures and unjudged gating cases (scripts/junit-consumer-check.py).
#
# Usage: scripts/junit-consumer-check.sh [BIN]    (BIN: the authconform binary,
#        default target/release/authconform). Writes reports/junit-consumer/{reference,
#        failing,should-only}; exits non-zero when the consumer disagrees with the gate.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN="${1:-${CARGO_TARGET_DIR:-target}/release/authconform}"
OUT=reports/junit-consumer
VENV="${JUNIT_CONSUMER_VENV:-${TMPDIR:-/tmp}/authconform-junitparser-venv}"
mkdir -p "$OUT"

if ! "$VENV/bin/python" -c 'import junitparser' 2>/dev/null; then
  python3 -m venv "$VENV"
  timeout 300 "$VENV/bin/pip" install --quiet --disable-pip-version-check 'junitparser>=3,<6'
fi
echo "junitparser $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("junitparser"))')"

# The exit code each run must give: the consumer's counts are checked against the same gate.
run() { # name expected-exit args...
  local name="$1" want="$2"
  shift 2
  local rc=0
  "$BIN" run --report-dir "$OUT/$name" "$@" >"$OUT/$name.log" 2>&1 || rc=$?
  if [ "$rc" -ne "$want" ]; then
    tail -20 "$OUT/$name.log"
    echo "error: $name exited $rc, not $want" >&2
    exit 1
  fi
}
# The compliant reference (all cases): exit 0, no failure.
run reference 0
# A MUST fault: exit 1, its gating failure is the one <failure>.
run failing 1 --reference-fault pkce-verifier-mismatch --only pkce
# A SHOULD fault: the case fails, the run passes, and the dashboard shows no failure.
run should-only 0 --reference-fault prm-scopes-supported --only prm
grep -q '"failed": [1-9]' "$OUT/should-only/results.json" || {
  echo "error: the SHOULD fault made no case fail: the check would prove nothing" >&2
  exit 1
}

"$VENV/bin/python" scripts/junit-consumer-check.py "$OUT/reference" "$OUT/failing" "$OUT/should-only"
