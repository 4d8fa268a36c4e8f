"""The rows of a sheet that is costly to read, kept on disk by the pre-scan for the load.

A run reads its sheet whole before the first batch (its key pre-scan, keys.py) and again to
load it. For a CSV file the second read costs little; for a workbook it is the XML parse
again (openpyxl: most of an XLSX run's time), and for a Google Sheet it is every request
again. Such a source is read once: the pre-scan writes the rows it reads to a temporary file
in chunks (pickled, so a ``FormulaRow``'s marks survive), and every later read of the run
(the load, a recovery re-sync) reads that file. Memory stays flat: one chunk at a time. The
loaded rows are then the very rows whose keys the pre-scan checked, so a sheet edited while
the run reads it cannot slip a duplicate past it.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO

from sync.ingest.sources import Row, Source

CHUNK = 2_000  # rows per pickled chunk


class SpooledSource:
    """``source``, whose ``rows`` are read from the spool once ``spool`` has filled it."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.kind = source.kind
        self.location = source.location
        self._file: IO[bytes] | None = None

    def spool(self, rows: Iterable[Row]) -> Iterator[Row]:
        """``rows``, passed on unchanged and written to the spool; the spool is read from the
        next ``rows()`` on, once ``rows`` was read to its end."""
        self.close()
        file = tempfile.TemporaryFile(prefix="sync-ingest-", suffix=".spool")  # noqa: SIM115
        chunk: list[Row] = []
        try:
            for row in rows:
                chunk.append(row)
                if len(chunk) == CHUNK:
                    pickle.dump(chunk, file, pickle.HIGHEST_PROTOCOL)
                    chunk = []
                yield row
            if chunk:
                pickle.dump(chunk, file, pickle.HIGHEST_PROTOCOL)
        except BaseException:
            file.close()
            raise
        self._file = file

    def rows(self) -> Iterator[Row]:
        if self._file is None:  # not spooled (yet): the source itself
            yield from self.source.rows()
            return
        file = self._file
        file.seek(0)
        while True:
            try:
                chunk = pickle.load(file)  # noqa: S301 - the run's own file, written above
            except EOFError:
                return
            yield from chunk

    def path(self) -> str:
        """A path another process opens the filled spool by (reader.py). NOTE: the spool
        has no name (it goes with the run, even a killed one); Linux's /proc opens it."""
        if self._file is None:
            msg = "not spooled yet: the pre-scan spools the sheet"
            raise RuntimeError(msg)
        self._file.flush()
        return f"/proc/{os.getpid()}/fd/{self._file.fileno()}"

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def on_retry(self):
        """The source's retry callback while it is still read (it logs to the database, so
        the load reads it in turn, pipeline/batches.py); none once the spool is read."""
        return None if self._file is not None else getattr(self.source, "on_retry", None)

    def prescan(self) -> object:
        return self.source.prescan()

    def describe(self) -> dict:
        return self.source.describe()

    def headers(self) -> list[str]:
        return self.source.headers()
