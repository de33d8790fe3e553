#!/usr/bin/env bash
# Runs every test: unit, integration and the differential suite against a
# real valkey-server 8.0.1 (installed first when it is missing).
#
#   scripts/test.sh                  # everything
#   scripts/test.sh --test strings   # any extra arguments go to cargo test
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-valkey.sh
cargo test --workspace "$@"
