#!/usr/bin/env bash
# The cache workload of issue 9, against ferrokey and valkey-server 8.0.1
# in one run: maxmemory 100mb, a client reading keys of Zipf-distributed
# popularity and writing back every miss (cache-aside) until it has
# written WRITE_MB of values, under each eviction policy in turn.
#
# For each policy and server it prints the hit rate of all reads and of
# the hot keys' reads (the HOT most popular keys) over the second half of
# the run, once the cache is warm; the highest used_memory sampled (every
# 20 batches) against the limit; evicted keys; and the client's rate.
#
#   scripts/cache-bench.sh                          # 200 MB written per policy
#   WRITE_MB=1024 scripts/cache-bench.sh            # the issue's 1 GB
#   POLICIES=allkeys-lru MAXMEMORY=100mb scripts/cache-bench.sh
#   KEYS=1000000 ZIPF_S=0.99 VALUE_SIZE=1000 HOT=10000 SEED=1 scripts/cache-bench.sh
#
# volatile-ttl writes every key with a TTL of 100..100000 s (at random).
# Release build in $CARGO_TARGET_DIR (default target/).
set -euo pipefail
cd "$(dirname "$0")/.."
WRITE_MB=${WRITE_MB:-200}
MAXMEMORY=${MAXMEMORY:-100mb}
POLICIES=${POLICIES:-"allkeys-lru allkeys-lfu volatile-ttl"}
KEYS=${KEYS:-1000000}
ZIPF_S=${ZIPF_S:-0.99}
VALUE_SIZE=${VALUE_SIZE:-1000}
HOT=${HOT:-10000}
SEED=${SEED:-1}
bash scripts/install-valkey.sh >/dev/null
cargo build --release --quiet --bin ferrokey-server
FERROKEY=${CARGO_TARGET_DIR:-$(pwd)/target}/release/ferrokey-server

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

cat >"$work/driver.py" <<'EOF'
import bisect, random, socket, sys, time

port, policy, write_mb, keys, zipf_s, value_size, hot, seed = sys.argv[1:9]
port, write_mb, keys, value_size, hot, seed = int(port), int(write_mb), int(keys), int(value_size), int(hot), int(seed)
zipf_s = float(zipf_s)
BATCH = 100

# Zipf over ranks 1..keys: P(r) proportional to 1 / r^s.
cdf, total = [], 0.0
for r in range(1, keys + 1):
    total += 1.0 / r ** zipf_s
    cdf.append(total)
rng = random.Random(seed)

sock = socket.create_connection(("127.0.0.1", port))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
buf = bytearray()

def fill(n):
    while len(buf) < n:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise SystemExit("connection closed")
        buf.extend(chunk)

def read_line():
    while True:
        i = buf.find(b"\r\n")
        if i >= 0:
            line = bytes(buf[:i]); del buf[:i + 2]; return line
        fill(len(buf) + 1)

def read_reply():
    line = read_line()
    if line[:1] == b"$":
        n = int(line[1:])
        if n < 0:
            return None
        fill(n + 2)
        data = bytes(buf[:n]); del buf[:n + 2]; return data
    if line[:1] == b"-":
        return Exception(line.decode())
    return line

def command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)

def used_memory():
    sock.sendall(command("INFO", "memory"))
    text = read_reply().decode()
    return int(next(l.split(":")[1] for l in text.split("\r\n") if l.startswith("used_memory:")))

value = b"v" * value_size
# CONFIG GET maxmemory: a two-element array, name then value.
sock.sendall(command("CONFIG", "GET", "maxmemory"))
read_line(); read_reply(); limit = int(read_reply())

written = 0
target = write_mb << 20
requests = hits = 0
half = {"reads": 0, "hits": 0, "hot_reads": 0, "hot_hits": 0}
errors = 0
peak = 0
batches = 0
# Hit rates count once half the bytes are written: the cache is full by then.
started = time.time()
while written < target:
    ranks = [bisect.bisect_left(cdf, rng.random() * total) + 1 for _ in range(BATCH)]
    sock.sendall(b"".join(command("GET", "key:%d" % r) for r in ranks))
    replies = [read_reply() for _ in ranks]
    misses = [r for r, v in zip(ranks, replies) if v is None]
    warm = written >= target // 2
    if warm:
        half["reads"] += BATCH
        half["hits"] += BATCH - len(misses)
        hot_ranks = [r for r in ranks if r <= hot]
        half["hot_reads"] += len(hot_ranks)
        half["hot_hits"] += len(hot_ranks) - sum(1 for r in misses if r <= hot)
    if misses:
        sets = []
        for r in misses:
            if policy == "volatile-ttl":
                sets.append(command("SET", "key:%d" % r, value, "EX", rng.randint(100, 100000)))
            else:
                sets.append(command("SET", "key:%d" % r, value))
        sock.sendall(b"".join(sets))
        for _ in misses:
            if isinstance(read_reply(), Exception):
                errors += 1
        written += len(misses) * value_size
    requests += BATCH
    batches += 1
    if batches % 20 == 0:
        peak = max(peak, used_memory())
elapsed = time.time() - started
final = used_memory()
peak = max(peak, final)
sock.sendall(command("INFO", "stats"))
stats = read_reply().decode()
evicted = int(next(l.split(":")[1] for l in stats.split("\r\n") if l.startswith("evicted_keys:")))
hit = 100.0 * half["hits"] / max(half["reads"], 1)
hot_hit = 100.0 * half["hot_hits"] / max(half["hot_reads"], 1)
print("%-13s hit %5.1f%%  hot hit %5.1f%%  used_memory peak %6.2f MB (limit %6.2f, over by %+8d B) final %6.2f MB  evicted %8d  errors %d  %6.0f req/s"
      % (policy, hit, hot_hit, peak / 2**20, limit / 2**20, peak - limit, final / 2**20, evicted, errors, (requests + written // value_size) / elapsed))
EOF

fk_port=$(free_port); vk_port=$(free_port)
mkdir -p "$work/fk" "$work/vk"
"$FERROKEY" --port "$fk_port" --bind 127.0.0.1 --dir "$work/fk" --save "" --appendonly no --maxmemory "$MAXMEMORY" >"$work/fk.log" 2>&1 & fk_pid=$!
valkey-server --port "$vk_port" --bind 127.0.0.1 --dir "$work/vk" --save "" --appendonly no --maxmemory "$MAXMEMORY" >"$work/vk.log" 2>&1 & vk_pid=$!
wait_ready "$fk_port"; wait_ready "$vk_port"

echo "cache workload: maxmemory $MAXMEMORY, $WRITE_MB MB written per run, $KEYS keys, zipf s=$ZIPF_S, values of $VALUE_SIZE B, hot = top $HOT keys"
for policy in $POLICIES; do
  for side in ferrokey valkey; do
    port=$fk_port; [ "$side" = valkey ] && port=$vk_port
    valkey-cli -p "$port" flushall sync >/dev/null
    valkey-cli -p "$port" config set maxmemory-policy "$policy" >/dev/null
    valkey-cli -p "$port" config resetstat >/dev/null
    printf '%-9s ' "$side"
    python3 "$work/driver.py" "$port" "$policy" "$WRITE_MB" "$KEYS" "$ZIPF_S" "$VALUE_SIZE" "$HOT" "$SEED"
  done
done
for side in ferrokey valkey; do
  pid=$fk_pid; [ "$side" = valkey ] && pid=$vk_pid
  printf '%-9s RSS at the end: %s kB\n' "$side" "$(awk '/VmRSS/{print $2}' "/proc/$pid/status")"
done
