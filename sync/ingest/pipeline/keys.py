"""The sheet's keys, read once before the first batch: duplicates whatever the batch size.

A key on several rows of a sheet is a conflict the sheet must resolve, not the run: **none
of those rows is stored** (an existing database row with that key is left as it is), and
each of them fails with ``conflict/duplicate_key`` naming every row that holds the key
(DESIGN I10; docs/ingestion.md, "The duplicate rule"). Finding them needs the whole sheet
before the first batch commits, so the run reads it once ahead (the pass that measures
values for the schema check, when there is one) and copies ``(row, key)`` into a temporary
table on its own connection: memory stays flat for any size (a million keys in a Python set
would be ~100 MB), and one ``GROUP BY`` finds the repeated keys. Only those, with their
rows, are kept in memory.

The sheet is read again to load it. A sheet edited in between (a Google Sheet someone is
typing in) could then hold a duplicate the first read did not see: both reads fold every
``(row, key)`` into a checksum, and a difference fails the run's verification loudly
(``conflict/sheet_changed``) instead of trusting it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from django.db import connection

from sync.ingest.sources import Row

TABLE = "sync_ingest_sheet_keys"  # a temporary table: this session's, gone with it
CHUNK = 20_000  # keys per COPY (memory stays flat)


class SheetKeys:
    """The keys of one read of the sheet: a checksum, and the keys on several rows."""

    def __init__(self) -> None:
        self.duplicates: dict[str, list[int]] = {}  # key -> every row holding it, in order
        self.checksum = 0
        self.rows = 0

    def fold(self, row_number: int, key: str) -> None:
        """Count one row of a read into the checksum (order-independent, cheap)."""
        self.checksum ^= hash((row_number, key))
        self.rows += 1

    def same_read(self, other: SheetKeys) -> bool:
        return (self.checksum, self.rows) == (other.checksum, other.rows)


def read_keys(rows: Iterable[Row], key_of, keys: SheetKeys) -> Iterator[Row]:
    """``rows``, passed on unchanged, each copied (row, key) to the temporary table; the
    table's repeated keys go into ``keys.duplicates`` when ``rows`` is exhausted."""
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {TABLE}"
                       " (row_number integer NOT NULL, natural_key text NOT NULL)")
        cursor.execute(f"TRUNCATE {TABLE}")
        # NOTE: one COPY per chunk, never open while the source reads: a source that logs
        # a retry to the database (Google Sheets) would wait on a connection busy copying.
        chunk: list[tuple[int, str]] = []
        for row in rows:
            key = key_of(row[1])
            keys.fold(row[0], key)
            if key:  # NOTE: an empty key fails validation (required) on its own
                chunk.append((row[0], key))
                if len(chunk) == CHUNK:
                    _copy(cursor, chunk)
            yield row
        _copy(cursor, chunk)
        cursor.execute(
            f"SELECT natural_key, array_agg(row_number ORDER BY row_number) FROM {TABLE}"  # noqa: S608
            " GROUP BY natural_key HAVING count(*) > 1")
        keys.duplicates = dict(cursor.fetchall())
        cursor.execute(f"TRUNCATE {TABLE}")


def _copy(cursor, chunk: list[tuple[int, str]]) -> None:
    with cursor.copy(f"COPY {TABLE} (row_number, natural_key) FROM STDIN") as copy:
        for item in chunk:
            copy.write_row(item)
    chunk.clear()
