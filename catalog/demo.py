"""Demo catalog: parts with realistic SKUs, upserted on ``sku`` (every demo start is idempotent)."""

from __future__ import annotations

import random
from decimal import Decimal

from django.db import transaction

from catalog.models import Part
from sync.cache.bulk import bulk_create_synced

KINDS = ["bolt", "nut", "washer", "bearing", "gasket", "spring", "valve", "hose clamp",
         "fuse", "relay", "sensor", "filter", "belt", "pulley", "bushing", "seal"]
SIZES = ["M4", "M5", "M6", "M8", "M10", "M12", "1/4\"", "3/8\"", "1/2\"", "10 mm", "25 mm"]


def load(*, count: int) -> str:
    rng = random.Random(20261125)  # the same catalog on every start
    parts = [
        Part(sku=f"PRT-{n:05d}", name=f"{rng.choice(SIZES)} {rng.choice(KINDS)}",
             price=Decimal(rng.randrange(20, 50_000)) / 100, stock=rng.randrange(0, 500))
        for n in range(1, count + 1)
    ]
    before = Part.objects.count()
    with transaction.atomic():
        # Upsert on the natural key, leaving existing rows' stock alone (staff may have
        # changed it in the demo); new rows are written through to Redis on commit.
        bulk_create_synced(Part, parts, update_conflicts=True, unique_fields=["sku"],
                           update_fields=["name", "price"])
    return f"{Part.objects.count()} parts ({Part.objects.count() - before} new)"
