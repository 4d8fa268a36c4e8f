"""Tables of the self-watching operations: process heartbeats (the watchdog) and consistency
samples (the sampler). docs/operations.md says who writes and who reads them."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now


class ProcessHeartbeat(models.Model):
    """One row per long-running process (a Celery worker node, beat, a web process), written
    every few seconds by the process itself; the watchdog reads it."""

    class Kind(models.TextChoices):
        WORKER = "worker"
        BEAT = "beat"
        WEB = "web"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    node = models.CharField(max_length=200, help_text="worker: its Celery node name.")
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField(db_default=Now())
    last_seen_at = models.DateTimeField(db_default=Now())
    stopped_at = models.DateTimeField(
        null=True, blank=True, help_text="Set on a clean shutdown only."
    )
    restarts = models.PositiveIntegerField(
        default=0, help_text="Starts of this node after an exit that was not a clean shutdown."
    )

    class Meta:
        db_table = "sync_process_heartbeats"
        verbose_name = "process heartbeat"
        constraints = [
            # The heartbeat's upsert target: a node restarted keeps its row (and counts).
            models.UniqueConstraint(fields=["kind", "node"], name="sync_heartbeat_node_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.node} pid {self.pid}"


class ConsistencySample(models.Model):
    """A key the sampler compares between PostgreSQL and Redis: a recent write (re-checked
    until Redis holds it, for the within-1/10/60 s figures) or a random row (checked once)."""

    class Kind(models.TextChoices):
        RECENT = "recent"
        RANDOM = "random"

    model = models.CharField(max_length=100)
    object_pk = models.TextField()
    version = models.BigIntegerField()
    kind = models.CharField(max_length=10, choices=Kind.choices)
    written_at = models.DateTimeField(help_text="The row's updated_at_ns (database clock).")
    sampled_at = models.DateTimeField(db_default=Now())
    checked_at = models.DateTimeField(null=True, blank=True)
    consistent_at = models.DateTimeField(
        null=True, blank=True, help_text="First check that found this version in Redis."
    )
    unreachable = models.BooleanField(
        default=False, help_text="The last check could not read Redis (counts as inconsistent)."
    )

    class Meta:
        db_table = "sync_consistency_samples"
        verbose_name = "consistency sample"
        constraints = [
            # Overlapping sampling windows insert a write once (ON CONFLICT DO NOTHING).
            models.UniqueConstraint(
                fields=["model", "object_pk", "version"], name="sync_sample_write_uniq"
            ),
        ]
        indexes = [
            models.Index(fields=["written_at"], name="sync_sample_written_idx"),
            # The figures over a window, the trend and retention (by when sampled).
            models.Index(fields=["sampled_at"], name="sync_sample_sampled_idx"),
            # The re-check of recent writes not yet found consistent.
            models.Index(
                fields=["written_at"],
                name="sync_sample_open_idx",
                condition=models.Q(consistent_at__isnull=True, kind="recent"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model}:{self.object_pk} v{self.version}"
