"""``GET /api/events``: committed catalog changes as Server-Sent Events, from the Redis Stream
the sync engine appends to (``sync.cache.events``, ``catalog.events``).

One process holds many idle clients cheaply: a single ``XREAD BLOCK`` loop per event loop (the
``Hub``) reads the stream and fans entries out to each client's bounded queue, so a thousand
clients cost a thousand small queues and one Redis connection, not a thousand. Serve it from an
ASGI server (``uvicorn config.asgi:application``); under WSGI each client would hold a thread.

Resume: ``Last-Event-ID`` (or ``?last_event_id=`` for a first connect) replays the entries after
that id with ``XRANGE`` and then continues live. The client subscribes to the hub *before* the
replay and skips live entries it already sent, so nothing falls between the two and nothing
comes twice; entries go out in stream order. A client whose id is older than the stream's
first entry (trimmed history) or newer than its last (a restarted cache Redis began the
stream again, or the id is made up) gets an ``event: reset`` first: it should re-read the
parts it shows; the stream then goes on from what it holds, so the client is never left
waiting silently for ids that will not come.

Figures: each process counts its connected clients and the frames it sends, and measures each
live frame's commit-to-delivery latency (now minus the entry's ``committed_at`` when the frame
is handed to the client; replayed frames are old on purpose and are not measured). They are
prometheus-client metrics (``catalog_sse_*``, multiprocess-safe) and, every
``SYNC_EVENTS_STATS_INTERVAL`` seconds and whenever a client comes or goes, a record in Redis
with the reader's position and lag (``sync.ops.event_stats``), which the console's "Event
system" page and the ``event_latency``/``event_lag`` rules read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import weakref
from collections.abc import AsyncIterator

import redis.asyncio as aredis
from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from ninja import Header, Query, Router
from prometheus_client import Counter, Gauge, Histogram

from catalog.events import STREAM
from sync.cache import connection
from sync.cache.events import now_ms, stream_key
from sync.ops import event_stats

logger = logging.getLogger(__name__)
router = Router(tags=["events"])

BLOCK_MS = 15_000  # one XREAD waits this long; also the idle clients' keep-alive interval
QUEUE_SIZE = 1_000  # a client this far behind is dropped; it reconnects and resumes
REPLAY_BATCH = 500
RETRY_MS = 2_000  # what EventSource waits before reconnecting
REPLAY_CONNECTIONS = 16  # per process, shared by every client's replay
_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")  # ASCII: Redis reads no other digits
PARTS = Query(None, description="Only these part ids (repeatable).")

CLIENTS = Gauge("catalog_sse_clients", "Connected /api/events clients", multiprocess_mode="livesum")
DELIVERED = Counter("catalog_sse_events_delivered", "Event frames sent to /api/events clients")
LATENCY = Histogram(
    "catalog_sse_delivery_latency_seconds",
    "Commit to delivery of live event frames (now - committed_at as the frame is sent)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)


class ProcessStats:
    """This process's clients and deliveries, over all its hubs (one per event loop)."""

    def __init__(self) -> None:
        self.clients = 0
        self.window = event_stats.DeliveryWindow()

    def connected(self, change: int) -> None:
        self.clients += change
        CLIENTS.inc(change)

    def delivered(self, committed_at: int | None) -> None:
        """A frame was sent; ``committed_at``: its entry's (live frames only), else None."""
        DELIVERED.inc()
        latency_ms = None
        if committed_at is not None:
            latency_ms = max(0, now_ms() - committed_at)
            LATENCY.observe(latency_ms / 1000)
        self.window.record(latency_ms, time.monotonic())


stats = ProcessStats()


def _parse(stream_id: bytes | str) -> tuple[int, int]:
    text = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    ms, seq = text.split("-")
    return int(ms), int(seq)


def _client(*, blocking: bool = False) -> aredis.Redis:
    # NOTE: the blocking reader has no socket timeout (XREAD BLOCK waits by design). The
    # replay client is one pool per process that queues callers (a burst of reconnecting
    # clients waits for a connection instead of failing); waiting clients can afford the bulk
    # timeouts, unlike the engine's request path.
    # Any topology of SYNC_REDIS_URL (a single server, a cluster, Sentinel's primary).
    timeout = settings.SYNC_BULK_SOCKET_TIMEOUT
    if blocking:
        return connection.async_client(socket_timeout=None)
    return connection.async_client(
        socket_timeout=timeout, max_connections=REPLAY_CONNECTIONS, pool_timeout=timeout * 4
    )


class Hub:
    """The one stream reader of an event loop, fanning entries out to subscribers."""

    def __init__(self) -> None:
        self.subscribers: set[asyncio.Queue] = set()
        self.position: bytes | None = None
        self.task: asyncio.Task | None = None
        self.key = stream_key(STREAM)
        self.redis = _client()  # short commands: the start position, replays, figures
        self._starting = asyncio.Lock()
        self.publisher: asyncio.Task | None = None
        self._wake = asyncio.Event()

    async def subscribe(self) -> asyncio.Queue:
        """A queue that receives every entry after the hub's position, which is fixed (and
        the reader started) before this returns."""
        queue: asyncio.Queue = asyncio.Queue(QUEUE_SIZE)
        async with self._starting:  # many clients connect at once: one reader, one start
            if self.task is None or self.task.done():
                newest = await self.redis.xrevrange(self.key, count=1)
                self.position = newest[0][0] if newest else b"0-0"
                self.task = asyncio.get_running_loop().create_task(self._read())
            self.subscribers.add(queue)
            if self.publisher is None or self.publisher.done():
                self.publisher = asyncio.get_running_loop().create_task(self._publish_loop())
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self.subscribers.discard(queue)

    def wake(self) -> None:
        """Publish the figures now (a client came or went)."""
        self._wake.set()

    async def _publish_loop(self) -> None:
        """Refresh this process's record every ``SYNC_EVENTS_STATS_INTERVAL`` seconds (and at
        once when woken) while the hub has subscribers; a last one when the last has left."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), timeout=settings.SYNC_EVENTS_STATS_INTERVAL
                )
            self._wake.clear()
            await self.publish()
            if not self.subscribers:
                return

    async def lag(self, position: bytes) -> float:
        """How long the oldest entry after ``position`` has waited (0: none)."""
        unread = await self.redis.xrange(self.key, min=f"({position.decode()}", count=1)
        if not unread:
            return 0.0
        return max(0, now_ms() - _parse(unread[0][0])[0]) / 1000

    async def publish(self) -> None:
        """Write this process's figures to Redis (``sync.ops.event_stats``)."""
        figures = stats.window.figures(time.monotonic())
        try:
            record = event_stats.ProcessFigures(
                process=event_stats.process_name(),
                clients=stats.clients,
                stream=STREAM,
                position=self.position.decode() if self.position else None,
                lag_seconds=await self.lag(self.position) if self.position else None,
                updated_at=time.time(),
                **figures,
            )
            key = event_stats.stats_key()
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hset(key, record.process, event_stats.encode_record(record))
                pipe.expire(key, int(event_stats.FORGET_AFTER))
                await pipe.execute()
        except aredis.RedisError as e:
            logger.warning("event figures not published (%s)", type(e).__name__)

    async def _read(self) -> None:
        client = _client(blocking=True)
        try:
            while self.subscribers:
                try:
                    reply = await client.xread(
                        {self.key: self.position}, block=BLOCK_MS, count=REPLAY_BATCH
                    )
                except (aredis.ConnectionError, aredis.TimeoutError) as e:
                    logger.warning("event stream unreadable (%s); retrying", type(e).__name__)
                    await asyncio.sleep(1)
                    continue
                for _key, entries in reply or ():
                    for entry_id, fields in entries:
                        self.position = entry_id
                        for queue in list(self.subscribers):
                            try:
                                queue.put_nowait((entry_id, fields))
                            except asyncio.QueueFull:
                                # Too slow: cut it loose; it reconnects with Last-Event-ID.
                                self.subscribers.discard(queue)
                                while not queue.empty():
                                    queue.get_nowait()
                                queue.put_nowait(None)
        finally:
            await client.aclose()


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def hub() -> Hub:
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = Hub()
    return found


def committed_at(fields: dict[bytes, bytes]) -> int | None:
    """The entry's commit time (epoch ms); None for an entry written before it was recorded
    (or a malformed one): its latency is unknown."""
    raw = fields.get(b"committed_at", b"")
    return int(raw) if raw.isdigit() else None


def _frame(entry_id: bytes, fields: dict[bytes, bytes]) -> str:
    event = {k.decode(): v.decode() for k, v in fields.items()}
    data = {
        "type": event["type"],
        "part": int(event["part"]),
        "version": int(event["version"]),
        "data": json.loads(event["data"]),
    }
    if (committed := committed_at(fields)) is not None:
        data["committed_at"] = committed
    return f"id: {entry_id.decode()}\nevent: {event['type']}\ndata: {json.dumps(data)}\n\n"


def _wanted(fields: dict[bytes, bytes], parts: set[str]) -> bool:
    return not parts or fields[b"part"].decode() in parts


async def _replay(client: aredis.Redis, key: str, after: str) -> AsyncIterator[tuple[bytes, dict]]:
    """Entries after ``after`` up to now, in order; a ``reset`` marker first when history is
    missing (``after`` older than the stream's first entry) or ``after`` is not in it at all
    (newer than its last entry: nothing to replay)."""
    first = await client.xrange(key, count=1)
    if not first:
        yield b"", {}
        return
    if _parse(first[0][0]) > _parse(after):
        yield b"", {}
    else:
        last = await client.xrevrange(key, count=1)
        if _parse(last[0][0]) < _parse(after):  # (and no XRANGE from an id Redis refuses)
            yield b"", {}
            return
    start = f"({after}"
    while True:
        batch = await client.xrange(key, min=start, count=REPLAY_BATCH)
        for entry in batch:
            yield entry
        if len(batch) < REPLAY_BATCH:
            return
        start = f"({batch[-1][0].decode()}"


async def event_stream(parts: set[str], last_event_id: str | None) -> AsyncIterator[str]:
    the_hub = hub()
    try:
        queue = await the_hub.subscribe()
    except aredis.RedisError as e:
        logger.warning("event stream unavailable (%s); the client will retry", type(e).__name__)
        yield f"retry: {RETRY_MS}\n\n"
        return
    sent = (0, 0)
    stats.connected(1)
    the_hub.wake()
    try:
        yield f"retry: {RETRY_MS}\n\n"
        if last_event_id:
            sent = _parse(last_event_id)
            async for entry_id, fields in _replay(the_hub.redis, the_hub.key, last_event_id):
                if not entry_id:
                    yield f"event: reset\ndata: {json.dumps({'after': last_event_id})}\n\n"
                    # NOTE: the client's id counts no more: what follows, replayed or live,
                    # is all new to it (a future id would otherwise hide every live entry).
                    sent = (0, 0)
                    continue
                sent = _parse(entry_id)
                if _wanted(fields, parts):
                    frame = _frame(entry_id, fields)
                    stats.delivered(None)  # a replay: old on purpose, not a latency
                    yield frame
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=BLOCK_MS / 1000)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if item is None:  # dropped as too slow
                return
            entry_id, fields = item
            position = _parse(entry_id)
            if position <= sent:
                continue  # already sent by the replay
            sent = position
            if _wanted(fields, parts):
                frame = _frame(entry_id, fields)
                stats.delivered(committed_at(fields))
                yield frame
    except aredis.RedisError as e:  # the replay failed: end; the client resumes from `sent`
        logger.warning("event replay failed (%s); the client will retry", type(e).__name__)
    finally:
        the_hub.unsubscribe(queue)
        stats.connected(-1)
        the_hub.wake()


@router.get(
    "/events",
    auth=None,
    response={200: None, 400: None, 429: None},
    summary=(
        "Server-Sent Events of committed stock and content changes (resume with Last-Event-ID)"
    ),
    openapi_extra={
        "responses": {
            200: {
                "description": "text/event-stream: `id:` is the "
                "stream id, `event:` is part, part_deleted, stock or reset, `data:` JSON "
                "(with `committed_at`, epoch ms, when the change was committed)",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            429: {
                "description": "Too many connection attempts: see Retry-After (docs/security.md)."
            },
        }
    },
)
async def events(
    request: HttpRequest,
    part: list[int] = PARTS,
    last_event_id: str | None = Query(
        None, description=("Resume after this id when the Last-Event-ID header cannot be sent.")
    ),
    last_event_id_header: str | None = Header(
        None,
        alias="Last-Event-ID",
        description=(
            "Resume after this stream id (EventSource sends it when it reconnects); "
            "an id the stream does not hold gives an `event: reset` first."
        ),
    ),
):
    resume = last_event_id_header or last_event_id
    if resume and not _ID.fullmatch(resume):
        return HttpResponse(
            '{"detail": "Last-Event-ID is not a stream id"}',
            status=400,
            content_type="application/json",
        )
    response = StreamingHttpResponse(
        event_stream({str(p) for p in part or ()}, resume), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response
