"""Cache-first reads: ``get``, ``get_many`` (docs/sync-engine.md, "Reads").

Redis first; on a miss PostgreSQL, then a version-checked fill. A miss on a hot key takes a
short lease in the row's own hash so one reader fills while the others wait briefly and then,
at worst, read PostgreSQL themselves. When Redis is unavailable, the breaker is open or the
fence does not trust the model (I9), reads go to PostgreSQL and the caller never sees an error.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import logging
import secrets
import time
from typing import TYPE_CHECKING, Literal, TypeVar, cast

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.models.base import ModelState
from django.db.models.signals import post_init

from sync.cache import connection, store
from sync.cache.codec import unseal
from sync.cache.declaration import SyncSpec, spec_for
from sync.cache.exceptions import CacheUnavailableError, NotSyncedError, SyncError
from sync.cache.fence import fence
from sync.cache.keys import cache_key, index_key
from sync.cache.metrics import CACHE_READS
from sync.cache.outbox import RowState
from sync.cache.tiers import blind_index_fields

if TYPE_CHECKING:
    from prometheus_client import Counter

    from sync.models import SyncedModel

logger = logging.getLogger(__name__)
M = TypeVar("M", bound=models.Model)


@functools.cache
def _layout(spec: SyncSpec) -> tuple[list[str], list[int]]:
    """Field names in model order (as ``Model.from_db`` wants them) and, for each, where its
    value sits in [pk, *payload values, version]."""
    meta = spec.model._meta
    sources = [meta.pk.attname, *spec.attnames, "version"]
    names = [f.attname for f in meta.concrete_fields if f.attname in sources]
    return names, [sources.index(name) for name in names]


def _instance(spec: SyncSpec, pk: object, hit: store.Hit, key: str) -> SyncedModel:
    values = unseal(spec, key, hit.version, hit.payload, hit.key_id)
    names, order = _layout(spec)
    row = [spec.model._meta.pk.to_python(pk), *values, hit.version]
    model = spec.model
    if post_init.has_listeners(model):
        # Someone watches instances being built (e.g. ImageField): the full constructor.
        return model.from_db("default", names, [row[i] for i in order])
    # NOTE: what Model.from_db leaves behind, without __init__'s per-field work (the bulk of
    # a cache hit's Python time): a loaded instance whose other fields are deferred, so
    # reading one of them loads it from PostgreSQL.
    obj = model.__new__(model)
    obj._state = ModelState()
    obj._state.adding, obj._state.db = False, "default"
    obj.__dict__.update(zip(names, [row[i] for i in order], strict=True))
    return obj


def _rows(spec: SyncSpec) -> models.Manager[SyncedModel]:
    """The model's rows on the primary, whatever block of stale-tolerant reads calls this
    (sync/replicas.py): a fill read from a lagging replica would store an old version."""
    return spec.model._base_manager.db_manager(DEFAULT_DB_ALIAS)


def _from_db(spec: SyncSpec, pk: object) -> SyncedModel | None:
    return _rows(spec).filter(pk=pk, **spec.live_filter).first()


def _fill(
    spec: SyncSpec, instances: list[SyncedModel], leases: dict[str, str] | None = None
) -> None:
    """Write rows just read from PostgreSQL, each only while this reader's fill lease on its
    key stands (``leases``: key -> token, taken on the miss before the read; ``lua/fill.lua``).

    NOTE: a lease that is gone means that a write landed on the key (it removes the lease), or
    that Redis lost its data (FLUSHALL, a restart) after the miss — perhaps after a newer
    version had been written through and its intent completed. A plain compare-and-set would
    then put the older row read here into the emptied key for good, with no intent left to
    repair it (a lost write the chaos run found). Rows without a lease are not
    written; their blind-index entries are (an index entry is checked against the row's digest
    on every look-up, so an old one is harmless).
    """
    leases = leases or {}
    writes, fills = [], []
    for obj in instances:
        row, *indexes = RowState(
            spec.label,
            str(obj.pk),
            obj.version,
            tuple(getattr(obj, name) for name in spec.attnames),
        ).to_writes(spec)
        writes += indexes
        if token := leases.get(row.key):
            fills.append(
                (
                    row.key,
                    [
                        token,
                        row.version,
                        row.payload,
                        row.key_id,
                        "1" if row.tombstone else "0",
                        row.ttl_ms,
                    ],
                )
            )
    # A failed fill costs nothing but the next miss; the breaker has logged the failure.
    with contextlib.suppress(CacheUnavailableError):
        if fills:
            connection.run(lambda client: store.eval_many(client, "fill", fills))
        store.write_many(writes)


def _lease_many(spec: SyncSpec, pks: list[object]) -> dict[str, str]:
    """Fill leases on the keys of missed rows, in one round trip: key -> token, for the keys
    this reader got (not those another reader is filling, nor rows that arrived meanwhile)."""
    calls = [
        (cache_key(spec.label, pk), [secrets.token_hex(8), settings.SYNC_LEASE_MS]) for pk in pks
    ]
    try:
        replies = connection.run(lambda client: store.eval_many(client, "read", calls))
    except CacheUnavailableError:
        return {}
    return {
        key: args[0]
        for (key, args), reply in zip(calls, replies, strict=True)
        if int(reply[0]) == 3
    }  # read.lua: 3 = this reader got the lease


def _decode(spec: SyncSpec, pk: object, hit: store.Hit, key: str) -> SyncedModel | None:
    """The cached instance, or None for a tombstone; raises SyncError when undecodable."""
    if hit.tombstone:
        return None
    return _instance(spec, pk, hit, key)


def _in_transaction(using: str = "default") -> bool:
    return connections[using].in_atomic_block


def _dirty_here(spec: SyncSpec, pk: object) -> bool:
    """Did the current transaction change this row (so Redis cannot show its own write)?"""
    conn = connections["default"]
    buffer = getattr(conn, "_sync_buffer", None)
    return (
        conn.in_atomic_block and buffer is not None and str(pk) in buffer.keys.get(spec.label, ())
    )


@functools.cache
def _counter(label: str, outcome: str) -> Counter:
    return CACHE_READS.labels(label, outcome)


def get(model: type[M], pk: object) -> M | None:
    """The row with this primary key, or None when it does not exist.

    Inside a transaction, rows it changed are read from PostgreSQL (read your own writes),
    and nothing read inside a transaction fills Redis: it may not be committed (I4).
    """
    # The spec's model is ``model`` itself (registered under its label).
    return cast("M | None", _get(spec_for(model), pk))


def _get(spec: SyncSpec, pk: object) -> SyncedModel | None:
    if _dirty_here(spec, pk) or not fence.trusts(spec.label, pk):
        _counter(spec.label, "bypass").inc()
        return _from_db(spec, pk)
    key = cache_key(spec.label, pk)
    token = ""
    try:
        # A hit is one HMGET; only a miss pays for the lease script (and a token).
        result: store.Hit | str | None = store.read_row(key)
        if result is None:
            token = secrets.token_hex(8)
            result = store.lease(key, token=token, lease_ms=settings.SYNC_LEASE_MS)
        if isinstance(result, store.Hit):
            _counter(spec.label, "hit").inc()
            return _decode(spec, pk, result, key)
        if result == store.LEASED_ELSEWHERE:
            found = _wait_for_filler(spec, pk, key)
            if found is not _NOT_FILLED:
                _counter(spec.label, "hit").inc()
                return found
    except CacheUnavailableError:
        _counter(spec.label, "unavailable").inc()
        return _from_db(spec, pk)
    except SyncError:
        logger.warning("undecodable cache entry for %s; reading PostgreSQL", key)
        _counter(spec.label, "undecodable").inc()
        return _from_db(spec, pk)
    _counter(spec.label, "miss").inc()
    obj = _from_db(spec, pk)
    if obj is not None and result == store.LEASE_GRANTED and not _in_transaction():
        _fill(spec, [obj], {key: token})
    return obj


class _Waited(enum.Enum):
    NOT_FILLED = enum.auto()


_NOT_FILLED = _Waited.NOT_FILLED


def _wait_for_filler(
    spec: SyncSpec, pk: object, key: str
) -> SyncedModel | Literal[_Waited.NOT_FILLED] | None:
    deadline = time.monotonic() + settings.SYNC_LEASE_WAIT
    while time.monotonic() < deadline:
        time.sleep(0.002)
        hit = store.read_row(key)
        if hit is not None:
            return _decode(spec, pk, hit, key)
    return _NOT_FILLED


def get_many(model: type[M], pks: list[object]) -> dict[object, M]:
    """The existing rows among ``pks``, by pk: one Redis round trip, one query for misses."""
    # The spec's model is ``model`` itself (registered under its label).
    return cast("dict[object, M]", _get_many(spec_for(model), pks))


def _get_many(spec: SyncSpec, pks: list[object]) -> dict[object, SyncedModel]:
    pks = list(dict.fromkeys(pks))
    found: dict[object, SyncedModel] = {}
    missing = [pk for pk in pks if _dirty_here(spec, pk)]
    # Keys whose intents outlived the staleness bound (fence.py) read PostgreSQL.
    stale = fence.stale_keys(spec.label) if fence.trusts(spec.label) else None
    trusted = stale is not None
    if trusted:
        if stale:
            dirty = set(missing)
            missing += [pk for pk in pks if str(pk) in stale and pk not in dirty]
        pks_to_read = [pk for pk in pks if pk not in missing]
        keys = [cache_key(spec.label, pk) for pk in pks_to_read]
        try:
            results = store.read_rows(keys)
        except CacheUnavailableError:
            results = [None] * len(keys)
        for pk, key, result in zip(pks_to_read, keys, results, strict=True):
            if result is None:
                missing.append(pk)
                continue
            try:
                obj = _decode(spec, pk, result, key)
            except SyncError:
                missing.append(pk)
                continue
            if obj is not None:
                found[pk] = obj
        _counter(spec.label, "hit").inc(len(pks) - len(missing))
        _counter(spec.label, "miss").inc(len(missing))
    else:
        missing = pks
    if missing:
        # Leases before the PostgreSQL read: only a key still leased to us is filled.
        leases = _lease_many(spec, missing) if trusted and not _in_transaction() else {}
        loaded = list(_rows(spec).filter(pk__in=missing, **spec.live_filter))
        for obj in loaded:
            found[obj.pk] = obj
        if leases:
            _fill(spec, loaded, leases)
    return {pk: found[pk] for pk in pks if pk in found}


def get_by(model: type[M], **lookup: str) -> M | None:
    """Look a row up by one blind-indexed field, e.g. ``get_by(Customer, email=…)``.

    The value is normalised and HMAC'd; Redis maps the digest to a pk, and the row read from
    Redis must carry the same digest (an index entry left by an old value is ignored).
    Otherwise PostgreSQL answers through its indexed digest column and fills the index entry
    (the row itself is filled by the next look-up's ``get``, under a lease).
    """
    spec = spec_for(model)
    if len(lookup) != 1:
        msg = "get_by takes exactly one field=value"
        raise TypeError(msg)
    ((name, value),) = lookup.items()
    indexes = blind_index_fields(spec.model)
    if name not in indexes:
        msg = f"{spec.label}.{name} has no blind index; indexed: {', '.join(indexes) or 'none'}"
        raise NotSyncedError(msg)
    index = indexes[name]
    digest = index.digest(spec.model, value)
    if digest and fence.trusts(spec.label) and not _in_transaction():
        try:
            entry = store.read_row(index_key(spec.label, name, digest))
        except CacheUnavailableError:
            entry = None
        if entry is not None:
            obj = get(model, spec.model._meta.pk.to_python(entry.payload.decode()))
            if obj is not None and getattr(obj, index.attname) == digest:
                return obj
    row = (
        _rows(spec).filter(**{index.attname: digest}, **spec.live_filter).first()
        if digest
        else None
    )
    if row is not None and fence.trusts(spec.label) and not _in_transaction():
        _fill(spec, [row])
    # The spec's model is ``model`` itself (registered under its label).
    return cast("M | None", row)
