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
~130 MB). Only the repeated keys, with their rows, are kept. A CSV file's keys are read in
one loop over its lines (``read_key_lines``), on a thread of its own while the run prepares
(``KeysAhead``); that read also checks the whole file's UTF-8 (sources.py, ``prescan``).

The sheet is read again to load it, unless the source kept the pre-scan's rows
(pipeline/spool.py: the load reads those very rows). A sheet edited in between could then
hold a duplicate the first read did not see, so both reads are compared: a CSV file by the
digest of the bytes each read took its rows from (``CsvSource.read_digest``: any edit
counts), any other source by a checksum of its ``(row, key)`` pairs. A difference is said
loudly (``conflict/sheet_changed``) instead of trusted.
"""

from __future__ import annotations

import threading
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
        self.checksum: int | bytes | None = 0  # a CSV read's digest: None until it ends
        self.rows = 0  # counted with the checksum
        self.total = 0  # the rows read (a pre-scan's: the run's rows_total)

    def same_read(self, other: SheetKeys) -> bool:
        return (self.checksum, self.rows) == (other.checksum, other.rows)


def read_keys(rows: Iterable[Row], position: int | None, keys: SheetKeys) -> Iterator[Row]:
    """``rows``, passed on unchanged; their repeated keys go into ``keys.duplicates`` when
    ``rows`` is exhausted. A key is read as ``RowValidator.key_of`` reads it."""
    index = _Index()
    first, again = index.first, index.again
    spill: Spill | None = None
    total = 0
    for total, row in enumerate(rows, 1):  # noqa: B007 - the count, after the loop
        number, cells = row
        key = cells[position].strip() if position is not None and position < len(cells) else ""
        if "\x00" in key:  # NOTE: as key_of shows it (a key with a NUL fails validation)
            key = key.replace("\x00", "\ufffd")
        if key:  # NOTE: an empty key fails validation (required) on its own
            if spill is not None:
                spill.add(number, key)
            elif first.setdefault(key, number) != number:
                again.setdefault(key, []).append(number)
            elif len(first) > IN_MEMORY:
                spill = index.spill()
        yield row
    keys.total = total
    keys.duplicates = index.duplicates()


def read_key_lines(
    lines: Iterable[list[str]], position: int | None, keys: SheetKeys, *, spill: bool = True
) -> None:
    """``read_keys`` (without the checksum) of a CSV file's lines (``CsvSource.read_lines``),
    in one loop: the pre-scan of a CSV file costs little more than the csv module's parse.
    ``spill=False``: more than ``IN_MEMORY`` keys raise ``TooManyKeys`` (off the run's
    thread, the temporary table, on the run's connection, is out of reach)."""
    index = _Index()
    first, again = index.first, index.again
    spill_allowed, spilled = spill, None
    total = 0
    if position is None:  # pragma: no cover - a sheet without its key column is refused
        position = 1 << 30
    for number, cells in enumerate(lines, 2):
        # NOTE: the same reading of the key as read_keys (the same loop, without a
        # generator per row); an empty line is no row, and its empty key no key.
        key = cells[position].strip() if position < len(cells) else ""
        if not key:
            total += any(cells)
            continue
        total += 1
        if "\x00" in key:
            key = key.replace("\x00", "\ufffd")
        if spilled is not None:
            spilled.add(number, key)
        elif first.setdefault(key, number) != number:
            again.setdefault(key, []).append(number)
        elif len(first) > IN_MEMORY:
            if not spill_allowed:
                raise TooManyKeys
            spilled = index.spill()
    keys.total = total
    keys.duplicates = index.duplicates()


class TooManyKeys(Exception):  # noqa: N818 - control flow: read them on the run's thread
    pass


class KeysAhead:
    """A CSV file's key pre-scan (``read_key_lines``) on a thread of its own, started as soon
    as its header is read: it runs while the run's thread waits for its next round trips
    (its state, the real columns' types), which otherwise leave the CPU idle. It never
    touches the database: past ``IN_MEMORY`` keys it stops, and the run reads the keys
    itself (``result`` is then None). ``result`` raises what the read raised."""

    def __init__(self, source, position: int) -> None:
        self.position = position
        self.keys = SheetKeys()
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._read, args=(source,), name="sync-key-prescan", daemon=True
        )
        self._thread.start()

    def _read(self, source) -> None:
        try:
            source.read_lines(
                lambda lines: read_key_lines(lines, self.position, self.keys, spill=False)
            )
            self.keys.checksum = source.read_digest
        except BaseException as e:  # noqa: BLE001 - raised on the run's thread (result)
            self._error = e

    def wait(self) -> None:
        self._thread.join()

    def result(self) -> SheetKeys | None:
        self._thread.join()
        if isinstance(self._error, TooManyKeys):
            return None
        if self._error is not None:
            raise self._error
        return self.keys


class _Index:
    """The keys of one read: in memory (key -> first row, and the later rows of a repeated
    key) up to ``IN_MEMORY`` keys; then in the temporary table (``spill``)."""

    def __init__(self) -> None:
        self.first: dict[str, int] = {}
        self.again: dict[str, list[int]] = {}
        self._spill: Spill | None = None

    def spill(self) -> Spill:
        self._spill = Spill(self.first, self.again)
        self.first.clear()  # NOTE: the caller's names for them now stay empty
        self.again.clear()
        return self._spill

    def duplicates(self) -> dict[str, list[int]]:
        if self._spill is not None:
            return self._spill.duplicates()
        first = self.first
        return {key: [first[key], *later] for key, later in self.again.items()}


class Spill:
    """A sheet's ``(row, key)`` pairs in the temporary table, ``COPY``ed in chunks; the
    repeated keys are found there with one ``GROUP BY``."""

    def __init__(self, first: dict[str, int], again: dict[str, list[int]]) -> None:
        self.chunk: list[tuple[int, str]] = []
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {TABLE}"
                " (row_number integer NOT NULL, natural_key text NOT NULL)"
            )
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
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY {TABLE} (row_number, natural_key) FROM STDIN") as copy,
        ):
            for item in self.chunk:
                copy.write_row(item)
        self.chunk.clear()

    def duplicates(self) -> dict[str, list[int]]:
        self._copy()
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT natural_key, array_agg(row_number ORDER BY row_number) FROM {TABLE}"  # noqa: S608
                " GROUP BY natural_key HAVING count(*) > 1"
            )
            found = dict(cursor.fetchall())
            cursor.execute(f"TRUNCATE {TABLE}")
        return found
