"""Redis operations of the sync engine: versioned writes, reads with leases, the fence hash.

Every operation goes through ``connection.run`` (breaker + wrapped errors); writes for many
keys go out as one pipeline, one round trip.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import NamedTuple

import redis
from hiredis import pack_command

from sync.cache import connection
from sync.cache.keys import fence_key

LUA_DIR = Path(__file__).parent / "lua"
# Pipelines longer than this use the bulk client (SYNC_BULK_SOCKET_TIMEOUT).
BULK_CALLS = 100


@cache
def _source(name: str) -> str:
    return (LUA_DIR / f"{name}.lua").read_text()


@cache
def _sha(name: str) -> str:
    return hashlib.sha1(_source(name).encode()).hexdigest()  # noqa: S324 - Redis' script id


def eval_many(client: redis.Redis, name: str, calls: list[tuple[str, list]]) -> list:
    """EVALSHA of ``lua/<name>.lua`` once per (key, args), in one round trip.

    A restarted (empty) Redis answers NOSCRIPT: the script is loaded and the calls are sent
    once more (they are idempotent: compare-and-set). redis-py's Script objects would send
    SCRIPT EXISTS before every pipeline instead, an extra round trip each time.
    """
    sha = _sha(name)

    def send() -> list:
        if len(calls) == 1:
            key, args = calls[0]
            return [client.evalsha(sha, 1, key, *args)]
        return _pipelined(client, [("EVALSHA", sha, 1, key, *args) for key, args in calls])

    try:
        return send()
    except redis.exceptions.NoScriptError:
        client.script_load(_source(name))
        return send()


def _pipelined(client: redis.Redis, commands: list[tuple]) -> list:
    """Send many commands in one write and read their replies: a pipeline without redis-py's
    per-command bookkeeping, which is most of the client's time when warming or replaying
    (hiredis packs the commands in C). An error reply raises, and the connection, its other
    replies unread, is dropped rather than returned to the pool."""
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_packed_command([pack_command(command) for command in commands],
                                 check_health=False)
        return [conn.read_response() for _ in commands]
    except BaseException:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)


class CacheWrite(NamedTuple):
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
    """CAS-write every row in one round trip; True where the write was applied.

    ``replace_equal`` also overwrites entries at the same version (repair of corruption).
    """
    if not writes:
        return []
    equal = "1" if replace_equal else "0"
    calls = [(w.key, [w.version, w.payload, w.key_id, "1" if w.tombstone else "0", w.ttl_ms,
                      equal]) for w in writes]
    return [bool(r) for r in connection.run(lambda client: eval_many(client, "cas_write", calls),
                                            bulk=len(calls) > BULK_CALLS)]


class Hit(NamedTuple):
    version: int
    payload: bytes
    key_id: bytes
    tombstone: bool


LEASED_ELSEWHERE, LEASE_GRANTED = "leased", "granted"
FIELDS = ("v", "p", "k", "t")


def _hit(reply: list) -> Hit | None:
    version, payload, key_id, tombstone = reply
    if version is None:
        return None
    return Hit(int(version), payload, key_id or b"", tombstone == b"1")


def read_row(key: str) -> Hit | None:
    """The cached row (one HMGET), or None when there is none (a lease alone is none)."""
    return connection.run(lambda client: _hit(client.hmget(key, FIELDS)))


def read_rows(keys: list[str]) -> list[Hit | None]:
    def operation(client: redis.Redis) -> list[Hit | None]:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(key, FIELDS)
        return [_hit(reply) for reply in pipe.execute()]

    return connection.run(operation, bulk=len(keys) > BULK_CALLS)


def lease(key: str, *, token: str, lease_ms: int) -> Hit | str:
    """After a miss: the row if it arrived meanwhile, else the fill lease or who holds it."""

    def operation(client: redis.Redis) -> Hit | str:
        (reply,) = eval_many(client, "read", [(key, [token, lease_ms])])
        kind = int(reply[0])
        if kind == 1:
            return Hit(int(reply[1]), reply[2], reply[3] or b"", reply[4] == b"1")
        return LEASED_ELSEWHERE if kind == 2 else LEASE_GRANTED

    return connection.run(operation)


def versions(keys: list[str]) -> list[tuple[int | None, bool]]:
    """(stored version or None, is tombstone) for each key, one round trip."""

    def operation(client: redis.Redis) -> list[tuple[int | None, bool]]:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(key, "v", "t")
        return [(int(v) if v is not None else None, t == b"1") for v, t in pipe.execute()]

    return connection.run(operation, bulk=len(keys) > BULK_CALLS)


def scan_keys(pattern: str, *, count: int) -> Iterator[list[str]]:
    """The keys matching ``pattern``, a SCAN page at a time (never KEYS); ends after the last."""
    cursor = 0
    while True:
        cursor, keys = connection.run(
            lambda client, cur=cursor: client.scan(cur, match=pattern, count=count))
        yield [key.decode() for key in keys]
        if cursor == 0:
            return


def fence() -> dict[str, int]:
    return connection.run(
        lambda client: {k.decode(): int(v) for k, v in client.hgetall(fence_key()).items()})


def advance_fence(epochs: dict[str, int]) -> None:
    if not epochs:
        return

    calls = [(fence_key(), [label, epoch]) for label, epoch in epochs.items()]
    connection.run(lambda client: eval_many(client, "fence_advance", calls))
