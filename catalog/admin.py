"""The parts catalog in the console: superusers may edit parts, operators resync and verify.

Stock levels, content versions and the change log are read-only here: stock and content
change through the staff API (``catalog.services``: version checks, snapshots, change log).
"""

from __future__ import annotations

from django.contrib import admin

from catalog.models import CatalogChange, Part, PartContentVersion, StockLevel
from sync.console.admin.filters import DateRangeFilter
from sync.console.admin_base import ConsoleModelAdmin, SyncedModelAdmin


@admin.register(Part)
class PartAdmin(SyncedModelAdmin):
    editable = True
    list_display = ("sku", "name", "price", "stock", "is_active", "deleted_at", "version")
    # Soft-deleted parts stay here (the public API and Redis no longer have them).
    list_filter = ("is_active", ("deleted_at", admin.EmptyFieldListFilter),
                   ("created_at", DateRangeFilter))
    search_fields = ("sku", "name")
    ordering = ("sku",)
    fields = ("sku", "name", ("price", "stock"), "is_active", ("created_at", "version",
                                                               "updated_at_ns"))
    readonly_fields = ("created_at", "version", "updated_at_ns")


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
