""" "Why is this row stale?" — everything the engine knows about one synced row, in one call.

``row_state(model, pk)`` gathers: the row's version in PostgreSQL and in Redis (with its TTL,
a fill lease, whether the entry decodes), its pending intents (attempts, next attempt, the
redacted last error, the outage epoch), the fence of its model (epoch, drained epoch, whether
this process trusts Redis for the model and for this key, and why not), the last write of
each kind that landed on the key, and the last change events of the row in its stream.
``manage.py sync_inspect`` and the admin change page of every synced model only call it.

Where the write events come from: every compare-and-set that lands records
``<version>@<ms>`` in the key's own hash, one field per kind of writer (``w`` write-through,
``r`` replay, ``m`` warm, ``v`` verification's repair; ``cas_write.lua``). That costs one
HSET inside a script already running, survives across processes and hosts, and goes with the
key (expiry, a data loss): it says what landed last, not a history. Failed attempts are in
the intent (``attempts``, ``last_error``), in PostgreSQL.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict, cast

from django.conf import settings
from django.db import connection as db

from sync.cache import connection, events, store
from sync.cache.codec import unseal
from sync.cache.declaration import spec_for
from sync.cache.exceptions import CacheUnavailableError, SyncError
from sync.cache.fence import fence
from sync.cache.keys import cache_key, fence_key
from sync.models import SyncIntent

if TYPE_CHECKING:
    from django.db import models

WRITERS = {
    store.WRITE_THROUGH: "write-through",
    store.REPLAY: "replay",
    store.WARM: "warm",
    store.REPAIR: "verification repair",
    store.RESYNC: "console resync",
}
STREAM_SCAN = 1000  # entries of the stream looked at, newest first


@dataclass(frozen=True)
class WriteEvent:
    kind: str
    version: int
    at: datetime.datetime


@dataclass(frozen=True)
class StreamEvent:
    stream: str
    id: str
    type: str
    version: int


@dataclass(frozen=True)
class FenceState:
    epoch: int
    drained: int | None  # None: Redis could not be read
    model_trusted: bool  # by this process, now
    key_trusted: bool
    staleness_bound: float


class _Database(TypedDict):
    """What PostgreSQL says about the row (the first fields of ``RowInspection``)."""

    label: str
    pk: str
    key: str
    pg_version: int | None
    pg_live: bool
    pg_updated_at: datetime.datetime | None
    intents: list[SyncIntent]


# The key's hash, its TTL, the drained epoch, the row's last streamed version, stream entries.
_Redis = tuple[dict[str, str], int | None, int, int | None, list[tuple[bytes, dict[bytes, bytes]]]]


@dataclass(frozen=True)
class RowInspection:
    label: str
    pk: str
    key: str
    pg_version: int | None  # None: no such row
    pg_live: bool
    pg_updated_at: datetime.datetime | None
    fence: FenceState
    redis_error: str = ""  # Redis could not be read: why
    redis_version: int | None = None
    redis_tombstone: bool = False
    redis_ttl_ms: int | None = None
    redis_lease: bool = False
    redis_decodes: bool | None = None
    intents: list[SyncIntent] = field(default_factory=list)
    writes: list[WriteEvent] = field(default_factory=list)
    last_event_version: int | None = None
    events: list[StreamEvent] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.redis_error:
            return f"Redis cannot be read ({self.redis_error}): reads go to PostgreSQL"
        if self.pg_version is None or not self.pg_live:
            if self.redis_version is None or self.redis_tombstone:
                return "consistent: the row does not exist (or is deleted) in both"
            return (
                f"STALE: Redis holds version {self.redis_version} of a row PostgreSQL "
                "no longer has (live)"
            )
        if self.redis_version is None or self.redis_tombstone:
            what = "a tombstone" if self.redis_tombstone else "nothing"
            return f"not cached: Redis holds {what}; the next read fills it"
        if self.redis_version < self.pg_version:
            return f"STALE: Redis holds version {self.redis_version}, PostgreSQL {self.pg_version}"
        if self.redis_version > self.pg_version:
            return (
                f"Redis is ahead: version {self.redis_version}, PostgreSQL "
                f"{self.pg_version} (a write committed since this look?)"
            )
        if not self.redis_decodes:
            return "CORRUPT: same version, but the entry does not decode"
        return "consistent: Redis holds PostgreSQL's version"

    def why(self) -> list[str]:
        """What explains (or will repair) a difference, for an operator."""
        reasons = [
            f"intent {intent.status} for version {intent.version} since "
            f"{intent.created_at:%Y-%m-%dT%H:%M:%SZ}, {intent.attempts} attempt(s), "
            f"next {intent.next_attempt_at:%Y-%m-%dT%H:%M:%SZ}"
            + (f", written by {intent.request_id}" if intent.request_id else "")
            + (f", outage epoch {intent.epoch}" if intent.epoch is not None else "")
            + (f"; last error: {intent.last_error}" if intent.last_error else "")
            for intent in self.intents
        ]
        if not self.intents and self.verdict.startswith(("STALE", "CORRUPT")):
            reasons.append(
                "no intent is pending: nothing will repair it by itself; "
                "`manage.py sync_verify --repair` (or the admin's resync) will"
            )
        if not self.fence.key_trusted:
            reasons.append("reads of this key go to PostgreSQL now (fence or staleness bound)")
        return reasons

    # NOTE: times in ISO 8601 with its T: "2026-12-06 23:55:13" is redacted as a phone number
    # on the admin page (sync.redaction), which made every time there unreadable.
    def lines(self) -> list[str]:
        """The whole inspection as text (the command prints it, the admin shows it)."""
        out = [f"{self.label} pk={self.pk}  key {self.key}", f"verdict: {self.verdict}"]
        out += [f"  why: {reason}" for reason in self.why()]
        if self.pg_version is None:
            out.append("PostgreSQL: no such row")
        else:
            out.append(
                f"PostgreSQL: version {self.pg_version}"
                + ("" if self.pg_live else " (soft-deleted)")
                + (
                    f", written {self.pg_updated_at:%Y-%m-%dT%H:%M:%S.%fZ}"
                    if self.pg_updated_at
                    else ""
                )
            )
        if self.redis_error:
            out.append(f"Redis: cannot be read: {self.redis_error}")
        elif self.redis_version is None:
            out.append("Redis: no entry" + (" (a fill lease is held)" if self.redis_lease else ""))
        else:
            ttl = (
                "no expiry"
                if self.redis_ttl_ms is None or self.redis_ttl_ms < 0
                else f"expires in {self.redis_ttl_ms / 1000:,.0f} s"
            )
            out.append(
                f"Redis: version {self.redis_version}"
                + (" (tombstone)" if self.redis_tombstone else "")
                + ("" if self.redis_decodes in (None, True) else " (does not decode)")
                + f", {ttl}"
            )
        f = self.fence
        drained = "unknown" if f.drained is None else str(f.drained)
        out.append(
            f"fence: epoch {f.epoch}, drained {drained}; this process "
            f"{'trusts' if f.model_trusted else 'does not trust'} Redis for the "
            f"model and {'trusts' if f.key_trusted else 'does not trust'} it for "
            f"this key (staleness bound {f.staleness_bound:g} s)"
        )
        out.append(f"pending intents: {len(self.intents)}")
        if self.writes:
            out += [
                f"last {w.kind}: version {w.version} at {w.at:%Y-%m-%dT%H:%M:%S.%fZ}"
                for w in self.writes
            ]
        else:
            out.append("last writes: none recorded on the key")
        if self.last_event_version is not None:
            out.append(f"last change event: version {self.last_event_version}")
        out += [f"  event {e.id} in {e.stream}: {e.type} version {e.version}" for e in self.events]
        return out


def row_state(model: type[models.Model], pk: object) -> RowInspection:
    """Everything the engine knows about this row; never raises for Redis being down."""
    spec = spec_for(model)
    pk_value = spec.model._meta.pk.to_python(pk)
    key = cache_key(spec.label, pk_value)
    row = (
        spec.model._base_manager.filter(pk=pk_value).values_list("version", "updated_at_ns").first()
    )
    live = (
        row is not None
        and spec.model._base_manager.filter(pk=pk_value, **spec.live_filter).exists()
    )
    intents = list(SyncIntent.objects.filter(model=spec.label, object_pk=str(pk_value)))
    with db.cursor() as cursor:
        cursor.execute("SELECT epoch FROM sync_fence WHERE model = %s", [spec.label])
        found = cursor.fetchone()
    fields: _Database = {
        "label": spec.label,
        "pk": str(pk_value),
        "key": key,
        "pg_version": row[0] if row else None,
        "pg_live": live,
        "pg_updated_at": (
            datetime.datetime.fromtimestamp(row[1] / 1e9, tz=datetime.UTC)
            if row and row[1]
            else None
        ),
        "intents": intents,
    }
    epoch = found[0] if found else 0
    trusted = (fence.trusts(spec.label), fence.trusts(spec.label, pk_value))
    source = events._sources.get(spec.label)
    try:
        entry, ttl, drained, last, entries = connection.run(
            lambda client: _read(client, key, spec.label, str(pk_value), source)
        )
    except CacheUnavailableError as e:
        return RowInspection(
            **fields,
            redis_error=str(e) or type(e).__name__,
            fence=FenceState(epoch, None, *trusted, settings.SYNC_STALENESS_BOUND),
        )
    version = entry.get("v")
    decodes = None
    if version is not None and entry.get("t") != "1":
        try:
            unseal(
                spec,
                key,
                int(version),
                entry["p"].encode("latin-1"),
                entry.get("k", "").encode("latin-1"),
            )
            decodes = True
        except (SyncError, KeyError, ValueError):
            decodes = False
    known = {v for v in (fields["pg_version"], version and int(version), last) if v}
    known |= {intent.version for intent in intents}
    stream_events = (
        [
            StreamEvent(
                source.stream,
                entry_id.decode(),
                values.get(b"type", b"").decode(),
                int(values[b"version"]),
            )
            for entry_id, values in entries
            if values.get(b"version", b"").isdigit() and int(values[b"version"]) in known
        ]
        if source is not None
        else []
    )  # no stream: no entries
    return RowInspection(
        **fields,
        redis_version=int(version) if version is not None else None,
        redis_tombstone=entry.get("t") == "1",
        redis_ttl_ms=ttl,
        redis_lease="l" in entry,
        redis_decodes=decodes,
        fence=FenceState(epoch, drained, *trusted, settings.SYNC_STALENESS_BOUND),
        writes=_writes(entry),
        last_event_version=last,
        events=stream_events,
    )


def _read(
    client: connection.Client, key: str, label: str, pk: str, source: events.EventSource | None
) -> _Redis:
    """The key's hash and TTL, the drained epoch, and — when the model has a change stream —
    the last version appended for the row and the stream's newest ``STREAM_SCAN`` entries
    (versions come from one sequence for every synced table, so an entry carrying one of
    this row's versions is this row's)."""
    # NOTE: latin-1 maps every byte to one character and back: the payload stays bytes-exact.
    # The engine's clients never decode replies: they are bytes.
    raw = cast("dict[bytes, bytes]", client.hgetall(key))
    entry = {k.decode(): v.decode("latin-1") for k, v in raw.items()}
    ttl = client.pttl(key) if entry else None
    drained = int(client.hget(fence_key(), label) or 0)
    if source is None:
        return entry, ttl, drained, None, []
    last = client.hget(events.last_key(source.stream), f"{label}:{pk}")
    entries = cast(
        "list[tuple[bytes, dict[bytes, bytes]]]",
        client.xrevrange(events.stream_key(source.stream), count=STREAM_SCAN),
    )
    return entry, ttl, drained, int(last) if last is not None else None, entries


def _writes(entry: dict[str, str]) -> list[WriteEvent]:
    found = []
    for kind, name in WRITERS.items():
        if value := entry.get(f"w{kind}"):
            version, _, ms = value.partition("@")
            found.append(
                WriteEvent(
                    name,
                    int(version),
                    datetime.datetime.fromtimestamp(int(ms) / 1000, tz=datetime.UTC),
                )
            )
    return sorted(found, key=lambda w: w.at, reverse=True)
