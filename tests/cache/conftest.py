from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from django.conf import settings

from sync.cache import connection
from sync.cache.fence import fence
from sync.cache.keys import cache_key


@pytest.fixture(autouse=True)
def _fresh_engine_state() -> Iterator[None]:
    """Process-wide engine state (breaker, fence view, clients) starts clean in every test."""
    connection.reset_clients()
    fence.invalidate()
    yield
    connection.reset_clients()
    fence.invalidate()


@pytest.fixture
def redis_raw():
    """A plain client on the cache Redis, outside the breaker (what the test inspects)."""
    import redis

    client = redis.Redis.from_url(settings.SYNC_REDIS_URL, socket_timeout=2)
    yield client
    client.close()


def cached(client, label: str, pk) -> dict[str, bytes]:
    return {k.decode(): v for k, v in client.hgetall(cache_key(label, pk)).items()}


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    assert predicate(), f"condition not met within {timeout}s"
