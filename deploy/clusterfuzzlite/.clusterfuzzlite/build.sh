#!/bin/bash -eu
# ClusterFuzzLite build: every cargo-fuzz target of fuzz/ (its own workspace; the targets depend
# on authconform-core alone) into $OUT, each with its committed seed corpus as
# <target>_seed_corpus.zip. $SANITIZER and the flags come from the base image.
cd "$SRC/authconform/fuzz"
cargo fuzz build -O --debug-assertions
out_dir=target/x86_64-unknown-linux-gnu/release
for target in $(cargo fuzz list); do
  cp "$out_dir/$target" "$OUT/"
  if [ -d "corpus/$target" ] && [ -n "$(ls -A "corpus/$target")" ]; then
    (cd "corpus/$target" && zip -q -r "$OUT/${target}_seed_corpus.zip" .)
  fi
done
