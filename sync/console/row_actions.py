"""What the console's admin actions do, as services over the cache and ingestion engines.

Each is a thin, typed, keyword-only call the admin action (or the JSON API) makes with the
rows a person selected; the caller records the staff action. Nothing here bypasses the
engines' guarantees: resync writes versioned CAS entries (DESIGN I2), a retried intent goes
through the same write-and-settle path as replay (I3), discarding intents lets the fence
advance (I9), and retried sheet rows are re-read from their sheet by a real run (I7).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.db.models import Model

from sync.cache import outbox, replay, store
from sync.cache.declaration import spec_for
from sync.cache.exceptions import NotSyncedError
from sync.cache.keys import cache_key
from sync.cache.verification import VerifyReport
from sync.cache.writer import note_lost, write_states
from sync.ingest.pipeline import run_ingest
from sync.models import RecordRetry, SyncIntent, SyncRun


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _current_states(model: type[Model], pks: list[str]) -> list[outbox.RowState]:
    """The rows' current states; a row deleted since it was selected is left out (its delete
    intent brings the tombstone)."""
    spec = spec_for(model._meta.label_lower)
    # NOTE: version 0 for absent rows makes row_states return them as tombstones we drop.
    states = outbox.row_states(spec, pks, dict.fromkeys(pks, 0))
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


def cache_resync(*, model: type[Model], pks: Iterable[object]) -> ResyncResult:
    """Write these rows to Redis from PostgreSQL now, at their current versions.

    ``replace_equal``: an entry at the same version is rewritten too (a damaged or hand-edited
    value); an older one is replaced, a newer one (a write that landed since) is kept.
    Raises ``CacheUnavailableError`` when Redis is down.
    """
    spec = spec_for(model._meta.label_lower)
    result = ResyncResult(spec.label)
    for chunk in _chunks([str(pk) for pk in pks], settings.SYNC_WARM_BATCH):
        marks = store.capture()  # before the read: a data loss after it is noticed
        states = _current_states(model, chunk)
        applied = store.write_many(
            [w for s in states for w in s.to_writes(spec)],
            replace_equal=True,
            marks=marks,
            source=store.RESYNC,
        )
        if marks.lost:  # an older write may sit in an emptied key: replay writes the newest
            note_lost(states)
        result.rows += len(states)
        result.written += sum(applied)
    return result


def verify_summary(report: VerifyReport) -> str:
    """One line for a person: what was compared and what differs (no "extra" keys: only the
    selected rows were looked at)."""
    return (
        f"Verified {report.rows} row(s) of {report.label} against the cache: "
        f"{report.consistent} consistent ({report.fraction:.2%}), {report.missing} "
        f"missing, {report.stale} stale."
    )


def cache_verify_rows(*, model: type[Model], pks: Iterable[object]) -> VerifyReport:
    """Compare these rows' versions in PostgreSQL and Redis (missing, stale, consistent).

    Raises ``CacheUnavailableError`` when Redis is down.
    """
    spec = spec_for(model._meta.label_lower)
    report = VerifyReport(spec.label)
    for chunk in _chunks([str(pk) for pk in pks], settings.SYNC_WARM_BATCH):
        states = _current_states(model, chunk)
        keys = [cache_key(spec.label, s.pk) for s in states]
        for state, key, (cached, tombstone) in zip(states, keys, store.versions(keys), strict=True):
            report.rows += 1
            if cached is None:
                report.missing += 1
                report._note("missing", key)
            elif cached < state.version or (tombstone and cached == state.version):
                report.stale += 1
                report._note("stale", key)
            else:
                report.consistent += 1
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


def _claim_intents(ids: list[int]) -> list[outbox.Claimed]:
    """Take exactly these intents, due or not, dead or pending (SKIP LOCKED, like replay)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE sync_retry_queue q
            SET next_attempt_at = now() + make_interval(secs => %s),
                claimed_at = clock_timestamp()
            WHERE q.id IN (SELECT id FROM sync_retry_queue WHERE id = ANY(%s)
                           FOR UPDATE SKIP LOCKED)
            RETURNING q.model, q.object_pk, q.version
            """,
            [settings.SYNC_REPLAY_LEASE, ids],
        )
        return [outbox.Claimed(*row) for row in cursor.fetchall()]


def intents_retry(*, ids: Iterable[int]) -> IntentRetryResult:
    """Replay these cache retry-queue intents now: re-read each row, write it (or its
    tombstone), settle the intent; a failure backs off as replay's would. Never raises for
    Redis being down (the intents stay, with their attempt counted)."""
    ids = list(ids)
    result = IntentRetryResult(selected=len(ids))
    marks = store.capture()  # before the rows are read: a data loss after it is noticed
    claimed = _claim_intents(ids)
    result.claimed = len(claimed)
    by_model: dict[str, dict[str, int]] = defaultdict(dict)
    for intent in claimed:
        by_model[intent.label][intent.pk] = intent.version
    states: list[outbox.RowState] = []
    for label, versions in by_model.items():
        try:
            spec = spec_for(label)
        except NotSyncedError:
            result.failed += outbox.mark_dead(
                label, list(versions), f"{label} is no longer a synced model"
            )
            continue
        states.extend(outbox.row_states(spec, list(versions), versions))
    if write_states(states, marks=marks, source=store.REPLAY):  # a replay by hand
        result.written += len(states)
    else:
        result.failed += len(states)
    result.fence_advanced = replay.advance_fence()
    return result


def intents_discard(*, ids: Iterable[int]) -> int:
    """Delete these intents: Redis keeps whatever it holds for their keys (verification
    reports it); a model whose failed intents are now all gone gets its fence advanced."""
    deleted, _ = SyncIntent.objects.filter(pk__in=list(ids)).delete()
    replay.advance_fence()
    return deleted


def records_retry(*, ids: Iterable[int]) -> list[SyncRun]:
    """Re-read these record retry-queue rows from their sheets and sync them (one run per
    source and location), whether due, pending or permanently failed. A row stored leaves
    the queue; one that fails again is counted again. Raises ``SyncAlreadyRunningError``
    when a run of the source is in progress."""
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for source, location, key in (
        RecordRetry.objects.filter(pk__in=list(ids))
        .order_by("source", "location", "natural_key")
        .values_list("source", "location", "natural_key")
    ):
        grouped[(source, location)].append(key)
    return [
        run_ingest(source, file=location or None, only_keys=keys, trigger=SyncRun.Trigger.RETRY)
        for (source, location), keys in grouped.items()
    ]


def records_discard(*, ids: Iterable[int]) -> int:
    """Drop these rows from the record retry queue (the sheet row stays as it is)."""
    deleted, _ = RecordRetry.objects.filter(pk__in=list(ids)).delete()
    return deleted
