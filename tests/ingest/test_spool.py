"""The spool that lets a workbook or a Google Sheet be read once per run (pipeline/spool.py),
and the key pre-scan's reading of keys (pipeline/keys.py), on rows made here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sync.ingest.pipeline import spool
from sync.ingest.pipeline.keys import SheetKeys, read_key_lines, read_keys
from sync.ingest.pipeline.spool import SpooledSource
from sync.ingest.sources import FormulaRow


class _Sheet:
    """A source that counts its reads, and can break after ``fail_after`` rows."""

    kind, location = "sheets", "sheet-1"

    def __init__(self, count: int, *, fail_after: int | None = None) -> None:
        self.count, self.fail_after, self.reads = count, fail_after, 0
        self.on_retry = print

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        self.reads += 1
        for number in range(2, self.count + 2):
            if self.fail_after is not None and number - 2 == self.fail_after:
                msg = "the connection dropped"
                raise OSError(msg)
            cells = FormulaRow([f"K{number}", ""]) if number == 5 else [f"K{number}", "x"]
            if number == 5:
                cells.formulas = (1,)
            yield number, cells

    def prescan(self) -> None:
        return None

    def describe(self) -> dict:
        return {"worksheet": "(the first)"}

    def headers(self) -> list[str]:
        return ["Key", "Value"]


def test_the_load_reads_the_rows_of_the_pre_scan(monkeypatch) -> None:
    monkeypatch.setattr(spool, "CHUNK", 7)  # several chunks and a last short one
    sheet = _Sheet(30)
    source = SpooledSource(sheet)
    assert source.on_retry is print  # read from the source: its retries are logged in turn
    first = list(source.spool(source.rows()))
    assert source.on_retry is None  # read from the spool: nothing calls back into the run
    assert sheet.reads == 1
    for _ in range(2):  # the load, then a recovery re-sync: the same rows, no new request
        again = list(source.rows())
        assert again == first and sheet.reads == 1
    marked = next(cells for number, cells in again if number == 5)
    assert type(marked) is FormulaRow and marked.formulas == (1,)  # the formula's mark kept
    assert (source.kind, source.location, source.headers()) == (
        "sheets",
        "sheet-1",
        ["Key", "Value"],
    )
    assert source.describe() == {"worksheet": "(the first)"}
    source.close()
    assert list(source.rows()) == first and sheet.reads == 2  # closed: the source again


def test_a_read_that_breaks_keeps_no_spool() -> None:
    sheet = _Sheet(10, fail_after=4)
    source = SpooledSource(sheet)
    with pytest.raises(OSError, match="dropped"):
        list(source.spool(source.rows()))
    assert source.on_retry is print  # nothing spooled: a retry reads the source again
    sheet.fail_after = None
    assert len(list(source.spool(source.rows()))) == 10


def test_keys_are_read_as_validation_reads_them() -> None:
    rows = [
        (2, [" K1 ", "a"]),
        (3, ["K\x002", "b"]),
        (4, ["K1", "c"]),
        (5, ["", "d"]),
        (6, ["K\ufffd2"]),
    ]
    keys = SheetKeys()
    assert list(read_keys(iter(rows), 0, keys)) == rows  # passed on unchanged
    # Stripped, a NUL shown as validation shows it; an empty key is validation's to report.
    assert keys.duplicates == {"K1": [2, 4], "K\ufffd2": [3, 6]}
    assert keys.total == 5
    # A CSV file's lines, read in the pre-scan's one loop, give the same keys.
    lines = SheetKeys()
    read_key_lines(iter([cells for _number, cells in rows]), 0, lines)
    assert (lines.duplicates, lines.total) == (keys.duplicates, keys.total)
