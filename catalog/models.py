"""Parts catalog models (Tier 1: plaintext in Redis)."""

from __future__ import annotations

from django.db import models

from sync.cache.declaration import Tier, synced
from sync.models import SyncedModel


@synced(tier=Tier.PUBLIC, fields=("sku", "name", "price", "stock", "is_active"), ttl=6 * 3600)
class Part(SyncedModel):
    sku = models.CharField(max_length=64, unique=True)
    name = models.TextField()
    price = models.DecimalField(max_digits=12, decimal_places=2)
    stock = models.IntegerField(default=0)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(SyncedModel.Meta):
        db_table = "catalog_parts"
        constraints = [
            models.CheckConstraint(condition=models.Q(stock__gte=0),
                                   name="part_stock_non_negative"),
            models.CheckConstraint(condition=models.Q(price__gte=0),
                                   name="part_price_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"
