"""Files as offices export them, met in a black-box pass (nothing dropped unsaid): each value
is stored as the file holds it, or its row is reported with row, column and reason."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest

from buyers.models import Buyer
from devtools.sheets import BUYER_HEADERS, buyer_rows
from sync.ingest.pipeline import run_ingest
from sync.models import ErrorLog
from tests.ingest.conftest import set_source_key

pytestmark = pytest.mark.django_db

BUDGET = BUYER_HEADERS.index("Budget")


def _errors(run) -> set[tuple]:
    return set(
        ErrorLog.objects.filter(run_id=run.pk).values_list(
            "row_number", "category", "code", "column"
        )
    )


def test_a_decimal_comma_is_reported_never_read_as_a_thousands_separator(
    buyers_sheet, tmp_path: Path
) -> None:
    rows = list(buyer_rows(5, 0))
    for row, budget in zip(
        rows, ("6001,50", "1.234,56", "1,234.50", "1,000", "12,3456"), strict=True
    ):
        row[BUDGET] = budget
    path = tmp_path / "buyers.csv"  # a LibreOffice export: semicolons, decimal commas
    path.write_text("\n".join(";".join(r) for r in [BUYER_HEADERS, *rows]) + "\n", encoding="utf-8")
    run = run_ingest("buyers")
    assert (run.status, run.created, run.failed) == ("partial", 2, 3)
    assert _errors(run) == {
        (2, "validation", "not_a_number", "Budget"),
        (3, "validation", "not_a_number", "Budget"),
        (6, "validation", "not_a_number", "Budget"),
    }
    stored = dict(Buyer.objects.values_list("buyer_number", "budget"))
    assert stored == {rows[2][0]: Decimal("1234.50"), rows[3][0]: Decimal("1000")}


def _csv(rows: list[list[str]], headers: list[str] = BUYER_HEADERS) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([headers, *rows])
    return out.getvalue()


def test_a_line_cut_short_or_split_is_reported_never_stored_with_blanks(
    buyers_sheet, tmp_path: Path
) -> None:
    rows = list(buyer_rows(6, 0))
    buyers_sheet(rows)
    assert run_ingest("buyers").created == 6
    before = {
        b.buyer_number: (b.status, b.notes, b.inquiry_date, b.version) for b in Buyer.objects.all()
    }
    path = tmp_path / "buyers.csv"
    text = _csv(
        [*rows[:2], rows[2][:8], rows[3][1:], rows[4]], headers=[*BUYER_HEADERS, ""]
    )  # Excel: a trailing empty header cell
    # An unquoted comma in a name shifts the line by one cell (into the empty header's).
    extra = _csv([[*rows[5][:2], "Jr.", *rows[5][2:]]]).split("\r\n", 1)[1]
    path.write_text(text + extra, encoding="utf-8")
    run = run_ingest("buyers")
    assert (run.status, run.unchanged, run.failed) == ("partial", 3, 3)
    assert {(row, code) for row, _cat, code, _col in _errors(run) if row} == {
        (4, "ragged_row"),
        (5, "ragged_row"),
        (7, "ragged_row"),
    }
    # The split line's key is not in the key column: that row is kept, and said to have
    # left the sheet (docs/ingestion.md, "Rows that left the sheet").
    assert run.verification["left_sheet"]["keys"] == [rows[3][0]]
    after = {
        b.buyer_number: (b.status, b.notes, b.inquiry_date, b.version) for b in Buyer.objects.all()
    }
    assert after == before  # not one field blanked or shifted

    # The last line of a file cut off mid-row, inside a quoted cell: the file is not whole.
    path.write_text(
        _csv(rows[:5]) + _csv([rows[5][:11]]).split("\r\n")[1] + ',"' + rows[5][11][:3],
        encoding="utf-8",
    )
    run = run_ingest("buyers")
    assert run.status == "failed"
    assert "line 7" in run.message and "quoted" in run.message
    assert ErrorLog.objects.get(run_id=run.pk).category == "source"
    assert {
        b.buyer_number: (b.status, b.notes, b.inquiry_date, b.version) for b in Buyer.objects.all()
    } == before


def test_utf16_without_a_byte_order_mark_is_refused_saying_so(
    buyers_sheet, settings, tmp_path: Path
) -> None:
    rows = list(buyer_rows(4, 0))
    path = tmp_path / "buyers.csv"  # a "Unicode text" export whose BOM a tool dropped
    path.write_bytes(_csv(rows).replace(",", "\t").encode("utf-16-le"))
    run = run_ingest("buyers")
    assert run.status == "failed"
    assert "UTF-16 text without a byte-order mark" in run.message
    assert 'declare encoding = "utf-16-le"' in run.message
    assert list(ErrorLog.objects.filter(run_id=run.pk).values_list("category", "code")) == [
        ("source", "encoding")
    ]
    assert not Buyer.objects.exists()
    set_source_key(settings, "buyers", 'encoding = "utf-16-le"')
    run = run_ingest("buyers")
    assert (run.status, run.created) == ("succeeded", 4)
    assert Buyer.objects.get(buyer_number=rows[0][0]).name == rows[0][1]


def test_a_number_formatted_with_leading_zeros_keeps_them(settings, tmp_path: Path) -> None:
    """Excel's "00000" format (codes, zip codes): the cell holds 123 and shows 00123."""
    import openpyxl

    rows = list(buyer_rows(2, 0))
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(BUYER_HEADERS)
    for row in rows:
        sheet.append(row)
    phone = BUYER_HEADERS.index("Phone") + 1
    sheet.cell(2, phone, 123).number_format = "00000"
    sheet.cell(3, phone, 4567).number_format = "0"  # a plain number format: as it is
    path = tmp_path / "buyers.xlsx"
    book.save(path)
    run = run_ingest("buyers", file=str(path))
    assert (run.status, run.created) == ("succeeded", 2)
    stored = dict(Buyer.objects.values_list("buyer_number", "phone"))
    assert stored == {rows[0][0]: "00123", rows[1][0]: "4567"}
