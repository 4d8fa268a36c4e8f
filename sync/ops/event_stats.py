"""The event system's figures: what each SSE process reports about its clients, and what the
change-event streams hold (``sync.cache.events``).

Each process that serves ``/api/events`` keeps its figures in memory (``DeliveryWindow``) and
writes them every few seconds into one Redis hash, one field per process (``hostname:pid`` ->
JSON, ``encode_record``). Readers (the console's "Event system" page, the ``event_latency``
and ``event_lag`` rules, ``/metrics``) take the hash and ignore a record not refreshed for
``STALE_AFTER`` seconds: its process is gone, or has had no client for a while. Records older
than ``FORGET_AFTER`` are deleted by the reader. The stream figures (length, the oldest
replayable id and its age, the newest id) are read from Redis when asked for.

Nothing here is PII: counts, latencies, stream ids, host names and process ids.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from prometheus_client.core import GaugeMetricFamily

from sync.cache import connection, events
from sync.cache.exceptions import CacheUnavailableError
from sync.cache.metrics import gauge

WINDOW = 60.0  # seconds the rate and the latency percentiles look back over
WINDOW_SAMPLES = 20_000  # at most this many deliveries are remembered (a busy process)
STALE_AFTER = 30.0  # a record older than this is a process gone (or idle): ignored
FORGET_AFTER = 3600.0  # a record older than this is deleted by the next reader
STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")  # ASCII digits: Redis reads no others


def stats_key() -> str:
    return f"{settings.SYNC_KEY_PREFIX}:events:sse-processes"


def process_name() -> str:
    """This process, as its record is named: ``hostname:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def parse_stream_id(text: str) -> tuple[int, int] | None:
    """A stream id (``<ms>-<seq>``) as a comparable pair; None when it is not one."""
    if not STREAM_ID.fullmatch(text):
        return None
    ms, seq = text.split("-")
    return int(ms), int(seq)


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of a sorted, non-empty list."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class DeliveryWindow:
    """One process's recent deliveries: when, and their commit-to-delivery latency (ms; None
    when unknown, e.g. an entry without ``committed_at`` or a replayed one)."""

    def __init__(self, window: float = WINDOW, limit: int = WINDOW_SAMPLES) -> None:
        self.window = window
        self.samples: deque[tuple[float, float | None]] = deque(maxlen=limit)
        self.delivered = 0

    def record(self, latency_ms: float | None, now: float) -> None:
        """``now``: ``time.monotonic()``."""
        self.delivered += 1
        self.samples.append((now, latency_ms))

    def figures(self, now: float) -> dict[str, Any]:
        """Rate (events/s), p50/p99 latency (ms, None without samples) over the window."""
        while self.samples and self.samples[0][0] < now - self.window:
            self.samples.popleft()
        latencies = sorted(ms for _t, ms in self.samples if ms is not None)
        return {
            "delivered": self.delivered,
            "rate": len(self.samples) / self.window,
            "samples": len(latencies),
            "p50_ms": _percentile(latencies, 0.5) if latencies else None,
            "p99_ms": _percentile(latencies, 0.99) if latencies else None,
        }


@dataclass(frozen=True)
class ProcessFigures:
    """What one SSE process last reported."""

    process: str
    clients: int
    delivered: int  # frames sent since the process started
    rate: float  # frames per second over the last WINDOW
    samples: int  # live frames with a known latency in the window
    p50_ms: float | None
    p99_ms: float | None
    stream: str
    position: str | None  # the reader's last id
    lag_seconds: float | None  # age of the oldest entry the reader has not read (0: none)
    updated_at: float  # epoch seconds


def encode_record(figures: ProcessFigures) -> str:
    return json.dumps(asdict(figures))


def read_processes(*, now: float | None = None) -> list[ProcessFigures]:
    """The live processes' records (refreshed within ``STALE_AFTER``), by name; records past
    ``FORGET_AFTER`` or unreadable are deleted. Raises ``CacheUnavailableError``."""
    key = stats_key()
    raw = connection.run(lambda client: client.hgetall(key))
    now = time.time() if now is None else now
    live, forget = [], []
    for name, value in raw.items():
        try:
            figures = ProcessFigures(**json.loads(value))
        except (ValueError, TypeError):
            forget.append(name)
            continue
        age = now - figures.updated_at
        if age > FORGET_AFTER:
            forget.append(name)
        elif age <= STALE_AFTER:
            live.append(figures)
    if forget:
        connection.run(lambda client: client.hdel(key, *forget))
    return sorted(live, key=lambda figures: figures.process)


@dataclass(frozen=True)
class StreamFigures:
    """What a change-event stream holds now."""

    stream: str
    length: int  # XLEN
    retention: int  # MAXLEN (approximate trimming: Redis may keep a little more)
    oldest_id: str | None  # the oldest entry a client can still resume after
    oldest_age_seconds: float | None
    newest_id: str | None
    newest_age_seconds: float | None


def _age(entry_id: str | None, now_ms: int) -> float | None:
    if entry_id is None:
        return None
    return max(0, now_ms - int(entry_id.split("-")[0])) / 1000


def read_stream(stream: str) -> StreamFigures:
    """One stream's figures (one round trip). Raises ``CacheUnavailableError``."""
    key = events.stream_key(stream)

    def read(client: connection.Client) -> list[Any]:
        pipe = client.pipeline(transaction=False)
        pipe.xlen(key)
        pipe.xrange(key, count=1)
        pipe.xrevrange(key, count=1)
        result: list[Any] = pipe.execute()
        return result

    length, first, last = connection.run(read)
    oldest = first[0][0].decode() if first else None
    newest = last[0][0].decode() if last else None
    now = events.now_ms()
    return StreamFigures(
        stream, length, events.MAXLEN, oldest, _age(oldest, now), newest, _age(newest, now)
    )


def read_streams() -> list[StreamFigures]:
    """Every registered stream's figures. Raises ``CacheUnavailableError``."""
    return [read_stream(stream) for stream in events.streams()]


def event_metrics() -> list[GaugeMetricFamily]:
    """The streams' and the SSE processes' figures from Redis, for a scrape; nothing when
    Redis cannot be read (the scrape still answers the rest)."""
    try:
        streams, processes = read_streams(), read_processes()
    except CacheUnavailableError:
        return []
    length = gauge("sync_event_stream_length", "Entries the change-event stream holds", ["stream"])
    oldest = gauge(
        "sync_event_stream_oldest_age_seconds",
        "Age of the oldest entry a client can still resume after",
        ["stream"],
    )
    lag = gauge(
        "sync_event_stream_lag_seconds",
        "How long the oldest entry an SSE process's reader has not read yet has waited",
        ["stream", "process"],
    )
    for figures in streams:
        length.add_metric([figures.stream], figures.length)
        if figures.oldest_age_seconds is not None:
            oldest.add_metric([figures.stream], figures.oldest_age_seconds)
    for process in processes:
        if process.lag_seconds is not None:
            lag.add_metric([process.stream, process.process], process.lag_seconds)
    return [length, oldest, lag]
