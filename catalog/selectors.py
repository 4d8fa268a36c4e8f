"""Catalog reads for the API: cache-first through the sync engine's repository.

``CATALOG_CACHE_READS=False`` reads the same rows from PostgreSQL only (one joined query):
the benchmark's baseline, and a switch for an operator who distrusts the cache.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import F, Q

from catalog.models import Part, StockLevel
from sync.cache import popularity, repository
from sync.replicas import stale_reads


def stock_dict(stock: StockLevel | None) -> dict:
    if stock is None:  # a part from before stock levels: nothing to sell
        return {
            "quantity": 0,
            "reserved": 0,
            "available_stock": 0,
            "is_in_stock": False,
            "version": 0,
        }
    available = stock.quantity - stock.reserved
    return {
        "quantity": stock.quantity,
        "reserved": stock.reserved,
        "available_stock": available,
        "is_in_stock": available > 0,
        "version": stock.version,
    }


def part_dict(part: Part, stock: StockLevel | None) -> dict:
    return {
        "id": part.pk,
        "sku": part.sku,
        "name": part.name,
        "price": str(part.price),
        "description": part.description,
        "specifications": part.specifications,
        "images": part.images,
        "is_active": part.is_active,
        "version": part.version,
        "stock": stock_dict(stock),
    }


def etag(*versions: int) -> str:
    return '"' + ".".join(str(v) for v in versions) + '"'


def public_part(part_id: int) -> dict | None:
    """A live part with its stock, or None (missing or soft-deleted).

    A part found through the cache counts as read for popularity (sampled, never failing the
    read): the automatic warm writes the most read parts and their stock first."""
    if settings.CATALOG_CACHE_READS:
        part = repository.get(Part, part_id)  # a soft-deleted part is a tombstone: None
        if part is None:
            return None
        stock = repository.get(StockLevel, part_id)
        popularity.record_many([(Part, part_id), (StockLevel, part_id)])
        return part_dict(part, stock)
    part = (
        Part.objects.select_related("stock_level")
        .filter(pk=part_id, deleted_at__isnull=True)
        .first()
    )
    if part is None:
        return None
    return part_dict(part, getattr(part, "stock_level", None))


def public_page(
    *, limit: int, offset: int, in_stock: bool | None, q: str | None
) -> tuple[int, list[dict]]:
    """One page of live parts in sku order: ids from PostgreSQL (filters, search, order),
    the rows themselves cache-first (two pipelined Redis reads for the whole page).

    The count and the ids may come from a read replica (``sync.replicas``): a part created or
    deleted within the replica's lag may be missing from or still on the page; the rows
    themselves are the cache's or the primary's (a fill never reads a replica)."""
    rows = Part.objects.filter(deleted_at__isnull=True)
    if q:
        rows = rows.filter(Q(name__icontains=q) | Q(sku__icontains=q))
    if in_stock is not None:
        available = Q(stock_level__quantity__gt=F("stock_level__reserved"))
        rows = rows.filter(available) if in_stock else rows.exclude(available)
    with stale_reads():
        count = rows.count()
        ids = list(rows.order_by("sku").values_list("pk", flat=True)[offset : offset + limit])
    if not settings.CATALOG_CACHE_READS:
        parts = {p.pk: p for p in Part.objects.select_related("stock_level").filter(pk__in=ids)}
        return count, [
            part_dict(parts[i], getattr(parts[i], "stock_level", None)) for i in ids if i in parts
        ]
    parts = repository.get_many(Part, ids)
    stocks = repository.get_many(StockLevel, ids)
    return count, [part_dict(parts[i], stocks.get(i)) for i in ids if i in parts]
