"""Row-level operations an operator asks of the engine, on rows and intents a person selected.

The console's actions call these and nothing else of the engine: the current state of rows
(``current_states``), "resync these rows" (``resync_rows``), "verify these rows"
(``verify_rows``), "retry these intents now" (``retry_intents``) and "discard these intents"
(``discard_intents``). Each goes through the engine's own code, so its guarantees hold for
a person's action as for the engine's: a resync writes versioned compare-and-set entries
(DESIGN I2: Redis keeps the highest version), a retried intent is claimed like replay claims
(SKIP LOCKED, a lease) and written and settled by replay's path (I3: the outbox entry goes
only once Redis has the row; I7: replaying it again is harmless), and discarding intents
lets the fence advance (I9: a model's reads return to Redis once its failed intents are
gone). Every writer captures the data-loss markers before its read (``store.Marks``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Model

from sync.cache import outbox, replay, store, writer
from sync.cache.declaration import spec_for
from sync.cache.outbox import RowState
from sync.cache.verification import VerifyReport, compare
from sync.models import SyncIntent


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def current_states(model: type[Model], pks: Iterable[object]) -> list[RowState]:
    """The rows' current states in PostgreSQL (version and values; a soft-deleted row is one
    too). A row that no longer exists is left out: its delete intent brings the tombstone."""
    spec = spec_for(model)
    keys = [str(pk) for pk in pks]
    # NOTE: version 0 for absent rows makes row_states return them as tombstones we drop.
    states = outbox.row_states(spec, keys, dict.fromkeys(keys, 0))
    return [state for state in states if state.values is not None]


@dataclass
class ResyncResult:
    label: str
    rows: int = 0
    written: int = 0

    def __str__(self) -> str:
        return (
            f"Resynced {self.rows} row(s) of {self.label} to the cache "
            f"({self.written} cache entries written)."
        )


def resync_rows(*, model: type[Model], pks: Iterable[object]) -> ResyncResult:
    """Write these rows to Redis from PostgreSQL now, at their current versions.

    An entry at the same version is rewritten too (a damaged or hand-edited value); an older
    one is replaced, a newer one (a write that landed since) is kept. A row that no longer
    exists is skipped. Raises ``CacheUnavailableError`` when Redis is down.
    """
    spec = spec_for(model)
    result = ResyncResult(spec.label)
    for chunk in _chunks([str(pk) for pk in pks], settings.SYNC_WARM_BATCH):
        marks = store.capture()  # before the read: a data loss after it is noticed
        states = current_states(model, chunk)
        result.written += writer.overwrite(states, marks=marks, source=store.RESYNC)
        result.rows += len(states)
    return result


def verify_rows(*, model: type[Model], pks: Iterable[object]) -> VerifyReport:
    """Compare these rows' versions in PostgreSQL and Redis as verification does (missing,
    stale, consistent); nothing is repaired, and no "extra" keys are looked for (only these
    rows are). A row that no longer exists is skipped. Raises ``CacheUnavailableError`` when
    Redis is down."""
    spec = spec_for(model)
    report = VerifyReport(spec.label)
    for chunk in _chunks([str(pk) for pk in pks], settings.SYNC_WARM_BATCH):
        states = current_states(model, chunk)
        compare(spec, report, [(s.pk, s.version, s.values) for s in states if s.values is not None])
    return report


@dataclass
class IntentRetryResult:
    selected: int = 0
    claimed: int = 0
    written: int = 0
    failed: int = 0
    fence_advanced: int = 0

    def __str__(self) -> str:
        busy = self.selected - self.claimed
        return (
            f"{self.claimed} intent(s) replayed: {self.written} written to the cache, "
            f"{self.failed} failed (left with backoff)"
            + (f"; {busy} skipped, another replayer holds them" if busy else "")
            + "."
        )


def retry_intents(*, ids: Iterable[int]) -> IntentRetryResult:
    """Replay these cache retry-queue intents now, due or not, pending or dead: claimed as
    replay claims (one that a replayer holds now is skipped), each row re-read and written
    (or its tombstone), the intent settled; a failure backs off as replay's would, and an
    intent of a model no longer synced is marked dead (counted as failed). Then the fence
    advances for every model whose failed intents are all gone. Never raises for Redis being
    down (the intents stay, with their attempt counted)."""
    ids = list(ids)
    claimed = outbox.claim_ids(ids)
    replayed = replay.replay_claimed(claimed)
    return IntentRetryResult(
        selected=len(ids),
        claimed=len(claimed),
        written=replayed.written,
        failed=replayed.failed + replayed.dead,
        fence_advanced=replay.advance_fence(),
    )


def discard_intents(*, ids: Iterable[int]) -> int:
    """Delete these intents; answers how many were deleted. Redis keeps whatever it holds
    for their keys (verification reports it); a model whose failed intents are now all gone
    gets its fence advanced."""
    deleted, _ = SyncIntent.objects.filter(pk__in=list(ids)).delete()
    replay.advance_fence()
    return deleted
