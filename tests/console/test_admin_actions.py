"""The console's actions, end to end on the real servers: resync writes Redis, verify reports
what Redis lacks, intents are replayed or discarded (after a confirmation), sheet rows are
re-read from their sheet, alerts are acknowledged; every one is audited with the IP."""

from __future__ import annotations

import pytest
from django.contrib import messages
from django.db import connections
from django.urls import reverse

from buyers.models import Buyer
from catalog.models import Part
from devtools.sheets import buyer_rows
from sync.cache import store
from sync.cache.declaration import spec_for
from sync.cache.keys import cache_key
from sync.cache.outbox import RowState
from sync.cache.rows import resync_rows, retry_intents, verify_rows
from sync.ingest.pipeline import LOCK_CLASS
from sync.models import RecordRetry, StaffAction, SyncAlert, SyncIntent, SyncRun
from tests import engine_fixtures
from tests.factories import make_part
from tests.ingest import conftest as ingest_fixtures

# The engine's shared fixtures (tests/engine_fixtures.py): fresh_engine_state is autouse.
fresh_engine_state = engine_fixtures.fresh_engine_state
redis_raw = engine_fixtures.redis_raw

pytestmark = pytest.mark.django_db

# The ingestion tests' sources file (autouse) and sheet builder, for the record retry queue.
_ingest_settings = ingest_fixtures._ingest_settings
buyers_sheet = ingest_fixtures.buyers_sheet


def run_action(client, model, action: str, pks, **extra):
    meta = model._meta
    url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
    return client.post(
        url, {"action": action, "_selected_action": [str(pk) for pk in pks], **extra}, follow=True
    )


def texts(response) -> list[tuple[int, str]]:
    return [(m.level, m.message) for m in response.context["messages"]]


def audited(action: str) -> list[StaffAction]:
    return list(StaffAction.objects.filter(action=action).order_by("id"))


def test_resync_writes_the_selected_rows_to_redis_and_is_audited(client_for, role_users, redis_raw):
    parts = [make_part(), make_part()]  # committed never: nothing reached Redis
    keys = [cache_key("catalog.part", p.pk) for p in parts]
    assert not any(redis_raw.exists(key) for key in keys)

    response = run_action(client_for("operator"), Part, "resync_to_cache", [parts[0].pk])
    assert texts(response) == [
        (
            messages.SUCCESS,
            ("Resynced 1 row(s) of catalog.part to the cache (1 cache entries written)."),
        )
    ]
    parts[0].refresh_from_db()
    assert int(redis_raw.hget(keys[0], "v")) == parts[0].version
    assert not redis_raw.exists(keys[1])
    (row,) = audited("cache.resync")
    assert (row.user, row.target, row.ip, row.details) == (
        role_users["operator"],
        "catalog.part",
        "127.0.0.1",
        {"rows": 1, "written": 1},
    )


def test_a_viewer_cannot_run_an_action(client_for, redis_raw):
    part = make_part()
    for role in ("viewer", "pii_viewer"):
        run_action(client_for(role), Part, "resync_to_cache", [part.pk])
    assert not redis_raw.exists(cache_key("catalog.part", part.pk))
    assert not StaffAction.objects.exists()


def test_verify_reports_missing_and_stale_rows_then_ok_after_a_resync(client_for):
    buyer_parts = [make_part(), make_part()]
    client = client_for("operator")
    response = run_action(client, Part, "verify_cache", [p.pk for p in buyer_parts])
    ((level, text),) = texts(response)
    assert level == messages.WARNING
    assert text.startswith(
        "Verified 2 row(s) of catalog.part against the cache: 0 consistent "
        "(0.00%), 2 missing, 0 stale. For example: "
    )
    assert cache_key("catalog.part", buyer_parts[0].pk) in text

    run_action(client, Part, "resync_to_cache", [p.pk for p in buyer_parts])
    Part.objects.filter(pk=buyer_parts[1].pk).update(price=99)  # a newer version in PostgreSQL
    ((level, text),) = texts(run_action(client, Part, "verify_cache", [buyer_parts[1].pk]))
    assert level == messages.WARNING and "0 missing, 1 stale" in text

    run_action(client, Part, "resync_to_cache", [buyer_parts[1].pk])
    ((level, text),) = texts(run_action(client, Part, "verify_cache", [p.pk for p in buyer_parts]))
    assert level == messages.SUCCESS and "2 consistent (100.00%)" in text
    assert [a.details for a in audited("cache.verify")] == [
        {"rows": 2, "missing": 2, "stale": 0},
        {"rows": 1, "missing": 0, "stale": 1},
        {"rows": 2, "missing": 0, "stale": 0},
    ]


def test_a_tombstone_at_the_rows_version_counts_as_stale(redis_raw):
    part = make_part()
    part.refresh_from_db()
    store.write_many(
        [
            RowState("catalog.part", str(part.pk), part.version, None).to_write(
                spec_for("catalog.part")
            )
        ]
    )
    report = verify_rows(model=Part, pks=[part.pk])
    assert (report.rows, report.stale) == (1, 1)


def test_rows_deleted_since_they_were_selected_are_skipped():
    assert resync_rows(model=Part, pks=[10**9]).rows == 0
    assert verify_rows(model=Part, pks=[10**9]).rows == 0


def test_cache_actions_report_a_dead_redis_and_write_nothing(client_for, redis_control):
    part = make_part()
    redis_control.kill()
    try:
        client = client_for("operator")
        for action in ("resync_to_cache", "verify_cache"):
            ((level, text),) = texts(run_action(client, Part, action, [part.pk]))
            assert level == messages.ERROR and "unavailable" in text
    finally:
        redis_control.start()
    assert [a.details["error"] for a in StaffAction.objects.order_by("id")] == [
        "CacheUnavailableError",
        "CacheUnavailableError",
    ]


def test_retry_now_replays_a_pending_intent_into_redis(client_for, redis_raw):
    part = make_part()
    intent = SyncIntent.objects.get(model="catalog.part", object_pk=str(part.pk))
    response = run_action(client_for("operator"), SyncIntent, "retry_now", [intent.pk])
    assert texts(response) == [
        (
            messages.SUCCESS,
            ("1 intent(s) replayed: 1 written to the cache, 0 failed (left with backoff)."),
        )
    ]
    part.refresh_from_db()
    assert int(redis_raw.hget(cache_key("catalog.part", part.pk), "v")) == part.version
    assert not SyncIntent.objects.filter(pk=intent.pk).exists()
    (row,) = audited("cache.intents.retry")
    assert row.details == {"ids": [intent.pk], "written": 1, "failed": 0}


def test_retry_now_writes_a_tombstone_for_a_deleted_row_and_revives_a_dead_intent(redis_raw):
    part = make_part()
    pk = part.pk
    part.delete()
    intent = SyncIntent.objects.get(model="catalog.part", object_pk=str(pk))
    intent.status = SyncIntent.Status.DEAD
    intent.save(update_fields=["status"])
    result = retry_intents(ids=[intent.pk])
    assert (result.claimed, result.written) == (1, 1)
    assert redis_raw.hget(cache_key("catalog.part", pk), "t") == b"1"
    assert not SyncIntent.objects.exists()


def test_retry_now_counts_unsynced_models_and_intents_gone_meanwhile():
    intent = SyncIntent.objects.create(
        model="gone.model",
        object_pk="1",
        version=1,
        op="u",
        next_attempt_at="2026-01-01T00:00:00Z",
        created_at="2026-01-01T00:00:00Z",
        updated_at="2026-01-01T00:00:00Z",
    )
    result = retry_intents(ids=[intent.pk, intent.pk + 10**6])
    assert (result.selected, result.claimed, result.written, result.failed) == (2, 1, 0, 1)
    assert "1 skipped, another replayer holds them" in str(result)
    intent.refresh_from_db()
    assert intent.status == SyncIntent.Status.DEAD


def test_retry_now_with_redis_down_leaves_the_intent_with_its_attempt(client_for, redis_control):
    part = make_part()
    intent = SyncIntent.objects.get(model="catalog.part", object_pk=str(part.pk))
    redis_control.kill()
    try:
        ((level, text),) = texts(
            run_action(client_for("operator"), SyncIntent, "retry_now", [intent.pk])
        )
    finally:
        redis_control.start()
    assert level == messages.WARNING and "0 written to the cache, 1 failed" in text
    intent.refresh_from_db()
    assert (intent.attempts, intent.epoch is not None) == (1, True)


def test_discarding_intents_asks_first_then_deletes_them(client_for):
    part = make_part()
    intent = SyncIntent.objects.get(model="catalog.part", object_pk=str(part.pk))
    client = client_for("operator")
    page = run_action(client, SyncIntent, "discard", [intent.pk])
    assert page.templates[0].name == "admin/sync/confirm_discard.html"
    html = page.content.decode()
    assert "Yes, discard them" in html and str(intent) in html
    assert SyncIntent.objects.filter(pk=intent.pk).exists()  # nothing yet

    response = run_action(client, SyncIntent, "discard", [intent.pk], post="yes")
    assert texts(response) == [(messages.SUCCESS, "1 intent(s) discarded.")]
    assert not SyncIntent.objects.filter(pk=intent.pk).exists()
    assert audited("cache.intents.discard")[0].details == {"ids": [intent.pk]}


def queue_row(source: str, key: str, location: str, **fields) -> RecordRetry:
    return RecordRetry.objects.create(
        source=source,
        natural_key=key,
        location=location,
        category="network",
        next_retry_at="2099-01-01T00:00:00Z",
        **fields,
    )


def test_retry_now_re_reads_sheet_rows_and_stores_them(client_for, buyers_sheet):
    path = str(buyers_sheet(list(buyer_rows(5, 0))))
    rows = [
        queue_row("buyers", "B-00002", path),
        queue_row("buyers", "B-00004", path, status="permanently_failed"),
    ]
    response = run_action(client_for("operator"), RecordRetry, "retry_now", [r.pk for r in rows])
    run = SyncRun.objects.get()
    assert run.trigger == SyncRun.Trigger.RETRY
    assert texts(response) == [
        (
            messages.SUCCESS,
            (f"Run {run.pk} (buyers): succeeded; 2 created, 0 updated, 0 unchanged, 0 failed."),
        )
    ]
    assert set(Buyer.objects.values_list("buyer_number", flat=True)) == {"B-00002", "B-00004"}
    assert not RecordRetry.objects.exists()
    assert audited("ingest.records.retry")[0].details["runs"] == [run.pk]


def test_retry_now_reports_a_partial_run_as_a_warning(client_for, buyers_sheet):
    rows = list(buyer_rows(3, 0))
    rows[1][1] = ""  # B-00002 loses its required name: still failing
    row = queue_row("buyers", "B-00002", str(buyers_sheet(rows)))
    ((level, text),) = texts(run_action(client_for("operator"), RecordRetry, "retry_now", [row.pk]))
    run = SyncRun.objects.get()
    assert run.status != SyncRun.Status.SUCCEEDED
    assert level == messages.WARNING and text.startswith(f"Run {run.pk} (buyers): ")


def test_retry_now_is_refused_while_the_source_runs(client_for, buyers_sheet):
    path = str(buyers_sheet(list(buyer_rows(3, 0))))
    row = queue_row("buyers", "B-00001", path)
    holder = connections.create_connection("default")
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, hashtext('buyers'))", [LOCK_CLASS])
        ((level, text),) = texts(
            run_action(client_for("operator"), RecordRetry, "retry_now", [row.pk])
        )
    finally:
        holder.close()
    assert level == messages.ERROR and "another sync of this source is running" in text
    assert RecordRetry.objects.filter(pk=row.pk).exists()
    assert audited("ingest.records.retry")[0].details["refused"] is True


def test_discarding_sheet_rows_asks_first(client_for):
    row = queue_row("buyers", "B-00001", "")
    client = client_for("operator")
    page = run_action(client, RecordRetry, "discard", [row.pk])
    assert "Yes, discard them" in page.content.decode()
    response = run_action(client, RecordRetry, "discard", [row.pk], post="yes")
    assert texts(response) == [(messages.SUCCESS, "1 row(s) discarded from the retry queue.")]
    assert not RecordRetry.objects.exists()
    assert audited("ingest.records.discard")[0].target == "1 row(s)"


def test_acknowledge_closes_open_alerts_and_audits_each(client_for, role_users):
    first = SyncAlert.objects.create(alert_type="gaps", source="buyers", message="3 missing")
    closed = SyncAlert.objects.create(
        alert_type="gaps", source="sellers", message="old", acknowledged_at="2026-01-01T00:00:00Z"
    )
    response = run_action(client_for("operator"), SyncAlert, "acknowledge", [first.pk, closed.pk])
    assert texts(response) == [(messages.SUCCESS, "1 alert(s) acknowledged.")]
    first.refresh_from_db()
    assert first.acknowledged_by == role_users["operator"]
    (row,) = audited("alert.acknowledge")
    assert (row.target, row.details, row.ip) == (
        f"alert {first.pk}",
        {"alert_type": "gaps", "source": "buyers"},
        "127.0.0.1",
    )
    page = client_for("viewer").get(reverse("admin:sync_syncalert_changelist")).content
    assert b"acknowledged by operator-user" in page
