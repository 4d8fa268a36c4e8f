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


class _OneDatabase(redis.Redis):
    """A client whose FLUSHALL empties only its own database.

    On an external Redis (CI's second pass) the run owns one database number per xdist worker,
    and the other workers' databases are on the same server: a test's FLUSHALL would empty
    them mid-test. The application keeps everything it has in the cache Redis in that one
    database, so for it FLUSHDB is the same data loss."""

    def flushall(self, asynchronous: bool = False, **kwargs):  # type: ignore[override]
        return self.flushdb(asynchronous, **kwargs)


@pytest.fixture
def redis_raw() -> Iterator[redis.Redis]:
    """A plain client on the cache Redis, outside the breaker (what the test inspects)."""
    from devtools import testservices

    own = "cache" in testservices.embedded()  # this run's (or this worker's) own server
    client = (redis.Redis if own else _OneDatabase).from_url(
        settings.SYNC_REDIS_URL, socket_timeout=2
    )
    yield client
    client.close()
