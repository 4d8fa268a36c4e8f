"""Customers (Tier 3) and their orders (Tier 2) in the console: PII masked without the PII
role (an order's shipping address too), blind indexes never shown; superusers may edit."""

from __future__ import annotations

from django.contrib import admin

from customers.models import Customer, Order
from sync.console.admin.filters import DateRangeFilter
from sync.console.admin_base import SyncedModelAdmin, badge

ORDER_TONES = {
    Order.Status.PLACED: "info",
    Order.Status.PAID: "ok",
    Order.Status.SHIPPED: "muted",
    Order.Status.CANCELLED: "bad",
}


@admin.register(Customer)
class CustomerAdmin(SyncedModelAdmin):
    editable = True
    # NOTE: fits 1280 px beside both sidebars; the phone, street and country (a filter) are
    # on the customer's page.
    list_display = ("customer_number", "name", "email", "city", "status_badge", "created_at")
    list_filter = ("status", "country", ("created_at", DateRangeFilter))
    search_fields = ("customer_number", "name", "email", "phone")
    search_help_text = "A customer number (with the PII role also a name, e-mail or phone)."
    ordering = ("customer_number",)
    fieldsets = (
        (None, {"fields": ("customer_number", "status", "name", "email", "phone")}),
        ("Address", {"fields": ("street", "city", "postal_code", "country")}),
        ("Sync", {"fields": ("created_at", "row_version", "last_write")}),
    )
    readonly_fields = ("created_at", "row_version", "last_write")

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Customer) -> str:
        return badge(
            obj.get_status_display(), "ok" if obj.status == Customer.Status.ACTIVE else "bad"
        )


@admin.register(Order)
class OrderAdmin(SyncedModelAdmin):
    editable = True
    # NOTE: not declared PII for the cache (the whole payload is encrypted, Tier 2), but an
    # address is personal data on a page.
    pii_fields = ("shipping_address",)
    list_display = ("order_number", "customer", "total", "currency", "status_badge", "placed_at")
    list_select_related = ("customer",)
    list_filter = ("status", "currency", ("placed_at", DateRangeFilter))
    search_fields = ("order_number", "customer__customer_number")
    search_help_text = "An order or customer number."
    ordering = ("-placed_at",)
    date_hierarchy = "placed_at"
    raw_id_fields = ("customer",)
    fields = (
        "order_number",
        "customer",
        "status",
        "placed_at",
        "total",
        "currency",
        "items",
        "shipping_address",
        "row_version",
        "last_write",
    )
    readonly_fields = ("row_version", "last_write")

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Order) -> str:
        return badge(obj.get_status_display(), ORDER_TONES.get(obj.status, "muted"))
