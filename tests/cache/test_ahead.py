"""Replay and warm read their next batch on a thread of their own (sync.cache.ahead): what the
caller sees is the same batches, in order, the source's errors, and no claimed intent left
to wait out its lease when a replay stops on a Redis failure."""

from __future__ import annotations

import gc
import logging
import threading

import pytest
from django.db import connection, transaction

from catalog.models import Part
from sync.cache import connection as cache_connection
from sync.cache import events, store
from sync.cache.ahead import GC_THRESHOLD, InLine, ReadAhead, fewer_collections, read_ahead
from sync.cache.maintenance import warm_models
from sync.cache.replay import replay_pending
from sync.models import SyncIntent
from tests.cache.conftest import cached_price
from tests.factories import make_part
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)
LABEL = "catalog.part"
DEADLINE = 10.0


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def backends_alive(pids: list[int]) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [pids])
        return cursor.fetchone()[0]


def test_batches_come_in_order_read_on_another_connection_which_is_closed_after() -> None:
    caller = backend_pid()
    readers: list[int] = []

    def source():
        for n in range(3):
            readers.append(backend_pid())
            yield n

    batches = read_ahead(source)
    assert isinstance(batches, ReadAhead)
    assert list(batches) == [0, 1, 2]
    assert batches.close() == []
    assert readers and caller not in readers  # the reads ran on the thread's own connection
    # A backend ends a moment after its client closed the connection.
    wait_until(
        lambda: not backends_alive(readers), timeout=DEADLINE, what="the reader's backend gone"
    )


def test_inside_a_transaction_batches_are_read_in_line_and_see_its_rows() -> None:
    with transaction.atomic():
        part = make_part()

        def source():
            yield Part.objects.filter(pk=part.pk).exists()

        batches = read_ahead(source)
        assert isinstance(batches, InLine)
        assert list(batches) == [True]
        assert batches.close() == []


def test_an_error_of_the_source_is_raised_at_the_batch_it_would_have_produced() -> None:
    def source():
        yield 1
        msg = "claim failed"
        raise ValueError(msg)

    batches = read_ahead(source)
    taken = []
    with pytest.raises(ValueError, match="claim failed"):
        taken.extend(batches)
    assert taken == [1]
    assert next(iter(batches), None) is None  # and then it is over
    assert batches.close() == []


def test_a_batch_being_read_when_the_caller_stops_is_handed_back() -> None:
    reading, go_on = threading.Event(), threading.Event()

    def source():
        yield 1
        reading.set()
        go_on.wait(DEADLINE)
        yield 2
        yield 3

    batches = read_ahead(source)
    assert next(iter(batches)) == 1
    assert reading.wait(DEADLINE)  # the reader is past its last look at "stop"
    go_on.set()
    assert batches.close() == [2]  # 3 is never read


def test_a_source_that_ends_while_the_caller_stops_hands_back_nothing() -> None:
    reading, go_on = threading.Event(), threading.Event()

    def source():
        yield 1
        reading.set()
        go_on.wait(DEADLINE)

    batches = read_ahead(source)
    assert next(iter(batches)) == 1
    assert reading.wait(DEADLINE)
    go_on.set()
    assert batches.close() == []


def test_an_error_after_the_caller_stopped_is_logged(caplog) -> None:
    reading, go_on = threading.Event(), threading.Event()

    def source():
        yield 1
        reading.set()
        go_on.wait(DEADLINE)
        msg = "claim failed"
        raise ValueError(msg)

    batches = read_ahead(source)
    assert next(iter(batches)) == 1
    assert reading.wait(DEADLINE)
    go_on.set()
    with caplog.at_level(logging.WARNING, logger="sync.cache.ahead"):
        assert batches.close() == []
    assert any("read-ahead failed" in r.getMessage() for r in caplog.records)


def test_replay_stopped_by_redis_down_leaves_no_intent_on_an_unattempted_lease(
    redis_control,
) -> None:
    # NOTE: plain bulk_create: only the triggers' intents, as after an outage.
    Part.objects.bulk_create(Part(sku=f"AHEAD-{n}", name="p", price=1) for n in range(4))
    redis_control.kill()
    try:
        cache_connection.breaker.reset()
        result = replay_pending(batch_size=1, include_not_due=True)
    finally:
        redis_control.start()
    cache_connection.breaker.reset()
    assert result.written == 0 and result.failed == result.claimed >= 1
    # Every intent either had its attempt counted (with its backoff) or was never claimed:
    # none waits out a lease that nobody used.
    intents = list(SyncIntent.objects.filter(model=LABEL))
    assert len(intents) == 4
    assert sum(1 for i in intents if i.attempts == 1) == result.failed
    assert all(i.attempts == 1 or i.claimed_at is None for i in intents)


def test_replay_and_warm_through_read_ahead_bring_every_row(redis_raw) -> None:
    parts = Part.objects.bulk_create(Part(sku=f"AHEAD-{n}", name="p", price=n) for n in range(7))
    result = replay_pending(batch_size=2, include_not_due=True)
    assert (result.claimed, result.written, result.batches) == (7, 7, 4)
    assert not SyncIntent.objects.exists()
    redis_raw.flushdb()
    store.forget_markers()  # emptied on purpose, before any writer's read
    (progress,) = warm_models([LABEL], batch_size=3)
    assert (progress.done, progress.written) == (7, 7)
    assert [cached_price(redis_raw, part.pk) for part in parts] == list(range(7))


def test_replay_stopped_by_an_error_leaves_the_batch_read_ahead_to_the_next_run(
    redis_raw,
) -> None:
    Part.objects.bulk_create(Part(sku=f"AHEAD-{n}", name="p", price=n) for n in range(3))

    def broken_progress(result) -> None:
        msg = "the caller's progress callback failed"
        raise RuntimeError(msg)

    with pytest.raises(RuntimeError, match="progress callback failed"):
        replay_pending(batch_size=1, include_not_due=True, progress=broken_progress)
    # The batch claimed ahead keeps its lease and is taken by the next run; nothing is lost.
    result = replay_pending(include_not_due=True)
    assert result.claimed == 2 and result.written == 2
    assert not SyncIntent.objects.exists()


def test_replay_whose_deletion_times_out_keeps_the_intents_for_the_next_run(
    redis_raw, monkeypatch, caplog
) -> None:
    parts = Part.objects.bulk_create(Part(sku=f"AHEAD-{n}", name="p", price=n) for n in range(2))
    locked, release = threading.Event(), threading.Event()

    def hold_intent_locks() -> None:
        with transaction.atomic():
            list(SyncIntent.objects.select_for_update().filter(model=LABEL))
            locked.set()
            release.wait(DEADLINE)
        connection.close()

    holder = threading.Thread(target=hold_intent_locks)
    original = events._sources[LABEL]

    def build(spec, state):  # runs after the cache write, before the intents are deleted
        if not locked.is_set():
            holder.start()
            locked.wait(DEADLINE)
        return original.build(spec, state)

    monkeypatch.setitem(events._sources, LABEL, events.EventSource(original.stream, build))
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '100ms'")
    try:
        with caplog.at_level(logging.WARNING, logger="sync.cache.replay"):
            result = replay_pending(include_not_due=True)
    finally:
        release.set()
        holder.join()
        connection.close()
    assert result.written == 2
    assert [cached_price(redis_raw, part.pk) for part in parts] == [0, 1]
    assert SyncIntent.objects.filter(model=LABEL).count() == 2
    assert any("intents not cleared" in r.getMessage() for r in caplog.records)
    monkeypatch.undo()
    replay_pending(include_not_due=True)  # the same versions again: a no-op, then cleared
    assert not SyncIntent.objects.exists()


def test_the_collector_runs_less_often_while_batches_go_by_and_is_put_back() -> None:
    before = gc.get_threshold()
    try:
        with fewer_collections():
            assert gc.get_threshold()[0] == max(before[0], GC_THRESHOLD)
            with fewer_collections():  # another replay or warm of the process, at once
                pass
            assert gc.get_threshold()[0] == max(before[0], GC_THRESHOLD)  # the first holds
        assert gc.get_threshold() == before
        with fewer_collections():
            gc.set_threshold(5_000, 20, 20)  # something else set its own meanwhile: kept
        assert gc.get_threshold() == (5_000, 20, 20)
    finally:
        gc.set_threshold(*before)
