"""Redis operations of the sync engine: versioned writes, reads with leases, the fence hash.

Every operation goes through ``connection.run`` (breaker + wrapped errors); writes for many
keys go out as one pipeline, one round trip.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import redis
from redis.commands.core import Script

from sync.cache import connection
from sync.cache.keys import fence_key

LUA_DIR = Path(__file__).parent / "lua"


@cache
def _source(name: str) -> str:
    return (LUA_DIR / f"{name}.lua").read_text()


def script(client: redis.Redis, name: str) -> Script:
    # NOTE: a Script object sends EVALSHA and loads itself again on NOSCRIPT, which a restarted
    # (empty) Redis answers; in a pipeline redis-py loads missing scripts before executing.
    scripts = client.__dict__.setdefault("_sync_scripts", {})
    found = scripts.get(name)
    if found is None:
        found = scripts[name] = client.register_script(_source(name))
    return found


@dataclass(frozen=True)
class CacheWrite:
    key: str
    version: int
    payload: bytes
    key_id: str
    tombstone: bool
    ttl_ms: int


def ttl_ms(seconds: float, jitter: float) -> int:
    """TTL with up to ``jitter`` of it added at random, so keys filled together expire apart."""
    return int(seconds * 1000 * (1 + random.random() * jitter))  # noqa: S311


def write_many(writes: list[CacheWrite], *, replace_equal: bool = False) -> list[bool]:
    """CAS-write every row in one pipelined round trip; True where the write was applied.

    ``replace_equal`` also overwrites entries at the same version (repair of corruption).
    """
    def operation(client: redis.Redis) -> list[bool]:
        cas = script(client, "cas_write")
        pipe = client.pipeline(transaction=False)
        for w in writes:
            cas(keys=[w.key], args=[w.version, w.payload, w.key_id, "1" if w.tombstone else "0",
                                    w.ttl_ms, "1" if replace_equal else "0"], client=pipe)
        return [bool(result) for result in pipe.execute()]

    return connection.run(operation)


@dataclass(frozen=True)
class Hit:
    version: int
    payload: bytes
    key_id: bytes
    tombstone: bool


MISS, LEASED_ELSEWHERE, LEASE_GRANTED = "miss", "leased", "granted"


def _parse(reply: list) -> Hit | str:
    kind = int(reply[0])
    if kind == 1:
        return Hit(int(reply[1]), reply[2], reply[3] or b"", reply[4] == b"1")
    return {0: MISS, 2: LEASED_ELSEWHERE, 3: LEASE_GRANTED}[kind]


def read(key: str, *, lease_token: str = "", lease_ms: int = 0) -> Hit | str:
    def operation(client: redis.Redis) -> Hit | str:
        return _parse(script(client, "read")(keys=[key], args=[lease_token, lease_ms]))

    return connection.run(operation)


def read_many(keys: list[str]) -> list[Hit | str]:
    def operation(client: redis.Redis) -> list[Hit | str]:
        reader = script(client, "read")
        pipe = client.pipeline(transaction=False)
        for key in keys:
            reader(keys=[key], args=["", 0], client=pipe)
        return [_parse(reply) for reply in pipe.execute()]

    return connection.run(operation)


def versions(keys: list[str]) -> list[tuple[int | None, bool]]:
    """(stored version or None, is tombstone) for each key, one round trip."""

    def operation(client: redis.Redis) -> list[tuple[int | None, bool]]:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(key, "v", "t")
        return [(int(v) if v is not None else None, t == b"1") for v, t in pipe.execute()]

    return connection.run(operation)


def fence() -> dict[str, int]:
    return connection.run(
        lambda client: {k.decode(): int(v) for k, v in client.hgetall(fence_key()).items()})


def advance_fence(epochs: dict[str, int]) -> None:
    if not epochs:
        return

    def operation(client: redis.Redis) -> None:
        advance = script(client, "fence_advance")
        pipe = client.pipeline(transaction=False)
        for label, epoch in epochs.items():
            advance(keys=[fence_key()], args=[label, epoch], client=pipe)
        pipe.execute()

    connection.run(operation)
