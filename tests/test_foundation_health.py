"""``/health/`` and ``/metrics`` against the real servers and a real Celery worker."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

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
