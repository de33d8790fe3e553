"""Server-side web sessions in ferrokey survive SIGKILL with their data and
their remaining lifetimes.

A FastAPI application (session_app.py) keeps its sessions in ferrokey
journalling with `appendfsync always`; the test drives it through starlette's
TestClient as browsers would: it logs in a couple of hundred sessions with
lifetimes from one second to ten minutes, uses some of them (each use pushes
the lifetime back to full length), logs some out, and SIGKILLs the server
right after the last acknowledged request. After a restart on the same port
and directory, with the same application and connection pool:

- every session that had not expired is there with exactly its data;
- its remaining TTL is what the last request before the crash set, to the
  millisecond window that request was made in (never -1: no session loses its
  expiry and lives forever, nor is its lifetime restarted by the reload);
- the short sessions disappear when their time comes, and logged-out ones
  stay gone;
- the application's next requests work without restarting it.

No test waits between the last write and the kill: a reply to a write must
mean the write is on disk.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
import redis
from fastapi.testclient import TestClient

from session_app import SESSION_COOKIE, HashSessionStore, JsonSessionStore, create_app

DEADLINE = 30.0
# PTTL is whole milliseconds of the server's clock, which is this machine's.
CLOCK_SLACK_MS = 20.0

LONG_SESSIONS = 160
SHORT_SESSIONS_EXPIRING_BEFORE_THE_CRASH = 20
SHORT_SESSIONS_EXPIRING_AFTER_THE_CRASH = 20
LOGGED_OUT_SESSIONS = 10

STORES = {"hash": HashSessionStore, "json": JsonSessionStore}


def wall_ms() -> float:
    return time.time() * 1000


@dataclass
class Session:
    """What the test expects of one browser's session."""

    sid: str
    data: dict[str, str]
    ttl_seconds: int
    # The wall-clock window of the last request that set the session's
    # expiry (login, or any later use): the server's clock read inside it.
    set_after_ms: float
    set_before_ms: float
    logged_out: bool = False

    def deadline_window(self) -> tuple[float, float]:
        ttl_ms = self.ttl_seconds * 1000
        return self.set_after_ms + ttl_ms, self.set_before_ms + ttl_ms

    def cookie(self) -> dict[str, str]:
        return {"Cookie": f"{SESSION_COOKIE}={self.sid}"}


class Browsers:
    """Many browsers over one TestClient: each request carries its own
    session cookie, and the client's cookie jar is not used."""

    def __init__(self, http: TestClient):
        self.http = http

    def login(self, user: str, ttl_seconds: int, profile: dict[str, str]) -> Session:
        before = wall_ms()
        response = self.http.post("/login", json={"user": user, "ttl_seconds": ttl_seconds, "profile": profile})
        after = wall_ms()
        assert response.status_code == 200, response.text
        sid = response.cookies[SESSION_COOKIE]
        self.http.cookies.clear()
        return Session(sid, {**profile, "user": user, "count": "0"}, ttl_seconds, before, after)

    def me(self, session: Session) -> dict[str, str] | None:
        before = wall_ms()
        response = self.http.get("/me", headers=session.cookie())
        after = wall_ms()
        if response.status_code == 401:
            return None
        assert response.status_code == 200, response.text
        session.set_after_ms, session.set_before_ms = before, after
        return response.json()["session"]

    def increment(self, session: Session) -> None:
        before = wall_ms()
        response = self.http.post("/increment", headers=session.cookie())
        after = wall_ms()
        assert response.status_code == 200, response.text
        session.data["count"] = str(int(session.data["count"]) + 1)
        assert response.json() == {"count": int(session.data["count"])}
        session.set_after_ms, session.set_before_ms = before, after

    def logout(self, session: Session) -> None:
        response = self.http.post("/logout", headers=session.cookie())
        assert response.status_code == 200, response.text
        session.logged_out = True


def profile_for(i: int) -> dict[str, str]:
    return {"theme": ("dark", "light")[i % 2], "display": f"Zoë {i} 名前", "cart": ",".join(str(n) for n in range(i % 6))}


def remaining_ttls(inspector: redis.Redis, keys: list[str]) -> tuple[list[int], float, float]:
    """PTTL of every key, read without going through the application (which
    would push the lifetimes back), and the wall-clock window of the read."""
    before = wall_ms()
    pipe = inspector.pipeline(transaction=False)
    for key in keys:
        pipe.pttl(key)
    ttls = pipe.execute()
    return ttls, before, wall_ms()


def assert_ttls_in_window(store, inspector: redis.Redis, sessions: list[Session]) -> None:
    """Each session's PTTL is what its last request set: the deadline
    window minus the time of this read. Gone (-2) only past its deadline."""
    ttls, read_after, read_before = remaining_ttls(inspector, [store.key(s.sid) for s in sessions])
    problems = []
    for session, pttl in zip(sessions, ttls):
        earliest_deadline, latest_deadline = session.deadline_window()
        lowest = earliest_deadline - read_before - CLOCK_SLACK_MS
        highest = latest_deadline - read_after + CLOCK_SLACK_MS
        if pttl == -2:
            if latest_deadline > read_before + CLOCK_SLACK_MS:
                problems.append(f"{session.data['user']}: gone {latest_deadline - read_before:.0f} ms early")
        elif not lowest <= pttl <= highest:
            problems.append(f"{session.data['user']}: PTTL {pttl}, expected {lowest:.0f}..{highest:.0f}")
    assert not problems, "\n".join(problems)


def wait_for_wall_ms(deadline_ms: float) -> None:
    """Sleeps until the wall clock passes `deadline_ms` (sessions are
    expiring meanwhile); refuses to wait past the test's deadline."""
    pause = (deadline_ms - wall_ms()) / 1000
    assert pause < DEADLINE, f"would wait {pause:.1f}s"
    if pause > 0:
        time.sleep(pause)


@pytest.mark.parametrize("store_kind", sorted(STORES))
def test_sessions_survive_sigkill(durable_server, store_kind):
    app_client = redis.Redis.from_url(durable_server.url, decode_responses=True)
    store = STORES[store_kind](app_client)
    inspector = redis.Redis(port=durable_server.port, decode_responses=True)

    with TestClient(create_app(store)) as http:
        browsers = Browsers(http)

        # Long sessions, lifetimes from one to ten minutes, some used a few times.
        long_sessions = []
        for i in range(LONG_SESSIONS):
            session = browsers.login(f"user-{i}", 60 + (i * 37) % 540, profile_for(i))
            for _ in range(i % 4):
                browsers.increment(session)
            long_sessions.append(session)

        # Short sessions that expire while the server is still up.
        early = [
            browsers.login(f"early-{i}", 1, profile_for(i)) for i in range(SHORT_SESSIONS_EXPIRING_BEFORE_THE_CRASH)
        ]
        wait_for_wall_ms(max(s.deadline_window()[1] for s in early) + CLOCK_SLACK_MS)
        assert [browsers.me(s) for s in early] == [None] * len(early)

        # Sliding lifetimes: every other long session is read, every fifth
        # is written to; both push its lifetime back to full length, a
        # second or more after it was set at login.
        for i, session in enumerate(long_sessions):
            if i % 2 == 0:
                assert browsers.me(session) == session.data
            if i % 5 == 0:
                browsers.increment(session)

        logged_out = long_sessions[-LOGGED_OUT_SESSIONS:]
        for session in logged_out:
            browsers.logout(session)
        alive = long_sessions[:-LOGGED_OUT_SESSIONS]

        # Short sessions that are still alive at the crash and expire after the restart.
        late = [
            browsers.login(f"late-{i}", 2, profile_for(i)) for i in range(SHORT_SESSIONS_EXPIRING_AFTER_THE_CRASH)
        ]
        # The last acknowledged request before the crash.
        browsers.increment(alive[0])

        durable_server.restart(kill=True)

        # Lifetimes as the last requests left them, read before any request
        # through the application pushes them back.
        assert_ttls_in_window(store, inspector, alive + late)

        # The same application and connection pool, over a fresh server
        # process: every session with exactly its data.
        for session in alive:
            assert browsers.me(session) == session.data, session.data["user"]
        assert_ttls_in_window(store, inspector, alive)
        for session in logged_out + early:
            assert browsers.me(session) is None, session.data["user"]

        # The short sessions go when their time comes, not a full lifetime
        # after the reload.
        wait_for_wall_ms(max(s.deadline_window()[1] for s in late) + CLOCK_SLACK_MS)
        assert [browsers.me(s) for s in late] == [None] * len(late)
        assert inspector.exists(*[store.key(s.sid) for s in late + early + logged_out]) == 0

        # New work after the restart.
        for session in alive[:20]:
            browsers.increment(session)
            assert browsers.me(session) == session.data
        newcomer = browsers.login("after-restart", 300, profile_for(0))
        browsers.increment(newcomer)
        assert browsers.me(newcomer) == newcomer.data
        assert_ttls_in_window(store, inspector, alive[:20] + [newcomer])
        assert inspector.dbsize() == len(alive) + 1

    app_client.close()
    inspector.close()


@pytest.mark.parametrize("store_kind", sorted(STORES))
def test_a_session_write_is_acknowledged_only_once_fsynced(durable_server, store_kind):
    """The part of the promise SIGKILL cannot show: the application hears
    "done" only after the fsync. The server is restarted under strace with
    every fdatasync failing (EIO); with `appendfsync always` the next
    session write must not be acknowledged (ferrokey stops rather than
    reply), so the application's request fails. A server that replied
    without fsyncing, or ignored the failed fsync, would let it succeed."""
    app_client = redis.Redis.from_url(durable_server.url, decode_responses=True, socket_timeout=10)
    store = STORES[store_kind](app_client)
    with TestClient(create_app(store), raise_server_exceptions=False) as http:
        browsers = Browsers(http)
        kept = [browsers.login(f"kept-{i}", 600, profile_for(i)) for i in range(20)]

        durable_server.stop()
        durable_server.start(wrapper=["strace", "-f", "-qq", "-o", "/dev/null", "-e", "inject=fdatasync:error=EIO"])
        # Plain reads need no fsync and are served (the application's own
        # reads slide the lifetime: they are writes).
        inspector = redis.Redis(port=durable_server.port, decode_responses=True)
        assert inspector.exists(*[store.key(s.sid) for s in kept]) == len(kept)
        inspector.close()

        response = http.post("/login", json={"user": "unlucky", "ttl_seconds": 600, "profile": profile_for(0)})
        assert response.status_code == 500, response.text
        durable_server.process.wait(timeout=DEADLINE)
        assert durable_server.process.returncode != 0
        assert "Fail to fsync the AOF file" in durable_server.log() or "Can't persist AOF for fsync error" in (
            durable_server.log()
        ), durable_server.log()[-2000:]

        # Back on a healthy disk: everything acknowledged is there.
        durable_server.start(wrapper=[])
        for session in kept:
            assert browsers.me(session) == session.data
    app_client.close()
