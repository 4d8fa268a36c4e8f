"""Customers (Tier 3: PII never reaches Redis) and orders (Tier 2: encrypted in Redis)."""

from __future__ import annotations

from django.db import models

from sync.cache.declaration import Tier, synced
from sync.cache.tiers import BlindIndexField
from sync.models import SyncedModel

CUSTOMER_PII = ("name", "email", "phone", "street", "city", "postal_code")


@synced(
    tier=Tier.PII,
    fields=("customer_number", "status", "country"),
    pii_fields=CUSTOMER_PII,
    ttl=3600,
)
class Customer(SyncedModel):
    class Status(models.TextChoices):
        ACTIVE = "active"
        SUSPENDED = "suspended"

    customer_number = models.CharField(max_length=32, unique=True)
    name = models.TextField()
    email = models.EmailField(max_length=254)
    phone = models.CharField(max_length=40, blank=True)
    street = models.TextField(blank=True)
    city = models.TextField(blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    # Keyed HMAC-SHA256 of the normalised e-mail / phone: equality look-ups without the value.
    email_bidx = BlindIndexField(source="email", kind="email")
    phone_bidx = BlindIndexField(source="phone", kind="phone")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(SyncedModel.Meta):
        db_table = "customers"

    def __str__(self) -> str:
        return self.customer_number


@synced(
    tier=Tier.SENSITIVE,
    fields=(
        "order_number",
        "customer",
        "items",
        "total",
        "currency",
        "status",
        "shipping_address",
        "placed_at",
    ),
    ttl=3600,
)
class Order(SyncedModel):
    class Status(models.TextChoices):
        PLACED = "placed"
        PAID = "paid"
        SHIPPED = "shipped"
        CANCELLED = "cancelled"

    order_number = models.CharField(max_length=32, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders")
    items = models.JSONField(default=list, help_text='[{"sku": …, "qty": …, "price": "…"}]')
    total = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="EUR")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PLACED)
    shipping_address = models.TextField()
    placed_at = models.DateTimeField()

    class Meta(SyncedModel.Meta):
        db_table = "orders"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(total__gte=0), name="order_total_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return self.order_number
