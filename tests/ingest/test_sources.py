"""Sources: real CSV/XLSX fixture files, and Google Sheets through gspread against a local
HTTP server speaking the Sheets v4 values API (503s, then recovery)."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from buyers.models import Buyer
from devtools.sheets import BUYER_HEADERS, buyer_rows
from sync.ingest.exceptions import SourceConfigError, SourceUnavailableError
from sync.ingest.pipeline import run_ingest
from sync.ingest.sources import CsvSource, SheetsSource, XlsxSource, cell_text, column_letter
from sync.models import ErrorLog
from tests.ingest.conftest import FIXTURES, add_source

SHEET_SOURCE = """
[sources.buyers_sheet]
target = "buyers.buyer"
natural_key = "buyer_number"
key_pattern = '^B-\\d{5,}$'
kind = "sheets"
location = "sheet-1"
worksheet = "Buyers"
required = ["buyer_number", "name"]
[sources.buyers_sheet.columns]
"Buyer Number" = "buyer_number"
"Name" = "name"
"Status" = "status"
"Budget" = "budget"
"Notes" = "notes"
"""


def test_csv_and_xlsx_fixtures_read_the_same_rows() -> None:
    csv_rows = list(CsvSource(str(FIXTURES / "buyers.csv")).rows())
    xlsx = XlsxSource(str(FIXTURES / "buyers.xlsx"))
    assert xlsx.headers() == CsvSource(str(FIXTURES / "buyers.csv")).headers()
    assert list(xlsx.rows()) == csv_rows
    assert [n for n, _cells in csv_rows] == [2, 3, 4, 6]  # row 5 is empty, keeps its number


def test_xlsx_worksheet_by_name_and_errors(tmp_path) -> None:
    with pytest.raises(SourceConfigError, match="no worksheet 'Nope'"):
        XlsxSource(str(FIXTURES / "buyers.xlsx"), worksheet="Nope").headers()
    assert XlsxSource(str(FIXTURES / "buyers.xlsx"), worksheet="Buyers").headers()[0] == (
        "Buyer Number"
    )
    bad = tmp_path / "bad.xlsx"
    bad.write_text("not a zip")
    with pytest.raises(SourceUnavailableError, match=r"is not an \.xlsx workbook: it holds text"):
        XlsxSource(str(bad)).headers()
    with pytest.raises(SourceUnavailableError, match="cannot open"):
        CsvSource(str(tmp_path / "missing.csv")).headers()
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"Buyer Number\nB-00001\n" + b"\xe9\xff\n")
    # Found before a row is read (the prescan), with the file's line (test_file_formats.py).
    with pytest.raises(SourceUnavailableError, match="byte 0xE9 at line 3 cannot be decoded"):
        list(CsvSource(str(latin)).rows())
    latin.write_bytes(b"\xe9\xff\n")
    with pytest.raises(SourceUnavailableError, match="is not UTF-8 text"):
        CsvSource(str(latin)).headers()


def test_cells_read_as_a_person_sees_them() -> None:
    assert [cell_text(v) for v in (None, True, False, 3.0, 2.5, 1e20, 7, "x")] == [
        "",
        "TRUE",
        "FALSE",
        "3",
        "2.5",
        "100000000000000000000",
        "7",
        "x",
    ]
    assert cell_text(datetime.datetime(2024, 5, 1)) == "2024-05-01"  # noqa: DTZ001
    assert cell_text(datetime.datetime(2024, 5, 1, 9, 30)) == "2024-05-01T09:30:00"  # noqa: DTZ001
    assert cell_text(datetime.date(2024, 5, 1)) == "2024-05-01"
    assert [column_letter(n) for n in (1, 26, 27, 703)] == ["A", "Z", "AA", "AAA"]


@pytest.mark.django_db
def test_sheets_503s_are_retried_with_backoff_then_the_run_completes(
    settings, sheets_server
) -> None:
    settings.SYNC_INGEST_SHEETS_CHUNK_ROWS = 7
    add_source(settings, SHEET_SOURCE)
    rows = [[r[0], r[1], r[8], r[7], r[11]] for r in buyer_rows(20, 2)]
    sheets_server.sheets["sheet-1"] = [["Buyer Number", "Name", "Status", "Budget", "Notes"], *rows]
    # The header fails twice, the second chunk once (mid-run); each time the service is back.
    sheets_server.fail_at = {1, 2, 5}
    run = run_ingest("buyers_sheet")
    assert (run.status, run.created) == ("succeeded", 20)
    retries = ErrorLog.objects.filter(run_id=run.pk, category="network", code="retry")
    assert retries.count() == 3
    assert "HTTP 503" in retries.first().reason
    assert run.errors_by_category == {"network": 3}
    from urllib.parse import unquote

    assert "/v4/spreadsheets/sheet-1/values/'Buyers'!9:15" in {
        unquote(path.split("?")[0]) for path in sheets_server.requests
    }
    longest = max(rows, key=lambda r: max(len(v) for v in r))
    assert Buyer.objects.get(buyer_number=longest[0]).name == longest[1]


@pytest.mark.django_db
def test_sheets_outage_longer_than_the_retries_fails_the_run_clearly(
    settings, sheets_server
) -> None:
    add_source(settings, SHEET_SOURCE)
    sheets_server.sheets["sheet-1"] = [["Buyer Number", "Name"], ["B-00001", "A"]]
    sheets_server.fail_next = 99
    run = run_ingest("buyers_sheet")
    assert run.status == "failed"
    assert "still failing after 3 retries" in run.message
    sheets_server.fail_next = 0
    sheets_server.api_key = "another"
    with pytest.raises(SourceUnavailableError, match="HTTP 403 PERMISSION_DENIED"):
        SheetsSource("sheet-1").headers()
    settings.SYNC_INGEST_SHEETS_API_URL = "http://127.0.0.1:9/v4/spreadsheets"  # refused
    settings.SYNC_INGEST_NETWORK_RETRIES = 0
    with pytest.raises(SourceUnavailableError, match="cannot reach Google Sheets"):
        SheetsSource("sheet-1").headers()


def test_sheets_with_a_service_account_file(settings, sheets_server, tmp_path) -> None:
    """The production path: credentials from a service-account file (a key made here)."""
    import json

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = Path(tmp_path / "sa.json")
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "p",
                "private_key_id": "1",
                "private_key": pem,
                "client_email": "sync@p.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": "http://127.0.0.1:9/token",
            }
        )
    )
    settings.SYNC_INGEST_SHEETS_CREDENTIALS = str(path)
    source = SheetsSource("sheet-1")
    assert source.client().auth.service_account_email == "sync@p.iam.gserviceaccount.com"


def test_fixture_headers_match_the_generator() -> None:
    assert CsvSource(str(FIXTURES / "buyers.csv")).headers() == BUYER_HEADERS


@pytest.mark.django_db
def test_sheets_without_an_api_key_are_refused_clearly(settings, sheets_server) -> None:
    add_source(settings, SHEET_SOURCE)
    sheets_server.sheets["sheet-1"] = [["Buyer Number", "Name"], ["B-00001", "A"]]
    settings.SYNC_INGEST_SHEETS_API_KEY = ""  # the server wants one
    run = run_ingest("buyers_sheet")
    assert run.status == "failed"
    assert "HTTP 403 PERMISSION_DENIED" in run.message
    assert "key=" not in "".join(sheets_server.requests)


@pytest.mark.django_db
def test_a_runs_deferred_decoding_check_finds_what_the_check_ahead_found(tmp_path) -> None:
    """A run checks a CSV file's UTF-8 with its key pre-scan's read (prescan(deferred=True),
    read_lines): the same encoding error, the same detected code page, the same rows."""
    from sync.ingest.pipeline.keys import SheetKeys, read_key_lines

    def keys_of(source: CsvSource) -> SheetKeys:
        found = SheetKeys()
        source.read_lines(lambda lines: read_key_lines(lines, 0, found))
        return found

    path = tmp_path / "office.csv"
    # Past the first chunk a header read decodes (8 KiB): found by the pre-scan's read.
    filler = b"".join(b"B-%05d,name\n" % n for n in range(3, 2000))
    path.write_bytes(b"Buyer Number,Name\nB-00001,a\n" + filler + b"B-02000,b\x81c\n")
    source = CsvSource(
        str(path), encoding=None, delimiter=None, expected_headers=("Buyer Number", "Name")
    )
    assert source.prescan(deferred=True).encoding == "utf-8-sig"  # not read yet
    assert source.headers() == ["Buyer Number", "Name"]
    with pytest.raises(SourceUnavailableError, match="byte 0x81 at line 2000 cannot be decoded"):
        keys_of(source)
    path.write_bytes(
        b"Buyer Number,Name\nB-00001,a\n" + filler + "B-02000,Zoé\nB-00001,y\n".encode("cp1252")
    )
    source = CsvSource(
        str(path), encoding=None, delimiter=None, expected_headers=("Buyer Number", "Name")
    )
    source.prescan(deferred=True)
    assert source.headers() == ["Buyer Number", "Name"]
    found = keys_of(source)
    assert source.describe()["encoding"] == "cp1252"  # detected, and said so
    assert "read as Windows-1252" in source.describe()["warnings"][0]
    assert (found.duplicates, found.total) == ({"B-00001": [2, 2001]}, 2000)
    assert list(source.rows())[-2:] == [(2000, ["B-02000", "Zoé"]), (2001, ["B-00001", "y"])]
    path.write_bytes("Buyer Number,Name\nB-00001,Zoé\n".encode())  # UTF-8: nothing to settle
    source = CsvSource(
        str(path), encoding=None, delimiter=None, expected_headers=("Buyer Number", "Name")
    )
    source.prescan(deferred=True)
    assert keys_of(source).total == 1
    assert source.describe()["encoding"] == "utf-8-sig" and not source.describe()["warnings"]


@pytest.mark.django_db
def test_an_undecodable_file_missing_a_column_says_it_cannot_be_decoded(
    buyers_sheet, tmp_path
) -> None:
    """The run's deferred decoding check is done before a header problem is reported: the
    file's encoding error, as when the whole file was decoded before its header was read."""
    path = tmp_path / "buyers.csv"
    lines = ",".join(BUYER_HEADERS[:-1]).encode() + b"\n" + b"B-00001,n\x81me\n"
    path.write_bytes(lines)
    run = run_ingest("buyers", file=str(path))
    assert run.status == "failed"
    assert set(ErrorLog.objects.filter(run_id=run.pk).values_list("category", "code")) == {
        ("source", "encoding")
    }
    assert "byte 0x81 at line 2" in run.message
