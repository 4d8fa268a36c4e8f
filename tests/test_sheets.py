"""The made-up sheets (``devtools/sheets.py``) the demo, the tests and the benchmarks share,
written by its command line as docs/ingestion.md shows it."""

from __future__ import annotations

import csv

import openpyxl

from devtools.sheets import BUYER_HEADERS, LIMIT, SELLER_HEADERS, main


def test_the_command_line_writes_buyers_with_long_values_and_sellers(tmp_path, capsys) -> None:
    assert main(["buyers", str(tmp_path / "b.csv"), "--rows", "30", "--long", "7"]) == 0
    with (tmp_path / "b.csv").open(encoding="utf-8", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    assert header == BUYER_HEADERS and len(rows) == 30
    assert sum(any(len(value) > LIMIT for value in row) for row in rows) == 7
    assert main(["sellers", str(tmp_path / "s.xlsx"), "--rows", "4"]) == 0
    header, *rows = openpyxl.load_workbook(tmp_path / "s.xlsx").active.iter_rows(values_only=True)
    assert list(header) == SELLER_HEADERS and len(rows) == 4
    assert "wrote 4 sellers" in capsys.readouterr().err
