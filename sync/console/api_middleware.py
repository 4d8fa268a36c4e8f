"""``ApiGuardMiddleware``: what every request under ``/api/`` passes before its view.

* A body bigger than ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (by its ``Content-Length``, the one
  measure Django's ``RequestDataTooBig`` applies too) is a JSON ``413`` at once, unread,
  instead of that exception deep in a view (a traceback 500 from ninja, Django's HTML 400).
* Rate limits per role (``sync.console.ratelimit``): a JSON ``429`` with ``Retry-After`` over
  the limit; the ``RateLimit-*`` headers on every counted answer.
* The body is read here, once: a body sent chunked (no ``Content-Length``) that is too big
  is a JSON ``413`` too, and a POST whose ``Content-Type`` says form data keeps its bytes for
  the view (Django's CSRF check parses such a form and consumed the stream: the view's
  ``request.body`` raised, a 500). Such a form is parsed here too, so a body that is no such
  form (or one with too many fields) is a JSON ``400``, whoever would have parsed it next
  (the CSRF check of django-ninja's API key auth turned it into a 500).
* An error page a framework made (ninja's text 405, Django's HTML 404) becomes a JSON error.

Answers are in the API's own error envelope (``sync.access.api``). It sits after
``AuthenticationMiddleware``: the limit depends on who is asking.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError

from sync.access.api import api_error, body_too_big_message, is_api
from sync.console import ratelimit


def _declared_length(request: HttpRequest) -> int | None:
    """The body's declared length; None when the header is no number (Django's own size
    check would then raise a ValueError: a 500)."""
    text = request.META.get("CONTENT_LENGTH") or "0"
    return int(text) if text.isascii() and text.isdigit() else None


class ApiGuardMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        ratelimit.check_settings()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_api(request):
            return self.get_response(request)
        length = _declared_length(request)
        if length is None:
            return api_error(request, 400, "Content-Length is not a number of bytes")
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return api_error(request, 413, body_too_big_message())
        try:
            request.body  # noqa: B018 -- cached: the form parse and the view read this copy
        except RequestDataTooBig:
            return api_error(request, 413, body_too_big_message())
        if request.method == "POST":
            try:
                request.POST  # noqa: B018 -- Django parses a form body only for a POST
            except (MultiPartParserError, SuspiciousOperation) as e:
                return api_error(
                    request,
                    400,
                    f"bad request: the body is not the form its Content-Type names ({e})",
                )
        verdict = ratelimit.count(request)
        response: HttpResponse
        if verdict is not None and not verdict.allowed:
            response = api_error(
                request,
                429,
                "too many requests: at most "
                f"{verdict.limit} per {verdict.window} s for your role; "
                f"retry in {verdict.reset} s",
            )
        else:
            response = self.get_response(request)
        response = _as_json(request, response)
        if verdict is not None:
            for name, value in verdict.headers.items():
                response[name] = value
        return response


def _as_json(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """An error page the frameworks made (ninja's 405 text, Django's 404 and 400 pages) as a
    JSON error in the API's envelope: a client parses one shape, and no HTML page (nor, under
    DEBUG, a traceback) comes out of /api/."""
    if (
        response.status_code < 400
        or response.streaming
        or response.get("Content-Type", "").startswith("application/json")
    ):
        return response
    message = response.reason_phrase.lower()
    if response.status_code == 405:
        allowed = response.get("Allow", "none")
        message = f"method {request.method} is not allowed here (allowed: {allowed})"
    elif response.status_code == 404:
        message = f"no such endpoint: {request.path}"
    replaced = api_error(request, response.status_code, message)
    for name in ("Allow", "Retry-After"):
        if name in response:
            replaced[name] = response[name]
    return replaced
