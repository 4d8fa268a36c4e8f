"""``/health/`` (django-health-check) and ``/metrics`` (Prometheus).

Health covers PostgreSQL, the cache Redis, the broker Redis and a Celery worker answering a
ping. ``/metrics`` is for staff sessions or a scraper presenting ``METRICS_TOKEN``.
"""

from __future__ import annotations

import hmac
from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from health_check.checks import Database
from health_check.contrib.celery import Ping
from health_check.contrib.redis import Redis
from health_check.views import HealthCheckView
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from config.celery import app


def async_redis_factory(url: str):
    """An asyncio Redis client for a ``redis://``, ``unix://`` or ``redis+socket://`` URL."""
    from redis.asyncio import Redis as AsyncRedis

    if url.startswith("redis+socket://"):
        path = url.removeprefix("redis+socket://").split("?", 1)[0]
        return lambda: AsyncRedis(unix_socket_path=path, socket_timeout=1)
    return lambda: AsyncRedis.from_url(url, socket_timeout=1)


class CacheRedis(Redis):
    def __repr__(self) -> str:
        return "Cache Redis"


class SyncCacheRedis(Redis):
    def __repr__(self) -> str:
        return "Sync cache Redis"


class BrokerRedis(Redis):
    def __repr__(self) -> str:
        return "Broker Redis"


class CeleryWorker(Ping):
    def __repr__(self) -> str:
        return "Celery worker"


class HealthView(HealthCheckView):
    """The checks, built per request (tests point ``settings.REDIS_URL`` elsewhere): the
    database, the cache Redis, the engine's Redis when ``SYNC_REDIS_URL`` names another (a
    cluster, Sentinel), the broker and a worker."""

    def get_checks(self):
        yield Database()
        yield CacheRedis(client_factory=async_redis_factory(settings.REDIS_URL))
        if settings.SYNC_REDIS_URL != settings.REDIS_URL:
            # The engine's own Redis (a cluster, Sentinel's primary, or another server).
            from sync.cache.connection import async_client

            yield SyncCacheRedis(client_factory=lambda: async_client(socket_timeout=1))
        yield BrokerRedis(client_factory=async_redis_factory(settings.CELERY_BROKER_URL))
        yield CeleryWorker(app=app, timeout=timedelta(seconds=2), limit=1)


# NOTE: HealthCheckView is an async view; as_view() keeps it one, so Django awaits it.
health_view = HealthView.as_view()


def metrics_view(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    presented = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    authorised = (request.user.is_authenticated and request.user.is_staff) or (
        bool(token) and hmac.compare_digest(presented.encode(), token.encode())
    )
    if not authorised:
        return HttpResponse("metrics need a staff session or the metrics token\n",
                            status=403, content_type="text/plain")
    from sync.metrics import refresh_gauges

    refresh_gauges()
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)

