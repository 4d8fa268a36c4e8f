"""Read the next batch from PostgreSQL while the current one goes to Redis.

Replay and warm take turns with the two servers: claim and read a batch, write it to Redis,
settle it, then the next. Most of that time is spent waiting on one server or the other,
not in Python (``bench/cache.py`` shows the CPU of each process). ``read_ahead`` runs the
reading side (``source``, a generator of batches) on a thread of its own, exactly one batch
ahead, so the next batch's statements run while the caller writes the current one; psycopg
and redis-py release the interpreter lock while they wait.

One batch ahead, never more: a replayer holds the lease of at most one batch it has not
started writing. The thread has its own database connection, closed when it ends; inside a
transaction (``atomic``) nothing runs ahead, since another connection would not see that
transaction's rows: the batches are read on the caller's connection, one after another.
Whatever the source raises is raised to the caller at the batch it would have produced.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from django.db import connections

T = TypeVar("T")
logger = logging.getLogger(__name__)

_END = object()


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class ReadAhead(Generic[T]):
    """The batches of ``source()``, produced on a thread one batch ahead of the caller.

    Iterate over it; ``close()`` (always, in a ``finally``) stops the thread and answers the
    batches it had produced that the caller never took (at most one), so that the caller can
    settle them (a replayer's claimed intents must not wait out their lease unseen).
    """

    def __init__(self, source: Callable[[], Iterator[T]], using: str = "default") -> None:
        self._items: queue.Queue[object] = queue.Queue()
        # A permit to produce one more batch: the caller gives one back per batch it takes.
        self._permits = threading.Semaphore(1)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(
            target=self._produce, args=(source, using), name="sync-read-ahead", daemon=True
        )
        self._thread.start()

    def _produce(self, source: Callable[[], Iterator[T]], using: str) -> None:
        try:
            batches = source()
            while True:
                self._permits.acquire()
                if self._stop.is_set():
                    return
                batch = next(batches, _END)
                self._items.put(batch)
                if batch is _END:
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the caller, raised there
            self._items.put(_Failed(e))
        finally:
            connections[using].close()

    def __iter__(self) -> ReadAhead[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        item = self._items.get()
        if item is _END:
            self._done = True
            raise StopIteration
        if isinstance(item, _Failed):
            self._done = True
            raise item.error
        self._permits.release()
        return item  # type: ignore[return-value]  # anything else is a batch of source's

    def close(self) -> list[T]:
        """Stop producing; the batches produced and not taken."""
        self._stop.set()
        self._permits.release()
        self._thread.join()
        left: list[T] = []
        while not self._items.empty():
            item = self._items.get()
            if isinstance(item, _Failed):
                # The caller stopped first (it had a failure of its own to handle): the
                # statement that failed claimed nothing, but say so.
                logger.warning("read-ahead failed after its caller stopped: %r", item.error)
            elif item is not _END:
                left.append(item)  # type: ignore[arg-type]
        return left


class InLine(Generic[T]):
    """The same interface, reading on the caller's connection as it iterates (inside a
    transaction, where another connection would not see its rows)."""

    def __init__(self, source: Callable[[], Iterator[T]]) -> None:
        self._batches = source()

    def __iter__(self) -> Iterator[T]:
        return self._batches

    def close(self) -> list[T]:
        return []


def read_ahead(
    source: Callable[[], Iterator[T]], using: str = "default"
) -> ReadAhead[T] | InLine[T]:
    """The batches of ``source()``: one ahead on a thread, or in line inside a transaction."""
    if connections[using].in_atomic_block:
        return InLine(source)
    return ReadAhead(source, using)


# The collector's first threshold while batches go by (``fewer_collections``).
GC_THRESHOLD = 100_000


class _Collector:
    lock = threading.Lock()
    holders = 0
    found: tuple[int, int, int] = (0, 0, 0)  # the thresholds before the first holder
    raised: tuple[int, int, int] = (0, 0, 0)  # what it set


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Run CPython's cyclic garbage collector less often while replay or warm runs.

    A batch is some ten thousand tuples, lists and dicts (rows, values, states, writes) that
    live until it is written. At the default threshold (700 new ones) they set off a
    collection every few dozen rows and, every few batches, one of the whole heap (a Django
    process holds some 140,000 objects): a third of replay's CPU and half of warm's
    (bench/cache.py). Their memory goes back by reference counting when a batch is done;
    only reference cycles wait for the collector, at most ``GC_THRESHOLD`` objects' worth.
    Process-wide: the first holder raises the threshold, the last one puts back what it
    found, unless something else set another meanwhile.
    """
    with _Collector.lock:
        if not _Collector.holders:
            found = _Collector.found = gc.get_threshold()
            _Collector.raised = (max(found[0], GC_THRESHOLD), found[1], found[2])
            gc.set_threshold(*_Collector.raised)
        _Collector.holders += 1
    try:
        yield
    finally:
        with _Collector.lock:
            _Collector.holders -= 1
            if not _Collector.holders and gc.get_threshold() == _Collector.raised:
                gc.set_threshold(*_Collector.found)
