""" "Why is this row stale?": ``sync.cache.inspect.row_state`` and the two
places that show it, ``manage.py sync_inspect`` and every synced model's admin change page."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection as db

from catalog.models import Part
from sync.cache import rows, store
from sync.cache.inspect import row_state
from sync.cache.keys import cache_key
from sync.cache.replay import replay_pending
from sync.cache.writer import settle
from sync.console import formats
from sync.models import SyncIntent
from tests.console.conftest import make_staff_user
from tests.factories import make_part

pytestmark = pytest.mark.django_db(transaction=True)
LABEL = "catalog.part"


def inspect_text(*args: str) -> str:
    out = StringIO()
    call_command("sync_inspect", *args, stdout=out)
    return out.getvalue()


def test_a_row_changed_behind_the_engines_back_is_explained_until_replay(redis_raw) -> None:
    part = make_part(price=Decimal("1.00"))
    settle()
    part.refresh_from_db()
    first = row_state(Part, part.pk)
    assert first.verdict == "consistent: Redis holds PostgreSQL's version"
    assert [(w.kind, w.version) for w in first.writes] == [("write-through", part.version)]
    assert first.intents == []
    assert first.fence.model_trusted and first.fence.key_trusted
    assert part.version in {e.version for e in first.events}  # the catalog's change stream
    assert first.last_event_version == part.version

    with db.cursor() as cursor:  # raw SQL: the trigger leaves an intent, nothing writes Redis
        cursor.execute("UPDATE catalog_parts SET price = 2 WHERE id = %s", [part.pk])
    part.refresh_from_db()
    stale = row_state(Part, part.pk)
    assert stale.verdict == (
        f"STALE: Redis holds version {first.pg_version}, PostgreSQL {part.version}"
    )
    assert [i.version for i in stale.intents] == [part.version]
    text = inspect_text(LABEL, str(part.pk))
    assert f"verdict: STALE: Redis holds version {first.pg_version}" in text
    assert f"why: intent pending for version {part.version}" in text
    assert "0 attempt(s)" in text
    assert "last write-through: version" in text

    replay_pending(include_not_due=True)
    after = row_state(Part, part.pk)
    assert after.verdict.startswith("consistent")
    assert after.writes[0].kind == "replay"
    assert after.writes[0].version == part.version
    assert "last replay: version" in inspect_text(LABEL, str(part.pk))


def test_a_failed_write_shows_attempts_last_error_and_the_fence(redis_control) -> None:
    part = make_part(price=Decimal("1.00"))
    settle()
    redis_control.kill()
    Part.objects.filter(pk=part.pk).update(price=Decimal("3.00"))
    replay_pending(include_not_due=True)  # fails: Redis is down
    found = row_state(Part, part.pk)
    assert found.redis_error
    assert found.verdict.startswith("Redis cannot be read")
    (intent,) = found.intents
    assert intent.attempts == 1 and intent.epoch is not None and intent.last_error
    assert found.fence.epoch == intent.epoch and found.fence.drained is None
    assert not found.fence.model_trusted
    text = "\n".join(found.lines())
    assert "Redis: cannot be read" in text
    assert f"outage epoch {intent.epoch}; last error: " in text
    assert "reads of this key go to PostgreSQL now" in text
    assert "fence: epoch 1, drained unknown; this process does not trust" in text


def test_entries_that_disagree_are_named(redis_raw) -> None:
    part = make_part(price=Decimal("1.00"))
    settle()
    part.refresh_from_db()
    key = cache_key(LABEL, part.pk)

    redis_raw.hset(key, "p", b"not a payload")
    assert row_state(Part, part.pk).verdict.startswith("CORRUPT")

    redis_raw.hset(key, "v", part.version - 1)
    assert row_state(Part, part.pk).why() == [
        (
            "no intent is pending: nothing will repair it by itself; "
            "`manage.py sync_verify --repair` (or the admin's resync) will"
        )
    ]

    redis_raw.hset(key, "v", part.version + 5)
    assert row_state(Part, part.pk).verdict.startswith("Redis is ahead")

    redis_raw.delete(key)
    redis_raw.hset(key, "l", "a-reader")
    missing = row_state(Part, part.pk)
    assert missing.verdict == "not cached: Redis holds nothing; the next read fills it"
    assert "Redis: no entry (a fill lease is held)" in missing.lines()
    assert "last writes: none recorded on the key" in missing.lines()


def test_deleted_and_unknown_rows(redis_raw) -> None:
    part = make_part(price=Decimal("1.00"))
    settle()
    pk = part.pk
    redis_raw.delete(cache_key(LABEL, pk))
    part.delete()
    SyncIntent.objects.filter(model=LABEL).delete()
    gone = row_state(Part, pk)
    assert gone.verdict == "consistent: the row does not exist (or is deleted) in both"
    assert "PostgreSQL: no such row" in gone.lines()

    store.write_many([store.CacheWrite(cache_key(LABEL, pk), 10**12, b"[]", "", False, 60_000)])
    assert row_state(Part, pk).verdict.startswith("STALE: Redis holds version")

    store.write_many(
        [store.CacheWrite(cache_key(LABEL, pk), 10**12 + 1, b"", "", True, 60_000)],
        source=store.REPAIR,
    )
    tomb = row_state(Part, pk)
    assert tomb.redis_tombstone and tomb.verdict.startswith("consistent")
    assert tomb.writes[0].kind == "verification repair"
    assert any(line.startswith("Redis: version") and "(tombstone)" in line for line in tomb.lines())

    live = make_part()
    settle()
    redis_raw.hset(cache_key(LABEL, live.pk), "t", "1")
    assert row_state(Part, live.pk).verdict == (
        "not cached: Redis holds a tombstone; the next read fills it"
    )


def test_the_command_refuses_an_unknown_model_or_a_bad_pk() -> None:
    with pytest.raises(CommandError, match="not a synced model"):
        inspect_text("catalog.nothing", "1")
    with pytest.raises(CommandError, match=r"'abc' is not a primary key of catalog\.part"):
        inspect_text(LABEL, "abc")


def test_the_admin_change_page_shows_the_row_state(client) -> None:
    part = make_part(price=Decimal("1.00"))
    settle()
    client.force_login(
        make_staff_user("viewer"), backend="django.contrib.auth.backends.ModelBackend"
    )
    page = client.get(f"/admin/catalog/part/{part.pk}/change/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "Cache state — why is this row stale?" in body
    assert "verdict: consistent: Redis holds PostgreSQL&#x27;s version" in body
    assert client.get("/admin/catalog/part/").status_code == 200  # list: no inspection


def test_a_model_without_a_change_stream_and_an_entry_without_expiry(redis_raw) -> None:
    from django.utils import timezone

    from buyers.models import Buyer

    now = timezone.now()
    buyer = Buyer.objects.create(
        buyer_number="B-INSPECT", status="active", created_at=now, synced_at=now, db_updated_at=now
    )
    settle()
    redis_raw.persist(cache_key("buyers.buyer", buyer.pk))
    found = row_state(Buyer, buyer.pk)
    assert found.events == [] and found.last_event_version is None
    assert any("no expiry" in line for line in found.lines())
    assert found.verdict.startswith("consistent")


def test_a_row_warmed_after_a_flush_has_no_event_recorded(redis_raw) -> None:
    part = make_part()
    settle()
    redis_raw.flushall()
    call_command("sync_warm", "catalog.part", verbosity=0, stdout=StringIO())
    found = row_state(Part, part.pk)
    assert found.last_event_version is None
    assert [w.kind for w in found.writes] == ["warm"]


def test_a_console_resync_and_a_replay_by_hand_are_named_by_sync_inspect(redis_raw) -> None:
    """The console's Resync and its "Replay now" on an intent say who wrote, so an operator
    reading ``sync_inspect`` sees that a person's action (not the engine) wrote the key."""
    part = make_part(price=Decimal("1.00"))
    settle()
    part.refresh_from_db()
    redis_raw.delete(cache_key(LABEL, part.pk))
    rows.resync_rows(model=Part, pks=[part.pk])
    found = row_state(Part, part.pk)
    assert found.verdict == "consistent: Redis holds PostgreSQL's version"
    assert [(w.kind, w.version) for w in found.writes] == [("console resync", part.version)]
    assert any("console resync" in line for line in inspect_text(LABEL, str(part.pk)).splitlines())

    with db.cursor() as cursor:  # a change behind the engine's back, left as an intent
        cursor.execute("UPDATE catalog_parts SET price = 2 WHERE id = %s", [part.pk])
    intent = SyncIntent.objects.get(model=LABEL, object_pk=str(part.pk))
    rows.retry_intents(ids=[intent.pk])
    part.refresh_from_db()
    kinds = {w.kind: w.version for w in row_state(Part, part.pk).writes}
    assert kinds["replay"] == part.version
    assert kinds["console resync"] < part.version  # the earlier write, still recorded


def test_the_admin_page_shows_times_and_who_wrote_a_pending_intent_unredacted(client) -> None:
    """The page redacts its text (PII); a time such as "2026-12-06 23:55:13" read as a phone
    number there, so every time on the page was "[phone]". Times are ISO 8601; the pending
    intent names the request whose write opened it."""
    part = make_part(price=Decimal("1.00"))
    settle()
    with db.cursor() as cursor:  # behind the engine's back; no request: no id
        cursor.execute("UPDATE catalog_parts SET price = 2 WHERE id = %s", [part.pk])
    SyncIntent.objects.filter(model=LABEL, object_pk=str(part.pk)).update(request_id="req-77")
    client.force_login(
        make_staff_user("viewer"), backend="django.contrib.auth.backends.ModelBackend"
    )
    body = client.get(f"/admin/catalog/part/{part.pk}/change/").content.decode()
    assert "[phone]" not in body
    intent = SyncIntent.objects.get(model=LABEL, object_pk=str(part.pk))
    assert f"since {formats.when(intent.created_at)}" in body
    assert ", written by req-77" in body
