"""Test data builders (plain functions: the models are few and small)."""

from __future__ import annotations

import itertools
from decimal import Decimal

from catalog.models import Part

_seq = itertools.count(1)


def make_part(**overrides) -> Part:
    n = next(_seq)
    fields = {"sku": f"SKU-{n:06d}", "name": f"Part {n}", "price": Decimal("9.99")}
    fields.update(overrides)
    return Part.objects.create(**fields)
