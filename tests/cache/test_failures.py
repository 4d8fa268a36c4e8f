"""Failure paths made for real: terminated PostgreSQL backends, lock timeouts, Redis down or
answering with errors. None of them may reach the code that committed (I1)."""

from __future__ import annotations

import threading
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction

from catalog.models import Part
from sync.cache import connection as cache_connection
from sync.cache import repository, store
from sync.cache.bulk import update_synced
from sync.cache.exceptions import CacheUnavailableError
from sync.cache.fence import fence
from sync.cache.keys import cache_key
from sync.cache.replay import replay_pending
from sync.cache.writer import settle
from sync.models import SyncIntent
from tests.cache.conftest import cached_price
from tests.factories import make_part

pytestmark = pytest.mark.django_db(transaction=True)
LABEL = "catalog.part"


def terminate_own_backend() -> None:
    """Kill this connection's PostgreSQL backend from a second connection."""
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()


def test_backend_terminated_before_write_through_leaves_intent_for_replay(redis_raw) -> None:
    part = make_part(price=1)
    with transaction.atomic():
        transaction.on_commit(terminate_own_backend)  # runs before the write-through
        part.price = 2
        part.save()
    connection.close()
    assert Part.objects.get(pk=part.pk).price == 2
    assert cached_price(redis_raw, part.pk) == 1
    assert SyncIntent.objects.filter(object_pk=str(part.pk)).exists()
    replay_pending(include_not_due=True)
    assert cached_price(redis_raw, part.pk) == 2


def test_redis_and_postgresql_both_failing_after_commit_still_never_raise(redis_control) -> None:
    part = make_part(price=1)
    redis_control.kill()
    try:
        with transaction.atomic():
            part.price = 2
            part.save()
            # after our intent load succeeds and Redis fails, recording the failure fails too
            transaction.on_commit(lambda: None)
        connection.close()
        cache_connection.breaker.failure()
        with transaction.atomic():
            transaction.on_commit(terminate_own_backend)
            part.price = 3
            part.save()
        connection.close()
    finally:
        redis_control.start()
    assert Part.objects.get(pk=part.pk).price == 3
    assert SyncIntent.objects.filter(object_pk=str(part.pk)).exists()


def test_intent_kept_when_its_delete_times_out_and_replay_clears_it(redis_raw) -> None:
    part = make_part(price=1)
    locked, release = threading.Event(), threading.Event()

    def hold_intent_lock() -> None:
        with transaction.atomic():
            list(SyncIntent.objects.select_for_update().filter(object_pk=str(part.pk)))
            locked.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=hold_intent_lock)

    def lock_intent_after_commit() -> None:  # runs after COMMIT, before the write-through
        holder.start()
        locked.wait(10)

    other = make_part()
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '100ms'")
    try:
        with transaction.atomic():
            transaction.on_commit(lock_intent_after_commit)
            part.price = 3
            part.save()
            other.save()  # two keys: their intents are deleted at once, not deferred
    finally:
        release.set()
        holder.join()
        connection.close()
    # Redis got the new state; the intent it could not delete is harmless: replay re-writes
    # the same version (a no-op) and clears it.
    assert cached_price(redis_raw, part.pk) == 3
    assert SyncIntent.objects.filter(object_pk=str(part.pk)).exists()
    replay_pending(include_not_due=True)
    settle()
    assert not SyncIntent.objects.exists()


def test_unexpected_error_in_write_through_is_logged_not_raised(monkeypatch, caplog) -> None:
    part = make_part(price=1)

    def broken(*args, **kwargs):
        msg = "a bug in the codec"
        raise TypeError(msg)

    monkeypatch.setattr("sync.cache.outbox.seal", broken)
    with transaction.atomic():
        part.price = 2
        part.save()
    assert Part.objects.get(pk=part.pk).price == 2
    assert any("write-through failed unexpectedly" in r.getMessage() for r in caplog.records)
    monkeypatch.undo()
    replay_pending(include_not_due=True)
    assert repository.get(Part, part.pk).price == 2


def test_reads_survive_a_dead_redis_without_any_failed_write(redis_control) -> None:
    part = make_part(price=5)
    redis_control.kill()
    try:
        assert repository.get(Part, part.pk).price == 5
        assert repository.get_many(Part, [part.pk])[part.pk].price == 5
        cache_connection.breaker.reset()
        assert repository.get_many(Part, [part.pk])[part.pk].price == 5
    finally:
        redis_control.start()


def test_redis_error_reply_is_wrapped_and_does_not_open_the_breaker(redis_raw) -> None:
    part = make_part()
    redis_raw.delete(cache_key(LABEL, part.pk))
    redis_raw.set(cache_key(LABEL, part.pk), "a string, not a hash")  # WRONGTYPE for HMGET
    with pytest.raises(CacheUnavailableError, match="error"):
        store.read_row(cache_key(LABEL, part.pk))
    assert cache_connection.breaker.state == cache_connection.breaker.CLOSED
    assert repository.get(Part, part.pk).sku == part.sku


def test_fence_refresh_with_postgresql_gone_distrusts_the_cache() -> None:
    terminate_own_backend()
    fence.invalidate()
    assert fence.trusts(LABEL) is False
    connection.close()
    fence.invalidate()
    assert fence.trusts(LABEL) is True


def test_replay_batches_and_odd_intents(redis_control, redis_raw, caplog) -> None:
    parts = [make_part(price=1) for _ in range(5)]
    Part.objects.update(price=2)
    gone = parts[0].pk
    redis_control.kill()
    try:
        parts[0].delete()  # fails to write through: a delete intent, fence bumped
    finally:
        redis_control.start()
    SyncIntent.objects.create(
        model="gone.model",
        object_pk="1",
        version=1,
        op="u",
        next_attempt_at="2000-01-01T00:00Z",
        created_at="2000-01-01T00:00Z",
        updated_at="2000-01-01T00:00Z",
    )
    cache_connection.breaker.reset()
    # the oldest intent, alone in a batch of one, belongs to no synced model
    first = replay_pending(include_not_due=True, batch_size=1, max_batches=1)
    assert (first.batches, first.claimed, first.written) == (1, 1, 0)
    rest = replay_pending(include_not_due=True, batch_size=2)
    assert rest.written + first.written == 5
    assert redis_raw.hget(cache_key(LABEL, gone), "t") == b"1"
    assert any("no longer synced" in r.getMessage() for r in caplog.records)
    assert SyncIntent.objects.get(model="gone.model").status == "dead"
    assert rest.fence_advanced == 1
    # the fence cannot be recorded while Redis is down; nothing else breaks
    redis_control.kill()
    try:
        assert replay_pending().fence_advanced == 0
    finally:
        redis_control.start()


def test_bulk_helper_with_nothing_to_update() -> None:
    with transaction.atomic():
        assert update_synced(Part.objects.none(), price=1) == 0


def test_verify_counts_malformed_keys_as_extra_and_prints_progress(redis_raw) -> None:
    make_part()
    redis_raw.hset(cache_key(LABEL, "not-a-number"), mapping={"v": 1, "p": "[]", "t": "0"})
    redis_raw.hset(cache_key(LABEL, 10**9), mapping={"v": 1, "p": "", "t": "1"})  # tombstone
    out = StringIO()
    with pytest.raises(CommandError, match="--repair"):
        call_command("sync_verify", LABEL, "-v", "2", stdout=out)
    assert "1/1 100.0%" in out.getvalue()
    assert "extra 1" in out.getvalue() and "not-a-number" in out.getvalue()
    call_command("sync_verify", LABEL, "--repair", stdout=out)
    call_command("sync_verify", LABEL, stdout=out)
    call_command("sync_warm", LABEL, "-v", "0", stdout=out)
    call_command("sync_replay", stdout=out)


def test_postgresql_lost_while_recording_a_failed_cache_write(redis_control, caplog) -> None:
    part = make_part(price=1)

    def terminate_when_breaker_opens(state: str) -> None:
        if state == cache_connection.breaker.OPEN:
            terminate_own_backend()

    cache_connection.breaker.on_change(terminate_when_breaker_opens)
    redis_control.kill()
    try:
        with transaction.atomic():
            part.price = 2
            part.save()
    finally:
        cache_connection.breaker._listeners.remove(terminate_when_breaker_opens)
        redis_control.start()
        connection.close()
    assert Part.objects.get(pk=part.pk).price == 2
    intent = SyncIntent.objects.get(object_pk=str(part.pk))
    assert intent.attempts == 0  # the failure could not be recorded; replay still has it
    assert any("could not record a failed cache write" in r.getMessage() for r in caplog.records)


def test_write_through_with_no_pending_intent_does_nothing(redis_raw) -> None:
    from sync.cache.writer import mark_changed

    mark_changed(LABEL, [10**9])  # autocommit: flushes at once, finds no intent
    assert redis_raw.keys(f"*{LABEL}*") == []  # (the data-loss marker is there: store.Marks)


def test_replay_command_at_default_verbosity() -> None:
    part = make_part()
    Part.objects.filter(pk=part.pk).update(price=4)
    out = StringIO()
    call_command("sync_replay", "--all", stdout=out)
    assert "written 1" in out.getvalue()
    call_command("sync_verify", LABEL, "-v", "0", stdout=out)
