#!/usr/bin/env python3
"""Captures Valkey's command metadata as it answers clients.

Starts valkey-server on a free port, asks it (over RESP3) for `COMMAND INFO`
and `COMMAND DOCS` of every command, and stores the raw RESP3 replies in
src/commands/valkey-commands.resp3. ferrokey reads that file at build time:
arity, flags, key positions and ACL categories drive dispatch, and COMMAND
INFO / COMMAND DOCS answer with the same data a Valkey client sees.

Usage: scripts/gen-command-table.py [valkey-server binary]
"""
import os, socket, subprocess, sys, tempfile, time

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def read_reply(f):
    """Reads one RESP3 reply and returns its raw bytes."""
    line = f.readline()
    out = bytearray(line)
    t, rest = line[:1], line[1:-2]
    if t in b"$=!":
        n = int(rest)
        if n >= 0:
            out += f.read(n + 2)
    elif t in b"*~>":
        n = int(rest)
        for _ in range(max(n, 0)):
            out += read_reply(f)
    elif t == b"%" or t == b"|":
        for _ in range(int(rest) * 2):
            out += read_reply(f)
    return bytes(out)

def command(sock_file, sock, *args):
    msg = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
    sock.sendall(msg)
    return read_reply(sock_file)

def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "valkey-server"
    port = free_port()
    tmp = tempfile.mkdtemp()
    proc = subprocess.Popen([binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", tmp],
                            stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                sock = socket.create_connection(("127.0.0.1", port)); break
            except OSError:
                time.sleep(0.05)
        f = sock.makefile("rb")
        command(f, sock, b"HELLO", b"3")
        version = command(f, sock, b"INFO", b"server").split(b"valkey_version:")[1].split(b"\r\n")[0]
        info = command(f, sock, b"COMMAND", b"INFO")
        docs = command(f, sock, b"COMMAND", b"DOCS")
        here = os.path.dirname(os.path.abspath(__file__))
        out = os.path.join(here, "..", "src", "commands", "valkey-commands.resp3")
        with open(out, "wb") as w:
            w.write(b"+valkey " + version + b"\r\n")
            w.write(info)
            w.write(docs)
        print("wrote", out, "from valkey", version.decode())
    finally:
        proc.terminate(); proc.wait()

main()
