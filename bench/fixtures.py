"""The rows, twin table and workloads of the cache benchmark (``bench/cache.py``).

Every Part created here has a SKU starting ``bench:``; ``remove_rows`` deletes them with their
intents and keys (at the end of a run, and at the start of the next one after a crash) and drops
the plain twin table.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from decimal import Decimal

LABEL = "catalog.part"
SKU = "bench:"
PLAIN_TABLE = "bench_plain_parts"


@dataclass(frozen=True)
class Sizes:
    reads: int = 20_000
    read_warmup: int = 2_000
    read_rows: int = 1_000
    saves: int = 5_000
    save_warmup: int = 500
    save_rows: int = 200
    batches: int = 300
    batch_warmup: int = 20
    batch_size: int = 100
    outage: int = 100_000
    runs: int = 3

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            reads=2_000,
            read_warmup=200,
            saves=500,
            save_warmup=50,
            batches=30,
            batch_warmup=3,
            outage=10_000,
            runs=1,
        )


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- models


@functools.cache
def plain_model():
    """``catalog.Part``'s columns, constraints and index, with no trigger and no ``@synced``
    (``updated_at_ns``'s index is the engine's: the sampler's, not the part's). A test
    (tests/test_bench_cache_twin.py) keeps the columns in step with Part's."""
    from django.db import models

    from sync.models import DatabaseAssignedBigIntegerField

    class PlainPart(models.Model):
        id = models.BigAutoField(primary_key=True)
        # The same RETURNING columns as a synced model; nothing assigns them here.
        version = DatabaseAssignedBigIntegerField()
        updated_at_ns = DatabaseAssignedBigIntegerField()
        sku = models.CharField(max_length=64, unique=True)
        name = models.TextField()
        price = models.DecimalField(max_digits=12, decimal_places=2)
        is_active = models.BooleanField(default=True)
        description = models.TextField(blank=True, default="", db_default="")
        specifications = models.JSONField(blank=True, default=dict)
        images = models.JSONField(blank=True, default=list)
        deleted_at = models.DateTimeField(null=True, blank=True)
        created_at = models.DateTimeField(auto_now_add=True)

        class Meta:
            app_label = "bench"
            db_table = PLAIN_TABLE
            constraints = [
                models.CheckConstraint(
                    condition=models.Q(price__gte=0), name="bench_plain_price_non_negative"
                ),
            ]
            indexes = [
                models.Index(
                    fields=["sku"],
                    name="bench_plain_live_sku_idx",
                    condition=models.Q(deleted_at__isnull=True),
                ),
            ]

        def __str__(self) -> str:
            return self.sku

    return PlainPart


@functools.cache
def part_without_signals():
    """A proxy of Part for the "triggers only" rows (saved through ``muted``: the triggers run,
    the engine's write-through does not; a diagnostic)."""
    from catalog.models import Part

    class TriggersOnlyPart(Part):
        class Meta:
            proxy = True
            app_label = "bench"

    return TriggersOnlyPart


def create_plain_table() -> None:
    from django.db import connection

    with connection.schema_editor() as editor:
        editor.create_model(plain_model())


# --------------------------------------------------------------------------- rows


def new_parts(model, prefix: str, count: int) -> list:
    return [
        model(
            sku=f"{SKU}{prefix}:{i:06d}",
            name=f"Bench part {prefix} {i}",
            price=Decimal("12.50"),
            is_active=True,
        )
        for i in range(count)
    ]


@dataclass
class Pools:
    read: list  # Parts in Redis (written through on commit)
    synced: list
    triggers_only: list
    plain: list
    synced_batch: list
    triggers_only_batch: list
    plain_batch: list


def make_pools(sizes: Sizes) -> Pools:
    from django.db import transaction

    from catalog.models import Part
    from sync.cache.bulk import bulk_create_synced

    plain, proxy = plain_model(), part_without_signals()
    with transaction.atomic():
        pools = Pools(
            read=bulk_create_synced(Part, new_parts(Part, "read", sizes.read_rows)),
            synced=bulk_create_synced(Part, new_parts(Part, "save", sizes.save_rows)),
            triggers_only=proxy.objects.bulk_create(new_parts(proxy, "trig", sizes.save_rows)),
            plain=plain.objects.bulk_create(new_parts(plain, "save", sizes.save_rows)),
            synced_batch=bulk_create_synced(Part, new_parts(Part, "batch", sizes.batch_size)),
            triggers_only_batch=proxy.objects.bulk_create(
                new_parts(proxy, "trigbatch", sizes.batch_size)
            ),
            plain_batch=plain.objects.bulk_create(new_parts(plain, "batch", sizes.batch_size)),
        )
    drain_intents()  # the proxies' rows left intents: start from an empty queue
    return pools


def drain_intents() -> None:
    from sync.cache.replay import replay_pending

    replay_pending(include_not_due=True)


def vacuum() -> None:
    """VACUUM ANALYZE the queue and the table: each timed run starts from the same state.

    NOTE: 100k intents inserted and deleted per run leave dead tuples faster than autovacuum
    clears them on a small machine; without this the second and third runs scan the first
    one's dead index entries, and the planner may still see a table it analysed as empty.
    """
    from django.db import connection

    from catalog.models import Part
    from sync.models import SyncIntent

    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {SyncIntent._meta.db_table}, {Part._meta.db_table}")


def pending_intents() -> int:
    from sync.models import SyncIntent

    return SyncIntent.objects.filter(model=LABEL, status=SyncIntent.Status.PENDING).count()


@functools.cache
def admin_client():
    """A client without the engine's short timeouts, for FLUSHDB and bulk UNLINK (setup only)."""
    import redis
    from django.conf import settings

    return redis.Redis.from_url(
        settings.SYNC_REDIS_URL, socket_timeout=60, socket_connect_timeout=60
    )


def remove_rows() -> int:
    """Delete every ``bench:`` Part, its intents and its keys; drop the twin table."""
    from django.db import connection, transaction

    from sync.cache.keys import cache_key

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM catalog_parts WHERE sku LIKE %s RETURNING id::text", [f"{SKU}%"]
        )
        pks = [pk for (pk,) in cursor.fetchall()]
        # The delete trigger has just queued a tombstone intent per row: not ours to keep.
        cursor.execute(
            "DELETE FROM sync_retry_queue WHERE model = %s AND object_pk = ANY(%s)", [LABEL, pks]
        )
        cursor.execute(f"DROP TABLE IF EXISTS {PLAIN_TABLE}")
    client = admin_client()
    for start in range(0, len(pks), 5_000):
        client.unlink(*[cache_key(LABEL, pk) for pk in pks[start : start + 5_000]])
    return len(pks)


def clear_cache(*, own_server: bool) -> str:
    """FLUSHDB on the bench's own Redis; on a shared one, only this model's keys."""
    from sync.cache.keys import model_pattern
    from sync.cache.store import forget_markers

    client = admin_client()
    # NOTE: this process saw the data-loss markers before the flush: its next writer would
    # (rightly) take the flush for a loss during its write and requeue that batch. A warm
    # started after a loss begins with fresh markers (autowarm reads them; sync_warm runs
    # in a new process), so the benchmark forgets them too.
    forget_markers()
    if own_server:
        # NOTE: not ASYNC: a background free of 100k keys would compete with the pass that
        # follows (and on a loaded machine push a marker read past the engine's timeout).
        client.flushdb()
        return "FLUSHDB"
    keys = list(client.scan_iter(match=model_pattern(LABEL), count=5_000))
    for start in range(0, len(keys), 5_000):
        client.unlink(*keys[start : start + 5_000])
    return f"UNLINK of the model's {len(keys):,} keys (REDIS_URL is not the bench's own)"


# --------------------------------------------------------------------------- workloads


def saver(rows: list):
    """One row saved per transaction, the rows in turn."""
    from django.db import transaction

    def save(i: int) -> None:
        obj = rows[i % len(rows)]
        obj.price += 1
        with transaction.atomic():
            obj.save()

    return save


def muted(operation):
    """``operation`` with the engine's post_save receiver disconnected (triggers only).

    The disconnect/connect pair costs a few µs per call, inside the timing."""
    from django.db.models.signals import post_save

    from sync.cache.signals import _changed

    def run(i: int) -> None:
        post_save.disconnect(dispatch_uid="sync-changed-save")
        try:
            operation(i)
        finally:
            post_save.connect(_changed, dispatch_uid="sync-changed-save")

    return run


def batch_saver(rows: list):
    """Every row saved, in one transaction."""
    from django.db import transaction

    def save_all(_i: int) -> None:
        with transaction.atomic():
            for obj in rows:
                obj.price += 1
                obj.save()

    return save_all


def create_outage(sizes: Sizes) -> None:
    """Rows written while nothing wrote them through: only the triggers' intents remain."""
    from django.db import transaction

    from catalog.models import Part

    with transaction.atomic():
        # NOTE: a plain bulk_create sends no signal, so nothing is marked for write-through:
        # what writes during an outage (or a raw SQL import) leave behind.
        Part.objects.bulk_create(new_parts(Part, "outage", sizes.outage), batch_size=5_000)


def touch_outage_rows() -> None:
    """A new version of every outage row by ``QuerySet.update`` (trigger-made intents)."""
    from django.db.models import F

    from catalog.models import Part

    Part.objects.filter(sku__startswith=f"{SKU}outage:").update(price=F("price") + 1)
