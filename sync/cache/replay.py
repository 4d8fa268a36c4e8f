"""Replay of the outbox: drain ``sync_retry_queue`` into Redis (DESIGN I3, I7).

Batches are claimed with ``FOR UPDATE SKIP LOCKED`` (several workers never share an intent),
each row is re-read so the newest state is what gets written (or a tombstone when it is gone),
and failures back off exponentially with jitter until the intent is dead. After each run the
fence is advanced for every model whose failed intents are all gone (I9).
"""

from __future__ import annotations

import datetime
import functools
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from django.conf import settings
from django.db import DatabaseError

from sync.cache import outbox, store
from sync.cache.ahead import fewer_collections, read_ahead
from sync.cache.declaration import spec_for
from sync.cache.exceptions import CacheUnavailableError, NotSyncedError
from sync.cache.writer import write_states

logger = logging.getLogger(__name__)


@dataclass
class ReplayResult:
    claimed: int = 0
    written: int = 0
    failed: int = 0
    batches: int = 0
    fence_advanced: int = 0

    def __str__(self) -> str:
        return (
            f"claimed {self.claimed}, written {self.written}, failed {self.failed} "
            f"in {self.batches} batch(es); fence advanced for {self.fence_advanced} model(s)"
        )


def replay_pending(
    *,
    batch_size: int | None = None,
    max_batches: int | None = None,
    include_not_due: bool = False,
    progress: Callable[[ReplayResult], None] | None = None,
) -> ReplayResult:
    with fewer_collections():
        return _replay_pending(batch_size, max_batches, include_not_due, progress)


def _replay_pending(
    batch_size: int | None,
    max_batches: int | None,
    include_not_due: bool,
    progress: Callable[[ReplayResult], None] | None,
) -> ReplayResult:
    batch_size = batch_size or settings.SYNC_REPLAY_BATCH
    result = ReplayResult()
    started = outbox.database_now()
    settle = _Settle()
    # The next batch is claimed and read while this one is written (sync.cache.ahead); the
    # intents of a written batch are deleted by the next claim's own statement.
    batches = read_ahead(
        functools.partial(_claimed, batch_size, started, include_not_due, max_batches, settle)
    )
    try:
        for batch in batches:
            if not _replay(result, batch, settle):
                break  # Redis is down: the rest waits for its backoff
            if progress:
                progress(result)
    except BaseException:
        batches.close()  # a batch claimed ahead is taken again once its lease ends
        _complete(settle.take())
        raise
    # A batch claimed ahead of a failed one: written now, or failed with its backoff like
    # the rest, rather than left to its lease.
    for batch in batches.close():
        _replay(result, batch, settle)
    _complete(settle.take())  # the last batch's, which no claim followed
    result.fence_advanced = advance_fence()
    return result


class Batch(NamedTuple):
    """Claimed intents, the data-loss markers taken before their rows were read, the rows'
    states (none for the intents of a model no longer synced: those are marked dead)."""

    claimed: list[outbox.Claimed]
    marks: store.Marks
    states: list[outbox.RowState]


class _Settle:
    """The written states whose intents are still to delete: the writing thread adds them,
    the reading thread's next claim deletes them in the same statement (no round trip of
    their own on the writing side), what is left is deleted at the end of the run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: list[outbox.RowState] = []

    def add(self, states: list[outbox.RowState]) -> None:
        with self._lock:
            self._states.extend(states)

    def take(self) -> list[outbox.RowState]:
        with self._lock:
            taken, self._states = self._states, []
        return taken


def _claimed(
    batch_size: int,
    since: datetime.datetime,
    include_not_due: bool,
    max_batches: int | None,
    settle: _Settle,
) -> Iterator[Batch]:
    taken = 0
    while max_batches is None or taken < max_batches:
        # NOTE: a claim that fails loses the deletions it carried: those intents stay and
        # their next replay is a CAS no-op (I7).
        claimed = outbox.claim(
            batch_size, since=since, include_not_due=include_not_due, settle=settle.take()
        )
        if not claimed:
            return
        taken += 1
        yield _read(claimed)


def _replay(result: ReplayResult, batch: Batch, settle: _Settle) -> bool:
    """Write one batch and count it; False when its write failed."""
    result.batches += 1
    result.claimed += len(batch.claimed)
    replayed, done = _write(batch)
    settle.add(done)
    result.written += replayed.written
    result.failed += replayed.failed
    return not replayed.failed


class Replayed(NamedTuple):
    """What became of a claimed batch: rows written to Redis, rows whose write failed (left
    with backoff), intents marked dead because their model is no longer synced."""

    written: int
    failed: int
    dead: int


def replay_claimed(claimed: list[outbox.Claimed]) -> Replayed:
    """Write the rows of these claimed intents at their current state (a tombstone for a row
    that is gone) and settle the intents; a failed write backs them off (``outbox.fail``)."""
    replayed, done = _write(_read(claimed))
    _complete(done)
    return replayed


def _read(claimed: list[outbox.Claimed]) -> Batch:
    """The data-loss markers are taken before the rows are read (``store.Marks``): a Redis
    that loses its data between that read and the write gets the intents back, with the
    fence closed, instead of keeping the older version."""
    marks = store.capture()  # before the rows are read: see store.Marks
    return Batch(claimed, marks, _states(claimed))


def _write(batch: Batch) -> tuple[Replayed, list[outbox.RowState]]:
    """Write one batch; what became of it, and the written states whose intents are to be
    deleted (``_complete``, or the next claim's statement)."""
    # NOTE: one intent per (model, pk) (the queue's unique key) and one state per intent of a
    # synced model: the intents without a state are those _states marked dead.
    dead = len(batch.claimed) - len(batch.states)
    done: list[outbox.RowState] = []
    if write_states(
        batch.states,
        marks=batch.marks,
        source=store.REPLAY,
        defer_settle=True,
        defer_any=True,
        defer_to=done,
    ):
        return Replayed(len(batch.states), 0, dead), done
    return Replayed(0, len(batch.states), dead), done


def _complete(done: list[outbox.RowState]) -> None:
    if not done:
        return
    try:
        outbox.complete(done)
    except DatabaseError:
        # Redis is right; the intents stay and the next replay's CAS write is a no-op.
        logger.warning("cache written but intents not cleared; replay will clear them")


def _states(claimed: list[outbox.Claimed]) -> list[outbox.RowState]:
    by_model: dict[str, dict[str, int]] = defaultdict(dict)
    # When each change was committed (the intent's created_at, epoch ms): the event says so,
    # so a delivery the outage delayed shows its delay (outbox.Claimed).
    committed: dict[str, dict[str, int | None]] = defaultdict(dict)
    for intent in claimed:
        by_model[intent.label][intent.pk] = intent.version
        committed[intent.label][intent.pk] = (
            int(intent.created_at.timestamp() * 1000) if intent.created_at else None
        )
    states: list[outbox.RowState] = []
    for label, versions in by_model.items():
        try:
            spec = spec_for(label)
        except NotSyncedError:
            outbox.mark_dead(label, list(versions), f"{label} is no longer a synced model")
            logger.error("ALERT intents for %s, which is no longer synced, marked dead", label)
            continue
        states.extend(
            outbox.row_states(spec, list(versions), versions, committed_at=committed[label])
        )
    return states


def advance_fence() -> int:
    """Record in Redis every model whose failures are drained; returns how many."""
    epochs = outbox.drained_epochs()
    try:
        store.advance_fence(epochs)
    except CacheUnavailableError:
        return 0
    return len(epochs)
