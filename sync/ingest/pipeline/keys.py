"""The sheet's keys, read once before the first batch: duplicates whatever the batch size.

A key on several rows of a sheet is a conflict the sheet must resolve, not the run: **none
of those rows is stored** (an existing database row with that key is left as it is), and
each of them fails with ``conflict/duplicate_key`` naming every row that holds the key
(DESIGN I10; docs/ingestion.md, "The duplicate rule"). Finding them needs the whole sheet
before the first batch commits, so the run reads it once ahead (the pass that measures
values for the schema check, when there is one). The keys of up to ``IN_MEMORY`` rows are
kept in a dict (key -> first row: ~13 MB for 100,000 keys, a fraction of a millisecond per
thousand rows); a sheet with more spills them, and every later ``(row, key)``, into a
temporary table on the run's own connection, ``COPY``ed in chunks, where one ``GROUP BY``
finds the repeated keys: memory stays flat for any size (a million keys in a dict would be
~130 MB). Only the repeated keys, with their rows, are kept.

The sheet is read again to load it, unless the source kept the pre-scan's rows
(pipeline/spool.py: the load reads those very rows). A sheet edited in between could then
hold a duplicate the first read did not see, so both reads are compared: a CSV file by the
digest of the bytes each read took its rows from (``CsvSource.read_digest``: any edit
counts), any other source by a checksum of its ``(row, key)`` pairs. A difference is said
loudly (``conflict/sheet_changed``) instead of trusted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from django.db import connection

from sync.ingest.sources import Row

TABLE = "sync_ingest_sheet_keys"  # a temporary table: this session's, gone with it
IN_MEMORY = 100_000  # keys kept in a dict; past this, in the temporary table
CHUNK = 20_000  # keys per COPY (memory stays flat)


class SheetKeys:
    """The keys of one read of the sheet: the keys on several rows, and what tells two reads
    apart (``checksum``, ``rows``: see ``same_read``)."""

    def __init__(self) -> None:
        self.duplicates: dict[str, list[int]] = {}  # key -> every row holding it, in order
        self.checksum: int | bytes = 0
        self.rows = 0  # counted with the checksum
        self.total = 0  # the rows read (a pre-scan's: the run's rows_total)

    def fold(self, row_number: int, key: str) -> None:
        """Count one row of a read into the checksum (order-independent, cheap)."""
        self.checksum ^= hash((row_number, key))
        self.rows += 1

    def same_read(self, other: SheetKeys) -> bool:
        return (self.checksum, self.rows) == (other.checksum, other.rows)


def read_keys(rows: Iterable[Row], position: int | None, keys: SheetKeys, *,
              fold: bool = True) -> Iterator[Row]:
    """``rows``, passed on unchanged; their repeated keys go into ``keys.duplicates`` when
    ``rows`` is exhausted (and each ``(row, key)`` into ``keys``' checksum when ``fold``).
    A key is read as ``RowValidator.key_of`` reads it."""
    first: dict[str, int] = {}  # key -> its first row, up to IN_MEMORY keys
    again: dict[str, list[int]] = {}  # key -> its later rows
    spilled: Spill | None = None
    checksum, count, total = 0, 0, 0
    for total, row in enumerate(rows, 1):  # noqa: B007 - the count, after the loop
        number, cells = row
        key = cells[position].strip() if position is not None and position < len(cells) else ""
        if "\x00" in key:  # NOTE: as key_of shows it (a key with a NUL fails validation)
            key = key.replace("\x00", "\ufffd")
        if fold:
            checksum ^= hash((number, key))
            count += 1
        if key:  # NOTE: an empty key fails validation (required) on its own
            if spilled is not None:
                spilled.add(number, key)
            elif first.setdefault(key, number) != number:
                again.setdefault(key, []).append(number)
            elif len(first) > IN_MEMORY:
                spilled = Spill(first, again)
                first, again = {}, {}
        yield row
    keys.checksum, keys.rows, keys.total = checksum, count, total
    if spilled is not None:
        keys.duplicates = spilled.duplicates()
    else:
        keys.duplicates = {key: [first[key], *later] for key, later in again.items()}


class Spill:
    """A sheet's ``(row, key)`` pairs in the temporary table, ``COPY``ed in chunks; the
    repeated keys are found there with one ``GROUP BY``."""

    def __init__(self, first: dict[str, int], again: dict[str, list[int]]) -> None:
        self.chunk: list[tuple[int, str]] = []
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {TABLE}"
                           " (row_number integer NOT NULL, natural_key text NOT NULL)")
            cursor.execute(f"TRUNCATE {TABLE}")
        for key, number in first.items():
            self.add(number, key)
        for key, later in again.items():
            for number in later:
                self.add(number, key)

    def add(self, number: int, key: str) -> None:
        self.chunk.append((number, key))
        if len(self.chunk) == CHUNK:
            self._copy()

    def _copy(self) -> None:
        # NOTE: one COPY per chunk, never open while the source reads: a source that logs
        # a retry to the database (Google Sheets) would wait on a connection busy copying.
        with connection.cursor() as cursor, cursor.copy(
                f"COPY {TABLE} (row_number, natural_key) FROM STDIN") as copy:
            for item in self.chunk:
                copy.write_row(item)
        self.chunk.clear()

    def duplicates(self) -> dict[str, list[int]]:
        self._copy()
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT natural_key, array_agg(row_number ORDER BY row_number) FROM {TABLE}"  # noqa: S608
                " GROUP BY natural_key HAVING count(*) > 1")
            found = dict(cursor.fetchall())
            cursor.execute(f"TRUNCATE {TABLE}")
        return found
