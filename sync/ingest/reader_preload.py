"""Loaded by the reader processes' forkserver, and by nothing else (pipeline/reader.py):
Django set up (no database connection is opened) and the pipeline imported, once per server,
so every reader forked from it starts in milliseconds."""

from sync.ingest.reader_boot import _setup

_setup()  # pragma: no cover - runs in the forkserver
