"""Celery tasks of ingestion: thin calls into the services, returning their summaries."""

from __future__ import annotations

from celery import shared_task

from sync.ingest.exceptions import SyncAlreadyRunningError
from sync.ingest.pipeline import run_ingest
from sync.ingest.source_checks import retry_records as retry_records_service
from sync.ingest.source_checks import source_find_missing, source_sync_missing
from sync.ingest.uploads import run_upload
from sync.models import SyncRun


@shared_task(name="sync.ingest.tasks.ingest")
def ingest(
    source: str,
    file: str | None = None,
    run_id: int | None = None,
    dry_run: bool = False,
    trigger: str = SyncRun.Trigger.SCHEDULE,
) -> dict:
    """Run a sync; ``run_id`` is a ``pending`` run a caller created to follow it."""
    run = SyncRun.objects.get(pk=run_id) if run_id else None
    if run is not None and run.status not in SyncRun.ACTIVE:
        # Cancelled (from the console) while it waited in the queue: it never starts.
        return {"run_id": run.pk, "status": run.status, "message": run.message}
    try:
        run = run_ingest(source, file=file, dry_run=dry_run, trigger=trigger, run=run)
    except SyncAlreadyRunningError as e:
        return {"status": SyncRun.Status.REFUSED, "message": str(e)}
    return {"run_id": run.pk, "status": run.status, "message": run.message}


@shared_task(name="sync.ingest.tasks.ingest_upload")
def ingest_upload(upload_id: int, run_id: int) -> dict:
    """Run a console upload the operator confirmed (``sync.ingest.uploads.run_upload``)."""
    run = SyncRun.objects.get(pk=run_id)
    if run.status not in SyncRun.ACTIVE:  # cancelled while it waited in the queue
        return {"run_id": run.pk, "status": run.status, "message": run.message}
    try:
        run = run_upload(upload_id=upload_id, run_id=run_id)
    except SyncAlreadyRunningError as e:
        return {"status": SyncRun.Status.REFUSED, "message": str(e)}
    return {"run_id": run.pk, "status": run.status, "message": run.message}


@shared_task(name="sync.ingest.tasks.retry_records")
def retry_records(source: str | None = None) -> list[dict]:
    return [
        {"run_id": run.pk, "status": run.status} for run in retry_records_service(source=source)
    ]


@shared_task(name="sync.ingest.tasks.find_missing")
def find_missing(source: str) -> list[str]:
    return [key for key, _row in source_find_missing(source).missing]


@shared_task(name="sync.ingest.tasks.sync_missing")
def sync_missing(source: str) -> dict:
    report, run = source_sync_missing(source)
    return {"missing": len(report.missing), "run_id": run.pk if run else None}
