"""The console's JSON API (seed 002 §8 and §15) under ``/api/sync/``: the same operations as
the pages, for scripts and the pages' own polling.

Session authentication and Django's CSRF protection, as for the admin (a script logs in,
then sends the ``csrftoken`` cookie back as ``X-CSRFToken``). Reading needs the viewer
role, changing anything the operator role. Errors are JSON ``{"error": …}`` with a 4xx
status (``fields`` holds per-field messages); every change is recorded as a staff action.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.views.csrf import csrf_failure as html_csrf_failure
from django.views.decorators.cache import never_cache

from sync.access import roles
from sync.console.api_access import api_denial
from sync.console.audit import record_staff_action
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

View = Callable[..., JsonResponse]


class BadRequestError(ConsoleError):
    def __init__(self, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.fields = fields


def error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def endpoint(**checks: Callable[[Any], bool]) -> Callable[[View], View]:
    """The methods a view answers, each with the role check it needs (``GET=roles.can_view``);
    405 for another method, 401 without a session, 403 for an account that is not staff or
    lacks the role (``api_access``: the admin's rule, on every request)."""

    def decorate(view: View) -> View:
        @never_cache
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
            check = checks.get(request.method or "")
            if check is None:
                response = error(405, f"method {request.method} is not allowed here")
                response["Allow"] = ", ".join(checks)
                return response
            denial = api_denial(request.user, check)
            if denial is not None:
                return error(denial.status, denial.message)
            try:
                return view(request, *args, **kwargs)
            except BadRequestError as e:
                return error(400, str(e), **({"fields": e.fields} if e.fields else {}))
            except AlreadyRunningError as e:
                return error(e.status, str(e), run=run_data(e.run))
            except ConsoleError as e:
                return error(e.status, str(e))
            except (SyncRun.DoesNotExist, SyncAlert.DoesNotExist) as e:
                return error(404, str(e))

        return wrapper

    return decorate


def csrf_failure(request: HttpRequest, reason: str = "") -> Any:
    """``CSRF_FAILURE_VIEW``: a JSON 403 under ``/api/``, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return error(
            403,
            f"CSRF verification failed: {reason.rstrip('.')}. Send the "
            "csrftoken cookie's value in the X-CSRFToken header.",
        )
    return html_csrf_failure(request, reason=reason)


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e400 reads as infinity
        msg = f"{text} is not a finite number"
        raise ValueError(msg)
    return number


def _no_constant(name: str) -> float:
    msg = f"{name} is not a number JSON allows"
    raise ValueError(msg)


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The body as a JSON object; NaN and infinities (which Python's json reads, and which
    no setting can hold) and nesting too deep to parse are a 400, not a 500."""
    try:
        body = json.loads(request.body or b"{}", parse_float=_finite, parse_constant=_no_constant)
    except ValueError as e:  # UnicodeDecodeError is a ValueError too
        msg = f"malformed JSON body: {e}"
        raise BadRequestError(msg) from e
    except RecursionError as e:
        msg = "malformed JSON body: nested too deeply"
        raise BadRequestError(msg) from e
    if not isinstance(body, dict):
        msg = "the body must be a JSON object"
        raise BadRequestError(msg)
    return body


def source_of(body: dict[str, Any]) -> str:
    source = body.get("source")
    if not isinstance(source, str) or not source:
        msg = "source is required"
        raise BadRequestError(msg, {"source": ["a source name is required, e.g. buyers"]})
    return source


def progress_url(run: SyncRun) -> str:
    return reverse("sync_api:progress", args=[run.pk])


@endpoint(POST=roles.can_operate)
def manual(request: HttpRequest) -> JsonResponse:
    """Start a sync of ``{"source": …}``: 202 with the queued run, 409 while one is active,
    503 when the task queue is unreachable."""
    run = manual_sync_start(
        request, source=source_of(json_body(request)), trigger=SyncRun.Trigger.API
    )
    if run.status == SyncRun.Status.FAILED:  # it could not be queued
        return error(503, run.message, run=run_data(run))
    return JsonResponse({"run": run_data(run), "progress_url": progress_url(run)}, status=202)


@endpoint(GET=roles.can_view)
def status(request: HttpRequest) -> JsonResponse:
    """Per source: the active run, the last finished one, success rates and gaps."""
    sources, sources_error = sources_data()
    for row in sources:
        del row["trend"]
    return JsonResponse({"sources": sources, "sources_error": sources_error, "queue": queue_data()})


@endpoint(GET=roles.can_view)
def progress(request: HttpRequest, run_id: int) -> JsonResponse:
    return JsonResponse({"run": run_data(SyncRun.objects.get(pk=run_id))})


@endpoint(POST=roles.can_operate)
def cancel(request: HttpRequest, run_id: int) -> JsonResponse:
    """Cancel a run: at once while it waits in the queue, else after its current batch."""
    return JsonResponse({"run": run_data(manual_sync_cancel(request, run_id=run_id))}, status=202)


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


@endpoint(GET=roles.can_view, PUT=roles.can_operate)
def config(request: HttpRequest) -> JsonResponse:
    """GET: every configuration (``?source=`` one); PUT ``{"source": …, field: value …}``:
    validate and store, 400 with ``fields`` naming each invalid one."""
    pii = roles.can_view_pii(request.user)
    if request.method == "GET":
        source = request.GET.get("source")
        if source:
            return JsonResponse({"config": config_data(config_for(configurable(source)), pii=pii)})
        rows = SyncConfig.objects.order_by("source")
        return JsonResponse({"configs": [config_data(c, pii=pii) for c in rows]})
    body = json_body(request)
    source = configurable(source_of(body))
    changes = {k: v for k, v in body.items() if k != "source"}
    if not changes:
        msg = "nothing to change: name at least one setting"
        raise BadRequestError(msg)
    # The admin's field rules (roles.config_fields_changeable): a field the role sees masked
    # is refused, not ignored, so the caller learns the change did not happen.
    refused = sorted(
        set(changes) & set(roles.CONFIG_FIELDS) - set(roles.config_fields_changeable(request.user))
    )
    if refused:
        return error(
            403,
            f"permission denied: your role may not change {', '.join(refused)}",
            fields={name: ["your role may not change this setting"] for name in refused},
        )
    try:
        updated = config_update(source=source, **changes)
    except ValidationError as e:
        msg = "invalid configuration"
        raise BadRequestError(msg, e.message_dict) from e
    record_staff_action(
        request,
        action="config.update",
        target=source,
        details={"fields": sorted(changes), "version": updated.version},
    )
    return JsonResponse({"config": config_data(updated, pii=pii)})


@endpoint(GET=roles.can_view)
def dashboard(request: HttpRequest) -> JsonResponse:
    """Everything the dashboard shows (``?health=0`` skips the service checks)."""
    return JsonResponse(dashboard_data(health=request.GET.get("health") != "0"))


@endpoint(POST=roles.can_operate)
def alert_acknowledge(request: HttpRequest, alert_id: int) -> JsonResponse:
    alert = console_alert_acknowledge(request, alert_id=alert_id)
    return JsonResponse({"alert": alert_data(alert)})


__all__ = ["UnknownSourceError", "csrf_failure"]
