"""I5/I6: planted PII canaries appear nowhere in Redis, in the logs or in the retry queue,
after write-through, replay, warming, verification, rotation and look-ups."""

from __future__ import annotations

import io
import logging
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from customers.models import Customer, Order
from sync.cache import connection as cache_connection
from sync.cache import repository
from sync.cache.replay import replay_pending
from tests.security.conftest import encodings, make_customer, make_order

pytestmark = pytest.mark.django_db(transaction=True)


def dump_keyspace(client) -> bytes:
    """Every key name and every value of every type in the cache Redis, as one blob."""
    parts: list[bytes] = []
    for key in client.scan_iter(count=500):
        parts.append(key)
        kind = client.type(key)
        if kind == b"hash":
            for field, value in client.hgetall(key).items():
                parts += [field, value]
        elif kind == b"string":
            parts.append(client.get(key))
        elif kind == b"stream":
            for entry_id, fields in client.xrange(key):
                parts.append(entry_id)
                for field, value in fields.items():
                    parts += [field, value]
        elif kind == b"list":
            parts += client.lrange(key, 0, -1)
        elif kind == b"set":
            parts += list(client.smembers(key))
        elif kind == b"zset":
            parts += [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
    return b"\n".join(parts)


@pytest.fixture
def console_log():
    """The configured console handler (with its redact_pii filter), writing to a buffer."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    buffer = io.StringIO()
    old = handler.setStream(buffer)
    yield buffer
    handler.setStream(old)


def test_no_canary_anywhere_after_every_sync_path(
    canaries, redis_raw, redis_control, console_log
) -> None:
    customer = make_customer(canaries)
    order = make_order(customer, canaries["shipping"])
    # write-through, then a change that only replay brings to Redis
    Customer.objects.filter(pk=customer.pk).update(status="suspended")
    Order.objects.filter(pk=order.pk).update(status="paid")
    replay_pending(include_not_due=True)
    # a Redis outage: errors go to the log and the retry queue
    redis_control.kill()
    try:
        customer.city = canaries["city"]
        customer.save()
    finally:
        redis_control.start()
    cache_connection.breaker.reset()  # (a fresh process would not wait for the cool-down)
    replay_pending(include_not_due=True)
    # cold start, verification, rotation, look-ups
    redis_raw.flushdb()
    call_command("sync_warm", stdout=StringIO())
    call_command("sync_verify", "--repair", stdout=StringIO())
    call_command("sync_rotate_keys", stdout=StringIO())
    assert repository.get_by(Customer, email=canaries["email"]).pk == customer.pk
    assert repository.get_by(Customer, phone=canaries["phone"]).pk == customer.pk
    assert repository.get(Order, order.pk).shipping_address == canaries["shipping"]
    # a database error that quotes the whole row, logged by a sync logger with its traceback
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO customers (customer_number, name, email, phone, street, city,"
                " postal_code, country, status, email_bidx, phone_bidx, created_at, version,"
                " updated_at_ns) VALUES ('X', %s, %s, %s, %s, NULL, '', '', 'active', '', '',"
                " now(), 0, 0)",
                [canaries["name"], canaries["email"], canaries["phone"], canaries["street"]],
            )
    except IntegrityError:
        logging.getLogger("sync.ingest").exception("could not store row for %s", canaries["email"])
    keyspace = dump_keyspace(redis_raw)
    assert keyspace  # the scan saw the cache
    logs = console_log.getvalue().encode()
    assert b"Failing row contains ([row])" in logs and b"[email]" in logs
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(string_agg(last_error, ' '), '') FROM sync_retry_queue")
        queue = cursor.fetchone()[0].encode()
    for field, canary in canaries.items():
        for form in encodings(canary):
            assert form not in keyspace, f"{field} canary in Redis as {form!r}"
            assert form not in logs, f"{field} canary in the logs as {form!r}"
            assert form not in queue, f"{field} canary in sync_retry_queue as {form!r}"
