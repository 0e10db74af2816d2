#!/usr/bin/env bash
# better-auth 1.7.29 (npm) with its OAuth 2.1 provider plugin, @better-auth/oauth-provider 1.7.29,
# configured in server.mjs as its MCP plugin (@better-auth/mcp) configures it: OAuth 2.1 / OIDC
# authorization server, RFC 8414 metadata (issuer http://127.0.0.1:$PORT/api/auth, path-inserted),
# open Dynamic Client Registration, PKCE S256, refresh tokens (30 s reuse window, as mcp()),
# revocation, introspection, JWT access tokens for the MCP resource http://127.0.0.1:$PORT/mcp
# (not served: no MCP endpoint). Login and consent are JSON APIs behind two script-only pages.
# Loopback only; state in memory (better-auth's memory adapter): the test users
# (alice@example.test, bob@example.test, password $TEST_PASSWORD) and the pre-registered clients
# (static-public; static-confidential, secret $STATIC_SECRET) are created by server.mjs at start.
# Usage: PORT=4400 TEST_PASSWORD=... ./start.sh   Stop: kill the PID (this script execs node).
# Installs into $TARGETS_HOME (default ~/.cache/authconform-targets) on first use with `npm ci`
# from the committed package-lock.json (reinstalled when the lock file changes).
set -euo pipefail
SRC="$(cd "$(dirname "$0")" && pwd)"
WORK="${TARGETS_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/authconform-targets}/better-auth"
mkdir -p "$WORK"
# server.mjs must sit beside node_modules for its imports to resolve.
cp "$SRC/server.mjs" "$SRC/package.json" "$SRC/package-lock.json" "$WORK/"
STAMP="$(sha256sum "$SRC/package-lock.json" | cut -c1-16)"
if [ "$(cat "$WORK/installed" 2>/dev/null || true)" != "$STAMP" ] || [ ! -d "$WORK/node_modules/@better-auth/oauth-provider" ]; then
  # Bounded: a registry that does not answer fails the install instead of hanging it.
  (cd "$WORK" && timeout 300 npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "$STAMP" > "$WORK/installed"
fi
export PORT="${PORT:-4400}"
export TEST_PASSWORD="${TEST_PASSWORD:?TEST_PASSWORD must be set (the test users password)}"
export STATIC_SECRET="${STATIC_SECRET:-static-secret}"
echo "better-auth issuer: http://127.0.0.1:$PORT/api/auth (no MCP endpoint)" >&2
exec node "$WORK/server.mjs"
