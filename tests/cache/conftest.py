from __future__ import annotations

from sync.cache.keys import cache_key
from tests import engine_fixtures

# The engine's shared fixtures (tests/engine_fixtures.py): fresh_engine_state is autouse.
fresh_engine_state = engine_fixtures.fresh_engine_state
redis_raw = engine_fixtures.redis_raw


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
