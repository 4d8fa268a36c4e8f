"""What every JSON API under ``/api/`` shares: who may call it, and how it says no.

**Access** is the admin's own rule, asked on every request (DESIGN I11: a user is loaded from
the database on every request, so rights an account has lost apply to a session already
open). A request passes when its user is logged in, active, staff (``is_staff``, what
``AdminSite.has_permission`` asks) and holds the console role the operation needs
(``sync.access.roles``). A deactivated user's session does not even authenticate (Django's
backend refuses inactive users): that is a 401. ``RoleAuth`` is that rule as django-ninja
session auth, CSRF check included.

**Errors** are JSON in one envelope per API (DESIGN I8: a client parses one shape): the
message under one key, and what else the answer needs beside it (``fields``, ``run``,
``current_version``). The catalog API's key is ``detail`` (django-ninja's own), the console
API's (``/api/sync/``) ``error``. Answers made before a view runs (a body too big, a rate
limit, a CSRF refusal, a framework's error page) use the envelope the view would have.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.signals import got_request_exception
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.csrf import csrf_failure as html_csrf_failure
from ninja import NinjaAPI
from ninja.errors import AuthorizationError
from ninja.security import SessionAuth
from ninja.utils import check_csrf

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
CONSOLE_API_PREFIX = "/api/sync/"

# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class Envelope:
    """An API's error shape: ``{key: message, **extra}``."""

    key: str

    def error(self, status: int, message: str, **extra: Any) -> JsonResponse:
        return JsonResponse({self.key: message, **extra}, status=status)


CATALOG = Envelope("detail")
CONSOLE = Envelope("error")


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def envelope_of(request: HttpRequest) -> Envelope:
    return CONSOLE if request.path.startswith(CONSOLE_API_PREFIX) else CATALOG


def api_error(request: HttpRequest, status: int, message: str, **extra: Any) -> JsonResponse:
    """An error in the envelope of the API ``request`` is addressed to."""
    return envelope_of(request).error(status, message, **extra)


def body_too_big_message() -> str:
    return (
        f"request body too large: at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes "
        "(DATA_UPLOAD_MAX_MEMORY_SIZE)"
    )


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """``CSRF_FAILURE_VIEW``: a JSON 403 in the API's envelope under ``/api/``, Django's page
    elsewhere."""
    if is_api(request):
        return api_error(
            request,
            403,
            f"CSRF verification failed: {reason.rstrip('.')}. Send the "
            "csrftoken cookie's value in the X-CSRFToken header.",
        )
    return html_csrf_failure(request, reason=reason)


class RefusedError(Exception):
    """An answer ready before the operation ran (a CSRF refusal): sent as it is."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


def install_error_handlers(api: NinjaAPI, envelope: Envelope, *, name: str) -> None:
    """The answers every API gives alike, in ``envelope``: a refusal made before the view, a
    body too big (413), one Django finds suspicious (400), and a bug (a JSON 500 without a
    traceback, which ninja would show under DEBUG; the log has it, and Django's signal lets
    error reporting and the test client see it). ``name`` names the API in the log."""

    @api.exception_handler(RefusedError)
    def refused(request: HttpRequest, exc: RefusedError) -> HttpResponse:
        return exc.response

    @api.exception_handler(RequestDataTooBig)
    def body_too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
        return envelope.error(413, body_too_big_message())

    @api.exception_handler(SuspiciousOperation)
    def suspicious(request: HttpRequest, exc: SuspiciousOperation) -> HttpResponse:
        # NOTE: Django answers these with a 400 page; under DEBUG ninja made them a traceback.
        return envelope.error(400, f"bad request ({type(exc).__name__})")

    @api.exception_handler(Exception)
    def unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
        logger.error(
            "%s: unexpected %s on %s %s",
            name,
            type(exc).__name__,
            request.method,
            request.path,
            exc_info=exc,
        )
        got_request_exception.send(sender=None, request=request)
        return envelope.error(500, "internal error: the server log has it under this request's id")


# --------------------------------------------------------------------------- access

RoleCheck = Callable[[Any], bool]


@dataclass(frozen=True)
class Denial:
    """Why a request is refused: ``status`` 401 (no session) or 403, and a message for it."""

    status: int
    message: str


NOT_LOGGED_IN = Denial(401, "authentication required: log in (session cookie)")
NOT_STAFF = Denial(403, "permission denied: this account is not (or no longer) staff")
NO_ROLE = Denial(403, "permission denied: your console role does not allow this")


def api_denial(user: Any, check: RoleCheck) -> Denial | None:
    """``None`` when ``user`` may do what ``check`` (a ``roles.can_*`` helper) guards, else
    the refusal to send."""
    if user is None or not user.is_authenticated:
        return NOT_LOGGED_IN
    if not (user.is_active and user.is_staff):
        return NOT_STAFF
    if not check(user):
        return NO_ROLE
    return None


class RoleAuth(SessionAuth):
    """django-ninja session auth with the access rule above: Django's CSRF check on unsafe
    methods first (its refusal is ``csrf_failure``'s answer, in the API's envelope), then 401
    without a session (ninja's ``AuthenticationError``) and 403 for an account that is not
    staff or lacks the role (``AuthorizationError``). ``no_role`` replaces ``NO_ROLE``'s
    message (the catalog names the role)."""

    def __init__(self, check: RoleCheck, *, no_role: str | None = None) -> None:
        super().__init__(csrf=True)
        self.check, self.no_role = check, no_role

    def _get_key(self, request: HttpRequest) -> str | None:
        if not getattr(request, "_ninja_csrf_exempt", False):
            refusal = check_csrf(request)  # None for GET, HEAD, OPTIONS and TRACE
            if refusal is not None:
                raise RefusedError(refusal)
        return request.COOKIES.get(self.param_name)

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        denial = api_denial(request.user, self.check)
        if denial is None:
            return request.user
        if denial.status == 401:
            return None
        message = self.no_role if denial is NO_ROLE and self.no_role else denial.message
        raise AuthorizationError(message=message)


__all__ = [
    "CATALOG",
    "CONSOLE",
    "NOT_LOGGED_IN",
    "Denial",
    "Envelope",
    "RefusedError",
    "RoleAuth",
    "api_denial",
    "api_error",
    "body_too_big_message",
    "csrf_failure",
    "install_error_handlers",
    "is_api",
]
