"""Tables of the sync engine, and the abstract base every synced model derives from.

``SyncedModel`` carries ``version`` and ``updated_at_ns``, both assigned by PostgreSQL (I2):
a ``BEFORE`` trigger draws the version from one sequence, so it is monotonic per cache key even
across delete and re-create, and it is assigned on ``QuerySet.update()``, bulk upserts and raw
SQL alike. An ``AFTER`` trigger writes the intent to update Redis into ``sync_retry_queue`` in
the same transaction (the outbox, I3), coalesced per (model, pk).
"""

from __future__ import annotations

import math

import pgtrigger
from django.db import models
from django.db.models.functions import Now

VERSION_SEQUENCE = "sync_version_seq"
REPLAY_GRACE = "5 seconds"  # the live writer's head start before replay may take an intent

_ENQUEUE = """
    INSERT INTO sync_retry_queue AS q
        (model, object_pk, version, op, status, attempts, next_attempt_at, created_at, updated_at)
    VALUES ('{{meta.label_lower}}', {row}.{{meta.pk.column}}::text, {version}, '{op}', 'pending',
            0, now() + interval '{grace}', now(), now())
    ON CONFLICT (model, object_pk) DO UPDATE
        SET version = GREATEST(q.version, EXCLUDED.version), op = EXCLUDED.op,
            status = 'pending', attempts = 0, updated_at = now();
"""

SYNC_TRIGGERS = [
    pgtrigger.Trigger(
        name="sync_assign_version",
        when=pgtrigger.Before,
        operation=pgtrigger.Insert | pgtrigger.Update,
        func=pgtrigger.Func(
            f"NEW.version := nextval('{VERSION_SEQUENCE}');"
            " NEW.updated_at_ns := (extract(epoch FROM clock_timestamp()) * 1000000)::bigint"
            " * 1000; RETURN NEW;"
        ),
    ),
    pgtrigger.Trigger(
        name="sync_enqueue_intent",
        when=pgtrigger.After,
        operation=pgtrigger.Insert | pgtrigger.Update | pgtrigger.Delete,
        func=pgtrigger.Func(
            "IF TG_OP = 'DELETE' THEN"
            + _ENQUEUE.format(
                row="OLD", version=f"nextval('{VERSION_SEQUENCE}')", op="d", grace=REPLAY_GRACE
            )
            + " RETURN OLD; END IF;"
            + _ENQUEUE.format(row="NEW", version="NEW.version", op="u", grace=REPLAY_GRACE)
            + " RETURN NEW;"
        ),
    ),
]


class DatabaseAssignedBigIntegerField(models.BigIntegerField):
    """A bigint the database sets (by trigger); returned by INSERT … RETURNING."""

    db_returning = True

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("default", 0)
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        # Migrations name the field by its public path, not the module it is defined in.
        name, _path, args, kwargs = super().deconstruct()
        return name, "sync.models.DatabaseAssignedBigIntegerField", args, kwargs


class SyncedModel(models.Model):
    """Abstract base of synced models; declare the model with ``@synced`` as well.

    NOTE: after an UPDATE the in-memory ``version`` is the old one (Django has no UPDATE …
    RETURNING); ``refresh_from_db(fields=["version"])`` when it matters.
    """

    version = DatabaseAssignedBigIntegerField(
        help_text="Assigned by PostgreSQL from sync_version_seq on every write."
    )
    # NOTE: indexed for the consistency sampler's "written in the last tick" (sync/ops/
    # sampler.py): without it each tick scanned every synced table (30-40 ms per 100k rows,
    # every 2 s); with it 0.03 ms. It costs HOT updates (~7 us more per update, measured).
    updated_at_ns = DatabaseAssignedBigIntegerField(
        db_index=True, help_text="Database clock at the last write, nanoseconds since the epoch."
    )

    class Meta:
        abstract = True
        triggers = SYNC_TRIGGERS


class StatementRequestId(models.Func):
    """The request or task id the writing transaction carries (sync/cache/correlation.py): the
    default of ``SyncIntent.request_id``, which the triggers set. Empty outside both."""

    template = "COALESCE(current_setting('syncops.request_id', true), '')"
    output_field = models.CharField()


class SyncIntent(models.Model):
    """One pending "make Redis match PostgreSQL for (model, pk)" (the outbox, DESIGN I3)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DEAD = "dead"

    class Op(models.TextChoices):
        UPSERT = "u", "Upsert"
        DELETE = "d", "Delete"

    model = models.CharField(max_length=100)
    object_pk = models.TextField()
    version = models.BigIntegerField(help_text="Newest version this intent must bring to Redis.")
    op = models.CharField(max_length=1, choices=Op.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claimed_at = models.DateTimeField(
        null=True, blank=True, help_text="When replay last took this intent."
    )
    epoch = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="Outage epoch of the failure that left this intent (DESIGN I9 fence).",
    )
    last_error = models.TextField(blank=True, default="", db_default="")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    # NOTE: a coalesced intent keeps the id of the write that opened it.
    request_id = models.CharField(
        max_length=64,
        blank=True,
        editable=False,
        db_default=StatementRequestId(),
        help_text="The request or task whose write opened the intent: the id in its log lines.",
    )

    class Meta:
        db_table = "sync_retry_queue"
        verbose_name = "cache retry-queue intent"
        constraints = [
            # Coalescing: the triggers upsert on it, so a hot row leaves one intent.
            models.UniqueConstraint(
                fields=["model", "object_pk"], name="sync_intent_model_pk_uniq"
            ),
        ]
        indexes = [
            # Replay's claim: pending intents whose next attempt is due, oldest first.
            models.Index(fields=["status", "next_attempt_at"], name="sync_intent_due_idx"),
            # The fence's staleness bound: each model's oldest intents (sync/cache/fence.py).
            models.Index(fields=["model", "created_at"], name="sync_intent_age_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.model}:{self.object_pk} v{self.version} ({self.status})"


class SyncFence(models.Model):
    """Outage epoch per model (DESIGN I9).

    A writer that fails to reach Redis bumps the model's epoch and tags its intents with it,
    in one transaction; replay records in Redis the epoch it has drained. Readers trust Redis
    for a model only while the drained epoch has caught up with this one.
    """

    model = models.CharField(max_length=100, primary_key=True)
    epoch = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "sync_fence"

    def __str__(self) -> str:
        return f"{self.model} epoch {self.epoch}"


class PopularKey(models.Model):
    """A synced row read often: the snapshot of the read counts (``sync.cache.popularity``)
    that the automatic warm writes first after a cold start. It lives in PostgreSQL because
    the counts in the cache Redis go with the data they are meant to help refill.

    ``score`` is in sampled reads, decayed by half every ``SYNC_POPULAR_HALF_LIFE`` seconds
    as of ``updated_at``; at most ``SYNC_POPULAR_KEEP`` rows per model."""

    label = models.CharField(max_length=100)
    object_pk = models.CharField(max_length=255)
    score = models.FloatField(default=0.0)
    updated_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "sync_popular_keys"
        verbose_name = "popular key"
        constraints = [
            models.UniqueConstraint(fields=["label", "object_pk"], name="sync_popular_key_uniq"),
        ]
        indexes = [
            # The warm's "most read first" and the snapshot's cap, per model.
            models.Index(fields=["label", "-score"], name="sync_popular_rank_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.label}:{self.object_pk} ({self.score:.1f})"


class CacheVerification(models.Model):
    """One verification of the cache against PostgreSQL (``sync_verify``, the hourly task):
    the consistency figure the console's dashboard shows. Counts are as found, before any
    repair; ``by_model`` holds each model's counts."""

    checked_at = models.DateTimeField(db_default=Now())
    rows = models.PositiveBigIntegerField(default=0)
    consistent = models.PositiveBigIntegerField(default=0)
    missing = models.PositiveBigIntegerField(default=0)
    stale = models.PositiveBigIntegerField(default=0)
    extra = models.PositiveBigIntegerField(default=0)
    repaired = models.PositiveBigIntegerField(default=0)
    by_model = models.JSONField(
        default=dict, blank=True, help_text="label -> rows, consistent, missing, stale, extra."
    )

    class Meta:
        db_table = "sync_cache_verifications"
        verbose_name = "cache verification"
        indexes = [
            # The dashboard's "last verification".
            models.Index(fields=["-checked_at"], name="sync_cache_verif_recent_idx"),
        ]

    def __str__(self) -> str:
        return f"verification {self.checked_at:%Y-%m-%d %H:%M:%S}: {self.fraction:.6%}"

    @property
    def fraction(self) -> float:
        return self.consistent / self.rows if self.rows else 1.0

    @property
    def nines(self) -> float:
        """-log10 of the inconsistent fraction (inf when everything matched)."""
        bad = 1.0 - self.fraction
        return math.inf if bad <= 0 else -math.log10(bad)
