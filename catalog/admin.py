"""The parts catalog in the console: superusers may edit, operators resync and verify."""

from __future__ import annotations

from django.contrib import admin

from catalog.models import Part
from sync.console.admin.filters import DateRangeFilter
from sync.console.admin_base import SyncedModelAdmin


@admin.register(Part)
class PartAdmin(SyncedModelAdmin):
    editable = True
    list_display = ("sku", "name", "price", "stock", "is_active", "version")
    list_filter = ("is_active", ("created_at", DateRangeFilter))
    search_fields = ("sku", "name")
    ordering = ("sku",)
    fields = ("sku", "name", ("price", "stock"), "is_active", ("created_at", "version",
                                                               "updated_at_ns"))
    readonly_fields = ("created_at", "version", "updated_at_ns")
