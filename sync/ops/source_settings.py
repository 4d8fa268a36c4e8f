"""``sync_config``: one validated row per source, read fresh on every use, and the Celery
beat schedule (django-celery-beat ``PeriodicTask`` rows kept in step on every change).

NOTE: nothing is cached in-process: a worker reads the row (one indexed query) each time a
rule or a scheduled run needs it, so a change reaches running workers without a restart;
``version`` says which edit a reader saw.
"""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from sync.ingest.exceptions import SourceConfigError
from sync.ingest.source_definitions import load_sources
from sync.models import SyncConfig

logger = logging.getLogger(__name__)

ENGINE_INTERVAL = 60  # the ops check runs every minute unless configured otherwise
ENGINE_TASK = ("sync-ops-check", "sync.tasks.ops_check")
INGEST_TASK = "sync.ingest.tasks.ingest"

# Which settings of a row mean something: the engine's row holds the cache's retry-queue
# thresholds (sync/ops/rules.py evaluate_engine), the ops check's schedule and the log
# retention (sync/ops/retention.py); a source's row its ingest schedule, batches and the
# alert thresholds about its runs (evaluate_source). A row's other columns are never read.
COMMON_FIELDS = ("enabled", "interval_seconds", "recipients")
ENGINE_FIELDS = (
    *COMMON_FIELDS,
    "retry_queue_threshold",
    "oldest_intent_seconds",
    "dead_intent_threshold",
    "retention_days",
)
SOURCE_FIELDS = (
    *COMMON_FIELDS,
    "batch_size",
    "auto_recovery",
    "failure_threshold",
    "gap_threshold",
    "no_success_hours",
    "error_rate_threshold",
    "permanent_failure_threshold",
    "long_run_minutes",
    "degradation_ratio",
)


def is_engine(source: str) -> bool:
    return source == SyncConfig.ENGINE


def config_fields(source: str) -> tuple[str, ...]:
    """The settings that apply to this row: the engine's, or a source's."""
    return ENGINE_FIELDS if is_engine(source) else SOURCE_FIELDS


def task_name(source: str) -> str:
    return ENGINE_TASK[0] if source == SyncConfig.ENGINE else f"sync-ingest-{source}"


def config_for(source: str) -> SyncConfig:
    """The source's configuration, created with the defaults (and scheduled) on first use."""
    defaults = (
        {"interval_seconds": ENGINE_INTERVAL}
        if source == SyncConfig.ENGINE
        else (_source_defaults(source))
    )
    config, created = SyncConfig.objects.get_or_create(source=source, defaults=defaults)
    if created:
        schedule_apply(config)
    return config


def _source_defaults(source: str) -> dict:
    """A new source's row starts from what its sources file says (or the SYNC_INGEST_*
    defaults); from then on the row is what runs read, and staff edit it."""
    try:
        found = load_sources().get(source)
    except SourceConfigError:
        found = None
    return (
        {}
        if found is None
        else {"batch_size": found.batch_size, "auto_recovery": found.auto_recovery}
    )


def config_ensure() -> list[SyncConfig]:
    """A configuration for the engine and for every configured source (the first start)."""
    try:
        sources = sorted(load_sources())
    except SourceConfigError as e:
        logger.warning("sources not readable, only the engine is configured: %s", e)
        sources = []
    return [config_for(name) for name in [SyncConfig.ENGINE, *sources]]


def config_validate(config: SyncConfig) -> None:
    """Field ranges, then every recipient address; ``ValidationError`` names the field."""
    config.full_clean(validate_unique=False)
    for address in recipient_list(config.recipients):
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError({"recipients": f"{address!r} is not an e-mail address"}) from None


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
        _validate_change(config, changes)
        config.version += 1
        config.save()
        schedule_apply(config)
    logger.info("sync_config %s now version %s: %s", source, config.version, sorted(changes))
    return config


def _validate_change(config: SyncConfig, changes: dict) -> None:
    """``config_validate``, and a setting that does not apply to this row (an engine
    threshold on a source, a source's on the engine) is refused naming the field: it would be
    stored and never read."""
    errors: dict[str, list[str]] = {}
    try:
        config_validate(config)
    except ValidationError as e:
        errors = {name: list(messages) for name, messages in e.message_dict.items()}
    applies = config_fields(config.source)
    for name in changes:
        if name not in applies:
            where = (
                "a source's setting, not the engine's"
                if is_engine(config.source)
                else ("the engine's setting (every source at once): change it on the engine row")
            )
            errors.setdefault(name, []).append(where)
    if errors:
        raise ValidationError(errors)


def recipient_list(text: str) -> list[str]:
    return [a.strip() for a in text.replace(";", ",").split(",") if a.strip()]


def recipients_for(source: str) -> list[str]:
    return recipient_list(config_for(source).recipients) or list(settings.SYNC_ALERT_RECIPIENTS)


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
