#!/usr/bin/env bash
# django-oauth-toolkit 3.4.1 on Django 5.2 (PyPI), configured in server.py: RFC 8414 metadata,
# PKCE (S256 only), refresh rotation with reuse protection, revocation, introspection, open DCR,
# RFC 9207 iss; Django's login form, the toolkit's consent form. Issuer http://127.0.0.1:$PORT,
# no MCP endpoint. Loopback only; a fresh SQLite file per start.
# Usage: PORT=4200 ./start.sh   Stop: kill the PID (this script execs python).
# Installs into $TARGETS_HOME (default ~/.cache/authconform-targets) on first use: a venv with the
# versions pinned in requirements.txt (reinstalled when that file changes).
set -euo pipefail
SRC="$(cd "$(dirname "$0")" && pwd)"
WORK="${TARGETS_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/authconform-targets}/django-oauth-toolkit"
mkdir -p "$WORK"
# The stamp records which requirements the venv holds, so a changed pin reinstalls.
STAMP="$(sha256sum "$SRC/requirements.txt" | cut -c1-16)"
if [ "$(cat "$WORK/installed" 2>/dev/null || true)" != "$STAMP" ]; then
  rm -rf "$WORK/venv" "$WORK/installed"
  python3 -m venv "$WORK/venv"
  # Bounded: a registry that does not answer fails the install instead of hanging it.
  timeout 300 "$WORK/venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
    --timeout 30 --retries 2 -r "$SRC/requirements.txt" >&2
  echo "$STAMP" > "$WORK/installed"
fi
export PORT="${PORT:-4200}"
# One database per port, emptied at every start: each run begins with the seeded users and
# clients only.
export DB="$WORK/db-$PORT.sqlite3"
rm -f "$DB"
echo "django-oauth-toolkit: issuer http://127.0.0.1:$PORT (no MCP endpoint)" >&2
exec "$WORK/venv/bin/python" -u "$SRC/server.py"
