"""Parts catalog models (Tier 1: plaintext in Redis).

* ``Part``: the content (name, description, specifications, images) and price. Its
  database-assigned ``version`` is the content's optimistic lock; ``deleted_at`` is the soft
  delete (a soft-deleted part is a tombstone in Redis and 404 publicly; it stays in admin).
* ``StockLevel``: one per part (same primary key), with its own ``version`` so a content edit
  never conflicts with a stock change and vice versa.
* ``PartContentVersion``: a full content snapshot per content change (rollback source).
* ``CatalogChange``: the change log: old and new values, user, IP and request id.

Writes go through ``catalog.services`` (version checks, snapshots, change log).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from sync.cache.declaration import Tier, synced
from sync.models import SyncedModel

CONTENT_FIELDS = ("name", "description", "specifications", "images")


# A part's stock lives only in ``StockLevel`` (the old ``Part.stock`` column was a stale duplicate).
@synced(
    tier=Tier.PUBLIC,
    fields=(
        "sku",
        "name",
        "price",
        "is_active",
        "description",
        "specifications",
        "images",
        "deleted_at",
    ),
    ttl=6 * 3600,
    soft_delete="deleted_at",
)
class Part(SyncedModel):
    sku = models.CharField(max_length=64, unique=True)
    name = models.TextField()
    price = models.DecimalField(max_digits=12, decimal_places=2)
    is_active = models.BooleanField(default=True)
    description = models.TextField(
        blank=True, default="", db_default="", help_text="Sanitised HTML (a small tag whitelist)."
    )
    specifications = models.JSONField(
        blank=True, default=dict, help_text="Flat object: name -> text, number or boolean."
    )
    images = models.JSONField(blank=True, default=list, help_text="List of http(s) image URLs.")
    deleted_at = models.DateTimeField(
        null=True, blank=True, help_text="Soft delete: gone from the public API and Redis."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(SyncedModel.Meta):
        db_table = "catalog_parts"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(price__gte=0), name="part_price_non_negative"
            ),
        ]
        indexes = [
            # The public list: live parts in sku order (pagination by offset over it).
            models.Index(
                fields=["sku"],
                name="part_live_sku_idx",
                condition=models.Q(deleted_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"

    def content(self) -> dict:
        return {name: getattr(self, name) for name in CONTENT_FIELDS}


@synced(tier=Tier.PUBLIC, fields=("quantity", "reserved"), ttl=6 * 3600)
class StockLevel(SyncedModel):
    part = models.OneToOneField(
        Part, on_delete=models.CASCADE, primary_key=True, related_name="stock_level"
    )
    quantity = models.IntegerField(default=0)
    reserved = models.IntegerField(default=0)
    last_updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(SyncedModel.Meta):
        db_table = "catalog_stock_levels"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(quantity__gte=0), name="stock_quantity_non_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(reserved__gte=0), name="stock_reserved_non_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(reserved__lte=models.F("quantity")),
                name="stock_reserved_within_quantity",
            ),
        ]

    def __str__(self) -> str:
        return f"stock of part {self.pk}: {self.quantity} ({self.reserved} reserved)"

    # Derived, never stored: the API and the cache can only ever agree with quantity/reserved.
    @property
    def available_stock(self) -> int:
        return self.quantity - self.reserved

    @property
    def is_in_stock(self) -> bool:
        return self.available_stock > 0


class PartContentVersion(models.Model):
    """A full content snapshot, numbered 1, 2, … per part; rollback copies one back."""

    part = models.ForeignKey(Part, on_delete=models.CASCADE, related_name="content_versions")
    number = models.PositiveIntegerField()
    snapshot = models.JSONField()
    part_version = models.BigIntegerField(help_text="The part's row version this snapshot is.")
    rolled_back_from = models.PositiveIntegerField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "catalog_part_content_versions"
        ordering = ["part", "number"]
        constraints = [
            models.UniqueConstraint(fields=["part", "number"], name="part_content_version_uniq"),
        ]

    def __str__(self) -> str:
        return f"part {self.part_id} content v{self.number}"


class CatalogChange(models.Model):
    """One change of a part's content or stock, with who, from where and in which request."""

    class Action(models.TextChoices):
        CREATE = "create"
        STOCK = "stock"
        CONTENT = "content"
        ROLLBACK = "rollback"
        DELETE = "delete"
        RESTORE = "restore"

    part = models.ForeignKey(Part, on_delete=models.CASCADE, related_name="changes")
    action = models.CharField(max_length=10, choices=Action.choices)
    changes = models.JSONField(help_text="{field: [old, new]} of every field that changed.")
    version = models.BigIntegerField(help_text="The changed row's new version.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True, default="")
    ip = models.GenericIPAddressField("IP address", null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "catalog_changes"
        ordering = ["-id"]
        indexes = [
            # A part's history, newest first (staff API, admin).
            models.Index(fields=["part", "-id"], name="catalog_change_part_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.action} of part {self.part_id} by {self.username or 'the system'}"
