"""I3/I4: the intent is written with the change, Redis only after commit, rollback never."""

from __future__ import annotations

import pytest
from django.db import transaction

from catalog.models import Part
from sync.cache import repository
from sync.cache.bulk import bulk_create_synced, update_synced
from sync.cache.writer import settle
from sync.models import SyncIntent
from tests.cache.conftest import cached, cached_price
from tests.factories import make_part

pytestmark = pytest.mark.django_db(transaction=True)
LABEL = "catalog.part"


def test_commit_writes_redis_once_and_clears_the_intent(redis_raw) -> None:
    with transaction.atomic():
        part = make_part(price=7)
        # inside the transaction: the intent exists, Redis has nothing yet (I4)
        assert SyncIntent.objects.filter(model=LABEL, object_pk=str(part.pk)).exists()
        assert cached(redis_raw, LABEL, part.pk) == {}
    entry = cached(redis_raw, LABEL, part.pk)
    assert int(entry["v"]) == Part.objects.get(pk=part.pk).version
    assert b'"price"' not in entry["p"] and cached_price(redis_raw, part.pk) == 7
    settle()
    assert not SyncIntent.objects.exists()


def test_rollback_leaves_redis_untouched(redis_raw) -> None:
    part = make_part(price=1)
    before = cached(redis_raw, LABEL, part.pk)
    with pytest.raises(RuntimeError), transaction.atomic():
        Part.objects.filter(pk=part.pk).update(price=99)
        obj = Part.objects.get(pk=part.pk)
        obj.name = "rolled back"
        obj.save()
        raise RuntimeError
    assert cached(redis_raw, LABEL, part.pk) == before
    settle()
    assert not SyncIntent.objects.exists()
    assert repository.get(Part, part.pk).price == 1


def test_savepoint_rollback_does_not_leak_and_outer_commit_still_writes(redis_raw) -> None:
    with transaction.atomic():
        part = make_part(price=1)
        try:
            with transaction.atomic():
                part.price = 50
                part.save()
                raise ValueError
        except ValueError:
            pass
    assert cached_price(redis_raw, part.pk) == 1  # not the rolled-back 50


def test_many_changes_in_one_transaction_use_one_pipeline(redis_raw) -> None:
    with transaction.atomic():
        parts = [make_part(price=i) for i in range(20)]
        for part in parts[:5]:
            part.price += 100
            part.save()
    for part in parts:
        fresh = Part.objects.get(pk=part.pk)
        assert int(cached(redis_raw, LABEL, part.pk)["v"]) == fresh.version
    settle()
    assert not SyncIntent.objects.exists()


def test_delete_writes_a_versioned_tombstone(redis_raw) -> None:
    part = make_part()
    pk = part.pk
    version = part.version
    part.delete()
    entry = cached(redis_raw, LABEL, pk)
    assert entry["t"] == b"1" and int(entry["v"]) > version
    assert redis_raw.pttl(f"syncops:{LABEL}:{pk}") > 3600 * 1000  # outlives replay backoff
    assert repository.get(Part, pk) is None


def test_bulk_helpers_write_through(redis_raw) -> None:
    with transaction.atomic():
        created = bulk_create_synced(
            Part, [Part(sku=f"B{i}", name="b", price=i) for i in range(10)]
        )
    assert all(cached(redis_raw, LABEL, p.pk) for p in created)
    with transaction.atomic():
        update_synced(Part.objects.filter(sku__startswith="B"), price=5)
    for part in Part.objects.filter(sku__startswith="B"):
        entry = cached(redis_raw, LABEL, part.pk)
        assert int(entry["v"]) == part.version and cached_price(redis_raw, part.pk) == 5
    settle()
    assert not SyncIntent.objects.exists()


def test_plain_queryset_update_leaves_an_intent_that_replay_completes(redis_raw) -> None:
    from sync.cache.replay import replay_pending

    part = make_part(price=1)
    Part.objects.filter(pk=part.pk).update(price=2)  # no signal, no write-through
    assert SyncIntent.objects.filter(object_pk=str(part.pk)).count() == 1
    assert cached_price(redis_raw, part.pk) == 1
    result = replay_pending(include_not_due=True)
    assert result.written == 1
    assert cached_price(redis_raw, part.pk) == 2
    settle()
    assert not SyncIntent.objects.exists()


def test_hot_row_coalesces_to_one_intent_while_redis_is_down(redis_control) -> None:
    part = make_part()
    redis_control.kill()
    try:
        for i in range(30):
            with transaction.atomic():
                Part.objects.filter(pk=part.pk).update(price=i)
                obj = Part.objects.get(pk=part.pk)
                obj.save()
        intents = list(SyncIntent.objects.all())
        assert len(intents) == 1
        assert intents[0].version == Part.objects.get(pk=part.pk).version
    finally:
        redis_control.start()


@pytest.fixture
def part_proxy():
    """A proxy of Part, registered for this test only (it must not reach makemigrations)."""
    from django.apps import apps

    class PartProxy(Part):
        class Meta:
            proxy = True
            app_label = "catalog"

    yield PartProxy
    del apps.all_models["catalog"]["partproxy"]
    apps.clear_cache()


def test_saving_through_a_proxy_model_writes_through(redis_raw, part_proxy) -> None:
    part = make_part(price=1)
    proxy = part_proxy.objects.get(pk=part.pk)
    proxy.price = 6
    proxy.save()
    assert cached_price(redis_raw, part.pk) == 6


def test_single_row_saves_settle_their_intents_together_later(monkeypatch) -> None:
    from sync.cache import writer

    settle()  # completions an earlier test left on this connection would count towards 3
    monkeypatch.setattr(writer, "SETTLE_BATCH", 3)
    parts = [make_part() for _ in range(3)]
    # completed in Redis, but their deletes wait for a batch (a delete is a WAL flush)
    assert SyncIntent.objects.count() == 3
    make_part()  # the batch is full: this write-through's read deletes the three
    assert SyncIntent.objects.filter(object_pk__in=[str(p.pk) for p in parts]).count() == 0
    assert SyncIntent.objects.count() == 1
    monkeypatch.setattr(writer, "SETTLE_AGE", 0.0)  # or the oldest is old enough
    make_part()
    assert SyncIntent.objects.count() == 1
    writer._settle_at_exit()  # what a process does when it exits
    assert not SyncIntent.objects.exists()
    assert settle() == 0


def test_a_save_that_clears_a_failed_intent_settles_it_at_once(redis_control) -> None:
    part = make_part(price=1)
    settle()
    redis_control.kill()
    try:
        part.price = 2
        part.save()  # fails: the intent carries a fence epoch now
    finally:
        redis_control.start()
    from sync.cache import connection as cache_connection

    cache_connection.breaker.reset()
    part.price = 3
    part.save()  # succeeds, and deletes the intent now: it holds the fence closed
    assert not SyncIntent.objects.exists()


def test_write_through_without_prepared_statements(settings, redis_raw) -> None:
    settings.SYNC_PREPARED_STATEMENTS = False  # behind a transaction-pooling PgBouncer
    part = make_part(price=3)
    part.price = 4
    part.save()
    assert cached_price(redis_raw, part.pk) == 4


def test_bulk_create_with_ignore_conflicts_needs_the_pks(redis_raw) -> None:
    """ON CONFLICT DO NOTHING gives back no pk: rows created so could not be written through
    (only replayed later), so the helper refuses the call instead of going silently late."""
    existing = make_part(sku="IC-1")
    with pytest.raises(ValueError, match="ignore_conflicts=True\\) needs every object's pk"):
        bulk_create_synced(Part, [Part(sku="IC-2", name="n", price=1)], ignore_conflicts=True)
    assert not Part.objects.filter(sku="IC-2").exists()
    # With the pks given, the created rows are written through and the conflict is ignored.
    with transaction.atomic():
        bulk_create_synced(
            Part,
            [
                Part(pk=existing.pk, sku="IC-1", name="n", price=1),
                Part(pk=10**6, sku="IC-3", price=2),
            ],
            ignore_conflicts=True,
        )
    assert cached_price(redis_raw, 10**6) == 2
    existing.refresh_from_db()
    assert existing.name != "n"


def test_deleting_completed_intents_never_relaxes_a_callers_durability(redis_raw) -> None:
    from django.db import connection

    from sync.cache import outbox

    def durability() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('synchronous_commit')")
            return cursor.fetchone()[0]

    session = durability()
    parts = [make_part() for _ in range(3)]
    settle()
    for part in parts:  # pending again: a plain update leaves an intent, nothing marked
        Part.objects.filter(pk=part.pk).update(price=9)
    states = [
        outbox.RowState(LABEL, str(p.pk), Part.objects.get(pk=p.pk).version, None) for p in parts
    ]
    with transaction.atomic():
        assert outbox.complete(states[:1]) == 1
        # inside the caller's transaction: its commit keeps the session's durability
        assert durability() == session
    # on its own (autocommit) the delete commits without waiting for its WAL flush, and the
    # setting ends with its statement
    assert outbox.complete(states[1:]) == 2
    assert durability() == session
    assert not SyncIntent.objects.exists()
