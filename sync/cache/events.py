"""Change events: every row state the engine writes to Redis is also appended to a stream.

A model opts in with ``register(label, stream=…, build=…)``. The append runs in the same
``write_states`` step as the cache write, on commit and in replay alike, so events carry the
outbox's guarantee (I3): if Redis fails, the intent stays and replay appends later. A Lua script
appends only when the row's version is newer than the last one appended for it, so replaying
an intent never duplicates an event and a stream never goes back in time for a row.

Every entry also carries ``committed_at``: when the change was committed, in epoch milliseconds
(an integer string). The write-through stamps the moment its on_commit hook runs (right after
COMMIT); replay stamps the intent's ``created_at``, so a delivery an outage delayed shows as
latency (``now - committed_at`` when a reader hands the entry on). Entries written before this
field existed have none: a reader treats the latency of those as unknown.

NOTE: intents coalesce per row (I3), so several commits of one row that replay delivers late
arrive as one event carrying the newest state: events are state changes, not a journal (the
change log in PostgreSQL is the journal).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings

from sync.cache import connection, store
from sync.cache.declaration import spec_for

if TYPE_CHECKING:
    from sync.cache.declaration import SyncSpec
    from sync.cache.outbox import RowState

SCRIPT = "events_append"
MAXLEN = 100_000  # approximate: clients further behind than this are told to start over


@dataclass(frozen=True)
class EventSource:
    stream: str
    build: Callable[[SyncSpec, RowState], dict[str, str]]


_sources: dict[str, EventSource] = {}


def register(
    label: str, *, stream: str, build: Callable[[SyncSpec, RowState], dict[str, str]]
) -> None:
    """Append an event built by ``build(spec, state)`` (string fields) for every write of
    ``label`` to the stream named ``stream``."""
    _sources[label] = EventSource(stream, build)


def streams() -> list[str]:
    """The streams some model appends to (sorted)."""
    return sorted({source.stream for source in _sources.values()})


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds: what ``committed_at`` holds."""
    return time.time_ns() // 1_000_000


def stream_key(stream: str) -> str:
    # NOTE: the hash tag puts the stream and its last-version hash in one Cluster slot.
    return f"{{{settings.SYNC_KEY_PREFIX}:events:{stream}}}"


def last_key(stream: str) -> str:
    return f"{stream_key(stream)}:last"


def append(states: list[RowState], committed_at: int | None = None) -> int:
    """Append the events of these states (one round trip); raises CacheUnavailableError.

    Each event's ``committed_at`` is its state's, else ``committed_at``, else now."""
    found = calls(states, committed_at)
    if not found:
        return 0
    return connection.run(lambda client: _send(client, found), bulk=len(found) > store.BULK_CALLS)


def calls(
    states: list[RowState], committed_at: int | None = None
) -> list[tuple[str, tuple[str, ...], list[Any]]]:
    """The script calls (name, keys, args) that append these states' events: what
    ``append`` sends, or what the write-through sends in its own round trip
    (``store.write_many``'s ``then``)."""
    found: list[tuple[str, tuple[str, ...], list[Any]]] = []
    default = committed_at
    # Per label and per stream, once per call: this runs for every row replay writes.
    specs: dict[str, SyncSpec] = {}
    keys: dict[str, tuple[str, str]] = {}
    for state in states:
        source = _sources.get(state.label)
        if source is None:
            continue
        spec = specs.get(state.label)
        if spec is None:
            spec = specs[state.label] = spec_for(state.label)
        stream = keys.get(source.stream)
        if stream is None:
            # NOTE: the hash tag puts both keys in one slot; routed by the stream
            stream = keys[source.stream] = (stream_key(source.stream), last_key(source.stream))
        stamp = state.committed_at or default
        if stamp is None:
            stamp = default = now_ms()
        args: list[Any] = [f"{state.label}:{state.pk}", state.version, MAXLEN]
        for pair in source.build(spec, state).items():
            args += pair
        args += ("committed_at", str(stamp))
        found.append((SCRIPT, stream, args))
    return found


def _send(client: connection.Client, found: list[tuple[str, tuple[str, ...], list[Any]]]) -> int:
    # NOTE: like the cache write, waits for SYNC_REDIS_WAIT_REPLICAS replicas.
    replies = store.eval_scripts(client, store.grouped(found), wait=True)
    return sum(replies)
