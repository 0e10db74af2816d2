#!/usr/bin/env bash
# Runs authconform against real target servers (the start scripts of ../shared/targets and of
# this repository's scripts/targets) and checks each run's verdicts against
# tests/expected/<run>.toml.
#
#   scripts/real-servers.sh           # check: exit 1 if any verdict differs from its expectation file
#   scripts/real-servers.sh --write   # bless: rewrite tests/expected/<run>.toml from the runs
#   RUNS="authlib openauth" scripts/real-servers.sh   # only the runs named (either mode)
#
# Runs (all on 127.0.0.1, each against a server started fresh and stopped after its run; runs on
# the same ports one after another, runs on different ports side by side):
#   oidc-provider-strict        oidc-provider/start.sh              PORT=4000  profiles/oidc-provider-strict.toml
#   oidc-provider-misconfigured oidc-provider/start-misconfigured.sh PORT=4001 profiles/oidc-provider-misconfigured.toml
#   oidc-provider-cimd-dev      oidc-provider/start.sh              PORT=4000  profiles/oidc-provider-strict.toml, only cimd
#   oidc-provider-dpop-nonce    oidc-provider/start.sh DPOP_NONCE=1 PORT=4000  profiles/oidc-provider-strict.toml, only dpop:
#                               every DPoP proof must carry the server's nonce
#   oidc-provider-browser       oidc-provider/start.sh              PORT=4000  profiles/oidc-provider-browser.toml, only pkce
#                               and redirect_uri: the same server logged in through headless Chromium
#   oidc-provider-par-required  oidc-provider/start.sh PAR_REQUIRED=1 PORT=4000 profiles/oidc-provider-strict.toml, only par:
#                               the same server requiring PAR of every client (require_pushed_authorization_requests)
#   mcp-ts, mcp-ts-flow, mcp-ts-lifecycle, mcp-ts-audience, mcp-ts-rs
#                               mcp-ts/start.sh                     PORT=3000 (AS 3001) profiles/mcp-ts.toml
#   authlib                     authlib/start.sh (scripts/targets)  PORT=4100  profiles/authlib.toml
#   authlib-idjag               authlib/start.sh (scripts/targets)  PORT=4110  profiles/authlib-idjag.toml, only
#                               id_jag: Authlib's ID-JAG grant trusting authconform's enterprise IdP
#                               (issuer https://127.0.0.1:4190/idp, key target/authconform-idjag-key.pem)
#   django-oauth-toolkit        django-oauth-toolkit/start.sh (scripts/targets) PORT=4200 profiles/django-oauth-toolkit.toml
#   openauth                    openauth/start.sh (scripts/targets) PORT=4300  profiles/openauth.toml
#   better-auth                 better-auth/start.sh (scripts/targets) PORT=4400 profiles/better-auth.toml
#   <server>-lifecycle, mcp-ts-campaign
#                               a bounded lifecycle campaign (fuzz --lifecycle) against each server above
# A start script is looked up in this repository's scripts/targets first, then in
# ../shared/targets. The scripts/targets servers are authorization servers alone (no MCP
# endpoint): their profiles name only the issuer, so the resource-server cases are skipped. The
# Python ones install into a venv and need python3 with the venv module. The authlib run skips
# rt-concurrent and code-concurrent-redeem: how many parallel redemptions of one refresh token or
# code win Authlib's race (read, then delete; SQLite, one thread per request) varies from run to
# run (2 or 4 of 5, 1 or 2 of 10), so no verdict of them can be expected. The
# django-oauth-toolkit run skips rt-concurrent for the same reason: 0 or 2 of 5 parallel
# refreshes with one refresh token got tokens (the others 500 or invalid_grant), by run.
# better-auth's login is a JSON API driven by the script driver (profiles/better-auth.toml), and
# its profile has a pool of five test users (three signed up by its provision command): better-auth
# binds a refresh token to the sign-in session that got its code and a replayed code revokes the
# grant, so cases sharing one user ended each other's tokens (at-entropy, rev-post-form and
# as-scope-omitted changed from run to run before the pool). The run skips rt-concurrent and
# code-concurrent-redeem, whose parallel requests race within the case: 1 or 2 of 5 refreshes
# won, and of 10 parallel redemptions of one code either one won or all ten were refused (the
# replay revoking the grant mid-issuance), from run to run.
# oidc-provider and better-auth are started trusting authconform's CA (NODE_EXTRA_CA_CERTS, `authconform ca`) so
# it can fetch Client ID Metadata Documents from authconform's document host on 127.0.0.1. Its
# SSRF protection refuses loopback addresses, so in the stock runs it fetches none; the
# cimd-dev run preloads scripts/oidc-provider-loopback-fetch.mjs, which lifts that protection as
# a development deployment would, so every other CIMD behaviour can be observed.
# The MCP TypeScript SDK example rate-limits by client IP (20 registrations an hour, 100
# authorization and 50 token requests per 15 minutes), which the whole suite exceeds; it runs in
# five parts, each against a freshly started server, without the registration (dcr) cases, which
# alone need more than 20 registrations.
#
# Environment:
#   AUTHCONFORM_SHARED   the shared/ folder (default: <repo>/../shared)
#   AUTHCONFORM_BIN      the binary (default: target/release/authconform, relative to the repo root)
#   START_TIMEOUT        seconds to wait for each server (default 120: first start runs npm install)
#   TARGETS_HOME         where the start scripts install the servers (their default: ~/.cache/authconform-targets)
#   AUTHCONFORM_CA_DIR   authconform's CA (default: target/authconform-ca)
#   RUNS                 space-separated run names to run (default: all of them)
#   CONCURRENCY          cases run at once (default: authconform's, 4); the committed verdicts
#                        must hold at any concurrency (CI checks 1 as well)
# Reports go to reports/<run>/ and server logs to reports/servers/<run>.log.
set -euo pipefail

# The usage is this header: every comment line after the first, up to the first line that is not one.
usage() { awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0" | sed 's/^# \{0,1\}//'; }
MODE="check"
for arg in "$@"; do
  case "$arg" in
    --write) MODE="write" ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SHARED="${AUTHCONFORM_SHARED:-$ROOT/../shared}"
TARGETS="$SHARED/targets"
BIN="${AUTHCONFORM_BIN:-target/release/authconform}"
START_TIMEOUT="${START_TIMEOUT:-120}"
LOGDIR="reports/servers"

[ -d "$TARGETS" ] || { echo "error: no target scripts at $TARGETS (set AUTHCONFORM_SHARED)" >&2; exit 2; }
[ -x "$BIN" ] || { echo "error: no binary at $BIN (cargo build --release, or set AUTHCONFORM_BIN)" >&2; exit 2; }
command -v curl >/dev/null || { echo "error: curl is required" >&2; exit 2; }
command -v node >/dev/null || { echo "error: node is required" >&2; exit 2; }
command -v python3 >/dev/null || { echo "error: python3 is required" >&2; exit 2; }
mkdir -p "$LOGDIR" tests/expected
PROJECT_TARGETS="$ROOT/scripts/targets"

# The profiles' secrets: oidc-provider's development login takes any password.
export OIDC_PASSWORD="${OIDC_PASSWORD:-authconform}"
export OIDC_STATIC_SECRET="${OIDC_STATIC_SECRET:-static-secret}"
# The scripts/targets servers: their users' password (the servers read TEST_PASSWORD) and the
# secret of their pre-registered confidential client (fixed in each server: a test credential).
# (A value that appears nowhere else: reports redact the password wherever it occurs.)
export TEST_PASSWORD="${TEST_PASSWORD:-alice-bob-test-pw}"
export STATIC_SECRET="${STATIC_SECRET:-static-secret}"

# The CA the document host uses; the node servers are told to trust it.
export AUTHCONFORM_CA_DIR="${AUTHCONFORM_CA_DIR:-$ROOT/target/authconform-ca}"
CA_PEM="$("$BIN" ca 2>/dev/null)" || { echo "error: $BIN ca failed" >&2; exit 2; }
# Node reads one NODE_EXTRA_CA_CERTS file, and the servers' setting replaces the environment's.
# Where the environment already names one (a machine whose registry traffic passes a proxy with
# its own CA), npm in the start scripts' first-use install needs it to reach the registry: the
# servers get a bundle of both, never authconform's CA alone.
NODE_CA="$CA_PEM"
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -r "$NODE_EXTRA_CA_CERTS" ]; then
  NODE_CA="$AUTHCONFORM_CA_DIR/node-extra-ca-certs.pem"
  cat "$NODE_EXTRA_CA_CERTS" "$CA_PEM" >"$NODE_CA"
fi
LOOPBACK_FETCH="--import=$ROOT/scripts/oidc-provider-loopback-fetch.mjs"

# The enterprise IdP's key (ID-JAG): authconform signs with it ([enterprise] key_file of
# profiles/authlib-idjag.toml), the authlib-idjag server trusts its public half.
IDJAG_KEY="$ROOT/target/authconform-idjag-key.pem"
[ -s "$IDJAG_KEY" ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$IDJAG_KEY" 2>/dev/null \
  || { echo "error: openssl could not make $IDJAG_KEY" >&2; exit 2; }

FLOW_AREAS=(--only authorization_code --only token_endpoint)
LIFECYCLE_AREAS=(--only token_lifecycle --only revocation)
# The forged-token cases alone take ~25 token requests; the RS-side areas get their own servers.
AUDIENCE_AREAS=(--only audience)
RS_AREAS=(--only transport --only scopes --only client_credentials)
# The lifecycle campaigns (`fuzz --lifecycle`, issue 19): a selection starting with `fuzz` runs
# that command instead of `run`, bounded by a fixed seed and number of sequences so its verdicts
# can be expected. Where a server's parallel requests race nondeterministically (authlib,
# django-oauth-toolkit and better-auth: see above), the campaign sends no concurrent duplicates
# (--concurrency 1). The MCP TypeScript SDK example's rate limits (50 token requests per 15
# minutes) allow a few sequences only.
CAMPAIGN=(fuzz --lifecycle --seed 1 --cases 60)
CAMPAIGN_NO_RACES=(fuzz --lifecycle --seed 1 --cases 60 --concurrency 1)
SMALL_CAMPAIGN=(fuzz --lifecycle --seed 1 --cases 4)
# run name|start script (relative to $TARGETS)|ports it must answer on|profile|selection|server environment|login check
# The login check (issue 16), before the run, on the first run of each profile: `login` = `authconform
# login --config <profile>` must exit 0; `login+wrong` = and with a wrong password it must exit 1
# (oidc-provider's development login takes any password; mcp-ts approves without a user). The mcp-ts
# login goes before its rs part, which registers 2 clients: the first part registers 19 of the 20
# an hour the example allows, and one more for the login made its asm-registration-endpoint 429.
RUN_LIST=(
  "oidc-provider-strict|oidc-provider/start.sh|4000|profiles/oidc-provider-strict.toml||NODE_EXTRA_CA_CERTS=$NODE_CA|login"
  "oidc-provider-misconfigured|oidc-provider/start-misconfigured.sh|4001|profiles/oidc-provider-misconfigured.toml||NODE_EXTRA_CA_CERTS=$NODE_CA|login"
  "oidc-provider-cimd-dev|oidc-provider/start.sh|4000|profiles/oidc-provider-strict.toml|--only cimd|NODE_EXTRA_CA_CERTS=$NODE_CA NODE_OPTIONS=$LOOPBACK_FETCH|"
  "oidc-provider-dpop-nonce|oidc-provider/start.sh|4000|profiles/oidc-provider-strict.toml|--only dpop|NODE_EXTRA_CA_CERTS=$NODE_CA DPOP_NONCE=1|"
  "oidc-provider-browser|oidc-provider/start.sh|4000|profiles/oidc-provider-browser.toml|--only pkce --only redirect_uri|NODE_EXTRA_CA_CERTS=$NODE_CA|login"
  "oidc-provider-par-required|oidc-provider/start.sh|4000|profiles/oidc-provider-strict.toml|--only par|NODE_EXTRA_CA_CERTS=$NODE_CA PAR_REQUIRED=1|"
  "mcp-ts|mcp-ts/start.sh|3000 3001|profiles/mcp-ts.toml|--skip authorization_code --skip token_endpoint --skip token_lifecycle --skip revocation --skip dcr --skip audience --skip transport --skip scopes --skip client_credentials||"
  "mcp-ts-flow|mcp-ts/start.sh|3000 3001|profiles/mcp-ts.toml|${FLOW_AREAS[*]}||"
  "mcp-ts-lifecycle|mcp-ts/start.sh|3000 3001|profiles/mcp-ts.toml|${LIFECYCLE_AREAS[*]}||"
  "mcp-ts-audience|mcp-ts/start.sh|3000 3001|profiles/mcp-ts.toml|${AUDIENCE_AREAS[*]}||"
  "mcp-ts-rs|mcp-ts/start.sh|3000 3001|profiles/mcp-ts.toml|${RS_AREAS[*]}||login"
  "authlib|authlib/start.sh|4100|profiles/authlib.toml|--skip rt-concurrent --skip code-concurrent-redeem||login+wrong"
  "authlib-idjag|authlib/start.sh|4110|profiles/authlib-idjag.toml|--only id_jag|IDJAG_ISSUER=https://127.0.0.1:4190/idp IDJAG_KEY_FILE=$IDJAG_KEY|"
  "django-oauth-toolkit|django-oauth-toolkit/start.sh|4200|profiles/django-oauth-toolkit.toml|--skip rt-concurrent||login+wrong"
  "openauth|openauth/start.sh|4300|profiles/openauth.toml|||login+wrong"
  "better-auth|better-auth/start.sh|4400|profiles/better-auth.toml|--skip rt-concurrent --skip code-concurrent-redeem|NODE_EXTRA_CA_CERTS=$NODE_CA|login+wrong"
  "oidc-provider-strict-lifecycle|oidc-provider/start.sh|4000|profiles/oidc-provider-strict.toml|${CAMPAIGN[*]}|NODE_EXTRA_CA_CERTS=$NODE_CA|"
  "oidc-provider-misconfigured-lifecycle|oidc-provider/start-misconfigured.sh|4001|profiles/oidc-provider-misconfigured.toml|${CAMPAIGN[*]}|NODE_EXTRA_CA_CERTS=$NODE_CA|"
  "mcp-ts-campaign|mcp-ts/start.sh|3000 3001|profiles/mcp-ts.toml|${SMALL_CAMPAIGN[*]}||"
  "authlib-lifecycle|authlib/start.sh|4100|profiles/authlib.toml|${CAMPAIGN_NO_RACES[*]}||"
  "django-oauth-toolkit-lifecycle|django-oauth-toolkit/start.sh|4200|profiles/django-oauth-toolkit.toml|${CAMPAIGN_NO_RACES[*]}||"
  "openauth-lifecycle|openauth/start.sh|4300|profiles/openauth.toml|${CAMPAIGN[*]}||"
  "better-auth-lifecycle|better-auth/start.sh|4400|profiles/better-auth.toml|${CAMPAIGN_NO_RACES[*]}|NODE_EXTRA_CA_CERTS=$NODE_CA|"
)

# RUNS="name ...": keep only the runs named; an unknown name is a usage error.
if [ -n "${RUNS:-}" ]; then
  declare -a SELECTED=()
  for want in $RUNS; do
    found=0
    for entry in "${RUN_LIST[@]}"; do
      if [ "${entry%%|*}" = "$want" ]; then SELECTED+=("$entry"); found=1; fi
    done
    [ "$found" = 1 ] || { echo "error: RUNS names an unknown run: $want" >&2; exit 2; }
  done
  RUN_LIST=("${SELECTED[@]}")
fi

# Where a start script lives: this repository's scripts/targets, else the shared targets.
script_path() { # script (relative)
  if [ -f "$PROJECT_TARGETS/$1" ]; then echo "$PROJECT_TARGETS/$1"; else echo "$TARGETS/$1"; fi
}

declare -A PID=()
cleanup() {
  local name pid
  for name in "${!PID[@]}"; do
    pid="${PID[$name]}"
    # Each server runs in its own process group (setsid), so npm children die with it too.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for name in "${!PID[@]}"; do
    pid="${PID[$name]}"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  PID=()
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

answers() { curl -s -o /dev/null --max-time 3 "http://127.0.0.1:$1/"; }

show_log() {
  echo "---- last 40 lines of $LOGDIR/$1.log ----" >&2
  tail -n 40 "$LOGDIR/$1.log" >&2 || true
  echo "----" >&2
}

start() { # name script "port [other ports]" "VAR=value ..."
  local name="$1" script="$2" ports="$3" extra_env="$4" port
  for port in $ports; do
    if answers "$port"; then
      echo "error: something already answers on 127.0.0.1:$port; stop it before running $name" >&2
      exit 2
    fi
  done
  port="${ports%% *}"
  echo "starting $name on port(s) $ports ($script)"
  local -a envs=()
  # shellcheck disable=SC2206 # VAR=value words, none with spaces
  [ -n "$extra_env" ] && envs=($extra_env)
  local -a cmd=(env "PORT=$port" "${envs[@]}" bash "$(script_path "$script")")
  command -v setsid >/dev/null && cmd=(setsid "${cmd[@]}")
  "${cmd[@]}" </dev/null >"$LOGDIR/$name.log" 2>&1 &
  PID[$name]=$!
}

wait_up() { # name "port [other ports]"
  local name="$1" ports="$2" port t0=$SECONDS
  for port in $ports; do
    while ! answers "$port"; do
      if ! kill -0 "${PID[$name]}" 2>/dev/null; then
        echo "error: $name exited before answering on port $port" >&2
        show_log "$name"; exit 1
      fi
      if (( SECONDS - t0 >= START_TIMEOUT )); then
        echo "error: $name did not answer on port $port within ${START_TIMEOUT}s" >&2
        show_log "$name"; exit 1
      fi
      sleep 1
    done
  done
  echo "$name answers on port(s) $ports after $((SECONDS - t0))s"
}

# `authconform login` against a started server: a complete trace and exit 0; with `login+wrong`,
# the profile's password variable set wrong must exit 1 and name the failed step.
login_checks() { # name profile check
  local name="$1" profile="$2" check="$3" rc var
  mkdir -p "reports/$name"
  set +e
  "$BIN" login --config "$profile" --no-color >"reports/$name/login.txt" 2>&1
  rc=$?
  set -e
  if [ "$rc" -ne 0 ] || ! grep -q '^login ok' "reports/$name/login.txt"; then
    echo "error: authconform login --config $profile exited $rc" >&2
    tail -n 30 "reports/$name/login.txt" >&2; return 1
  fi
  echo "$name: $(grep '^login ok' "reports/$name/login.txt")"
  [ "$check" = "login+wrong" ] || return 0
  var="$(sed -n 's/^password_env = "\(.*\)"/\1/p' "$profile" | head -n 1)"
  set +e
  env "$var=authconform-wrong-password" "$BIN" login --config "$profile" --no-color >"reports/$name/login-wrong.txt" 2>&1
  rc=$?
  set -e
  if [ "$rc" -ne 1 ] || ! grep -q 'login FAILED at' "reports/$name/login-wrong.txt"; then
    echo "error: authconform login with a wrong password ($var) exited $rc, expected 1 naming the failed step" >&2
    tail -n 30 "reports/$name/login-wrong.txt" >&2; return 1
  fi
  echo "$name: wrong password: $(grep 'login FAILED at' "reports/$name/login-wrong.txt" | head -n 1 | cut -c1-200)"
}

# One run: start its server, run authconform against it, stop the server. Appends a line to
# $SUMMARY_FILE; returns 1 when the run failed.
run_one() { # entry
  local name script ports profile selection server_env login_check
  IFS='|' read -r name script ports profile selection server_env login_check <<<"$1"
  start "$name" "$script" "$ports" "$server_env"
  wait_up "$name" "$ports"
  if [ -n "$login_check" ] && [ "$MODE" = check ] && ! login_checks "$name" "$profile" "$login_check"; then
    echo "$name: authconform login FAILED (reports/$name/login*.txt)" >>"$SUMMARY_FILE"
    cleanup; return 1
  fi
  local expect="tests/expected/$name.toml"
  local -a args
  if [[ "$selection" == fuzz* ]]; then
    # shellcheck disable=SC2206 # the command and its flags
    args=($selection --config "$profile" --report-dir "reports/$name" --no-color)
  else
    # shellcheck disable=SC2206 # the selection is a list of flags
    args=(run --config "$profile" --report-dir "reports/$name" --no-color $selection)
    if [ -n "${CONCURRENCY:-}" ]; then args+=(--concurrency "$CONCURRENCY"); fi
  fi
  if [ "$MODE" = write ]; then
    args+=(--write-expect "$expect")
  elif [ -f "$expect" ]; then
    args+=(--expect "$expect")
  else
    echo "error: $expect is missing (run with --write to create it)" >&2
    echo "$name: no expectation file" >>"$SUMMARY_FILE"; cleanup; return 1
  fi
  echo
  echo "==== $name: $BIN ${args[*]}"
  local t0=$SECONDS rc failed=0
  set +e
  "$BIN" "${args[@]}"
  rc=$?
  set -e
  # --write: exit 1 only means MUST findings (expected on real servers); 2 is a usage/config error.
  if [ "$MODE" = write ] && [ "$rc" -le 1 ]; then
    echo "$name: wrote $expect (exit $rc, $((SECONDS - t0))s)" >>"$SUMMARY_FILE"
  elif [ "$rc" -eq 0 ]; then
    echo "$name: ok ($((SECONDS - t0))s)" >>"$SUMMARY_FILE"
  else
    echo "$name: FAILED, exit $rc ($((SECONDS - t0))s)" >>"$SUMMARY_FILE"
    failed=1
  fi
  if ! kill -0 "${PID[$name]}" 2>/dev/null; then
    echo "error: $name stopped during the run" >&2
    show_log "$name"; failed=1
  fi
  cleanup
  return "$failed"
}

# The runs go in lanes that share no port: one lane per port set, the lanes side by side (most of
# an oidc-provider run is a 60 s wait for its tokens to expire), the runs of a lane one after
# another. Each lane's output goes to its own file, printed whole when the lane ends.
# First, each target installs itself (its start script runs `npm install` on first use) with
# nothing else running: two lanes must not install into the same folder at once.
declare -A WARMED=()
for entry in "${RUN_LIST[@]}"; do
  IFS='|' read -r name script ports _ _ server_env _ <<<"$entry"
  dir="$(dirname "$(script_path "$script")")"
  [ -z "${WARMED[$dir]+x}" ] || continue
  WARMED[$dir]=1
  start "$name-install" "$script" "$ports" "$server_env"
  wait_up "$name-install" "$ports"
  cleanup
done

SUMMARY_FILE="$LOGDIR/summary.txt"
: >"$SUMMARY_FILE"
declare -A LANES=()
declare -a LANE_ORDER=()
for entry in "${RUN_LIST[@]}"; do
  IFS='|' read -r _ _ ports _ _ _ _ <<<"$entry"
  [ -n "${LANES[$ports]+x}" ] || LANE_ORDER+=("$ports")
  LANES[$ports]+="$entry"$'\n'
done
declare -a LANE_PIDS=()
for ports in "${LANE_ORDER[@]}"; do
  out="$LOGDIR/lane-${ports// /-}.out"
  (
    PID=()
    trap cleanup EXIT
    lane_fail=0
    while IFS= read -r entry; do
      [ -n "$entry" ] || continue
      run_one "$entry" || lane_fail=1
    done <<<"${LANES[$ports]}"
    exit "$lane_fail"
  ) >"$out" 2>&1 &
  LANE_PIDS+=("$!:$out")
done
fail=0
for lp in "${LANE_PIDS[@]}"; do
  if ! wait "${lp%%:*}"; then fail=1; fi
  echo
  echo "######## lane output: ${lp#*:}"
  cat "${lp#*:}"
done
mapfile -t SUMMARY <"$SUMMARY_FILE"

echo
echo "real servers:"
printf '  %s\n' "${SUMMARY[@]}"
if [ "$fail" -ne 0 ]; then
  [ "$MODE" = check ] && echo "a verdict changed: review reports/<target>/results.json; if the change is right, rerun with --write and commit the diff" >&2
  exit 1
fi
