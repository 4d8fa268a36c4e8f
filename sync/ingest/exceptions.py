"""Errors of ingestion: one base class, a subclass per thing a caller can act on."""

from __future__ import annotations


class IngestError(Exception):
    """Base of ingestion errors."""


class SourceConfigError(IngestError):
    """The source is unknown or its configuration is wrong (the message says what to fix)."""


class SourceUnavailableError(IngestError):
    """The sheet could not be read (file missing, network fault after every retry)."""


class SyncAlreadyRunningError(IngestError):
    """Another run of the same source holds its lock."""


class RunAbortedError(IngestError):
    """A run stopped for a reason that is not one row's (lost lock, database gone)."""
