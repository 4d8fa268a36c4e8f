"""Request timing: the ``Server-Timing`` header and the slow-request log (``sync.ops.slow``).

``ServerTimingMiddleware`` measures each request from just below the request id middleware
to the response: the time its SQL statements took (an ``execute_wrapper`` on every database
alias), the time its engine Redis calls took (``sync.cache.connection.timed``: every
``connection.run``), and the total. A non-streaming response carries them as::

    Server-Timing: cache;dur=0.8, db;dur=3.1, total;dur=6.4

(milliseconds; ``HTTP_SERVER_TIMING=False`` leaves the header out). A streaming response
(``/api/events``, CSV downloads) gets none: its work happens while the body is sent, after
the headers left, and the event stream lives for minutes.

A request that took at least ``HTTP_SLOW_REQUEST_MS`` (a streaming one never counts: its
headers are all that was measured), or any statement that took at least
``HTTP_SLOW_QUERY_MS``, is logged at WARNING and kept for the console's slow requests page.

NOTE: synchronous only, like the request id middleware above it (every middleware above a
synchronous-only one is called synchronously anyway); the views and their queries run in the
same thread, so the wrappers see them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponseBase

from sync.access import request_id
from sync.cache import connection
from sync.ops.slow import QUERIES_PER_REQUEST, SlowQuery, SlowRequest, clean_path, clean_sql, record


class QueryTimer:
    """An ``execute_wrapper``: adds up the statements' time and keeps the slow ones (their
    SQL text only: the parameters are never looked at)."""

    def __init__(self, slow_ms: float) -> None:
        self.slow_ms = slow_ms
        self.seconds = 0.0
        self.slow: list[SlowQuery] = []

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = time.perf_counter() - started
            self.seconds += elapsed
            if elapsed * 1000 >= self.slow_ms:
                self._slow(elapsed * 1000, sql)

    def _slow(self, ms: float, sql: str) -> None:
        self.slow.append(SlowQuery(ms=ms, sql=clean_sql(sql)))
        if len(self.slow) > 2 * QUERIES_PER_REQUEST:  # keep the slowest, bounded
            self.slow.sort(key=lambda q: q.ms, reverse=True)
            del self.slow[QUERIES_PER_REQUEST:]


def server_timing(cache_ms: float, db_ms: float, total_ms: float) -> str:
    # NOTE: microseconds shown: a cache hit's Redis round trip is a few hundredths of a ms.
    return f"cache;dur={cache_ms:.3f}, db;dur={db_ms:.3f}, total;dur={total_ms:.3f}"


class ServerTimingMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        queries = QueryTimer(settings.HTTP_SLOW_QUERY_MS)
        with contextlib.ExitStack() as stack:
            cache_seconds = stack.enter_context(connection.timed())
            for db in connections.all():
                stack.enter_context(db.execute_wrapper(queries))
            response = self.get_response(request)
            cache_ms = cache_seconds() * 1000
        total_ms = (time.perf_counter() - started) * 1000
        if not response.streaming and settings.HTTP_SERVER_TIMING:
            response["Server-Timing"] = server_timing(cache_ms, queries.seconds * 1000, total_ms)
        slow = not response.streaming and total_ms >= settings.HTTP_SLOW_REQUEST_MS
        if slow or queries.slow:
            queries.slow.sort(key=lambda q: q.ms, reverse=True)
            record(
                SlowRequest(
                    request_id=getattr(request, "request_id", "") or request_id.current.get(),
                    method=request.method or "",
                    path=clean_path(request.path),
                    status=response.status_code,
                    ms=total_ms,
                    slow=slow,
                    queries=queries.slow[:QUERIES_PER_REQUEST],
                )
            )
        return response


# --------------------------------------------------------------------------- Celery tasks
# A task's slow statements are kept as well, under "TASK <task name>" with the task's request
# id (the id of the request that enqueued it, or "task-<id>"), and its state as the status. A
# task's own duration is never "slow": an ingestion run takes minutes by design.

_tasks: dict[str, tuple[contextlib.ExitStack, QueryTimer, float]] = {}  # by task id


def _task_started(task_id: str | None = None, **_extra: Any) -> None:
    queries = QueryTimer(settings.HTTP_SLOW_QUERY_MS)
    stack = contextlib.ExitStack()
    for db in connections.all():  # this thread's connections: the task runs here
        stack.enter_context(db.execute_wrapper(queries))
    _tasks[str(task_id)] = (stack, queries, time.perf_counter())


def _task_ended(
    task_id: str | None = None, task: Any = None, state: str | None = None, **_extra: Any
) -> None:
    found = _tasks.pop(str(task_id), None)
    if found is None:  # started before the signals were connected
        return
    stack, queries, started = found
    stack.close()
    if queries.slow:
        queries.slow.sort(key=lambda q: q.ms, reverse=True)
        record(
            SlowRequest(
                request_id=request_id.current.get(),
                method="TASK",
                path=getattr(task, "name", "?"),
                status=state or "",
                ms=(time.perf_counter() - started) * 1000,
                slow=False,
                queries=queries.slow[:QUERIES_PER_REQUEST],
            )
        )


def connect_celery_signals() -> None:
    from celery.signals import task_postrun, task_prerun

    # NOTE: connected after the request id's own task_prerun receiver, so the id is set.
    task_prerun.connect(_task_started, weak=False, dispatch_uid="syncops.timing.started")
    task_postrun.connect(_task_ended, weak=False, dispatch_uid="syncops.timing.ended")
