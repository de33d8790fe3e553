"""pytest fixtures shared by the application tests (tests/apps/python and
tests/apps/arq): a fresh ferrokey-server per test."""

from __future__ import annotations

import pytest

from ferrokey_server import FerrokeyServer


@pytest.fixture
def server():
    """ferrokey with the harness defaults (no persistence)."""
    s = FerrokeyServer()
    yield s
    s.close()


@pytest.fixture
def durable_server():
    """ferrokey journalling every write with `appendfsync always`: a reply
    to a write means the write is on disk."""
    s = FerrokeyServer("--appendonly", "yes", "--appendfsync", "always")
    yield s
    s.close()


@pytest.fixture
def make_server():
    """Starts servers with extra directives; all are closed at the end."""
    started: list[FerrokeyServer] = []

    def make(*args: str) -> FerrokeyServer:
        s = FerrokeyServer(*args)
        started.append(s)
        return s

    yield make
    for s in started:
        s.close()
