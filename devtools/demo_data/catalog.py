"""Demo catalog: parts with realistic SKUs, content, stock levels and content versions, upserted
on ``sku`` with bulk statements (every demo start is idempotent and takes about a second).

``count`` is the other apps' row count; the catalog loads ten parts per row (3,000 by default)
so the API's list, search and pagination have something to chew on.

Images are small SVG illustrations served by the site itself (``static/catalog/parts/``, one
per kind of part): the Content-Security-Policy lets pages show images from this origin only
(docs/storefront.md). Parts loaded by an older demo with the old placeholder URLs
(``https://images.example.com/…``, which never resolved) are moved to them once.
"""

from __future__ import annotations

import random
from decimal import Decimal

from django.conf import settings
from django.db import transaction

from catalog.models import Part, PartContentVersion, StockLevel
from sync.cache.bulk import bulk_create_synced, update_synced

PARTS_PER_COUNT = 10
KINDS = [
    "bolt",
    "nut",
    "washer",
    "bearing",
    "gasket",
    "spring",
    "valve",
    "hose clamp",
    "fuse",
    "relay",
    "sensor",
    "filter",
    "belt",
    "pulley",
    "bushing",
    "seal",
]
SIZES = ["M4", "M5", "M6", "M8", "M10", "M12", '1/4"', '3/8"', '1/2"', "10 mm", "25 mm"]
MATERIALS = ["steel", "stainless steel", "brass", "nylon", "EPDM", "aluminium"]
FINISHES = ["zinc plated", "plain", "black oxide", "anodised"]
# The illustration of each kind (static/catalog/parts/<name>.svg).
IMAGES = {
    "bolt": "bolt",
    "nut": "nut",
    "washer": "washer",
    "bearing": "bearing",
    "gasket": "seal",
    "spring": "spring",
    "valve": "valve",
    "hose clamp": "clamp",
    "fuse": "electrical",
    "relay": "electrical",
    "sensor": "electrical",
    "filter": "filter",
    "belt": "belt",
    "pulley": "belt",
    "bushing": "washer",
    "seal": "seal",
}
OLD_IMAGE_PREFIX = "https://images.example.com/parts/"


def image_url(kind: str) -> str:
    """The site-relative URL of a kind's illustration (``/static/catalog/parts/….svg``)."""
    return f"/{settings.STATIC_URL.strip('/')}/catalog/parts/{IMAGES[kind]}.svg"


def _content(rng: random.Random, n: int, size: str, kind: str) -> dict:
    material = rng.choice(MATERIALS)
    return {
        "description": f"<p>{size} {kind} in {material}, {rng.choice(FINISHES)}.</p>",
        "specifications": {
            "size": size,
            "material": material,
            "weight_g": round(rng.uniform(0.5, 900), 1),
            "rohs": rng.random() < 0.8,
        },
        "images": [image_url(kind)],
    }


def load(*, count: int) -> str:
    rng = random.Random(20261125)  # the same catalog on every start
    total = count * PARTS_PER_COUNT
    parts = []
    for n in range(1, total + 1):
        size, kind = rng.choice(SIZES), rng.choice(KINDS)
        price = Decimal(rng.randrange(20, 50_000)) / 100
        rng.randrange(0, 500)  # the retired Part.stock's draw: every part's content stays as it was
        parts.append(
            Part(
                sku=f"PRT-{n:05d}",
                name=f"{size} {kind}",
                price=price,
                **_content(rng, n, size, kind),
            )
        )
    before = Part.objects.count()
    with transaction.atomic():
        # New rows only, on the natural key: existing rows keep their name, price, content,
        # stock and version (staff may have changed them in the demo; an update here gave every
        # part a new version and an event on each start). New rows are written through to Redis
        # on commit.
        # NOTE: not ignore_conflicts: rows it creates come back without their pk, so they would
        # not be written through (only replayed later).
        existing = set(
            Part.objects.filter(sku__in=[p.sku for p in parts]).values_list("sku", flat=True)
        )
        bulk_create_synced(Part, [p for p in parts if p.sku not in existing])
        ids = dict(Part.objects.filter(sku__in=[p.sku for p in parts]).values_list("sku", "pk"))
        stock_rng = random.Random(7)
        bulk_create_synced(
            StockLevel,
            [
                StockLevel(
                    part_id=ids[p.sku],
                    quantity=(q := stock_rng.randrange(0, 500)),
                    reserved=stock_rng.randrange(0, q + 1) // 4,
                )
                for p in parts
            ],
            ignore_conflicts=True,
        )
        _local_images(parts)
        _content_versions(parts, ids)
    return f"{Part.objects.count()} parts ({Part.objects.count() - before} new)"


def _local_images(parts: list[Part]) -> None:
    """Parts still pointing at the old, never-resolving image host get their local
    illustration (written through to Redis); images staff have set are left alone."""
    by_image: dict[str, list[str]] = {}
    for part in parts:
        by_image.setdefault(part.images[0], []).append(part.sku)
    for url, skus in by_image.items():
        update_synced(
            Part.objects.filter(sku__in=skus, images__0__startswith=OLD_IMAGE_PREFIX), images=[url]
        )


def _content_versions(parts: list[Part], ids: dict[str, int]) -> None:
    """v1 for every part without versions; every fourth part also has an earlier draft, so
    the demo has something to roll back to."""
    have = set(
        PartContentVersion.objects.filter(part_id__in=ids.values()).values_list(
            "part_id", flat=True
        )
    )
    versions = dict(Part.objects.filter(pk__in=ids.values()).values_list("pk", "version"))
    rows = []
    for n, part in enumerate(parts):
        pk = ids[part.sku]
        if pk in have:
            continue
        current = {
            "name": part.name,
            "description": part.description,
            "specifications": part.specifications,
            "images": part.images,
        }
        if n % 4 == 0:
            draft = {**current, "description": f"<p>Draft: {part.name}.</p>"}
            rows.append(PartContentVersion(part_id=pk, number=1, snapshot=draft, part_version=0))
            rows.append(
                PartContentVersion(
                    part_id=pk, number=2, snapshot=current, part_version=versions[pk]
                )
            )
        else:
            rows.append(
                PartContentVersion(
                    part_id=pk, number=1, snapshot=current, part_version=versions[pk]
                )
            )
    PartContentVersion.objects.bulk_create(rows, ignore_conflicts=True)
