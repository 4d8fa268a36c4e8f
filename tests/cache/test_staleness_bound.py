"""The staleness bound (DESIGN I9): with no worker alive, a change that bypassed the
write-through (``QuerySet.update``, raw SQL) is read from PostgreSQL once its intent is older
than ``SYNC_STALENESS_BOUND``, and from Redis again once replay has written it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from prometheus_client import REGISTRY

from catalog.models import Part
from sync.cache import repository
from sync.cache.fence import STALE_KEYS_MAX, fence
from sync.cache.replay import replay_pending
from sync.cache.writer import settle
from sync.models import SyncIntent
from tests.cache.conftest import cached_price
from tests.factories import make_part
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)
LABEL = "catalog.part"


@pytest.fixture(autouse=True)
def _short_bound(settings) -> None:
    settings.SYNC_STALENESS_BOUND = 0.5


def hits() -> float:
    return (
        REGISTRY.get_sample_value("sync_cache_reads_total", {"model": LABEL, "outcome": "hit"})
        or 0.0
    )


def price(pk) -> Decimal:
    return repository.get(Part, pk).price


def _raw_update(pk, new_price: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE catalog_parts SET price = %s WHERE id = %s", [new_price, pk])


@pytest.mark.parametrize("change", ["queryset_update", "raw_sql"])
def test_a_change_that_bypassed_the_write_through_is_read_fresh_after_the_bound(
    change, redis_raw
) -> None:
    part = make_part(price=Decimal("1.00"))
    settle()
    assert price(part.pk) == Decimal("1.00")  # from Redis
    if change == "queryset_update":
        Part.objects.filter(pk=part.pk).update(price=Decimal("2.00"))
    else:
        _raw_update(part.pk, "2.00")
    # No worker runs: Redis keeps the old value, and an intent waits (the trigger's).
    assert cached_price(redis_raw, part.pk) == Decimal("1.00")
    assert SyncIntent.objects.filter(model=LABEL, object_pk=str(part.pk)).exists()

    wait_until(
        lambda: price(part.pk) == Decimal("2.00"),
        timeout=10,
        what="a read returning the value committed by a bypassing change",
    )
    assert repository.get_many(Part, [part.pk])[part.pk].price == Decimal("2.00")
    assert cached_price(redis_raw, part.pk) == Decimal("1.00")  # still stale in Redis

    replay_pending(include_not_due=True)
    fence.invalidate()
    before = hits()
    assert price(part.pk) == Decimal("2.00")
    assert repository.get_many(Part, [part.pk])[part.pk].price == Decimal("2.00")
    assert hits() == before + 2  # both answered by Redis again


def test_other_keys_of_the_model_are_still_read_from_redis(redis_raw) -> None:
    stale, fresh = make_part(price=Decimal("1.00")), make_part(price=Decimal("5.00"))
    settle()
    Part.objects.filter(pk=stale.pk).update(price=Decimal("2.00"))
    wait_until(
        lambda: price(stale.pk) == Decimal("2.00"),
        timeout=10,
        what="the stale key read from PostgreSQL",
    )
    before = hits()
    found = repository.get_many(Part, [stale.pk, fresh.pk])
    assert found[stale.pk].price == Decimal("2.00")
    assert found[fresh.pk].price == Decimal("5.00")
    assert price(fresh.pk) == Decimal("5.00")
    assert hits() == before + 2  # the fresh key, by get_many and by get


def test_a_completed_write_through_whose_intent_is_not_deleted_yet_stays_trusted() -> None:
    """The write-through deletes its completed intents lazily; an old one whose version Redis
    holds must not send the key to PostgreSQL (one HMGET to confirm, then remembered)."""
    part = make_part(price=Decimal("1.00"))  # written through; its intent not settled yet
    assert SyncIntent.objects.filter(model=LABEL, object_pk=str(part.pk)).exists()
    wait_until(
        lambda: fence.refresh() or (LABEL, str(part.pk)) in fence._confirmed,
        timeout=10,
        what="the old intent confirmed against Redis",
    )
    fence.refresh()  # remembered: no second look at Redis
    assert fence.trusts(LABEL, part.pk)
    before = hits()
    assert price(part.pk) == Decimal("1.00")
    assert hits() == before + 1


def test_many_stale_keys_distrust_the_whole_model(redis_raw) -> None:
    parts = [make_part(price=Decimal("1.00")) for _ in range(STALE_KEYS_MAX + 2)]
    settle()
    Part.objects.filter(pk__in=[p.pk for p in parts[:-1]]).update(price=Decimal("2.00"))
    wait_until(lambda: not fence.trusts(LABEL), timeout=10, what="the model distrusted")
    assert fence.stale_keys(LABEL) is None
    # Even the one unchanged key reads PostgreSQL (same value: what matters is where from).
    before = hits()
    assert price(parts[-1].pk) == Decimal("1.00")
    assert repository.get_many(Part, [parts[0].pk])[parts[0].pk].price == Decimal("2.00")
    assert hits() == before


def test_with_redis_down_old_intents_are_not_confirmed(redis_control) -> None:
    part = make_part(price=Decimal("1.00"))
    settle()
    Part.objects.filter(pk=part.pk).update(price=Decimal("2.00"))
    redis_control.pause()
    try:
        wait_until(
            lambda: fence.refresh() or not fence.trusts(LABEL, part.pk),
            timeout=10,
            what="the key distrusted",
        )
        assert fence.stale_keys(LABEL) == frozenset({str(part.pk)})
    finally:
        redis_control.resume()
