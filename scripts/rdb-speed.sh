#!/usr/bin/env bash
# RDB load and BGSAVE speed, ferrokey against valkey-server, same data, one run.
#
# Builds ferrokey (release), fills a valkey-server with KEYS mixed keys
# (strings, small hashes, lists, sets, sorted sets) through valkey-cli --pipe,
# saves it, then for ROUNDS rounds alternately starts each server on that
# dump and times (a) start until PING answers, (b) BGSAVE until it finishes.
# Prints medians and ratios ferrokey/valkey (lower is faster).
#
#   scripts/rdb-speed.sh            # 1,000,000 keys, 3 rounds
#   KEYS=200000 ROUNDS=5 scripts/rdb-speed.sh
#   KEEP_DUMP=/tmp/mixed.rdb scripts/rdb-speed.sh   # also keep the data set (for profiling)
# The build goes to $CARGO_TARGET_DIR when it is set (else target/).
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-1000000}
ROUNDS=${ROUNDS:-3}
bash scripts/install-valkey.sh >/dev/null
cargo build --release --quiet --bin ferrokey-server
target_dir=${CARGO_TARGET_DIR:-target}
case "$target_dir" in /*) ;; *) target_dir=$(pwd)/$target_dir ;; esac
FERROKEY=$target_dir/release/ferrokey-server
work=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

# The data set, written once by valkey-server itself.
port=$(free_port)
mkdir -p "$work/seed"
valkey-server --port "$port" --dir "$work/seed" --save "" --appendonly no >/dev/null 2>&1 &
seed_pid=$!
until valkey-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done
python3 - "$KEYS" <<'PY' | valkey-cli -p "$port" --pipe >/dev/null
import sys
n = int(sys.argv[1])
out = sys.stdout.buffer
def cmd(*args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    out.write(b"".join(parts))
for i in range(n):
    kind = i % 5
    if kind == 0:
        cmd("SET", f"s:{i}", f"value-{i}-" + "x" * (i % 40))
    elif kind == 1:
        cmd("HSET", f"h:{i}", "name", f"user{i}", "age", i % 90, "city", "Paris", "score", i * 7)
    elif kind == 2:
        cmd("RPUSH", f"l:{i}", *[f"item{j}" for j in range(i % 8 + 1)])
    elif kind == 3:
        cmd("SADD", f"t:{i}", *[f"m{j}" for j in range(i % 6 + 1)])
    else:
        args = []
        for j in range(i % 6 + 1):
            args += [j * 1.5, f"z{j}"]
        cmd("ZADD", f"z:{i}", *args)
PY
valkey-cli -p "$port" save >/dev/null
valkey-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
wait "$seed_pid" 2>/dev/null || true
echo "data: $KEYS keys, dump.rdb $(stat -c %s "$work/seed/dump.rdb") bytes" >&2
[ -z "${KEEP_DUMP:-}" ] || cp "$work/seed/dump.rdb" "$KEEP_DUMP"

results="$work/results"
for round in $(seq 1 "$ROUNDS"); do
  for side in ferrokey valkey; do
    dir="$work/$side-$round"; mkdir -p "$dir"; cp "$work/seed/dump.rdb" "$dir/dump.rdb"
    port=$(free_port)
    bin=$FERROKEY; [ "$side" = valkey ] && bin=valkey-server
    start=$(now)
    "$bin" --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no >"$dir/log" 2>&1 &
    pid=$!
    until [ "$(valkey-cli -p "$port" ping 2>/dev/null)" = PONG ]; do sleep 0.01; done
    loaded=$(now)
    keys=$(valkey-cli -p "$port" dbsize)
    [ "$keys" = "$KEYS" ] || { echo "$side loaded $keys keys, expected $KEYS" >&2; exit 1; }
    valkey-cli -p "$port" bgsave >/dev/null
    sleep 0.01
    while valkey-cli -p "$port" info persistence | grep -q 'rdb_bgsave_in_progress:1'; do sleep 0.01; done
    saved=$(now)
    valkey-cli -p "$port" info persistence | grep -q 'rdb_last_bgsave_status:ok' || { echo "$side bgsave failed" >&2; exit 1; }
    python3 -c "print('$side', $loaded - $start, $saved - $loaded)" >>"$results"
    valkey-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    wait "$pid" 2>/dev/null || true
  done
  echo "round $round done" >&2
done
python3 - "$results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = lambda side, col: statistics.median(float(r[col]) for r in rows if r[0] == side)
for name, col in (("load (start until PING)", 1), ("BGSAVE", 2)):
    f, v = med("ferrokey", col), med("valkey", col)
    print(f"{name:<25} ferrokey {f:7.3f} s   valkey {v:7.3f} s   ratio {f / v:5.2f}")
PY
