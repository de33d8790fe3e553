#!/usr/bin/env bash
# Long fuzz run of the RDB reader and DUMP payload decoder (stable Rust, no
# coverage instrumentation: see formats/examples/fuzz_rdb/).
#
# Seeds: every .rdb under the fixtures (../shared/fixtures/rdb and the
# repository's fixtures/rdb) - each file, plus a one-key file and a DUMP
# payload per sampled key - and the inputs in formats/tests/fuzz-regressions.
# Mutants are structure-aware and get a valid checksum; each one is read
# under catch_unwind, a 2 s limit and an allocation guard (64 bytes per input
# byte + 16 MiB), and what decodes is written back and read again.
# Single-threaded. Prints mutants tried, unique crashes and mutants/second;
# new crashes are minimized into $CRASHES (kind-id.rdb|.dump + .txt report).
# Exit status 1 when $CRASHES holds any crash.
#
#   scripts/fuzz-rdb.sh                  # 1800 s
#   FUZZ_SECONDS=300 SEED=7 scripts/fuzz-rdb.sh
#   CRASHES=/tmp/crashes scripts/fuzz-rdb.sh --corpus extra/dir   (more fuzz_rdb options)
# The build goes to $CARGO_TARGET_DIR when it is set (else target/).
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-1800}
SEED=${SEED:-$(date +%s)}
target_dir=${CARGO_TARGET_DIR:-target}
case "$target_dir" in /*) ;; *) target_dir=$(pwd)/$target_dir ;; esac
CRASHES=${CRASHES:-$target_dir/fuzz-rdb/crashes}
mkdir -p "$CRASHES"

corpus=()
for dir in ../shared/fixtures/rdb fixtures/rdb formats/tests/fuzz-regressions; do
  [ -d "$dir" ] && corpus+=(--corpus "$dir")
done

cargo build --release --quiet -p ferrokey-formats --example fuzz_rdb
echo "fuzz-rdb: $FUZZ_SECONDS s, seed $SEED, crashes in $CRASHES"
exec "$target_dir/release/examples/fuzz_rdb" --seconds "$FUZZ_SECONDS" --seed "$SEED" \
  --crashes "$CRASHES" "${corpus[@]}" "$@"
