#!/usr/bin/env bash
# Makes (or reuses) the Python virtual environment the integration tests
# drive real Python clients from: redis-py with RESP3 client-side caching
# (redis >= 5.1). Prints the environment's python on its last line.
#
#   scripts/py-venv.sh            # target/py-venv
#   FERROKEY_PY_VENV=dir scripts/py-venv.sh
#
# Exit status: 0 ready; 3 the package registry could not be reached (a
# test may skip on that, saying so); anything else is a real failure.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${FERROKEY_PY_VENV:-$PWD/target/py-venv}"
python="$venv/bin/python"

# The cache API (CacheConfig) arrived in 5.1; 5.x to 8.x keep it.
has_redis_py() {
    "$python" - <<'EOF' 2>/dev/null
import sys
import redis
from redis.cache import CacheConfig  # noqa: F401
major, minor = (int(p) for p in redis.__version__.split(".")[:2])
sys.exit(0 if (major, minor) >= (5, 1) else 1)
EOF
}

if [ ! -x "$python" ]; then
    if ! python3 -m venv "$venv" >&2; then
        echo "py-venv: python3 -m venv failed (is python3-venv installed?)" >&2
        exit 1
    fi
fi

if ! has_redis_py; then
    log="$venv/pip-install.log"
    if ! "$python" -m pip install --quiet --disable-pip-version-check 'redis>=5.1,<9' >"$log" 2>&1; then
        cat "$log" >&2
        if grep -qiE 'connection|resolve|network|timed out|temporary failure|no matching distribution' "$log"; then
            echo "py-venv: the package registry is unreachable" >&2
            exit 3
        fi
        exit 1
    fi
    has_redis_py || { echo "py-venv: redis-py installed but unusable" >&2; exit 1; }
fi
echo "$python"
