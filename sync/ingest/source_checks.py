"""Entry points the commands, the Celery tasks and (later) the console share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Count, Max, Q
from django.utils import timezone

from sync.ingest import retry
from sync.ingest.pipeline import run_ingest
from sync.ingest.schema import SchemaReport, check_schema
from sync.ingest.source_definitions import get_source, load_sources
from sync.ingest.sources import source_for
from sync.ingest.verification import MissingReport, find_missing
from sync.models import RecordRetry, SyncRun


def source_schema_check(source: str, *, file: str | None = None) -> SchemaReport:
    config = get_source(source)
    kind, location = config.resolve_location(file)
    return check_schema(config, source_for(config, kind, location))


def source_find_missing(source: str, *, file: str | None = None) -> MissingReport:
    config = get_source(source)
    kind, location = config.resolve_location(file)
    return find_missing(config, source_for(config, kind, location))


def source_sync_missing(
    source: str,
    *,
    file: str | None = None,
    progress: Callable[[SyncRun], None] | None = None,
) -> tuple[MissingReport, SyncRun | None]:
    """Find the sheet's keys the database lacks and sync just those rows."""
    report = source_find_missing(source, file=file)
    if not report.missing:
        return report, None
    run = run_ingest(
        source,
        file=file,
        only_keys=[key for key, _row in report.missing],
        trigger=SyncRun.Trigger.MISSING,
        progress=progress,
    )
    return report, run


def retry_records(
    *,
    source: str | None = None,
    include_not_due: bool = False,
    progress: Callable[[SyncRun], None] | None = None,
) -> list[SyncRun]:
    """Re-read the due rows of the record retry queue from their sheets and sync them."""
    runs = []
    for (src, location), keys in retry.due(source=source, include_not_due=include_not_due).items():
        runs.append(
            run_ingest(
                src,
                file=location or None,
                only_keys=keys,
                trigger=SyncRun.Trigger.RETRY,
                progress=progress,
            )
        )
    return runs


@dataclass
class SourceHealth:
    source: str
    last_run: SyncRun | None = None
    last_success: SyncRun | None = None
    runs_24h: int = 0
    succeeded_24h: int = 0
    retry_pending: int = 0
    retry_permanent: int = 0
    errors_by_category: dict[str, int] = field(default_factory=dict)

    @property
    def success_rate_24h(self) -> float | None:
        return self.succeeded_24h / self.runs_24h if self.runs_24h else None


def source_health(source: str | None = None) -> list[SourceHealth]:
    """Per source: last run and last success, 24 h success rate, retry queue."""
    names = [get_source(source).name] if source else sorted(load_sources())
    queue = retry.stats()
    since = timezone.now() - timedelta(hours=24)
    found = []
    for name in names:
        runs = SyncRun.objects.filter(source=name).exclude(status=SyncRun.Status.REFUSED)
        day = runs.filter(created_at__gte=since).aggregate(
            total=Count("id"),
            ok=Count("id", filter=Q(status=SyncRun.Status.SUCCEEDED)),
            last=Max("created_at"),
        )
        health = SourceHealth(
            name,
            last_run=runs.order_by("-created_at").first(),
            last_success=runs.filter(status=SyncRun.Status.SUCCEEDED)
            .order_by("-created_at")
            .first(),
            runs_24h=day["total"],
            succeeded_24h=day["ok"],
            retry_pending=queue.get(name, {}).get(RecordRetry.Status.PENDING, 0),
            retry_permanent=queue.get(name, {}).get(RecordRetry.Status.PERMANENTLY_FAILED, 0),
        )
        if health.last_run is not None:
            health.errors_by_category = health.last_run.errors_by_category
        found.append(health)
    return found
