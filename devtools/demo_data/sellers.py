"""Demo sellers with their properties: a generated sheet written once at the source's
configured location (``.run/demo/``) and synced through the real pipeline on every demo
start (idempotent)."""

from __future__ import annotations

from pathlib import Path

from devtools.sheets import SELLER_HEADERS, seller_rows, write
from sync.ingest.pipeline import run_ingest
from sync.ingest.source_definitions import get_source
from sync.models import SyncRun


def load(*, count: int) -> str:
    _kind, location = get_source("sellers").resolve_location()
    if not Path(location).is_file():
        Path(location).parent.mkdir(parents=True, exist_ok=True)
        write(location, SELLER_HEADERS, seller_rows(count))
    run = run_ingest("sellers", trigger=SyncRun.Trigger.DEMO)
    return (
        f"run {run.pk} ({run.status}): {run.created} created, {run.updated} updated, "
        f"{run.unchanged} unchanged, {run.failed} failed"
    )
