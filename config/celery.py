"""The Celery app: configuration from Django settings (``CELERY_*``), tasks from every app.

Workers and beat write heartbeats (``sync.ops.heartbeat``) from the moment they are ready, and
beat runs the no-worker watchdog after each of its beats (``sync.ops.watchdog``).
"""

import atexit
import os
import socket

from celery import Celery
from celery.signals import beat_init, worker_process_init, worker_ready, worker_shutdown

from sync.access.request_id import connect_celery_signals
from sync.ops.timing import connect_celery_signals as connect_timing_signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("syncops")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
connect_celery_signals()  # the request id travels with the tasks a request enqueues
connect_timing_signals()  # a task's slow SQL statements are kept, as a request's are

_heartbeats: list = []


@worker_ready.connect(dispatch_uid="syncops.worker_heartbeat")
def _worker_ready(sender=None, **_extra) -> None:
    from django.conf import settings

    from sync.ops.heartbeat import Heartbeat

    _heartbeats.append(
        Heartbeat(
            kind="worker", node=sender.hostname, interval=settings.SYNC_HEARTBEAT_INTERVAL
        ).start()
    )


@worker_shutdown.connect(dispatch_uid="syncops.worker_heartbeat_stop")
def _worker_shutdown(**_extra) -> None:
    while _heartbeats:
        _heartbeats.pop().stop()


@beat_init.connect(dispatch_uid="syncops.beat_heartbeat")
def _beat_init(**_extra) -> None:
    import django

    django.setup()  # NOTE: beat does not set Django up before this signal (the worker does)
    from django.conf import settings

    from sync.ops.heartbeat import Heartbeat
    from sync.ops.watchdog import watchdog_check

    _heartbeats.append(
        Heartbeat(
            kind="beat",
            node=f"beat@{socket.gethostname()}",
            interval=settings.SYNC_HEARTBEAT_INTERVAL,
            also=watchdog_check,
        ).start()
    )
    atexit.register(_worker_shutdown)


@worker_process_init.connect(dispatch_uid="syncops.tracing")
def _worker_process_init(**_extra) -> None:
    """Tracing in each pool process (off unless ``TRACING_OTLP_ENDPOINT``): after the fork, so
    the exporter's thread is the child's own."""
    from config.tracing import configure_tracing

    configure_tracing()
