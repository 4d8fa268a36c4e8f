"""Rate limits per role on every API, counted in the cache Redis, failing
open when it is unreachable (DESIGN I1).

The limits are small here (the suite turns them off elsewhere: tests/conftest.py); the
cache Redis is the test run's real one, paused with SIGSTOP for the fail-open case.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

import config.settings as product_settings
from sync.console import ratelimit
from sync.console.api_middleware import ApiGuardMiddleware
from tests.catalog.conftest import new_part
from tests.console.conftest import make_staff_user
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def limits(settings) -> Iterator[object]:
    settings.API_RATELIMIT_ENABLED = True
    settings.API_RATELIMIT_ANONYMOUS = "5/minute"
    settings.API_RATELIMIT_VIEWER = "3/minute"
    settings.API_RATELIMIT_OPERATOR = "4/minute"
    settings.API_RATELIMIT_EVENTS = "2/minute"
    ratelimit.fail_open.__init__()
    yield settings
    ratelimit.fail_open.__init__()


def _client(role: str | None, username: str = "", ip: str = "192.0.2.10") -> Client:
    client = Client(REMOTE_ADDR=ip)
    if role:
        client.force_login(
            make_staff_user(role, username=username or f"rl-{role}"),
            backend="django.contrib.auth.backends.ModelBackend",
        )
    return client


def _exhaust(client: Client, url: str, limit: int, **extra) -> None:
    for n in range(limit):
        response = client.get(url, **extra)
        assert response.status_code < 400, (n, response.content[:200])
        assert response["RateLimit-Limit"] == str(limit)
        assert response["RateLimit-Remaining"] == str(limit - n - 1)
        assert 1 <= int(response["RateLimit-Reset"]) <= 60
        assert response["RateLimit-Policy"] == f"{limit};w=60"


def _assert_limited(response, key: str = "detail") -> None:
    assert response.status_code == 429
    assert response["Content-Type"].startswith("application/json")
    assert "too many requests" in response.json()[key]
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response["RateLimit-Remaining"] == "0"


def test_the_limits_are_on_in_the_product() -> None:
    assert product_settings.API_RATELIMIT_ENABLED is True
    assert "sync.console.api_middleware.ApiGuardMiddleware" in product_settings.MIDDLEWARE


def test_anonymous_callers_are_limited_per_ip(redis_raw) -> None:
    part = new_part()
    client = _client(None)
    _exhaust(client, f"/api/parts/{part.pk}", 5)
    _assert_limited(client.get("/api/parts"))
    _assert_limited(client.get("/api/staff/parts/1"))  # one budget across the APIs
    # another address has its own budget
    assert _client(None, ip="192.0.2.11").get("/api/parts").status_code == 200
    # counted in the cache Redis, under a keyed hash of the address, never the address
    keys = [k.decode() for k in redis_raw.scan_iter("api-ratelimit:*")]
    assert len(keys) == 2, keys
    assert not [k for k in keys if "192.0.2." in k]


def test_a_viewer_is_limited_per_user_not_per_address() -> None:
    part = new_part()
    viewer = _client("viewer")
    _exhaust(viewer, f"/api/staff/parts/{part.pk}", 3)
    _assert_limited(viewer.get(f"/api/staff/parts/{part.pk}"))
    _assert_limited(viewer.get("/api/sync/status"), key="error")  # the console's envelope
    # the same address, another viewer; and anonymous callers from it: their own budgets
    other = _client("viewer", username="rl-viewer-2")
    assert other.get(f"/api/staff/parts/{part.pk}").status_code == 200
    assert _client(None).get("/api/parts").status_code == 200


def test_an_operator_has_the_operator_limit_and_writes_are_refused_over_it() -> None:
    part = new_part(quantity=5)
    operator = _client("operator")
    _exhaust(operator, "/api/sync/status", 4)
    write = operator.put(
        f"/api/staff/parts/{part.pk}/stock",
        json.dumps({"quantity": 1}),
        content_type="application/json",
        HTTP_IF_MATCH='"1"',
    )
    _assert_limited(write)
    part.stock_level.refresh_from_db()
    assert part.stock_level.quantity == 5


def test_the_event_stream_limits_connection_attempts() -> None:
    client = _client(None)
    # NOTE: a bad id answers at once (400) and counts like any connection attempt.
    for _ in range(2):
        assert client.get("/api/events?last_event_id=bad").status_code == 400
    _assert_limited(client.get("/api/events?last_event_id=bad"))
    assert client.get("/api/parts").status_code == 200  # the events budget is its own


def test_a_paused_cache_redis_lets_every_request_through_and_warns_once(
    redis_control, limits, caplog
) -> None:
    # NOTE: no cooldown: every request asks the paused server (and times out), and still
    # only the first failure of the outage is logged.
    limits.API_RATELIMIT_FAIL_OPEN_COOLDOWN = 0
    part = new_part()
    client = _client(None)
    _exhaust(client, f"/api/parts/{part.pk}", 5)
    _assert_limited(client.get(f"/api/parts/{part.pk}"))
    redis_control.pause()
    try:
        with caplog.at_level(logging.WARNING, logger="sync.console.ratelimit"):
            for _ in range(4):
                response = client.get(f"/api/parts/{part.pk}")
                assert response.status_code == 200
                assert "RateLimit-Limit" not in response
    finally:
        redis_control.resume()
    warnings = [r for r in caplog.records if r.name == "sync.console.ratelimit"]
    assert len(warnings) == 1 and "not enforced" in warnings[0].getMessage()
    # back: once the cooldown is over, requests are counted again
    limits.API_RATELIMIT_FAIL_OPEN_COOLDOWN = 0.05
    ratelimit.fail_open.until = 0.0
    assert wait_until(lambda: "RateLimit-Limit" in client.get(f"/api/parts/{part.pk}"), timeout=10)
    assert not ratelimit.fail_open.failing


def test_a_bad_limit_stops_startup_naming_the_setting(settings) -> None:
    settings.API_RATELIMIT_VIEWER = "lots"
    with pytest.raises(ImproperlyConfigured, match="API_RATELIMIT_VIEWER"):
        ApiGuardMiddleware(lambda request: None)


def test_limits_off_means_no_counting(settings) -> None:
    settings.API_RATELIMIT_ENABLED = False
    client = _client(None)
    for _ in range(8):
        response = client.get("/api/parts")
        assert response.status_code == 200 and "RateLimit-Limit" not in response
