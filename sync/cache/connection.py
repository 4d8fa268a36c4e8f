"""The cache Redis client, and the circuit breaker that keeps a dead Redis cheap.

Short socket timeouts and no client-side retries (redis-py 8 retries ten times by default,
docs/sync-engine.md) mean a hung server costs one timeout; the breaker then sends every caller
straight to PostgreSQL until its cool-down ends, lets one probe through, and closes again by
itself when the probe succeeds (docs/sync-engine.md, "Degraded mode").

``SYNC_REDIS_URL`` names the topology (docs/scaling.md):

* ``redis://``, ``rediss://``, ``unix://`` — one server (or a proxy in front of several);
* ``redis+cluster://[user:password@]host:port,host:port[/]`` — a Redis Cluster, from seed
  nodes (the client discovers the others and the slot map);
* ``redis+sentinel://[user:password@]host:port,host:port/<service>[/<db>]`` — the primary
  that Redis Sentinel names for ``service``; the credentials are the data nodes', the
  sentinels' own password (if any) is ``SYNC_REDIS_SENTINEL_PASSWORD``.

Every topology gets the same timeouts, no retries and the same breaker.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast
from urllib.parse import unquote

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from sync.cache.exceptions import CacheUnavailableError

if TYPE_CHECKING:
    from redis.asyncio import Redis as AsyncRedis
    from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
    from typing_extensions import TypeIs

logger = logging.getLogger(__name__)
T = TypeVar("T")
CLUSTER_SCHEME, SENTINEL_SCHEME = "redis+cluster", "redis+sentinel"
# The engine's client: one server (or Sentinel's primary), or a Redis Cluster.
Client: TypeAlias = redis.Redis | RedisCluster

# What tells the breaker "this Redis (or part of it) is not there": a slot with no live
# primary (CLUSTERDOWN, an uncovered slot, a cluster no seed answers for) is an outage like
# a refused connection; Sentinel's "no primary" is a ConnectionError already.
UNAVAILABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.RedisClusterException,
)


class CircuitBreaker:
    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.state = self.CLOSED
        self._opened_at = 0.0
        self._listeners: list[Callable[[str], None]] = []

    def on_change(self, listener: Callable[[str], None]) -> None:
        self._listeners.append(listener)

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            logger.warning("cache circuit breaker %s", state)
            for listener in self._listeners:
                listener(state)

    def allow(self) -> bool:
        # NOTE: closed is read without the lock (one attribute read): every Redis call asks.
        if self.state == self.CLOSED:
            return True
        with self._lock:
            cooldown = settings.SYNC_BREAKER_COOLDOWN
            if self.state == self.OPEN and time.monotonic() - self._opened_at >= cooldown:
                self._set(self.HALF_OPEN)  # this caller is the probe
                return True
            return self.state == self.CLOSED  # another thread's probe closed it meanwhile

    def success(self) -> None:
        if self.state != self.CLOSED:
            with self._lock:
                self._set(self.CLOSED)

    def failure(self) -> None:
        with self._lock:
            self._opened_at = time.monotonic()
            self._set(self.OPEN)

    def reset(self) -> None:
        with self._lock:
            self._set(self.CLOSED)


@dataclass(frozen=True)
class Topology:
    """What ``SYNC_REDIS_URL`` names: ``kind`` is "standalone", "cluster" or "sentinel"."""

    kind: str
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None


def parse_url(url: str) -> Topology:
    """Read a ``SYNC_REDIS_URL``; a malformed cluster/sentinel URL is a clear error."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in (CLUSTER_SCHEME, SENTINEL_SCHEME):
        return Topology("standalone", url)
    netloc, _, path = rest.partition("/")
    credentials, _, hosts = netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    try:
        nodes = tuple(
            (host, int(port))
            for host, _, port in (item.strip().rpartition(":") for item in hosts.split(","))
            if host
        )
    except ValueError:
        nodes = ()
    parts = [unquote(p) for p in path.split("?", 1)[0].split("/") if p]
    problem = "" if nodes else "no host:port seed nodes"
    if scheme == SENTINEL_SCHEME and not problem:
        problem = (
            ""
            if parts and (len(parts) == 1 or parts[1].isdigit()) and len(parts) <= 2
            else "the path must be /<service>[/<db>]"
        )
    if problem:
        msg = (
            f"SYNC_REDIS_URL {scheme}://…: {problem}; expected "
            f"{scheme}://[user:password@]host:port[,host:port…]"
            f"{'/<service>[/<db>]' if scheme == SENTINEL_SCHEME else '/'}"
        )
        raise ImproperlyConfigured(msg)
    kind = "cluster" if scheme == CLUSTER_SCHEME else "sentinel"
    return Topology(
        kind,
        url,
        nodes,
        parts[0] if kind == "sentinel" else "",
        int(parts[1]) if kind == "sentinel" and len(parts) == 2 else 0,
        unquote(username) or None,
        unquote(password) or None,
    )


def _for_topology(
    topology: Topology,
    options: dict[str, Any],
    *,
    cluster_class: Any,
    node_class: Any,
    sentinel_class: Any,
    **primary_options: Any,
) -> Any:
    """A cluster client or Sentinel's primary for ``topology`` (the sync or the asyncio
    classes of redis-py: the same arguments for both); None for a single server."""
    if topology.kind == "cluster":
        # NOTE: the constructor reads the slot map from the first seed that answers; with
        # none answering it raises RedisClusterException, which run() treats as an outage.
        return cluster_class(
            startup_nodes=[node_class(host, port) for host, port in topology.nodes],
            username=topology.username,
            password=topology.password,
            **options,
        )
    if topology.kind == "sentinel":
        sentinel = sentinel_class(
            list(topology.nodes),
            sentinel_kwargs={**options, "password": settings.SYNC_REDIS_SENTINEL_PASSWORD or None},
            **options,
        )
        return sentinel.master_for(
            topology.service,
            db=topology.db,
            username=topology.username,
            password=topology.password,
            **primary_options,
        )
    return None


def _build(topology: Topology, *, socket_timeout: float) -> Client:
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": settings.REDIS_CONNECT_TIMEOUT,
        "retry": Retry(NoBackoff(), 0),
    }
    found = _for_topology(
        topology,
        options,
        cluster_class=RedisCluster,
        node_class=ClusterNode,
        sentinel_class=Sentinel,
        retry_on_timeout=False,
        health_check_interval=0,
    )
    if found is not None:
        return cast("Client", found)
    return redis.Redis.from_url(
        topology.url, retry_on_timeout=False, health_check_interval=0, **options
    )


breaker = CircuitBreaker()
_clients: dict[tuple[str, bool], Client] = {}
_clients_lock = threading.Lock()


def client(*, bulk: bool = False) -> Client:
    """The engine's client: short timeouts; ``bulk`` for big pipelines (warm, verify, replay),
    whose replies may take longer than one request's budget."""
    url = settings.SYNC_REDIS_URL
    found = _clients.get((url, bulk))
    if found is None:
        with _clients_lock:  # NOTE: another thread may have built it meanwhile
            found = _clients.get((url, bulk)) or _clients.setdefault(
                (url, bulk),
                _build(
                    parse_url(url),
                    socket_timeout=(
                        settings.SYNC_BULK_SOCKET_TIMEOUT if bulk else settings.REDIS_SOCKET_TIMEOUT
                    ),
                ),
            )
    return found


def async_client(
    *,
    socket_timeout: float | None,
    max_connections: int | None = None,
    pool_timeout: float | None = None,
) -> AsyncRedis | AsyncRedisCluster:
    """An asyncio client of the engine's Redis, whatever its topology, for code that waits on
    it in an event loop (the catalog's event stream). ``max_connections`` and
    ``pool_timeout``: a shared pool that queues its callers (a single server only; a
    cluster or a Sentinel-found primary keeps redis-py's own pools)."""
    import redis.asyncio as aredis
    from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
    from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
    from redis.asyncio.sentinel import Sentinel as AsyncSentinel

    topology = parse_url(settings.SYNC_REDIS_URL)
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": settings.SYNC_BULK_SOCKET_TIMEOUT,
    }
    found = _for_topology(
        topology,
        options,
        cluster_class=AsyncRedisCluster,
        node_class=AsyncClusterNode,
        sentinel_class=AsyncSentinel,
    )
    if found is not None:
        return cast("AsyncRedis | AsyncRedisCluster", found)
    if max_connections is None:
        return aredis.from_url(topology.url, **options)
    pool = aredis.BlockingConnectionPool.from_url(
        topology.url, max_connections=max_connections, timeout=pool_timeout, **options
    )
    return aredis.Redis(connection_pool=pool)


def is_cluster(found: Client) -> TypeIs[RedisCluster]:
    return isinstance(found, RedisCluster)


def primaries(found: Client) -> dict[str, redis.Redis]:
    """A plain client per primary, by node name: every primary of a cluster, else the one."""
    if is_cluster(found):
        return {node.name: found.get_redis_connection(node) for node in found.get_primaries()}
    return {"": found}


_primary_checked: dict[int, float] = {}


def _check_primary(found: Client) -> None:
    """Sentinel: ask the sentinels which node is the primary every
    ``SYNC_REDIS_SENTINEL_CHECK`` seconds; when it changed, the pool drops its connections to
    the old one. NOTE: redis-py asks only when it opens a connection, and a demoted primary
    refuses writes but answers reads: a process that only reads would go on reading it (a
    replica now, behind the new primary) as long as its pooled connections live."""
    pool = getattr(found, "connection_pool", None)
    if not isinstance(pool, SentinelConnectionPool):
        return
    now = time.monotonic()
    if now - _primary_checked.get(id(found), 0.0) < settings.SYNC_REDIS_SENTINEL_CHECK:
        return
    _primary_checked[id(found)] = now
    # No sentinel answering is not an outage of the primary: new connections will say so.
    with contextlib.suppress(redis.exceptions.RedisError):
        pool.get_master_address()


def reset_clients() -> None:
    """Drop pooled connections and close the breaker (tests, and after settings change)."""
    _primary_checked.clear()
    with _clients_lock:
        for found in _clients.values():
            found.close()
            if not is_cluster(found):
                found.connection_pool.disconnect()
        _clients.clear()
    breaker.reset()


# The seconds this context's run() calls spent, while a timed() block is open (the request's
# Server-Timing "cache" figure, sync/ops/timing.py); None outside one: nothing is added up.
_spent: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar(
    "sync_cache_spent", default=None
)


@contextlib.contextmanager
def timed() -> Iterator[Callable[[], float]]:
    """Add up the seconds every ``run`` in this context spends (waiting on Redis, a timeout
    included) until the block ends; yields a function that returns the sum so far. NOTE: a
    list in the context variable, not a float: a ``run`` in a copy of the context (a thread
    of ``sync_to_async``) adds to the same sum."""
    spent = [0.0]
    token = _spent.set(spent)
    try:
        yield lambda: spent[0]
    finally:
        _spent.reset(token)


def run(operation: Callable[[Client], T], *, bulk: bool = False) -> T:
    """Run one Redis operation behind the breaker; every failure is ``CacheUnavailableError``.
    Its time counts towards an open ``timed()`` block."""
    if not breaker.allow():
        msg = "cache circuit breaker is open"
        raise CacheUnavailableError(msg)
    started = time.perf_counter()
    try:
        found = client(bulk=bulk)
        _check_primary(found)
        result = operation(found)
    except UNAVAILABLE as e:
        breaker.failure()
        msg = f"cache Redis unavailable: {type(e).__name__}"
        raise CacheUnavailableError(msg) from e
    except redis.exceptions.RedisError as e:
        # A server that answers is up; close a half-open breaker so it is not left stuck.
        breaker.success()
        msg = f"cache Redis error: {type(e).__name__}: {e}"
        raise CacheUnavailableError(msg) from e
    finally:
        if (spent := _spent.get()) is not None:
            spent[0] += time.perf_counter() - started
    breaker.success()
    return result
