"""Tier 3 look-ups: blind indexes find a customer for equal but differently written values."""

from __future__ import annotations

import pytest
from django.db import transaction

from customers.models import Customer
from sync.cache import repository
from sync.cache.declaration import SyncSpec, Tier
from sync.cache.exceptions import NotSyncedError
from sync.cache.fence import fence
from tests.security.conftest import make_customer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def customer(canaries) -> Customer:
    return Customer.objects.get(pk=make_customer(canaries).pk)


@pytest.mark.parametrize(
    "email", ["jane.doe@example.com", "  Jane.Doe@EXAMPLE.com ", "JANE.DOE@example.COM"]
)
def test_email_variants_find_the_customer(canaries, email) -> None:
    canaries["email"] = "Jane.Doe@Example.com"
    found = Customer.objects.get(pk=make_customer(canaries).pk)
    assert repository.get_by(Customer, email=email).pk == found.pk


@pytest.mark.parametrize(
    "phone",
    ["+1 (555) 010-0000", "555.010.0000", "001 555 010 0000", "+15550100000", "(555) 0100000"],
)
def test_phone_variants_find_the_customer(canaries, phone) -> None:
    canaries["phone"] = "+1 555-010-0000"
    found = Customer.objects.get(pk=make_customer(canaries).pk)
    assert repository.get_by(Customer, phone=phone).pk == found.pk


def test_lookup_through_redis_needs_no_query(
    customer, canaries, settings, django_assert_num_queries
) -> None:
    settings.SYNC_FENCE_REFRESH = 60
    fence.invalidate()
    fence.trusts("customers.customer")
    with django_assert_num_queries(0):
        found = repository.get_by(Customer, email=canaries["email"].upper())
    assert found.pk == customer.pk
    with django_assert_num_queries(1):  # PII is not cached: it loads from PostgreSQL
        assert found.name == canaries["name"]


def test_old_index_entry_no_longer_finds_the_customer(customer, canaries, redis_raw) -> None:
    old = canaries["email"]
    customer.email = "new.address@example.org"
    customer.save()
    assert repository.get_by(Customer, email=old) is None
    assert repository.get_by(Customer, email="NEW.address@example.org").pk == customer.pk
    assert repository.get_by(Customer, email="nobody@example.org") is None
    redis_raw.flushdb()  # a miss in Redis: PostgreSQL answers through its digest column
    assert repository.get_by(Customer, email="new.address@example.org").pk == customer.pk
    assert repository.get_by(Customer, email="new.address@example.org").pk == customer.pk


def test_lookup_inside_a_transaction_and_with_redis_down(customer, canaries, redis_control) -> None:
    with transaction.atomic():
        assert repository.get_by(Customer, phone=canaries["phone"]).pk == customer.pk
    redis_control.kill()
    try:
        assert repository.get_by(Customer, phone=canaries["phone"]).pk == customer.pk
    finally:
        redis_control.start()


def test_bad_lookups_are_clear_errors(customer) -> None:
    with pytest.raises(NotSyncedError, match=r"customers\.customer\.name has no blind index"):
        repository.get_by(Customer, name="x")
    with pytest.raises(TypeError, match="exactly one"):
        repository.get_by(Customer, email="a@b.c", phone="1")
    assert repository.get_by(Customer, email="") is None


def test_declaring_a_pii_field_as_cached_is_refused() -> None:
    with pytest.raises(ValueError, match=r"PII fields may not be cached: email"):
        SyncSpec(model=Customer, tier=Tier.PII, fields=("email",), ttl=60, pii_fields=("email",))
