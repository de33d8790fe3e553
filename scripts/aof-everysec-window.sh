#!/usr/bin/env bash
# How much acknowledged data `appendfsync everysec` can lose at a power
# cut: the server runs under strace while valkey-benchmark writes for
# SECONDS seconds, and for every write(2) of the AOF the time until an
# fdatasync that started after it returned is measured. The largest is the
# window of writes a power cut could take away (Valkey's bound is 2 s: a
# write waits at most that long for a slow fsync before going ahead).
# A SIGKILL loses nothing under everysec: replies follow the write(2).
#
#   scripts/aof-everysec-window.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-release}
bash scripts/install-valkey.sh >/dev/null
cargo build --release --quiet --bin ferrokey-server
work=$(mktemp -d)
trap 'kill "${pid:-0}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
strace -f -qq -ttt -s 16 -e trace=write,fdatasync -o "$work/trace" \
  "$CARGO_TARGET_DIR/release/ferrokey-server" --port "$port" --bind 127.0.0.1 --dir "$work" --save "" \
  --appendonly yes --appendfsync everysec >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 200); do [ "$(valkey-cli -p "$port" ping 2>/dev/null)" = PONG ] && break; sleep 0.05; done
timeout "$seconds" valkey-benchmark -p "$port" -c 50 -r 100000 -d 64 -n 100000000 -P 16 -t set -q >/dev/null 2>&1 || true
valkey-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
wait "$pid" 2>/dev/null || true
python3 - "$work/trace" <<'PY'
import re, sys
writes, syncs, started = [], [], {}
aof_fd = None
for line in open(sys.argv[1]):
    m = re.match(r"(\d+) +(\d+\.\d+) (.*)", line)
    if not m:
        continue
    tid, t, call = m.group(1), float(m.group(2)), m.group(3)
    w = re.match(r'write\((\d+), "(\*|#TS)', call)
    if w:
        aof_fd = aof_fd or w.group(1)
        if w.group(1) == aof_fd:
            writes.append(t)
        continue
    s = re.match(r"fdatasync\((\d+)", call)
    if s:
        if call.endswith("= 0"):
            syncs.append((t, t))
        else:
            started[tid] = t
        continue
    if call.startswith("<... fdatasync resumed>") and tid in started:
        syncs.append((started.pop(tid), t))
if not writes or not syncs:
    sys.exit("no AOF writes or fsyncs traced")
windows, j = [], 0
syncs.sort()
for t in writes:
    while j < len(syncs) and syncs[j][0] < t:
        j += 1
    if j == len(syncs):
        break
    windows.append(syncs[j][1] - t)
windows.sort()
print(f"{len(writes)} AOF writes, {len(syncs)} fdatasyncs")
print(f"window from a write to the end of the fsync covering it: "
      f"median {windows[len(windows) // 2] * 1000:.0f} ms, 99th percentile {windows[int(len(windows) * 0.99)] * 1000:.0f} ms, "
      f"max {windows[-1] * 1000:.0f} ms")
PY
