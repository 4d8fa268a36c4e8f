"""The write side of the race test_fill_race.py closes for fills: a writer reads version v of
a row from PostgreSQL; a newer version v+1 is written through and its intent completed; then
Redis loses its data (FLUSHALL, a restart); then the older write of v lands in the emptied key
(compare-and-set sees no key). Without the data-loss marker (sync/cache/store.Marks) v would
stay in Redis with no intent left to repair it: a lost write. With it the writer sees that
Redis lost data after its read, leaves an intent for the row and closes the fence (reads go
to PostgreSQL), and replay writes the newest version."""

from __future__ import annotations

import pytest
from django.db import connection as db
from django.db import transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.events import decode
from catalog.models import Part
from sync.cache import (
    connection,
    events,
    outbox,
    replay,
    repository,
    rows,
    store,
    verification,
    warming,
)
from sync.cache.declaration import spec_for
from sync.cache.keys import cache_key, marker_key
from sync.cache.replay import replay_pending
from sync.cache.verification import verify
from sync.cache.warming import warm
from sync.cache.writer import settle
from sync.models import SyncFence, SyncIntent
from tests import engine_fixtures
from tests.factories import make_part

pytestmark = pytest.mark.django_db(transaction=True)

fresh_engine_state = engine_fixtures.fresh_engine_state
redis_raw = engine_fixtures.redis_raw

PART = "catalog.part"


def commit_price(pk: int, price: int) -> None:
    """Another writer: a new version, written through on commit, its intent completed."""
    with transaction.atomic():
        row = Part.objects.select_for_update().get(pk=pk)
        row.price = price
        row.save()
    settle()


def restarter(server):
    """Redis loses everything: the cache server killed and started again (the process
    reconnects: its pooled connections died with the server). NOTE: tests that use it ask
    for ``redis_control`` in their signature, so that the application's cache is that
    server from the start (tests/conftest.py ``_empty_cache``), in CI's second pass too."""

    def restart() -> None:
        server.kill()
        server.start()
        connection.reset_clients()

    return restart


def stored_version(redis_raw, pk) -> int | None:
    version = redis_raw.hget(cache_key(PART, pk), "v")
    return None if version is None else int(version)


def assert_lost_write_repaired(redis_raw, part: Part, price: int) -> None:
    """What an operator sees after the race: the row is queued again, reads do not get the
    old version, and replay brings Redis to the newest one."""
    intent = SyncIntent.objects.get(model=PART, object_pk=str(part.pk))
    assert intent.epoch is not None  # it holds the fence closed until replay drains it
    assert repository.get(Part, part.pk).price == price
    replay_pending(include_not_due=True)
    assert not SyncIntent.objects.filter(model=PART).exists()
    part.refresh_from_db()
    assert stored_version(redis_raw, part.pk) == part.version
    report = verify(spec_for(PART))
    assert report.ok and report.fraction == 1.0
    assert repository.get(Part, part.pk).price == price  # from Redis again, the newest


def test_on_commit_write_through_older_than_a_flushall(redis_raw, monkeypatch) -> None:
    on_commit_race(redis_raw, redis_raw.flushall, monkeypatch)


def test_on_commit_write_through_older_than_a_restart(
    redis_control, redis_raw, monkeypatch
) -> None:
    on_commit_race(redis_raw, restarter(redis_control), monkeypatch)


def on_commit_race(redis_raw, lose_data, monkeypatch) -> None:
    part = make_part(price=1)
    settle()
    real_read = outbox.intent_states
    raced = []

    def read_then_race(spec, pks, *args, **kwargs):
        states = real_read(spec, pks, *args, **kwargs)  # this writer's snapshot: price 50
        if not raced:
            raced.append(True)
            commit_price(part.pk, 99)
            lose_data()
        return states

    monkeypatch.setattr(outbox, "intent_states", read_then_race)
    with transaction.atomic():
        row = Part.objects.get(pk=part.pk)
        row.price = 50
        row.save()
    assert raced
    # The older state's change event was not appended either (it goes in the write's own
    # round trip, guarded by the same marker): a reader of the stream never sees 99, then 50.
    assert not redis_raw.exists(events.stream_key("catalog"))
    monkeypatch.undo()
    settle()
    assert_lost_write_repaired(redis_raw, part, 99)
    appended = [fields for _id, fields in redis_raw.xrange(events.stream_key("catalog"))]
    assert [decode(fields)["data"]["price"] for fields in appended] == ["99.00"]


def test_replay_older_than_a_flushall(redis_raw, monkeypatch) -> None:
    replay_race(redis_raw, redis_raw.flushall, monkeypatch)


def test_replay_older_than_a_restart(redis_control, redis_raw, monkeypatch) -> None:
    replay_race(redis_raw, restarter(redis_control), monkeypatch)


def replay_race(redis_raw, lose_data, monkeypatch) -> None:
    part = make_part(price=1)
    settle()
    now = timezone.now()
    SyncIntent.objects.create(
        model=PART,
        object_pk=str(part.pk),
        version=part.version,
        op="u",
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    real_states = replay._states

    def read_then_race(claimed):
        states = real_states(claimed)  # replay's snapshot: price 1
        monkeypatch.setattr(replay, "_states", real_states)  # once
        commit_price(part.pk, 99)
        lose_data()
        return states

    monkeypatch.setattr(replay, "_states", read_then_race)
    # one batch: a longer run would take the new intent again at once and repair the row
    replay_pending(include_not_due=True, max_batches=1)
    monkeypatch.undo()
    assert_lost_write_repaired(redis_raw, part, 99)


def lose_after_each_read(monkeypatch, module, lose) -> None:
    """Redis loses its data after each batch is read, before it is written."""
    real_rows = warming.iter_rows

    def rows_then_loss(*args, **kwargs):
        for batch in real_rows(*args, **kwargs):
            lose()
            yield batch

    monkeypatch.setattr(module, "iter_rows", rows_then_loss)


def test_warming_leaves_a_lost_batch_to_replay(redis_raw, monkeypatch) -> None:
    parts = [make_part(price=1) for _ in range(3)]
    settle()
    lose_after_each_read(monkeypatch, warming, redis_raw.flushall)
    assert warm(spec_for(PART), batch_size=2).done == 3
    monkeypatch.undo()
    assert SyncIntent.objects.filter(model=PART, epoch__isnull=False).count() == 3
    assert_lost_write_repaired(redis_raw, parts[0], 1)


def test_verification_repair_leaves_a_lost_batch_to_replay(redis_raw, monkeypatch) -> None:
    part = make_part(price=1)
    settle()
    redis_raw.delete(cache_key(PART, part.pk))
    lose_after_each_read(monkeypatch, verification, redis_raw.flushall)
    assert verify(spec_for(PART), repair=True).repaired == 1
    monkeypatch.undo()
    assert_lost_write_repaired(redis_raw, part, 1)


def test_a_write_without_a_loss_adds_no_database_work(redis_raw) -> None:
    part = make_part(price=1)
    settle()
    with CaptureQueriesContext(db) as queries:
        commit_price(part.pk, 2)
        commit_price(part.pk, 3)
    assert not any("sync_fence" in q["sql"] for q in queries.captured_queries)
    assert not SyncIntent.objects.exists()
    assert not SyncFence.objects.filter(epoch__gt=0).exists()
    assert stored_version(redis_raw, part.pk) == Part.objects.get(pk=part.pk).version


def test_the_marker_is_one_key_read_once_per_process(redis_raw) -> None:
    store.forget_markers()
    first = store.capture()
    assert list(first.captured) == [""]  # standalone: one marker
    assert redis_raw.get(marker_key()).decode() == first.captured[""]
    assert store.capture().captured == first.captured


def test_a_process_that_could_not_read_the_marker_trusts_no_write(redis_control) -> None:
    part = make_part(price=1)
    settle()
    redis_control.kill()
    store.forget_markers()
    marks = store.capture()  # no error: the write that follows fails, or sees the loss
    assert marks.captured == {}
    redis_control.start()
    connection.reset_clients()
    (state,) = outbox.row_states(spec_for(PART), [str(part.pk)], {})
    store.write_many(state.to_writes(spec_for(PART)), marks=marks)
    assert marks.lost


def test_console_resync_older_than_a_flushall(redis_raw, monkeypatch) -> None:
    """The console's "Resync selected rows to the cache" (``rows.resync_rows``): its read, a
    newer write completed, FLUSHALL, then its write."""
    part = make_part(price=1)
    settle()
    real_states = rows.current_states

    def read_then_race(model, pks):
        states = real_states(model, pks)  # the resync's snapshot: price 1
        commit_price(part.pk, 99)
        redis_raw.flushall()
        return states

    monkeypatch.setattr(rows, "current_states", read_then_race)
    assert rows.resync_rows(model=Part, pks=[part.pk]).rows == 1
    monkeypatch.undo()
    assert_lost_write_repaired(redis_raw, part, 99)


def test_console_retry_now_older_than_a_flushall(redis_raw, monkeypatch) -> None:
    """The console's "Retry now" on a cache intent (``rows.retry_intents``): the same race."""
    part = make_part(price=1)
    settle()
    now = timezone.now()
    intent = SyncIntent.objects.create(
        model=PART,
        object_pk=str(part.pk),
        version=part.version,
        op="u",
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    real_states = outbox.row_states

    def read_then_race(*args, **kwargs):
        states = real_states(*args, **kwargs)  # the retry's snapshot: price 1
        monkeypatch.setattr(outbox, "row_states", real_states)  # once
        commit_price(part.pk, 99)
        redis_raw.flushall()
        return states

    monkeypatch.setattr(outbox, "row_states", read_then_race)
    assert rows.retry_intents(ids=[intent.pk]).claimed == 1
    monkeypatch.undo()
    assert_lost_write_repaired(redis_raw, part, 99)
