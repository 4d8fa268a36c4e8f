"""Cache-first reads: hits need no query, misses fill with a version check, leases stop a
stampede, and a bad entry falls back to PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from django.db import connection as db
from django.db import transaction

from catalog.models import Part
from sync.cache import repository
from sync.cache.fence import fence
from sync.cache.keys import cache_key
from sync.cache.metrics import CACHE_READS
from tests.cache.conftest import cached
from tests.factories import make_part

LABEL = "catalog.part"


@pytest.fixture
def quiet_fence(settings):
    settings.SYNC_FENCE_REFRESH = 60  # keep the periodic fence query out of query counts
    fence.invalidate()
    fence.trusts(LABEL)


@pytest.mark.django_db(transaction=True)
def test_hit_needs_no_query_and_equals_the_database(quiet_fence, django_assert_num_queries):
    part = make_part(price=4)
    with django_assert_num_queries(0):
        got = repository.get(Part, part.pk)
    fresh = Part.objects.get(pk=part.pk)
    for name in ("id", "sku", "name", "price", "is_active", "version"):
        assert getattr(got, name) == getattr(fresh, name)
    with django_assert_num_queries(1):  # a field that is not cached loads on access
        assert got.created_at == fresh.created_at


@pytest.mark.django_db(transaction=True)
def test_miss_reads_postgresql_once_and_fills(quiet_fence, redis_raw, django_assert_num_queries):
    part = make_part()
    redis_raw.flushdb()
    with django_assert_num_queries(1):
        assert repository.get(Part, part.pk).sku == part.sku
    assert int(cached(redis_raw, LABEL, part.pk)["v"]) == part.version
    with django_assert_num_queries(0):
        repository.get(Part, part.pk)


@pytest.mark.django_db(transaction=True)
def test_fill_never_overwrites_a_newer_version(quiet_fence, redis_raw) -> None:
    part = make_part(price=1)
    redis_raw.hset(cache_key(LABEL, part.pk), "v", part.version + 100)
    repository._fill(repository.spec_for(Part), [Part.objects.get(pk=part.pk)])
    assert int(cached(redis_raw, LABEL, part.pk)["v"]) == part.version + 100


@pytest.mark.django_db
def test_missing_row_is_none_and_get_many_returns_existing(quiet_fence) -> None:
    part = make_part()
    assert repository.get(Part, 10**9) is None
    assert set(repository.get_many(Part, [part.pk, 10**9, part.pk])) == {part.pk}
    assert repository.get_many(Part, [10**9 + 1]) == {}


@pytest.mark.django_db(transaction=True)
def test_get_many_mixes_hits_misses_and_tombstones(quiet_fence, redis_raw) -> None:
    parts = [make_part() for _ in range(4)]
    pks = [p.pk for p in parts]
    redis_raw.delete(cache_key(LABEL, pks[0]))
    parts[1].delete()
    got = repository.get_many(Part, pks)
    assert sorted(got) == [pks[0], *pks[2:]]
    assert cached(redis_raw, LABEL, pks[0])  # the miss was filled
    assert sorted(repository.get_many(Part, [pks[0], pks[2]])) == [pks[0], pks[2]]  # all hits
    assert repository.get_many(Part, [10**9]) == {}  # a miss that does not exist: no fill


@pytest.mark.django_db(transaction=True)
def test_concurrent_misses_on_a_hot_key_read_postgresql_once(settings, redis_raw) -> None:
    settings.SYNC_LEASE_WAIT = 5.0  # generous: the point is who reads, not how fast
    part = make_part()
    redis_raw.flushdb()
    misses = CACHE_READS.labels(LABEL, "miss")
    before = misses._value.get()
    barrier = threading.Barrier(8)
    results = []

    def reader() -> None:
        barrier.wait()
        try:
            results.append(repository.get(Part, part.pk).sku)
        finally:
            db.close()

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [part.sku] * 8
    assert misses._value.get() - before == 1


@pytest.mark.django_db(transaction=True)
def test_held_lease_makes_others_wait_then_read_postgresql(settings, redis_raw) -> None:
    settings.SYNC_LEASE_WAIT = 0.05
    part = make_part()
    redis_raw.delete(cache_key(LABEL, part.pk))
    redis_raw.hset(cache_key(LABEL, part.pk), "l", "someone-else")
    assert repository.get(Part, part.pk).sku == part.sku
    assert cached(redis_raw, LABEL, part.pk) == {"l": b"someone-else"}  # no fill by a waiter


@pytest.mark.django_db(transaction=True)
def test_undecodable_entry_falls_back_to_postgresql(quiet_fence, redis_raw, caplog) -> None:
    part = make_part(price=3)
    redis_raw.hset(cache_key(LABEL, part.pk), "p", b"not json")
    assert repository.get(Part, part.pk).price == 3
    assert repository.get_many(Part, [part.pk])[part.pk].price == 3
    assert any("undecodable" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db
def test_reads_inside_a_transaction_see_uncommitted_rows_from_postgresql(quiet_fence) -> None:
    with transaction.atomic():
        part = make_part()
        assert repository.get(Part, part.pk).sku == part.sku


@pytest.mark.django_db(transaction=True)
def test_transaction_reads_its_own_writes_and_never_fills_uncommitted_rows(
    quiet_fence, redis_raw
) -> None:
    part = make_part(price=1)
    with pytest.raises(RuntimeError), transaction.atomic():
        part.price = 2
        part.save()
        assert repository.get(Part, part.pk).price == 2  # not Redis' committed 1
        assert repository.get_many(Part, [part.pk])[part.pk].price == 2
        new = make_part(price=9)
        redis_raw.delete(cache_key(LABEL, new.pk))
        Part.objects.filter(pk=new.pk).update(price=10)  # unmarked change
        assert repository.get(Part, new.pk).price == 10
        assert repository.get_many(Part, [new.pk])[new.pk].price == 10
        raise RuntimeError  # roll back: nothing of this may be in Redis
    assert cached(redis_raw, LABEL, new.pk) == {} or b"v" not in cached(redis_raw, LABEL, new.pk)
    assert repository.get(Part, part.pk).price == 1


@pytest.mark.django_db(transaction=True)
def test_cached_instance_behaves_like_a_loaded_one(quiet_fence, redis_raw) -> None:
    from django.db.models.signals import post_init

    part = make_part(price=1)
    got = repository.get(Part, part.pk)
    assert got == part and not got._state.adding
    assert got.get_deferred_fields() == {"created_at", "updated_at_ns"}
    got.price = 8
    got.save()  # saves the loaded fields only
    fresh = Part.objects.get(pk=part.pk)
    assert (fresh.price, fresh.created_at) == (8, part.created_at)
    seen = []

    def watch(sender, instance, **kwargs) -> None:
        seen.append(instance)

    post_init.connect(watch, sender=Part)
    try:
        built = repository.get(Part, part.pk)
    finally:
        post_init.disconnect(watch, sender=Part)
    assert seen and seen[-1] is built and built.price == 8


@pytest.mark.django_db(transaction=True)
def test_waiter_gets_the_row_its_filler_writes(settings, redis_raw) -> None:
    from sync.cache import store
    from sync.cache.declaration import spec_for
    from sync.cache.outbox import RowState

    settings.SYNC_LEASE_WAIT = 5.0
    part = make_part(price=4)
    key = cache_key(LABEL, part.pk)
    redis_raw.delete(key)
    redis_raw.hset(key, "l", "the-filler")  # another reader is filling
    state = RowState(
        LABEL,
        str(part.pk),
        part.version,
        ("x", "filled by the other", part.price, True, "", {}, [], None),
    )
    filler = threading.Timer(0.05, lambda: store.write_many([state.to_write(spec_for(Part))]))
    filler.start()
    try:
        got = repository.get(Part, part.pk)
    finally:
        filler.join()
    assert got.name == "filled by the other"  # from Redis, not PostgreSQL
