#!/usr/bin/env bash
# The application tests: real client libraries and job queues (redis-py,
# valkey-py, FastAPI sessions, Celery, RQ, arq, BullMQ) against the
# ferrokey-server binary, each test on its own port and data directory.
#
#   scripts/apps-test.sh                 # everything
#   scripts/apps-test.sh -k celery       # extra arguments go to pytest
#
# Builds the server (debug, as cargo test does) and the environments first
# (scripts/apps-setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --bin ferrokey-server
bash scripts/apps-setup.sh
apps="${FERROKEY_APPS_ENV:-$PWD/target/apps}"

status=0
(cd tests/apps && "$apps/py/bin/python" -m pytest python "$@") || status=1
(cd tests/apps && "$apps/py-arq/bin/python" -m pytest arq "$@") || status=1
if [ $# -eq 0 ]; then
    (cd tests/apps/node && node --test --test-concurrency=1) || status=1
fi
exit $status
