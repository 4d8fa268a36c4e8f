"""The incident, replayed: 4,140 buyers, 356 with a value longer than the VARCHAR(50)
their table had. Nothing may be lost silently, nothing truncated, and the runbook
(schema check, fix, sync_missing, verify) must bring every buyer in."""

from __future__ import annotations

import csv
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from buyers.models import Buyer
from devtools.sheets import BUYER_FIELDS, BUYER_HEADERS, incident_buyers
from sync.ingest.pipeline import run_ingest
from sync.ingest.source_checks import source_find_missing, source_schema_check
from sync.models import ErrorLog, RecordLog, SyncRun
from tests.ingest.conftest import alter_columns

TEXT_COLUMNS = [f for f in BUYER_FIELDS if f not in ("budget", "inquiry_date")]
FIELDS = dict(zip(BUYER_HEADERS, BUYER_FIELDS, strict=True))
TEXT_HEADERS = [h for h, f in FIELDS.items() if f in TEXT_COLUMNS]

pytestmark = pytest.mark.django_db


@pytest.fixture
def incident(tmp_path) -> tuple[list[list[str]], dict[int, dict[str, int]]]:
    path = incident_buyers(tmp_path / "buyers.csv")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))[1:]
    long_rows = {
        number: {h: len(v) for h, v in zip(BUYER_HEADERS, row, strict=True) if len(v) > 50}
        for number, row in enumerate(rows, start=2)
        if any(len(v) > 50 for v in row)
    }
    assert len(rows) == 4140
    assert len(long_rows) == 356
    return rows, long_rows


def assert_stored_exactly(rows: list[list[str]], numbers: set[int]) -> None:
    stored = {b.buyer_number: b for b in Buyer.objects.all()}
    for number in numbers:
        row = dict(zip(BUYER_HEADERS, rows[number - 2], strict=True))
        buyer = stored[row["Buyer Number"]]
        for header in TEXT_HEADERS:
            assert getattr(buyer, FIELDS[header]) == row[header], (number, header)


def test_the_incident_is_reported_before_loading_and_recovered_by_the_runbook(incident) -> None:
    rows, long_rows = incident
    expected = {
        (number, header, length)
        for number, cols in long_rows.items()
        for header, length in cols.items()
    }
    alter_columns("buyers", TEXT_COLUMNS, "varchar(50)")  # the incident's table

    # 1. The schema check names exactly the 356 rows and their columns, before loading.
    report = source_schema_check("buyers")
    assert report.rows_with_misfits == 356
    assert {(m.row_number, m.header, m.length) for m in report.misfits} == expected
    assert {m.limit for m in report.misfits} == {50}
    assert Buyer.objects.count() == 0
    out = StringIO()
    with pytest.raises(CommandError, match="356 row"):
        call_command("sync_schema_check", "buyers", stdout=out)
    assert "ALTER TABLE buyers ALTER COLUMN address TYPE text" in out.getvalue()
    listed = {line.split(":")[0] for line in out.getvalue().splitlines() if line.startswith("row ")}
    assert listed == {f"row {number}" for number in long_rows}

    # 2. The run loads the other 3,784, logs 356 schema/too-long errors, truncates nothing.
    run = run_ingest("buyers")
    assert (run.status, run.created, run.failed, run.rows_done) == ("partial", 3784, 356, 4140)
    assert run.schema_report["rows_with_misfits"] == 356
    errors = ErrorLog.objects.filter(run_id=run.pk)
    assert errors.count() == 356
    assert set(errors.values_list("category", "code").distinct()) == {("schema", "too_long")}
    assert set(errors.values_list("row_number", "column", "value_length")) == expected
    assert set(errors.values_list("column_limit", flat=True)) == {50}
    assert RecordLog.objects.filter(run_id=run.pk).count() == 4140
    assert Buyer.objects.count() == 3784
    assert_stored_exactly(rows, set(range(2, 4142)) - set(long_rows))
    assert run.verification["gaps"] == 356
    assert run.verification["unexplained_gaps"] == []  # every gap has its logged reason
    assert run.errors_by_category == {"schema": 356}

    # 3. The fix (TEXT again), then sync_missing brings all 4,140 in; 0 gaps.
    alter_columns("buyers", TEXT_COLUMNS, "text")
    assert source_schema_check("buyers").ok
    out = StringIO()
    call_command("sync_missing", "buyers", stdout=out)
    assert "3784 of them in the database, missing 356" in out.getvalue()
    assert Buyer.objects.count() == 4140
    assert_stored_exactly(rows, set(long_rows))
    missing_run = SyncRun.objects.get(trigger="missing")
    assert (missing_run.created, missing_run.failed, missing_run.gaps) == (356, 0, 0)
    assert source_find_missing("buyers").missing == []
    again = run_ingest("buyers")
    assert (again.status, again.unchanged, again.gaps) == ("succeeded", 4140, 0)
