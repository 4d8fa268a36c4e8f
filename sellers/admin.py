"""Sellers with their property, and properties on their own (both synced models): read-only
(the sheet is their source), PII masked without the PII role, with the cache actions."""

from __future__ import annotations

from django.contrib import admin

from sellers.models import PROPERTY_PII_FIELDS, Property, Seller
from sync.console.admin.filters import DateRangeFilter
from sync.console.admin_base import ConsoleInlineMixin, SyncedModelAdmin


class PropertyInline(ConsoleInlineMixin, admin.StackedInline):
    model = Property
    pii_fields = PROPERTY_PII_FIELDS
    fields = ("property_type", "asking_price", "land_area", "building_area", "address", "synced_at")
    readonly_fields = ("synced_at",)


@admin.register(Seller)
class SellerAdmin(SyncedModelAdmin):
    list_display = ("seller_number", "name", "email", "phone", "status", "contract_date")
    list_filter = ("status", ("contract_date", DateRangeFilter), ("synced_at", DateRangeFilter))
    search_fields = ("seller_number", "name", "email", "phone")
    search_help_text = "A seller number (with the PII role also a name, e-mail or phone)."
    ordering = ("seller_number",)
    date_hierarchy = "synced_at"
    inlines = (PropertyInline,)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "seller_number",
                    "status",
                    "contract_date",
                    "name",
                    "email",
                    "phone",
                    "address",
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


@admin.register(Property)
class PropertyAdmin(SyncedModelAdmin):
    list_display = (
        "seller",
        "property_type",
        "address",
        "asking_price",
        "land_area",
        "building_area",
        "synced_at",
    )
    list_select_related = ("seller",)
    list_filter = ("property_type", ("synced_at", DateRangeFilter))
    search_fields = ("seller__seller_number", "address")
    search_help_text = "A seller number (with the PII role also an address)."
    ordering = ("seller__seller_number",)
    fields = (
        "seller",
        "property_type",
        "address",
        "asking_price",
        "land_area",
        "building_area",
        "created_at",
        "synced_at",
        "db_updated_at",
        "row_version",
        "last_write",
    )
    readonly_fields = ("created_at", "synced_at", "db_updated_at", "row_version", "last_write")
