"""The pieces under the Server-Timing header and the slow-request log: the engine's Redis
time adds up only inside ``timed()``, the statement timer keeps the slowest statements
(their text, never their parameters), and a streaming response is neither timed nor
recorded as slow."""

from __future__ import annotations

import pytest
from django.db import connection as db
from django.http import HttpResponse, StreamingHttpResponse
from django.test import RequestFactory

from sync.cache import connection
from sync.ops import slow
from sync.ops.timing import QueryTimer, ServerTimingMiddleware
from tests.waiting import wait_until


def test_redis_time_adds_up_inside_timed_only() -> None:
    connection.run(lambda client: client.ping())  # outside: nothing to add to
    with connection.timed() as spent:
        assert spent() == 0
        connection.run(lambda client: client.ping())
        after_one = spent()
        assert after_one > 0
        connection.run(lambda client: client.ping())
        assert spent() > after_one
    with connection.timed() as fresh:
        assert fresh() == 0


@pytest.mark.django_db
def test_the_statement_timer_keeps_the_slowest_statements_without_parameters() -> None:
    timer = QueryTimer(slow_ms=0)
    with db.execute_wrapper(timer), db.cursor() as cursor:
        for _ in range(2 * slow.QUERIES_PER_REQUEST + 5):
            cursor.execute("SELECT %s", ["a parameter value"])
    assert timer.seconds > 0
    assert len(timer.slow) <= 2 * slow.QUERIES_PER_REQUEST
    texts = {q.sql for q in timer.slow}
    assert texts == {"SELECT %s"}  # the statement, never its parameters
    quiet = QueryTimer(slow_ms=10**9)
    with db.execute_wrapper(quiet), db.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert quiet.slow == [] and quiet.seconds > 0


@pytest.mark.django_db
def test_a_streaming_response_is_not_timed_nor_slow(settings) -> None:
    settings.HTTP_SLOW_REQUEST_MS = 0
    settings.HTTP_SLOW_QUERY_MS = 10**9
    request = RequestFactory().get("/stream?secret=x")
    streamed = ServerTimingMiddleware(lambda _r: StreamingHttpResponse(iter([b"a"])))(request)
    assert "Server-Timing" not in streamed
    assert slow.recent("request") == []
    plain = ServerTimingMiddleware(lambda _r: HttpResponse(b"a"))(request)
    assert "Server-Timing" in plain
    [entry] = slow.recent("request")
    assert entry["path"] == "/stream" and entry["request_id"] == "-"


@pytest.mark.django_db(transaction=True)
def test_a_tasks_slow_statements_are_kept_with_its_name_state_and_id(
    settings, celery_worker
) -> None:
    """A Celery task (here beat's replay, sent through the real broker to a real worker) keeps
    its slow statements like a request: "TASK <name>", its state, its id; never "slow" for
    its own duration."""
    from sync.tasks import replay

    settings.HTTP_SLOW_QUERY_MS = 0.001  # every statement counts as slow
    settings.HTTP_SLOW_REQUEST_MS = 0.001
    replay.delay()

    def kept() -> list[dict]:
        return [e for e in slow.recent("query") if e["path"] == "sync.tasks.replay"]

    assert wait_until(kept, timeout=30, what="the task's statements in the slow log")
    entry = kept()[0]
    assert entry["method"] == "TASK" and entry["status"] == "SUCCESS"
    assert entry["request_id"].startswith("task-")
    assert entry["sql"]
    assert slow.recent("request") == []  # a task is never a slow request


@pytest.mark.django_db
def test_a_task_without_slow_statements_or_never_started_keeps_nothing(settings) -> None:
    from types import SimpleNamespace

    from sync.ops import timing

    settings.HTTP_SLOW_QUERY_MS = 10**9
    timing._task_started(task_id="quick")
    with db.cursor() as cursor:
        cursor.execute("SELECT 1")
    timing._task_ended(task_id="quick", task=SimpleNamespace(name="t"), state="SUCCESS")
    timing._task_ended(task_id="never-started", task=SimpleNamespace(name="t"), state="SUCCESS")

    assert slow.recent("query") == []
    assert timing._tasks == {}
