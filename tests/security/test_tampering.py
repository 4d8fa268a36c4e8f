"""Tier 2/3 ciphertexts are bound to their key and version: tampering, moving or replaying
one is rejected, and the read falls back to PostgreSQL with a log line, never an error."""

from __future__ import annotations

import pytest

from customers.models import Customer, Order
from sync.cache import repository
from sync.cache.keys import cache_key
from tests.security.conftest import make_customer, make_order

pytestmark = pytest.mark.django_db(transaction=True)
ORDER = "customers.order"


@pytest.fixture
def orders(canaries):
    customer = make_customer(canaries)
    return (
        make_order(customer, "first address", "ORD-1"),
        make_order(customer, "second address", "ORD-2"),
    )


def _assert_rejected_and_falls_back(order: Order, caplog) -> None:
    caplog.clear()
    got = repository.get(Order, order.pk)
    assert got.shipping_address == Order.objects.get(pk=order.pk).shipping_address
    assert any("undecodable cache entry" in r.getMessage() for r in caplog.records)


def test_flipped_bit_is_rejected(orders, redis_raw, caplog) -> None:
    key = cache_key(ORDER, orders[0].pk)
    sealed = bytearray(redis_raw.hget(key, "p"))
    sealed[20] ^= 0x01
    redis_raw.hset(key, "p", bytes(sealed))
    _assert_rejected_and_falls_back(orders[0], caplog)


def test_ciphertext_moved_to_another_key_is_rejected(orders, redis_raw, caplog) -> None:
    source = redis_raw.hgetall(cache_key(ORDER, orders[0].pk))
    target = cache_key(ORDER, orders[1].pk)
    redis_raw.hset(target, mapping={"p": source[b"p"], "k": source[b"k"]})
    _assert_rejected_and_falls_back(orders[1], caplog)
    assert repository.get(Order, orders[1].pk).shipping_address == "second address"


def test_ciphertext_replayed_at_another_version_is_rejected(orders, redis_raw, caplog) -> None:
    key = cache_key(ORDER, orders[0].pk)
    old = redis_raw.hgetall(key)
    order = Order.objects.get(pk=orders[0].pk)
    order.shipping_address = "moved house"
    order.save()
    new_version = redis_raw.hget(key, "v")
    assert new_version != old[b"v"]
    redis_raw.hset(key, mapping={"p": old[b"p"], "k": old[b"k"]})  # old text, new version
    _assert_rejected_and_falls_back(orders[0], caplog)
    assert repository.get(Order, orders[0].pk).shipping_address == "moved house"


def test_unknown_key_id_is_rejected(orders, redis_raw, caplog) -> None:
    redis_raw.hset(cache_key(ORDER, orders[0].pk), "k", "retired-key")
    _assert_rejected_and_falls_back(orders[0], caplog)


def test_tampered_customer_entry_falls_back_for_get_by(canaries, redis_raw, caplog) -> None:
    customer = Customer.objects.get(pk=make_customer(canaries).pk)
    key = cache_key("customers.customer", customer.pk)
    redis_raw.hset(key, "p", b"\x00" * 40)
    assert repository.get_by(Customer, email=canaries["email"]).pk == customer.pk
    assert repository.get_many(Customer, [customer.pk])[customer.pk].email == canaries["email"]
