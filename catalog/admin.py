"""The parts catalog in the console: read-only; operators resync and verify.

Parts, stock levels, content versions and the change log are all read-only here, superusers
included: a part's content and stock change only through the staff API (``catalog.services``:
version checks, content snapshots, the change log, events). An admin edit bypassed all of that,
so it is not offered. A part's stock is its ``StockLevel`` (shown in the part list).
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest
from django.utils.html import format_html

from catalog.models import CatalogChange, Part, PartContentVersion, StockLevel
from sync.console import formats
from sync.console.admin.filters import DateRangeFilter
from sync.console.admin_base import ConsoleModelAdmin, SyncedModelAdmin, badge


def _stock_level(part: Part) -> StockLevel | None:
    try:
        return part.stock_level
    except StockLevel.DoesNotExist:  # a part from before stock levels
        return None


# NOTE: a part's ``version`` is the engine's write counter (one sequence for every synced row,
# DESIGN I2): 50 says "written after 49", not "edited 50 times". Lists show the content
# version (1, 2, … per part: what the staff API's versions and rollback number), the page both
# (SyncedModelAdmin.row_version says what the row version is).


class RowVersionColumn:
    """``row version``: the engine's write counter, named so wherever a list shows it."""

    @admin.display(description="row version", ordering="version")
    def row_version(self, obj: Part | StockLevel | CatalogChange) -> str:
        return formats.number(obj.version)


@admin.register(Part)
class PartAdmin(SyncedModelAdmin):
    # NOTE: fits 1280 px beside both sidebars with the action column: active / inactive /
    # deleted is one pill.
    list_display = (
        "sku",
        "name",
        "price",
        "stock_quantity",
        "stock_available",
        "in_stock",
        "state",
        "content_version",
    )
    list_select_related = ("stock_level",)
    # Soft-deleted parts stay here (the public API and Redis no longer have them).
    list_filter = (
        "is_active",
        ("deleted_at", admin.EmptyFieldListFilter),
        ("created_at", DateRangeFilter),
    )
    search_fields = ("sku", "name")
    ordering = ("sku",)
    fields = (
        "sku",
        "name",
        "price",
        "stock_quantity",
        "stock_available",
        "in_stock",
        "is_active",
        "deleted_at",
        "created_at",
        "content_version",
        "row_version",
        "last_write",
    )
    readonly_fields = (
        "stock_quantity",
        "stock_available",
        "in_stock",
        "created_at",
        "content_version",
        "row_version",
        "last_write",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        latest = (
            PartContentVersion.objects.filter(part=OuterRef("pk"))
            .order_by("-number")
            .values("number")[:1]
        )
        return super().get_queryset(request).annotate(content_number=Subquery(latest))

    @admin.display(description="state", ordering="deleted_at")
    def state(self, part: Part) -> str:
        if part.deleted_at is not None:
            return format_html(
                '<span title="deleted {}">{}</span>',
                formats.when(part.deleted_at),
                badge("deleted", "bad"),
            )
        return badge("active", "ok") if part.is_active else badge("inactive", "muted")

    @admin.display(description="content version", ordering="content_number")
    def content_version(self, part: Part) -> str:
        number = getattr(part, "content_number", None)
        return f"v{number}" if number else formats.EMPTY

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
class StockLevelAdmin(RowVersionColumn, SyncedModelAdmin):
    list_display = ("part", "quantity", "reserved", "last_updated_by", "updated_at", "row_version")
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
class CatalogChangeAdmin(RowVersionColumn, ConsoleModelAdmin):
    # NOTE: fits 1280 px beside both sidebars; the request id is searchable and on the page.
    list_display = ("created_at", "part", "action", "username", "ip", "row_version")
    list_filter = ("action", ("created_at", DateRangeFilter))
    list_select_related = ("part",)
    search_fields = ("part__sku", "username", "request_id")
