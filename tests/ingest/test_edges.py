"""Edges of the pipeline: the lock lost for good, a database that stays away, a recovery that
fails, a batch whose failing row shares it with invalid ones, and the small helpers."""

from __future__ import annotations

import pytest
from django.db import connections

from buyers.models import Buyer
from devtools.sheets import buyer_rows
from sync.ingest import retry
from sync.ingest.exceptions import SourceConfigError
from sync.ingest.pipeline import LOCK_CLASS, SourceLock, run_ingest
from sync.ingest.schema import SchemaReport, column_limits
from sync.ingest.source_definitions import get_source
from sync.ingest.tasks import find_missing, ingest
from sync.ingest.validation import RowValidator, ValidRow
from sync.ingest.verification import compare_sample, verify_run
from sync.models import ErrorLog, RecordRetry, SyncAlert, SyncRun
from tests.ingest.test_faults import other_connection, terminate_own_backend


@pytest.mark.django_db(transaction=True)
def test_lock_taken_by_another_run_while_reconnecting_stops_the_run(buyers_sheet) -> None:
    buyers_sheet(count=30)
    thief = other_connection()

    def kill_and_steal(run: SyncRun) -> None:
        if run.rows_done == 10:
            terminate_own_backend()
            with thief.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s, hashtext('buyers'))", [LOCK_CLASS])

    try:
        run = run_ingest("buyers", batch_size=10, progress=kill_and_steal)
    finally:
        thief.close()
    assert run.status == "failed"
    assert "another run took the source lock" in run.message
    assert Buyer.objects.count() == 10
    SourceLock("buyers").release()  # not held here: nothing to do
    run_ingest("buyers")  # the thief's connection is closed: the lock is free again


@pytest.mark.django_db(transaction=True)
def test_recovery_that_cannot_bring_a_row_back_raises_an_alert(buyers_sheet, caplog) -> None:
    buyers_sheet(count=20)

    def keep_deleting(run: SyncRun) -> None:
        Buyer.objects.filter(buyer_number="B-00003").delete()

    run = run_ingest("buyers", batch_size=10, progress=keep_deleting)
    assert run.status == "partial"
    assert run.verification["recovery"] == {"attempted": 1, "recovered": 0}
    assert any("ALERT recovery_failed [buyers]" in r.getMessage() for r in caplog.records)
    assert any("ALERT gaps [buyers]" in r.getMessage() for r in caplog.records)
    alerts = SyncAlert.objects.filter(source="buyers")
    assert {a.alert_type for a in alerts} >= {"gaps", "recovery_failed"}
    assert all(a.count == 1 for a in alerts)  # the run's own alert and the rules agree


@pytest.mark.django_db(transaction=True)
def test_failing_row_beside_invalid_and_duplicate_rows(buyers_sheet, settings) -> None:
    settings.SYNC_INGEST_LOCK_TIMEOUT_MS = 100
    rows = list(buyer_rows(4, 0))
    buyers_sheet(rows)
    run_ingest("buyers")
    rows[0][8] = "changed"
    rows[1][1] = ""  # invalid
    rows.append(list(rows[2]))  # duplicate key: neither of its two rows is stored
    buyers_sheet(rows)
    holder = other_connection()
    holder.set_autocommit(False)
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT 1 FROM buyers WHERE buyer_number = 'B-00001' FOR UPDATE")
        run = run_ingest("buyers")
    finally:
        holder.rollback()
        holder.close()
    assert (run.failed, run.unchanged, run.rows_done) == (4, 1, 5)
    assert set(ErrorLog.objects.filter(run_id=run.pk).values_list("category", flat=True)) == {
        "database",
        "validation",
        "conflict",
    }
    assert RecordRetry.objects.get().natural_key == "B-00001"


@pytest.mark.django_db(transaction=True)
def test_tasks_report_a_refusal_and_missing_keys(buyers_sheet) -> None:
    buyers_sheet(count=3)
    holder = other_connection()
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, hashtext('buyers'))", [LOCK_CLASS])
        assert ingest("buyers")["status"] == "refused"
    finally:
        holder.close()
    assert find_missing("buyers") == ["B-00001", "B-00002", "B-00003"]


@pytest.mark.django_db
def test_small_helpers(buyers_sheet, tmp_path) -> None:
    buyers_sheet(count=2)
    run = run_ingest("buyers")
    assert str(run).startswith(f"run {run.pk} buyers")
    assert run.duration is not None
    assert SyncRun(source="x").duration is None
    error = ErrorLog(run_id=1, row_number=2, category="schema", reason="r")
    assert str(error) == "run 1 row 2 schema: r"
    entry = RecordRetry(source="buyers", natural_key="B-1", attempts=2, status="pending")
    assert str(entry) == "buyers:B-1 (pending, 2 attempts)"
    from sync.models import RecordLog

    assert str(RecordLog(run_id=1, row_number=2, natural_key="B-1", action="created")) == (
        "run 1 row 2 B-1 created"
    )
    assert retry.resolve(source="buyers", keys=[]) == 0
    assert retry.forget_missing(source="buyers", keys=["nope"]) == 0
    assert retry.due(source="buyers") == {}
    assert SchemaReport("buyers", []).fix_migration() == ""
    config = get_source("buyers")
    validator = RowValidator(config, column_limits(config), ["Buyer Number", "Name"])
    sample = [
        ValidRow(2, "B-77777", validator.parent and tuple([None] * len(validator.parent)), None)
    ]
    assert compare_sample(config, sample, validator)["mismatches"] == [
        {"key": "B-77777", "fields": ["(missing)"]}
    ]
    assert compare_sample(config, [], validator) == {"compared": 0, "mismatches": []}
    bare = get_source("buyers").__class__(
        name="b", model=config.model, natural_key="buyer_number", columns={"K": "buyer_number"}
    )
    no_rules = verify_run(bare, run.pk, [], validator, explained=set(), whole_sheet=False)
    assert no_rules["integrity"] == {}
    sheets = get_source("buyers").__class__(
        name="s",
        model=config.model,
        kind="sheets",
        location="sheet-id",
        natural_key="buyer_number",
        columns={"K": "buyer_number"},
    )
    assert sheets.resolve_location() == ("sheets", "sheet-id")
    version = get_source("buyers").__class__(
        name="v",
        model=config.model,
        natural_key="buyer_number",
        columns={"K": "buyer_number", "V": "version"},
    )
    with pytest.raises(SourceConfigError, match="cannot be fed from a sheet"):
        RowValidator(
            version,
            {
                "K": column_limits(config)["Buyer Number"],
                "V": column_limits(config)["Buyer Number"],
            },
            ["K", "V"],
        )
    assert connections["default"].vendor == "postgresql"


@pytest.mark.django_db
def test_a_source_that_feeds_only_the_key_inserts_then_leaves_rows_alone(
    buyers_sheet, settings
) -> None:
    from tests.ingest.conftest import add_source

    path = buyers_sheet([["B-00001"], ["B-00002"]], headers=["Buyer Number"], name="keys.csv")
    add_source(
        settings,
        f"""
[sources.keys]
target = "buyers.buyer"
natural_key = "buyer_number"
location = "{path}"
[sources.keys.columns]
"Buyer Number" = "buyer_number"
""",
    )
    assert get_source("keys").child_columns() == {}  # no child configured
    first = run_ingest("keys")
    assert (first.status, first.created) == ("succeeded", 2)
    assert Buyer.objects.get(buyer_number="B-00001").name == ""  # the column's default
    again = run_ingest("keys")
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)


@pytest.mark.django_db
def test_a_numeric_column_without_precision_keeps_every_decimal_place(buyers_sheet) -> None:
    from tests.ingest.conftest import alter_columns

    alter_columns("buyers", ["budget"], "numeric")
    rows = list(buyer_rows(2, 0))
    rows[0][7] = "1234.56789"
    buyers_sheet(rows)
    run = run_ingest("buyers")
    assert (run.status, run.created) == ("succeeded", 2)
    assert str(Buyer.objects.get(buyer_number="B-00001").budget) == "1234.56789"


@pytest.mark.django_db
def test_find_missing_counts_a_repeated_or_empty_key_once(buyers_sheet) -> None:
    rows = list(buyer_rows(3, 0))
    rows.append(list(rows[0]))  # the same key again
    rows.append(["", "no key"] + [""] * 10)
    buyers_sheet(rows)
    report = find_missing("buyers")
    assert report == ["B-00001", "B-00002", "B-00003"]


def test_schema_scan_counts_every_misfit_and_lists_the_first_thousand() -> None:
    from sync.ingest.schema import REPORT_ROWS, Column, scan_rows

    column = Column("Name", "buyers", "name", "character varying", 5, None, None)
    report = SchemaReport("buyers", [column])
    scan_rows(report, ["Name"], ((n, ["too long"]) for n in range(2, REPORT_ROWS + 12)))
    assert (report.misfit_count, report.rows_with_misfits) == (REPORT_ROWS + 10,) * 2
    assert len(report.misfits) == REPORT_ROWS
    assert report.longest == {"Name": 8}


def test_network_retries_without_a_listener(settings) -> None:
    from sync.ingest.sources import NetworkError, with_retries

    settings.SYNC_INGEST_NETWORK_BACKOFF = 0.001
    attempts = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 2:
            msg = "HTTP 503"
            raise NetworkError(msg)
        return "read"

    assert with_retries(flaky, what="a read") == "read"
    assert len(attempts) == 2


@pytest.mark.django_db
def test_dates_in_iso_shape_that_are_not_dates_are_reported() -> None:
    config = get_source("buyers")
    validator = RowValidator(config, _columns(), ["Buyer Number", "Name", "Inquiry Date"])
    for value, ok in (
        ("2024-02-30", False),
        ("2024-02-29", True),
        ("2024-2-9", True),
        ("29.02.2024", True),
        ("2024-13-01", False),
    ):
        row, issues = validator.validate(2, ["B-00001", "A", value])
        assert (row is not None) is ok, value
        if not ok:
            assert [(i.category, i.code) for i in issues] == [("validation", "not_a_date")]


def _columns():
    return column_limits(get_source("buyers"))
