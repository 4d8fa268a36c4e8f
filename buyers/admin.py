"""Buyers in the console: read-only (the sheet is their source), PII masked without the PII
role, and the cache actions of every synced model."""

from __future__ import annotations

from django.contrib import admin

from buyers.models import Buyer
from sync.console.admin.filters import DateRangeFilter
from sync.console.admin_base import SyncedModelAdmin


@admin.register(Buyer)
class BuyerAdmin(SyncedModelAdmin):
    # NOTE: fits 1280 px beside both sidebars; the phone, address and property type (a
    # filter) are on the buyer's page.
    list_display = ("buyer_number", "name", "email", "status", "budget", "inquiry_date")
    list_filter = (
        "status",
        "property_type",
        ("inquiry_date", DateRangeFilter),
        ("synced_at", DateRangeFilter),
    )
    search_fields = ("buyer_number", "name", "email", "phone")
    search_help_text = "A buyer number (with the PII role also a name, e-mail or phone)."
    ordering = ("buyer_number",)
    date_hierarchy = "synced_at"
    fieldsets = (
        (None, {"fields": ("buyer_number", "status", "name", "email", "phone", "address")}),
        (
            "Inquiry",
            {
                "fields": (
                    "desired_area",
                    "property_type",
                    "budget",
                    "inquiry_source",
                    "inquiry_date",
                    "notes",
                )
            },
        ),
        (
            "Sync",
            {"fields": ("created_at", "synced_at", "db_updated_at", "row_version", "last_write")},
        ),
    )
    readonly_fields = ("created_at", "synced_at", "db_updated_at", "row_version", "last_write")
