"""The event stream's generator and the async request path, in this process (the uvicorn
tests in test_sse.py run them in a server process): replay then live without duplicates,
keep-alives, dropping a client that falls behind, and the async middleware chain."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.test import AsyncClient

from catalog import services, streaming
from catalog.models import StockLevel
from sync.cache import events

pytestmark = pytest.mark.django_db(transaction=True)
STREAM = events.stream_key("catalog")


def _set_stock(part_id: int, quantity: int) -> None:
    stock = StockLevel.objects.get(pk=part_id)
    services.stock_update(
        part_id=part_id, expected_version=stock.version, quantity=quantity, reserved=0
    )


def test_replay_then_live_without_duplicates(make_part, redis_raw) -> None:
    part = make_part(quantity=9, reserved=0)
    first = redis_raw.xrange(STREAM)[0][0].decode()  # the part's own "part" event

    async def scenario() -> list[str]:
        stream = streaming.event_stream({str(part.pk)}, first)
        frames = [await anext(stream), await anext(stream)]  # retry, then the stock event
        await sync_to_async(_set_stock)(part.pk, 8)
        frames.append(await anext(stream))
        await stream.aclose()
        return frames

    retry, replayed, live = async_to_sync(scenario)()
    assert retry == "retry: 2000\n\n"
    assert '"quantity": 9' in replayed and replayed.startswith("id: ")
    assert '"quantity": 8' in live


def test_idle_clients_get_keep_alives_and_a_slow_one_is_let_go(make_part, monkeypatch) -> None:
    part = make_part(quantity=9, reserved=0)
    monkeypatch.setattr(streaming, "BLOCK_MS", 50)
    monkeypatch.setattr(streaming, "QUEUE_SIZE", 1)

    async def scenario() -> list[str]:
        stream = streaming.event_stream(set(), None)
        frames = [await anext(stream), await anext(stream)]  # retry, keep-alive
        for quantity in (7, 6, 5):  # the client reads nothing meanwhile: its queue overflows
            await sync_to_async(_set_stock)(part.pk, quantity)
        hub = streaming.hub()
        while hub.subscribers:  # the hub lets it go once it reads past the queue's size
            await anext(stream)
        frames.extend([frame async for frame in stream])  # ends after what it still had
        return frames

    frames = async_to_sync(scenario)()
    assert frames[:2] == ["retry: 2000\n\n", ": keep-alive\n\n"]


def test_the_async_request_path_and_a_bad_last_event_id() -> None:
    client = AsyncClient()

    async def scenario():
        parts = await client.get("/api/parts?limit=1", headers={"x-request-id": "async-1"})
        bad = await client.get("/api/events", headers={"last-event-id": "nope"})
        return parts, bad

    parts, bad = async_to_sync(scenario)()
    assert (parts.status_code, parts["X-Request-ID"]) == (200, "async-1")
    assert bad.status_code == 400
