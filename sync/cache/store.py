"""Redis operations of the sync engine: versioned writes, reads with leases, the fence hash.

Every operation goes through ``connection.run`` (breaker + wrapped errors); writes for many
keys go out as one pipeline, one round trip.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import random
import secrets
import time
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple, cast

import redis
from django.conf import settings
from hiredis import pack_command
from redis.cluster import RedisCluster

from sync.cache import connection
from sync.cache.exceptions import CacheUnavailableError
from sync.cache.keys import fence_key, marker_key

LUA_DIR = Path(__file__).parent / "lua"
# Pipelines longer than this use the bulk client (SYNC_BULK_SOCKET_TIMEOUT).
BULK_CALLS = 100


@cache
def _source(name: str) -> str:
    """``lua/<name>.lua``; ``<name>*``: that script's text, unchanged, run once per call it
    carries (``grouped``)."""
    if name.endswith("*"):
        return _MANY.format(script=_source(name[:-1]))
    return (LUA_DIR / f"{name}.lua").read_text()


# One script call that runs many calls of one script with the same keys: each call's
# arguments follow their count. Answers how many of the calls answered a true value.
_MANY = """local function one(KEYS, ARGV)
{script}end
local count, i = 0, 1
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  if one(KEYS, {{unpack(ARGV, i + 1, i + n)}}) then
    count = count + 1
  end
  i = i + n + 1
end
return count
"""
# The most calls one ``<name>*`` call carries: a script holds the server while it runs (no
# other client's command in between, unlike a pipeline's commands).
MANY_MAX = 100


def grouped(
    calls: list[tuple[str, tuple[str, ...], list[Any]]],
) -> list[tuple[str, tuple[str, ...], list[Any]]]:
    """These script calls as calls of ``<name>*``: those of one script with the same keys
    together, in their order, up to ``MANY_MAX`` in each. Each one's reply is how many of
    its calls answered a true value. For calls whose replies are counted, not read one by
    one (the change events): one script call each costs Redis and the client more than the
    work of most (an XADD)."""
    groups: dict[tuple[str, tuple[str, ...]], list[list[Any]]] = {}
    for name, keys, args in calls:
        groups.setdefault((name, keys), []).append(args)
    found: list[tuple[str, tuple[str, ...], list[Any]]] = []
    for (name, keys), every in groups.items():
        for start in range(0, len(every), MANY_MAX):
            flat: list[Any] = []
            for args in every[start : start + MANY_MAX]:
                flat.append(len(args))
                flat += args
            found.append((f"{name}*", keys, flat))
    return found


@cache
def _sha(name: str) -> str:
    return hashlib.sha1(_source(name).encode()).hexdigest()  # noqa: S324 - Redis' script id


class UnreplicatedWriteError(redis.exceptions.RedisError):
    """Fewer replicas than ``SYNC_REDIS_WAIT_REPLICAS`` acknowledged a write in time."""


class Marks:
    """The data-loss markers a writer saw before it read its snapshot from PostgreSQL.

    The cache Redis loses everything at once (FLUSHALL, a restart: no persistence). A writer
    that read version v of a row, while v+1 was written through and its intent completed,
    would then write v into the emptied key (compare-and-set sees no key) and nothing would
    ever repair it. So each primary holds a marker key with a random token, lost with the
    data; every process remembers the token it last saw (``_seen``); a writer takes them
    (``capture``) *before* its PostgreSQL read, and its write pipeline ends with
    ``lua/marker.lua`` on each primary (SET NX GET; no extra round trip). A token other
    than the captured one (or none) means Redis may have lost data since the read: ``lost``
    is set, and the writer must not trust its writes (``writer.note_lost``).
    """

    __slots__ = ("captured", "lost")

    def __init__(self, captured: dict[str, str]) -> None:
        self.captured = captured
        self.lost = False

    def check(self, primary: str, reply: bytes | None, fresh: str) -> None:
        current = _token(reply, fresh)
        if self.captured.get(primary) != current:
            self.lost = True
        _seen[primary] = current


# The marker token this process last saw, per primary (node name; "" when not a cluster).
_seen: dict[str, str] = {}
# The marker key per cluster primary: a hash tag whose slot that primary owns (the first of
# MARKER_TAGS tags, which cover every slot many times over).
_marker_keys: dict[str, str] = {}
MARKER_TAGS = 1 << 18


def _token(reply: bytes | None, fresh: str) -> str:
    """The marker after ``lua/marker.lua``: the old token, or ours when there was none."""
    return fresh if reply is None else reply.decode()


def _node_name(client: RedisCluster, key: str) -> str:
    name: str = client.nodes_manager.get_node_from_slot(client.keyslot(key)).name
    return name


def _marker(client: connection.Client, primary: str) -> str:
    if not connection.is_cluster(client):
        return marker_key()
    key = _marker_keys.get(primary)
    if key is None or _node_name(client, key) != primary:  # first use, or resharded
        key = next(
            (
                key
                for key in map(marker_key, map(str, range(MARKER_TAGS)))
                if _node_name(client, key) == primary
            ),
            None,
        )
        if key is None:  # pragma: no cover - a primary that owns no slot (being added)
            msg = f"cluster primary {primary} owns no slot for a data-loss marker"
            raise redis.exceptions.RedisError(msg)
        _marker_keys[primary] = key
    return key


def _fetch_markers(client: connection.Client) -> None:
    for primary, node in connection.primaries(client).items():
        fresh = secrets.token_hex(8)
        _seen[primary] = _token(
            node.eval(_source("marker"), 1, _marker(client, primary), fresh), fresh
        )


def capture() -> Marks:
    """The markers, taken before a writer's PostgreSQL read. The first time (or after
    ``forget_markers``) they are read from Redis: one round trip per primary, before the
    read, so still a valid capture. Never raises: without Redis the write fails anyway."""
    if not _seen:
        with contextlib.suppress(CacheUnavailableError):
            connection.run(_fetch_markers)
    return Marks(dict(_seen))


def forget_markers() -> None:
    """Read the markers afresh at the next capture: when the breaker closes again (a Redis
    that came back from a restart has none, and a capture after this point is before any
    read that follows it), and in tests that empty Redis on purpose."""
    _seen.clear()


connection.breaker.on_change(
    lambda state: forget_markers() if state == connection.breaker.CLOSED else None
)


def eval_many(
    client: connection.Client,
    name: str,
    calls: list[tuple[str, list[Any]]],
    *,
    wait: bool = False,
    marks: Marks | None = None,
) -> list[Any]:
    """EVALSHA of ``lua/<name>.lua`` once per (key, args), in one round trip.

    ``wait``: the writes count only once ``SYNC_REDIS_WAIT_REPLICAS`` replicas have them
    (``UnreplicatedWriteError`` otherwise), see ``_pipelined``. ``marks``: checked after
    the writes, see ``Marks``.
    """
    return eval_keys(client, name, [((key,), args) for key, args in calls], wait=wait, marks=marks)


def eval_keys(
    client: connection.Client,
    name: str,
    calls: list[tuple[tuple[str, ...], list[Any]]],
    *,
    wait: bool = False,
    marks: Marks | None = None,
) -> list[Any]:
    """EVALSHA of ``lua/<name>.lua`` once per (keys, args); a call's keys share one slot."""
    return eval_scripts(
        client, [(name, keys, args) for keys, args in calls], wait=wait, marks=marks
    )


def eval_scripts(
    client: connection.Client,
    calls: list[tuple[str, tuple[str, ...], list[Any]]],
    *,
    wait: bool = False,
    marks: Marks | None = None,
) -> list[Any]:
    """EVALSHA of ``lua/<name>.lua`` once per (name, keys, args), in one round trip (per
    primary of a cluster, all sent before any reply is read); a call's keys share one slot.

    A restarted (empty) Redis answers NOSCRIPT: the scripts are loaded (on every primary of a
    cluster) and the calls are sent once more (they are idempotent: compare-and-set).
    redis-py's Script objects would send SCRIPT EXISTS before every pipeline instead, an
    extra round trip each time. ``wait`` and ``marks``: see ``_pipelined``.
    """
    return _evalsha(
        client,
        dict.fromkeys(name for name, _keys, _args in calls),
        [("EVALSHA", _sha(name), len(keys), *keys, *args) for name, keys, args in calls],
        [keys[0] for _name, keys, _args in calls],
        wait=wait,
        marks=marks,
    )


def _evalsha(
    client: connection.Client,
    scripts: Iterable[str],
    commands: list[tuple[Any, ...]],
    keys: list[str],
    *,
    wait: bool,
    marks: Marks | None,
) -> list[Any]:
    """``eval_scripts`` of commands already made: ``EVALSHA`` of the ``scripts``, each
    command's first key in ``keys``."""
    replicas = settings.SYNC_REDIS_WAIT_REPLICAS if wait else 0

    def send() -> list[Any]:
        # NOTE: on a cluster even one call goes out raw: RedisCluster.execute_command's
        # routing costs more than the round trip here (bench/topology.py).
        if (
            len(commands) == 1
            and not replicas
            and marks is None
            and not connection.is_cluster(client)
        ):
            return [_call(client, commands[0])]
        return _pipelined(client, commands, keys=keys, wait_replicas=replicas, marks=marks)

    try:
        return send()
    except redis.exceptions.NoScriptError:
        for name in scripts:
            client.script_load(_source(name))
        return send()


def _call(client: redis.Redis, command: tuple[Any, ...]) -> Any:
    """One command and its reply on a connection of the client's pool (a single server or
    Sentinel's primary): what ``execute_command`` does, without redis-py's per-call
    bookkeeping (retry wrapper, observability hooks, argument packing in Python), which
    was a quarter of a cache hit's time (bench/cache.py). The pool's checkout still checks
    the connection (reconnects a dropped one, refuses one with unread data). A reply that
    is an error raises (``ResponseError``, ``NoScriptError``) and leaves the connection in
    use; any other failure drops it rather than return it to the pool mid-reply."""
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_packed_command([pack_command(command)], check_health=False)
        return conn.read_response()
    except redis.exceptions.ResponseError:
        raise
    except BaseException:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)


def _by_node(
    client: connection.Client, keys: list[str]
) -> list[tuple[str, redis.Redis, list[int]]]:
    """The commands' positions grouped by the primary that holds their key, with its name
    (one group, "" and the client itself, unless it is a cluster client)."""
    if not connection.is_cluster(client):
        return [("", client, list(range(len(keys))))]
    groups: dict[str, tuple[str, redis.Redis, list[int]]] = {}
    for position, key in enumerate(keys):
        node = client.nodes_manager.get_node_from_slot(client.keyslot(key))
        groups.setdefault(node.name, (node.name, client.get_redis_connection(node), []))[2].append(
            position
        )
    return list(groups.values())


def _pipelined(
    client: connection.Client,
    commands: list[tuple[Any, ...]],
    *,
    keys: list[str],
    wait_replicas: int = 0,
    marks: Marks | None = None,
) -> list[Any]:
    """Send many commands in one write per primary and read their replies: a pipeline
    without redis-py's per-command bookkeeping, which is most of the client's time when
    warming or replaying (hiredis packs the commands in C). On a cluster the commands go to
    the primary of their key's slot (``keys``: each command's key), all primaries written
    before any reply is read: one round trip, not one per node.

    ``wait_replicas``: a ``WAIT`` ends each primary's batch, on the same connection, so its
    reply says how many replicas have every write of the batch; fewer than asked within
    ``SYNC_REDIS_WAIT_TIMEOUT_MS`` raise ``UnreplicatedWriteError`` (the caller's intents stay
    for replay: an acknowledged write can no longer be lost when Sentinel fails over).

    ``marks``: each primary's batch ends with ``lua/marker.lua`` on its marker (an EVAL: a
    restarted Redis has no scripts), whose reply ``marks.check`` compares with the token
    captured before the caller's read.

    An error reply raises, and the connections, other replies unread, are dropped rather than
    returned to their pools. A MOVED reply (the slot map changed: resharding, a failover)
    refreshes the cluster client's map before it raises; the next attempt goes to the right
    primary.
    """
    replies: list[Any] = [None] * len(commands)
    held = []
    fresh = secrets.token_hex(8)
    try:
        batches = _by_node(client, keys)
        for primary, node, positions in batches:
            pool = node.connection_pool
            held.append((pool, conn := pool.get_connection()))
            packed = [pack_command(commands[position]) for position in positions]
            if marks is not None:
                packed.append(
                    # hiredis's stub types the command as a one-item tuple.
                    pack_command(("EVAL", _source("marker"), 1, _marker(client, primary), fresh))  # type: ignore[arg-type]
                )
            if wait_replicas:
                packed.append(
                    pack_command(("WAIT", wait_replicas, settings.SYNC_REDIS_WAIT_TIMEOUT_MS))  # type: ignore[arg-type]
                )
            # One buffer, one send: redis-py sends a list item by item, a system call
            # per command (most of the write-through thread's time when filling).
            conn.send_packed_command([b"".join(packed)], check_health=False)
        for (_pool, conn), (primary, _node, positions) in zip(held, batches, strict=True):
            for position in positions:
                replies[position] = conn.read_response()
            if marks is not None:
                marks.check(primary, conn.read_response(), fresh)
            if wait_replicas and (acked := conn.read_response()) < wait_replicas:
                msg = (
                    f"{acked} of {wait_replicas} replica(s) acknowledged the write within "
                    f"{settings.SYNC_REDIS_WAIT_TIMEOUT_MS} ms"
                )
                raise UnreplicatedWriteError(msg)
    except BaseException as e:
        for _pool, conn in held:
            conn.disconnect()
        if isinstance(e, redis.exceptions.AskError) and connection.is_cluster(client):
            client.nodes_manager.initialize()
        raise
    finally:
        for pool, conn in held:
            pool.release(conn)
    return replies


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


WRITE_SCRIPT = "cas_write"
# Who wrote a key last, per kind (``cas_write.lua``'s field w<kind>): sync/cache/inspect.py.
# RESYNC: an operator's "Resync" in the console (sync.cache.rows.resync_rows).
WRITE_THROUGH, REPLAY, WARM, REPAIR, RESYNC = "w", "r", "m", "v", "c"


def write_many(
    writes: list[CacheWrite],
    *,
    replace_equal: bool = False,
    wait: bool = False,
    marks: Marks | None = None,
    source: str = "",
    then: list[tuple[str, tuple[str, ...], list[Any]]] | None = None,
) -> list[bool]:
    """CAS-write every row in one round trip; True where the write was applied.

    ``replace_equal`` also overwrites entries at the same version (repair of corruption).
    ``wait``: raise unless ``SYNC_REDIS_WAIT_REPLICAS`` replicas have the writes (the
    write-through, before it deletes the intents it completed). ``marks``: captured before
    the rows were read from PostgreSQL; ``marks.lost`` tells the caller afterwards whether
    Redis may have lost data in between (see ``Marks``). ``then``: script calls (name, keys,
    args) that must run after the writes, and not at all when Redis lost data (the change
    events, ``lua/events_append.lua``). To a single server they go in the same round trip
    (it runs one connection's commands in order), each with the marker's key added as its
    last key and the captured token as its first argument, which the script compares with
    the marker's (as ``Marks`` does after the fact). On a cluster their keys may sit on
    another primary, so they go in a second round trip, once every write has answered and
    no loss was seen. They go as ``grouped`` calls; their replies are not returned.
    """
    if not writes:
        return []
    equal = "1" if replace_equal else "0"
    now_ms = int(time.time() * 1000) if source else 0
    # NOTE: the commands made here rather than through eval_scripts' (name, keys, args): one
    # tuple per row instead of three (warm and replay write a thousand rows per pipeline).
    sha = _sha(WRITE_SCRIPT)
    commands: list[tuple[Any, ...]] = [
        (
            "EVALSHA",
            sha,
            1,
            w.key,
            w.version,
            w.payload,
            w.key_id,
            "1" if w.tombstone else "0",
            w.ttl_ms,
            equal,
            source,
            now_ms,
        )
        for w in writes
    ]
    keys = [w.key for w in writes]
    later = then or []

    def operation(client: connection.Client) -> list[Any]:
        if not later:
            return _evalsha(client, (WRITE_SCRIPT,), commands, keys, wait=wait, marks=marks)
        if connection.is_cluster(client):
            replies = _evalsha(client, (WRITE_SCRIPT,), commands, keys, wait=wait, marks=marks)
            if marks is None or not marks.lost:
                eval_scripts(client, grouped(later), wait=wait)
            return replies
        guarded = later
        if marks is not None:
            token, marker = marks.captured.get("", ""), marker_key()
            guarded = [(name, (*on, marker), [token, *args]) for name, on, args in later]
        groups = grouped(guarded)
        return _evalsha(
            client,
            (WRITE_SCRIPT, *dict.fromkeys(name for name, _on, _args in groups)),
            commands + [("EVALSHA", _sha(name), len(on), *on, *args) for name, on, args in groups],
            keys + [on[0] for _name, on, _args in groups],
            wait=wait,
            marks=marks,
        )[: len(commands)]

    return [
        bool(r) for r in connection.run(operation, bulk=len(commands) + len(later) > BULK_CALLS)
    ]


class Hit(NamedTuple):
    version: int
    payload: bytes
    key_id: bytes
    tombstone: bool


LEASED_ELSEWHERE, LEASE_GRANTED = "leased", "granted"
FIELDS = ("v", "p", "k", "t")


def _hit(reply: list[Any]) -> Hit | None:
    version, payload, key_id, tombstone = reply
    if version is None:
        return None
    return Hit(int(version), payload, key_id or b"", tombstone == b"1")


def read_row(key: str) -> Hit | None:
    """The cached row (one HMGET), or None when there is none (a lease alone is none)."""
    return connection.run(lambda client: _hit(_hmget_many(client, [key], FIELDS)[0]))


def _hmget_many(client: connection.Client, keys: list[str], fields: tuple[str, ...]) -> list[Any]:
    """HMGET of every key in one round trip."""
    if connection.is_cluster(client):
        # NOTE: raw per-primary pipelines: redis-py's ClusterPipeline costs three times the
        # standalone pipeline for 100 keys here (bench/topology.py), and RedisCluster's
        # routing twice a single HMGET.
        return _pipelined(client, [("HMGET", key, *fields) for key in keys], keys=keys)
    if len(keys) == 1:
        return [_call(client, ("HMGET", keys[0], *fields))]
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hmget(key, fields)
    return pipe.execute()


def read_rows(keys: list[str]) -> list[Hit | None]:
    def operation(client: connection.Client) -> list[Hit | None]:
        return [_hit(reply) for reply in _hmget_many(client, keys, FIELDS)]

    return connection.run(operation, bulk=len(keys) > BULK_CALLS)


def lease(key: str, *, token: str, lease_ms: int) -> Hit | str:
    """After a miss: the row if it arrived meanwhile, else the fill lease or who holds it."""

    def operation(client: connection.Client) -> Hit | str:
        (reply,) = eval_many(client, "read", [(key, [token, lease_ms])])
        kind = int(reply[0])
        if kind == 1:
            return Hit(int(reply[1]), reply[2], reply[3] or b"", reply[4] == b"1")
        return LEASED_ELSEWHERE if kind == 2 else LEASE_GRANTED

    return connection.run(operation)


def versions(keys: list[str]) -> list[tuple[int | None, bool]]:
    """(stored version or None, is tombstone) for each key, one round trip."""

    def operation(client: connection.Client) -> list[tuple[int | None, bool]]:
        return [
            (int(v) if v is not None else None, t == b"1")
            for v, t in _hmget_many(client, keys, ("v", "t"))
        ]

    return connection.run(operation, bulk=len(keys) > BULK_CALLS)


def scan_keys(pattern: str, *, count: int) -> Iterator[list[str]]:
    """The keys matching ``pattern``, a SCAN page at a time (never KEYS), on every primary
    of a cluster in turn; ends after the last page of the last one."""
    for name in connection.run(lambda client: list(connection.primaries(client))):
        cursor = 0
        while True:
            cursor, keys = connection.run(
                functools.partial(_scan_page, name=name, cursor=cursor, match=pattern, count=count)
            )
            # The engine's clients never decode replies: keys are bytes.
            yield [key.decode() for key in cast("list[bytes]", keys)]
            if cursor == 0:
                break


def _scan_page(
    client: connection.Client, *, name: str, cursor: int, match: str, count: int
) -> tuple[int, list[bytes | str]]:
    return _primary(client, name).scan(cursor, match=match, count=count)


def _primary(client: connection.Client, name: str) -> redis.Redis:
    found = connection.primaries(client).get(name)
    if found is None:
        msg = f"cluster primary {name} left the cluster during a scan"
        raise redis.exceptions.ConnectionError(msg)
    return found


def fence() -> dict[str, int]:
    return connection.run(
        lambda client: {
            k.decode(): int(v)
            for k, v in cast("dict[bytes, bytes]", client.hgetall(fence_key())).items()
        }
    )


def advance_fence(epochs: dict[str, int]) -> None:
    if not epochs:
        return

    calls = [(fence_key(), [label, epoch]) for label, epoch in epochs.items()]
    connection.run(lambda client: eval_many(client, "fence_advance", calls))


def marker_tokens(*, create: bool) -> str:
    """The data-loss markers of every primary as one string (what a warm is recorded for):
    ``create`` sets a missing one (``lua/marker.lua``, as a writer does) and this process
    remembers them as seen; without it a missing marker reads as ``-``."""

    def operation(client: connection.Client) -> str:
        if create:
            _fetch_markers(client)
            return ",".join(f"{name}={_seen[name]}" for name in sorted(_seen))
        tokens = {
            name: cast("bytes | None", node.get(_marker(client, name)))
            for name, node in connection.primaries(client).items()
        }
        return ",".join(
            f"{name}={token.decode() if token else '-'}" for name, token in sorted(tokens.items())
        )

    return connection.run(operation)
