"""``ApiGuardMiddleware``: what every request under ``/api/`` passes before its view.

* A body bigger than ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (by its ``Content-Length``, the one
  measure Django's ``RequestDataTooBig`` applies too) is a JSON ``413`` at once, unread,
  instead of that exception deep in a view (a traceback 500 from ninja, Django's HTML 400).
* Rate limits per role (``sync.console.ratelimit``): a JSON ``429`` with ``Retry-After`` over
  the limit; the ``RateLimit-*`` headers on every counted answer.

Answers are in the API's own error envelope (``sync.console.api_errors``). It sits after
``AuthenticationMiddleware``: the limit depends on who is asking.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from sync.console import ratelimit
from sync.console.api_errors import api_error, body_too_big_message, is_api


def _declared_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:  # Django reads an unparsable length as none, so do we
        return 0


class ApiGuardMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        ratelimit.check_settings()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_api(request):
            return self.get_response(request)
        if _declared_length(request) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return api_error(request, 413, body_too_big_message())
        verdict = ratelimit.count(request)
        if verdict is not None and not verdict.allowed:
            response = api_error(request, 429, "too many requests: at most "
                                 f"{verdict.limit} per {verdict.window} s for your role; "
                                 f"retry in {verdict.reset} s")
        else:
            response = self.get_response(request)
        if verdict is not None:
            for name, value in verdict.headers.items():
                response[name] = value
        return response
