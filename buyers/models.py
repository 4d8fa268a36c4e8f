"""Buyers, synced from a spreadsheet on ``buyer_number``.

Every text column is ``TEXT``: a length limit is what lost 356 of 4,140 buyers in the incident
(a ``VARCHAR(50)``); the ingestion schema check reports any limit the real table has.
Only non-PII columns are cached (DESIGN I5); the PII ones are declared for redaction.
"""

from __future__ import annotations

from django.db import models

from sync.cache.declaration import Tier, synced
from sync.models import SyncedModel

PII_FIELDS = ("name", "email", "phone", "address", "notes")


@synced(
    tier=Tier.PUBLIC,
    ttl=6 * 3600,
    pii_fields=PII_FIELDS,
    fields=(
        "buyer_number",
        "status",
        "property_type",
        "budget",
        "inquiry_date",
        "created_at",
        "db_updated_at",
    ),
)
class Buyer(SyncedModel):
    buyer_number = models.TextField(help_text="Natural key from the sheet.")
    name = models.TextField(blank=True, default="", db_default="")
    email = models.TextField(blank=True, default="", db_default="")
    phone = models.TextField(blank=True, default="", db_default="")
    address = models.TextField(blank=True, default="", db_default="")
    desired_area = models.TextField(blank=True, default="", db_default="")
    property_type = models.TextField(blank=True, default="", db_default="")
    budget = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    status = models.TextField(blank=True, default="", db_default="")
    inquiry_source = models.TextField(blank=True, default="", db_default="")
    inquiry_date = models.DateField(null=True, blank=True)
    notes = models.TextField(blank=True, default="", db_default="")
    # Ingestion bookkeeping: first stored (kept by every upsert), last written by a sync,
    # last changed. A sync skips rows whose values already match, so both move together.
    created_at = models.DateTimeField()
    synced_at = models.DateTimeField()
    db_updated_at = models.DateTimeField()

    class Meta(SyncedModel.Meta):
        db_table = "buyers"
        constraints = [
            # The upsert's ON CONFLICT target (I7).
            models.UniqueConstraint(fields=["buyer_number"], name="buyer_number_uniq"),
        ]

    def __str__(self) -> str:
        return self.buyer_number
