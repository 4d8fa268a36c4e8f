"""Files as offices export them, met in a black-box pass of issue 15 (DESIGN I10): each value
is stored as the file holds it, or its row is reported with row, column and reason."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bench.data import BUYER_HEADERS, buyer_rows
from buyers.models import Buyer
from sync.ingest.pipeline import run_ingest
from sync.models import ErrorLog

pytestmark = pytest.mark.django_db

BUDGET = BUYER_HEADERS.index("Budget")


def _errors(run) -> set[tuple]:
    return set(ErrorLog.objects.filter(run_id=run.pk).values_list(
        "row_number", "category", "code", "column"))


def test_a_decimal_comma_is_reported_never_read_as_a_thousands_separator(
        buyers_sheet, tmp_path: Path) -> None:
    rows = list(buyer_rows(5, 0))
    for row, budget in zip(rows, ("6001,50", "1.234,56", "1,234.50", "1,000", "12,3456"),
                           strict=True):
        row[BUDGET] = budget
    path = tmp_path / "buyers.csv"  # a LibreOffice export: semicolons, decimal commas
    path.write_text("\n".join(";".join(r) for r in [BUYER_HEADERS, *rows]) + "\n",
                    encoding="utf-8")
    run = run_ingest("buyers")
    assert (run.status, run.created, run.failed) == ("partial", 2, 3)
    assert _errors(run) == {(2, "validation", "not_a_number", "Budget"),
                            (3, "validation", "not_a_number", "Budget"),
                            (6, "validation", "not_a_number", "Budget")}
    stored = dict(Buyer.objects.values_list("buyer_number", "budget"))
    assert stored == {rows[2][0]: Decimal("1234.50"), rows[3][0]: Decimal("1000")}
