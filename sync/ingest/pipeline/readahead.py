"""Reading and validating a run's next batches on a thread of their own, while the run's own
thread waits for PostgreSQL to write the current one.

A run is a loop of Python work (read the sheet's rows, validate them, encode the batch) and
database work (the batch statement and its commit). Done in turns, one of the two is always
idle; with the reading and validation here, a batch is ready when the previous one commits.
Nothing here touches the database, so only sources that never call back into the run (a
retry of Google Sheets logs to the database) are read here; the others are read in turn.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from typing import Generic, TypeVar

T = TypeVar("T")
_DONE = object()


class ReadAhead(Generic[T]):
    """``prepare(batch)`` for every batch of ``rows``, up to ``depth`` batches ahead of the
    consumer, in order. An exception in the reading or preparing is raised to the consumer
    where the batch it broke would have been. ``close`` (also on leaving a ``with`` block)
    stops the thread, e.g. when the consumer stops early (a cancelled run)."""

    def __init__(
        self, batches: Iterable[list], prepare: Callable[[list], T], *, depth: int = 2
    ) -> None:
        self._batches = batches
        self._prepare = prepare
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sync-read-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for batch in self._batches:
                prepared = self._prepare(batch)
                if self._stop.is_set():
                    return
                self._queue.put((batch, prepared))
            self._queue.put(_DONE)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            self._queue.put(e)
        finally:
            close = getattr(self._batches, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[tuple[list, T]]:
        while (item := self._queue.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        """Stop the reader: what it queued is dropped, which frees it if it waits to queue
        more; it stops before its next batch."""
        self._stop.set()
        while self._thread.is_alive():
            with suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        self._thread.join()

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def in_turn(batches: Iterable[list], prepare: Callable[[list], T]) -> Iterator[tuple[list, T]]:
    """The same as ``ReadAhead``, on the caller's thread."""
    for batch in batches:
        yield batch, prepare(batch)
