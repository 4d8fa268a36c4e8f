"""Tables of spreadsheet ingestion (docs/ingestion.md), re-exported by sync.models.

* ``SyncRun`` (``sync_audit_logs``): one row per run, the audit log, with progress, phase
  timings, counts, throughput and the verification result (what the operations metrics read).
* ``RecordLog`` (``sync_record_logs``): what happened to each sheet row in a run.
* ``ErrorLog`` (``sync_error_logs``): each problem with its category, row number, column and
  the length of the value that did not fit; never the value itself (DESIGN I6, I8).
* ``RecordRetry`` (``retry_queue``): rows whose failure may pass (network, database, lock
  timeout), retried with exponential backoff, then ``permanently_failed``.
"""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now

from sync.access.request_id import correlation_id


class SyncRun(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"  # every row stored or unchanged, no gap
        PARTIAL = "partial"  # finished, but some rows failed (see sync_error_logs)
        FAILED = "failed"  # stopped by an error that was not one row's
        CANCELLED = "cancelled"
        REFUSED = "refused"  # another run of the source held the lock

    ACTIVE = (Status.PENDING, Status.RUNNING)

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Manual"
        SCHEDULE = "schedule", "Schedule"
        MISSING = "missing", "Missing rows"  # sync_missing: only the gaps
        RETRY = "retry", "Retry"  # the record retry queue
        API = "api", "API"
        DEMO = "demo", "Demo data"  # ./dev demo loading its own sheets

    source = models.CharField(max_length=100)
    target = models.CharField(max_length=100, help_text="Model label, e.g. buyers.buyer.")
    location = models.TextField(blank=True, default="", help_text="File path or sheet id.")
    trigger = models.CharField(max_length=20, choices=Trigger.choices, default=Trigger.MANUAL)
    request_id = models.CharField(
        max_length=64,
        blank=True,
        default=correlation_id,
        help_text="The request (or task) that created the run: the id in its log lines.",
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    dry_run = models.BooleanField(default=False)
    batch_size = models.PositiveIntegerField(default=1000)
    phase = models.CharField(
        max_length=20,
        blank=True,
        default="",
        help_text="What the run is doing now (fetch, load, verify …).",
    )
    cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(db_default=Now())
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    rows_total = models.PositiveIntegerField(
        default=0, help_text="Rows in the sheet (an estimate until the run ends)."
    )
    rows_done = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    gaps = models.PositiveIntegerField(
        null=True, blank=True, help_text="Sheet keys missing from the database."
    )
    throughput = models.FloatField(null=True, blank=True, help_text="Rows per second.")
    phase_ms = models.JSONField(
        default=dict,
        blank=True,
        help_text="Milliseconds per phase: fetch, validate, compare, "
        "update, write_through, verify.",
    )
    errors_by_category = models.JSONField(default=dict, blank=True)
    schema_report = models.JSONField(default=dict, blank=True)
    verification = models.JSONField(default=dict, blank=True)
    message = models.TextField(blank=True, default="", help_text="Redacted summary or error.")
    host = models.CharField(
        max_length=200, blank=True, default="", help_text="host:pid of the process that ran it."
    )

    class Meta:
        db_table = "sync_audit_logs"
        verbose_name = "sync run"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(rows_done__lte=models.F("rows_total")),
                name="sync_run_done_le_total",
            ),
        ]
        indexes = [
            # Dashboard and alerts: the latest runs of a source (last sync, trends, medians).
            models.Index(fields=["source", "-created_at"], name="sync_run_source_recent_idx"),
            # Runs still active (abandoned-run clean-up, "is one running?").
            models.Index(
                fields=["status"],
                name="sync_run_active_idx",
                condition=models.Q(status__in=["pending", "running"]),
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} {self.source} {self.status}"

    @property
    def duration(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class RecordLog(models.Model):
    class Action(models.TextChoices):
        CREATED = "created"
        UPDATED = "updated"
        UNCHANGED = "unchanged"
        FAILED = "failed"
        SUPERSEDED = "superseded"  # a later row of the sheet carries the same key

    # NOTE: a plain bigint, not a foreign key: rows are COPYed in bulk and archived apart
    # from their run (retention); an FK would cost a check per row for nothing.
    run_id = models.BigIntegerField()
    row_number = models.PositiveIntegerField(help_text="Row in the sheet (the header is row 1).")
    natural_key = models.TextField(blank=True, default="")
    action = models.CharField(max_length=12, choices=Action.choices)
    object_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "sync_record_logs"
        verbose_name = "sync record log"
        indexes = [
            # A run's rows in sheet order; verification's gap query scans one run's keys.
            models.Index(fields=["run_id", "row_number"], name="sync_record_run_row_idx"),
            # The history of one buyer/seller number (the runs list's search).
            models.Index(fields=["natural_key"], name="sync_record_key_idx"),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} row {self.row_number} {self.natural_key} {self.action}"


class ErrorLog(models.Model):
    class Category(models.TextChoices):
        VALIDATION = "validation"
        SCHEMA = "schema"  # the value does not fit the column (too long, out of range)
        CONFLICT = "conflict"
        DATABASE = "database"
        NETWORK = "network"
        # The file itself: missing, unreadable, undecodable, empty, not a workbook, no key
        # column, ambiguous headers. The whole run fails before a row is written.
        SOURCE = "source"
        UNKNOWN = "unknown"

    RETRYABLE = (Category.DATABASE, Category.NETWORK)

    run_id = models.BigIntegerField()
    source = models.CharField(max_length=100)
    category = models.CharField(max_length=12, choices=Category.choices)
    code = models.CharField(
        max_length=40,
        blank=True,
        default="",
        help_text="Finer reason, e.g. too_long, required, pattern.",
    )
    row_number = models.PositiveIntegerField(null=True, blank=True)
    natural_key = models.TextField(blank=True, default="")
    column = models.TextField(blank=True, default="", help_text="Sheet header.")
    value_length = models.PositiveIntegerField(null=True, blank=True)
    column_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="What the database column holds (characters, digits)."
    )
    reason = models.TextField(help_text="Redacted; never the value itself.")
    retryable = models.BooleanField(default=False)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "sync_error_logs"
        verbose_name = "sync error log"
        indexes = [
            # A run's errors in sheet order (the run page, the incident report).
            models.Index(fields=["run_id", "row_number"], name="sync_error_run_row_idx"),
            # Errors by source and category over time.
            models.Index(
                fields=["source", "category", "-created_at"], name="sync_error_source_cat_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} row {self.row_number} {self.category}: {self.reason}"


class RecordRetry(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        PERMANENTLY_FAILED = "permanently_failed", "Permanently failed"

    source = models.CharField(max_length=100)
    natural_key = models.TextField()
    location = models.TextField(
        blank=True, default="", help_text="The file or sheet the row was read from."
    )
    row_number = models.PositiveIntegerField(null=True, blank=True)
    category = models.CharField(max_length=12, choices=ErrorLog.Category.choices)
    last_error = models.TextField(blank=True, default="", help_text="Redacted.")
    attempts = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    next_retry_at = models.DateTimeField()
    last_run_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now())
    updated_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "retry_queue"
        verbose_name = "record retry"
        verbose_name_plural = "record retries"
        constraints = [
            # One entry per row of a source: a row failing again bumps its attempts.
            models.UniqueConstraint(
                fields=["source", "natural_key"], name="retry_queue_source_key_uniq"
            ),
        ]
        indexes = [
            # sync_retry_records: due pending entries, oldest first.
            models.Index(fields=["status", "next_retry_at"], name="retry_queue_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.source}:{self.natural_key} ({self.status}, {self.attempts} attempts)"


class SyncUpload(models.Model):
    """A spreadsheet an operator uploaded in the console: previewed by a dry run,
    then run for real on confirmation. Kept with its runs for audit: the file holds PII, so
    ``content`` is AES-256-GCM encrypted (``sync.ingest.uploads``; the associated data binds it
    to ``token``) and emptied after ``SYNC_UPLOAD_RETENTION_DAYS`` by the retention task; the
    row itself (who, when, which file, which runs) stays as long as the runs do."""

    class Status(models.TextChoices):
        PREVIEWED = "previewed"  # a dry run judged it; it waits for confirmation
        OUTDATED = "outdated"  # the database changed since the preview: preview again
        CONFIRMED = "confirmed"  # its real run was started
        FAILED = "failed"  # the preview could not run (another run held the source, …)

    source = models.CharField(max_length=100)
    filename = models.CharField(max_length=255, help_text="As uploaded (path removed).")
    size = models.PositiveBigIntegerField(help_text="Bytes of the file.")
    sha256 = models.CharField(max_length=64, help_text="Of the file's bytes.")
    token = models.UUIDField(
        unique=True, editable=False, help_text="Associated data of the ciphertext."
    )
    key_id = models.CharField(max_length=32, help_text="Encryption key id (SYNC_ENCRYPTION_KEYS).")
    content = models.BinaryField(help_text="nonce + AES-GCM ciphertext; empty once purged.")
    purged_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PREVIEWED)
    uploaded_by = models.CharField(max_length=150)
    confirmed_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(db_default=Now())
    confirmed_at = models.DateTimeField(null=True, blank=True)
    preview_run_id = models.BigIntegerField(
        null=True, blank=True, help_text="The latest dry run of the file."
    )
    run_id = models.BigIntegerField(null=True, blank=True, help_text="The confirmed run.")
    fingerprint = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text="The database rows the preview judged (their versions), the source's "
        "mapping and column types, as the preview saw them.",
    )

    class Meta:
        db_table = "sync_uploads"
        verbose_name = "uploaded sheet"
        indexes = [
            models.Index(fields=["created_at"], name="sync_upload_created_idx"),
            models.Index(fields=["run_id"], name="sync_upload_run_idx"),
            models.Index(fields=["preview_run_id"], name="sync_upload_preview_idx"),
        ]

    def __str__(self) -> str:
        return f"upload {self.pk} {self.source} {self.filename} ({self.status})"
