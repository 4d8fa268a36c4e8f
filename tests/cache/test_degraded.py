"""I1 and I9 with real faults: a paused or killed Redis never blocks or fails a write, reads
fall back to PostgreSQL, and no read returns the value Redis held before the outage."""

from __future__ import annotations

import time

import pytest
from django.db import transaction

from catalog.models import Part
from sync.cache import connection, repository
from sync.cache.maintenance import verify_models
from sync.cache.replay import replay_pending
from sync.cache.writer import settle
from sync.models import SyncFence, SyncIntent
from tests.cache.conftest import cached_price
from tests.factories import make_part

pytestmark = pytest.mark.django_db(transaction=True)
LABEL = "catalog.part"


def test_paused_redis_write_commits_read_falls_back_replay_converges(
    redis_control, redis_raw, settings
) -> None:
    settings.SYNC_BREAKER_COOLDOWN = 600  # the breaker stays open for the whole outage
    part = make_part(price=1)
    assert repository.get(Part, part.pk).price == 1
    redis_control.pause()
    try:
        with transaction.atomic():
            obj = Part.objects.get(pk=part.pk)
            obj.price = 2
            obj.save()
        # The write committed; its write-through timed out once and opened the breaker.
        intent = SyncIntent.objects.get(object_pk=str(part.pk))
        assert intent.attempts == 1 and intent.epoch and "unavailable" in intent.last_error
        assert connection.breaker.state == connection.breaker.OPEN
        opened_at = connection.breaker._opened_at  # moves on every failed attempt
        # Reads answer from PostgreSQL without an error, and without asking the paused Redis.
        assert repository.get(Part, part.pk).price == 2
        # A second write while the breaker is open does not try Redis either: no timeout.
        Part.objects.filter(pk=part.pk).update(price=3)
        obj = Part.objects.get(pk=part.pk)
        obj.save()
        assert connection.breaker._opened_at == opened_at
        assert (
            "circuit breaker is open" in SyncIntent.objects.get(object_pk=str(part.pk)).last_error
        )
    finally:
        redis_control.resume()
    # Redis is back with an old value (price 1, or 2 if the timed-out write was still applied
    # when the server resumed): the fence keeps it from being served (I9)
    assert cached_price(redis_raw, part.pk) != 3
    connection.breaker.reset()
    assert repository.get(Part, part.pk).price == 3
    assert repository.get_many(Part, [part.pk])[part.pk].price == 3
    result = replay_pending(include_not_due=True)
    assert result.written == 1 and result.fence_advanced == 1
    settle()
    assert not SyncIntent.objects.exists()
    assert cached_price(redis_raw, part.pk) == 3
    assert repository.get(Part, part.pk).price == 3
    (report,) = verify_models([LABEL])
    assert report.ok and report.fraction == 1.0


def test_no_read_returns_the_pre_outage_value_before_or_after_replay(
    redis_control, redis_raw
) -> None:
    parts = [make_part(price=1) for _ in range(5)]
    for part in parts:
        repository.get(Part, part.pk)
    redis_control.pause()
    try:
        with transaction.atomic():
            for part in parts:
                part.price = 2
                part.save()
    finally:
        redis_control.resume()
    seen = []
    # many reads across breaker half-open/close transitions, with Redis holding price=1
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        seen.extend(obj.price for obj in repository.get_many(Part, [p.pk for p in parts]).values())
        seen.extend(repository.get(Part, p.pk).price for p in parts)
    replay_pending(include_not_due=True)
    seen.extend(repository.get(Part, p.pk).price for p in parts)
    assert set(seen) == {2}


def test_fence_opens_again_only_after_replay_drains(
    redis_control, settings, django_assert_num_queries
) -> None:
    from sync.cache.fence import fence

    part = make_part(price=1)
    redis_control.kill()
    try:
        part.price = 2
        part.save()
    finally:
        redis_control.start()
    assert SyncFence.objects.get(model=LABEL).epoch >= 1
    connection.breaker.reset()
    fence.invalidate()
    assert not fence.trusts(LABEL)
    replay_pending(include_not_due=True)
    settings.SYNC_FENCE_REFRESH = 60  # no periodic refresh query inside the assertion below
    fence.invalidate()
    assert fence.trusts(LABEL)
    with django_assert_num_queries(0):  # a real cache hit again
        assert repository.get(Part, part.pk).price == 2


def test_killed_and_restarted_redis_is_empty_then_warm_and_verify_show_all(redis_control) -> None:
    from io import StringIO

    from django.core.management import call_command

    for _ in range(50):
        make_part()
    redis_control.kill()
    redis_control.start()
    connection.reset_clients()
    out = StringIO()
    with pytest.raises(Exception, match="inconsistencies found"):
        call_command("sync_verify", LABEL, stdout=out)
    assert "missing 50" in out.getvalue()
    out = StringIO()
    call_command("sync_warm", LABEL, stdout=out)
    assert "warmed 50 rows" in out.getvalue()
    out = StringIO()
    call_command("sync_verify", LABEL, stdout=out)
    assert "100.000000% consistent" in out.getvalue()


def test_dead_after_max_attempts_logs_an_alert(redis_control, settings, caplog) -> None:
    settings.SYNC_REPLAY_MAX_ATTEMPTS = 2
    part = make_part()
    redis_control.kill()
    try:
        part.price = 5
        part.save()
        connection.breaker.reset()
        replay_pending(include_not_due=True)
    finally:
        redis_control.start()
    intent = SyncIntent.objects.get()
    assert intent.status == SyncIntent.Status.DEAD and intent.attempts == 2
    assert any("ALERT sync intent dead" in r.getMessage() for r in caplog.records)
