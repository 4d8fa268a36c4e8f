"""The rules that must always hold are database constraints, not just API validation."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from catalog.models import StockLevel

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("quantity", "reserved"), [(-1, 0), (5, -1), (5, 6)])
def test_the_database_refuses_impossible_stock(make_part, quantity, reserved) -> None:
    part = make_part()
    with pytest.raises(IntegrityError), transaction.atomic():
        StockLevel.objects.filter(pk=part.pk).update(quantity=quantity, reserved=reserved)


def test_available_stock_and_in_stock_are_derived(make_part) -> None:
    stock = StockLevel.objects.get(pk=make_part(quantity=3, reserved=3).pk)
    assert (stock.available_stock, stock.is_in_stock) == (0, False)
    stock.reserved = 1
    assert (stock.available_stock, stock.is_in_stock) == (2, True)
    assert "3" in str(stock)


def test_every_part_gets_content_v1_and_a_create_entry(make_part) -> None:
    part = make_part()
    (version,) = part.content_versions.all()
    assert version.number == 1
    assert version.snapshot["specifications"] == {"thread": "M6"}
    (change,) = part.changes.all()
    assert change.action == "create"
    assert change.changes["quantity"] == [None, 10]
    assert str(part).startswith(part.sku)
    assert str(version) == f"part {part.pk} content v1"
    assert "create" in str(change)
