#!/usr/bin/env bash
# Drives the sandbox with the official `openai` Python SDK from PyPI (tests/sdk/check.py):
# installs the pinned SDK into a venv under target/, builds and starts
# `openai-governor sandbox` on a free loopback port, runs the checks, stops the sandbox.
# Works unattended (CI=true, no stdin); exits non-zero when any check fails.
set -euo pipefail
cd "$(dirname "$0")/../.."

OPENAI_SDK_VERSION="3.51.0" # has client.admin.organization (resources/admin/...)
PYTHON="${PYTHON:-python3}"
VENV="target/sdk-venv"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
BIN="$TARGET_DIR/debug/openai-governor"

echo "sdk: openai==$OPENAI_SDK_VERSION in $VENV"
if ! "$VENV/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$OPENAI_SDK_VERSION')" 2>/dev/null; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    "openai==$OPENAI_SDK_VERSION"
fi

echo "sdk: building openai-governor"
cargo build --locked --quiet --bin openai-governor

OUT="$(mktemp)"
SANDBOX_PID=""
cleanup() {
  if [ -n "$SANDBOX_PID" ]; then
    kill "$SANDBOX_PID" 2>/dev/null || true
    wait "$SANDBOX_PID" 2>/dev/null || true
  fi
  rm -f "$OUT"
}
trap cleanup EXIT

"$BIN" sandbox --listen 127.0.0.1:0 >"$OUT" 2>/dev/null </dev/null &
SANDBOX_PID=$!
for _ in $(seq 1 100); do
  grep -q '^key all ' "$OUT" && break
  kill -0 "$SANDBOX_PID" 2>/dev/null || { echo "sdk: the sandbox exited early" >&2; exit 1; }
  sleep 0.1
done
BASE_URL="$(awk '$1 == "base_url" { print $2 }' "$OUT")"
ADMIN_KEY="$(awk '$1 == "key" && $2 == "all" { print $3 }' "$OUT")"
if [ -z "$BASE_URL" ] || [ -z "$ADMIN_KEY" ]; then
  echo "sdk: the sandbox printed no base_url or 'all' key" >&2
  exit 1
fi
echo "sdk: sandbox at $BASE_URL"

# Only what check.py is given: no stray OpenAI settings from the environment.
env -u OPENAI_API_KEY -u OPENAI_ADMIN_KEY -u OPENAI_BASE_URL -u OPENAI_ORG_ID -u OPENAI_PROJECT_ID \
  SANDBOX_BASE_URL="$BASE_URL" SANDBOX_ADMIN_KEY="$ADMIN_KEY" \
  "$VENV/bin/python" tests/sdk/check.py </dev/null
