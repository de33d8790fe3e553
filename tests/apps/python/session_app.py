"""A FastAPI application keeping its server-side sessions in ferrokey, as a
web application would: the browser holds only a random session id in a
cookie; the session's data lives in the store with a sliding lifetime, pushed
back to its full length on every request that uses it.

Two stores, as applications commonly write them:

- HashSessionStore: one hash per session, its lifetime kept in the hash; a
  Lua script reads (or increments) and refreshes the TTL atomically, so a
  session that expired is never brought back by a late write.
- JsonSessionStore: one JSON string per session written with SET EX, read
  with GET and refreshed with EXPIRE.
"""

from __future__ import annotations

import json
import secrets
from typing import Annotated, Protocol

import redis
from fastapi import Cookie, Depends, FastAPI, HTTPException, Response
from pydantic import BaseModel

SESSION_COOKIE = "sid"


class SessionStore(Protocol):
    def key(self, session_id: str) -> str: ...

    def create(self, data: dict[str, str], ttl_seconds: int) -> str: ...

    def load(self, session_id: str) -> dict[str, str] | None:
        """The session's data, its TTL pushed back to full length; None once
        it expired or was destroyed."""

    def increment(self, session_id: str, field: str) -> int | None: ...

    def destroy(self, session_id: str) -> None: ...


def new_session_id() -> str:
    return secrets.token_urlsafe(24)


class HashSessionStore:
    """Sessions as hashes `session:<id>`; the field `_ttl` holds the
    session's lifetime in seconds so every access can restore it."""

    TTL_FIELD = "_ttl"

    # Both scripts refresh the TTL in the same atomic step that reads or
    # writes, and do nothing for a session that is gone (HINCRBY on its own
    # would recreate the hash without any TTL).
    LOAD_AND_TOUCH = """
        local ttl = redis.call('HGET', KEYS[1], ARGV[1])
        if not ttl then return false end
        redis.call('EXPIRE', KEYS[1], ttl)
        return redis.call('HGETALL', KEYS[1])
    """
    INCREMENT_AND_TOUCH = """
        local ttl = redis.call('HGET', KEYS[1], ARGV[1])
        if not ttl then return false end
        redis.call('EXPIRE', KEYS[1], ttl)
        return redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
    """

    def __init__(self, client: redis.Redis):
        self.client = client
        self._load_and_touch = client.register_script(self.LOAD_AND_TOUCH)
        self._increment_and_touch = client.register_script(self.INCREMENT_AND_TOUCH)

    def key(self, session_id: str) -> str:
        return f"session:{session_id}"

    def create(self, data: dict[str, str], ttl_seconds: int) -> str:
        session_id = new_session_id()
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.key(session_id), mapping={**data, self.TTL_FIELD: ttl_seconds})
            pipe.expire(self.key(session_id), ttl_seconds)
            pipe.execute()
        return session_id

    def load(self, session_id: str) -> dict[str, str] | None:
        flat = self._load_and_touch(keys=[self.key(session_id)], args=[self.TTL_FIELD])
        if flat is None:
            return None
        data = dict(zip(flat[::2], flat[1::2]))
        del data[self.TTL_FIELD]
        return data

    def increment(self, session_id: str, field: str) -> int | None:
        return self._increment_and_touch(keys=[self.key(session_id)], args=[self.TTL_FIELD, field])

    def destroy(self, session_id: str) -> None:
        self.client.delete(self.key(session_id))


class JsonSessionStore:
    """Sessions as JSON strings `jsession:<id>` = {"ttl": seconds, "data": {...}}."""

    def __init__(self, client: redis.Redis):
        self.client = client

    def key(self, session_id: str) -> str:
        return f"jsession:{session_id}"

    def create(self, data: dict[str, str], ttl_seconds: int) -> str:
        session_id = new_session_id()
        document = json.dumps({"ttl": ttl_seconds, "data": data})
        self.client.set(self.key(session_id), document, ex=ttl_seconds)
        return session_id

    def _read(self, session_id: str) -> dict | None:
        document = self.client.get(self.key(session_id))
        return None if document is None else json.loads(document)

    def load(self, session_id: str) -> dict[str, str] | None:
        document = self._read(session_id)
        if document is None:
            return None
        # If the session expired between the GET and here, EXPIRE does
        # nothing: no session is brought back.
        self.client.expire(self.key(session_id), document["ttl"])
        return document["data"]

    def increment(self, session_id: str, field: str) -> int | None:
        document = self._read(session_id)
        if document is None:
            return None
        count = int(document["data"].get(field, "0")) + 1
        document["data"][field] = str(count)
        # XX: only while the session still exists; EX: the write is also an
        # access, so the lifetime starts again.
        written = self.client.set(self.key(session_id), json.dumps(document), ex=document["ttl"], xx=True)
        return count if written else None

    def destroy(self, session_id: str) -> None:
        self.client.delete(self.key(session_id))


class Login(BaseModel):
    user: str
    ttl_seconds: int
    profile: dict[str, str] = {}


def session_id(sid: Annotated[str | None, Cookie(alias=SESSION_COOKIE)] = None) -> str:
    if sid is None:
        raise HTTPException(status_code=401, detail="no session cookie")
    return sid


SessionId = Annotated[str, Depends(session_id)]


def create_app(store: SessionStore) -> FastAPI:
    app = FastAPI()

    @app.post("/login")
    def login(body: Login, response: Response) -> dict:
        data = {**body.profile, "user": body.user, "count": "0"}
        sid = store.create(data, body.ttl_seconds)
        response.set_cookie(SESSION_COOKIE, sid, httponly=True, max_age=body.ttl_seconds)
        return {"user": body.user}

    @app.get("/me")
    def me(sid: SessionId) -> dict:
        data = store.load(sid)
        if data is None:
            raise HTTPException(status_code=401, detail="session expired")
        return {"session": data}

    @app.post("/increment")
    def increment(sid: SessionId) -> dict:
        count = store.increment(sid, "count")
        if count is None:
            raise HTTPException(status_code=401, detail="session expired")
        return {"count": count}

    @app.post("/logout")
    def logout(sid: SessionId, response: Response) -> dict:
        store.destroy(sid)
        response.delete_cookie(SESSION_COOKIE)
        return {"logged_out": True}

    return app
