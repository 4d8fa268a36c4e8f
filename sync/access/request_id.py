"""Request ids: one per request, from ``X-Request-ID`` when the caller (a proxy) sends a sane
one, else a new one; on the response, on every log record (``%(request_id)s``) and in the
catalog's change log."""

from __future__ import annotations

import contextvars
import logging
import re
import uuid

HEADER = "X-Request-ID"
_VALID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
current: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def _request_id(request) -> str:
    given = request.headers.get(HEADER, "")
    return given if _VALID.fullmatch(given) else uuid.uuid4().hex


class RequestIdMiddleware:
    # NOTE: synchronous only. Django calls every middleware above a synchronous-only one
    # synchronously (the APIs' guard, sync/console/api_middleware.py, is one), so under ASGI
    # this one is called synchronously anyway: an async path here would never run.

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    # NOTE: the id is not reset when the response leaves: Django logs a 4xx/5xx
    # (django.request) after the whole middleware chain has returned, and that line must carry
    # it too. The next request in this thread (or ASGI task context) sets its own.
    def __call__(self, request):
        self._start(request)
        response = self.get_response(request)
        response[HEADER] = request.request_id
        return response

    @staticmethod
    def _start(request) -> None:
        request.request_id = _request_id(request)
        current.set(request.request_id)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current.get()
        return True


# --------------------------------------------------------------------------- Celery tasks
# The request's id travels with every task it enqueues (a message header), and a task sets it
# as its own while it runs, so a worker's log lines and what the task records carry the id of
# the request that caused them; a task enqueued by a task inherits it. A task nobody's request
# enqueued (beat) runs under "task-<task id>". NOTE: the id is not cleared when the task ends:
# what its task_postrun hooks do (the ops check after an ingest) is still the task's doing; the
# next task sets its own.

TASK_HEADER = "syncops_request_id"


def _carry(headers=None, **_extra) -> None:
    request_id = current.get()
    if headers is not None and request_id != "-":
        headers.setdefault(TASK_HEADER, request_id)


def _adopt(task_id=None, task=None, **_extra) -> None:
    given = getattr(task.request, TASK_HEADER, None) if task is not None else None
    current.set(given if isinstance(given, str) and _VALID.fullmatch(given) else f"task-{task_id}")


def connect_celery_signals() -> None:
    from celery.signals import before_task_publish, task_prerun

    before_task_publish.connect(_carry, weak=False, dispatch_uid="syncops.request_id.carry")
    task_prerun.connect(_adopt, weak=False, dispatch_uid="syncops.request_id.adopt")


def correlation_id() -> str:
    """The current request's (or task's) id, empty outside both: a model field default, so a
    row records what caused it (``SyncRun.request_id``)."""
    value = current.get()
    return "" if value == "-" else value
