"""Fixtures of the sync engine shared by the test packages that use the cache directly.

Import them into a conftest (or a test module) to use them there:
``from tests.engine_fixtures import fresh_engine_state, redis_raw  # noqa: F401``;
``fresh_engine_state`` is autouse wherever it is imported.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from django.conf import settings

from sync.cache import connection
from sync.cache.fence import fence


@pytest.fixture(autouse=True)
def fresh_engine_state() -> Iterator[None]:
    """Process-wide engine state (breaker, fence view, clients) starts clean in every test."""
    connection.reset_clients()
    fence.invalidate()
    yield
    connection.reset_clients()
    fence.invalidate()


@pytest.fixture
def redis_raw() -> Iterator[redis.Redis]:
    """A plain client on the cache Redis, outside the breaker (what the test inspects)."""
    client = redis.Redis.from_url(settings.SYNC_REDIS_URL, socket_timeout=2)
    yield client
    client.close()
