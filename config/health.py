"""``/health/`` (django-health-check) and ``/metrics`` (Prometheus).

Health covers PostgreSQL, the cache Redis (and whether it is warm), the broker Redis and a
Celery worker answering a ping (the checks are ``sync.ops.health``'s, which the console's
dashboard runs too). ``/metrics`` (``sync.ops.metrics``) is for staff sessions or a scraper
presenting ``METRICS_TOKEN``.

``/health/`` answers within about ``HEALTH_CHECK_TIMEOUT`` (0.8 s) whatever is down or hung:
the checks run in parallel, each with that budget; a check that has not answered by then is
reported by name as not answering (a paused Redis or broker, a hung PostgreSQL).
"""

from __future__ import annotations

import hmac
from contextlib import nullcontext

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from health_check.views import HealthCheckView
from prometheus_client import CONTENT_TYPE_LATEST

from sync.ops import health


class HealthView(HealthCheckView):
    """The checks of ``sync.ops.health``, in parallel on its long-lived pool."""

    def get_checks(self):
        return health.checks()

    def get_executor(self):
        return nullcontext(health.executor)


# NOTE: HealthCheckView is an async view; as_view() keeps it one, so Django awaits it.
health_view = HealthView.as_view()


def metrics_view(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    presented = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    authorised = (request.user.is_authenticated and request.user.is_staff) or (
        bool(token) and hmac.compare_digest(presented.encode(), token.encode())
    )
    if not authorised:
        return HttpResponse(
            "metrics need a staff session or the metrics token\n",
            status=403,
            content_type="text/plain",
        )
    from sync.ops.metrics import render_metrics

    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_LATEST)
