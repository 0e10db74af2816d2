#!/usr/bin/env bash
# OpenAuth 0.4.3 (@openauthjs/openauth, npm) as a standalone issuer on Node (@hono/node-server),
# configured in server.mjs with its defaults and a plain HTML sign-in form: RFC 8414 metadata,
# authorization code with optional PKCE, refresh tokens, JWT access tokens, JWKS; no client
# registry, no DCR, no revocation. Issuer http://127.0.0.1:$PORT, no MCP endpoint. Loopback only;
# state in memory.
# Usage: PORT=4300 ./start.sh   Stop: kill the PID (this script execs node).
# Installs into $TARGETS_HOME (default ~/.cache/authconform-targets) on first use with `npm ci`
# from the committed package-lock.json (reinstalled when the lock file changes).
set -euo pipefail
SRC="$(cd "$(dirname "$0")" && pwd)"
WORK="${TARGETS_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/authconform-targets}/openauth"
mkdir -p "$WORK"
# server.mjs must sit beside node_modules for its imports to resolve.
cp "$SRC/server.mjs" "$SRC/package.json" "$SRC/package-lock.json" "$WORK/"
STAMP="$(sha256sum "$SRC/package-lock.json" | cut -c1-16)"
if [ "$(cat "$WORK/installed" 2>/dev/null || true)" != "$STAMP" ] || [ ! -d "$WORK/node_modules/@openauthjs/openauth" ]; then
  # Bounded: a registry that does not answer fails the install instead of hanging it.
  (cd "$WORK" && timeout 300 npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "$STAMP" > "$WORK/installed"
fi
export PORT="${PORT:-4300}"
echo "OpenAuth issuer: http://127.0.0.1:$PORT (no MCP endpoint)" >&2
exec node "$WORK/server.mjs"
