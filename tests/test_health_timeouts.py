"""``/health/`` answers whatever is hung: each check has its own budget
(``HEALTH_CHECK_TIMEOUT``) and they run in parallel, so a paused cache Redis or a paused
broker is named as not answering instead of holding the answer for seconds."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from devtools.testservices import services

pytestmark = pytest.mark.django_db(transaction=True)
# A wait deadline, not a speed assertion: the budget is 0.8 s, the library's own waits were
# 2 s to 3 s per hung check, and a paused broker held the answer for as long as it stayed so.
DEADLINE_S = 2.5


def _answer_within(client, deadline: float) -> tuple[int, dict]:
    """GET /health/ in a thread and wait for it up to ``deadline``; fail if it is still
    waiting (the server it hangs on is resumed by the caller's fixture afterwards)."""
    answer: dict = {}

    def ask() -> None:
        response = client.get("/health/?format=json")
        answer.update(status=response.status_code, body=response.json())

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    thread.join(deadline)
    assert not thread.is_alive(), f"/health/ gave no answer within {deadline} s"
    return answer["status"], answer["body"]


@pytest.fixture
def paused(request) -> Iterator[Callable[[object], None]]:
    """Pause a server for the test; always resumed afterwards."""
    servers = []

    def pause(server) -> None:
        server.pause()
        servers.append(server)

    yield pause
    for server in servers:
        server.resume()


def _not_answering(message: str) -> bool:
    return "no answer within" in message or "Timeout" in message


def test_health_answers_with_the_cache_redis_paused(client, redis_control, paused) -> None:
    client.get("/health/?format=json")  # warm the view's imports outside the deadline
    paused(redis_control)

    status, body = _answer_within(client, DEADLINE_S)

    assert status == 500
    assert _not_answering(body["Cache Redis"])
    assert body["Database(alias='default')"] == "OK"
    assert body["Broker Redis"] == "OK"


def test_health_answers_with_the_broker_paused(client, paused) -> None:
    client.get("/health/?format=json")
    paused(services().broker)

    status, body = _answer_within(client, DEADLINE_S)

    assert status == 500
    assert _not_answering(body["Broker Redis"])
    assert body["Celery worker"] != "OK"
    assert body["Cache Redis"] == "OK"
    assert body["Database(alias='default')"] == "OK"
