"""What staff do from the console and its JSON API: start and cancel a sync, acknowledge an
alert. Each is one service shared by the pages and the API, and each records the staff
action (``sync.console.audit``) in the same transaction as its effect. A service is told who
acts (``actor``, the user) and from which address (``ip``), never given the HTTP request: the
pages and the API each say so from their own request.

A start is refused while the source has an active run; the check and the new ``pending``
run are serialised per source by a transaction-level advisory lock, so two clicks at once
give one run. A run the pipeline still refuses (a start from elsewhere, e.g. beat) ends
``refused`` with its message, which the progress page shows.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from sync.console.audit import record_action_by
from sync.ingest.exceptions import SourceConfigError
from sync.ingest.pipeline import LOCK_CLASS, request_cancel, start_run
from sync.ingest.source_definitions import load_sources
from sync.ingest.tasks import ingest
from sync.models import SyncAlert, SyncRun
from sync.ops.alerts import alert_acknowledge
from sync.redaction import RedactPiiFilter

logger = logging.getLogger(__name__)
logger.addFilter(RedactPiiFilter())

START_LOCK_CLASS = 0x5343  # "SC": serialises console starts per source (not the run's lock)


class ConsoleError(Exception):
    """Base of what a console action refuses; ``status`` is the HTTP status for the API."""

    status = 400


class UnknownSourceError(ConsoleError):
    status = 404


class SourcesUnreadableError(ConsoleError):
    status = 503  # the server's sources file is broken: not the caller's fault


class AlreadyRunningError(ConsoleError):
    status = 409

    def __init__(self, message: str, run: SyncRun) -> None:
        super().__init__(message)
        self.run = run


class NotActiveError(ConsoleError):
    status = 409


def known_source(source: str) -> str:
    """``source`` when it is configured; ``UnknownSourceError`` naming the known ones."""
    try:
        sources = load_sources()
    except SourceConfigError as e:
        raise SourcesUnreadableError(str(e)) from e
    if source not in sources:
        known = ", ".join(sorted(sources)) or "none"
        msg = f"unknown source {source!r} (configured: {known})"
        raise UnknownSourceError(msg)
    return source


def _lock_is_free(source: str) -> bool:
    """No run holds the source's lock (taken and released at once when free)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT CASE WHEN pg_try_advisory_lock(%s, hashtext(%s))"
            " THEN pg_advisory_unlock(%s, hashtext(%s)) END",
            [LOCK_CLASS, source, LOCK_CLASS, source],
        )
        return cursor.fetchone()[0] is not None


def active_run(source: str) -> SyncRun | None:
    """The source's active run. A ``running`` row whose lock nobody holds belongs to a
    process that died: it is closed as ``failed`` (as the pipeline would) and not counted."""
    run = (
        SyncRun.objects.filter(source=source, status__in=SyncRun.ACTIVE)
        .order_by("-created_at", "-pk")
        .first()
    )
    if run is not None and run.status == SyncRun.Status.RUNNING and _lock_is_free(source):
        SyncRun.objects.filter(pk=run.pk, status=SyncRun.Status.RUNNING).update(
            status=SyncRun.Status.FAILED,
            finished_at=timezone.now(),
            phase="",
            message="abandoned: the process running it stopped",
        )
        return None
    return run


def _enqueue(*, run: SyncRun, trigger: str) -> None:
    """Queue the run's task; when the broker cannot be reached the run fails with the reason
    (instead of staying ``pending`` forever, or failing the request that started it)."""
    try:
        ingest.apply_async(kwargs={"source": run.source, "run_id": run.pk, "trigger": trigger})
    except OperationalError as e:
        logger.error("run %s of %s could not be queued: %s", run.pk, run.source, e)
        SyncRun.objects.filter(pk=run.pk, status=SyncRun.Status.PENDING).update(
            status=SyncRun.Status.FAILED,
            finished_at=timezone.now(),
            message=f"not started: the task queue (Celery broker) is unreachable: {e}"[:2000],
        )
    run.refresh_from_db()


def manual_sync_start(
    *, actor: Any, ip: str | None, source: str, trigger: str = SyncRun.Trigger.MANUAL
) -> SyncRun:
    """A ``pending`` run of ``source`` queued for a worker (after commit), or
    ``AlreadyRunningError`` naming the run that is active."""
    known_source(source)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [START_LOCK_CLASS, source]
            )
        active = active_run(source)
        if active is None:
            run = start_run(source, trigger=trigger)
            record_action_by(
                actor,
                ip,
                action="sync.start",
                target=source,
                details={"run_id": run.pk, "trigger": trigger},
            )
            transaction.on_commit(partial(_enqueue, run=run, trigger=trigger))
            return run
        record_action_by(
            actor,
            ip,
            action="sync.start",
            target=source,
            details={"refused": True, "active_run": active.pk},
        )
    msg = (
        f"{source}: a sync is already {active.status} (run {active.pk}); "
        "wait for it to finish or cancel it"
    )
    raise AlreadyRunningError(msg, active)


def manual_sync_cancel(*, actor: Any, ip: str | None, run_id: int) -> SyncRun:
    """Cancel a run: a ``pending`` one at once (it never starts), a ``running`` one after
    its current batch. ``SyncRun.DoesNotExist`` for an unknown id, ``NotActiveError`` when
    it has finished."""
    run = SyncRun.objects.get(pk=run_id)
    with transaction.atomic():
        cancelled = SyncRun.objects.filter(pk=run_id, status=SyncRun.Status.PENDING).update(
            status=SyncRun.Status.CANCELLED,
            cancel_requested=True,
            finished_at=timezone.now(),
            message="cancelled before it started",
        )
        if not cancelled and not request_cancel(run_id):
            run.refresh_from_db()
            msg = f"run {run_id} is not active (it is {run.status})"
            raise NotActiveError(msg)
        record_action_by(
            actor,
            ip,
            action="sync.cancel",
            target=f"run {run_id}",
            details={"run_id": run_id, "source": run.source, "before_start": bool(cancelled)},
        )
    run.refresh_from_db()
    return run


def console_alert_acknowledge(*, actor: Any, ip: str | None, alert_id: int) -> SyncAlert:
    """Close an open alert; ``SyncAlert.DoesNotExist`` for an unknown id, ``NotActiveError``
    when someone acknowledged it already."""
    alert = SyncAlert.objects.get(pk=alert_id)
    if alert.acknowledged_at is not None:
        msg = f"alert {alert_id} was acknowledged already"
        raise NotActiveError(msg)
    with transaction.atomic():
        alert = alert_acknowledge(alert_id=alert_id, user=actor)
        record_action_by(
            actor,
            ip,
            action="alert.acknowledge",
            target=f"alert {alert_id}",
            details={"alert_id": alert_id, "type": alert.alert_type, "source": alert.source},
        )
    return alert
