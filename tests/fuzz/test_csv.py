"""Fuzzing the CSV source (hypothesis): any bytes — bad encodings, BOMs, NULs, ragged rows,
duplicated or missing headers, huge fields, CR-only line ends, cut or damaged files — read as
the rows they hold or fail the whole file with one clear error, never an unhandled exception;
a real ingest of such files accounts for every data row and stores text exactly (DESIGN I8)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sync.ingest.exceptions import SourceUnavailableError
from sync.ingest.pipeline import run_ingest
from sync.ingest.sources import CsvSource
from sync.models import ErrorLog, SyncRun
from tests.fuzz.ingest_oracle import assert_run_accounts_for_every_row
from tests.fuzz.strategies import HUGE, assert_clear, csv_files, csv_text, sheets

FAST = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def read(path: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    source = CsvSource(path)
    return source.headers(), list(source.rows())


@FAST
@given(case=csv_files())
@example(case=(b"\xef\xbb\xbfBuyer Number,Name\rB-00001,a\x00b\r\rB-00002,x", None))
@example(case=(b"Buyer Number," + b"z" * HUGE + b"\nB-00001,a\n", None))
@example(case=(b"\xff\xfeB\x00u\x00", None))
def test_any_csv_bytes_read_as_rows_or_one_clear_error(case, tmp_path_factory) -> None:
    data, sheet = case
    path = tmp_path_factory.mktemp("csv") / "sheet.csv"
    path.write_bytes(data)
    try:
        head, rows = read(str(path))
    except SourceUnavailableError as e:
        assert_clear(e, str(path))
        huge = sheet is not None and any(len(c) >= HUGE for r in [sheet[0], *sheet[1]] for c in r)
        assert sheet is None or huge, f"a well-formed sheet was refused: {e}"
        return
    assert all(isinstance(c, str) for _n, cells in rows for c in cells)
    numbers = [n for n, _cells in rows]
    assert numbers == sorted(set(numbers)) and all(n >= 2 for n in numbers)
    if sheet is not None:  # well-formed: exactly the rows written, numbered as in the sheet
        written_head, written = sheet
        assert head == written_head
        assert rows == [(n, r) for n, r in enumerate(written, start=2) if any(r)]


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(sheet=sheets(), ending=st.sampled_from(["\n", "\r\n", "\r"]), bom=st.booleans())
@pytest.mark.django_db
def test_a_real_ingest_of_odd_csv_accounts_for_every_row(
    sheet, ending, bom, tmp_path_factory
) -> None:
    head, rows = sheet
    path = tmp_path_factory.mktemp("ingest") / "buyers.csv"
    path.write_text(
        csv_text(head, rows, ending), encoding="utf-8-sig" if bom else "utf-8", newline=""
    )
    assert_run_accounts_for_every_row(str(path), head, rows)


@pytest.mark.django_db
def test_nul_in_a_key_or_a_header_is_reported_not_a_crash(tmp_path) -> None:
    """Found by the fuzzer: a NUL reached the stored error text (PostgreSQL refuses it) and
    the run died without a status; now the row, or the file, is reported."""
    path = tmp_path / "buyers.csv"
    # Every mapped column is there: a missing one refuses the run before any row is read.
    header = (
        "Buyer Number,Name,Email,Phone,Address,Desired Area,Property Type,Budget,Status,"
        "Inquiry Source,Inquiry Date,Notes"
    )
    path.write_text(f"{header}\nB-0\x0001,a{',' * 10}\nB-00002,b{',' * 10}\n")
    run = run_ingest("buyers", file=str(path))
    assert (run.status, run.created, run.failed) == (SyncRun.Status.PARTIAL, 1, 1)
    error = ErrorLog.objects.get(run_id=run.pk)
    assert (error.row_number, error.code, error.natural_key) == (2, "nul", "B-0\ufffd01")
    path.write_text("Na\x00me,Notes\nx,y\n")
    run = run_ingest("buyers", file=str(path))
    assert run.status == SyncRun.Status.FAILED
    assert "no 'Buyer Number' column" in run.message and "Na\ufffdme" in run.message
