"""Errors of ingestion: one base class, a subclass per thing a caller can act on."""

from __future__ import annotations

import functools


class IngestError(Exception):
    """Base of ingestion errors."""


class SourceConfigError(IngestError):
    """The source is unknown or its configuration is wrong (the message says what to fix)."""


class SourceUnavailableError(IngestError):
    """The sheet could not be read for a while (a network fault after every retry).

    ``category`` and ``code`` are what the run's error log records (``ErrorLog.Category``).
    """

    category = "network"
    code = "unavailable"


class SourceFileError(SourceUnavailableError):
    """The file itself cannot be used as it is: missing, unreadable, undecodable, empty, not a
    workbook, without the key column, with ambiguous headers. No retry helps; the file (or the
    source's configuration) must change. ``line`` is the line of the file where it went wrong,
    when there is one."""

    category = "source"

    def __init__(self, message: str, *, code: str, line: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.line = line

    def __reduce__(self):
        # NOTE: raised in the reader process and pickled to the run (pipeline/reader.py):
        # the default pickling would call the class without its keyword-only ``code``.
        return (functools.partial(type(self), code=self.code, line=self.line), self.args)


class SyncAlreadyRunningError(IngestError):
    """Another run of the same source holds its lock."""


class RunAbortedError(IngestError):
    """A run stopped for a reason that is not one row's (lost lock, database gone)."""
