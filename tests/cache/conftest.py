from __future__ import annotations

from collections.abc import Iterator

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


def cached_price(client, pk):
    """The price a part's Redis entry holds (None when there is no entry or a tombstone)."""
    from catalog.models import Part
    from sync.cache.codec import decode_values
    from sync.cache.declaration import spec_for

    payload = cached(client, "catalog.part", pk).get("p")
    if not payload:
        return None
    spec = spec_for(Part)
    return decode_values(spec, payload)[spec.fields.index("price")]
