"""The cache Redis client, and the circuit breaker that keeps a dead Redis cheap.

Short socket timeouts and no client-side retries (redis-py 8 retries ten times by default,
EMBEDDED.md) mean a hung server costs one timeout; the breaker then sends every caller
straight to PostgreSQL until its cool-down ends, lets one probe through, and closes again by
itself when the probe succeeds (DESIGN §4 "Degraded mode").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from sync.cache.exceptions import CacheUnavailableError

logger = logging.getLogger(__name__)
T = TypeVar("T")


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
        with self._lock:
            if self.state == self.CLOSED:
                return True
            cooldown = settings.SYNC_BREAKER_COOLDOWN
            if self.state == self.OPEN and time.monotonic() - self._opened_at >= cooldown:
                self._set(self.HALF_OPEN)  # this caller is the probe
                return True
            return False

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


breaker = CircuitBreaker()
_clients: dict[tuple[str, bool], redis.Redis] = {}
_clients_lock = threading.Lock()


def client(*, bulk: bool = False) -> redis.Redis:
    """The engine's client: short timeouts; ``bulk`` for big pipelines (warm, verify, replay),
    whose replies may take longer than one request's budget."""
    url = settings.SYNC_REDIS_URL
    found = _clients.get((url, bulk))
    if found is None:
        with _clients_lock:
            found = _clients.setdefault((url, bulk), redis.Redis.from_url(
                url,
                socket_timeout=(settings.SYNC_BULK_SOCKET_TIMEOUT if bulk
                                else settings.REDIS_SOCKET_TIMEOUT),
                socket_connect_timeout=settings.REDIS_CONNECT_TIMEOUT,
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
                health_check_interval=0,
            ))
    return found


def reset_clients() -> None:
    """Drop pooled connections and close the breaker (tests, and after settings change)."""
    with _clients_lock:
        for found in _clients.values():
            found.close()
            found.connection_pool.disconnect()
        _clients.clear()
    breaker.reset()


def run(operation: Callable[[redis.Redis], T], *, bulk: bool = False) -> T:
    """Run one Redis operation behind the breaker; every failure is ``CacheUnavailableError``."""
    if not breaker.allow():
        msg = "cache circuit breaker is open"
        raise CacheUnavailableError(msg)
    try:
        result = operation(client(bulk=bulk))
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
        breaker.failure()
        msg = f"cache Redis unavailable: {type(e).__name__}"
        raise CacheUnavailableError(msg) from e
    except redis.exceptions.RedisError as e:
        # A server that answers is up; close a half-open breaker so it is not left stuck.
        breaker.success()
        msg = f"cache Redis error: {type(e).__name__}: {e}"
        raise CacheUnavailableError(msg) from e
    breaker.success()
    return result
