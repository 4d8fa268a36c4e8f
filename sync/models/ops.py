"""Tables of operations (docs/operations.md), re-exported by sync.models.

* ``SyncAlert`` (``sync_alerts``): one open row per (type, source); a rule that keeps firing
  bumps ``count`` and ``last_seen_at`` instead of adding rows. Acknowledging closes it.
* ``AlertMail`` (``sync_alert_mail``): when mail last went out per (type, source): the
  hourly limit, claimed with one conditional upsert so it holds across processes.
* ``SyncConfig`` (``sync_config``): one validated row per source (and ``engine`` for the
  cache-wide thresholds); it is the beat schedule (``sync.ops.source_settings``).
* ``SyncMetric`` (``sync_metrics``): the figures of one finished run.
* ``SyncHealthMetric`` (``sync_health_metrics``): a periodic health check of one source.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Now

from sync import formats


def _when(value: object) -> str:
    """A time as the console writes it (a row not yet read back holds its database default)."""
    return formats.when(value) if isinstance(value, datetime) else str(value)


MIN_INTERVAL = 60  # seconds: a shorter schedule would overlap its own runs


def _range(low: float, high: float) -> list:
    return [MinValueValidator(low), MaxValueValidator(high)]


class SyncAlert(models.Model):
    class Type(models.TextChoices):
        CONSECUTIVE_FAILURES = "consecutive_failures", "Consecutive failures"
        GAPS = "gaps", "Gaps"
        RECOVERY_FAILED = "recovery_failed", "Recovery failed"
        NO_SUCCESS = "no_success", "No success"
        ERROR_RATE = "error_rate", "Error rate"
        PERMANENT_FAILURES = "permanent_failures", "Permanent failures"
        LONG_RUN = "long_run", "Long run"
        DEGRADATION = "degradation", "Degradation"
        RETRY_QUEUE_SIZE = "retry_queue_size", "Retry queue size"
        RETRY_QUEUE_AGE = "retry_queue_age", "Retry queue age"
        DEAD_INTENTS = "dead_intents", "Dead intents"
        # a burst of failed logins (sync.ops.security_log)
        LOGIN_FAILURES = "login_failures", "Login failures"
        NO_WORKER = "no_worker", "No worker"  # the watchdog (sync/ops/watchdog.py)
        CONSISTENCY_SLO = "consistency_slo", "Consistency SLO"  # the sampler (sync/ops/sampler.py)
        # the event system's SSE processes (sync/ops/rules.py, sync/ops/event_stats.py)
        EVENT_LATENCY = "event_latency", "Event delivery latency"
        EVENT_LAG = "event_lag", "Event stream lag"

    class Severity(models.TextChoices):
        INFO = "info"
        WARNING = "warning"
        CRITICAL = "critical"

    alert_type = models.CharField(max_length=40, choices=Type.choices)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    source = models.CharField(max_length=100, help_text="Source name, or engine.")
    message = models.TextField(help_text="Redacted.")
    context = models.JSONField(default=dict, blank=True)
    occurrence = models.CharField(
        max_length=100,
        blank=True,
        default="",
        help_text="What fired it (e.g. run:42): the same occurrence again is not a repeat.",
    )
    count = models.PositiveIntegerField(default=1)
    first_seen_at = models.DateTimeField(db_default=Now())
    last_seen_at = models.DateTimeField(db_default=Now())
    last_emailed_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "sync_alerts"
        verbose_name = "sync alert"
        constraints = [
            # raise_alert's upsert target: one open alert per (type, source).
            models.UniqueConstraint(
                fields=["alert_type", "source"],
                condition=models.Q(acknowledged_at__isnull=True),
                name="sync_alert_open_uniq",
            ),
        ]
        indexes = [
            # The console's "recent alerts".
            models.Index(fields=["-last_seen_at"], name="sync_alert_recent_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.alert_type} [{self.source}] x{self.count}"


class AlertMail(models.Model):
    alert_type = models.CharField(max_length=40)
    source = models.CharField(max_length=100)
    last_sent_at = models.DateTimeField()

    class Meta:
        db_table = "sync_alert_mail"
        constraints = [
            # The conditional upsert that claims the hour's one mail.
            models.UniqueConstraint(fields=["alert_type", "source"], name="sync_alert_mail_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.alert_type} [{self.source}] mailed {_when(self.last_sent_at)}"


class SyncConfig(models.Model):
    ENGINE = "engine"  # the row of cache-wide thresholds, the ops check and retention

    source = models.CharField(max_length=100, unique=True)
    enabled = models.BooleanField(default=True, help_text="Run on the schedule.")
    interval_seconds = models.PositiveIntegerField(
        default=300,
        validators=_range(MIN_INTERVAL, 7 * 86400),
        help_text="Schedule: a source's ingest; for engine, the alert and health check.",
    )
    batch_size = models.PositiveIntegerField(default=1000, validators=_range(1, 10_000))
    auto_recovery = models.BooleanField(default=True)
    recipients = models.TextField(
        blank=True, default="", help_text="Comma-separated addresses; empty: SYNC_ALERT_RECIPIENTS."
    )
    failure_threshold = models.PositiveIntegerField(
        default=3, validators=_range(1, 100), help_text="Consecutive failed runs."
    )
    gap_threshold = models.PositiveIntegerField(
        default=1, validators=_range(1, 1_000_000), help_text="Sheet rows missing."
    )
    no_success_hours = models.FloatField(
        default=6.0, validators=_range(0.1, 24 * 30), help_text="Hours without a success."
    )
    error_rate_threshold = models.FloatField(
        default=0.05, validators=_range(0.0001, 1.0), help_text="Failed rows / rows."
    )
    permanent_failure_threshold = models.PositiveIntegerField(
        default=1, validators=_range(1, 1_000_000), help_text="Permanently failed rows."
    )
    long_run_minutes = models.FloatField(default=15.0, validators=_range(1, 24 * 60))
    degradation_ratio = models.FloatField(
        default=0.5,
        validators=_range(0.01, 0.99),
        help_text="Alert when throughput <= ratio x the median of recent runs.",
    )
    retry_queue_threshold = models.PositiveIntegerField(
        default=1000, validators=_range(1, 100_000_000), help_text="Pending cache intents."
    )
    oldest_intent_seconds = models.PositiveIntegerField(
        default=300, validators=_range(10, 7 * 86400), help_text="Oldest pending intent."
    )
    dead_intent_threshold = models.PositiveIntegerField(default=1, validators=_range(1, 1_000_000))
    retention_days = models.PositiveIntegerField(default=90, validators=_range(1, 3650))
    version = models.PositiveIntegerField(default=1, help_text="Bumped on every change.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "sync_config"
        verbose_name = "sync configuration"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(interval_seconds__gte=MIN_INTERVAL),
                name="sync_config_min_interval",
            ),
            models.CheckConstraint(
                condition=models.Q(error_rate_threshold__gt=0, error_rate_threshold__lte=1),
                name="sync_config_error_rate_range",
            ),
            models.CheckConstraint(
                condition=models.Q(degradation_ratio__gt=0, degradation_ratio__lt=1),
                name="sync_config_degradation_range",
            ),
        ]

    def __str__(self) -> str:
        return f"config {self.source} v{self.version}"


class SyncMetric(models.Model):
    run_id = models.BigIntegerField(unique=True)  # one row per run: recording is idempotent
    source = models.CharField(max_length=100)
    status = models.CharField(max_length=20)
    finished_at = models.DateTimeField()
    duration_seconds = models.FloatField()
    throughput = models.FloatField(null=True, blank=True, help_text="Rows per second.")
    rows_total = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    phase_ms = models.JSONField(default=dict, blank=True)
    errors_by_category = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "sync_metrics"
        verbose_name = "sync run metric"
        indexes = [
            # Statistics over a window per source.
            models.Index(fields=["source", "-finished_at"], name="sync_metric_source_idx"),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} {self.source} {formats.duration(self.duration_seconds)}"


class SyncHealthMetric(models.Model):
    source = models.CharField(max_length=100)
    checked_at = models.DateTimeField(db_default=Now())
    sheet_count = models.PositiveIntegerField(null=True, blank=True)
    database_count = models.PositiveIntegerField(null=True, blank=True)
    gaps = models.PositiveIntegerField(null=True, blank=True)
    error_rate = models.FloatField(null=True, blank=True)
    success_rate_24h = models.FloatField(null=True, blank=True)
    retry_pending = models.PositiveIntegerField(default=0)
    retry_permanent = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "sync_health_metrics"
        verbose_name = "sync health check"
        indexes = [
            # Trend charts: a source's checks over time.
            models.Index(fields=["source", "-checked_at"], name="sync_health_source_idx"),
        ]

    def __str__(self) -> str:
        return f"health {self.source} {_when(self.checked_at)}"
