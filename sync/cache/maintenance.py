"""Entry points shared by the management commands and the Celery tasks."""

from __future__ import annotations

from collections.abc import Callable

from sync.cache.declaration import SyncSpec, spec_for, synced_models
from sync.cache.verification import VerifyReport, verify
from sync.cache.warming import WarmProgress, warm
from sync.models import CacheVerification


def resolve_models(labels: list[str] | None) -> list[SyncSpec]:
    """Specs for these labels (``catalog.part`` or ``catalog.Part``), or every synced model."""
    return [spec_for(label) for label in labels] if labels else synced_models()


def warm_models(
    labels: list[str] | None = None,
    *,
    batch_size: int | None = None,
    progress: Callable[[WarmProgress], None] | None = None,
) -> list[WarmProgress]:
    return [warm(spec, batch_size=batch_size, progress=progress) for spec in resolve_models(labels)]


def verify_models(
    labels: list[str] | None = None,
    *,
    repair: bool = False,
    batch_size: int | None = None,
    progress: Callable[[VerifyReport, int], None] | None = None,
) -> list[VerifyReport]:
    reports = [
        verify(spec, repair=repair, batch_size=batch_size, progress=progress)
        for spec in resolve_models(labels)
    ]
    verification_record(reports)
    return reports


def verification_record(reports: list[VerifyReport]) -> CacheVerification:
    """Store what a verification found: the console shows the latest consistency figure."""
    by_model = {
        r.label: {
            "rows": r.rows,
            "consistent": r.consistent,
            "missing": r.missing,
            "stale": r.stale,
            "extra": r.extra,
        }
        for r in reports
    }
    totals = {
        name: sum(getattr(r, name) for r in reports)
        for name in ("rows", "consistent", "missing", "stale", "extra", "repaired")
    }
    return CacheVerification.objects.create(by_model=by_model, **totals)
