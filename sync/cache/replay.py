"""Replay of the outbox: drain ``sync_retry_queue`` into Redis (DESIGN I3, I7).

Batches are claimed with ``FOR UPDATE SKIP LOCKED`` (several workers never share an intent),
each row is re-read so the newest state is what gets written (or a tombstone when it is gone),
and failures back off exponentially with jitter until the intent is dead. After each run the
fence is advanced for every model whose failed intents are all gone (I9).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from django.conf import settings

from sync.cache import outbox, store
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
    batch_size = batch_size or settings.SYNC_REPLAY_BATCH
    result = ReplayResult()
    started = outbox.database_now()
    while max_batches is None or result.batches < max_batches:
        claimed = outbox.claim(batch_size, since=started, include_not_due=include_not_due)
        if not claimed:
            break
        result.batches += 1
        result.claimed += len(claimed)
        replayed = replay_claimed(claimed)
        result.written += replayed.written
        if replayed.failed:
            result.failed += replayed.failed
            break  # Redis is down: the rest waits for its backoff
        if progress:
            progress(result)
    result.fence_advanced = advance_fence()
    return result


class Replayed(NamedTuple):
    """What became of a claimed batch: rows written to Redis, rows whose write failed (left
    with backoff), intents marked dead because their model is no longer synced."""

    written: int
    failed: int
    dead: int


def replay_claimed(claimed: list[outbox.Claimed]) -> Replayed:
    """Write the rows of these claimed intents at their current state (a tombstone for a row
    that is gone) and settle the intents; a failed write backs them off (``outbox.fail``).

    The data-loss markers are taken before the rows are read (``store.Marks``): a Redis that
    loses its data between that read and the write gets the intents back, with the fence
    closed, instead of keeping the older version.
    """
    marks = store.capture()  # before the rows are read: see store.Marks
    states = _states(claimed)
    # NOTE: one intent per (model, pk) (the queue's unique key) and one state per intent of a
    # synced model: the intents without a state are those _states marked dead.
    dead = len(claimed) - len(states)
    if write_states(states, marks=marks, source=store.REPLAY):
        return Replayed(len(states), 0, dead)
    return Replayed(0, len(states), dead)


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
