"""redis-py's client-side cache (RESP3, CLIENT TRACKING) against a server.

Usage: client_side_cache.py PORT. Exits 0 when every check passes, prints
what failed otherwise. Run by tests/tracking.rs with the environment that
scripts/py-venv.sh makes.

redis-py turns its cache on only for a server that says it is "redis" 7.4
or later in HELLO; Valkey 8.0.1 (and so ferrokey, which answers HELLO as
Valkey does) says "valkey" 8.0.1 and is refused before any command is
sent. The gate is a product check, not a protocol one: the tracking
protocol redis-py relies on is the same. So this script lifts it, and
everything else is redis-py's own cache at work.
"""

import sys
import time

import redis
import redis.connection
from redis.cache import CacheConfig

redis.connection.CacheProxyConnection.DEFAULT_SERVER_NAME = "valkey"
redis.connection.CacheProxyConnection.MIN_ALLOWED_VERSION = "8.0.0"


def get_calls(admin):
    stats = admin.info("commandstats")
    return stats.get("cmdstat_get", {}).get("calls", 0)


def wait_for(check, what):
    deadline = time.monotonic() + 5
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what}")
        time.sleep(0.02)


def main(port):
    cached = redis.Redis(port=port, protocol=3, cache_config=CacheConfig())
    writer = redis.Redis(port=port)
    admin = redis.Redis(port=port)

    writer.set("user:1", "alice")
    assert cached.get("user:1") == b"alice"
    cache = cached.get_cache()
    assert cache.size == 1, f"cache holds {cache.size} entries"

    # Served from the local cache: the server sees no more GETs.
    before = get_calls(admin)
    for _ in range(20):
        assert cached.get("user:1") == b"alice"
    assert get_calls(admin) == before, "cached reads reached the server"

    tracking = admin.info("clients")["tracking_clients"]
    assert tracking == 1, f"tracking_clients is {tracking}"

    # Another client's write invalidates the entry: the next read is fresh.
    writer.set("user:1", "bob")
    wait_for(lambda: cached.get("user:1") == b"bob", "the new value after an invalidation")
    assert get_calls(admin) > before, "the read after the invalidation was not sent"

    # Several keys, a delete, an expiry.
    writer.mset({"a": "1", "b": "2"})
    assert cached.get("a") == b"1" and cached.get("b") == b"2"
    writer.delete("a")
    wait_for(lambda: cached.get("a") is None, "a deleted key to read as missing")
    assert cached.get("b") == b"2"
    writer.set("short", "lived", px=100)
    assert cached.get("short") == b"lived"
    wait_for(lambda: cached.get("short") is None, "an expired key to read as missing")

    # FLUSHALL empties the whole cache.
    assert cached.get("b") == b"2"
    writer.flushall()
    wait_for(lambda: cached.get("b") is None, "the cache to empty after FLUSHALL")

    # Hashes are cached too.
    writer.hset("h", mapping={"f": "1"})
    assert cached.hget("h", "f") == b"1"
    writer.hset("h", "f", "2")
    wait_for(lambda: cached.hget("h", "f") == b"2", "a hash field's new value")


if __name__ == "__main__":
    try:
        main(int(sys.argv[1]))
    except AssertionError as e:
        print(f"FAILED: {e}")
        sys.exit(1)
    print("ok")
