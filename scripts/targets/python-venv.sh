# Sourced by the Python targets' start scripts: `python_venv NAME SRC` installs (or reuses) a
# venv with the versions pinned in SRC/requirements.txt under $TARGETS_HOME (default
# ~/.cache/authconform-targets)/NAME, and sets WORK to that folder.
python_venv() {
  local name="$1" src="$2" stamp
  WORK="${TARGETS_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/authconform-targets}/$name"
  mkdir -p "$WORK"
  # The stamp records which requirements the venv holds, so a changed pin reinstalls.
  stamp="$(sha256sum "$src/requirements.txt" | cut -c1-16)"
  if [ "$(cat "$WORK/installed" 2>/dev/null || true)" != "$stamp" ]; then
    rm -rf "$WORK/venv" "$WORK/installed"
    python3 -m venv "$WORK/venv"
    # Bounded: a registry that does not answer fails the install instead of hanging it.
    timeout 300 "$WORK/venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
      --timeout 30 --retries 2 -r "$src/requirements.txt" >&2
    echo "$stamp" > "$WORK/installed"
  fi
}
