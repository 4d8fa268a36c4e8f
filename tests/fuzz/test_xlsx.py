"""Fuzzing the XLSX source (hypothesis): random bytes, cut or damaged zips, and real
workbooks (openpyxl) with odd cells — formulas, dates, booleans, error values, merged cells,
empty and extra sheets, long text — read as the rows they hold or fail the whole file with one
clear error, never an unhandled exception; a real ingest accounts for every row (DESIGN I8)."""

from __future__ import annotations

import datetime
import io
import zipfile

import openpyxl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from devtools.sheets import BUYER_HEADERS
from sync.ingest.exceptions import SourceUnavailableError
from sync.ingest.sources import XlsxSource, cell_text
from tests.fuzz.ingest_oracle import assert_run_accounts_for_every_row
from tests.fuzz.strategies import assert_clear

ERRORS = ["#N/A", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#NULL!"]
FORMULAS = ["=1/0", "=A1+1", "=SUM(A1:A3)", '=CONCAT("B-", "00001")', "=NOW()"]
# NOTE: no CR: openpyxl writes it raw and XML reads a raw CR as LF (Excel escapes it as
# _x000D_), so the workbook itself, not the source, would hold another text.
text = (
    st.text(max_size=40)
    .map(lambda s: ILLEGAL_CHARACTERS_RE.sub("", s).replace("\r", ""))
    .filter(lambda s: not s.startswith("="))
)
# Plain values read back exactly as a person sees them (what the oracle compares).
plain = st.one_of(
    text,
    st.text("z", min_size=5000, max_size=32767),
    st.booleans(),
    st.integers(-(10**15), 10**15),
    st.dates(datetime.date(1901, 1, 1)),
    st.from_regex(r"B-\d{5}", fullmatch=True),
    st.sampled_from(["", " ", "B-00001"]),
)
odd = st.one_of(
    st.sampled_from(ERRORS + FORMULAS),
    st.floats(allow_nan=False, allow_infinity=False),
    # NOTE: naive, as Excel stores them (it has no time zones).
    st.datetimes(datetime.datetime(1901, 1, 1)).map(  # noqa: DTZ001
        lambda d: d.replace(microsecond=0)
    ),
    st.times().map(lambda t: t.replace(microsecond=0)),
    st.none(),
)
value = st.one_of(plain, plain, odd)


def is_plain(v: object) -> bool:
    return (
        isinstance(v, str | bool | int | datetime.date)
        and not isinstance(v, datetime.datetime)
        and not (isinstance(v, str) and (v in ERRORS or v[:1] == "="))
    )


@st.composite
def workbooks(draw, *, buyers: bool = False) -> tuple[bytes, list[list[object]] | None]:
    """A workbook's bytes and the grid of its first sheet (``None`` for an empty book)."""
    book = openpyxl.Workbook()
    sheet = book.active
    head = (
        list(draw(st.permutations(BUYER_HEADERS)))
        if buyers
        else draw(st.lists(st.one_of(st.sampled_from(BUYER_HEADERS), text), max_size=8))
    )
    grid: list[list[object]] = [list(head)]
    width = max(len(head), 1)
    for _ in range(draw(st.integers(0, 8))):
        row = draw(st.lists(value, max_size=width + 2))
        if buyers and row:
            row[0:1] = [draw(st.one_of(st.from_regex(r"B-\d{5}", fullmatch=True), value))]
            row = row[:1] + row[1:]
        grid.append(row)
    if buyers:  # the key column first, so keys land under "Buyer Number"
        at = head.index("Buyer Number")
        for row in grid[1:]:
            if row:
                row.insert(at, row.pop(0))
    empty_book = draw(st.integers(0, 15)) == 0
    for r, row in enumerate([] if empty_book else grid, start=1):
        for c, v in enumerate(row, start=1):
            sheet.cell(r, c, v)
    merged = []
    if len(grid) > 2 and draw(st.booleans()) and not empty_book:
        top = draw(st.integers(2, len(grid) - 1))
        merged = [(top, 1, top + 1, 2)]
        sheet.merge_cells(start_row=top, start_column=1, end_row=top + 1, end_column=2)
    for _ in range(draw(st.integers(0, 2))):  # extra sheets: never read
        book.create_sheet(draw(st.sampled_from(["Extra", "Notes", "Σheet"])))["A1"] = "ignored"
    out = io.BytesIO()
    book.save(out)
    if empty_book:
        return out.getvalue(), None
    for top, left, bottom, right in merged:  # covered cells read as empty
        for r in range(top, bottom + 1):
            for c in range(left, right + 1):
                if (r, c) != (top, left) and len(grid[r - 1]) >= c:
                    grid[r - 1][c - 1] = None
    return out.getvalue(), grid


@st.composite
def xlsx_files(draw) -> tuple[bytes, list[list[object]] | None, bool]:
    """(bytes, grid, intact): a workbook, maybe cut or with bytes changed; or random bytes."""
    if draw(st.integers(0, 5)) == 0:
        return draw(st.binary(max_size=300)), None, False
    data, grid = draw(workbooks())
    if draw(st.booleans()):
        return data, grid, True
    # NOTE: a position by proportion: a workbook's bytes carry the time it was saved, so
    # their length may change by a byte between runs of the same example.
    at = draw(st.integers(0, 2**20)) * (len(data) - 1) // 2**20
    if draw(st.booleans()):
        return data[:at], None, False
    changed = bytes([draw(st.integers(0, 255))])
    return data[:at] + changed + data[at + 1 :], None, False


def read(path: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    source = XlsxSource(path)
    return source.headers(), list(source.rows())


@settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(case=xlsx_files())
@example(case=(b"PK\x03\x04" + b"\x00" * 60, None, False))
def test_any_xlsx_bytes_read_as_rows_or_one_clear_error(case, tmp_path_factory) -> None:
    data, grid, intact = case
    path = tmp_path_factory.mktemp("xlsx") / "sheet.xlsx"
    path.write_bytes(data)
    try:
        head, rows = read(str(path))
    except SourceUnavailableError as e:
        assert_clear(e, str(path))
        assert not intact, f"an intact workbook was refused: {e}"
        return
    assert all(isinstance(c, str) for c in head)
    assert all(isinstance(c, str) for _n, cells in rows for c in cells)
    numbers = [n for n, _cells in rows]
    assert numbers == sorted(set(numbers)) and all(n >= 2 for n in numbers)
    if not intact:
        return
    if grid is None:  # an empty first sheet: no header, no rows
        assert (head, rows) == ([], [])
        return
    read_rows = dict(rows)
    for r, row in enumerate(grid, start=1):
        cells = head if r == 1 else read_rows.get(r, [])
        for c, v in enumerate(row):
            if is_plain(v):
                got = cells[c] if c < len(cells) else ""
                assert got == cell_text(v), (r, c, v, got)


@settings(
    max_examples=12,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(book=workbooks(buyers=True))
@pytest.mark.django_db
def test_a_real_ingest_of_odd_workbooks_accounts_for_every_row(book, tmp_path_factory) -> None:
    data, _grid = book
    path = tmp_path_factory.mktemp("ingest") / "buyers.xlsx"
    path.write_bytes(data)
    head, rows = read(str(path))
    numbered = dict(rows)
    # The oracle numbers rows from 2: the parser's rows, with the empty ones back in place.
    grid = [numbered.get(n, []) for n in range(2, max(numbered, default=1) + 1)]
    assert_run_accounts_for_every_row(str(path), head, grid)


def test_a_sheet_damaged_past_its_first_rows_is_one_clear_error(tmp_path) -> None:
    """The workbook opens (read-only mode reads the sheet lazily), its sheet's XML is cut:
    the error names the file and the last row read, as for any damaged file."""
    book = openpyxl.Workbook()
    for n in range(1, 400):
        book.active.append([f"B-{n:05d}", f"name {n}"])
    whole = io.BytesIO()
    book.save(whole)
    path = tmp_path / "cut.xlsx"
    with zipfile.ZipFile(whole) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(
                item, data[: len(data) // 2] if "worksheets/sheet1" in item.filename else data
            )
    source = XlsxSource(str(path))
    assert source.headers() == ["B-00001", "name 1"]
    with pytest.raises(
        SourceUnavailableError, match=r"cut\.xlsx cannot be read past row \d+"
    ) as caught:
        list(source.rows())
    assert_clear(caught.value, str(path))
