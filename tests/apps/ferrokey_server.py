"""Starts and stops a real ferrokey-server for the application tests.

The tests drive real client libraries (redis-py, valkey-py, Celery, RQ, arq)
against the binary cargo built, each on an ephemeral port with a data
directory of its own, and can SIGKILL and restart it on the same port and
directory to check what survives.

The binary is $FERROKEY_SERVER when set, else ferrokey-server under
$CARGO_TARGET_DIR (or the workspace's target/), debug profile first.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

WORKSPACE = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0


def server_binary() -> Path:
    explicit = os.environ.get("FERROKEY_SERVER")
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR", WORKSPACE / "target"))
    for profile in ("debug", "release"):
        candidate = target / profile / "ferrokey-server"
        if candidate.exists():
            return candidate
    raise RuntimeError(
        f"no ferrokey-server under {target}: run `cargo build --bin ferrokey-server` "
        "or set FERROKEY_SERVER"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(port: int, *args: bytes) -> bytes:
    """Sends one command over a fresh connection and returns the raw reply's
    first line (enough to tell +PONG from -LOADING)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        frame = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
        s.sendall(frame)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


class FerrokeyServer:
    """One ferrokey-server process with its own port and data directory.

    `args` are extra `--directive value` pairs given after the defaults
    (later ones win, as on valkey-server's command line).
    """

    def __init__(self, *args: str, dir: str | None = None, wrapper: list[str] | None = None):
        self._tmp = None if dir else tempfile.TemporaryDirectory(prefix="ferrokey-app-")
        self.dir = Path(dir or self._tmp.name)
        self.args = list(args)
        # A command the server runs under (e.g. strace with fault
        # injection); `start(wrapper=...)` replaces it.
        self.wrapper = list(wrapper or [])
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = self.dir / "ferrokey.log"
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def url_db(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, wrapper: list[str] | None = None) -> None:
        """Starts the process on this server's port and waits for PING.
        The port is kept across restarts so clients can reconnect.
        `wrapper`, when given, replaces the server's wrapper command."""
        if wrapper is not None:
            self.wrapper = list(wrapper)
        argv = [
            *self.wrapper,
            str(server_binary()),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "no",
            *self.args,
        ]
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            argv, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"ferrokey-server exited with {self.process.returncode}:\n{self.log()}")
            try:
                reply = _command(self.port, b"PING")
                if reply and not reply.startswith(b"-LOADING"):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill9()
                raise RuntimeError(f"ferrokey-server did not answer on port {self.port}:\n{self.log()}")
            time.sleep(0.02)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def kill9(self) -> None:
        """SIGKILL: no shutdown save, no final fsync; what survives is what
        was already durable."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """SIGTERM, as systemd stops it: a clean shutdown."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill9()

    def restart(self, kill: bool = True) -> None:
        """Kills (SIGKILL by default, else SIGTERM) and starts again on the
        same port and directory."""
        if kill:
            self.kill9()
        else:
            self.stop()
        self.start()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def close(self) -> None:
        self.kill9()
        if self._tmp is not None:
            self._tmp.cleanup()
