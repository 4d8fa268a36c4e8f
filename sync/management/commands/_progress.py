"""Shared by the sync commands: a one-line progress bar and the mapping of engine errors.

The bar is redrawn in place (``\r``) on one line. Anything else printed while it is drawn —
a log record (on stderr, often the same terminal), the command's own summary — first ends the
bar's line, so it starts on a line of its own instead of being glued to the bar's end.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TextIO

from django.core.management.base import CommandError, OutputWrapper

from sync.cache.exceptions import CacheUnavailableError, NotSyncedError
from sync.ingest.exceptions import IngestError


def bar(done: int, total: int, width: int = 30) -> str:
    filled = min(width, int(width * done / total)) if total else width
    percent = 100 * done / total if total else 100
    return f"[{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} {percent:5.1f}%"


class ProgressLine:
    """A progress bar drawn in place on ``stream``; ``end()`` (or any log record emitted
    while it is open, or leaving the ``with`` block) finishes its line with a newline."""

    def __init__(self, stream: TextIO | OutputWrapper, *, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled
        self.open = False
        self._handlers: list[logging.Handler] = []

    def show(self, text: str) -> None:
        if not self.enabled:
            return
        self._write(f"\r{text}")
        self.open = True

    def end(self) -> None:
        """End the bar's line (once): what is printed next starts on a line of its own."""
        if self.open:
            self.open = False
            self._write("\n")

    def _write(self, text: str) -> None:
        if isinstance(self.stream, OutputWrapper):
            self.stream.write(text, ending="")  # its own ending would be a newline
        else:
            self.stream.write(text)
        self.stream.flush()

    def filter(self, record: logging.LogRecord) -> bool:
        # A handler filter: called just before a handler prints the record.
        self.end()
        return True

    def __enter__(self) -> ProgressLine:
        for handler in _all_handlers():
            handler.addFilter(self)
            self._handlers.append(handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for handler in self._handlers:
            handler.removeFilter(self)
        self._handlers.clear()
        self.end()


def _all_handlers() -> list[logging.Handler]:
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    return list({id(h): h for logger in loggers for h in logger.handlers}.values())


@contextlib.contextmanager
def engine_errors() -> Iterator[None]:
    """Turn the engine's and ingestion's errors a user can act on into ``CommandError``s."""
    try:
        yield
    except NotSyncedError as e:
        msg = f"{e}. List the synced models with `manage.py sync_verify --list`."
        raise CommandError(msg) from e
    except CacheUnavailableError as e:
        msg = f"{e}. Is the cache Redis (REDIS_URL) running?"
        raise CommandError(msg) from e
    except IngestError as e:  # its messages already say which source and what to fix
        raise CommandError(str(e)) from e
