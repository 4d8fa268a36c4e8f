"""Celery tasks: thin calls into the services, returning their summaries."""

from __future__ import annotations

from celery import shared_task

from sync.cache import autowarm, popularity
from sync.cache.maintenance import verify_models, warm_models
from sync.cache.replay import replay_pending
from sync.ops.security_log import sessions_clear_expired


@shared_task(name="sync.tasks.replay", ignore_result=True)
def replay() -> str:
    return str(replay_pending())


@shared_task(name="sync.tasks.warm")
def warm(labels: list[str] | None = None) -> list[dict]:
    return [vars(p) for p in warm_models(labels)]


@shared_task(name="sync.tasks.warm_check", ignore_result=True)
def warm_check() -> str:
    """Beat, every SYNC_WARM_CHECK_INTERVAL: a cold cache Redis starts warming by itself."""
    return autowarm.ensure_warm(enqueue=warm_cold.delay).describe()


@shared_task(name="sync.tasks.warm_cold", ignore_result=True)
def warm_cold() -> str:
    return autowarm.run_warm().describe()


@shared_task(name="sync.tasks.popular_snapshot", ignore_result=True)
def popular_snapshot() -> str:
    """Beat, every SYNC_POPULAR_SNAPSHOT_INTERVAL: the read counts of the cache Redis into
    PostgreSQL, so the warm after a flush still knows which rows were read most."""
    kept = popularity.snapshot()
    return ", ".join(f"{label}: {count} popular" for label, count in kept.items()) or "no reads"


@shared_task(name="sync.tasks.verify")
def verify(labels: list[str] | None = None, repair: bool = False) -> list[str]:
    return [str(report) for report in verify_models(labels, repair=repair)]


from sync.ingest import tasks as ingest_tasks  # noqa: E402, F401  (registers them)

# --------------------------------------------------------------------------- operations
OPS_INGEST_TASK = "sync.ingest.tasks.ingest"
OPS_UPLOAD_TASK = "sync.ingest.tasks.ingest_upload"  # a confirmed console upload

from celery.signals import task_postrun  # noqa: E402

from sync.models import SyncRun  # noqa: E402
from sync.ops.checks import ops_check as ops_check_service  # noqa: E402
from sync.ops.retention import archive_logs as archive_logs_service  # noqa: E402
from sync.ops.retention import purge_uploads  # noqa: E402


@shared_task(name="sync.tasks.ops_check", ignore_result=True)
def ops_check(source: str | None = None) -> str:
    return str(ops_check_service(source=source))


@shared_task(name="sync.tasks.archive_logs", ignore_result=True)
def archive_logs() -> dict[str, int]:
    archived = archive_logs_service()
    archived["sync_uploads"] = purge_uploads()
    sessions_clear_expired()  # expired sessions, daily too (docs/security.md)
    return archived


@task_postrun.connect(dispatch_uid="sync.ops.after_ingest")
def _check_after_ingest(sender=None, args=None, kwargs=None, **_extra) -> None:
    """After every ingest task, the rules of its source (a worker-side hook: the pipeline
    stays as it is, and a run started by a command is seen by the next periodic check)."""
    name = getattr(sender, "name", None)
    if name == OPS_INGEST_TASK:
        source = (kwargs or {}).get("source") or (args or [None])[0]
        ops_check_service(source=source)
    elif name == OPS_UPLOAD_TASK:
        run_id = (kwargs or {}).get("run_id")
        source = (
            SyncRun.objects.filter(pk=run_id).values_list("source", flat=True).first()
            if run_id is not None
            else None
        )
        if source is not None:
            ops_check_service(source=source)


# --------------------------------------------------------------------------- consistency

from sync.ops.sampler import sampler_tick  # noqa: E402


@shared_task(name="sync.tasks.sample_consistency", ignore_result=True, expires=10)
def sample_consistency() -> str:
    return str(sampler_tick())
