"""Soft delete in the sync engine: a soft-deleted row is a tombstone in Redis, repository
reads never return it, verification and warming agree."""

from __future__ import annotations

import pytest

from catalog import services
from catalog.models import Part
from sync.cache import repository
from sync.cache.declaration import SyncSpec, Tier, spec_for
from sync.cache.keys import cache_key
from sync.cache.verification import verify
from sync.cache.warming import warm

pytestmark = pytest.mark.django_db(transaction=True)


def _deleted(make_part) -> Part:
    part = make_part()
    services.part_soft_delete(part_id=part.pk, expected_version=part.version)
    part.refresh_from_db()
    return part


def test_repository_never_returns_a_soft_deleted_row(make_part, redis_raw) -> None:
    part = _deleted(make_part)
    assert repository.get(Part, part.pk) is None  # the tombstone
    redis_raw.delete(cache_key("catalog.part", part.pk))
    assert repository.get(Part, part.pk) is None  # a miss reads PostgreSQL: still gone
    assert repository.get_many(Part, [part.pk]) == {}
    assert not redis_raw.hget(cache_key("catalog.part", part.pk), "p")


def test_verification_wants_a_tombstone_for_a_soft_deleted_row(make_part, redis_raw) -> None:
    part = _deleted(make_part)
    spec = spec_for(Part)
    assert verify(spec).stale == 0
    key = cache_key("catalog.part", part.pk)
    redis_raw.hset(key, "t", "0")  # a live entry at the same version: stale
    assert verify(spec, repair=True).stale == 1
    assert redis_raw.hget(key, "t") == b"1"
    assert verify(spec).stale == 0


def test_warming_writes_tombstones_for_soft_deleted_rows(make_part, redis_raw) -> None:
    part = _deleted(make_part)
    redis_raw.flushdb()
    warm(spec_for(Part))
    assert redis_raw.hget(cache_key("catalog.part", part.pk), "t") == b"1"


def test_a_soft_delete_field_is_cached_even_when_not_listed() -> None:
    spec = SyncSpec(model=Part, tier=Tier.PUBLIC, fields=("sku",), ttl=60, soft_delete="deleted_at")
    assert spec.fields == ("sku", "deleted_at")
    assert spec.is_live(("x", None))
    assert not spec.is_live(("x", "2026-01-01"))
    assert spec.live_filter == {"deleted_at__isnull": True}
