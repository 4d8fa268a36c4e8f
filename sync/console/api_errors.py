"""Errors of the JSON APIs under ``/api/``, each in its API's envelope (DESIGN I8).

The console API (``/api/sync/``) answers ``{"error": …}``, the catalog API (django-ninja, the
rest of ``/api/``) ``{"detail": …}``; answers made before a view runs (a body too big, a rate
limit) use the same envelope as the view would have, so a client parses one shape per API.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse

API_PREFIX = "/api/"
CONSOLE_API_PREFIX = "/api/sync/"


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def api_error(request: HttpRequest, status: int, message: str) -> JsonResponse:
    key = "error" if request.path.startswith(CONSOLE_API_PREFIX) else "detail"
    return JsonResponse({key: message}, status=status)


def body_too_big_message() -> str:
    return (
        f"request body too large: at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes "
        "(DATA_UPLOAD_MAX_MEMORY_SIZE)"
    )
