"""``GET /api/events`` from a real ASGI server (uvicorn in its own process): live events,
resume with Last-Event-ID (exactly the missed events, in order, no duplicates), filtering by
part, and the reset event when history is gone."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from catalog import services
from catalog.models import StockLevel
from config.env import ROOT
from tests.catalog.conftest import new_part
from tests.subprocesses import child_env
from tests.waiting import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def asgi() -> Iterator[httpx.Client]:
    """uvicorn serving config.asgi on a unix socket; stopped (and waited for) afterwards."""
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="sse-") as directory:
        sock = Path(directory) / "asgi.sock"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--uds",
                str(sock),
                "--lifespan",
                "off",
                "--no-access-log",
                "--timeout-graceful-shutdown",
                "2",
            ],
            cwd=ROOT,
            env=child_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        client = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://testserver", timeout=10
        )
        try:

            def answers() -> bool:
                assert proc.poll() is None, proc.stderr.read().decode()
                try:
                    return client.get("/api/parts?limit=1").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(answers, timeout=30)
            yield client
        finally:
            client.close()
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Events:
    """An open SSE response, read one event at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.iter_lines()

    def next(self) -> dict:
        event: dict = {}
        for line in self.lines:
            if not line:
                if event:
                    return event
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            event[name] = value
        msg = "stream ended"
        raise AssertionError(msg)


def _stream(client: httpx.Client, *, part: int, last_event_id: str | None = None):
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    return client.stream("GET", f"/api/events?part={part}", headers=headers)


def _set_stock(part_id: int, quantity: int) -> None:
    stock = StockLevel.objects.get(pk=part_id)
    services.stock_update(
        part_id=part_id, expected_version=stock.version, quantity=quantity, reserved=0
    )


def test_reconnect_with_last_event_id_gets_exactly_the_missed_events(asgi) -> None:
    part, other = new_part(quantity=50, reserved=0), new_part()
    with _stream(asgi, part=part.pk) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = Events(response)
        assert events.next() == {"retry": "2000"}  # subscribed from here on
        _set_stock(part.pk, 49)
        first = events.next()
    assert first["event"] == "stock"
    assert json.loads(first["data"])["data"]["quantity"] == 49

    for quantity in (48, 47, 46):  # missed while disconnected
        _set_stock(part.pk, quantity)
        _set_stock(other.pk, quantity)  # another part's: filtered out

    with _stream(asgi, part=part.pk, last_event_id=first["id"]) as response:
        events = Events(response)
        assert events.next() == {"retry": "2000"}
        missed = [events.next() for _ in range(3)]
        assert [json.loads(e["data"])["data"]["quantity"] for e in missed] == [48, 47, 46]
        ids = [first["id"], *(e["id"] for e in missed)]
        assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
        _set_stock(part.pk, 45)  # live again, after the replay: no duplicate in between
        live = events.next()
    assert json.loads(live["data"])["data"]["quantity"] == 45
    assert json.loads(live["data"])["part"] == part.pk


def test_content_changes_and_soft_deletes_are_events_too(asgi) -> None:
    part = new_part()
    with _stream(asgi, part=part.pk) as response:
        events = Events(response)
        events.next()
        services.part_update_content(
            part_id=part.pk, expected_version=part.version, content={"name": "Streamed"}
        )
        assert json.loads(events.next()["data"])["data"]["name"] == "Streamed"
        part.refresh_from_db()
        services.part_soft_delete(part_id=part.pk, expected_version=part.version)
        assert events.next()["event"] == "part_deleted"


def test_a_resume_from_before_the_stream_starts_says_reset(asgi) -> None:
    part = new_part()
    with _stream(asgi, part=part.pk, last_event_id="1-0") as response:
        events = Events(response)
        events.next()
        assert events.next()["event"] == "reset"
        replayed = events.next()  # then everything the stream still has for the part
        assert json.loads(replayed["data"])["part"] == part.pk
    assert asgi.get("/api/events", headers={"Last-Event-ID": "nonsense"}).status_code == 400


def test_many_idle_clients_share_one_reader(asgi) -> None:
    part = new_part(quantity=10, reserved=0)
    with (
        _stream(asgi, part=part.pk) as a,
        _stream(asgi, part=part.pk) as b,
        _stream(asgi, part=part.pk) as c,
    ):
        streams = [Events(r) for r in (a, b, c)]
        for events in streams:
            events.next()
        _set_stock(part.pk, 9)
        received = [json.loads(events.next()["data"])["data"]["quantity"] for events in streams]
    assert received == [9, 9, 9]
