"""A race the chaos run's faults make possible: a reader fills a miss with the row it read
from PostgreSQL, but between that read and its fill a newer version was written through and
then Redis lost its data (FLUSHALL, a restart, an expiry). The late fill must not land: the
older row would stay in Redis with no intent left to repair it (a lost write, I2)."""

from __future__ import annotations

import pytest
from django.db import transaction

from catalog.models import Part
from customers.models import Customer
from sync.cache import repository
from sync.cache.keys import cache_key
from sync.cache.writer import settle
from tests import engine_fixtures
from tests.factories import make_part

pytestmark = pytest.mark.django_db(transaction=True)

fresh_engine_state = engine_fixtures.fresh_engine_state
redis_raw = engine_fixtures.redis_raw


@pytest.fixture
def racing_writer(monkeypatch, redis_raw):
    """Between a reader's PostgreSQL read and its fill: another writer commits a new price
    (written through on commit, its intent completed), then Redis loses everything."""
    real_fill = repository._fill

    def fill_after_the_race(spec, instances, *args, **kwargs):
        for obj in instances:
            with transaction.atomic():
                row = spec.model._base_manager.select_for_update().get(pk=obj.pk)
                row.price = 99
                row.save()
        settle()  # the write-through's intent is gone: nothing left for replay to repair
        redis_raw.flushall()
        return real_fill(spec, instances, *args, **kwargs)

    monkeypatch.setattr(repository, "_fill", fill_after_the_race)


def stored_price(redis_raw, pk):
    entry = redis_raw.hgetall(cache_key("catalog.part", pk))
    return entry or None


def test_get_does_not_fill_a_row_older_than_a_lost_write(
    redis_raw, racing_writer, monkeypatch
) -> None:
    part = make_part(price=1)
    redis_raw.flushall()
    assert repository.get(Part, part.pk).price == 1  # what it read: fine at the time
    monkeypatch.undo()
    assert stored_price(redis_raw, part.pk) is None  # the late fill did not land
    assert repository.get(Part, part.pk).price == 99
    assert repository.get(Part, part.pk).price == 99  # filled with the newest, now a hit


def test_get_many_does_not_fill_rows_older_than_a_lost_write(
    redis_raw, racing_writer, monkeypatch
) -> None:
    parts = [make_part(price=1) for _ in range(3)]
    redis_raw.flushall()
    got = repository.get_many(Part, [p.pk for p in parts])
    assert {obj.price for obj in got.values()} == {1}
    monkeypatch.undo()
    assert all(stored_price(redis_raw, p.pk) is None for p in parts)
    assert {obj.price for obj in repository.get_many(Part, [p.pk for p in parts]).values()} == {99}


def test_get_many_leaves_a_key_another_reader_is_filling(redis_raw) -> None:
    part = make_part(price=1)
    redis_raw.flushall()
    redis_raw.hset(cache_key("catalog.part", part.pk), "l", "another-reader")
    assert repository.get_many(Part, [part.pk])[part.pk].price == 1
    assert redis_raw.hgetall(cache_key("catalog.part", part.pk)) == {b"l": b"another-reader"}


def test_get_by_fills_the_index_and_leaves_the_row_to_a_leased_get(redis_raw) -> None:
    customer = Customer.objects.create(customer_number="c-1", name="Ann", email="ann@example.com")
    redis_raw.flushall()
    assert repository.get_by(Customer, email="ann@example.com").pk == customer.pk
    assert redis_raw.hgetall(cache_key("customers.customer", customer.pk)) == {}
    assert repository.get_by(Customer, email="ann@example.com").pk == customer.pk  # index hit
    assert redis_raw.hget(cache_key("customers.customer", customer.pk), "v")
