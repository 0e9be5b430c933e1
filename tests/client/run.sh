#!/usr/bin/env bash
# Proves that a portal can generate a client from the committed OpenAPI document with a
# mainstream generator (openapi-python-client from PyPI) and drive one grant end to end with it:
#   1. generates a client from openapi/openapi.json into target/generated-client (generator
#      warnings are printed; generator errors or skipped endpoints fail the run);
#   2. builds the binary, starts `openai-governor sandbox` and `openai-governor serve` (fresh
#      temp data dir, embedded SQLite, the sandbox allowlisted), mints a token with all scopes;
#   3. runs tests/client/check.py, which uses only the generated client;
#   4. stops everything on exit.
# Works unattended (CI=true, no stdin); exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

GENERATOR_VERSION="0.29.1" # openapi-python-client, latest on PyPI (2026-08)
PYTHON="${PYTHON:-python3}"
VENV="target/client-venv"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
BIN="$TARGET_DIR/debug/openai-governor"
GEN_ROOT="target/generated-client"
PACKAGE="og_client"
SPEC="openapi/openapi.json"

log() { echo "client: $*"; }
fail() { echo "client: FAIL: $*" >&2; exit 1; }

WORK="$(mktemp -d)"
SANDBOX_PID=""
SERVE_PID=""
stop() {
  local pid="$1"
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  stop "$SERVE_PID"
  stop "$SANDBOX_PID"
  if [ "$rc" -ne 0 ] && [ -s "$WORK/serve.log" ]; then
    echo "client: last lines of the service's log:" >&2
    tail -n 30 "$WORK/serve.log" >&2 || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the generator, pinned ---------------------------------------------------------------
log "openapi-python-client==$GENERATOR_VERSION in $VENV"
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('openapi-python-client') != '$GENERATOR_VERSION')" 2>/dev/null; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    "openapi-python-client==$GENERATOR_VERSION"
fi

# --- 1. generate ------------------------------------------------------------------------
GEN_SPEC="$SPEC"

cat >"$WORK/generator.yml" <<EOF
project_name_override: openai-governor-client
package_name_override: $PACKAGE
EOF
log "generating $PACKAGE from $GEN_SPEC into $GEN_ROOT"
mkdir -p "$GEN_ROOT"
rm -rf "${GEN_ROOT:?}/$PACKAGE"
gen_rc=0
# The venv's bin on PATH: the generator's post hooks (ruff, a dependency) format the output.
PATH="$PWD/$VENV/bin:$PATH" "$VENV/bin/openapi-python-client" generate \
  --path "$GEN_SPEC" --output-path "$GEN_ROOT/$PACKAGE" --meta none \
  --config "$WORK/generator.yml" --overwrite </dev/null >"$WORK/generate.log" 2>&1 || gen_rc=$?
sed 's/^/generator: /' "$WORK/generate.log"
# The generator reports a skipped endpoint as a warning ("Endpoint will not be generated") and
# any error (an invalid document) as "Error(s) encountered ... client was not created".
skipped="$(grep -E 'Endpoint will not be generated' "$WORK/generate.log" || true)"
omitted="$(grep -cE 'response will be omitted' "$WORK/generate.log" || true)"
if [ "$gen_rc" -ne 0 ] || grep -q 'client was not created' "$WORK/generate.log"; then
  # One line per validation error: where in the document, and what pydantic said.
  awk '/^(paths|components|info|webhooks)[.]/ { where = $0; next }
       where != "" && NF { sub(/^ +/, ""); sub(/ \[type=.*/, ""); print "client: invalid: " where ": " $0; where = "" }' \
    "$WORK/generate.log" >&2
  errors="$(grep -cE '^(paths|components|info|webhooks)[.]' "$WORK/generate.log" || true)"
  fail "the generator refused $SPEC (exit $gen_rc, ${errors:-0} validation errors listed above)"
fi
if [ -n "$skipped" ]; then
  echo "$skipped" | sed 's/^/client: skipped: /' >&2
  fail "the generator skipped $(echo "$skipped" | wc -l) endpoint(s)"
fi
[ -f "$GEN_ROOT/$PACKAGE/__init__.py" ] || fail "no package generated in $GEN_ROOT/$PACKAGE"
log "generated; ${omitted:-0} response(s) omitted by the generator (warnings above)"

# --- 2. the binary, the sandbox, the service ----------------------------------------------
log "building openai-governor"
cargo build --locked --quiet --bin openai-governor

"$BIN" sandbox --listen 127.0.0.1:0 >"$WORK/sandbox.out" 2>"$WORK/sandbox.log" </dev/null &
SANDBOX_PID=$!
for _ in $(seq 1 100); do
  grep -q '^key all ' "$WORK/sandbox.out" && break
  kill -0 "$SANDBOX_PID" 2>/dev/null || fail "the sandbox exited early: $(tail -n 5 "$WORK/sandbox.log")"
  sleep 0.1
done
SANDBOX_BASE_URL="$(awk '$1 == "base_url" { print $2 }' "$WORK/sandbox.out")"
SANDBOX_ADMIN_KEY="$(awk '$1 == "key" && $2 == "all" { print $3 }' "$WORK/sandbox.out")"
[ -n "$SANDBOX_BASE_URL" ] && [ -n "$SANDBOX_ADMIN_KEY" ] ||
  fail "the sandbox printed no base_url or 'all' key"
log "sandbox at $SANDBOX_BASE_URL"

# Only the settings this run gives: nothing from the caller's environment.
unset DATABASE_URL $(compgen -e | grep '^OG_' || true)
DATA="$WORK/data"
mkdir -m 0700 "$DATA"
export DATABASE_URL="sqlite://$DATA/openai-governor.db"
export OG_DATA_DIR="$DATA"
export OG_OPENAI_ALLOWED_BASE_URLS="$SANDBOX_BASE_URL"
export OG_LOG="warn"
export OG_LOG_FORMAT="json"

"$BIN" serve --listen 127.0.0.1:0 >"$WORK/serve.out" 2>"$WORK/serve.log" </dev/null &
SERVE_PID=$!
SERVICE_URL=""
for _ in $(seq 1 300); do
  SERVICE_URL="$(awk '$1 == "listening" && $2 == "on" { print $3; exit }' "$WORK/serve.out")"
  [ -n "$SERVICE_URL" ] && break
  kill -0 "$SERVE_PID" 2>/dev/null || fail "the service exited early"
  sleep 0.1
done
[ -n "$SERVICE_URL" ] || fail "the service printed no 'listening on' line"
ready=""
for _ in $(seq 1 100); do
  if curl -fsS -o /dev/null "$SERVICE_URL/readyz" 2>/dev/null; then ready=1; break; fi
  kill -0 "$SERVE_PID" 2>/dev/null || fail "the service exited early"
  sleep 0.1
done
[ -n "$ready" ] || fail "$SERVICE_URL/readyz never answered 200"
log "service at $SERVICE_URL"

TOKEN="$("$BIN" token --sub client-check </dev/null)" || fail "openai-governor token failed"
[ -n "$TOKEN" ] || fail "openai-governor token printed nothing"

# --- 3. the check, with the generated client only -----------------------------------------
check_rc=0
SERVICE_URL="$SERVICE_URL" SERVICE_TOKEN="$TOKEN" \
  SANDBOX_BASE_URL="$SANDBOX_BASE_URL" SANDBOX_ADMIN_KEY="$SANDBOX_ADMIN_KEY" \
  PYTHONPATH="$PWD/$GEN_ROOT" PYTHONDONTWRITEBYTECODE=1 \
  "$VENV/bin/python" tests/client/check.py </dev/null || check_rc=$?
[ "$check_rc" -eq 0 ] || fail "tests/client/check.py failed (exit $check_rc)"

log "passed"
