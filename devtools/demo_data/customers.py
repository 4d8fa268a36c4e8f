"""Demo customers and orders: realistic, canary-free, upserted on their numbers (idempotent)."""

from __future__ import annotations

import datetime
import random
from decimal import Decimal

from django.db import transaction

from customers.models import Customer, Order
from sync.cache.bulk import bulk_create_synced

FIRST = [
    "Ada",
    "Ben",
    "Chloe",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Kemal",
    "Lena",
    "Mateo",
    "Nora",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tariq",
]
LAST = [
    "Adler",
    "Brandt",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Horvat",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Moreau",
    "Novak",
    "Okafor",
    "Petrov",
]
CITIES = [
    ("Berlin", "DE"),
    ("Lyon", "FR"),
    ("Porto", "PT"),
    ("Gdansk", "PL"),
    ("Austin", "US"),
    ("Leeds", "GB"),
    ("Utrecht", "NL"),
    ("Graz", "AT"),
]
STREETS = ["Market St", "Harbour Rd", "Linden Ave", "Mill Lane", "Station Sq", "Park Row"]
SKUS = [f"PRT-{n:05d}" for n in range(1, 301)]


def load(*, count: int) -> str:
    rng = random.Random(7)
    customers = []
    for n in range(1, count + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        city, country = rng.choice(CITIES)
        customers.append(
            Customer(
                customer_number=f"CUS-{n:05d}",
                name=f"{first} {last}",
                email=f"{first}.{last}.{n}@example.com".lower(),
                phone=f"+1 555 {rng.randrange(100, 999)} {rng.randrange(1000, 9999)}",
                street=f"{rng.randrange(1, 200)} {rng.choice(STREETS)}",
                city=city,
                postal_code=f"{rng.randrange(10000, 99999)}",
                country=country,
            )
        )
    pii = [
        "name",
        "email",
        "phone",
        "street",
        "city",
        "postal_code",
        "country",
        "email_bidx",
        "phone_bidx",
    ]
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    with transaction.atomic():
        saved = bulk_create_synced(
            Customer,
            customers,
            update_conflicts=True,
            unique_fields=["customer_number"],
            update_fields=pii,
        )
        orders = []
        for n in range(1, count * 10 + 1):
            customer = rng.choice(saved)
            lines = [
                {
                    "sku": rng.choice(SKUS),
                    "qty": rng.randrange(1, 5),
                    "price": str(Decimal(rng.randrange(50, 5000)) / 100),
                }
                for _ in range(rng.randrange(1, 4))
            ]
            total = sum(Decimal(line["price"]) * line["qty"] for line in lines)
            orders.append(
                Order(
                    order_number=f"ORD-{n:06d}",
                    customer_id=customer.pk,
                    items=lines,
                    total=total,
                    status=rng.choice(list(Order.Status.values)),
                    shipping_address=f"{customer.street}, {customer.postal_code} {customer.city}",
                    placed_at=start + datetime.timedelta(minutes=rng.randrange(0, 480_000)),
                )
            )
        bulk_create_synced(
            Order,
            orders,
            update_conflicts=True,
            unique_fields=["order_number"],
            update_fields=["status"],
        )
    return f"{Customer.objects.count()} customers, {Order.objects.count()} orders"
