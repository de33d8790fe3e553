"""redis-py and valkey-py against ferrokey, through the libraries' own methods.

Every test runs once per client flavour: library (redis-py, valkey-py) x
reply parser (the pure-Python one, or the compiled one: hiredis for redis-py,
libvalkey for valkey-py) x protocol (RESP2, RESP3). The assertions are on the
Python values the library hands back, which is what an application sees; the
library parses RESP2 and RESP3 replies into different shapes for some
commands (a score pair is a tuple on RESP2, a list on RESP3), and where it
does the expected value says so.

Nothing here is timed: blocking commands are woken by another client once the
server reports the first one blocked, and waits poll until a deadline.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

import pytest
import redis
import redis.asyncio
import valkey
import valkey.asyncio

DEADLINE = 30.0


@dataclass(frozen=True)
class Flavour:
    """One way an application talks to the server: which library, which
    reply parser, which protocol."""

    library: str  # "redis" (redis-py) or "valkey" (valkey-py)
    compiled_parser: bool  # hiredis / libvalkey rather than the pure-Python parser
    protocol: int  # 2 or 3

    @property
    def id(self) -> str:
        compiled = "hiredis" if self.library == "redis" else "libvalkey"
        parser = compiled if self.compiled_parser else "python"
        return f"{self.library}-{parser}-resp{self.protocol}"

    @property
    def module(self) -> ModuleType:
        return redis if self.library == "redis" else valkey

    @property
    def asyncio_module(self) -> ModuleType:
        return redis.asyncio if self.library == "redis" else valkey.asyncio

    @property
    def errors(self) -> ModuleType:
        return self.module.exceptions

    def parser_class(self, asynchronous: bool = False) -> type:
        parsers = self.module._parsers
        prefix = "_Async" if asynchronous else "_"
        if self.compiled_parser:
            name = "HiredisParser" if self.library == "redis" else "LibvalkeyParser"
        else:
            name = f"RESP{self.protocol}Parser"
        return getattr(parsers, prefix + name)

    def client(self, port: int, decode_responses: bool = True, **options: Any):
        pool = self.module.ConnectionPool(
            host="127.0.0.1",
            port=port,
            protocol=self.protocol,
            parser_class=self.parser_class(),
            decode_responses=decode_responses,
            **options,
        )
        client_class = self.module.Redis if self.library == "redis" else self.module.Valkey
        return client_class(connection_pool=pool)

    def async_client(self, port: int):
        module = self.asyncio_module
        pool = module.ConnectionPool(
            host="127.0.0.1",
            port=port,
            protocol=self.protocol,
            parser_class=self.parser_class(asynchronous=True),
            decode_responses=True,
        )
        client_class = module.Redis if self.library == "redis" else module.Valkey
        return client_class(connection_pool=pool)

    def pair(self, *items: Any) -> Any:
        """How the library returns a member/score (or key/value) pair: a
        tuple parsed from RESP2, a list as it came on RESP3."""
        return tuple(items) if self.protocol == 2 else list(items)


FLAVOURS = [
    Flavour(library, compiled, protocol)
    for library in ("redis", "valkey")
    for compiled in (False, True)
    for protocol in (2, 3)
]


@pytest.fixture(params=FLAVOURS, ids=lambda f: f.id)
def flavour(request, monkeypatch) -> Flavour:
    flavour = request.param
    if flavour.library == "valkey" and not flavour.compiled_parser:
        # valkey-py 6.2 decides how to read RESP3 push messages from whether
        # libvalkey is importable, not from the parser the connection uses
        # (Connection.read_response): with libvalkey installed, the pure-Python
        # RESP3 parser is never told a push is expected and pub/sub stalls,
        # against Valkey itself too. An application on the pure-Python parser
        # is one without libvalkey installed, so the flag is set as such an
        # installation has it.
        for module in (valkey.connection, valkey.client, valkey.asyncio.connection, valkey.asyncio.client):
            monkeypatch.setattr(module, "LIBVALKEY_AVAILABLE", False)
    return flavour


@pytest.fixture
def r(server, flavour):
    """A client of the flavour under test, checked to really use the parser
    and protocol asked for (a library silently falling back would make the
    parametrisation meaningless)."""
    client = flavour.client(server.port)
    connection = client.connection_pool.get_connection("PING")
    try:
        assert type(connection._parser) is flavour.parser_class()
    finally:
        client.connection_pool.release(connection)
    assert client.client_info()["resp"] == str(flavour.protocol)
    yield client
    client.close()


def members(reply: set | list) -> set:
    """A set reply as a Python set: redis-py builds one, valkey-py 6 hands
    the members back as a list."""
    assert len(set(reply)) == len(reply), f"duplicate members in {reply}"
    return set(reply)


def wait_until(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + DEADLINE
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {DEADLINE:.0f}s waiting for {what}")
        time.sleep(0.01)


def blocked_clients(client) -> int:
    return client.info("clients")["blocked_clients"]


def in_thread_once_blocked(observer, action: Callable[[], Any]) -> threading.Thread:
    """Runs `action` on another thread as soon as the server reports a client
    blocked, so a blocking command is woken by it rather than by a timeout."""

    def run() -> None:
        wait_until(lambda: blocked_clients(observer) >= 1, "a client to block")
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# ---------------------------------------------------------------------------
# Data types through the libraries' command methods


def test_strings(r, flavour, server):
    assert r.set("greeting", "hello") is True
    assert r.set("greeting", "ignored", nx=True) is None
    assert r.set("absent", "x", xx=True) is None
    assert r.exists("absent") == 0
    assert r.set("greeting", "hi", xx=True, get=True) == "hello"
    assert r.get("greeting") == "hi"

    assert r.set("temp", "1", ex=100) is True
    assert 95 <= r.ttl("temp") <= 100
    assert r.set("temp", "2", px=50_000) is True
    assert 40_000 <= r.pttl("temp") <= 50_000
    assert r.set("temp", "3", keepttl=True) is True
    assert 40_000 <= r.pttl("temp") <= 50_000
    assert r.get("temp") == "3"
    assert r.getex("temp", persist=True) == "3"
    assert r.ttl("temp") == -1
    assert r.getex("greeting", ex=200) == "hi"
    assert 190 <= r.ttl("greeting") <= 200
    assert r.getex("absent") is None
    assert r.getdel("temp") == "3"
    assert r.exists("temp") == 0

    assert r.incr("counter") == 1
    assert r.incrby("counter", 41) == 42
    assert r.decrby("counter", 2) == 40
    assert r.incrbyfloat("float", 1.5) == 1.5
    assert r.incrbyfloat("float", "2.25") == 3.75
    assert r.get("float") == "3.75"
    with pytest.raises(flavour.errors.ResponseError, match="^value is not an integer or out of range$"):
        r.incr("greeting")

    assert r.mset({"k1": "ohmytext", "k2": "mynewtext"}) is True
    assert r.msetnx({"k1": "x", "k3": "y"}) is False
    assert r.mget("k1", "k2", "k3") == ["ohmytext", "mynewtext", None]
    assert r.getrange("k1", 2, 5) == "myte"
    assert r.getrange("k1", -4, -1) == "text"
    assert r.lcs("k1", "k2") == "mytext"
    assert r.lcs("k1", "k2", len=True) == 6
    matches = [[[4, 7], [5, 8], 4], [[2, 3], [0, 1], 2]]
    expected_idx = (
        ["matches", matches, "len", 6] if flavour.protocol == 2 else {"matches": matches, "len": 6}
    )
    assert r.lcs("k1", "k2", idx=True, withmatchlen=True, minmatchlen=2) == expected_idx
    assert r.setrange("k1", 2, "YOUR") == 8
    assert r.get("k1") == "ohYOURxt"
    assert r.setrange("padded", 3, "x") == 4
    assert r.get("padded") == "\x00\x00\x00x"
    assert r.append("k1", "!") == 9
    assert r.strlen("k1") == 9
    assert r.append("fresh", "abc") == 3

    # Binary-safe values through a client that does not decode replies.
    raw = flavour.client(server.port, decode_responses=False)
    blob = bytes(range(256)) * 4
    assert raw.set(b"blob\x00key", blob) is True
    assert raw.get(b"blob\x00key") == blob
    assert raw.strlen(b"blob\x00key") == 1024
    assert raw.getrange(b"blob\x00key", 254, 257) == b"\xfe\xff\x00\x01"
    raw.close()


def test_keys(r, flavour):
    r.set("k", "v")
    assert r.expire("k", 100) is True
    assert 95 <= r.ttl("k") <= 100
    assert 95_000 <= r.pttl("k") <= 100_000
    assert r.persist("k") is True
    assert r.persist("k") is False
    assert r.ttl("k") == -1
    assert r.ttl("no-such-key") == -2
    assert r.pttl("no-such-key") == -2
    assert r.expire("k", 100, nx=True) is True
    assert r.expire("k", 100, nx=True) is False
    assert r.expire("k", 50, gt=True) is False
    assert r.expire("k", 200, gt=True) is True
    assert 190 <= r.ttl("k") <= 200
    assert abs(r.expiretime("k") - (time.time() + 200)) < 30
    assert r.pexpire("k", 150_000, lt=True) is True
    assert 140 <= r.ttl("k") <= 150
    assert r.expireat("k", int(time.time()) + 1000) is True
    assert 990 <= r.ttl("k") <= 1000
    assert r.expire("no-such-key", 10) is False

    r.rpush("a-list", "x")
    r.hset("a-hash", "f", "v")
    r.sadd("a-set", "m")
    r.zadd("a-zset", {"m": 1})
    r.xadd("a-stream", {"f": "v"})
    assert [r.type(k) for k in ("k", "a-list", "a-hash", "a-set", "a-zset", "a-stream", "none")] == [
        "string",
        "list",
        "hash",
        "set",
        "zset",
        "stream",
        "none",
    ]

    assert r.rename("k", "renamed") is True
    assert r.get("renamed") == "v"
    assert 990 <= r.ttl("renamed") <= 1000, "RENAME keeps the TTL"
    with pytest.raises(flavour.errors.ResponseError, match="^no such key$"):
        r.rename("k", "elsewhere")
    assert r.renamenx("renamed", "a-list") is False
    assert r.copy("renamed", "copied") is True
    assert r.copy("renamed", "copied") is False
    r.set("renamed", "v2")
    assert r.copy("renamed", "copied", replace=True) is True
    assert r.get("copied") == "v2"

    restored = r.dump("a-hash")
    assert isinstance(restored, bytes)
    assert r.restore("restored-hash", 0, restored) == "OK"
    assert r.hgetall("restored-hash") == {"f": "v"}
    with pytest.raises(flavour.errors.ResponseError, match="^BUSYKEY Target key name already exists.$"):
        r.restore("restored-hash", 0, restored)

    for i in range(250):
        r.set(f"user:{i}", i)
    assert set(r.scan_iter(match="user:*", count=17)) == {f"user:{i}" for i in range(250)}
    assert set(r.scan_iter(_type="hash")) == {"a-hash", "restored-hash"}
    assert sorted(r.keys("a-*")) == ["a-hash", "a-list", "a-set", "a-stream", "a-zset"]
    assert r.exists("a-list", "a-set", "nope", "a-list") == 3
    assert r.touch("a-list", "nope") == 1
    assert r.unlink("a-list", "a-set", "nope") == 2
    assert r.delete("a-zset", "nope") == 1
    assert r.exists("a-list", "a-set", "a-zset") == 0

    # The encodings Valkey reports, which tools and tests read.
    r.set("int", 12345)
    r.set("short", "x" * 44)
    r.set("long", "x" * 45)
    r.rpush("small-list", *range(10))
    r.rpush("big-list", *[f"item-{i:020}" for i in range(1000)])
    r.hset("small-hash", mapping={f"f{i}": i for i in range(10)})
    r.hset("big-hash", mapping={f"f{i}": i for i in range(600)})
    r.sadd("int-set", *range(10))
    r.sadd("string-set", *[f"m{i}" for i in range(10)])
    r.sadd("big-set", *[f"m{i}" for i in range(200)])
    r.zadd("small-zset", {f"m{i}": i for i in range(10)})
    r.zadd("big-zset", {f"m{i}": i for i in range(200)})
    encodings = {
        "int": "int",
        "short": "embstr",
        "long": "raw",
        "small-list": "listpack",
        "big-list": "quicklist",
        "small-hash": "listpack",
        "big-hash": "hashtable",
        "int-set": "intset",
        "string-set": "listpack",
        "big-set": "hashtable",
        "small-zset": "listpack",
        "big-zset": "skiplist",
        "a-stream": "stream",
    }
    assert {key: r.object("encoding", key) for key in encodings} == encodings
    assert r.object("encoding", "nope") is None
    assert isinstance(r.object("idletime", "int"), int)
    assert r.object("refcount", "long") == 1


def test_lists(r, flavour, server):
    assert r.rpush("l", "a", "b", "c", "a", "b") == 5
    assert r.lpush("l", "z") == 6
    assert r.lrange("l", 0, -1) == ["z", "a", "b", "c", "a", "b"]
    assert r.lpos("l", "b") == 2
    assert r.lpos("l", "b", rank=2) == 5
    assert r.lpos("l", "b", rank=-1) == 5
    assert r.lpos("l", "b", count=0) == [2, 5]
    assert r.lpos("l", "b", maxlen=2) is None
    assert r.lpos("l", "nope") is None
    assert r.llen("l") == 6
    assert r.lindex("l", -1) == "b"
    assert r.linsert("l", "BEFORE", "c", "before-c") == 7
    assert r.lset("l", 0, "Z") is True
    assert r.lrem("l", 0, "a") == 2
    assert r.lrange("l", 0, -1) == ["Z", "b", "before-c", "c", "b"]
    assert r.ltrim("l", 1, -1) is True
    assert r.lmove("l", "moved", "LEFT", "RIGHT") == "b"
    assert r.rpoplpush("l", "moved") == "b"
    assert r.lrange("moved", 0, -1) == ["b", "b"]
    assert r.lpop("l") == "before-c"
    assert r.rpop("moved", 5) == ["b", "b"]
    assert r.exists("moved") == 0, "an emptied list is deleted"

    r.rpush("queue", "one", "two", "three", "four")
    assert r.blpop(["empty", "queue"], timeout=1) == flavour.pair("queue", "one")
    assert r.brpop(["queue"], timeout=1) == flavour.pair("queue", "four")
    assert r.blpop(["empty"], timeout=0.05) is None
    assert r.lmpop(2, "empty", "queue", direction="RIGHT", count=5) == ["queue", ["three", "two"]]
    assert r.lmpop(1, "empty", direction="LEFT") is None
    assert r.blmove("empty", "elsewhere", 0.05) is None

    # A pop that blocks until another client pushes.
    pusher = flavour.client(server.port)
    thread = in_thread_once_blocked(r, lambda: pusher.rpush("late", "arrived"))
    assert r.blpop(["late"], timeout=DEADLINE) == flavour.pair("late", "arrived")
    thread.join()
    thread = in_thread_once_blocked(r, lambda: pusher.rpush("late2", "x", "y"))
    assert r.blmpop(DEADLINE, 1, "late2", direction="LEFT", count=10) == ["late2", ["x", "y"]]
    thread.join()
    pusher.close()

    r.set("string", "x")
    with pytest.raises(
        flavour.errors.ResponseError,
        match="^WRONGTYPE Operation against a key holding the wrong kind of value$",
    ):
        r.lpush("string", "x")


def test_hashes(r, flavour):
    assert r.hset("h", mapping={"name": "ada", "visits": 1, "score": "1.5"}) == 3
    assert r.hset("h", "name", "grace") == 0
    assert r.hgetall("h") == {"name": "grace", "visits": "1", "score": "1.5"}
    assert r.hgetall("absent") == {}
    assert r.hincrby("h", "visits", 5) == 6
    assert r.hincrbyfloat("h", "score", 0.25) == 1.75
    assert r.hmget("h", "name", "absent", "visits") == ["grace", None, "6"]
    assert r.hsetnx("h", "name", "x") == 0
    assert r.hsetnx("h", "new", "x") == 1
    assert r.hexists("h", "new") is True
    assert r.hdel("h", "new", "absent") == 1
    assert r.hlen("h") == 3
    assert r.hstrlen("h", "name") == 5
    assert sorted(r.hkeys("h")) == ["name", "score", "visits"]
    assert sorted(r.hvals("h")) == ["1.75", "6", "grace"]

    assert r.hrandfield("h") in {"name", "visits", "score"}
    picked = r.hrandfield("h", 3, withvalues=True)
    everything = {"name": "grace", "visits": "6", "score": "1.75"}
    if flavour.protocol == 2:
        assert dict(zip(picked[::2], picked[1::2])) == everything
    else:
        assert all(isinstance(pair, list) for pair in picked)
        assert dict(picked) == everything
    with_repeats = r.hrandfield("h", -10)
    assert len(with_repeats) == 10 and set(with_repeats) <= set(everything)

    fields = {f"field:{i}": str(i * i) for i in range(600)}
    r.hset("big", mapping=fields)
    assert dict(r.hscan_iter("big", count=25)) == fields
    assert dict(r.hscan_iter("big", match="field:1?")) == {f"field:{i}": str(i * i) for i in range(10, 20)}
    assert r.object("encoding", "big") == "hashtable"


def test_sets(r, flavour):
    assert r.sadd("s", 1, 2, 3) == 3
    assert r.sadd("s", 3, 4) == 1
    assert r.sadd("t", 3, 4, 5) == 3
    assert members(r.smembers("s")) == {"1", "2", "3", "4"}
    assert members(r.smembers("absent")) == set()
    assert members(r.sinter("s", "t")) == {"3", "4"}
    assert members(r.sunion("s", "t")) == {"1", "2", "3", "4", "5"}
    assert members(r.sdiff("s", "t")) == {"1", "2"}
    assert r.sintercard(2, ["s", "t"]) == 2
    assert r.sinterstore("both", ["s", "t"]) == 2
    assert members(r.smembers("both")) == {"3", "4"}
    assert r.smismember("s", [1, 5, 4]) == [1, 0, 1]
    assert r.sismember("s", 2) == 1
    assert r.sismember("s", 9) == 0
    assert r.scard("s") == 4
    assert r.smove("s", "t", 1) is True
    assert r.srem("s", 2, 9) == 1
    assert members(r.smembers("s")) == {"3", "4"}
    assert r.srandmember("t") in {"1", "3", "4", "5"}
    assert len(r.srandmember("t", -7)) == 7
    popped = r.spop("t", 2)
    assert len(popped) == 2 and r.scard("t") == 2
    assert set(popped) | members(r.smembers("t")) == {"1", "3", "4", "5"}

    big = {f"member:{i}" for i in range(500)}
    r.sadd("big", *big)
    assert set(r.sscan_iter("big", count=40)) == big
    assert set(r.sscan_iter("big", match="member:4??")) == {f"member:{i}" for i in range(400, 500)}


def test_sorted_sets(r, flavour, server):
    assert r.zadd("z", {"a": 1, "b": 2.5}) == 2
    assert r.zadd("z", {"a": 1}, incr=True) == 2.0
    assert r.zadd("z", {"a": 1}, incr=True, nx=True) is None
    assert r.zadd("z", {"a": 0.5, "c": 3}, gt=True, ch=True) == 1
    assert r.zadd("z", {"b": 5}, xx=True, lt=True) == 0
    assert r.zscore("z", "b") == 2.5
    assert r.zscore("z", "nope") is None
    assert r.zmscore("z", ["c", "nope"]) == [3.0, None]
    p = flavour.pair
    assert r.zrange("z", 0, -1, withscores=True) == [p("a", 2.0), p("b", 2.5), p("c", 3.0)]
    assert r.zrange("z", 0, -1) == ["a", "b", "c"]
    assert r.zrange("z", 0, -1, desc=True) == ["c", "b", "a"]
    assert r.zrange("z", "(2", "+inf", byscore=True) == ["b", "c"]
    assert r.zrange("z", 2, 3, byscore=True, offset=1, num=5, withscores=True) == [p("b", 2.5), p("c", 3.0)]
    assert r.zrange("z", "[c", "-", bylex=True, desc=True) == ["c", "b", "a"]
    assert r.zrevrange("z", 0, 0, withscores=True) == [p("c", 3.0)]
    assert r.zrangebyscore("z", "-inf", 2.5) == ["a", "b"]
    assert r.zrangestore("copy", "z", 0, 1) == 2
    assert r.zrange("copy", 0, -1) == ["a", "b"]
    assert r.zrank("z", "c") == 2
    # valkey-py has no reply callback for ZRANK WITHSCORE: RESP2's score stays a string.
    raw_resp2_score = flavour.library == "valkey" and flavour.protocol == 2
    assert r.zrank("z", "c", withscore=True) == [2, "3" if raw_resp2_score else 3.0]
    assert r.zrevrank("z", "c") == 0
    assert r.zrank("z", "nope") is None
    assert r.zcard("z") == 3
    assert r.zcount("z", 2, 3) == 3
    assert r.zincrby("z", 0.25, "c") == 3.25
    assert r.zunion(["z", "copy"], withscores=True) == [p("c", 3.25), p("a", 4.0), p("b", 5.0)]
    assert r.zunion({"z": 1, "copy": 10}, aggregate="MAX") == ["c", "a", "b"]
    assert r.zinter(["z", "copy"], withscores=True) == [p("a", 4.0), p("b", 5.0)]
    assert r.zinterstore("inter", ["z", "copy"], aggregate="MIN") == 2
    assert r.zrange("inter", 0, -1, withscores=True) == [p("a", 2.0), p("b", 2.5)]
    assert r.zdiff(["z", "copy"]) == ["c"]

    assert r.zpopmin("z") == ([("a", 2.0)] if flavour.protocol == 2 else ["a", 2.0])
    assert r.zpopmax("z", 1) == [p("c", 3.25)]
    assert r.bzpopmin(["empty", "z"], timeout=1) == p("z", "b", 2.5)
    assert r.bzpopmin(["z"], timeout=0.05) is None
    assert r.exists("z") == 0

    zadder = flavour.client(server.port)
    thread = in_thread_once_blocked(r, lambda: zadder.zadd("late", {"x": 7, "y": 8}))
    assert r.bzpopmax(["late"], timeout=DEADLINE) == p("late", "y", 8.0)
    thread.join()
    zadder.close()
    # ZMPOP has no reply callback: RESP2's score stays a string.
    assert r.zmpop(1, ["late"], min=True) == ["late", [["x", "7" if flavour.protocol == 2 else 7.0]]]

    r.zadd("scores", {"tiny": 1e-10, "neg": -0.5, "huge": 1.5e300, "third": 1 / 3, "inf": float("inf")})
    assert r.zscore("scores", "tiny") == 1e-10
    assert r.zscore("scores", "third") == 1 / 3
    assert r.zscore("scores", "huge") == 1.5e300
    assert r.zscore("scores", "inf") == float("inf")
    assert r.zrange("scores", 0, 1, withscores=True) == [p("neg", -0.5), p("tiny", 1e-10)]

    members = {f"m{i}": float(i) for i in range(300)}
    r.zadd("big", members)
    assert dict(r.zscan_iter("big", count=30)) == members
    assert r.object("encoding", "big") == "skiplist"


def stream_reply(flavour: Flavour, key: str, entries: list) -> Any:
    """XREAD/XREADGROUP as the library returns them: a list of [key, entries]
    on RESP2, a map of key to [entries] on RESP3."""
    return [[key, entries]] if flavour.protocol == 2 else {key: [entries]}


def test_streams(r, flavour, server):
    ids = [r.xadd("events", {"n": i, "kind": "tick"}, maxlen=10, approximate=False) for i in range(20)]
    assert r.xlen("events") == 10
    assert r.xrange("events") == [(ids[i], {"n": str(i), "kind": "tick"}) for i in range(10, 20)]
    assert r.xrange("events", min=ids[15], count=2) == [(ids[i], {"n": str(i), "kind": "tick"}) for i in (15, 16)]
    assert r.xrevrange("events", count=1) == [(ids[19], {"n": "19", "kind": "tick"})]
    with pytest.raises(
        flavour.errors.ResponseError,
        match="^The ID specified in XADD is equal or smaller than the target stream top item$",
    ):
        r.xadd("events", {"n": "x"}, id="1-1")
    assert r.xadd("explicit", {"a": "b"}, id="5-7") == "5-7"
    assert r.xtrim("events", maxlen=5, approximate=False) == 5
    assert r.xdel("events", ids[15], ids[0]) == 1

    assert r.xread({"events": ids[18]}) == stream_reply(flavour, "events", [(ids[19], {"n": "19", "kind": "tick"})])
    assert r.xread({"events": "$"}, block=50) == ([] if flavour.protocol == 2 else {})

    # An XREAD that blocks until another client adds an entry.
    writer = flavour.client(server.port)
    added: list[str] = []
    thread = in_thread_once_blocked(r, lambda: added.append(writer.xadd("events", {"n": "late"})))
    woken = r.xread({"events": "$"}, block=int(DEADLINE * 1000))
    thread.join()
    assert woken == stream_reply(flavour, "events", [(added[0], {"n": "late"})])

    # Consumer groups.
    assert r.xgroup_create("jobs", "workers", id="0", mkstream=True) is True
    with pytest.raises(flavour.errors.ResponseError, match="^BUSYGROUP Consumer Group name already exists$"):
        r.xgroup_create("jobs", "workers", id="0")
    job_ids = [r.xadd("jobs", {"job": i}) for i in range(5)]
    jobs = {job_id: {"job": str(i)} for i, job_id in enumerate(job_ids)}
    assert r.xreadgroup("workers", "alice", {"jobs": ">"}, count=3) == stream_reply(
        flavour, "jobs", [(i, jobs[i]) for i in job_ids[:3]]
    )
    assert r.xreadgroup("workers", "bob", {"jobs": ">"}) == stream_reply(
        flavour, "jobs", [(i, jobs[i]) for i in job_ids[3:]]
    )
    assert r.xpending("jobs", "workers") == {
        "pending": 5,
        "min": job_ids[0],
        "max": job_ids[4],
        "consumers": [{"name": "alice", "pending": 3}, {"name": "bob", "pending": 2}],
    }
    alice_pending = r.xpending_range("jobs", "workers", "-", "+", 10, consumername="alice")
    assert [(p["message_id"], p["consumer"], p["times_delivered"]) for p in alice_pending] == [
        (i, "alice", 1) for i in job_ids[:3]
    ]
    assert all(isinstance(p["time_since_delivered"], int) for p in alice_pending)
    assert r.xack("jobs", "workers", job_ids[0], job_ids[1], "0-1") == 2
    assert r.xclaim("jobs", "workers", "carol", 0, [job_ids[2]]) == [(job_ids[2], jobs[job_ids[2]])]
    assert r.xclaim("jobs", "workers", "carol", 0, [job_ids[2]], justid=True) == [job_ids[2]]
    assert r.xautoclaim("jobs", "workers", "dave", 0, start_id="0-0", count=10) == [
        "0-0",
        [(i, jobs[i]) for i in job_ids[2:]],
        [],
    ]
    assert r.xautoclaim("jobs", "workers", "erin", 0, count=1, justid=True) == [job_ids[2]]
    # Alice's own history: everything she had was acknowledged or claimed.
    assert r.xreadgroup("workers", "alice", {"jobs": "0"}) == stream_reply(flavour, "jobs", [])
    pending_by_consumer = r.xpending("jobs", "workers")["consumers"]
    assert pending_by_consumer == [{"name": "dave", "pending": 2}, {"name": "erin", "pending": 1}]

    info = r.xinfo_stream("jobs")
    assert info["length"] == 5
    assert info["groups"] == 1
    assert info["last-generated-id"] == job_ids[4]
    assert info["entries-added"] == 5
    assert info["first-entry"] == (job_ids[0], jobs[job_ids[0]])
    assert info["last-entry"] == (job_ids[4], jobs[job_ids[4]])
    full = r.xinfo_stream("jobs", full=True)
    assert full["entries"] == jobs
    assert [g["name"] for g in full["groups"]] == ["workers"]
    assert full["groups"][0]["pel-count"] == 3
    assert r.xinfo_groups("jobs") == [
        {
            "name": "workers",
            "consumers": 5,
            "pending": 3,
            "last-delivered-id": job_ids[4],
            "entries-read": 5,
            "lag": 0,
        }
    ]
    consumers = r.xinfo_consumers("jobs", "workers")
    assert [(c["name"], c["pending"]) for c in consumers] == [
        ("alice", 0),
        ("bob", 0),
        ("carol", 0),
        ("dave", 2),
        ("erin", 1),
    ]
    assert all(isinstance(c["idle"], int) and isinstance(c["inactive"], int) for c in consumers)
    assert r.xgroup_delconsumer("jobs", "workers", "dave") == 2
    assert r.xgroup_createconsumer("jobs", "workers", "frank") == 1
    assert r.xgroup_setid("jobs", "workers", "0") is True
    assert r.xinfo_groups("jobs")[0]["lag"] == 5
    assert r.xgroup_destroy("jobs", "workers") == 1
    assert r.xinfo_groups("jobs") == []


def test_bitmaps_hyperloglog_geo(r, flavour, server):
    assert r.setbit("bits", 7, 1) == 0
    assert r.setbit("bits", 7, 1) == 1
    assert r.getbit("bits", 7) == 1
    assert r.getbit("bits", 100) == 0
    r.setbit("bits", 16, 1)
    assert r.bitcount("bits") == 2
    assert r.bitcount("bits", 0, 0) == 1
    assert r.bitcount("bits", 8, 16, "BIT") == 1
    assert r.bitpos("bits", 1) == 7
    assert r.bitpos("bits", 1, 1) == 16
    raw = flavour.client(server.port, decode_responses=False)
    assert raw.get("bits") == b"\x01\x00\x80"
    raw.set("other", b"\xff")
    raw.close()
    assert r.bitop("AND", "anded", "bits", "other") == 3
    assert r.bitcount("anded") == 1

    results = (
        r.bitfield("fields")
        .set("u8", 0, 200)
        .incrby("u8", 0, 100)
        .get("u8", 0)
        .overflow("SAT")
        .incrby("i8", 8, 200)
        .overflow("FAIL")
        .incrby("u4", 16, 20)
        .execute()
    )
    assert results == [0, 44, 44, 127, None]
    assert r.bitfield_ro("fields", "u8", 0, items=[("i8", 8)]) == [44, 127]

    assert r.pfadd("visitors", *[f"user{i}" for i in range(1000)]) == 1
    assert r.pfadd("visitors", "user1") == 0
    assert 980 <= r.pfcount("visitors") <= 1020
    r.pfadd("more", *[f"user{i}" for i in range(500, 1500)])
    assert 1470 <= r.pfcount("visitors", "more") <= 1530
    assert r.pfmerge("merged", "visitors", "more") is True
    assert r.pfcount("merged") == r.pfcount("visitors", "more")

    assert r.geoadd("sicily", [13.361389, 38.115556, "Palermo", 15.087269, 37.502669, "Catania"]) == 2
    assert r.geoadd("sicily", [13.361389, 38.115556, "Palermo"], nx=True) == 0
    assert r.geodist("sicily", "Palermo", "Catania", unit="km") == 166.2742
    assert r.geohash("sicily", "Palermo", "nowhere") == ["sqc8b49rny0", None]
    position = r.geopos("sicily", "Palermo")[0]
    assert list(position) == pytest.approx([13.361389, 38.115556], abs=1e-5)
    found = r.geosearch(
        "sicily", longitude=15, latitude=37, radius=200, unit="km", withdist=True, withcoord=True, sort="ASC"
    )
    assert [(name, dist) for name, dist, _ in found] == [("Catania", 56.4413), ("Palermo", 190.4424)]
    assert found[0][2] == pytest.approx((15.087269, 37.502669), abs=1e-5)
    assert r.geosearch("sicily", member="Palermo", radius=100, unit="km") == ["Palermo"]
    assert r.geosearchstore("near", "sicily", longitude=15, latitude=37, radius=100, unit="km") == 1
    assert r.zrange("near", 0, -1) == ["Catania"]


def test_server_introspection(r, flavour, server):
    r.set("plain", "v")
    r.set("expiring", "v", ex=1000)
    r.hset("hash", "f", "v")
    other_db = flavour.client(server.port, db=3)
    other_db.set("in-db-3", "v")

    info = r.info()
    assert info["valkey_version"] == "8.0.1"
    assert info["redis_version"] == "7.2.4"
    assert info["tcp_port"] == server.port
    assert info["role"] == "master"
    assert info["db0"] == {"keys": 3, "expires": 1, "avg_ttl": info["db0"]["avg_ttl"]}
    assert isinstance(info["db0"]["avg_ttl"], int)
    assert isinstance(info["used_memory"], int) and info["used_memory"] > 0
    server_section = r.info("server")
    assert server_section["server_name"] == "valkey"
    assert server_section["process_id"] == server.process.pid
    assert "used_memory" not in server_section
    memory = r.info("memory")
    assert isinstance(memory["used_memory"], int)
    assert isinstance(memory["mem_fragmentation_ratio"], float)
    assert memory["maxmemory_policy"] == "noeviction"
    persistence = r.info("persistence")
    assert persistence["loading"] == 0
    assert persistence["aof_enabled"] == 0
    assert persistence["rdb_bgsave_in_progress"] == 0
    assert persistence["rdb_last_bgsave_status"] == "ok"
    keyspace = r.info("keyspace")
    assert set(keyspace) == {"db0", "db3"}
    assert keyspace["db3"] == {"keys": 1, "expires": 0, "avg_ttl": 0}
    assert set(r.info("server", "clients")) >= {"valkey_version", "connected_clients"}

    assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert r.config_set("maxmemory-policy", "allkeys-lru") is True
    assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    assert r.config_set("hz", 20) is True
    assert r.config_get("hz") == {"hz": "20"}
    assert set(r.config_get("maxmemory*")) >= {"maxmemory", "maxmemory-policy", "maxmemory-samples"}
    with pytest.raises(flavour.errors.ResponseError, match="Unknown option or number of arguments"):
        r.config_set("no-such-option", "1")

    assert r.client_setname("app-web-1") is True
    assert r.client_getname() == "app-web-1"
    me = r.client_info()
    assert me["name"] == "app-web-1"
    assert me["db"] == 0
    assert me["lib-name"] == ("redis-py" if flavour.library == "redis" else "valkey-py")
    assert me["resp"] == str(flavour.protocol)
    listed = r.client_list()
    assert me["id"] in [int(c["id"]) for c in listed]
    assert [c["name"] for c in listed if int(c["id"]) == me["id"]] == ["app-web-1"]
    assert any(c["db"] == "3" for c in r.client_list(_type="normal"))
    assert r.client_id() == me["id"]

    assert r.memory_usage("plain") > 0
    r.set("big-value", "x" * 10_000)
    assert r.memory_usage("big-value") > 10_000
    assert r.memory_usage("nope") is None

    assert r.dbsize() == 4
    assert other_db.dbsize() == 1
    assert r.flushdb() is True
    assert r.dbsize() == 0
    assert other_db.dbsize() == 1, "FLUSHDB empties only the selected database"
    other_db.close()

    seconds, microseconds = r.time()
    assert abs(seconds + microseconds / 1e6 - time.time()) < 60
    assert r.echo("hello there") == "hello there"
    assert r.ping() is True
    assert r.lastsave().year >= 2024

    hello = r.execute_command("HELLO", flavour.protocol)
    if flavour.protocol == 2:
        hello = dict(zip(hello[::2], hello[1::2]))
    assert hello == {
        "server": "valkey",
        "version": "8.0.1",
        "proto": flavour.protocol,
        "id": me["id"],
        "mode": "standalone",
        "role": "master",
        "modules": [],
    }


# ---------------------------------------------------------------------------
# Pipelines and transactions


def command_calls(client, command: str) -> int:
    return client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0)


@pytest.mark.parametrize("transaction", [False, True], ids=["pipeline", "multi-exec"])
def test_pipeline(r, flavour, transaction):
    pipe = r.pipeline(transaction=transaction)
    expected: list[Any] = []
    for i in range(100):
        pipe.set(f"p:{i}", i)
        pipe.incr("p:counter")
        pipe.rpush("p:list", i)
        expected += [True, i + 1, i + 1]
    pipe.get("p:42")
    pipe.lrange("p:list", 0, 2)
    pipe.hset("p:hash", mapping={"a": 1, "b": 2})
    pipe.hgetall("p:hash")
    pipe.zadd("p:zset", {"x": 1.5})
    pipe.zrange("p:zset", 0, -1, withscores=True)
    pipe.expire("p:hash", 100)
    pipe.ttl("p:hash")
    pipe.scard("p:nothing")
    pipe.get("p:nothing")
    expected += ["42", ["0", "1", "2"], 2, {"a": "1", "b": "2"}, 1, [flavour.pair("x", 1.5)], True, 100, 0, None]
    results = pipe.execute()
    assert len(results) == 310
    assert results == expected
    assert r.get("p:counter") == "100"
    assert r.llen("p:list") == 100
    # The transactional pipeline really went through MULTI/EXEC, once.
    assert command_calls(r, "multi") == command_calls(r, "exec") == (1 if transaction else 0)
    assert pipe.execute() == [], "a pipeline is empty again after execute"


@pytest.mark.parametrize("transaction", [False, True], ids=["pipeline", "multi-exec"])
def test_pipeline_error_in_the_middle(r, flavour, transaction):
    r.set("text", "abc")
    pipe = r.pipeline(transaction=transaction)
    pipe.set("before", 1)
    pipe.incr("text")
    pipe.lpush("text", "x")
    pipe.get("text")
    pipe.set("after", 2)
    results = pipe.execute(raise_on_error=False)
    assert len(results) == 5
    assert results[0] is True
    assert isinstance(results[1], flavour.errors.ResponseError)
    assert "value is not an integer or out of range" in str(results[1])
    assert isinstance(results[2], flavour.errors.ResponseError)
    assert "WRONGTYPE Operation against a key holding the wrong kind of value" in str(results[2])
    assert results[3:] == ["abc", True]
    # A failing command does not stop the others, inside MULTI/EXEC too.
    assert r.mget("before", "text", "after") == ["1", "abc", "2"]

    pipe.set("before", 10)
    pipe.incr("text")
    with pytest.raises(flavour.errors.ResponseError, match="value is not an integer or out of range"):
        pipe.execute()
    assert r.get("before") == "10"


def test_transaction_aborted_when_a_command_is_rejected_while_queued(r, flavour):
    pipe = r.pipeline(transaction=True)
    pipe.set("queued", 1)
    pipe.execute_command("NO-SUCH-COMMAND", "x")
    pipe.set("also-queued", 2)
    with pytest.raises(flavour.errors.ResponseError) as raised:
        pipe.execute()
    assert "unknown command 'NO-SUCH-COMMAND'" in str(raised.value)
    assert r.exists("queued", "also-queued") == 0, "EXECABORT runs nothing"


def test_watch_retries_under_a_concurrent_writer(r, flavour, server):
    """Check-and-set increments with r.transaction() from two clients while a
    third INCRs the same key: every increment from every side lands exactly
    once, however often a transaction had to be retried."""
    transactions_per_worker = 100
    writer_increments = 300
    r.set("balance", 0)
    attempts = 0
    attempts_lock = threading.Lock()

    def add_one(pipe) -> None:
        nonlocal attempts
        with attempts_lock:
            attempts += 1
        current = int(pipe.get("balance"))
        pipe.multi()
        pipe.set("balance", current + 1)

    def concurrent_writer() -> None:
        writer = flavour.client(server.port)
        for _ in range(writer_increments):
            writer.incr("balance")
        writer.close()

    def transactional_worker() -> None:
        client = flavour.client(server.port)
        for _ in range(transactions_per_worker):
            client.transaction(add_one, "balance")
        client.close()

    threads = [threading.Thread(target=concurrent_writer)]
    threads += [threading.Thread(target=transactional_worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert int(r.get("balance")) == 2 * transactions_per_worker + writer_increments
    assert attempts >= 2 * transactions_per_worker


def test_watch_error_when_the_watched_key_changes(r, flavour, server):
    other = flavour.client(server.port)
    r.set("stock", 10)
    with r.pipeline() as pipe:
        pipe.watch("stock")
        assert pipe.get("stock") == "10"
        other.set("stock", 3)
        pipe.multi()
        pipe.set("stock", 9)
        with pytest.raises(flavour.errors.WatchError):
            pipe.execute()
    assert r.get("stock") == "3"

    # A key created, or expired, after WATCH also aborts the transaction.
    with r.pipeline() as pipe:
        pipe.watch("created-later")
        other.set("created-later", "x")
        pipe.multi()
        pipe.set("created-later", "mine")
        with pytest.raises(flavour.errors.WatchError):
            pipe.execute()
    assert r.get("created-later") == "x"

    # UNWATCH forgets the watch: the transaction goes through.
    with r.pipeline() as pipe:
        pipe.watch("stock")
        pipe.unwatch()
        other.set("stock", 4)
        pipe.multi()
        pipe.incr("stock")
        assert pipe.execute() == [5]

    # r.transaction() retries the whole function after a WatchError.
    calls = 0

    def reserve(pipe) -> int:
        nonlocal calls
        calls += 1
        stock = int(pipe.get("stock"))
        if calls == 1:
            other.incrby("stock", 100)
        pipe.multi()
        pipe.set("stock", stock - 1)
        return stock - 1

    assert r.transaction(reserve, "stock", value_from_callable=True) == 104
    assert calls == 2
    assert r.get("stock") == "104"
    other.close()


# ---------------------------------------------------------------------------
# Pub/sub


def collect(receive: Callable[[], dict | None], count: int) -> list[dict]:
    messages: list[dict] = []
    deadline = time.monotonic() + DEADLINE
    while len(messages) < count:
        message = receive()
        if message is not None:
            messages.append(message)
        elif time.monotonic() > deadline:
            pytest.fail(f"received {len(messages)} of {count} messages: {messages}")
    return messages


def summary(messages: list[dict]) -> list[tuple]:
    return [(m["type"], m["pattern"], m["channel"], m["data"]) for m in messages]


def test_pubsub_subscribe_and_psubscribe(r, flavour, server):
    publisher = flavour.client(server.port)
    p = r.pubsub()
    receive = lambda: p.get_message(timeout=1.0)  # noqa: E731
    p.subscribe("news", "sport")
    p.psubscribe("n*")
    assert summary(collect(receive, 3)) == [
        ("subscribe", None, "news", 1),
        ("subscribe", None, "sport", 2),
        ("psubscribe", None, "n*", 3),
    ]
    assert publisher.pubsub_numsub("news", "sport", "none") == [("news", 1), ("sport", 1), ("none", 0)]
    assert publisher.pubsub_numpat() == 1
    assert sorted(publisher.pubsub_channels()) == ["news", "sport"]
    assert publisher.pubsub_channels("n*") == ["news"]

    expected = []
    for i in range(50):
        assert publisher.publish("news", f"headline {i}") == 2
        expected += [("message", None, "news", f"headline {i}"), ("pmessage", "n*", "news", f"headline {i}")]
    assert publisher.publish("sport", "goal") == 1
    assert publisher.publish("nothing-here", "only the pattern") == 1
    assert publisher.publish("unheard", "x") == 0
    expected += [("message", None, "sport", "goal"), ("pmessage", "n*", "nothing-here", "only the pattern")]
    assert summary(collect(receive, len(expected))) == expected

    p.unsubscribe("sport")
    assert summary(collect(receive, 1)) == [("unsubscribe", None, "sport", 2)]
    p.punsubscribe()
    assert summary(collect(receive, 1)) == [("punsubscribe", None, "n*", 1)]
    assert publisher.pubsub_numpat() == 0
    p.unsubscribe()
    assert summary(collect(receive, 1)) == [("unsubscribe", None, "news", 0)]
    assert publisher.pubsub_numsub("news") == [("news", 0)]
    p.close()

    # The connection went back to the pool usable for commands.
    assert r.set("after-pubsub", 1) is True
    publisher.close()


def test_pubsub_sharded(r, flavour, server):
    publisher = flavour.client(server.port)
    p = r.pubsub()
    receive = lambda: p.get_sharded_message(timeout=1.0)  # noqa: E731
    p.ssubscribe("orders", "refunds")
    assert summary(collect(receive, 2)) == [
        ("ssubscribe", None, "orders", 1),
        ("ssubscribe", None, "refunds", 2),
    ]
    assert publisher.pubsub_shardnumsub("orders", "none") == [("orders", 1), ("none", 0)]
    assert sorted(publisher.pubsub_shardchannels()) == ["orders", "refunds"]
    for i in range(20):
        assert publisher.spublish("orders", f"order {i}") == 1
    assert publisher.publish("orders", "not sharded") == 0
    assert summary(collect(receive, 20)) == [("smessage", None, "orders", f"order {i}") for i in range(20)]
    p.sunsubscribe("orders")
    assert summary(collect(receive, 1)) == [("sunsubscribe", None, "orders", 1)]
    assert publisher.pubsub_shardnumsub("orders") == [("orders", 0)]
    p.close()
    publisher.close()


def test_pubsub_run_in_thread(r, flavour, server):
    received: list[dict] = []
    by_pattern: list[dict] = []
    p = r.pubsub(ignore_subscribe_messages=True)
    p.subscribe(**{"events": received.append})
    p.psubscribe(**{"ev*": by_pattern.append})
    worker = p.run_in_thread(sleep_time=0.01, daemon=True)
    try:
        publisher = flavour.client(server.port)
        wait_until(lambda: publisher.pubsub_numpat() == 1, "the pattern subscription")
        for i in range(200):
            assert publisher.publish("events", str(i)) == 2
        wait_until(lambda: len(received) == 200 and len(by_pattern) == 200, "200 messages each way")
        publisher.close()
    finally:
        worker.stop()
        worker.join(timeout=DEADLINE)
    assert [m["data"] for m in received] == [str(i) for i in range(200)]
    assert {(m["type"], m["pattern"], m["channel"]) for m in by_pattern} == {("pmessage", "ev*", "events")}
    assert [m["data"] for m in by_pattern] == [str(i) for i in range(200)]


def test_monitor(r, flavour, server):
    """The library's MONITOR reader sees another client's commands, those a
    script runs marked as from Lua, in order."""
    # A read timeout, so that a missing line fails the test instead of hanging it.
    watcher = flavour.client(server.port, socket_timeout=DEADLINE)
    assert r.ping() is True, "connected (and handshake done) before monitoring"
    with watcher.monitor() as monitor:
        r.set("watched", "some value")
        assert r.eval("return redis.call('GET', KEYS[1])", 1, "watched") == "some value"
        r.echo("done")
        seen = [monitor.next_command() for _ in range(4)]
    watcher.close()
    assert [(c["db"], c["client_type"], c["command"]) for c in seen] == [
        (0, "tcp", "SET watched some value"),
        (0, "tcp", "EVAL return redis.call('GET', KEYS[1]) 1 watched"),
        (0, "lua", "GET watched"),
        (0, "tcp", "ECHO done"),
    ]
    assert all(abs(c["time"] - time.time()) < 60 for c in seen)


# ---------------------------------------------------------------------------
# Lua scripts and functions


def test_lua_scripts(r, flavour):
    echo = r.register_script("return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}")
    assert echo(keys=["k"], args=["a", 41]) == ["k", "a", 42]
    assert r.script_exists(echo.sha) == [True]
    assert r.script_flush() is True
    assert r.script_exists(echo.sha) == [False]
    # EVALSHA answers NOSCRIPT; the library loads the script and retries.
    assert echo(keys=["k2"], args=["b", 1]) == ["k2", "b", 2]
    # Both the first call and this one met NOSCRIPT: the library loads a
    # script only when EVALSHA reports it missing.
    assert r.info("errorstats")["errorstat_NOSCRIPT"] == {"count": 2}
    assert r.script_exists(echo.sha) == [True]
    with pytest.raises(flavour.errors.NoScriptError, match="No matching script"):
        r.evalsha("0" * 40, 0)

    rate_limit = r.register_script(
        """
        local hits = redis.call('INCR', KEYS[1])
        if hits == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
        return hits
        """
    )
    assert [rate_limit(keys=["hits"], args=[60_000]) for _ in range(5)] == [1, 2, 3, 4, 5]
    assert 50_000 < r.pttl("hits") <= 60_000

    set_it = r.register_script("return redis.call('SET', KEYS[1], ARGV[1])")
    assert set_it(keys=["s"], args=["v"]) == "OK"
    assert r.get("s") == "v"
    assert r.eval("return redis.status_reply('FINE')", 0) == "FINE"
    assert r.eval("return 3.99", 0) == 3
    assert r.eval("return {1, 2.9, 'three', {4, 'five'}, true}", 0) == [1, 2, "three", [4, "five"], 1]
    assert r.eval("return {1, 2, false, 4}", 0) == [1, 2, None, 4]
    assert r.eval("return false", 0) is None
    assert r.eval("return nil", 0) is None
    r.hset("h", mapping={"f": "v"})
    assert r.eval("return redis.call('HGETALL', KEYS[1])", 1, "h") == ["f", "v"]
    assert r.eval_ro("return redis.call('GET', KEYS[1])", 1, "s") == "v"

    with pytest.raises(flavour.errors.ResponseError) as raised:
        r.eval("return redis.error_reply('MYERR something went wrong')", 0)
    assert str(raised.value) == "MYERR something went wrong"
    with pytest.raises(flavour.errors.ResponseError) as raised:
        r.eval("return {err='CUSTOM failure'}", 0)
    assert str(raised.value) == "CUSTOM failure"
    r.set("text", "abc")
    failing = r.register_script("return redis.call('INCR', KEYS[1])")
    with pytest.raises(flavour.errors.ResponseError) as raised:
        failing(keys=["text"])
    assert str(raised.value) == (
        f"value is not an integer or out of range script: {failing.sha}, on @user_script:1."
    )
    with pytest.raises(flavour.errors.ResponseError) as raised:
        r.eval("error('boom')", 0)
    assert str(raised.value).startswith("user_script:1: boom script: ")
    with pytest.raises(flavour.errors.ResponseError) as raised:
        r.eval_ro("return redis.call('SET', 'x', 'y')", 0)
    assert str(raised.value).startswith("Write commands are not allowed from read-only scripts.")
    caught = r.eval(
        "local ok, err = pcall(redis.call, 'INCR', KEYS[1]); return {tostring(ok), type(err), err}", 1, "text"
    )
    assert caught == ["false", "string", "ERR value is not an integer or out of range"]


INVENTORY_LIBRARY = """#!lua name=inventory
local function reserve(keys, args)
  local stock = tonumber(redis.call('HGET', keys[1], 'stock') or '0')
  local wanted = tonumber(args[1])
  if wanted > stock then
    return redis.error_reply('NOSTOCK only ' .. stock .. ' left')
  end
  redis.call('HINCRBY', keys[1], 'stock', -wanted)
  return stock - wanted
end

local function describe(keys, args)
  return redis.call('HGETALL', keys[1])
end

redis.register_function('reserve', reserve)
redis.register_function{function_name='describe', callback=describe, flags={'no-writes'}}
"""


def test_functions(r, flavour):
    assert r.function_load(INVENTORY_LIBRARY) == "inventory"
    with pytest.raises(flavour.errors.ResponseError, match="Library 'inventory' already exists"):
        r.function_load(INVENTORY_LIBRARY)
    assert r.function_load(INVENTORY_LIBRARY, replace=True) == "inventory"

    r.hset("item:1", mapping={"stock": 10, "name": "widget"})
    assert r.fcall("reserve", 1, "item:1", 3) == 7
    assert r.fcall("reserve", 1, "item:1", 7) == 0
    with pytest.raises(flavour.errors.ResponseError) as raised:
        r.fcall("reserve", 1, "item:1", 1)
    assert str(raised.value) == "NOSTOCK only 0 left"
    assert r.fcall_ro("describe", 1, "item:1") == ["stock", "0", "name", "widget"]
    with pytest.raises(flavour.errors.ResponseError, match="Can not execute a script with write flag using \\*_ro command."):
        r.fcall_ro("reserve", 1, "item:1", 1)

    libraries = r.function_list(library="inventory")
    assert len(libraries) == 1
    library = libraries[0]
    if flavour.protocol == 2:
        library = dict(zip(library[::2], library[1::2]))
        functions = [dict(zip(f[::2], f[1::2])) for f in library["functions"]]
    else:
        functions = library["functions"]
    assert library["library_name"] == "inventory"
    assert library["engine"] == "LUA"
    assert sorted((f["name"], tuple(f["flags"])) for f in functions) == [
        ("describe", ("no-writes",)),
        ("reserve", ()),
    ]

    dumped = r.function_dump()
    assert r.function_delete("inventory") is True
    with pytest.raises(flavour.errors.ResponseError, match="Function not found"):
        r.fcall("reserve", 1, "item:1", 1)
    assert r.function_restore(dumped) is True
    assert r.fcall_ro("describe", 1, "item:1") == ["stock", "0", "name", "widget"]
    assert r.function_flush() is True
    assert r.function_list() == []


# ---------------------------------------------------------------------------
# asyncio clients


def test_asyncio_client(server, flavour):
    async def scenario() -> None:
        client = flavour.async_client(server.port)
        try:
            assert await client.set("greeting", "hello", ex=100) is True
            assert await client.get("greeting") == "hello"
            assert 90 <= await client.ttl("greeting") <= 100
            assert await client.hset("h", mapping={"a": 1, "b": 2}) == 2
            assert await client.hgetall("h") == {"a": "1", "b": "2"}
            assert await client.zadd("z", {"x": 1, "y": 2}) == 2
            assert await client.zrange("z", 0, -1, withscores=True) == [flavour.pair("x", 1.0), flavour.pair("y", 2.0)]
            assert await client.rpush("l", *range(5)) == 5
            assert await client.blpop(["l"], timeout=1) == flavour.pair("l", "0")
            connection = client.connection_pool._available_connections[0]
            assert type(connection._parser) is flavour.parser_class(asynchronous=True)
            assert (await client.client_info())["resp"] == str(flavour.protocol)

            async with client.pipeline(transaction=True) as pipe:
                for _ in range(200):
                    pipe.incr("counter")
                pipe.get("counter")
                results = await pipe.execute()
            assert results == list(range(1, 201)) + ["200"]
            async with client.pipeline(transaction=False) as pipe:
                pipe.set("x", "1")
                pipe.lpush("x", "oops")
                pipe.get("x")
                results = await pipe.execute(raise_on_error=False)
            assert results[0] is True and results[2] == "1"
            assert isinstance(results[1], flavour.errors.ResponseError)

            pubsub = client.pubsub()
            await pubsub.subscribe("chan")
            await pubsub.psubscribe("ch*")

            async def receive() -> list[dict]:
                return await pubsub.get_message(timeout=1.0)

            async def collect_async(count: int) -> list[tuple]:
                messages = []
                deadline = time.monotonic() + DEADLINE
                while len(messages) < count:
                    message = await receive()
                    if message is not None:
                        messages.append(message)
                    elif time.monotonic() > deadline:
                        pytest.fail(f"received {len(messages)} of {count}: {messages}")
                return summary(messages)

            assert await collect_async(2) == [("subscribe", None, "chan", 1), ("psubscribe", None, "ch*", 2)]
            publisher = flavour.async_client(server.port)
            for i in range(20):
                assert await publisher.publish("chan", f"m{i}") == 2
            expected = []
            for i in range(20):
                expected += [("message", None, "chan", f"m{i}"), ("pmessage", "ch*", "chan", f"m{i}")]
            assert await collect_async(40) == expected
            await pubsub.unsubscribe("chan")
            assert await collect_async(1) == [("unsubscribe", None, "chan", 1)]
            await pubsub.aclose()
            await publisher.aclose()
        finally:
            await client.aclose()

    asyncio.run(scenario())
