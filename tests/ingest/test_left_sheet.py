"""Rows that left the sheet (docs/ingestion.md): a row of the database that the sheet no
longer has is reported by every whole-sheet run with its key, kept and flagged by default,
soft-deleted through the engine (a tombstone in Redis) where the source says so and the
target can be; dry runs and runs of some keys report nothing; the missing-rows commands
print them."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.core.management import call_command

from buyers.models import Buyer
from catalog import services
from catalog.models import Part
from devtools.sheets import buyer_rows
from sync.cache import repository
from sync.cache.keys import cache_key
from sync.ingest import left_sheet
from sync.ingest.exceptions import SourceConfigError
from sync.ingest.pipeline import run_ingest
from sync.ingest.source_checks import source_find_missing
from sync.ingest.source_definitions import get_source, load_sources
from sync.ingest.verification import verify_run
from sync.models import ErrorLog, RecordLog, SyncRun
from tests import engine_fixtures
from tests.ingest.conftest import add_source, set_source_key
from tests.ingest.test_silent_changes import get_source_text

fresh_engine_state = engine_fixtures.fresh_engine_state
redis_raw = engine_fixtures.redis_raw


def _flags(run: SyncRun) -> list[str]:
    return sorted(
        ErrorLog.objects.filter(run_id=run.pk, code="left_sheet").values_list(
            "natural_key", flat=True
        )
    )


@pytest.mark.django_db
def test_a_buyer_removed_from_the_sheet_is_reported_kept_and_flagged(buyers_sheet) -> None:
    rows = list(buyer_rows(20, 0))
    buyers_sheet(rows)
    first = run_ingest("buyers")
    assert first.verification["left_sheet"] == {"count": 0, "action": "flagged", "keys": []}
    before = {b.buyer_number: (b.version, b.name) for b in Buyer.objects.all()}

    buyers_sheet([r for i, r in enumerate(rows) if i not in (2, 6)])  # B-00003, B-00007 go
    second = run_ingest("buyers")
    assert second.status == "succeeded", second.message  # flagged, not failed
    assert second.verification["left_sheet"] == {
        "count": 2,
        "action": "flagged",
        "keys": ["B-00003", "B-00007"],
        "newly_flagged": 2,
    }
    assert second.verification["sheet_count"] == 18
    # Kept exactly as they were.
    assert {b.buyer_number: (b.version, b.name) for b in Buyer.objects.all()} == before
    assert _flags(second) == ["B-00003", "B-00007"]
    error = ErrorLog.objects.get(run_id=second.pk, natural_key="B-00003")
    assert (error.category, error.row_number) == ("source", None)
    assert "no longer in the sheet" in error.reason and "kept" in error.reason

    # The next run still reports them; their error rows are not written again.
    third = run_ingest("buyers")
    assert third.verification["left_sheet"]["count"] == 2
    assert third.verification["left_sheet"]["newly_flagged"] == 0
    assert _flags(third) == []

    buyers_sheet([r for i, r in enumerate(rows) if i != 6])  # B-00003 is back
    fourth = run_ingest("buyers")
    assert fourth.verification["left_sheet"]["keys"] == ["B-00007"]
    assert left_sheet.message(fourth.verification) == (
        "; 1 row(s) left the sheet: kept and flagged"
    )


@pytest.mark.django_db
def test_many_rows_gone_list_the_first_keys_and_count_the_rest(buyers_sheet) -> None:
    rows = list(buyer_rows(60, 0))
    buyers_sheet(rows)
    run_ingest("buyers")
    buyers_sheet(rows[:5])
    run = run_ingest("buyers")
    left = run.verification["left_sheet"]
    assert left["count"] == 55
    assert left["keys"] == [f"B-{n:05d}" for n in range(6, 56)]
    assert left["keys_not_listed"] == 5
    assert len(_flags(run)) == 55  # every key is flagged, only the listing is cut


@pytest.mark.django_db
def test_a_dry_run_and_a_run_of_some_keys_report_nothing(buyers_sheet) -> None:
    rows = list(buyer_rows(10, 0))
    buyers_sheet(rows)
    run_ingest("buyers")
    Buyer.objects.filter(buyer_number__in=["B-00001", "B-00002"]).delete()  # two gaps
    buyers_sheet(rows[:7])  # B-00008..10 left the sheet

    versions = dict(Buyer.objects.values_list("buyer_number", "version"))
    dry = run_ingest("buyers", dry_run=True)
    # A preview reports what its real run would do, with the same error rows; no row changes.
    result = dry.verification["left_sheet"]
    assert result == {
        "count": 3,
        "action": "would be flagged",
        "newly_flagged": 3,
        "keys": ["B-00008", "B-00009", "B-00010"],
    }
    assert dry.message.endswith("; 3 row(s) left the sheet: would be kept and flagged")
    # Idempotent: asked again, the same rows, no new error row.
    assert left_sheet.after_run(get_source("buyers"), dry.pk) == {**result, "newly_flagged": 0}
    assert left_sheet.message({"left_sheet": result}) == (
        "; 3 row(s) left the sheet: would be kept and flagged"
    )
    assert _flags(dry) == ["B-00008", "B-00009", "B-00010"]
    assert dict(Buyer.objects.values_list("buyer_number", "version")) == versions
    ErrorLog.objects.filter(run_id=dry.pk).delete()

    out = StringIO()
    call_command("sync_missing", "buyers", stdout=out)
    run = SyncRun.objects.get(trigger=SyncRun.Trigger.MISSING)
    assert run.status == "succeeded" and run.created == 2
    # It read two keys of the sheet: the rest of the table did not leave it.
    assert "left_sheet" not in run.verification
    assert not ErrorLog.objects.filter(code="left_sheet").exists()
    assert "buyers: left the sheet 3 (B-00008, B-00009, B-00010)" in out.getvalue()
    assert Buyer.objects.count() == 10
    # The pipeline may say so itself (a run of some keys, whatever its trigger).
    whole = run_ingest("buyers")
    assert whole.verification["left_sheet"]["count"] == 3
    assert whole.verification["left_sheet"]["newly_flagged"] == 3  # a preview flags nothing
    assert "left_sheet" not in verify_run(
        get_source("buyers"), whole.pk, [], None, explained=set(), whole_sheet=False
    )


@pytest.mark.django_db
def test_sync_find_missing_prints_the_rows_that_left_the_sheet(buyers_sheet) -> None:
    rows = list(buyer_rows(14, 0))
    buyers_sheet(rows)
    run_ingest("buyers")
    buyers_sheet(rows[1:])  # B-00001 left
    out = StringIO()
    call_command("sync_find_missing", "buyers", stdout=out)
    lines = out.getvalue().splitlines()
    assert "B-00001\tnot in the sheet" in lines
    assert lines[-2].startswith(
        "buyers: left the sheet 1 (B-00001): row(s) in the database that the sheet no longer has"
    )
    assert lines[-1].startswith(
        "buyers: sheet 13 keys (13 rows), 13 of them in the database, missing 0"
    )
    buyers_sheet(rows[12:])  # 12 gone: the summary line names ten
    report = source_find_missing("buyers")
    assert report.left.count == 12 and len(report.left.keys) == 12
    out = StringIO()
    call_command("sync_find_missing", "buyers", stdout=out)
    assert "B-00009, B-00010 and 2 more): row(s)" in out.getvalue()
    out = StringIO()
    call_command("sync_find_missing", "buyers", stdout=out, verbosity=0)
    assert "left the sheet" not in out.getvalue()  # only the summary line


@pytest.mark.django_db
def test_rows_of_another_source_on_the_same_table_never_left_this_sheet(
    buyers_sheet, settings, tmp_path
) -> None:
    add_source(settings, get_source_text("buyers_east", tmp_path / "east.csv"))
    rows = list(buyer_rows(8, 0))
    buyers_sheet(rows[:5])
    # buyers_east never ran: its rows cannot be told from those that left, so no check.
    first = run_ingest("buyers")
    assert first.verification["left_sheet"]["action"] == "not checked"
    assert "'buyers_east' feeds buyers.buyer too" in first.verification["left_sheet"]["reason"]
    out = StringIO()
    call_command("sync_find_missing", "buyers", stdout=out)
    assert "buyers: rows that left the sheet not checked: source 'buyers_east'" in (out.getvalue())

    buyers_sheet(rows[5:], name="east.csv")
    east = run_ingest("buyers_east")
    assert east.verification["left_sheet"]["count"] == 0  # buyers' five are buyers'
    buyers_sheet(rows[:4])  # B-00005 left the buyers sheet
    again = run_ingest("buyers")
    assert again.verification["left_sheet"]["keys"] == ["B-00005"]  # east's three are east's
    assert source_find_missing("buyers").left.keys == ["B-00005"]
    # A row no sheet has cannot be told to be one source's: each one feeding the table says so.
    assert source_find_missing("buyers_east").left.keys == ["B-00005"]


@pytest.mark.django_db
def test_soft_delete_is_refused_for_a_target_without_soft_delete(settings, buyers_sheet) -> None:
    set_source_key(settings, "buyers", 'left_sheet = "soft_delete"')
    with pytest.raises(
        SourceConfigError,
        match=(
            r"source 'buyers' .*left_sheet = \"soft_delete\" is not valid: buyers.buyer has "
            "no soft delete"
        ),
    ):
        get_source("buyers")
    errors = [m for m in run_checks() if m.id == "sync.E101"]
    assert len(errors) == 1 and "left_sheet" in errors[0].msg and "'buyers'" in errors[0].msg
    buyers_sheet(count=3)
    with pytest.raises(SourceConfigError):
        run_ingest("buyers")
    assert not Buyer.objects.exists()

    path = Path(settings.SYNC_INGEST_SOURCES_FILE)
    path.write_text(path.read_text().replace('left_sheet = "soft_delete"\n', ""))
    set_source_key(settings, "sellers", 'left_sheet = "delete"')
    with pytest.raises(
        SourceConfigError,
        match=r"source 'sellers' .*left_sheet = 'delete' is "
        r"not valid: left_sheet must be \"flag\"",
    ):
        load_sources()


PARTS = """[sources.{name}]
target = "catalog.part"
natural_key = "sku"
location = "parts.csv"
left_sheet = "soft_delete"
[sources.{name}.columns]
"SKU" = "sku"
"Name" = "name"
"""


def _part(sku: str) -> Part:
    return services.part_create(
        sku=sku,
        name=f"Part {sku}",
        price=Decimal("1.50"),
        description="",
        specifications={},
        images=[],
        quantity=1,
        reserved=0,
    )


def _sheet_run(source: str, keys: list[tuple[str, str]], *, dry_run: bool = False) -> SyncRun:
    """A finished whole-sheet run whose sheet held ``keys`` ((key, action) pairs)."""
    run = SyncRun.objects.create(
        source=source, target="catalog.part", status="succeeded", dry_run=dry_run
    )
    RecordLog.objects.bulk_create(
        RecordLog(run_id=run.pk, row_number=n, natural_key=key, action=action)
        for n, (key, action) in enumerate(keys, start=2)
    )
    return run


@pytest.mark.django_db(transaction=True)
def test_soft_delete_tombstones_a_row_that_left_the_sheet(settings, redis_raw) -> None:
    """No source the project ships has a soft-deletable target (their tables have no
    deleted_at), so the parts catalog stands in: its ``@synced`` declares ``deleted_at``."""
    add_source(settings, PARTS.format(name="parts"))
    config = get_source("parts")
    kept, gone = _part("P-1"), _part("P-2")
    assert repository.get(Part, gone.pk) is not None
    preview = _sheet_run("parts", [("P-1", "unchanged")], dry_run=True)
    assert left_sheet.after_run(config, preview.pk) == {
        "count": 1,
        "action": "would be soft-deleted",
        "keys": ["P-2"],
    }
    assert _flags(preview) == ["P-2"]  # the error row the real run writes
    assert left_sheet.message({"left_sheet": {"count": 1, "action": "would be soft-deleted"}}) == (
        "; 1 row(s) left the sheet: would be soft-deleted"
    )
    gone.refresh_from_db()
    assert gone.deleted_at is None and repository.get(Part, gone.pk) is not None
    # A run with a failed row (its key may be misread: a line cut short) deletes nothing.
    held = _sheet_run("parts", [("P-1", "unchanged"), ("Part P-2", "failed")])
    result = left_sheet.after_run(config, held.pk)
    assert (result["count"], result["action"], result["keys"]) == (1, "flagged", ["P-2"])
    assert "1 row(s) of the sheet failed" in result["soft_delete_held"]
    gone.refresh_from_db()
    assert gone.deleted_at is None
    assert _flags(held) == ["P-2"]

    run = _sheet_run("parts", [("P-1", "unchanged")])
    result = left_sheet.after_run(config, run.pk)
    assert result == {"count": 1, "action": "soft_deleted", "keys": ["P-2"]}
    gone.refresh_from_db()
    assert gone.deleted_at is not None and Part.objects.filter(pk=gone.pk).exists()
    assert repository.get(Part, gone.pk) is None  # the tombstone
    assert redis_raw.hget(cache_key("catalog.part", gone.pk), "t") == b"1"
    kept.refresh_from_db()
    assert kept.deleted_at is None
    error = ErrorLog.objects.get(run_id=run.pk)
    assert (error.code, error.natural_key) == ("left_sheet", "P-2")
    assert "soft-deleted" in error.reason
    assert left_sheet.message({"left_sheet": result}) == "; 1 row(s) left the sheet: soft-deleted"
    assert left_sheet.after_run(config, run.pk)["count"] == 0  # verification twice: idempotent

    # A preview of its return: would be restored, is not.
    preview = _sheet_run("parts", [("P-1", "unchanged"), ("P-2", "unchanged")], dry_run=True)
    result = left_sheet.after_run(config, preview.pk)
    assert result["restored"] == {"count": 1, "keys": ["P-2"]}
    gone.refresh_from_db()
    assert gone.deleted_at is not None

    # Back in the sheet and stored again: restored, live in Redis.
    back = _sheet_run("parts", [("P-1", "unchanged"), ("P-2", "unchanged")])
    result = left_sheet.after_run(config, back.pk)
    assert result == {
        "count": 0,
        "action": "soft_deleted",
        "keys": [],
        "restored": {"count": 1, "keys": ["P-2"]},
    }
    gone.refresh_from_db()
    assert gone.deleted_at is None
    assert repository.get(Part, gone.pk).sku == "P-2"


@pytest.mark.django_db
def test_soft_delete_is_refused_for_a_target_several_sources_feed(settings) -> None:
    add_source(settings, PARTS.format(name="parts"))
    add_source(settings, PARTS.format(name="parts_b").replace('left_sheet = "soft_delete"\n', ""))
    with pytest.raises(
        SourceConfigError,
        match=(
            r"source 'parts' .*left_sheet = \"soft_delete\" is not valid: catalog.part is fed "
            "by 'parts_b' too"
        ),
    ):
        load_sources()


def test_the_message_is_empty_when_no_row_left() -> None:
    assert left_sheet.message({}) == ""
    assert left_sheet.message({"left_sheet": {"action": "not checked", "reason": "x"}}) == ""
