"""Keys rotate without a flush: add a new key first, rotate, retire the old one."""

from __future__ import annotations

import base64
import secrets
from io import StringIO

import pytest
from django.core.management import call_command

from customers.models import Order
from sync.cache import repository
from sync.cache.keys import cache_key
from tests.security.conftest import make_customer, make_order

pytestmark = pytest.mark.django_db(transaction=True)
ORDER = "customers.order"


def new_key(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


def test_rotation_reencrypts_everything_under_the_newest_key(
    canaries, settings, redis_raw, django_assert_num_queries
) -> None:
    settings.SYNC_ENCRYPTION_KEYS = new_key("A")
    customer = make_customer(canaries)
    orders = [make_order(customer, f"address {n}", f"ORD-{n}") for n in range(5)]
    keys = [cache_key(ORDER, o.pk) for o in orders]
    assert {redis_raw.hget(k, "k") for k in keys} == {b"A"}
    # B goes first: new writes use it, A still decrypts what is cached
    settings.SYNC_ENCRYPTION_KEYS = f"{new_key('B')},{settings.SYNC_ENCRYPTION_KEYS}"
    assert repository.get(Order, orders[0].pk).shipping_address == "address 0"
    out = StringIO()
    call_command("sync_rotate_keys", stdout=out)
    assert "customers.order: 5 keys, 5 re-encrypted" in out.getvalue()
    assert {redis_raw.hget(k, "k") for k in keys} == {b"B"}
    # A retired: everything still decrypts from Redis, no fallback to PostgreSQL
    settings.SYNC_ENCRYPTION_KEYS = settings.SYNC_ENCRYPTION_KEYS.split(",")[0]
    settings.SYNC_FENCE_REFRESH = 60
    from sync.cache.fence import fence

    fence.invalidate()
    fence.trusts(ORDER)
    with django_assert_num_queries(0):
        assert [repository.get(Order, o.pk).shipping_address for o in orders] == [
            f"address {n}" for n in range(5)
        ]
    call_command("sync_rotate_keys", "-v", "2", stdout=out)
    assert "0 re-encrypted, 5 already under the current key" in out.getvalue()


def test_entries_no_key_opens_are_rewritten_from_postgresql(canaries, settings, redis_raw) -> None:
    order = make_order(make_customer(canaries), "somewhere")
    key = cache_key(ORDER, order.pk)
    redis_raw.hset(key, "k", "lost-key")
    out = StringIO()
    call_command("sync_rotate_keys", stdout=out)
    assert "1 undecodable under every configured key and rewritten" in out.getvalue()
    assert redis_raw.hget(key, "k") == settings.SYNC_ENCRYPTION_KEYS.split(":")[0].encode()
    assert repository.get(Order, order.pk).shipping_address == "somewhere"


def test_rotation_says_when_redis_is_down(redis_control) -> None:
    from django.core.management import CommandError

    redis_control.kill()
    try:
        with pytest.raises(CommandError, match="Is the cache Redis"):
            call_command("sync_rotate_keys", stdout=StringIO())
    finally:
        redis_control.start()


def test_rotation_pages_through_keys_and_skips_tombstones(canaries, settings, redis_raw) -> None:
    from sync.cache.declaration import spec_for
    from sync.cache.rotation import rotate

    settings.SYNC_ENCRYPTION_KEYS = new_key("A")
    customer = make_customer(canaries)
    orders = [make_order(customer, f"address {n}", f"ORD-{n}") for n in range(6)]
    orders[0].delete()  # a tombstone: nothing to re-encrypt
    settings.SYNC_ENCRYPTION_KEYS = f"{new_key('B')},{settings.SYNC_ENCRYPTION_KEYS}"
    pages = []
    report = rotate(spec_for(Order), batch_size=2, progress=lambda r: pages.append(r.scanned))
    assert (report.scanned, report.rotated, report.current) == (6, 5, 0)
    assert len(pages) > 1
    assert rotate(spec_for(Order)).current == 5  # and without a progress callback
