#!/usr/bin/env bash
# Authlib 1.9.10 (PyPI): its Flask authorization server, assembled in server.py from Authlib's
# grants, endpoints and SQLAlchemy mixins (PKCE required, refresh rotation, revocation,
# introspection, open DCR, RFC 9207 iss, RFC 8414 metadata), with a plain HTML login and consent
# form. Issuer http://127.0.0.1:$PORT, no MCP endpoint. Loopback only; a fresh SQLite file per start.
# Usage: PORT=4100 ./start.sh   Stop: kill the PID (this script execs python).
# Installs into $TARGETS_HOME (default ~/.cache/authconform-targets) on first use: a venv with the
# versions pinned in requirements.txt (reinstalled when that file changes).
set -euo pipefail
SRC="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../python-venv.sh
. "$SRC/../python-venv.sh"
python_venv authlib "$SRC"
export PORT="${PORT:-4100}"
# One database per port, emptied at every start: each run begins with the seeded users and
# clients only.
export DB="$WORK/db-$PORT.sqlite3"
rm -f "$DB"
echo "Authlib authorization server: issuer http://127.0.0.1:$PORT (no MCP endpoint)" >&2
exec "$WORK/venv/bin/python" -u "$SRC/server.py"
