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
# shellcheck source=../python-venv.sh
. "$SRC/../python-venv.sh"
python_venv django-oauth-toolkit "$SRC"
export PORT="${PORT:-4200}"
# One database per port, emptied at every start: each run begins with the seeded users and
# clients only.
export DB="$WORK/db-$PORT.sqlite3"
rm -f "$DB"
echo "django-oauth-toolkit: issuer http://127.0.0.1:$PORT (no MCP endpoint)" >&2
exec "$WORK/venv/bin/python" -u "$SRC/server.py"
