"""Files as real offices export them: encodings (UTF-8 with and without BOM,
UTF-16, Windows-1252 declared or detected), delimiters (comma, semicolon, tab; declared or
sniffed), headers with stray spaces or another case, huge cells, empty files, workbooks that
are not workbooks, formulas without a saved value. Each file is written by the test; each
loads with every value intact, or the run fails before a row is written, with a specific
message and an error row of category ``source``."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import openpyxl
import pytest

from buyers.models import Buyer
from sync.ingest.exceptions import SourceFileError
from sync.ingest.pipeline import run_ingest
from sync.ingest.source_checks import source_find_missing
from sync.ingest.sources import CsvSource, XlsxSource, match_headers
from sync.models import ErrorLog, RecordLog, SyncRun
from tests.ingest.conftest import add_source

pytestmark = pytest.mark.django_db

OFFICE = """
[sources.office]
target = "buyers.buyer"
natural_key = "buyer_number"
key_pattern = '^B-\\d{{5}}$'
kind = "csv"
location = "office.csv"
required = ["buyer_number", "name"]
{extra}
[sources.office.columns]
"Buyer Number" = "buyer_number"
"Name" = "name"
"Email" = "email"
"Notes" = "notes"
"""
HEADERS = ["Buyer Number", "Name", "Email", "Notes"]
# What Excel users type: accents, the euro sign, typographic apostrophes and dashes.
ROWS = [
    ["B-00001", "José Müller", "jose@example.com", "5 € – l’été"],  # noqa: RUF001
    ["B-00002", "Zoë Ångström", "zoe@example.com", "“quoted”, café"],
    ["B-00003", "Søren Œuvre", "", "naïve…"],
]


def office(settings, **declared: str) -> None:
    extra = "\n".join(f"{key} = {value!r}" for key, value in declared.items())
    add_source(settings, OFFICE.format(extra=extra))


def text(rows: list[list[str]], delimiter: str = ",", headers: list[str] = HEADERS) -> str:
    """A sheet as spreadsheet programs write CSV (quoted where needed, CRLF)."""
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows([headers, *rows])
    return out.getvalue()


def stored() -> dict[str, tuple[str, str, str]]:
    return {b.buyer_number: (b.name, b.email, b.notes) for b in Buyer.objects.all()}


def expected(rows: list[list[str]] = ROWS) -> dict[str, tuple[str, str, str]]:
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def assert_refused(run: SyncRun, code: str, *phrases: str) -> ErrorLog:
    """The run failed before a row was written, saying why, with one ``source`` error row."""
    assert run.status == SyncRun.Status.FAILED, run.message
    for phrase in phrases:
        assert phrase in run.message, run.message
    assert Buyer.objects.count() == 0
    assert not RecordLog.objects.filter(run_id=run.pk).exists()
    error = ErrorLog.objects.get(run_id=run.pk)
    assert (error.category, error.code) == (ErrorLog.Category.SOURCE, code)
    assert run.errors_by_category == {"source": 1}
    return error


# ----------------------------------------------------------------------------- encodings


def test_excel_cp1252_csv_declared_loads_every_character(settings, tmp_path) -> None:
    office(settings, encoding="cp1252")
    path = tmp_path / "office.csv"
    path.write_bytes(text(ROWS).encode("cp1252"))
    run = run_ingest("office", file=str(path))
    assert run.status == SyncRun.Status.SUCCEEDED, run.message
    assert stored() == expected()
    assert run.schema_report["file"]["encoding"] == "cp1252"
    assert run.schema_report["file"]["warnings"] == []


def test_cp1252_csv_not_declared_is_detected_and_the_run_says_so(
    settings, tmp_path, caplog
) -> None:
    office(settings)
    path = tmp_path / "office.csv"
    path.write_bytes(text(ROWS).encode("cp1252"))
    run = run_ingest("office", file=str(path))
    assert run.status == SyncRun.Status.SUCCEEDED, run.message
    assert stored() == expected()
    file = run.schema_report["file"]
    assert file["encoding"] == "cp1252" and "encoding" in file["detected"]
    assert "not UTF-8 (line 2)" in file["warnings"][0]
    assert 'encoding = "cp1252"' in file["warnings"][0]
    assert "read as Windows-1252" in caplog.text


def test_utf16_unicode_text_export_tab_delimited_loads(settings, tmp_path) -> None:
    """Excel's "Unicode text": UTF-16LE with a BOM, tab-delimited."""
    office(settings)
    path = tmp_path / "office.csv"
    path.write_bytes(text(ROWS, "\t").encode("utf-16"))
    assert path.read_bytes()[:2] == b"\xff\xfe"
    run = run_ingest("office", file=str(path))
    assert run.status == SyncRun.Status.SUCCEEDED, run.message
    assert stored() == expected()
    assert (run.schema_report["file"]["encoding"], run.schema_report["file"]["delimiter"]) == (
        "utf-16",
        "\t",
    )


@pytest.mark.parametrize("bom", [True, False])
def test_utf8_with_or_without_bom_loads(settings, tmp_path, bom) -> None:
    office(settings)
    path = tmp_path / "office.csv"
    path.write_bytes(text(ROWS).encode("utf-8-sig" if bom else "utf-8"))
    run = run_ingest("office", file=str(path))
    assert run.status == SyncRun.Status.SUCCEEDED, run.message
    assert stored() == expected()  # the BOM is not part of the first header or any value


def test_a_bom_wins_over_a_declared_encoding_and_is_reported(settings, tmp_path) -> None:
    office(settings, encoding="cp1252")
    path = tmp_path / "office.csv"
    path.write_bytes(text(ROWS).encode("utf-8-sig"))
    run = run_ingest("office", file=str(path))
    assert run.status == SyncRun.Status.SUCCEEDED, run.message
    assert stored() == expected()  # not "JosÃ©": read as cp1252 it would be mojibake
    assert "byte-order mark" in run.schema_report["file"]["warnings"][0]


def test_utf8_text_under_a_declared_cp1252_is_read_as_utf8_and_reported(settings, tmp_path) -> None:
    office(settings, encoding="cp1252")
    path = tmp_path / "office.csv"
    path.write_bytes(text(ROWS).encode("utf-8"))
    run = run_ingest("office", file=str(path))
    assert stored() == expected()
    assert "declares cp1252 but the file is UTF-8" in run.schema_report["file"]["warnings"][0]


def test_an_undecodable_byte_names_its_line_and_nothing_is_written(settings, tmp_path) -> None:
    """0x81 is in no Windows code page's Western letters and is not UTF-8: the file is
    refused whole, although 249 rows before it (three batches) read well."""
    office(settings)
    rows = [[f"B-{n:05d}", f"name {n}", "", "x"] for n in range(1, 400)]
    data = text(rows).encode()
    lines = data.split(b"\r\n")
    assert lines[249].startswith(b"B-00249,")
    lines[249] = lines[249].replace(b"name", b"n\x81me")  # line 250 of the file
    path = tmp_path / "office.csv"
    path.write_bytes(b"\r\n".join(lines))
    run = run_ingest("office", file=str(path), batch_size=100)
    assert_refused(run, "encoding", "byte 0x81 at line 250", "nothing of the file was loaded")


def test_a_declared_encoding_the_file_does_not_hold_names_the_line(settings, tmp_path) -> None:
    office(settings, encoding="utf-8")
    path = tmp_path / "office.csv"
    path.write_bytes(text(ROWS[:1]).encode() + "B-00009,Zoé,,\r\n".encode("cp1252"))
    run = run_ingest("office", file=str(path))
    error = assert_refused(
        run, "encoding", "is not UTF-8 text", "byte 0xE9 at line 3", 'declare encoding = "cp1252"'
    )
    assert "line 3" in error.reason


def test_another_code_page_is_not_guessed_as_cp1252(settings, tmp_path) -> None:
    """Cyrillic in cp1251 decodes as cp1252 without an error, as nonsense letters: the
    detection refuses it instead of storing mojibake."""
    office(settings)
    path = tmp_path / "office.csv"
    path.write_bytes(text([["B-00001", "Иван Петров", "", ""]]).encode("cp1251"))
    assert_refused(run_ingest("office", file=str(path)), "encoding", "is not UTF-8 text", "line 2")


def test_utf16_declared_without_a_bom_and_line_numbers_by_any_line_end(tmp_path) -> None:
    path = tmp_path / "plain.csv"
    path.write_bytes("Buyer Number,Name\nB-00001,Zoë\n".encode("utf-16-le"))
    source = CsvSource(str(path), encoding="utf-16-le")
    assert (source.headers(), list(source.rows())) == (
        ["Buyer Number", "Name"],
        [(2, ["B-00001", "Zoë"])],
    )
    path.write_bytes(b"a\rb\r\nc\nd,\xff")
    with pytest.raises(SourceFileError, match="byte 0xFF at line 4") as caught:
        CsvSource(str(path)).headers()
    assert caught.value.line == 4


# ----------------------------------------------------------------------------- delimiters


@pytest.mark.parametrize("declare", [True, False])
def test_semicolon_delimited_declared_or_sniffed(settings, tmp_path, declare) -> None:
    office(settings, **({"delimiter": ";"} if declare else {}))
    rows = [["B-00001", "Müller, José", "", "1,5 m²; eins"]]  # commas inside cells
    path = tmp_path / "office.csv"
    path.write_bytes(text(rows, ";").encode())
    run = run_ingest("office", file=str(path))
    assert run.status == SyncRun.Status.SUCCEEDED, run.message
    assert stored() == expected(rows)
    assert ("delimiter" in run.schema_report["file"]["detected"]) is not declare


def test_a_comma_file_stays_comma_when_cells_hold_semicolons(tmp_path) -> None:
    path = tmp_path / "office.csv"
    path.write_text("Buyer Number,Name;Email\nB-00001,a;b\n")
    source = CsvSource(str(path), encoding=None, delimiter=None, expected_headers=tuple(HEADERS))
    assert source.headers() == ["Buyer Number", "Name;Email"]  # the header decides: ","


# ----------------------------------------------------------------------------- headers


def test_headers_match_after_trimming_and_ignoring_case(settings, tmp_path) -> None:
    office(settings)
    path = tmp_path / "office.csv"
    path.write_text(text(ROWS, headers=[" Buyer Number ", "NAME", "email", "Notes\t"]))
    run = run_ingest("office", file=str(path))
    assert run.status == SyncRun.Status.SUCCEEDED, run.message
    assert stored() == expected()
    # The commands that read the sheet see the key column too (it is no longer "missing 0").
    Buyer.objects.filter(buyer_number="B-00002").delete()
    report = source_find_missing("office", file=str(path))
    assert report.missing == [("B-00002", 3)]


def test_two_columns_that_read_as_the_same_header_are_refused(settings, tmp_path) -> None:
    office(settings)
    path = tmp_path / "office.csv"
    path.write_text(
        text(
            [["B-00001", "a", "x@example.com", "b", "c"]],
            headers=["Buyer Number", "Name", "Email", "Notes", " notes"],
        )
    )
    run = run_ingest("office", file=str(path))
    assert_refused(
        run, "ambiguous_header", "columns D ('Notes') and E (' notes') both read as 'Notes'"
    )


def test_exact_duplicates_of_an_unmapped_header_are_fine() -> None:
    assert match_headers(["Extra", "Buyer Number", "Extra", ""], ("Buyer Number",), "f.csv") == [
        "Extra",
        "Buyer Number",
        "Extra",
        "",
    ]
    assert match_headers([" x "], (), "f.csv") == [" x "]


# ----------------------------------------------------------------------------- sizes


@pytest.fixture
def default_field_limit():
    """csv's limit as in a fresh process (an earlier read in this one raised it)."""
    before = csv.field_size_limit(131_072)
    yield
    csv.field_size_limit(before)


@pytest.mark.usefixtures("default_field_limit")
def test_a_cell_longer_than_csvs_field_limit_loads_into_a_text_column(settings, tmp_path) -> None:
    """Buyer.notes is TEXT; 300,000 characters is more than twice csv's default limit."""
    office(settings)
    notes = ("Lorem ipsum é€ " * 20_000)[:300_000]
    path = tmp_path / "office.csv"
    path.write_text(
        text([["B-00001", "Long", "", notes], ["B-00002", "Short", "", "s"]]), encoding="utf-8"
    )
    run = run_ingest("office", file=str(path))
    assert run.status == SyncRun.Status.SUCCEEDED, run.message
    assert Buyer.objects.get(buyer_number="B-00001").notes == notes
    assert Buyer.objects.get(buyer_number="B-00002").notes == "s"


@pytest.mark.usefixtures("default_field_limit")
def test_rows_read_long_cells_where_the_prescan_ran_elsewhere(tmp_path) -> None:
    """The reader process gets the source with its prescan done (in the run's process), so
    its own csv module still has the default limit: reading the rows raises it too."""
    path = tmp_path / "long.csv"
    path.write_text("Buyer Number,Notes\nB-00001," + "n" * 200_000 + "\n", encoding="utf-8")
    source = CsvSource(str(path))
    source.prescan()
    csv.field_size_limit(131_072)  # as in a fresh process

    rows = list(source.rows())

    [(number, cells)] = rows
    assert number == 2 and [len(cell) for cell in cells] == [7, 200_000]


@pytest.mark.usefixtures("default_field_limit")
def test_a_header_longer_than_the_field_limit_is_read_when_sniffing(tmp_path) -> None:
    path = tmp_path / "office.csv"
    path.write_text("Buyer Number;" + "h" * 200_000 + "\nB-00001;x\n")
    source = CsvSource(str(path), encoding=None, delimiter=None, expected_headers=tuple(HEADERS))
    assert [len(h) for h in source.headers()] == [12, 200_000]
    assert source.describe()["delimiter"] == ";"


@pytest.mark.parametrize("name", ["office.csv", "office.xlsx"])
def test_an_empty_file_says_so(settings, tmp_path, name) -> None:
    office(settings)
    path = tmp_path / name
    path.write_bytes(b"")
    assert_refused(run_ingest("office", file=str(path)), "empty", "the file is empty")


# ----------------------------------------------------------------------------- workbooks


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (text(ROWS).encode(), "it holds text (a CSV file renamed .xlsx?)"),
        (bytes(range(128, 256)) * 4, "it is not a zip archive"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500), "Excel 97-2003 .xls file"),
    ],
)
def test_a_file_that_is_not_a_workbook_says_so(settings, tmp_path, content, says) -> None:
    office(settings)
    path = tmp_path / "office.xlsx"
    path.write_bytes(content)
    assert_refused(
        run_ingest("office", file=str(path)), "not_a_workbook", "is not an .xlsx workbook", says
    )


def test_a_zip_that_is_not_a_workbook_says_so(settings, tmp_path) -> None:
    office(settings)
    path = tmp_path / "office.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "not a workbook")
    assert_refused(
        run_ingest("office", file=str(path)),
        "not_a_workbook",
        "cannot open",
        "as an .xlsx workbook",
    )


def _workbook(path: Path, rows: list[list]) -> Path:
    book = openpyxl.Workbook()
    book.active.append(HEADERS)
    for row in rows:
        book.active.append(row)
    book.save(path)
    return path


def test_formulas_without_a_saved_value_are_reported_never_blank(settings, tmp_path) -> None:
    """openpyxl (like many exporters) writes formulas without their value: data_only reads
    them as None, which used to be stored as an empty string."""
    office(settings)
    first = tmp_path / "first.csv"
    first.write_text(text([["B-00002", "Kept", "", "kept notes"]]))
    assert run_ingest("office", file=str(first)).status == SyncRun.Status.SUCCEEDED
    path = _workbook(
        tmp_path / "office.xlsx",
        [
            ["B-00001", '=CONCAT("A","B")', None, "n1"],  # a required column
            ["B-00002", "Bea", None, "=1+1"],  # an optional one, on an existing row
            ["B-00003", "Cy", None, None],  # truly empty cells: fine
        ],
    )
    run = run_ingest("office", file=str(path))
    assert run.status == SyncRun.Status.PARTIAL
    errors = {
        (e.row_number, e.column): (e.category, e.code)
        for e in ErrorLog.objects.filter(run_id=run.pk)
    }
    assert errors == {
        (2, "Name"): ("validation", "formula"),
        (3, "Notes"): ("validation", "formula"),
    }
    assert stored() == {"B-00002": ("Kept", "", "kept notes"), "B-00003": ("Cy", "", "")}
    reason = ErrorLog.objects.get(run_id=run.pk, row_number=2).reason
    assert "formula without a saved value" in reason


def test_a_formula_with_a_saved_value_loads_the_value(settings, tmp_path) -> None:
    office(settings)
    plain = _workbook(
        tmp_path / "plain.xlsx", [["B-00001", "=A1", None, "=1+1"], ["B-00002", "=B1", None, '=""']]
    )
    path = tmp_path / "office.xlsx"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":  # what Excel saves: the results
                data = (
                    data.decode()
                    .replace(
                        '<c r="B2"><f>A1</f><v /></c>', '<c r="B2" t="str"><f>A1</f><v>Ann</v></c>'
                    )
                    .replace('<c r="D2"><f>1+1</f><v /></c>', '<c r="D2"><f>1+1</f><v>2</v></c>')
                    .replace(
                        '<c r="B3"><f>B1</f><v /></c>', '<c r="B3" t="str"><f>B1</f><v>Bo</v></c>'
                    )
                    .replace(
                        '<c r="D3"><f>""</f><v /></c>', '<c r="D3" t="str"><f>""</f><v></v></c>'
                    )
                    .encode()
                )
            dst.writestr(item, data)
    run = run_ingest("office", file=str(path))
    assert run.status == SyncRun.Status.SUCCEEDED, run.message
    assert stored() == {"B-00001": ("Ann", "", "2"), "B-00002": ("Bo", "", "")}


@pytest.mark.django_db(transaction=True)  # autocommit, as a run in production
def test_a_workbook_damaged_past_its_first_rows_writes_nothing(settings, tmp_path) -> None:
    office(settings)
    whole = _workbook(
        tmp_path / "whole.xlsx", [[f"B-{n:05d}", f"name {n}", None, None] for n in range(1, 600)]
    )
    path = tmp_path / "office.xlsx"
    with zipfile.ZipFile(whole) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(
                item, data[: len(data) * 2 // 3] if "worksheets/sheet1" in item.filename else data
            )
    run = run_ingest("office", file=str(path), batch_size=50)
    assert_refused(run, "unreadable", "cannot be read past row")


def test_xlsx_rows_out_of_order_are_damage_not_skipped(tmp_path) -> None:
    plain = _workbook(
        tmp_path / "plain.xlsx", [["B-00001", "a", None, None], ["B-00002", "b", None, None]]
    )
    path = tmp_path / "office.xlsx"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b'<row r="3">', b'<row r="2">').replace(b'r="A3"', b'r="A2"')
            dst.writestr(item, data)
    with pytest.raises(SourceFileError, match="row 2 follows row 2"):
        list(XlsxSource(str(path)).rows())


# ----------------------------------------------------------------------------- the category


def test_a_missing_file_is_a_source_failure_not_network(settings, tmp_path) -> None:
    office(settings)
    run = run_ingest("office", file=str(tmp_path / "gone.csv"))
    assert_refused(run, "missing", "cannot open", "gone.csv")


def test_a_sheet_without_the_key_column_is_a_source_failure(settings, tmp_path) -> None:
    office(settings)
    path = tmp_path / "office.csv"
    path.write_text("Name,Email\nA,\n")
    assert_refused(
        run_ingest("office", file=str(path)), "no_key_column", "no 'Buyer Number' column"
    )


def test_sheets_failures_a_refusal_is_source_an_outage_is_network(settings, sheets_server) -> None:
    from tests.ingest.test_sources import SHEET_SOURCE

    add_source(settings, SHEET_SOURCE)
    sheets_server.sheets["sheet-1"] = [["Buyer Number", "Name"], ["B-00001", "A"]]
    settings.SYNC_INGEST_SHEETS_API_KEY = "wrong"
    run = run_ingest("buyers_sheet")
    assert_refused(run, "refused", "HTTP 403 PERMISSION_DENIED")
    settings.SYNC_INGEST_SHEETS_API_KEY = sheets_server.api_key
    settings.SYNC_INGEST_NETWORK_RETRIES = 1
    sheets_server.fail_next = 99
    run = run_ingest("buyers_sheet")
    assert run.status == SyncRun.Status.FAILED
    final = ErrorLog.objects.get(run_id=run.pk, code="unavailable")
    assert (final.category, final.retryable) == (ErrorLog.Category.NETWORK, True)
    assert "still failing after 1 retries" in final.reason
    assert run.errors_by_category == {"network": 2}  # the retry, then the failure


def test_a_file_changed_after_its_prescan_fails_clearly(tmp_path) -> None:
    path = tmp_path / "office.csv"
    path.write_text(text(ROWS))
    source = CsvSource(str(path))
    source.prescan()
    path.write_bytes(b"Buyer Number\xff\nB-00001\n")  # replaced while the run reads it
    with pytest.raises(SourceFileError, match="cannot be read: its header row"):
        source.headers()
    path.write_bytes(b"Buyer Number\nB-00001\xff\n")
    with pytest.raises(SourceFileError, match="cannot be read past line") as caught:
        list(source.rows())
    assert caught.value.code == "unreadable"


def test_a_missing_workbook_is_a_source_failure(tmp_path) -> None:
    with pytest.raises(SourceFileError, match="cannot open") as caught:
        XlsxSource(str(tmp_path / "gone.xlsx")).headers()
    assert caught.value.code == "missing"
    assert XlsxSource(str(tmp_path / "gone.xlsx")).describe() == {"worksheet": "(the first)"}


def test_a_damaged_utf16_file_and_styled_empty_cells(tmp_path) -> None:
    path = tmp_path / "office.csv"
    path.write_bytes("Buyer Number\tName\r\nB-00001\tZoë\r\n".encode("utf-16") + b"\x00")
    with pytest.raises(SourceFileError, match="is not UTF-16 text") as caught:
        CsvSource(str(path), encoding=None, delimiter=None).prescan()
    assert caught.value.code == "encoding"
    book = openpyxl.Workbook()
    book.active.append(["Buyer Number", "Name"])
    book.active.append(["B-00001"])
    book.active["B2"].font = openpyxl.styles.Font(bold=True)  # a cell with a style, no value
    book.save(tmp_path / "styled.xlsx")
    assert list(XlsxSource(str(tmp_path / "styled.xlsx")).rows()) == [(2, ["B-00001", ""])]
