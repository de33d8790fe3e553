#!/usr/bin/env bash
# Creates (or brings up to date) what the application tests run on, from the
# package registries only:
#   target/apps/py      Python venv: tests/apps/requirements.txt
#   target/apps/py-arq  Python venv: tests/apps/requirements-arq.txt (arq
#                       needs redis-py < 6)
#   tests/apps/node/node_modules  npm ci from tests/apps/node/package-lock.json
# A venv is rebuilt only when its requirements file changed.
#
#   scripts/apps-setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root="${FERROKEY_APPS_ENV:-$PWD/target/apps}"
mkdir -p "$root"

make_venv() {
    local venv="$1" requirements="$2"
    local stamp="$venv/.requirements"
    if [ -x "$venv/bin/python" ] && cmp -s "$requirements" "$stamp"; then
        return
    fi
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$stamp"
    echo "apps-setup: $venv ready"
}

make_venv "$root/py" tests/apps/requirements.txt
make_venv "$root/py-arq" tests/apps/requirements-arq.txt

node_dir=tests/apps/node
if ! cmp -s "$node_dir/package-lock.json" "$node_dir/node_modules/.package-lock.json" 2>/dev/null \
    || [ ! -d "$node_dir/node_modules/bullmq" ]; then
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
    echo "apps-setup: $node_dir/node_modules ready"
fi
