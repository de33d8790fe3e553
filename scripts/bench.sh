#!/usr/bin/env bash
# Throughput of ferrokey against valkey-server in one run.
#
# Builds ferrokey in release mode, starts it and valkey-server with
# persistence off on free ports, and runs valkey-benchmark against each in
# turn (A B A B ...) for ROUNDS rounds, with and without pipelining. Prints
# the median requests/second of each and the ratio ferrokey/valkey.
#
#   scripts/bench.sh                 # 3 rounds, 200000 requests per test
#   ROUNDS=5 REQUESTS=500000 scripts/bench.sh
#   TESTS=set,get,incr,lpush scripts/bench.sh
#   EXTRA_ARGS="--appendonly yes --appendfsync always" scripts/bench.sh   (both servers)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-200000}
TESTS=${TESTS:-set,get,incr}
CLIENTS=${CLIENTS:-50}
PIPELINES=${PIPELINES:-"1 16"}
EXTRA_ARGS=${EXTRA_ARGS:-}
bash scripts/install-valkey.sh >/dev/null
cargo build --release --quiet --bin ferrokey-server
FERROKEY=$(pwd)/target/release/ferrokey-server

work=$(mktemp -d)
cleanup() {
  [ -n "${fk_pid:-}" ] && kill "$fk_pid" 2>/dev/null || true
  [ -n "${vk_pid:-}" ] && kill "$vk_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { for _ in $(seq 1 100); do valkey-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "server on $1 did not start" >&2; exit 1; }

fk_port=$(free_port); vk_port=$(free_port)
mkdir -p "$work/fk" "$work/vk"
# shellcheck disable=SC2086
"$FERROKEY" --port "$fk_port" --bind 127.0.0.1 --dir "$work/fk" --save "" --appendonly no $EXTRA_ARGS >"$work/fk.log" 2>&1 & fk_pid=$!
# shellcheck disable=SC2086
valkey-server --port "$vk_port" --bind 127.0.0.1 --dir "$work/vk" --save "" --appendonly no $EXTRA_ARGS >"$work/vk.log" 2>&1 & vk_pid=$!
wait_ready "$fk_port"; wait_ready "$vk_port"

results="$work/results.csv"
for round in $(seq 1 "$ROUNDS"); do
  for p in $PIPELINES; do
    for side in ferrokey valkey; do
      port=$fk_port; [ "$side" = valkey ] && port=$vk_port
      valkey-benchmark -p "$port" -c "$CLIENTS" -r 100000 -d 64 -n "$REQUESTS" -P "$p" -t "$TESTS" --csv 2>/dev/null \
        | tail -n +2 | while IFS=, read -r test rps _rest; do
            echo "$side,$p,${test//\"/},${rps//\"/}" >>"$results"
          done
    done
  done
  echo "round $round done" >&2
done

python3 - "$results" "$ROUNDS" <<'PY'
import csv, statistics, sys
rows = list(csv.reader(open(sys.argv[1])))
data = {}
for side, p, test, rps in rows:
    data.setdefault((test, int(p)), {}).setdefault(side, []).append(float(rps))
print(f"{'test':<8}{'pipeline':>9}{'ferrokey rps':>15}{'valkey rps':>15}{'ratio':>8}   (medians of {sys.argv[2]} rounds)")
for (test, p), sides in sorted(data.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    fk = statistics.median(sides.get("ferrokey", [0])); vk = statistics.median(sides.get("valkey", [0]))
    ratio = fk / vk if vk else float("nan")
    print(f"{test:<8}{p:>9}{fk:>15.0f}{vk:>15.0f}{ratio:>8.2f}")
PY
