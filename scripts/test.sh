#!/usr/bin/env bash
# Runs every test: unit, integration and the differential suite against a
# real valkey-server 8.0.1 (installed first when it is missing), then the
# application tests (real client libraries and job queues from PyPI and the
# npm registry, tests/apps).
#
#   scripts/test.sh                  # everything
#   scripts/test.sh --test strings   # only cargo test, with these arguments
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-valkey.sh
cargo test --workspace "$@"
if [ $# -eq 0 ]; then
    bash scripts/apps-test.sh
fi
