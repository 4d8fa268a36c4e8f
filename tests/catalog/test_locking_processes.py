"""Optimistic locking under real concurrency: several processes decrement the same stock
through the staff API, each with the version it read; nothing is lost, losers get 409."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from catalog.models import StockLevel
from sync.cache import repository
from tests.catalog.conftest import new_part, user_with
from tests.subprocesses import popen_python
from tests.waiting import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PROCESSES = 4
ATTEMPTS = 25
GATE = 7_007_007  # advisory lock key of the start gate

DECREMENTER = """
    import json
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    client = Client()
    client.force_login(User.objects.get(username={username!r}))
    url = "/api/staff/parts/{pk}"
    print("ready", flush=True)
    with connection.cursor() as cursor:  # start together: the parent holds this lock until
        cursor.execute("SELECT pg_advisory_lock_shared(%s)", [{gate}])  # all are ready
        cursor.execute("SELECT pg_advisory_unlock_shared(%s)", [{gate}])
    ok = conflicts = 0
    for _ in range({attempts}):
        stock = client.get(url).json()["stock"]
        response = client.put(url + "/stock", {{"quantity": stock["quantity"] - 1,
                                               "reserved": stock["reserved"]}},
                              content_type="application/json",
                              headers={{"if-match": '"%d"' % stock["version"]}})
        if response.status_code == 200:
            ok += 1
        else:
            assert response.status_code == 409, response.content
            assert response.json()["current_version"] > stock["version"]
            conflicts += 1
    print(json.dumps({{"ok": ok, "conflicts": conflicts}}), flush=True)
"""


def test_concurrent_decrements_lose_nothing_and_losers_get_409() -> None:
    start = 1_000
    part = new_part(quantity=start, reserved=0)
    user_with("Console operator", "locking-operator")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [GATE])
    procs = [
        popen_python(
            DECREMENTER.format(
                username="locking-operator", pk=part.pk, gate=GATE, attempts=ATTEMPTS
            )
        )
        for _ in range(PROCESSES)
    ]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready"
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [GATE])
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    succeeded = sum(r["ok"] for r in results)
    conflicts = sum(r["conflicts"] for r in results)
    assert succeeded + conflicts == PROCESSES * ATTEMPTS
    assert conflicts > 0, "the processes never raced"
    assert succeeded > 0
    assert StockLevel.objects.get(pk=part.pk).quantity == start - succeeded
    # and the public, cache-first read shows it (write-through on each commit)
    wait_until(lambda: repository.get(StockLevel, part.pk).quantity == start - succeeded)
