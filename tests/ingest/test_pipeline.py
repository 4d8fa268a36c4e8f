"""A run's guarantees: idempotent upserts on the natural key (I7), bad rows reported and never
stopping the others (I8), sellers valid only with their property, dry runs that write
nothing, and write-through of what a run stored."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.db import connection

from buyers.models import Buyer
from devtools.sheets import SELLER_HEADERS, buyer_rows, seller_rows
from sellers.models import Property, Seller
from sync.ingest.pipeline import categorize, run_ingest
from sync.models import ErrorLog, RecordLog, SyncIntent, SyncRun

pytestmark = pytest.mark.django_db


def test_same_sheet_twice_changes_nothing_and_an_edit_keeps_created_at(buyers_sheet) -> None:
    rows = list(buyer_rows(30, 0))
    buyers_sheet(rows)
    first = run_ingest("buyers")
    assert (first.status, first.created, first.updated, first.unchanged) == ("succeeded", 30, 0, 0)
    before = {
        b.buyer_number: (b.created_at, b.version, b.db_updated_at) for b in Buyer.objects.all()
    }

    second = run_ingest("buyers")
    assert (second.created, second.updated, second.unchanged, second.failed) == (0, 0, 30, 0)
    assert {
        b.buyer_number: (b.created_at, b.version, b.db_updated_at) for b in Buyer.objects.all()
    } == before

    rows[4][8] = "closed after edit"  # Status of B-00005
    rows[7][7] = "99000000"  # Budget of B-00008
    buyers_sheet(rows)
    third = run_ingest("buyers")
    assert (third.created, third.updated, third.unchanged) == (0, 2, 28)
    edited = Buyer.objects.get(buyer_number="B-00005")
    assert edited.status == "closed after edit"
    assert edited.created_at == before["B-00005"][0]
    assert edited.version > before["B-00005"][1]
    assert edited.synced_at >= edited.created_at
    assert Buyer.objects.get(buyer_number="B-00008").budget == Decimal("99000000")
    actions = dict(
        RecordLog.objects.filter(
            run_id=third.pk, natural_key__in=["B-00005", "B-00001"]
        ).values_list("natural_key", "action")
    )
    assert actions == {"B-00005": "updated", "B-00001": "unchanged"}


def test_bad_rows_are_reported_with_row_and_column_and_never_stop_the_others(buyers_sheet) -> None:
    rows = list(buyer_rows(8, 0))
    rows[0][0] = "not-a-key"  # row 2: pattern
    rows[1][1] = ""  # row 3: required name
    rows[2][7] = "lots"  # row 4: budget not a number
    rows[3][10] = "31/02/2024"  # row 5: not a date
    rows[4][7] = "1.005"  # row 6: would be rounded by numeric(14,2)
    rows[5][7] = "1e20"  # row 7: out of range
    rows[6][11] = "nul \x00 inside"  # row 8: PostgreSQL text cannot hold NUL
    rows.append(list(rows[7]))  # row 10 repeats row 9's key: neither row is stored
    rows[8][8] = "the later one"
    buyers_sheet(rows)
    run = run_ingest("buyers")
    assert (run.status, run.created, run.failed) == ("partial", 0, 9)
    found = set(
        ErrorLog.objects.filter(run_id=run.pk).values_list(
            "row_number", "category", "code", "column"
        )
    )
    assert found == {
        (2, "validation", "pattern", "Buyer Number"),
        (3, "validation", "required", "Name"),
        (4, "validation", "not_a_number", "Budget"),
        (5, "validation", "not_a_date", "Inquiry Date"),
        (6, "schema", "precision", "Budget"),
        (7, "schema", "out_of_range", "Budget"),
        (8, "validation", "nul", "Notes"),
        (9, "conflict", "duplicate_key", "Buyer Number"),
        (10, "conflict", "duplicate_key", "Buyer Number"),
    }
    assert not Buyer.objects.exists()
    pii = ErrorLog.objects.get(run_id=run.pk, row_number=2)
    assert pii.natural_key == "not-a-key"
    assert run.errors_by_category == {"validation": 5, "schema": 2, "conflict": 2}
    assert RecordLog.objects.filter(run_id=run.pk, action="failed").count() == 9
    assert run.verification["gaps"] == 8  # every failed key is a gap, each with its reason
    assert run.verification["unexplained_gaps"] == []


def test_sellers_need_their_property_and_get_it(sellers_sheet) -> None:
    rows = list(seller_rows(5))
    rows[2][8] = ""  # no property type: not a valid seller
    sellers_sheet(rows)
    run = run_ingest("sellers")
    assert (run.created, run.failed) == (4, 1)
    assert Property.objects.count() == 4
    seller = Seller.objects.get(seller_number=rows[0][0])
    prop = seller.properties.get()
    assert (prop.property_type, prop.land_area) == (rows[0][8], Decimal(rows[0][10]))
    assert seller.contract_date == datetime.date.fromisoformat(rows[0][6])
    assert run.verification["integrity"] == {}

    rows[1][12] = "123000000"  # only the property changed
    sellers_sheet(rows)
    again = run_ingest("sellers")
    assert (again.created, again.updated, again.unchanged) == (0, 1, 3)
    assert Property.objects.get(seller__seller_number=rows[1][0]).asking_price == 123000000

    # A seller whose property vanished is an integrity issue, and re-syncing restores it.
    Property.objects.filter(seller__seller_number=rows[0][0]).delete()
    third = run_ingest("sellers")
    assert third.updated == 1
    assert third.verification["integrity"] == {}
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM properties WHERE seller_id = %s", [seller.pk])
    from sync.ingest.schema import column_limits
    from sync.ingest.source_definitions import get_source
    from sync.ingest.validation import RowValidator
    from sync.ingest.verification import verify_run

    config = get_source("sellers")
    validator = RowValidator(config, column_limits(config), SELLER_HEADERS)
    report = verify_run(config, third.pk, [], validator, explained=set(), whole_sheet=False)
    assert report["integrity"] == {"no property": 1}


def test_verification_reports_the_same_by_either_join_and_leaves_the_planner_as_it_was(
    buyers_sheet, monkeypatch
) -> None:
    """verify_run joins the run's keys with the target by a hash join when the run is a good
    share of the table, by index probes otherwise: the same report either way (gaps, counts,
    integrity), and the session's planner settings as they were (here: a test's transaction
    goes on after it)."""
    from devtools.sheets import BUYER_HEADERS
    from sync.ingest import verification
    from sync.ingest.schema import column_limits
    from sync.ingest.source_definitions import get_source
    from sync.ingest.validation import RowValidator

    buyers_sheet(count=40)
    run = run_ingest("buyers")
    Buyer.objects.filter(buyer_number__in=["B-00003", "B-00031"]).delete()
    Buyer.objects.filter(buyer_number="B-00007").update(name="")
    config = get_source("buyers")
    validator = RowValidator(config, column_limits(config), BUYER_HEADERS)
    reports = []
    for share in (10**9, -1):  # hashed whatever the table's size; probes whatever the run's
        monkeypatch.setattr(verification, "HASHED_SHARE", share)
        reports.append(
            verification.verify_run(
                config, run.pk, [], validator, explained=set(), whole_sheet=False
            )
        )
        with connection.cursor() as cursor:
            cursor.execute("SHOW enable_nestloop")
            assert cursor.fetchone()[0] == "on"
    assert reports[0] == reports[1]
    assert (reports[0]["gaps"], reports[0]["gap_keys"]) == (2, ["B-00003", "B-00031"])
    assert reports[0]["integrity"] == {"empty name": 1}


def test_dry_run_reports_what_would_change_and_writes_nothing(buyers_sheet) -> None:
    buyers_sheet(count=12)
    run = run_ingest("buyers", dry_run=True)
    assert (run.status, run.created, run.dry_run) == ("succeeded", 12, True)
    assert Buyer.objects.count() == 0
    assert not SyncIntent.objects.exists()
    assert run.verification == {
        "left_sheet": {"action": "would be flagged", "count": 0, "keys": []}
    }


def test_a_spool_that_cannot_be_written_fails_the_run_saying_so(
    buyers_sheet, tmp_path, monkeypatch
) -> None:
    """A workbook is spooled to a temporary file; when that cannot be created (here: the
    temporary directory is gone, as a disk full or a removed mount would), the run fails with
    the reason and an error row, instead of staying "running" until it is abandoned."""
    import tempfile

    path = buyers_sheet(list(buyer_rows(5, 1)), name="buyers.xlsx")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))
    run = run_ingest("buyers", file=str(path))
    assert run.status == "failed" and run.finished_at is not None
    assert "could not be read or spooled" in run.message and "No such file" in run.message
    error = ErrorLog.objects.get(run_id=run.pk)
    assert (error.category, error.code, error.retryable) == ("source", "unreadable", False)
    assert Buyer.objects.count() == 0


def test_xlsx_file_loads_like_the_csv(buyers_sheet) -> None:
    rows = list(buyer_rows(15, 3))
    path = buyers_sheet(rows, name="buyers.xlsx")
    run = run_ingest("buyers", file=str(path))
    assert (run.status, run.created) == ("succeeded", 15)
    longest = max((r for r in rows), key=lambda r: max(len(v) for v in r))
    stored = Buyer.objects.get(buyer_number=longest[0])
    assert (
        max(
            len(stored.notes),
            len(stored.address),
            len(stored.name),
            len(stored.email),
            len(stored.desired_area),
            len(stored.inquiry_source),
        )
        > 50
    )


def test_auto_recovery_resyncs_a_row_lost_during_the_run(buyers_sheet) -> None:
    buyers_sheet(count=30)
    lost = []

    def lose_a_row(run: SyncRun) -> None:
        if run.rows_done == 10 and not lost:
            lost.append(Buyer.objects.filter(buyer_number="B-00003").delete())

    run = run_ingest("buyers", batch_size=10, progress=lose_a_row)
    assert lost
    assert run.verification["recovery"] == {"attempted": 1, "recovered": 1}
    assert (run.gaps, run.status) == (0, "succeeded")
    assert Buyer.objects.filter(buyer_number="B-00003").exists()


def test_errors_from_the_database_are_categorised() -> None:
    from django.db import DataError, IntegrityError, OperationalError

    class CauseError(Exception):
        def __init__(self, sqlstate: str) -> None:
            self.sqlstate = sqlstate

    def error(cls, state: str):
        e = cls("x")
        e.__cause__ = CauseError(state)
        return e

    assert categorize(error(OperationalError, "55P03")) == ("database", True)
    assert categorize(error(DataError, "22001")) == ("schema", False)
    assert categorize(error(IntegrityError, "23505")) == ("conflict", False)
    assert categorize(OperationalError("no cause")) == ("database", True)


def test_batch_size_and_auto_recovery_come_from_the_live_configuration(buyers_sheet) -> None:
    from sync.ops.source_settings import config_for, config_update

    buyers_sheet(count=30)
    assert config_for("buyers").batch_size == 1000  # first use: from the sources file defaults
    config_update(source="buyers", batch_size=7, auto_recovery=False)
    lost = []

    def lose_a_row(run: SyncRun) -> None:
        if run.rows_done == 7 and not lost:
            lost.append(Buyer.objects.filter(buyer_number="B-00003").delete())

    run = run_ingest("buyers", progress=lose_a_row)  # a new run reads the change
    assert run.batch_size == 7
    assert lost and "recovery" not in run.verification  # auto-recovery is off
    assert run.gaps == 1 and not Buyer.objects.filter(buyer_number="B-00003").exists()
