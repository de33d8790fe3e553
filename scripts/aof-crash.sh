#!/usr/bin/env bash
# The AOF crash test at length: ROUNDS rounds (300 by default) of 8 clients
# writing (SET, INCR, LPUSH, XADD, HSET) with appendfsync always while the
# server is killed with SIGKILL at a random moment; after every restart,
# every acknowledged write must be there. The same test runs 30 rounds in
# `cargo test --test aof_durability`.
#
#   scripts/aof-crash.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-300}
start=$(date +%s)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if AOF_CRASH_ROUNDS=$rounds cargo test --test aof_durability acknowledged_writes_survive_sigkill_at_any_moment \
  -- --exact --nocapture >"$log" 2>&1; then
  grep -E "SIGKILL rounds" "$log"
  echo "aof-crash: $rounds rounds passed in $(( $(date +%s) - start )) s"
else
  cat "$log"
  echo "aof-crash: FAILED after $(( $(date +%s) - start )) s"
  exit 1
fi
