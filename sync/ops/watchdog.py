"""The watchdog: an alert when no Celery worker is alive, evaluated outside the workers.

The alert rules run on a worker (the ops check), so a dead worker would raise nothing. Each
worker writes a heartbeat (``sync.ops.heartbeat``); ``watchdog_check`` raises ``no_worker``
(critical: row, ERROR log line, mail within the hourly limit) once no worker has beaten for
``SYNC_WORKER_STALE_AFTER`` seconds. It runs in every web process (a daemon thread started by
the ASGI/WSGI entry points, ``start_web_watchdog``) and in beat, because those are what is
still alive when every worker is dead; ``manage.py sync_watchdog`` runs it once from cron.
docs/operations.md argues the choice.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from sync.models import ProcessHeartbeat, SyncAlert, SyncConfig
from sync.ops.alerts import raise_alert
from sync.ops.heartbeat import Heartbeat

logger = logging.getLogger(__name__)

# Rows of processes not seen for this long are removed (a retired host, an old web pid).
FORGET_AFTER = timedelta(days=1)

_watching_since = time.time()  # no heartbeat row at all: count from this process's start
_web: Heartbeat | None = None


def workers_alive(*, stale_after: float | None = None) -> list[ProcessHeartbeat]:
    """Worker nodes that beat within ``stale_after`` seconds and did not stop."""
    stale_after = settings.SYNC_WORKER_STALE_AFTER if stale_after is None else stale_after
    cutoff = timezone.now() - timedelta(seconds=stale_after)
    return list(
        ProcessHeartbeat.objects.filter(
            kind=ProcessHeartbeat.Kind.WORKER, last_seen_at__gte=cutoff, stopped_at__isnull=True
        )
    )


def watchdog_check() -> SyncAlert | None:
    """Raise ``no_worker`` when no worker is alive (once per outage: the occurrence is the
    last heartbeat seen, so later checks of the same outage are not repeats)."""
    stale_after = settings.SYNC_WORKER_STALE_AFTER
    now = timezone.now()
    ProcessHeartbeat.objects.filter(last_seen_at__lt=now - FORGET_AFTER).delete()
    if workers_alive(stale_after=stale_after):
        return None
    workers = ProcessHeartbeat.objects.filter(kind=ProcessHeartbeat.Kind.WORKER)
    last_seen = workers.aggregate(last=Max("last_seen_at"))["last"]
    since = last_seen or datetime.fromtimestamp(_watching_since, tz=UTC)
    silent = (now - since).total_seconds()
    # NOTE: a watchdog that has only just started gives the workers stale_after to report,
    # whatever the last heartbeat says: when a demo (or a host) starts again, the previous
    # run's workers beat last a while ago and the new ones are still booting — it raised
    # no_worker at every start. With every worker dead it still alerts within a minute.
    if silent < stale_after or now.timestamp() - _watching_since < stale_after:
        return None
    nodes = sorted(workers.values_list("node", flat=True))
    message = (
        f"no Celery worker has reported for {silent:.0f} s: nothing consumes the "
        "queues (replay, ops checks, ingestion, the consistency sampler)"
    )
    return raise_alert(
        SyncAlert.Type.NO_WORKER,
        SyncConfig.ENGINE,
        message,
        severity=SyncAlert.Severity.CRITICAL,
        context={"last_heartbeat": last_seen, "workers": nodes},
        occurrence=f"since:{since.isoformat()}",
    )


def _web_check() -> None:
    watchdog_check()


def start_web_watchdog() -> Heartbeat | None:
    """In a web process: its heartbeat and, after each, the watchdog check (a daemon thread).

    Off when ``SYNC_WATCHDOG_INTERVAL`` is 0 (the test run: the test client imports the ASGI
    module too)."""
    global _web
    interval = settings.SYNC_WATCHDOG_INTERVAL
    if interval <= 0 or _web is not None:
        return _web
    node = f"{socket.gethostname()}:{os.getpid()}"
    _web = Heartbeat(
        kind=ProcessHeartbeat.Kind.WEB, node=node, interval=interval, also=_web_check
    ).start()
    logger.info("watchdog: checking every %ss that a worker is alive", interval)
    return _web


def stop_web_watchdog() -> None:
    """Stop this process's watchdog thread (tests; a web process just exits)."""
    global _web
    if _web is not None:
        _web.stop()
        _web = None
