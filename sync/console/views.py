"""The console's pages in the admin site: the dashboard (the admin index) and the manual sync
page of a source, with the POST endpoints of their buttons (start, cancel, acknowledge).

Reading needs the viewer role, every button the operator role (``sync.access.roles``);
the buttons post a form with the CSRF token, then redirect back with a message (the pages
work without script; their script only keeps the figures and the progress bar live).
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from sync.access import roles
from sync.access.client_ip import client_ip
from sync.console import formats
from sync.console.charts import trend_svg
from sync.console.dashboard import (
    HEALTH_NAMES,
    TREND_BUCKET_HOURS,
    dashboard_data,
    run_data,
)
from sync.console.operations import (
    AlreadyRunningError,
    NotActiveError,
    UnknownSourceError,
    console_alert_acknowledge,
    known_source,
    manual_sync_cancel,
    manual_sync_start,
)
from sync.ingest.source_definitions import get_source
from sync.models import SyncAlert, SyncRun, SyncUpload

RECENT_RUNS = 12
RECENT_UPLOADS = 5


def _require(allowed: bool) -> None:
    if not allowed:
        raise PermissionDenied


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _page_run(run: dict | None) -> dict | None:
    """A run's dict with its times as datetimes again, for the template's filters."""
    if run is None:
        return None
    return {**run, "created_at": _when(run["created_at"]), "finished_at": _when(run["finished_at"])}


def percent(fraction: float) -> str:
    """99.991%, but 100% only when nothing at all is off (three decimals: the nines)."""
    return formats.percent(min(fraction, 1.0), 3)


def dashboard_context(request: HttpRequest) -> dict:
    """The dashboard's figures for the index template; the service checks come from the
    first poll of the JSON endpoint, so the page never waits for a worker's ping."""
    data = dashboard_data(health=False)
    for row in data["sources"]:
        row["chart"] = trend_svg(row["trend"], hours=TREND_BUCKET_HOURS)
        row["last_run"] = _page_run(row["last_run"])
        row["active_run"] = _page_run(row["active_run"])
    if data["consistency"]:
        consistency = data["consistency"]
        consistency["checked_at"] = _when(consistency["checked_at"])
        consistency["percent"] = percent(consistency["fraction"])
    for alert in data["alerts"]:
        alert["last_seen_at"] = _when(alert["last_seen_at"])
    return {
        "dashboard": data,
        "health_names": list(HEALTH_NAMES.values()),
        "can_operate": roles.can_operate(request.user),
    }


def sync_page(request: HttpRequest, source: str) -> HttpResponse:
    """A source's manual sync: start, the progress of its run, cancel, the summary."""
    _require(roles.can_view(request.user))
    try:
        config = get_source(known_source(source))
    except UnknownSourceError as e:
        raise Http404(str(e)) from e
    runs = SyncRun.objects.filter(source=source).order_by("-created_at", "-pk")
    wanted = request.GET.get("run", "")
    run = runs.filter(pk=wanted).first() if wanted.isdigit() else runs.first()
    context = {
        **admin.site.each_context(request),
        "title": f"Sync {source}",
        "source": source,
        "config": config,
        "run": run_data(run) if run else None,
        "active": runs.filter(status__in=SyncRun.ACTIVE).exists(),
        "recent": [_page_run(run_data(r)) for r in runs[:RECENT_RUNS]],
        "can_operate": roles.can_operate(request.user),
        "uploads": SyncUpload.objects.filter(source=source).order_by("-created_at", "-pk")[
            :RECENT_UPLOADS
        ],
        "upload_max_bytes": settings.SYNC_UPLOAD_MAX_BYTES,
    }
    return TemplateResponse(request, "admin/console/sync.html", context)


def _sync_url(source: str, run_id: int | None = None) -> str:
    url = reverse("admin:console_sync", args=[source])
    return f"{url}?run={run_id}" if run_id else url


@require_POST
def sync_start(request: HttpRequest, source: str) -> HttpResponse:
    _require(roles.can_operate(request.user))
    try:
        run = manual_sync_start(actor=request.user, ip=client_ip(request), source=source)
    except UnknownSourceError as e:
        raise Http404(str(e)) from e
    except AlreadyRunningError as e:
        messages.error(request, str(e))
        return HttpResponseRedirect(_sync_url(source, e.run.pk))
    if run.status == SyncRun.Status.FAILED:  # it could not be queued
        messages.error(request, f"Run {run.pk} of {source}: {run.message}")
    else:
        # NOTE: tagged with its run: the page's script replaces it with the run's state as
        # it changes (static/console/console.js), so it never says "queued" of a finished run.
        messages.success(
            request,
            f"Run {run.pk} of {source} queued: a worker starts it shortly.",
            extra_tags=run_message_tag(run.pk),
        )
    return HttpResponseRedirect(_sync_url(source, run.pk))


def run_message_tag(run_id: int, *, upload_id: int | None = None) -> str:
    """The classes of a message about a run, which the sync page keeps up to date (naming
    the upload the run reads, if any)."""
    upload = f" upload-{upload_id}" if upload_id else ""
    return f"console-run-message run-{run_id}{upload}"


@require_POST
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    _require(roles.can_operate(request.user))
    run = get_object_or_404(SyncRun, pk=run_id)
    try:
        manual_sync_cancel(actor=request.user, ip=client_ip(request), run_id=run_id)
    except NotActiveError as e:
        messages.warning(request, str(e))
    else:
        messages.success(
            request,
            f"Run {run_id}: cancel requested; it stops after its current batch.",
            extra_tags=run_message_tag(run_id),
        )
    return HttpResponseRedirect(_sync_url(run.source, run_id))


@require_POST
def alert_acknowledge(request: HttpRequest, alert_id: int) -> HttpResponse:
    _require(roles.can_operate(request.user))
    alert = get_object_or_404(SyncAlert, pk=alert_id)
    try:
        console_alert_acknowledge(actor=request.user, ip=client_ip(request), alert_id=alert_id)
    except NotActiveError as e:
        messages.warning(request, str(e))
    else:
        messages.success(request, f"Alert {alert.alert_type} on {alert.source} acknowledged.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("admin:index")
    return HttpResponseRedirect(target)
