"""The catalog's event stream (SSE) reads the events from whatever SYNC_REDIS_URL names: a
three-primary cluster (the stream on its own slot's primary) and Sentinel's primary. A
client that reconnects gets the events it missed, then the live ones. ``/health/`` checks
that topology too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from asgiref.sync import async_to_sync, sync_to_async

from catalog import services, streaming
from catalog.events import STREAM
from catalog.models import StockLevel
from sync.cache import connection, events
from tests.factories import make_part
from tests.topology.conftest import point_engine_at
from tests.topology.servers import Cluster, SentinelSetup

pytestmark = pytest.mark.django_db(transaction=True)


def _set_stock(part_id: int, quantity: int) -> None:
    stock = StockLevel.objects.get(pk=part_id)
    services.stock_update(
        part_id=part_id, expected_version=stock.version, quantity=quantity, reserved=0
    )


def _replay_then_live() -> list[str]:
    """A client that saw the part's first event reconnects: it gets the stock event it
    missed, then a change made while it listens."""
    part = make_part()
    StockLevel.objects.create(part=part, quantity=9)
    history = connection.run(lambda client: client.xrange(events.stream_key(STREAM)))
    first = history[0][0].decode()  # the part's own event

    async def scenario() -> list[str]:
        stream = streaming.event_stream({str(part.pk)}, first)
        frames = [await anext(stream) for _ in range(2)]  # retry, the missed stock event
        await sync_to_async(_set_stock)(part.pk, 8)
        while not (frame := await anext(stream)).startswith("id: "):
            pass  # keep-alives until the change arrives
        frames.append(frame)
        await stream.aclose()
        return frames

    return async_to_sync(scenario)()


def _assert_replayed_and_live(frames: list[str]) -> None:
    retry, stock_event, live = frames
    assert retry.startswith("retry: ")
    assert "event: stock" in stock_event and '"quantity": 9' in stock_event
    assert "event: stock" in live and '"quantity": 8' in live


@pytest.fixture
def on_cluster(cluster: Cluster, settings) -> Iterator[Cluster]:
    cluster.flush()
    point_engine_at(settings, cluster.url)
    yield cluster


@pytest.fixture
def behind_sentinel(sentinel_setup: SentinelSetup, settings) -> Iterator[SentinelSetup]:
    sentinel_setup.wait_ready()
    point_engine_at(settings, sentinel_setup.url)
    yield sentinel_setup


def test_the_event_stream_reads_a_cluster(on_cluster: Cluster) -> None:
    _assert_replayed_and_live(_replay_then_live())


def test_the_event_stream_reads_sentinels_primary(behind_sentinel: SentinelSetup) -> None:
    _assert_replayed_and_live(_replay_then_live())


def test_health_checks_the_engines_cluster(on_cluster: Cluster, client) -> None:
    assert client.get("/health/?format=json").json()["Sync cache Redis"] == "OK"
    for node in on_cluster.nodes:
        node.pause()
    try:
        found = client.get("/health/?format=json")
    finally:
        for node in on_cluster.nodes:
            node.resume()
    assert found.status_code == 500
    assert found.json()["Sync cache Redis"] != "OK"


def test_health_checks_sentinels_primary(behind_sentinel: SentinelSetup, client) -> None:
    assert client.get("/health/?format=json").json()["Sync cache Redis"] == "OK"
