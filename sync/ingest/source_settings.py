"""``sync_config``: one validated row per source (and ``engine`` for the cache-wide settings),
read fresh on every use: a run's batches and recovery, the alert rules' thresholds, the
alert recipients.

NOTE: nothing is cached in-process: a worker reads the row (one indexed query) each time a
rule or a scheduled run needs it, so a change reaches running workers without a restart;
``version`` says which edit a reader saw.

A row is created with its defaults on first use, and ``settings_created`` is sent for it: the
operations layer connects its beat schedule there (``sync.ops.source_settings``, which also
holds ``config_update``, the one way staff change a row).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.dispatch import Signal

from sync.ingest.exceptions import SourceConfigError
from sync.ingest.source_definitions import load_sources
from sync.models import SyncConfig

logger = logging.getLogger(__name__)

ENGINE_INTERVAL = 60  # the ops check runs every minute unless configured otherwise

# Sent with ``config=`` (the new row) when a row is created on first use.
settings_created = Signal()

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


def config_for(source: str) -> SyncConfig:
    """The source's configuration, created with the defaults on first use (and then
    scheduled: ``settings_created``)."""
    defaults = (
        {"interval_seconds": ENGINE_INTERVAL}
        if source == SyncConfig.ENGINE
        else (_source_defaults(source))
    )
    config, created = SyncConfig.objects.get_or_create(source=source, defaults=defaults)
    if created:
        settings_created.send(sender=SyncConfig, config=config)
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


def validate_change(config: SyncConfig, changes: dict) -> None:
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
