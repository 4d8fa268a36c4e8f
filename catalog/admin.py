"""The parts catalog in the console: read-only; operators resync and verify.

Parts, stock levels, content versions and the change log are all read-only here, superusers
included: a part's content and stock change only through the staff API (``catalog.services``:
version checks, content snapshots, the change log, events). An admin edit bypassed all of that,
so it is not offered. A part's stock is its ``StockLevel`` (shown in the part list).
"""

from __future__ import annotations

from django.contrib import admin

from catalog.models import CatalogChange, Part, PartContentVersion, StockLevel
from sync.console.admin.filters import DateRangeFilter
from sync.console.admin_base import ConsoleModelAdmin, SyncedModelAdmin


def _stock_level(part: Part) -> StockLevel | None:
    try:
        return part.stock_level
    except StockLevel.DoesNotExist:  # a part from before stock levels
        return None


@admin.register(Part)
class PartAdmin(SyncedModelAdmin):
    list_display = ("sku", "name", "price", "stock_quantity", "stock_available", "in_stock",
                    "is_active", "deleted_at", "version")
    list_select_related = ("stock_level",)
    # Soft-deleted parts stay here (the public API and Redis no longer have them).
    list_filter = ("is_active", ("deleted_at", admin.EmptyFieldListFilter),
                   ("created_at", DateRangeFilter))
    search_fields = ("sku", "name")
    ordering = ("sku",)
    fields = ("sku", "name", "price", ("stock_quantity", "stock_available", "in_stock"),
              "is_active", "deleted_at", ("created_at", "version", "updated_at_ns"))
    readonly_fields = ("stock_quantity", "stock_available", "in_stock", "created_at", "version",
                       "updated_at_ns")

    @admin.display(description="quantity", ordering="stock_level__quantity")
    def stock_quantity(self, part: Part) -> int | None:
        stock = _stock_level(part)
        return None if stock is None else stock.quantity

    @admin.display(description="available")
    def stock_available(self, part: Part) -> int | None:
        stock = _stock_level(part)
        return None if stock is None else stock.available_stock

    @admin.display(description="in stock", boolean=True)
    def in_stock(self, part: Part) -> bool:
        stock = _stock_level(part)
        return stock is not None and stock.is_in_stock


@admin.register(StockLevel)
class StockLevelAdmin(SyncedModelAdmin):
    list_display = ("part", "quantity", "reserved", "last_updated_by", "updated_at", "version")
    list_select_related = ("part", "last_updated_by")
    search_fields = ("part__sku",)
    ordering = ("part__sku",)


@admin.register(PartContentVersion)
class PartContentVersionAdmin(ConsoleModelAdmin):
    list_display = ("part", "number", "rolled_back_from", "created_by", "created_at")
    list_select_related = ("part", "created_by")
    search_fields = ("part__sku",)
    ordering = ("part", "-number")


@admin.register(CatalogChange)
class CatalogChangeAdmin(ConsoleModelAdmin):
    list_display = ("created_at", "part", "action", "username", "ip", "request_id", "version")
    list_filter = ("action", ("created_at", DateRangeFilter))
    list_select_related = ("part",)
    search_fields = ("part__sku", "username", "request_id")
