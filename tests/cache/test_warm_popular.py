"""After the cache Redis comes back empty, the automatic warm writes the parts customers read
most before all the others, from the snapshot in PostgreSQL that the flush did not reach;
its progress says so, and a popular part deleted meanwhile is not brought back."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from catalog import selectors
from catalog.models import Part
from sync.cache import autowarm, popularity
from sync.cache.declaration import spec_for
from sync.cache.keys import cache_key
from sync.cache.writer import settle
from sync.models import PopularKey
from sync.tasks import popular_snapshot
from tests.catalog.conftest import new_part

pytestmark = pytest.mark.django_db(transaction=True)
ROWS = 40


@pytest.fixture
def parts(settings) -> list[Part]:
    settings.SYNC_WARM_RATE = 0
    settings.SYNC_POPULAR_SAMPLE_RATE = 1.0
    made = [new_part() for _ in range(ROWS)]
    settle()
    return made


def read(parts: list[Part], *indexes: int) -> list[Part]:
    """Customers look at these parts (more often the earlier in the list), then beat's
    snapshot runs."""
    for rank, i in enumerate(indexes):
        for _ in range(len(indexes) - rank):
            assert selectors.public_part(parts[i].pk) is not None
    popular_snapshot()
    return [parts[i] for i in indexes]


def cached(redis_raw, label: str, parts: list[Part]) -> list[bool]:
    return [bool(redis_raw.exists(cache_key(label, p.pk))) for p in parts]


def test_after_a_flush_the_first_batch_writes_the_popular_parts(parts, redis_raw) -> None:
    # High primary keys: the keyset pass would reach them last.
    popular = read(parts, 35, 20, 38)
    others = [p for p in parts if p not in popular]
    redis_raw.flushall()
    seen: list[tuple[autowarm.WarmState, list[bool], list[bool], str]] = []

    def first_batch(state: autowarm.WarmState) -> None:
        if not seen:
            seen.append(
                (
                    state,
                    cached(redis_raw, "catalog.part", popular),
                    cached(redis_raw, "catalog.part", others),
                    autowarm.state().describe(),
                )
            )

    finished = autowarm.run_warm(batch_size=5, progress=first_batch)
    state, popular_cached, others_cached, said = seen[0]
    assert (state.phase, state.popular_done, state.popular_total) == ("popular", 3, 6)
    assert popular_cached == [True, True, True]
    assert not any(others_cached)
    total = 2 * ROWS  # parts and their stock levels
    assert said == (
        f"cache warming, 0% (0 of {total} rows; the most read first: 3 of 6), under way"
    )

    assert finished.status == autowarm.WARM
    assert (finished.phase, finished.popular_done, finished.popular_total) == ("all", 6, 6)
    assert finished.describe() == f"warm ({total} rows warmed)"  # each row counted once
    assert all(cached(redis_raw, "catalog.part", parts))
    assert all(cached(redis_raw, "catalog.stocklevel", parts))


def test_a_popular_part_deleted_since_is_not_brought_back(parts, redis_raw) -> None:
    gone, hidden, live = read(parts, 30, 31, 32)
    Part.objects.filter(pk=hidden.pk).update(deleted_at=timezone.now())  # soft delete
    gone_pk = gone.pk
    gone.delete()
    settle()
    # A key no part can have (written by hand, or by a caller's bug) names no row either.
    PopularKey.objects.create(label="catalog.part", object_pk="not-a-part", score=99)
    redis_raw.flushall()
    after_popular: list[tuple[list[bytes | None], bool]] = []

    def popular_phase_done(state: autowarm.WarmState) -> None:
        if state.phase == "popular" and state.popular_done == state.popular_total:
            after_popular.append(
                (
                    [
                        redis_raw.hget(cache_key("catalog.part", pk), "t")
                        for pk in (gone_pk, hidden.pk, live.pk)
                    ],
                    any(cached(redis_raw, "catalog.part", parts[:30])),
                )
            )

    assert autowarm.run_warm(batch_size=1, progress=popular_phase_done).status == autowarm.WARM
    # Each key's tombstone flag: the deleted part has no key, the soft-deleted one is a
    # tombstone, the live one a row; no unpopular part was written yet.
    assert after_popular == [([None, b"1", b"0"], False)]
    client = Client()
    assert client.get(f"/api/parts/{hidden.pk}").status_code == 404
    assert client.get(f"/api/parts/{gone_pk}").status_code == 404
    assert client.get(f"/api/parts/{live.pk}").json()["id"] == live.pk


@pytest.mark.parametrize("when", ["after the first popular batch", "after the popular phase"])
def test_a_data_loss_in_the_popular_phase_stops_the_warm(parts, redis_raw, when) -> None:
    read(parts, 10, 11)
    redis_raw.flushall()

    def flush(state: autowarm.WarmState) -> None:
        last = state.popular_done == state.popular_total
        if state.phase == "popular" and (last if when.endswith("phase") else not last):
            redis_raw.flushall()

    assert autowarm.run_warm(batch_size=1, progress=flush).status == autowarm.COLD
    assert autowarm.run_warm(batch_size=1).status == autowarm.WARM
    assert all(cached(redis_raw, "catalog.part", parts))


def test_a_warm_that_died_in_the_popular_phase_starts_that_phase_again(parts, redis_raw) -> None:
    read(parts, 5, 6, 7)
    redis_raw.flushall()

    def die(state: autowarm.WarmState) -> None:
        msg = "the worker died"
        raise RuntimeError(msg)

    with pytest.raises(RuntimeError, match="died"):
        autowarm.run_warm(batch_size=2, progress=die)
    stopped = autowarm.state()
    assert (stopped.status, stopped.phase, stopped.popular_done) == ("warming", "popular", 2)
    assert not stopped.running  # the lock went with the worker's exception

    seen: list[int] = []
    finished = autowarm.run_warm(
        batch_size=2, progress=lambda s: s.phase == "popular" and seen.append(s.popular_done)
    )
    assert seen == [2, 3, 5, 6]  # parts 5, 6 | 7, then their stock levels: from the start
    assert finished.status == autowarm.WARM


def test_without_a_snapshot_the_warm_goes_straight_to_every_row(parts, redis_raw) -> None:
    redis_raw.flushall()
    phases: set[str] = set()
    assert autowarm.run_warm(progress=lambda s: phases.add(s.phase)).status == autowarm.WARM
    assert phases == {"all"}
    assert popularity.popular_pks(spec_for(Part)) == []
