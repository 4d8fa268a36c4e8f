"""What an SSE process says about itself, from a real ASGI server (uvicorn in its own
process): its record in Redis and its ``/metrics`` figures while a client is connected and
after it left; frames carry ``committed_at``; an old entry without it does not break the
stream."""

from __future__ import annotations

import json
import re

import pytest

from sync.cache import events
from sync.ops import event_stats
from tests.catalog.conftest import new_part
from tests.catalog.test_sse import Events, _set_stock, _stream, asgi  # noqa: F401 - a fixture
from tests.waiting import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
TOKEN = "sse-stats-metrics-token"
STREAM = events.stream_key("catalog")


@pytest.fixture(autouse=True)
def _server_settings(monkeypatch) -> None:
    """The server (started after this: autouse fixtures come first) reports every 0.1 s and
    answers a scrape with this token."""
    monkeypatch.setenv("SYNC_EVENTS_STATS_INTERVAL", "0.1")
    monkeypatch.setenv("METRICS_TOKEN", TOKEN)


def _scrape(client) -> str:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    return response.text


def _value(text: str, pattern: str) -> float | None:
    found = re.search(rf"^{pattern} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def _process(**wanted) -> event_stats.ProcessFigures | None:
    """The server's record once it says what is wanted (there is one server)."""
    for figures in event_stats.read_processes():
        if all(getattr(figures, name) == value for name, value in wanted.items()):
            return figures
    return None


def test_a_connected_client_shows_in_redis_and_on_metrics_and_drops_when_it_leaves(
    asgi,  # noqa: F811 - the fixture imported above
    redis_raw,
) -> None:
    part = new_part(quantity=20, reserved=0)
    with _stream(asgi, part=part.pk) as response:
        stream = Events(response)
        assert stream.next() == {"retry": "2000"}
        connected = wait_until(lambda: _process(clients=1), what="a record with one client")
        assert connected.stream == "catalog"
        before = events.now_ms()
        _set_stock(part.pk, 19)
        frame = stream.next()
        data = json.loads(frame["data"])
        assert data["data"]["quantity"] == 19
        # The frame says when its change committed, as the stream entry does.
        (entry,) = redis_raw.xrange(STREAM, min=frame["id"], max=frame["id"])
        assert data["committed_at"] == int(entry[1][b"committed_at"])
        assert data["committed_at"] >= before

        live = wait_until(
            lambda: _process(clients=1, delivered=1), what="the delivery in the record"
        )
        assert live.samples == 1
        assert live.p50_ms is not None
        assert live.p99_ms is not None
        assert live.p99_ms >= live.p50_ms >= 0
        assert live.position == frame["id"]  # the reader is at the newest entry …
        assert live.lag_seconds == 0  # … so nothing waits for it

        text = _scrape(asgi)
        assert _value(text, "catalog_sse_clients") == 1
        assert _value(text, "catalog_sse_events_delivered_total") == 1
        assert _value(text, "catalog_sse_delivery_latency_seconds_count") == 1
        assert _value(text, r'sync_event_stream_length\{stream="catalog"\}') == redis_raw.xlen(
            STREAM
        )
        assert _value(text, r'sync_event_stream_oldest_age_seconds\{stream="catalog"\}') >= 0
        process = re.escape(live.process)
        lag = rf'sync_event_stream_lag_seconds\{{process="{process}",stream="catalog"\}}'
        assert _value(text, lag) == 0

    gone = wait_until(lambda: _process(clients=0), what="the record without the client")
    assert gone.delivered == 1
    wait_until(lambda: _value(_scrape(asgi), "catalog_sse_clients") == 0, what="clients 0")


def test_an_old_entry_without_committed_at_is_sent_without_it_and_the_stream_goes_on(
    asgi,  # noqa: F811 - the fixture imported above
    redis_raw,
) -> None:
    part = new_part(quantity=8, reserved=0)
    with _stream(asgi, part=part.pk) as response:
        stream = Events(response)
        stream.next()
        wait_until(lambda: _process(clients=1), what="the client subscribed")
        # An entry as the engine appended them before committed_at existed.
        redis_raw.xadd(
            STREAM,
            {
                "type": "stock",
                "part": str(part.pk),
                "version": "1",
                "data": json.dumps({"id": part.pk, "quantity": 8}),
            },
        )
        old = json.loads(stream.next()["data"])
        assert "committed_at" not in old
        assert old["data"]["quantity"] == 8
        _set_stock(part.pk, 7)  # and the stream goes on
        new = json.loads(stream.next()["data"])
        assert new["data"]["quantity"] == 7
        assert "committed_at" in new
        # Two frames sent, one latency known.
        record = wait_until(lambda: _process(clients=1, delivered=2), what="both deliveries")
        assert record.samples == 1
