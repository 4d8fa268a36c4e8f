"""The console's JSON API under ``/api/sync/`` (django-ninja): the same operations as the
pages, for scripts and the pages' own polling.

Session authentication and Django's CSRF check, as for the admin (a script logs in, then sends
the ``csrftoken`` cookie back as ``X-CSRFToken``). Reading needs the viewer role, changing
anything the operator role (``sync.access.api.RoleAuth``: active staff with the role, asked on
every request). Errors are JSON ``{"error": …}`` with a 4xx status (``fields`` holds per-field
messages); malformed and invalid bodies are a 400 (not ninja's 422). Every change is recorded
as a staff action by the service that makes it. The OpenAPI document is at
``/api/sync/openapi.json`` (its UI at ``/api/sync/docs``), for the viewer role.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from ninja import NinjaAPI, Query, Status
from ninja.decorators import decorate_view
from ninja.errors import AuthenticationError, AuthorizationError, HttpError
from ninja.errors import ValidationError as SchemaError
from ninja.parser import Parser

from sync.access import roles
from sync.access.api import (
    CONSOLE,
    NOT_LOGGED_IN,
    RoleAuth,
    api_denial,
    install_error_handlers,
)
from sync.access.client_ip import client_ip
from sync.console.api_schemas import (
    MAX_SOURCE,
    AlertAnswerOut,
    ConfigAnswerOut,
    ConfigIn,
    ConfigListOut,
    DashboardOut,
    ErrorOut,
    ManualIn,
    RunAnswerOut,
    RunErrorOut,
    StartedOut,
    StatusOut,
    changes_of,
)
from sync.console.audit import record_action_by
from sync.console.dashboard import alert_data, dashboard_data, queue_data, run_data, sources_data
from sync.console.masking import mask
from sync.console.operations import (
    AlreadyRunningError,
    ConsoleError,
    UnknownSourceError,
    console_alert_acknowledge,
    known_source,
    manual_sync_cancel,
    manual_sync_start,
)
from sync.models import SyncAlert, SyncConfig, SyncRun
from sync.ops.source_settings import config_for, config_update

VIEWER = RoleAuth(roles.can_view)
OPERATOR = RoleAuth(roles.can_operate)


class BadRequestError(ConsoleError):
    def __init__(self, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.fields = fields


# --------------------------------------------------------------------------- bodies


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e400 reads as infinity
        msg = f"{text} is not a finite number"
        raise ValueError(msg)
    return number


def _no_constant(name: str) -> float:
    msg = f"{name} is not a number JSON allows"
    raise ValueError(msg)


def json_object(body: bytes) -> dict[str, Any]:
    """``body`` as a JSON object; NaN and infinities (which Python's json reads, and which no
    setting can hold) and nesting too deep to parse are a 400, not a 500."""
    try:
        data = json.loads(body, parse_float=_finite, parse_constant=_no_constant)
    except ValueError as e:  # UnicodeDecodeError is a ValueError too
        msg = f"malformed JSON body: {e}"
        raise BadRequestError(msg) from e
    except RecursionError as e:
        msg = "malformed JSON body: nested too deeply"
        raise BadRequestError(msg) from e
    if not isinstance(data, dict):
        msg = "the body must be a JSON object"
        raise BadRequestError(msg)
    return data


class _Parser(Parser):
    """ninja's body parser with the checks above (ninja asks it only for a non-empty body)."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        return json_object(request.body)


class _ConsoleAPI(NinjaAPI):
    def get_content_type(self) -> str:
        return "application/json"  # as every error answer (and the API before ninja) says


def _viewers_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The OpenAPI document and its page: GET for the viewer role, JSON 401/403 otherwise."""

    @require_safe
    @never_cache
    @wraps(view, assigned=())  # NOTE: ninja hands a partial, which has no __name__
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        denial = api_denial(request.user, roles.can_view)
        if denial is not None:
            return CONSOLE.error(denial.status, denial.message)
        return view(request, *args, **kwargs)

    return guarded


api = _ConsoleAPI(
    title="syncops console API",
    version="1.0",
    urls_namespace="sync_api",
    description="The operations console's actions for scripts: start, follow and cancel "
    "syncs, read and change the configuration, the dashboard's figures, acknowledge "
    "alerts. Session auth (log in at /admin/) with the CSRF token on writes; GET needs "
    "the Console viewer role, writes the Console operator role. See docs/console.md.",
    parser=_Parser(),
    docs_decorator=_viewers_only,
)
install_error_handlers(api, CONSOLE, name="console API")


def _field_name(loc: tuple | list) -> str:
    where = list(loc[2:] if loc and loc[0] == "body" else loc[1:])
    return ".".join(str(part) for part in where) or "body"


@api.exception_handler(SchemaError)
def _invalid(request: HttpRequest, exc: SchemaError) -> HttpResponse:
    """A body or query parameter that fails its schema: 400 naming each field."""
    if any(
        e["type"] == "missing" and list(e["loc"])[:1] == ["body"] and len(e["loc"]) == 2
        for e in exc.errors
    ):  # no body at all
        return CONSOLE.error(400, "the body must be a JSON object")
    fields: dict[str, list[str]] = {}
    required = set()
    for e in exc.errors:
        name = _field_name(e["loc"])
        fields.setdefault(name, []).append(e["msg"])
        if e["type"] in ("missing", "source_required"):
            required.add(name)
    message = "; ".join(
        f"{name} is required" if name in required else f"{name}: {messages[0]}"
        for name, messages in fields.items()
    )
    return CONSOLE.error(400, message, fields=fields)


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if isinstance(exc.__cause__, ConsoleError):  # the body parser's own refusal
        return _console_error(request, exc.__cause__)
    return CONSOLE.error(exc.status_code, exc.message)


@api.exception_handler(AuthenticationError)
def _not_logged_in(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return CONSOLE.error(401, NOT_LOGGED_IN.message)


@api.exception_handler(AuthorizationError)
def _forbidden(request: HttpRequest, exc: AuthorizationError) -> HttpResponse:
    return CONSOLE.error(403, exc.message)


@api.exception_handler(ConsoleError)
def _console_error(request: HttpRequest, exc: ConsoleError) -> HttpResponse:
    if isinstance(exc, BadRequestError) and exc.fields:
        return CONSOLE.error(400, str(exc), fields=exc.fields)
    if isinstance(exc, AlreadyRunningError):
        return CONSOLE.error(exc.status, str(exc), run=run_data(exc.run))
    return CONSOLE.error(exc.status, str(exc))


@api.exception_handler(SyncRun.DoesNotExist)
@api.exception_handler(SyncAlert.DoesNotExist)
@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Exception) -> HttpResponse:
    return CONSOLE.error(404, str(exc) or "not found")


# --------------------------------------------------------------------------- operations

# Answers any operation may give: 401 without a session, 403 without the role (or the CSRF
# token), 400 a body or parameter that fails, 413 a body too big and 429 over the role's rate
# limit (both before the view: docs/security.md).
ANY_ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 413: ErrorOut, 429: ErrorOut}


def _actor(request: HttpRequest) -> dict[str, Any]:
    return {"actor": request.user, "ip": client_ip(request)}


@api.post(
    "/manual",
    url_name="manual",
    auth=OPERATOR,
    response={202: StartedOut, 404: ErrorOut, 409: RunErrorOut, 503: RunErrorOut, **ANY_ERRORS},
    summary="Start a sync of a source",
)
@decorate_view(never_cache)
def manual(request: HttpRequest, payload: ManualIn) -> Any:
    """202 with the queued run, 409 while one is active, 503 when the task queue is
    unreachable (the run is recorded as failed) or the sources file cannot be read."""
    run = manual_sync_start(**_actor(request), source=payload.source, trigger=SyncRun.Trigger.API)
    if run.status == SyncRun.Status.FAILED:  # it could not be queued
        return CONSOLE.error(503, run.message, run=run_data(run))
    progress_url = reverse("sync_api:progress", args=[run.pk])
    return Status(202, {"run": run_data(run), "progress_url": progress_url})


@api.get(
    "/status",
    url_name="status",
    auth=VIEWER,
    response={200: StatusOut, **ANY_ERRORS},
    summary="Per source: the active run, the last finished one, success rates and gaps",
)
@decorate_view(never_cache)
def status(request: HttpRequest) -> Any:
    sources, sources_error = sources_data()
    for row in sources:
        del row["trend"]
    return {"sources": sources, "sources_error": sources_error, "queue": queue_data()}


@api.get(
    "/progress/{int:run_id}",
    url_name="progress",
    auth=VIEWER,
    response={200: RunAnswerOut, 404: ErrorOut, **ANY_ERRORS},
    summary="One run, as its progress bar shows it",
)
@decorate_view(never_cache)
def progress(request: HttpRequest, run_id: int) -> Any:
    return {"run": run_data(SyncRun.objects.get(pk=run_id))}


@api.post(
    "/cancel/{int:run_id}",
    url_name="cancel",
    auth=OPERATOR,
    response={202: RunAnswerOut, 404: ErrorOut, 409: ErrorOut, **ANY_ERRORS},
    summary="Cancel a run",
)
@decorate_view(never_cache)
def cancel(request: HttpRequest, run_id: int) -> Any:
    """At once while it waits in the queue, else after its current batch; 409 when it has
    finished."""
    run = manual_sync_cancel(**_actor(request), run_id=run_id)
    return Status(202, {"run": run_data(run)})


def config_data(config: SyncConfig, *, pii: bool) -> dict[str, Any]:
    """The row as JSON; alert recipients are e-mail addresses, masked unless ``pii``."""
    data = {
        f.name: getattr(config, f.name) for f in SyncConfig._meta.concrete_fields if f.name != "id"
    }
    data["updated_at"] = config.updated_at.isoformat()
    if not pii:
        data["recipients"] = mask(config.recipients, kind="emails")
    return data


def configurable(source: str) -> str:
    return source if source == SyncConfig.ENGINE else known_source(source)


@api.get(
    "/config",
    url_name="config",
    auth=VIEWER,
    response={200: ConfigListOut | ConfigAnswerOut, 404: ErrorOut, **ANY_ERRORS},
    summary="Every configuration, or one source's (?source=)",
)
@decorate_view(never_cache)
def config_get(
    request: HttpRequest,
    source: str | None = Query(
        None, max_length=MAX_SOURCE, description='A source, or "engine"; empty: every row.'
    ),
) -> Any:
    """Alert recipients are masked without the PII viewer role."""
    pii = roles.can_view_pii(request.user)
    if source:
        return {"config": config_data(config_for(configurable(source)), pii=pii)}
    rows = SyncConfig.objects.order_by("source")
    return {"configs": [config_data(c, pii=pii) for c in rows]}


@api.put(
    "/config",
    url_name="config",
    auth=OPERATOR,
    response={200: ConfigAnswerOut, 404: ErrorOut, **ANY_ERRORS},
    summary="Change a configuration",
)
@decorate_view(never_cache)
def config_put(request: HttpRequest, payload: ConfigIn) -> Any:
    """Validate and store ``{"source": …, field: value …}``, bump ``version`` (and move the
    beat schedule): 400 with ``fields`` naming each invalid setting, 403 naming a setting the
    role sees masked (alert recipients need the PII viewer role too)."""
    source = configurable(payload.source)
    changes = changes_of(payload)
    if not changes:
        msg = "nothing to change: name at least one setting"
        raise BadRequestError(msg)
    # The admin's field rules (roles.config_fields_changeable): a field the role sees masked
    # is refused, not ignored, so the caller learns the change did not happen.
    refused = sorted(
        set(changes) & set(roles.CONFIG_FIELDS) - set(roles.config_fields_changeable(request.user))
    )
    if refused:
        return CONSOLE.error(
            403,
            f"permission denied: your role may not change {', '.join(refused)}",
            fields={name: ["your role may not change this setting"] for name in refused},
        )
    try:
        updated = config_update(source=source, **changes)
    except ValidationError as e:
        msg = "invalid configuration"
        raise BadRequestError(msg, e.message_dict) from e
    record_action_by(
        **_actor(request),
        action="config.update",
        target=source,
        details={"fields": sorted(changes), "version": updated.version},
    )
    return {"config": config_data(updated, pii=roles.can_view_pii(request.user))}


@api.get(
    "/dashboard",
    url_name="dashboard",
    auth=VIEWER,
    response={200: DashboardOut, **ANY_ERRORS},
    summary="Everything the dashboard shows",
)
@decorate_view(never_cache)
def dashboard(
    request: HttpRequest,
    health: str | None = Query(None, max_length=10, description="0: skip the service checks."),
) -> Any:
    return dashboard_data(health=health != "0")


@api.post(
    "/alerts/{int:alert_id}/acknowledge",
    url_name="alert_acknowledge",
    auth=OPERATOR,
    response={200: AlertAnswerOut, 404: ErrorOut, 409: ErrorOut, **ANY_ERRORS},
    summary="Acknowledge an open alert",
)
@decorate_view(never_cache)
def alert_acknowledge(request: HttpRequest, alert_id: int) -> Any:
    """409 when someone acknowledged it already."""
    alert = console_alert_acknowledge(**_actor(request), alert_id=alert_id)
    return {"alert": alert_data(alert)}


__all__ = ["UnknownSourceError", "api"]
