"""The console's actions on the sheet-row retry queue (``retry_queue``), over ingestion.

A retried row is re-read from its sheet by a real run (DESIGN I7: replaying a row is
harmless); a discarded one waits for the next full sync of its source. The caller records the
staff action. The actions on synced rows and on cache intents are the engine's own
(``sync.cache.rows``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sync.ingest.pipeline import run_ingest
from sync.models import RecordRetry, SyncRun


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
