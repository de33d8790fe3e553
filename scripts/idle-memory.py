#!/usr/bin/env python3
"""Memory cost of idle connections, ferrokey against valkey-server, in one run.

Starts both servers (ferrokey from target/release) on free ports, opens N
idle connections to each (every one sends one PING first), and prints the
resident memory each server gained per connection.

    cargo build --release && scripts/idle-memory.py [N]
"""
import os, socket, subprocess, sys, tempfile, time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
HERE = os.path.dirname(os.path.abspath(__file__))
FERROKEY = os.path.join(HERE, "..", "target", "release", "ferrokey-server")

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

def ping(port):
    c = socket.create_connection(("127.0.0.1", port)); c.sendall(b"PING\r\n"); c.recv(64); return c

def measure(name, binary):
    port = free_port()
    tmp = tempfile.mkdtemp()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", tmp,
                             "--maxclients", str(N + 100)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                first = ping(port); break
            except OSError:
                time.sleep(0.05)
        time.sleep(0.2)
        before = rss_kib(proc.pid)
        conns = [ping(port) for _ in range(N)]
        time.sleep(0.5)
        after = rss_kib(proc.pid)
        print(f"{name:>9}: {(after - before) * 1024 / N:7.0f} bytes per idle connection ({N} connections, RSS {before} -> {after} KiB)")
        for c in conns:
            c.close()
        first.close()
    finally:
        proc.terminate(); proc.wait()

measure("ferrokey", FERROKEY)
measure("valkey", "valkey-server")
