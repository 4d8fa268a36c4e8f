"""``/health/`` and ``/metrics`` against the real servers and a real Celery worker."""

from __future__ import annotations

import asyncio

import pytest
from django.contrib.auth import get_user_model

from tests.waiting import wait_until

CHECKS = (
    "Database(alias='default')",
    "Cache Redis",
    "Cache warmth",
    "Broker Redis",
    "Celery worker",
)
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


@pytest.mark.django_db(transaction=True)
def test_health_is_ok_with_database_cache_broker_and_worker(client, celery_worker) -> None:
    response = client.get("/health/?format=json")

    assert response.json() == dict.fromkeys(CHECKS, "OK")
    assert response.status_code == 200


@pytest.mark.django_db(transaction=True)
def test_health_names_the_cache_when_the_cache_redis_is_killed(
    client, celery_worker, redis_control
) -> None:
    redis_control.kill()

    response = client.get("/health/?format=json")

    assert response.status_code == 500
    results = response.json()
    assert "Unable to connect to Redis" in results.pop("Cache Redis")
    # Its warmth cannot be known (not a green "OK" for a cache nobody can read).
    assert results.pop("Cache warmth") == "Warning: unknown: the cache Redis does not answer"
    # The broker is a separate server: the task queue and its worker are unaffected.
    assert results == dict.fromkeys(set(CHECKS) - {"Cache Redis", "Cache warmth"}, "OK")


@pytest.mark.django_db
def test_health_reports_a_missing_worker(client) -> None:
    response = client.get("/health/?format=json")

    assert response.status_code == 500
    assert "Celery workers unavailable" in response.json()["Celery worker"]


@pytest.mark.django_db
def test_health_answers_in_plain_text_for_a_load_balancer(client) -> None:
    response = client.get("/health/", HTTP_ACCEPT="text/plain")

    assert response["Content-Type"].startswith("text/plain")
    assert "Cache Redis: OK" in response.text


# --------------------------------------------------------------------------- /metrics


@pytest.fixture
def metrics_token(settings) -> str:
    settings.METRICS_TOKEN = "scraper-token-" + "x" * 32
    return settings.METRICS_TOKEN


def _assert_prometheus_text(response) -> None:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert "# TYPE sync_retry_queue_size gauge" in response.text


@pytest.mark.django_db
def test_metrics_refuses_anonymous_requests(client, metrics_token) -> None:
    assert client.get("/metrics").status_code == 403


@pytest.mark.django_db
def test_metrics_refuses_a_logged_in_user_who_is_not_staff(client) -> None:
    user = get_user_model().objects.create_user("viewer", password="irrelevant")
    client.force_login(user, backend=MODEL_BACKEND)

    assert client.get("/metrics").status_code == 403


@pytest.mark.django_db
def test_metrics_serves_prometheus_text_to_staff(client) -> None:
    staff = get_user_model().objects.create_user("operator", password="irrelevant", is_staff=True)
    client.force_login(staff, backend=MODEL_BACKEND)

    _assert_prometheus_text(client.get("/metrics"))


@pytest.mark.django_db
def test_metrics_serves_a_scraper_with_the_token(client, metrics_token) -> None:
    _assert_prometheus_text(client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {metrics_token}"))


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["Bearer wrong-token", "Bearer ", "", "scraper-token-"])
def test_metrics_refuses_a_wrong_token(client, metrics_token, header) -> None:
    assert client.get("/metrics", HTTP_AUTHORIZATION=header).status_code == 403


@pytest.mark.django_db
def test_metrics_token_unset_never_matches_an_empty_bearer(client, settings) -> None:
    settings.METRICS_TOKEN = ""

    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403


# --------------------------------------------------------------------------- the worker check


@pytest.mark.django_db(transaction=True)
def test_health_pings_the_worker_again_after_its_broker_connection_was_dropped(
    client, celery_app, celery_worker
) -> None:
    """The broker drops the connection the app's pool holds (as after a pause or a restart):
    the next check still says the worker is fine instead of failing once on a broken pipe."""
    import redis

    assert client.get("/health/?format=json").json()["Celery worker"] == "OK"
    with celery_app.pool.acquire(block=True) as pooled:
        client_id = pooled.default_channel.client.client_id()
    broker = redis.Redis.from_url(celery_app.conf.broker_url.replace("redis+socket", "unix"))
    try:
        assert broker.client_kill_filter(_id=client_id) == 1
    finally:
        broker.close()

    assert client.get("/health/?format=json").json()["Celery worker"] == "OK"


@pytest.mark.django_db(transaction=True)
def test_health_names_a_queue_no_worker_consumes(celery_app) -> None:
    from celery.contrib.testing.worker import start_worker

    from sync.ops.health import CeleryWorker
    from tests.subprocesses import worker_answers

    with start_worker(
        celery_app, pool="solo", perform_ping_check=False, queues=["elsewhere"]
    ) as worker:
        assert wait_until(lambda: worker_answers(celery_app, worker.hostname), timeout=15)
        result = asyncio.run(CeleryWorker(app=celery_app, limit=1).get_result())

    assert "No worker for Celery task queue celery" in str(result.error)


def test_health_says_the_broker_connection_failed_when_the_broker_dies_mid_check(
    monkeypatch,
) -> None:
    """The broker goes away while the check waits for replies: a specific message, not the
    library's "unknown error" (a private broker: the tests' own is shared)."""
    import shutil
    import tempfile
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from datetime import timedelta
    from pathlib import Path

    import redis
    from celery import Celery

    from devtools.devservices import RedisServer
    from sync.ops.health import CeleryWorker

    directory = Path(tempfile.mkdtemp(prefix="syncops-", dir="/tmp"))  # short socket path
    server = RedisServer(directory, "broker")
    try:
        server.start()
        # NOTE: Celery reads CELERY_BROKER_URL (the tests' broker) before its own setting.
        monkeypatch.setenv("CELERY_BROKER_URL", server.broker_url)
        app = Celery("dying", set_as_current=False)
        # NOTE: an executor of the test's own: asyncio.run would wait for its default one's
        # thread at the end, and a check stuck in the broker client would hold the test.
        executor = ThreadPoolExecutor(max_workers=1)
        results: list = []
        check = threading.Thread(
            target=lambda: results.append(
                asyncio.run(
                    CeleryWorker(app=app, timeout=timedelta(seconds=20)).get_result(executor)
                )
            )
        )
        check.start()
        watcher = redis.Redis(unix_socket_path=str(server.socket_path))
        # The ping is sent and the check waits for replies (its BRPOP on the reply queue):
        # the broker dies now, not while the ping is still being published (which the
        # client would retry, reconnecting).
        assert wait_until(
            lambda: any(c.get("cmd") == "brpop" for c in watcher.client_list()), timeout=10
        )
        watcher.close()
        server.kill()
        check.join(30)
        executor.shutdown(wait=False)
        assert not check.is_alive()
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)

    assert "broker connection failed" in str(results[0].error)
