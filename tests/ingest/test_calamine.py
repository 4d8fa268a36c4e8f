"""The XLSX readers agree: every cell kind python-calamine is left with reads as openpyxl reads
it, and every kind it would read otherwise (formulas, error values, zero-padded and odd
number formats, text of only spaces, 1904 dates, times, durations, huge integers, dates past
9999) is read by openpyxl, the sheet whole or from that row on, and the source says which
(sync/ingest/calamine.py). Each workbook is written here by openpyxl, some edited as other
programs write them (shared strings, a sheet starting at C3, rows out of order)."""

from __future__ import annotations

import datetime
import zipfile
from pathlib import Path

import openpyxl
import pytest

from sync.ingest import calamine
from sync.ingest.exceptions import SourceConfigError, SourceFileError
from sync.ingest.sources import FormulaRow, XlsxSource, open_source

HEADERS = ["Key", "A", "B", "C"]


def book(path: Path, rows: list[list], formats: dict[str, str] | None = None) -> Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(HEADERS)
    for row in rows:
        sheet.append(row)
    for cell, number_format in (formats or {}).items():
        sheet[cell].number_format = number_format
    workbook.save(path)
    return path


def edit(path: Path, part: str, change) -> Path:
    """``path`` with one zip member changed (``change(bytes) -> bytes``; None removes it)."""
    with zipfile.ZipFile(path) as src:
        items = [(item, src.read(item)) for item in src.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for item, data in items:
            if item.filename == part:
                data = change(data)
                if data is None:
                    continue
            dst.writestr(item, data)
    return path


def both(path: Path, worksheet: str = "") -> tuple[XlsxSource, list]:
    """The rows as calamine ("auto") reads them, asserted equal to openpyxl's (headers too)."""
    auto = XlsxSource(str(path), worksheet=worksheet)
    plain = XlsxSource(str(path), worksheet=worksheet, reader="openpyxl")
    assert auto.headers() == plain.headers()
    rows = list(auto.rows())
    expected = list(plain.rows())
    assert rows == expected
    assert [type(cells) for _n, cells in rows] == [type(cells) for _n, cells in expected]
    assert plain.describe()["reader"] == "openpyxl (SYNC_INGEST_XLSX_READER)"
    return auto, rows


def test_plain_cells_are_read_by_calamine_as_openpyxl_reads_them(tmp_path) -> None:
    rows = [
        ["B-1", "text", 1, 1.5],
        ["B-2", True, False, -0.0],
        ["B-3", 0.1, 10**15, 2.5e-5],
        ["B-4", "padded  ", "line\nbreak", "Zoë €"],
        ["B-5", 0.5, 0.125, 1234.5],  # shown as 50%, 12.50%, #,##0.00
        [None, None, None, None],  # an empty row: skipped, its number kept
        ["B-7", None, "", "last"],
    ]
    path = book(tmp_path / "plain.xlsx", rows, {"B6": "0%", "C6": "0.00%", "D6": "#,##0.00"})
    source, read = both(path)
    assert source.describe()["reader"] == "python-calamine"
    assert read[0] == (2, ["B-1", "text", "1", "1.5"])
    assert read[1] == (3, ["B-2", "TRUE", "FALSE", "0"])
    assert read[2] == (4, ["B-3", "0.1", "1000000000000000", "0.000025"])
    assert read[4] == (6, ["B-5", "0.5", "0.125", "1234.5"])
    assert [n for n, _cells in read] == [2, 3, 4, 5, 6, 8]


def test_dates_in_built_in_and_custom_formats_read_alike(tmp_path) -> None:
    day = datetime.date(2024, 1, 5)
    moment = datetime.datetime(2024, 1, 5, 13, 30)  # noqa: DTZ001 - Excel has no zones
    rows = [["B-1", day, moment, 45296.5], ["B-2", datetime.date(1900, 3, 1), day, moment]]
    formats = {"D2": "mm-dd-yy", "B3": "dd/mm/yyyy", "C3": "[$-409]mmm d, yyyy", "D3": "d-mmm-yy"}
    source, read = both(book(tmp_path / "dates.xlsx", rows, formats))
    assert source.describe()["reader"] == "python-calamine"
    assert read[0] == (2, ["B-1", "2024-01-05", "2024-01-05T13:30:00", "2024-01-05T12:00:00"])
    assert read[1][1][1] == "1900-03-01"


def test_merged_cells_trailing_empty_cells_and_a_sheet_starting_at_c3(tmp_path) -> None:
    path = book(tmp_path / "merged.xlsx", [["B-1", "merged", None, "x"], ["B-2", None, None, None]])
    workbook = openpyxl.load_workbook(path)
    workbook.active.merge_cells("B2:C2")
    workbook.active["F9"] = None  # a declared width past the last value (dimension A1:F9)
    workbook.active["F9"].font = openpyxl.styles.Font(bold=True)
    workbook.save(path)
    _source, read = both(path)
    assert read[0] == (2, ["B-1", "merged", "", "x", "", ""])

    offset = openpyxl.Workbook()
    offset.active["C3"] = "Key"
    offset.active["D5"] = 7
    offset.save(tmp_path / "offset.xlsx")
    source, read = both(tmp_path / "offset.xlsx")
    assert read == [(3, ["", "", "Key", ""]), (5, ["", "", "", "7"])]
    assert source.headers() == []  # no header on row 1, as openpyxl reads it


def test_shared_strings_and_a_named_worksheet(tmp_path) -> None:
    path = book(tmp_path / "shared.xlsx", [["B-1", "one", "two", "one"]])
    workbook = openpyxl.load_workbook(path)
    workbook.create_sheet("Second").append(["Key", "A"])
    workbook["Second"].append(["B-9", "nine"])
    workbook.save(path)
    shared = (
        b'<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/'
        b'2006/main" count="2" uniqueCount="2"><si><t>one</t></si><si><r><t>tw</t></r><r>'
        b"<t>o</t></r></si></sst>"
    )

    def to_shared(xml: bytes) -> bytes:
        xml = xml.replace(b't="inlineStr"><is><t>one</t></is>', b't="s"><v>0</v>')
        return xml.replace(b't="inlineStr"><is><t>two</t></is>', b't="s"><v>1</v>')

    edit(path, "xl/worksheets/sheet1.xml", to_shared)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("xl/sharedStrings.xml", shared)
    edit(
        path,
        "xl/_rels/workbook.xml.rels",
        lambda xml: xml.replace(
            b"</Relationships>",
            b'<Relationship Id="rIdS" Type="http://schemas.openxmlformats.org/officeDocument/'
            b'2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>',
        ),
    )
    edit(
        path,
        "[Content_Types].xml",
        lambda xml: xml.replace(
            b"</Types>",
            b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxml'
            b'formats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>',
        ),
    )
    source, read = both(path)
    assert source.describe()["reader"] == "python-calamine"
    assert read == [(2, ["B-1", "one", "two", "one"])]
    source, read = both(path, worksheet="Second")
    assert source.describe()["reader"] == "python-calamine"
    assert read == [(2, ["B-9", "nine"])]


@pytest.mark.parametrize(
    ("cells", "formats", "reason"),
    [
        (["B-1", "=1+1", "x", None], {}, "the sheet has formulas"),
        (["B-1", "#N/A", "x", None], {}, "the sheet has error values"),
        (["B-1", 123, "x", None], {"B2": "00000"}, 'keeps leading zeros ("00000")'),
        (["B-1", 1.5, "x", None], {"B2": '0.0 "days";[Red]-0.0'}, ""),
        (["B-1", 1.5, "x", None], {"B2": "[h]:mm"}, ""),  # built-in 46: a duration (below)
        (["B-1", 1.5, "x", None], {"B2": '0.0 "km" general'}, "may read otherwise"),
        (["B-1", " ", "x", None], {}, "text that is only spaces"),
    ],
)
def test_what_calamine_cannot_tell_is_read_by_openpyxl(tmp_path, cells, formats, reason) -> None:
    source, read = both(book(tmp_path / "odd.xlsx", [cells], formats))
    said = source.describe()["reader"]
    if reason:
        assert said == f"openpyxl: {reason}" or (said.startswith("openpyxl: ") and reason in said)
    if cells[1] == "=1+1":
        assert type(read[0][1]) is FormulaRow  # no value saved: marked, never blank
    if cells[1] == "#N/A":
        assert read[0][1][1] == "#N/A"
    if formats.get("B2") == "00000":
        assert read[0][1][1] == "00123"


@pytest.mark.parametrize(
    ("value", "number_format", "why"),
    [
        (2**60, None, "an integer past 2**53"),
        (datetime.time(13, 30), None, "a time of day or a duration"),
        (-1, "yyyy-mm-dd", "a time of day or a duration"),  # calamine: 00:00; openpyxl: 1899
        (datetime.timedelta(hours=26), None, "a time of day or a duration"),
        (2958466, "yyyy-mm-dd", "a number past the last date"),  # openpyxl: #VALUE!
        (
            datetime.datetime(2024, 1, 5, 13, 30, 0, 500000),  # noqa: DTZ001
            None,
            "a time with fractions of a second",
        ),
    ],
)
def test_a_value_calamine_may_change_hands_the_rest_to_openpyxl(
    tmp_path, value, number_format, why
) -> None:
    rows = [["B-1", "before", 1, 2], ["B-2", value, 3, 4], ["B-3", "after", 5, 6]]
    path = book(tmp_path / "doubt.xlsx", rows, {"B3": number_format} if number_format else {})
    if value == 2**60:  # openpyxl writes the integer's digits, which a float cannot hold
        path = edit(
            path,
            "xl/worksheets/sheet1.xml",
            lambda xml: xml.replace(b"<v>1.152921504606847e+18</v>", b"<v>1152921504606846977</v>"),
        )
    source, read = both(path)
    said = source.describe()["reader"]
    assert said.startswith("python-calamine to row 2, openpyxl from row 3: "), said
    assert why in said
    assert [n for n, _cells in read] == [2, 3, 4]
    if value == 2**60:
        assert read[1][1][1] == "1152921504606846977"


def test_1904_dates_and_odd_built_in_formats_are_read_by_openpyxl(tmp_path) -> None:
    path = book(tmp_path / "1904.xlsx", [["B-1", datetime.date(2024, 1, 5), 1, 2]])
    edit(
        path,
        "xl/workbook.xml",
        lambda xml: xml.replace(b"<workbookPr />", b'<workbookPr date1904="1" />'),
    )
    source, _read = both(path)
    assert source.describe()["reader"] == "openpyxl: dates counted from 1904"

    path = book(tmp_path / "builtin.xlsx", [["B-1", 5, 1, 2]])
    edit(
        path,
        "xl/styles.xml",
        lambda xml: xml.replace(
            b'<cellXfs count="1"><xf numFmtId="0"', b'<cellXfs count="1"><xf numFmtId="27"'
        ),
    )
    assert calamine.plan(str(path), "").reason.startswith("a built-in number format")


def test_a_workbook_without_styles_is_read_by_calamine(tmp_path) -> None:
    path = book(tmp_path / "bare.xlsx", [["B-1", "x", 1, 2]])
    edit(path, "xl/styles.xml", lambda _xml: None)
    assert calamine.plan(str(path), "") == calamine.Plan("", "Sheet", 4, False)


def test_damage_and_unknown_sheets_read_as_openpyxl_reports_them(tmp_path) -> None:
    path = book(tmp_path / "order.xlsx", [["B-1", "a", 1, 2], ["B-2", "b", 3, 4]])
    edit(
        path,
        "xl/worksheets/sheet1.xml",
        lambda xml: xml.replace(b'<row r="3">', b'<row r="2">').replace(b'r="A3"', b'r="A2"'),
    )
    assert calamine.plan(str(path), "").reason == "rows out of order"
    with pytest.raises(SourceFileError, match="row 2 follows row 2"):
        list(XlsxSource(str(path)).rows())

    path = book(tmp_path / "sheet.xlsx", [["B-1", "a", 1, 2]])
    assert calamine.plan(str(path), "Nope").reason == "no such worksheet"
    with pytest.raises(SourceConfigError, match="has no worksheet 'Nope'"):
        XlsxSource(str(path), worksheet="Nope").headers()

    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(path.read_bytes()[:-30])
    assert calamine.plan(str(broken), "").reason.startswith("the workbook's structure")
    with pytest.raises(SourceFileError, match=r"as an \.xlsx workbook"):
        XlsxSource(str(broken)).headers()


def test_calamine_failing_where_the_plan_did_not_hands_over_to_openpyxl(tmp_path) -> None:
    """A file the plan's zip reader takes but calamine refuses (found by the fuzz tests: a
    zip comment length past the end) is read by openpyxl, which reads it or reports it."""
    path = book(tmp_path / "comment.xlsx", [["B-1", "a", 1, 2]])
    data = bytearray(path.read_bytes())
    data[-2:] = (200).to_bytes(2, "little")  # the end record's comment length: past the end
    path.write_bytes(bytes(data))
    source = XlsxSource(str(path))
    try:
        rows = list(source.rows())
    except SourceFileError as e:
        assert "as an .xlsx workbook" in str(e)  # either outcome is openpyxl's
    else:
        assert rows == list(XlsxSource(str(path), reader="openpyxl").rows())
    assert source.describe()["reader"].startswith("openpyxl")


def test_an_empty_sheet_and_the_setting(tmp_path, settings) -> None:
    openpyxl.Workbook().save(tmp_path / "empty.xlsx")
    source, read = both(tmp_path / "empty.xlsx")
    assert (source.headers(), read) == ([], [])
    assert source.describe()["reader"] == "python-calamine"
    settings.SYNC_INGEST_XLSX_READER = "openpyxl"
    forced = open_source("xlsx", str(tmp_path / "empty.xlsx"))
    assert forced.headers() == []
    assert forced.describe()["reader"] == "openpyxl (SYNC_INGEST_XLSX_READER)"


def test_the_header_and_the_rows_after_it_are_one_parse_of_the_sheet(tmp_path, monkeypatch) -> None:
    """calamine parses the whole sheet for its first row: the rows read right after the
    header go on with that read; any later read, or a header read again, parses anew."""
    path = book(tmp_path / "b.xlsx", [["K1", "a", 1, "x"], [], ["K3", "c", 3.5, "z"]])
    parses = []
    real = calamine.rows
    monkeypatch.setattr(calamine, "rows", lambda *args: (parses.append(1), real(*args))[1])
    expected = [(2, ["K1", "a", "1", "x"]), (4, ["K3", "c", "3.5", "z"])]
    source = XlsxSource(str(path))
    assert source.headers() == HEADERS
    assert list(source.rows()) == expected
    assert len(parses) == 1
    assert list(source.rows()) == expected  # a second read parses again
    assert len(parses) == 2
    assert source.headers() == source.headers() == HEADERS  # the first one's read is dropped
    assert list(source.rows()) == expected
    assert len(parses) == 4
    # A value calamine cannot vouch for past the header: openpyxl reads the rest, as before.
    doubt = book(tmp_path / "doubt.xlsx", [["K1", "a", 1, "x"], ["K2", "b", 2**60, "y"]])
    auto = XlsxSource(str(doubt))
    assert auto.headers() == HEADERS
    assert list(auto.rows()) == list(XlsxSource(str(doubt), reader="openpyxl").rows())
    assert auto.describe()["reader"].startswith("python-calamine to row 2, openpyxl from row 3")
