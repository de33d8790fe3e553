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
# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
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
      port=$fk_port; pid=$fk_pid
      [ "$side" = valkey ] && { port=$vk_port; pid=$vk_pid; }
      # One test at a time, so the server's own CPU time can be charged to it.
      for test in ${TESTS//,/ }; do
        before=$(cpu_ticks "$pid")
        rps=$(valkey-benchmark -p "$port" -c "$CLIENTS" -r 100000 -d 64 -n "$REQUESTS" -P "$p" -t "$test" --csv 2>/dev/null \
          | tail -n +2 | head -1 | cut -d, -f2 | tr -d '"')
        after=$(cpu_ticks "$pid")
        echo "$side,$p,${test^^},$rps,$((after - before))" >>"$results"
      done
    done
  done
  echo "round $round done" >&2
done

python3 - "$results" "$ROUNDS" "$REQUESTS" "$(getconf CLK_TCK)" <<'PY'
import csv, statistics, sys
rows = list(csv.reader(open(sys.argv[1])))
rounds, requests, tck = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
data = {}
for side, p, test, rps, ticks in rows:
    d = data.setdefault((test, int(p)), {}).setdefault(side, {"rps": [], "cpu": []})
    d["rps"].append(float(rps))
    # server CPU milliseconds per 100,000 requests
    d["cpu"].append(int(ticks) * 1000 / tck * 100000 / requests)
print(f"medians of {rounds} rounds; throughput ratio = ferrokey/valkey (higher is better),")
print("server CPU ratio = ferrokey/valkey CPU time per request (lower is better; steadier on a noisy machine)")
print(f"{'test':<8}{'pipeline':>9}{'ferrokey rps':>14}{'valkey rps':>12}{'ratio':>7}{'fk cpu ms/100k':>16}{'vk cpu ms/100k':>16}{'cpu ratio':>10}")
for (test, p), sides in sorted(data.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    fk, vk = sides.get("ferrokey"), sides.get("valkey")
    if not fk or not vk:
        continue
    fr, vr = statistics.median(fk["rps"]), statistics.median(vk["rps"])
    fc, vc = statistics.median(fk["cpu"]), statistics.median(vk["cpu"])
    print(f"{test:<8}{p:>9}{fr:>14.0f}{vr:>12.0f}{fr / vr:>7.2f}{fc:>16.0f}{vc:>16.0f}{(fc / vc if vc else float('nan')):>10.2f}")
PY
