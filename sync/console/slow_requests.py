"""The console's slow requests page: what ``sync.ops.slow`` kept (requests slower than
``HTTP_SLOW_REQUEST_MS``, SQL statements slower than ``HTTP_SLOW_QUERY_MS``), newest first,
each with its request id to find its log lines. Viewer role (docs/console.md)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from sync.access import roles
from sync.cache.exceptions import CacheUnavailableError
from sync.ops import slow


def slow_page(request: HttpRequest) -> HttpResponse:
    if not roles.can_view(request.user):
        raise PermissionDenied
    context = {
        **admin.site.each_context(request),
        "title": "Slow requests",
        "request_ms": settings.HTTP_SLOW_REQUEST_MS,
        "query_ms": settings.HTTP_SLOW_QUERY_MS,
        "keep": settings.HTTP_SLOW_KEEP,
        "unavailable": "",
    }
    try:
        requests, queries = slow.recent("request"), slow.recent("query")
    except CacheUnavailableError as e:
        requests, queries = [], []
        context["unavailable"] = str(e)
    for entry in (*requests, *queries):
        entry["seconds"] = entry["ms"] / 1000
    context.update(requests=requests, queries=queries)
    return TemplateResponse(request, "admin/console/slow.html", context)
