from __future__ import annotations

import base64
import datetime
import uuid

import pytest

from customers.models import Customer, Order
from tests.engine_fixtures import fresh_engine_state, redis_raw  # noqa: F401  (fixtures)


@pytest.fixture
def canaries() -> dict[str, str]:
    tag = uuid.uuid4().hex[:12]
    return {
        "name": f"Canaryname {tag}",
        "email": f"canary.{tag}@example.org",
        "phone": f"+1 555 {int(tag[:6], 16) % 10**7:07d}",
        "street": f"{tag} Canary Street",
        "city": f"Canaryville{tag}",
        "postal_code": f"C{tag[:8]}",
        "shipping": f"Ship to {tag} Canary Lane",
    }


def make_customer(canaries: dict[str, str], number: str = "CUS-CANARY") -> Customer:
    return Customer.objects.create(
        customer_number=number,
        name=canaries["name"],
        email=canaries["email"],
        phone=canaries["phone"],
        street=canaries["street"],
        city=canaries["city"],
        postal_code=canaries["postal_code"],
        country="US",
    )


def make_order(customer: Customer, shipping: str, number: str = "ORD-CANARY") -> Order:
    return Order.objects.create(
        order_number=number,
        customer=customer,
        items=[{"sku": "PRT-00001", "qty": 2, "price": "4.50"}],
        total="9.00",
        shipping_address=shipping,
        placed_at=datetime.datetime(2026, 11, 25, tzinfo=datetime.UTC),
    )


def encodings(value: str) -> list[bytes]:
    """The canary and the forms a careless encoder would leave it in."""
    raw = value.encode()
    forms = [
        raw,
        raw.lower(),
        raw.hex().encode(),
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw),
        base64.b64encode(raw).rstrip(b"="),
    ]
    digits = "".join(ch for ch in value if ch.isdigit())
    if len(digits) >= 7 and not any(ch.isalpha() for ch in value):
        forms.append(digits.encode())  # a phone number's digits alone are PII too
    return forms
