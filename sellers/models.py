"""Sellers and their properties, synced from a spreadsheet on ``seller_number``.

A seller is valid only with its property: one sheet row carries both, and verification checks
that every seller has its ``Property`` row. Text columns are ``TEXT`` (see buyers.models).
Only non-PII columns are cached (DESIGN I5).
"""

from __future__ import annotations

from django.db import models

from sync.cache.declaration import Tier, synced
from sync.models import SyncedModel

SELLER_PII_FIELDS = ("name", "email", "phone", "address", "notes")
PROPERTY_PII_FIELDS = ("address",)


@synced(
    tier=Tier.PUBLIC,
    ttl=6 * 3600,
    pii_fields=SELLER_PII_FIELDS,
    fields=("seller_number", "status", "contract_date", "created_at", "db_updated_at"),
)
class Seller(SyncedModel):
    seller_number = models.TextField(help_text="Natural key from the sheet, e.g. AA12345.")
    name = models.TextField(blank=True, default="", db_default="")
    email = models.TextField(blank=True, default="", db_default="")
    phone = models.TextField(blank=True, default="", db_default="")
    address = models.TextField(blank=True, default="", db_default="")
    status = models.TextField(blank=True, default="", db_default="")
    contract_date = models.DateField(null=True, blank=True)
    notes = models.TextField(blank=True, default="", db_default="")
    created_at = models.DateTimeField()
    synced_at = models.DateTimeField()
    db_updated_at = models.DateTimeField()

    class Meta(SyncedModel.Meta):
        db_table = "sellers"
        constraints = [
            models.UniqueConstraint(fields=["seller_number"], name="seller_number_uniq"),
        ]

    def __str__(self) -> str:
        return self.seller_number


@synced(
    tier=Tier.PUBLIC,
    ttl=6 * 3600,
    pii_fields=PROPERTY_PII_FIELDS,
    fields=(
        "seller",
        "property_type",
        "land_area",
        "building_area",
        "asking_price",
        "db_updated_at",
    ),
)
class Property(SyncedModel):
    seller = models.ForeignKey(Seller, on_delete=models.CASCADE, related_name="properties")
    property_type = models.TextField(blank=True, default="", db_default="")
    address = models.TextField(blank=True, default="", db_default="")
    land_area = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    building_area = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    asking_price = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    created_at = models.DateTimeField()
    synced_at = models.DateTimeField()
    db_updated_at = models.DateTimeField()

    class Meta(SyncedModel.Meta):
        db_table = "properties"
        verbose_name_plural = "properties"
        constraints = [
            # The sheet row's property: the upsert's ON CONFLICT target. (A FK with a unique
            # constraint, not a OneToOneField, so several properties per seller stay possible.)
            models.UniqueConstraint(fields=["seller"], name="property_seller_uniq"),
        ]

    def __str__(self) -> str:
        return f"property of seller {self.seller_id}"
