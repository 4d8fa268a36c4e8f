"""The engine's row-level operations for an operator (sync/cache/rows.py), on the real servers:
verifying selected rows judges them as verification does, and retrying intents by id claims
them as replay claims (the same lease, SKIP LOCKED)."""

from __future__ import annotations

import datetime

import pytest
from django.db import connections
from django.utils import timezone

from catalog.models import Part
from sync.cache import outbox
from sync.cache.keys import cache_key
from sync.cache.maintenance import verify_models
from sync.cache.rows import current_states, resync_rows, retry_intents, verify_rows
from sync.models import SyncIntent
from tests.factories import make_part

LABEL = "catalog.part"


@pytest.mark.django_db
def test_a_soft_deleted_row_is_judged_as_verification_judges_it(redis_raw) -> None:
    part = make_part()
    Part.objects.filter(pk=part.pk).update(deleted_at=timezone.now())
    (state,) = current_states(Part, [part.pk])  # a soft-deleted row is still a row
    assert state.values is not None

    assert resync_rows(model=Part, pks=[part.pk]).rows == 1
    assert redis_raw.hget(cache_key(LABEL, part.pk), "t") == b"1"  # its tombstone
    report = verify_rows(model=Part, pks=[part.pk])
    assert (report.rows, report.consistent, report.stale) == (1, 1, 0)
    (everything,) = verify_models([LABEL])
    assert (everything.consistent, everything.stale) == (1, 0)

    redis_raw.hset(cache_key(LABEL, part.pk), "t", "0")  # live at the same version: wrong
    report = verify_rows(model=Part, pks=[part.pk])
    assert (report.consistent, report.stale) == (0, 1)
    assert report.examples["stale"] == [cache_key(LABEL, part.pk)]
    (everything,) = verify_models([LABEL])
    assert (everything.consistent, everything.stale) == (0, 1)


@pytest.mark.django_db
def test_intents_claimed_by_id_are_leased_as_replay_leases_them() -> None:
    part = make_part()
    intent = SyncIntent.objects.get(model=LABEL, object_pk=str(part.pk))
    since = outbox.database_now()
    claimed = outbox.claim_ids([intent.pk, intent.pk + 10**6])
    assert claimed == [outbox.Claimed(LABEL, str(part.pk), intent.version)]
    intent.refresh_from_db()
    assert intent.claimed_at >= since
    assert intent.next_attempt_at > timezone.now() + datetime.timedelta(seconds=20)
    # A replay run that started before this claim does not take the intent again.
    assert outbox.claim(10, since=since, include_not_due=True) == []


@pytest.mark.django_db(transaction=True)
def test_retrying_an_intent_a_replayer_holds_skips_it() -> None:
    part = make_part()
    intent = SyncIntent.objects.get(model=LABEL, object_pk=str(part.pk))
    replayer = connections.create_connection("default")
    try:
        with replayer.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("SELECT id FROM sync_retry_queue WHERE id = %s FOR UPDATE", [intent.pk])
            result = retry_intents(ids=[intent.pk])
            cursor.execute("ROLLBACK")
    finally:
        replayer.close()
    assert (result.selected, result.claimed, result.written) == (1, 0, 0)
    assert str(result) == (
        "0 intent(s) replayed: 0 written to the cache, 0 failed (left with backoff); "
        "1 skipped, another replayer holds them."
    )
    assert SyncIntent.objects.filter(pk=intent.pk, claimed_at=None).exists()  # untouched
