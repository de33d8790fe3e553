#!/usr/bin/env bash
# The AOF's speed against valkey-server 8.0.1, same settings, same run:
#  1. SET throughput with valkey-benchmark -P 16 (50 clients) under
#     appendonly yes + appendfsync everysec, then + appendfsync always
#     (ROUNDS rounds, servers taking turns; medians);
#  2. start-up time replaying an AOF of 1,000,000 commands (one incr
#     file; two journals: SETs only, and SET/INCR/RPUSH/HSET/SADD/ZADD in
#     turn), from the "DB loaded from append only file" line each server
#     logs (medians of ROUNDS starts).
# Prints the ratios ferrokey/valkey (throughput: higher is better; load
# time: lower is better).
#
#   scripts/aof-bench.sh
#   ROUNDS=5 REQUESTS=1000000 scripts/aof-bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-500000}
COMMANDS=${COMMANDS:-1000000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-release}
bash scripts/install-valkey.sh >/dev/null
cargo build --release --quiet --bin ferrokey-server
FERROKEY=$CARGO_TARGET_DIR/release/ferrokey-server

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() {
  for _ in $(seq 1 600); do
    [ "$(valkey-cli -p "$1" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.05
  done
  echo "server on $1 did not start" >&2; exit 1
}
binary_of() { if [ "$1" = ferrokey ]; then echo "$FERROKEY"; else command -v valkey-server; fi; }

# --- 1. throughput --------------------------------------------------------
results="$work/throughput.csv"
for policy in everysec always; do
  for round in $(seq 1 "$ROUNDS"); do
    for side in ferrokey valkey; do
      dir="$work/$side-$policy-$round"; mkdir -p "$dir"
      port=$(free_port)
      "$(binary_of $side)" --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" \
        --appendonly yes --appendfsync "$policy" >"$dir/log" 2>&1 & pid=$!; pids+=("$pid")
      wait_ready "$port"
      rps=$(valkey-benchmark -p "$port" -c 50 -r 100000 -d 64 -n "$REQUESTS" -P 16 -t set --csv 2>/dev/null \
        | tail -n +2 | head -1 | cut -d, -f2 | tr -d '"')
      echo "$policy,$side,$rps" >>"$results"
      valkey-cli -p "$port" shutdown nosave >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      rm -rf "$dir"
    done
    echo "throughput: $policy round $round done" >&2
  done
done

# --- 2. start-up replay ---------------------------------------------------
# Two journals of COMMANDS commands each: "set", SETs of 64-byte values on
# random keys (what valkey-benchmark -t set writes), and "mixed", SET,
# INCR, RPUSH, HSET, SADD and ZADD in turn.
make_journal() {
  mkdir -p "$work/aof-$1/appendonlydir"
  python3 - "$work/aof-$1/appendonlydir/appendonly.aof.1.incr.aof" "$COMMANDS" "$1" <<'PY'
import random, sys
path, n, mix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)
random.seed(1)
value = b"x" * 64
with open(path, "wb", buffering=1 << 20) as f:
    f.write(cmd(b"SELECT", b"0"))
    for i in range(n - 1):
        if mix == "set":
            f.write(cmd(b"SET", b"key:%012d" % random.randrange(1000000), value))
            continue
        k = b"%d" % (i % 100000)
        kind, group = i % 6, b"%d" % (i % 1000)
        if kind == 0:
            f.write(cmd(b"SET", b"key:" + k, b"value-" + k))
        elif kind == 1:
            f.write(cmd(b"INCR", b"counter:" + group))
        elif kind == 2:
            f.write(cmd(b"RPUSH", b"list:" + group, k))
        elif kind == 3:
            f.write(cmd(b"HSET", b"hash:" + group, b"f" + k, k))
        elif kind == 4:
            f.write(cmd(b"SADD", b"set:" + group, k))
        else:
            f.write(cmd(b"ZADD", b"zset:" + group, k, b"m" + k))
PY
  printf 'file appendonly.aof.1.incr.aof seq 1 type i\n' >"$work/aof-$1/appendonlydir/appendonly.aof.manifest"
}
loads="$work/loads.csv"
for mix in set mixed; do
  make_journal "$mix"
  for round in $(seq 1 "$ROUNDS"); do
    for side in ferrokey valkey; do
      dir="$work/load-$side"; rm -rf "$dir"; cp -r "$work/aof-$mix" "$dir"
      port=$(free_port)
      start=$(date +%s.%N)
      "$(binary_of $side)" --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly yes >"$dir/log" 2>&1 &
      pid=$!; pids+=("$pid")
      wait_ready "$port"
      ready=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$start" "$(date +%s.%N)")
      loaded=$(grep -o 'DB loaded from append only file: [0-9.]*' "$dir/log" | grep -o '[0-9.]*$')
      keys=$(valkey-cli -p "$port" dbsize)
      echo "$mix,$side,$loaded,$ready,$keys" >>"$loads"
      valkey-cli -p "$port" shutdown nosave >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    done
    echo "start-up ($mix): round $round done" >&2
  done
  rm -rf "$work/aof-$mix"
done

python3 - "$results" "$loads" "$ROUNDS" "$REQUESTS" "$COMMANDS" <<'PY'
import csv, statistics, sys
rounds, requests, commands = sys.argv[3], sys.argv[4], sys.argv[5]
tp = {}
for policy, side, rps in csv.reader(open(sys.argv[1])):
    tp.setdefault(policy, {}).setdefault(side, []).append(float(rps))
print(f"SET -P 16, 50 clients, {requests} requests, appendonly yes; medians of {rounds} rounds")
print(f"{'appendfsync':<12}{'ferrokey rps':>14}{'valkey rps':>14}{'ratio':>8}")
for policy in ("everysec", "always"):
    fk, vk = statistics.median(tp[policy]["ferrokey"]), statistics.median(tp[policy]["valkey"])
    print(f"{policy:<12}{fk:>14.0f}{vk:>14.0f}{fk / vk:>8.2f}")
ld = {}
for mix, side, loaded, ready, keys in csv.reader(open(sys.argv[2])):
    ld.setdefault(mix, {}).setdefault(side, []).append((float(loaded), float(ready), keys))
for mix in ("set", "mixed"):
    print(f"\nstart-up replaying {commands} commands ({mix}); medians of {rounds} starts")
    print(f"{'server':<10}{'load s':>9}{'ready s':>9}{'keys':>9}")
    for side in ("ferrokey", "valkey"):
        rows = ld[mix][side]
        print(f"{side:<10}{statistics.median(r[0] for r in rows):>9.3f}{statistics.median(r[1] for r in rows):>9.3f}{rows[0][2]:>9}")
    fk = statistics.median(r[0] for r in ld[mix]["ferrokey"])
    vk = statistics.median(r[0] for r in ld[mix]["valkey"])
    print(f"load time ratio ferrokey/valkey ({mix}): {fk / vk:.2f} (below 1 is faster)")
PY
