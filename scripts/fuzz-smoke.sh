#!/usr/bin/env bash
# Bounded smoke run of the cargo-fuzz targets in fuzz/: builds every target, then runs each for
# FUZZ_SECONDS (default 30) from its committed seed corpus (fuzz/corpus/<target>/). New inputs go
# to a scratch directory, so the committed corpus does not grow. Fails on any crash, leak, timeout
# or out-of-memory (the reproducer is left in fuzz/artifacts/<target>/).
#
# Needs a nightly toolchain. Without one it says why and exits 0 (a stable-only machine skips the
# smoke). With nightly but no cargo-fuzz it installs cargo-fuzz first (`cargo install --locked
# cargo-fuzz`, about 2 minutes on 2 cores; bounded by FUZZ_INSTALL_TIMEOUT seconds, default 900),
# so a fresh CI machine runs the phase instead of skipping it; FUZZ_INSTALL=0 skips instead.
#
#   FUZZ_SECONDS=30 FUZZ_TARGETS="www_authenticate jwt" bash scripts/fuzz-smoke.sh
#   FUZZ_BUILD_ONLY=1 bash scripts/fuzz-smoke.sh    # install and build only (CI starts the build
#                                                   # early, in the background, and runs later)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECONDS_EACH="${FUZZ_SECONDS:-30}"
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"

if ! command -v rustup >/dev/null 2>&1 || ! rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1; then
  echo "fuzz smoke skipped: no $TOOLCHAIN toolchain (rustup toolchain install $TOOLCHAIN)"
  exit 0
fi
if ! cargo "+$TOOLCHAIN" fuzz --version >/dev/null 2>&1; then
  if [ "${FUZZ_INSTALL:-1}" = 0 ]; then
    echo "fuzz smoke skipped: cargo-fuzz is not installed (cargo install --locked cargo-fuzz)"
    exit 0
  fi
  echo "cargo-fuzz is not installed: installing it (cargo install --locked cargo-fuzz)"
  # Built with the default toolchain (cargo-fuzz itself needs no nightly); a failure or a
  # timeout fails the phase: a machine that has nightly is meant to run the smoke.
  t0=$SECONDS
  timeout "${FUZZ_INSTALL_TIMEOUT:-900}" cargo install --locked cargo-fuzz
  echo "cargo-fuzz installed in $((SECONDS - t0))s"
fi
echo "$(rustup run "$TOOLCHAIN" rustc --version); $(cargo "+$TOOLCHAIN" fuzz --version)"

cd fuzz
if [ -n "${FUZZ_TARGETS:-}" ]; then
  read -r -a targets <<<"$FUZZ_TARGETS"
else
  mapfile -t targets < <(cargo "+$TOOLCHAIN" fuzz list)
fi
[ "${#targets[@]}" -gt 0 ] || { echo "error: no fuzz targets found" >&2; exit 1; }

echo "building ${#targets[@]} targets: ${targets[*]}"
# No sanitizer: the code under test is safe Rust (ASan finds nothing there that a panic would
# not), and an uninstrumented build of the dependency tree is several minutes shorter.
SANITIZER="${FUZZ_SANITIZER:-none}"
t0=$SECONDS
cargo "+$TOOLCHAIN" fuzz build -s "$SANITIZER"
echo "fuzz targets built in $((SECONDS - t0))s"
if [ "${FUZZ_BUILD_ONLY:-0}" = 1 ]; then
  exit 0
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=()
summary=()
for t in "${targets[@]}"; do
  echo
  echo "--- $t (${SECONDS_EACH}s)"
  mkdir -p "$scratch/$t" "corpus/$t"
  log="$scratch/$t.log"
  # First directory receives new inputs; the committed seeds are read only.
  if cargo "+$TOOLCHAIN" fuzz run -s "$SANITIZER" "$t" "$scratch/$t" "corpus/$t" -- \
      -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      >"$log" 2>&1; then
    status=ok
  else
    status=CRASH
    failed+=("$t")
    grep -E "^(==[0-9]+==|SUMMARY|thread '|panicked|artifact_prefix|Test unit written)" "$log" | head -20 || true
    tail -n 30 "$log"
  fi
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
  cov="$(grep -Eo 'cov: [0-9]+' "$log" | tail -n 1 | grep -Eo '[0-9]+' || true)"
  line="$t: $status, ${runs:-?} runs, ${rate:-?} exec/s, cov ${cov:-?}, corpus $(ls "corpus/$t" | wc -l) seeds + $(ls "$scratch/$t" | wc -l) new"
  echo "$line"
  summary+=("$line")
done

echo
echo "=== fuzz smoke summary"
printf '  %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz smoke FAILED: ${failed[*]} (reproducers in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz smoke passed"
