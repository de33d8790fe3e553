#!/usr/bin/env bash
# The long variants of the application tests (not run in CI): more tasks,
# jobs and restarts than the CI-sized defaults. Each suite prints its own
# counts; the figures go in the issue notes.
#
#   scripts/apps-long.sh
#   CELERY_TASKS=100000 RQ_JOBS=10000 ARQ_JOBS=10000 BULLMQ_JOBS=5000 BULLMQ_RESTARTS=5 scripts/apps-long.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CELERY_TASKS="${CELERY_TASKS:-100000}"
export RQ_JOBS="${RQ_JOBS:-10000}"
export ARQ_JOBS="${ARQ_JOBS:-10000}"
export BULLMQ_JOBS="${BULLMQ_JOBS:-5000}"
export BULLMQ_RESTARTS="${BULLMQ_RESTARTS:-5}"
cargo build --quiet --bin ferrokey-server
bash scripts/apps-setup.sh
apps="${FERROKEY_APPS_ENV:-$PWD/target/apps}"

status=0
# Runs one suite in a directory, timing it; a failure is remembered.
run_in() {
    local dir="$1" started=$SECONDS
    shift
    echo "== $dir: $*"
    (cd "$dir" && "$@") || status=1
    echo "== $(( SECONDS - started )) s"
}
run_in tests/apps "$apps/py/bin/python" -m pytest -q -s python/test_celery.py python/test_rq.py
run_in tests/apps "$apps/py-arq/bin/python" -m pytest -q -s arq
run_in tests/apps/node node --test --test-concurrency=1
exit $status
