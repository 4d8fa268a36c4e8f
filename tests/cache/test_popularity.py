"""Which parts are read most: the catalog's public reads are counted (sampled) in the cache
Redis, a paused or dead Redis never fails a read for it, and beat's snapshot folds the counts
into PostgreSQL (decayed, capped), where a flush of the cache Redis does not reach them."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.conf import settings
from django.db.models import F
from django.test import Client

from catalog import selectors
from catalog.models import Part, StockLevel
from sync.cache import popularity, repository
from sync.cache.declaration import spec_for
from sync.cache.keys import popular_key
from sync.models import PopularKey
from sync.tasks import popular_snapshot
from tests.catalog.conftest import new_part

pytestmark = pytest.mark.django_db(transaction=True)
PART, STOCK = popular_key("catalog.part"), popular_key("catalog.stocklevel")


def counts(redis_raw, key: str = PART) -> dict[int, float]:
    return {int(m): s for m, s in redis_raw.zrange(key, 0, -1, withscores=True)}


def snapshot_scores(label: str = "catalog.part") -> dict[int, float]:
    return {
        int(pk): score
        for pk, score in PopularKey.objects.filter(label=label).values_list("object_pk", "score")
    }


def test_every_public_read_counts_at_rate_one_and_none_at_zero(redis_raw, settings) -> None:
    settings.SYNC_POPULAR_SAMPLE_RATE = 1.0
    hot, cold = new_part(), new_part()
    client = Client()
    for _ in range(3):
        assert client.get(f"/api/parts/{hot.pk}").status_code == 200
    assert selectors.public_part(cold.pk) is not None
    assert client.get("/api/parts/999999").status_code == 404  # no part: nothing counted
    assert counts(redis_raw) == {hot.pk: 3, cold.pk: 1}
    assert counts(redis_raw, STOCK) == {hot.pk: 3, cold.pk: 1}  # its stock is read with it

    repository.get(Part, cold.pk)  # the engine's own reads are not counted
    repository.get_many(Part, [hot.pk, cold.pk])
    settings.SYNC_POPULAR_SAMPLE_RATE = 0.0
    for _ in range(5):
        selectors.public_part(hot.pk)
    assert counts(redis_raw) == {hot.pk: 3, cold.pk: 1}


def test_reads_through_postgresql_only_are_not_counted(redis_raw, settings) -> None:
    settings.SYNC_POPULAR_SAMPLE_RATE = 1.0
    settings.CATALOG_CACHE_READS = False  # the benchmark's baseline: no Redis at all
    part = new_part()
    assert selectors.public_part(part.pk)["id"] == part.pk
    assert counts(redis_raw) == {}


def test_a_paused_or_dead_cache_redis_fails_no_read(
    redis_control, redis_raw, settings, caplog
) -> None:
    settings.SYNC_POPULAR_SAMPLE_RATE = 1.0
    part = new_part(quantity=4, reserved=1)
    redis_control.pause()
    try:
        with caplog.at_level(logging.DEBUG, logger="sync.cache.popularity"):
            popularity.record(Part, part.pk)  # the server does not answer: skipped
            body = selectors.public_part(part.pk)  # the breaker is open now: skipped at once
    finally:
        redis_control.resume()
    assert body["id"] == part.pk
    assert body["stock"]["available_stock"] == 3
    skipped = [r for r in caplog.records if r.name == "sync.cache.popularity"]
    assert len(skipped) == 2
    assert all(r.levelno == logging.DEBUG for r in skipped)
    assert "not counted" in skipped[0].getMessage()

    redis_control.kill()
    assert selectors.public_part(part.pk)["id"] == part.pk
    popularity.record("catalog.part", part.pk)


def test_the_window_keeps_the_most_read_when_it_overflows(redis_raw, settings) -> None:
    settings.SYNC_POPULAR_SAMPLE_RATE = 1.0
    settings.SYNC_POPULAR_KEEP = 2  # the window holds up to 4 before it is trimmed to 2
    for pk, reads in [(1, 5), (2, 4), (3, 1), (4, 1)]:
        for _ in range(reads):
            popularity.record("catalog.part", pk)
    assert counts(redis_raw) == {1: 5, 2: 4, 3: 1, 4: 1}
    popularity.record_many([("catalog.part", 5), (Part, 5)])  # a fifth member: trimmed
    assert counts(redis_raw) == {1: 5, 2: 4}


def test_the_snapshot_moves_the_counts_to_postgresql_decays_and_caps(redis_raw, settings) -> None:
    settings.SYNC_POPULAR_SAMPLE_RATE = 1.0
    settings.SYNC_POPULAR_KEEP = 3
    for pk, reads in [(1, 8), (2, 4), (3, 2)]:
        for _ in range(reads):
            popularity.record(Part, pk)
    popularity.record(StockLevel, 1)
    assert popular_snapshot() == "catalog.part: 3 popular, catalog.stocklevel: 1 popular"
    assert snapshot_scores() == {1: 8, 2: 4, 3: 2}
    assert counts(redis_raw) == {}  # the window starts again

    # One half-life later: the old scores count half, the new window's counts are added, and
    # the fourth key pushes out the least read.
    PopularKey.objects.update(
        updated_at=F("updated_at") - timedelta(seconds=settings.SYNC_POPULAR_HALF_LIFE)
    )
    for pk, reads in [(3, 2), (4, 5)]:
        for _ in range(reads):
            popularity.record(Part, pk)
    assert popular_snapshot() == "catalog.part: 3 popular"
    assert snapshot_scores() == {
        1: pytest.approx(4, rel=0.01),
        3: pytest.approx(3, rel=0.01),  # 2 halved, plus 2
        4: 5,
    }  # 2 (4 halved) is gone
    assert [int(pk) for pk in popularity.popular_pks(spec_for(Part))] == [4, 1, 3]

    redis_raw.flushall()  # the cache Redis restarts empty: the snapshot stays
    assert popular_snapshot() == "no reads"
    assert set(snapshot_scores()) == {1, 3, 4}
    assert snapshot_scores("catalog.stocklevel") == {1: 1}


def test_a_snapshot_without_the_cache_redis_keeps_what_it_had(redis_control, settings) -> None:
    settings.SYNC_POPULAR_SAMPLE_RATE = 1.0
    popularity.record(Part, 7)
    popular_snapshot()
    redis_control.kill()
    assert popular_snapshot() == "no reads"
    assert snapshot_scores() == {7: 1}


def test_beat_snapshots_the_counts_every_minute() -> None:
    from django_celery_beat.models import PeriodicTask
    from django_celery_beat.schedulers import DatabaseScheduler, ModelEntry

    from config.celery import app

    DatabaseScheduler(app=app, lazy=True).update_from_dict(
        {"sync-popular-snapshot": settings.CELERY_BEAT_SCHEDULE["sync-popular-snapshot"]}
    )
    entry = ModelEntry(PeriodicTask.objects.get(name="sync-popular-snapshot"), app=app)
    assert entry.task == popular_snapshot.name == "sync.tasks.popular_snapshot"
    assert entry.schedule.run_every.total_seconds() == settings.SYNC_POPULAR_SNAPSHOT_INTERVAL
    assert settings.SYNC_POPULAR_SNAPSHOT_INTERVAL == 60.0
    assert str(PopularKey(label="catalog.part", object_pk="3", score=2.5)) == (
        "catalog.part:3 (2.5)"
    )
