"""The Celery beat schedule of ``sync_config``: django-celery-beat ``PeriodicTask`` rows kept
in step with the rows (a source's ingest, the engine's ops check), and ``config_update``, the
one way staff change a row (validated, ``version`` bumped, the schedule moved with it).

Reading and validating the rows is ingestion's (``sync.ingest.source_settings``); a row it
creates on first use is scheduled here through its ``settings_created`` signal, which
``SyncConfig.ready`` (sync/apps.py) connects to ``schedule_created``.
"""

from __future__ import annotations

import json
import logging

from django.core.exceptions import ValidationError
from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from sync.ingest.source_settings import (
    config_fields,
    config_for,
    config_validate,
    is_engine,
    validate_change,
)
from sync.models import SyncConfig

__all__ = [
    "ENGINE_TASK",
    "INGEST_TASK",
    "config_fields",
    "config_for",
    "config_update",
    "config_validate",
    "is_engine",
    "schedule_apply",
    "schedule_created",
    "task_name",
]

logger = logging.getLogger(__name__)

ENGINE_TASK = ("sync-ops-check", "sync.tasks.ops_check")
INGEST_TASK = "sync.ingest.tasks.ingest"


def task_name(source: str) -> str:
    return ENGINE_TASK[0] if source == SyncConfig.ENGINE else f"sync-ingest-{source}"


def config_update(*, source: str, **changes: object) -> SyncConfig:
    """Validate and store a change, bump ``version``, and move the beat schedule with it."""
    known = {f.name for f in SyncConfig._meta.concrete_fields} - {
        "id",
        "source",
        "version",
        "updated_at",
    }
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValidationError(dict.fromkeys(unknown, "not a setting of sync_config"))
    config_for(source)
    with transaction.atomic():
        config = SyncConfig.objects.select_for_update().get(source=source)
        for name, value in changes.items():
            setattr(config, name, value)
        validate_change(config, changes)
        config.version += 1
        config.save()
        schedule_apply(config)
    logger.info("sync_config %s now version %s: %s", source, config.version, sorted(changes))
    return config


def schedule_apply(config: SyncConfig) -> PeriodicTask:
    """The beat entry this configuration sets: a source's ingest, or the engine's ops check.

    ``PeriodicTask.save`` bumps ``PeriodicTasks.last_change``, which a running beat
    (``DatabaseScheduler``) polls: the new interval is live without restarting beat.
    """
    every, _ = IntervalSchedule.objects.get_or_create(
        every=config.interval_seconds, period=IntervalSchedule.SECONDS
    )
    if config.source == SyncConfig.ENGINE:
        task, kwargs = ENGINE_TASK[1], {}
    else:
        task, kwargs = INGEST_TASK, {"source": config.source}
    entry, _ = PeriodicTask.objects.update_or_create(
        name=task_name(config.source),
        defaults={
            "task": task,
            "interval": every,
            "kwargs": json.dumps(kwargs),
            "enabled": config.enabled,
            "description": f"set by sync_config {config.source} v{config.version}",
        },
    )
    return entry


def schedule_created(sender: object, *, config: SyncConfig, **_extra: object) -> None:
    """A row created on first use (``sync.ingest.source_settings.settings_created``) gets its
    beat entry at once."""
    schedule_apply(config)
