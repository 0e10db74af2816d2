#!/usr/bin/env bash
# Provisioning for profiles/better-auth.toml ([login] provision): signs up every test user of the
# run's pool through better-auth's own sign-up API, so the pool's users exist on a server whose
# store is in memory (a restart forgets them). authconform runs it once before the run, without a
# shell, with the pool's usernames in AUTHCONFORM_USERNAMES; every user's password is
# TEST_PASSWORD (the profile names that variable for each). A user that already exists is fine.
#
# Usage: make-users.sh ORIGIN   (e.g. http://127.0.0.1:4400)
set -euo pipefail
origin="${1:?usage: make-users.sh ORIGIN}"
: "${TEST_PASSWORD:?TEST_PASSWORD must be set}"
: "${AUTHCONFORM_USERNAMES:?run by authconform: AUTHCONFORM_USERNAMES lists the pool}"
for email in $AUTHCONFORM_USERNAMES; do
  name="${email%%@*}"
  body="$(printf '{"email":"%s","password":"%s","name":"%s"}' "$email" "$TEST_PASSWORD" "$name")"
  status="$(curl -s -o /tmp/authconform-make-users.$$ -w '%{http_code}' --max-time 10 \
    -H 'Content-Type: application/json' -H "Origin: $origin" \
    -X POST "$origin/api/auth/sign-up/email" --data "$body")"
  case "$status" in
    200) echo "$email: created" ;;
    422|400) if grep -qi 'already exists' /tmp/authconform-make-users.$$; then echo "$email: exists"; else echo "$email: $status $(cat /tmp/authconform-make-users.$$)"; rm -f /tmp/authconform-make-users.$$; exit 1; fi ;;
    *) echo "$email: $status $(cat /tmp/authconform-make-users.$$)"; rm -f /tmp/authconform-make-users.$$; exit 1 ;;
  esac
  rm -f /tmp/authconform-make-users.$$
done
