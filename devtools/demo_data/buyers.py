"""Demo buyers: the incident sheet (4,140 buyers, 356 with values over 50 characters),
written once at the source's configured location (``.run/demo/``) and synced through the real
pipeline on every demo start (a second start changes nothing: the pipeline is idempotent)."""

from __future__ import annotations

from pathlib import Path

from devtools.sheets import incident_buyers
from sync.ingest.pipeline import run_ingest
from sync.ingest.source_definitions import get_source
from sync.models import SyncRun


def load(*, count: int) -> str:
    _kind, location = get_source("buyers").resolve_location()
    if not Path(location).is_file():
        Path(location).parent.mkdir(parents=True, exist_ok=True)
        incident_buyers(location)
    run = run_ingest("buyers", trigger=SyncRun.Trigger.DEMO)
    return (
        f"run {run.pk} ({run.status}): {run.created} created, {run.updated} updated, "
        f"{run.unchanged} unchanged, {run.failed} failed"
    )
