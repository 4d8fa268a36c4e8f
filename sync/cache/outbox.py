"""The transactional outbox, ``sync_retry_queue`` (DESIGN I3), seen from Python.

The triggers write intents; this module reads them with the rows they point at, turns them into
Redis writes, and completes or fails them. Completion is conditional on the version written, so
an intent that a newer transaction bumped meanwhile survives for its own write.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from json.scanner import make_scanner
from typing import TYPE_CHECKING, Any, NamedTuple

import psycopg
from django.conf import settings
from django.db import connections
from django.db import models as djmodels
from psycopg.types.datetime import TimestamptzLoader

from sync.cache.codec import seal
from sync.cache.declaration import SyncSpec, column, concrete_field
from sync.cache.keys import cache_key, index_key
from sync.cache.store import CacheWrite, ttl_ms
from sync.models import REPLAY_GRACE
from sync.redaction import redact

if TYPE_CHECKING:
    from django.db import models
    from django.db.backends.base.base import BaseDatabaseWrapper

# A field's conversion of a database value (``from_db_value``), None when it has none.
Converter = Callable[[Any], Any] | None

logger = logging.getLogger(__name__)


class RowState(NamedTuple):
    """What Redis must hold for one key: the row's values, or a tombstone at ``version``."""

    label: str
    pk: str
    version: int
    values: tuple[Any, ...] | None  # None: the row is gone (soft-deleted too), a tombstone
    retried: bool = False  # the intent failed before and carries a fence epoch
    # When the change this state delivers was committed (epoch ms), for the change event
    # (sync.cache.events): replay sets it from the intent; None: the write-through's own
    # moment (the on_commit hook, right after COMMIT) stands for it.
    committed_at: int | None = None

    def to_write(self, spec: SyncSpec) -> CacheWrite:
        key = cache_key(self.label, self.pk)
        if self.values is None or not spec.is_live(self.values):
            return CacheWrite(
                key, self.version, b"", "", True, int(settings.SYNC_TOMBSTONE_TTL * 1000)
            )
        payload, key_id = seal(spec, key, self.version, self.values)
        return CacheWrite(
            key, self.version, payload, key_id, False, ttl_ms(spec.ttl, spec.ttl_jitter)
        )

    def index_writes(self, spec: SyncSpec) -> list[CacheWrite]:
        """Blind-index entries (digest -> pk), versioned like the row they point at."""
        if self.values is None or not spec.is_live(self.values):
            return []
        return [
            CacheWrite(
                index_key(self.label, field, self.values[position]),
                self.version,
                self.pk.encode(),
                "",
                False,
                ttl_ms(spec.ttl, spec.ttl_jitter),
            )
            for field, position in spec.blind_indexes.items()
            if self.values[position]
        ]

    def to_writes(self, spec: SyncSpec) -> list[CacheWrite]:
        return [self.to_write(spec), *self.index_writes(spec)]


def converters_for(spec: SyncSpec, using: str) -> list[Converter]:
    conn = connections[using]
    converters: list[Converter] = []
    for name in spec.fields:
        field = concrete_field(spec.model, name)
        from_db = getattr(field, "from_db_value", None)
        if _plain_json(field):
            converters.append(_json_value)
        else:
            converters.append(_from_db_value(from_db, conn) if from_db else None)
    return converters


def _plain_json(field: models.Field[Any, Any]) -> bool:
    """Django's own ``JSONField`` conversion with no decoder of its own: ``json.loads``."""
    return (
        isinstance(field, djmodels.JSONField)
        and type(field).from_db_value is djmodels.JSONField.from_db_value
        and field.decoder is None
    )


_decode_json = json.JSONDecoder().decode
# The decoder's own scanner (C; JSONDecoder makes it so): ``decode`` without its two
# regular-expression matches for whitespace around the value, which jsonb text never has.
# typeshed types its argument as the scanner class itself; it is the decoder.
_scan_json = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def _json_value(value: str | None) -> Any:
    # NOTE: what JSONField.from_db_value does on PostgreSQL, without its checks for other
    # backends (a JSON path expression's plain value, text that is not JSON): a jsonb column
    # is always valid JSON text. It ran for every JSON value replay, warm and the
    # write-through read: that conversion was a tenth of replay's own CPU, half of it
    # Django's checks (bench/cache.py --profile replay).
    if value is None:
        return None
    try:
        found, end = _scan_json(value, 0)
    except StopIteration:
        end = -1
    # anything else (never from jsonb): what decode makes of it, or its error
    return found if end == len(value) else _decode_json(value)


def _from_db_value(
    from_db: Callable[[Any, None, BaseDatabaseWrapper], Any], conn: BaseDatabaseWrapper
) -> Callable[[Any], Any]:
    return lambda value: from_db(value, None, conn)


def convert_row(values: Iterable[Any], converters: Sequence[Converter]) -> tuple[Any, ...]:
    if not any(converters):  # most models: nothing to convert, no per-value work
        return tuple(values)
    # NOTE: in place in a list, not a generator over zip(): a third of the cost, and this
    # runs for every row warm, replay and the write-through read.
    row = list(values)
    if len(row) != len(converters):
        msg = f"{len(converters)} values expected, {len(row)} read"
        raise ValueError(msg)
    for position, convert in enumerate(converters):
        if convert:
            row[position] = convert(row[position])
    return tuple(row)


def select_columns(spec: SyncSpec) -> str:
    return ", ".join(f't."{column(spec.model, name)}"' for name in spec.fields)


def intent_states(
    spec: SyncSpec,
    pks: Iterable[object],
    using: str = "default",
    *,
    settle: Sequence[RowState] = (),
) -> list[RowState]:
    """Pending intents for these pks joined with their rows' current state (one query).

    ``settle``: completed writes whose intents this same statement deletes (a data-modifying
    CTE), so that completing a transaction's intents costs no round trip of its own.
    """
    conn = connections[using]
    keys = [str(pk) for pk in pks]
    # NOTE: one key (the common single-row save) is an equality: no array to format.
    single = len(keys) == 1
    own = bool(settle) and not conn.in_atomic_block
    params: list[Any] = [spec.label, keys[0] if single else text_array(keys)]
    if settle:
        params = [*_delete(settle, own_commit=own)[1], *params]
    # The text and the converters of this statement, built once per connection: this runs
    # after every commit of a synced row (the write-through's read).
    cache: dict[Any, Any] = conn.__dict__.setdefault("_sync_intent_sql", {})
    shape = (spec, single, len(settle) == 1 if settle else None, own)
    found = cache.get(shape)
    if found is None:
        meta = spec.model._meta
        pk_type = meta.pk.rel_db_type(conn)
        sql = (
            f"SELECT q.object_pk, q.version, q.epoch IS NOT NULL, t.version, "  # noqa: S608
            f"{select_columns(spec)} "
            f"FROM sync_retry_queue q LEFT JOIN {conn.ops.quote_name(meta.db_table)} t "
            f"ON t.{conn.ops.quote_name(column(spec.model))} = q.object_pk::{pk_type} "
            "WHERE q.model = %s AND q.object_pk = " + ("%s" if single else "ANY(%s::text[])")
        )
        if settle:
            sql = f"WITH settled AS ({_delete(settle, own_commit=own)[0]}) {sql}"
        found = cache[shape] = (sql, converters_for(spec, using))
    sql, converters = found
    rows = prepared_fetchall(conn, sql, params)
    return [
        RowState(spec.label, pk, intent_version, None, retried)
        if row_version is None
        else RowState(spec.label, pk, row_version, convert_row(values, converters), retried)
        for pk, intent_version, retried, row_version, *values in rows
    ]


def row_states(
    spec: SyncSpec,
    pks: list[str],
    tombstone_versions: dict[str, int],
    using: str = "default",
    *,
    committed_at: Mapping[str, int | None] | None = None,
) -> list[RowState]:
    """Current state of these rows; absent ones become tombstones at the given versions.
    ``committed_at``: per pk, when its change was committed (epoch ms; replay's intents)."""
    meta = spec.model._meta
    conn = connections[using]
    pk_type = meta.pk.rel_db_type(conn)
    pk_column = conn.ops.quote_name(column(spec.model))
    sql = (
        f"SELECT t.{pk_column}::text, t.version, {select_columns(spec)} "  # noqa: S608
        f"FROM {conn.ops.quote_name(meta.db_table)} t "
        f"WHERE t.{pk_column} = ANY(%s::{pk_type}[])"
    )
    converters = converters_for(spec, using)
    with conn.cursor() as cursor:
        cursor.execute(sql, [pks])
        found = {pk: (version, values) for pk, version, *values in cursor.fetchall()}
    times = committed_at or {}
    states = []
    for pk in pks:
        if pk in found:
            version, values = found[pk]
            row = convert_row(values, converters)
            states.append(RowState(spec.label, pk, version, row, committed_at=times.get(pk)))
        else:
            version = tombstone_versions[pk]
            states.append(RowState(spec.label, pk, version, None, committed_at=times.get(pk)))
    return states


ENQUEUE_TRIGGER = "sync_enqueue_intent"


def enqueue_sql(label: str, rows: str, pk: str, version: str) -> str:
    """The set-based form of the ``sync_enqueue_intent`` trigger (sync/models/engine.py), for a
    statement that writes many rows and enqueues their intents itself, in one ``INSERT …
    SELECT`` instead of one trigger call each: an intent for every row of the CTE ``rows``
    (columns ``pk`` and ``version``), coalesced exactly as the trigger does. Answers each
    intent's pk and whether it had failed before (it carries a fence epoch)."""
    if not label.replace(".", "").replace("_", "").isalnum():  # a model label, never input
        raise ValueError(label)
    return (
        "INSERT INTO sync_retry_queue AS q (model, object_pk, version, op, status, attempts, "  # noqa: S608
        f"next_attempt_at, created_at, updated_at) SELECT '{label}', {rows}.{pk}::text, "
        f"{rows}.{version}, 'u', 'pending', 0, now() + interval '{REPLAY_GRACE}', now(), now() "
        f"FROM {rows} ON CONFLICT (model, object_pk) DO UPDATE "
        "SET version = GREATEST(q.version, EXCLUDED.version), op = EXCLUDED.op, "
        "status = 'pending', attempts = 0, updated_at = now() "
        "RETURNING q.object_pk AS pk, q.epoch IS NOT NULL AS retried"
    )


def enqueue_trigger_ids(models: Iterable[type[models.Model]]) -> list[str]:
    """The PostgreSQL names of these models' enqueue triggers: what a statement that
    enqueues its intents itself puts in ``pgtrigger.ignore`` (transaction-local)."""
    return [
        trigger.get_pgid(model)
        for model in models
        # pgtrigger adds ``triggers`` to every model's Meta options; django-stubs has none.
        for trigger in model._meta.triggers  # type: ignore[attr-defined]
        if trigger.name == ENQUEUE_TRIGGER
    ]


PREPARE_THRESHOLD = 5  # psycopg's default; any number: every call asks to prepare


class _Plans:
    generation = 0  # part of the statements' text: a new one after a change of types


_plans = _Plans()


def prepared_fetchall(
    conn: BaseDatabaseWrapper, sql: str, params: list[Any]
) -> list[tuple[Any, ...]]:
    """Run a statement the write-through sends after every commit as a server-side prepared
    statement: parsed and planned once per connection (Django's cursors bind client-side and
    cannot prepare). ``SYNC_PREPARED_STATEMENTS=false`` for a transaction-pooling PgBouncer."""
    if not settings.SYNC_PREPARED_STATEMENTS:
        with conn.cursor() as cursor:
            cursor.execute(sql, params)
            rows: list[tuple[Any, ...]] = cursor.fetchall()
            return rows
    conn.ensure_connection()
    raw = conn.connection
    # NOTE: Django opens its connections with ``prepare_threshold=None``, and psycopg then
    # prepares nothing, not even with ``prepare=True``: the threshold is set for this call.
    threshold, raw.prepare_threshold = raw.prepare_threshold, PREPARE_THRESHOLD
    try:
        with conn.wrap_database_errors:
            prepared = _prepared_cursor(conn, raw)
            try:
                prepared.execute(f"{sql} /* {_plans.generation} */", params, prepare=True)
            except psycopg.errors.FeatureNotSupported:
                # A column this statement returns changed type (a migration) since it was
                # prepared: PostgreSQL refuses the old statement for good. The next call
                # prepares a new one (the old is evicted in time); this one has failed.
                _plans.generation += 1
                raise
            found: list[tuple[Any, ...]] = prepared.fetchall()
            return found
    finally:
        raw.prepare_threshold = threshold


def _prepared_cursor(
    conn: BaseDatabaseWrapper, raw: psycopg.Connection[Any]
) -> psycopg.Cursor[Any]:
    """This connection's cursor for ``prepared_fetchall``, made once per database connection
    (a new cursor and its adapters per statement were half of the call's CPU)."""
    held = conn.__dict__.get("_sync_prepared_cursor")
    if held is not None and held.connection is raw and not held.closed:
        cursor: psycopg.Cursor[Any] = held
        return cursor
    cursor = conn.__dict__["_sync_prepared_cursor"] = psycopg.Cursor(raw)
    # NOTE: psycopg's own loader (its C version) in place of Django's subclass of the Python
    # one: the same aware datetimes (the session's time zone is UTC), 10x cheaper; these
    # statements return two timestamps per row written.
    cursor.adapters.register_loader("timestamptz", TimestamptzLoader)
    return cursor


def complete(states: list[RowState], using: str = "default") -> int:
    """Delete the intents these writes satisfied (unless a newer version arrived meanwhile)."""
    conn = connections[using]
    with conn.cursor() as cursor:
        cursor.execute(*_delete(states, own_commit=not conn.in_atomic_block))
        deleted: int = cursor.rowcount
        return deleted


# NOTE: a statement that only deletes completed intents, committed on its own (autocommit),
# commits asynchronously: it does not wait for its WAL flush (a full fsync on every 100-row
# write-through, and on every 32nd save). Nothing depends on that delete being durable: a
# crash that loses it leaves the intents pending, and replay's write of them is a no-op
# (Redis has their versions). Never inside a caller's transaction: it would take the
# caller's own writes' durability with it.
# A FROM item that turns off the WAL flush wait for the commit of the statement's own
# transaction (``set_config(…, true)``: that transaction only); replay's claim uses it too.
_ASYNC_COMMIT = "(SELECT set_config('synchronous_commit', 'off', true)) AS unflushed"


def _delete(states: Sequence[RowState], *, own_commit: bool = False) -> tuple[str, list[Any]]:
    """The DELETE of these completed intents; ``own_commit``: the statement is its own
    transaction (autocommit), and commits without waiting for its WAL flush."""
    asynchronous = f", {_ASYNC_COMMIT}" if own_commit else ""
    if len(states) == 1:  # equality: no arrays to format for the common single-row case
        (state,) = states
        return (
            (
                "DELETE FROM sync_retry_queue"  # noqa: S608 - constant text, values are parameters
                + (f" USING {_ASYNC_COMMIT}" if own_commit else "")
                + " WHERE model = %s AND object_pk = %s AND version <= %s"
            ),
            [state.label, state.pk, state.version],
        )
    return (
        (
            "DELETE FROM sync_retry_queue d0 "  # noqa: S608 - constant text, values are parameters
            "USING unnest(%s::text[], %s::text[], %s::bigint[]) AS d(model, pk, version)"
            f"{asynchronous} "
            "WHERE d0.model = d.model AND d0.object_pk = d.pk AND d0.version <= d.version"
        ),
        _settled_arrays(states),
    )


def text_array(values: Iterable[str]) -> str:
    """A PostgreSQL array literal of these strings, for a ``%s::text[]`` parameter: one
    string to bind, where a list is bound element by element (psycopg quotes each one:
    three lists of a 100-row write-through cost ~150 µs of CPU, this ~10 µs). Every element
    is double-quoted, with ``\\`` and ``"`` escaped, so any text survives as it was."""
    return (
        "{"
        + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
        + "}"
    )


def _settled_arrays(states: Sequence[RowState]) -> list[str]:
    """The model, pk and version arrays (literals) of these completed writes."""
    return [
        text_array([s.label for s in states]),
        text_array([s.pk for s in states]),
        "{" + ",".join(str(int(s.version)) for s in states) + "}",
    ]


def settle_cte(states: Sequence[RowState]) -> tuple[str, list[Any]]:
    """``settled AS (DELETE …)``: the intents these writes completed, deleted by a CTE of the
    caller's statement (the same text for any number of states, so it can be prepared)."""
    return (
        (
            "settled AS (DELETE FROM sync_retry_queue d0 "
            "USING unnest(%s::text[], %s::text[], %s::bigint[]) AS d(model, pk, version) "
            "WHERE d0.model = d.model AND d0.object_pk = d.pk AND d0.version <= d.version)"
        ),
        _settled_arrays(states),
    )


# The outage epoch of each model of a statement's first parameter (an array of labels) goes
# up by one; the statement that starts with this tags its intents with the new epochs (b).
BUMP_EPOCHS = """
    WITH bumped AS (
        INSERT INTO sync_fence AS f (model, epoch, updated_at)
        SELECT m, 1, now() FROM unnest(%s::text[]) AS m
        ON CONFLICT (model) DO UPDATE SET epoch = f.epoch + 1, updated_at = now()
        RETURNING f.model, f.epoch
    )
"""


def fail(states: list[RowState], error: str, using: str = "default") -> tuple[dict[str, int], int]:
    """Record a failed attempt: bump each model's outage epoch and tag the intents with it.

    One statement, so the bump and the tags commit together (the fence relies on it). Returns
    the new epochs per model and how many intents went dead.
    """
    labels = sorted({s.label for s in states})
    with connections[using].cursor() as cursor:
        cursor.execute(
            BUMP_EPOCHS
            + """
            UPDATE sync_retry_queue q SET
                attempts = q.attempts + 1,
                epoch = b.epoch,
                last_error = %s,
                status = CASE WHEN q.attempts + 1 >= %s THEN 'dead' ELSE 'pending' END,
                next_attempt_at = now() + make_interval(secs => least(
                    %s::float * power(2, q.attempts), %s::float) * (0.5 + random() / 2)),
                updated_at = now()
            FROM bumped b, unnest(%s::text[], %s::text[]) AS d(model, pk)
            WHERE q.model = d.model AND q.object_pk = d.pk AND b.model = d.model
            RETURNING q.model, q.object_pk, q.status, b.epoch
            """,
            [
                labels,
                redact(error)[:1000],
                settings.SYNC_REPLAY_MAX_ATTEMPTS,
                settings.SYNC_REPLAY_BACKOFF_BASE,
                settings.SYNC_REPLAY_BACKOFF_CAP,
                [s.label for s in states],
                [s.pk for s in states],
            ],
        )
        rows = cursor.fetchall()
    epochs = {label: epoch for label, _pk, _status, epoch in rows}
    dead = [(label, pk) for label, pk, status, _epoch in rows if status == "dead"]
    for label, pk in dead:
        logger.error(
            "ALERT sync intent dead after %s attempts: %s:%s",
            settings.SYNC_REPLAY_MAX_ATTEMPTS,
            label,
            pk,
        )
    return epochs, len(dead)


def requeue_lost(states: list[RowState], using: str = "default") -> dict[str, int]:
    """After Redis may have lost data between a writer's read and its write (``store.Marks``):
    an intent for every row written, as the enqueue trigger makes it (coalesced, the greater
    version), due now, and each model's outage epoch bumped and set on them, as ``fail``
    does: the fence keeps reads of those models off Redis until replay has written the
    newest versions. One statement. Returns the new epochs per model."""
    newest: dict[tuple[str, str], int] = {}
    for s in states:
        newest[s.label, s.pk] = max(s.version, newest.get((s.label, s.pk), 0))
    labels = sorted({label for label, _pk in newest})
    with connections[using].cursor() as cursor:
        cursor.execute(
            BUMP_EPOCHS  # noqa: S608 - constant text; every value is a parameter
            + """
            INSERT INTO sync_retry_queue AS q (model, object_pk, version, op, status, attempts,
                next_attempt_at, created_at, updated_at, epoch, last_error)
            SELECT d.model, d.pk, d.version, 'u', 'pending', 0, now(), now(), now(), b.epoch, %s
            FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS d(model, pk, version)
            JOIN bumped b ON b.model = d.model
            ON CONFLICT (model, object_pk) DO UPDATE SET
                version = GREATEST(q.version, EXCLUDED.version), status = 'pending',
                epoch = EXCLUDED.epoch, last_error = EXCLUDED.last_error,
                next_attempt_at = now(), updated_at = now()
            RETURNING q.model, q.epoch
            """,
            [
                labels,
                "the cache Redis lost its data during this write",
                [label for label, _pk in newest],
                [pk for _label, pk in newest],
                list(newest.values()),
            ],
        )
        return dict(cursor.fetchall())


@dataclass(frozen=True, slots=True)
class Claimed:
    """A claimed intent: what it asks Redis to hold, and when its change was committed."""

    label: str
    pk: str
    version: int
    # NOTE: ``created_at``, as the enqueue trigger sets it: a coalesced intent keeps it (the
    # oldest change not yet in Redis) and a failed attempt leaves it alone (``updated_at``
    # moves with every attempt), so a late delivery shows how late it is. It can overstate:
    # an intent whose write succeeded but whose deletion was deferred (writer.SETTLE_AGE) and
    # that a later commit then coalesced into keeps the earlier commit's time.
    created_at: datetime.datetime | None = field(default=None, compare=False)


UNFLUSHED = f"FROM {_ASYNC_COMMIT}"  # the claim's own transaction (see _ASYNC_COMMIT)


def claim(
    limit: int,
    *,
    since: datetime.datetime,
    include_not_due: bool = False,
    using: str = "default",
    settle: Sequence[RowState] = (),
) -> list[Claimed]:
    """Take up to ``limit`` due intents (SKIP LOCKED: concurrent replayers never share one).

    The claim pushes ``next_attempt_at`` out by a lease, so an intent whose replayer dies is
    taken again after the lease rather than lost. Intents claimed after ``since`` (the start
    of this replay run) are not taken again in the same run, so the intents of completed
    writes this same statement deletes (``settle``, a data-modifying CTE, as
    ``intent_states``'s) are never among those it claims.
    """
    due = "" if include_not_due else "AND next_attempt_at <= now()"
    return _claim(
        f"""status = 'pending' {due}
              AND (claimed_at IS NULL OR claimed_at < %s)
            ORDER BY next_attempt_at
            LIMIT %s""",
        [since, limit],
        using,
        settle,
    )


def claim_ids(ids: list[int], using: str = "default") -> list[Claimed]:
    """Take exactly these intents, due or not, pending or dead, with the same lease and SKIP
    LOCKED as ``claim``: one that a replayer holds now is left to it (not returned)."""
    return _claim("id = ANY(%s)", [ids], using)


def _claim(
    which: str, params: list[Any], using: str, settle: Sequence[RowState] = ()
) -> list[Claimed]:
    """Lease the intents the condition ``which`` selects, skipping rows another transaction
    has locked; answers what each asks Redis to hold."""
    settled, settled_params = settle_cte(settle) if settle else ("", [])
    conn = connections[using]
    # NOTE: a claim that is its own transaction (autocommit) commits without waiting for its
    # WAL flush: a crash that loses a lease only makes its intents claimable again sooner
    # (replaying them twice is harmless, I7). Inside a caller's transaction it changes
    # nothing: the caller's writes keep their durability.
    unflushed = "" if conn.in_atomic_block else UNFLUSHED
    with conn.cursor() as cursor:
        # NOTE: psycopg's C loader for the created_at of every claimed intent (the same aware
        # datetimes, the session is UTC), as in prepared_fetchall: Django's Python one was a
        # tenth of replay's own CPU time (bench/cache.py --profile replay).
        cursor.cursor.adapters.register_loader("timestamptz", TimestamptzLoader)
        cursor.execute(
            f"""
            {"WITH " + settled if settle else ""}
            UPDATE sync_retry_queue q
            SET next_attempt_at = now() + make_interval(secs => %s),
                claimed_at = clock_timestamp()
            {unflushed}
            WHERE q.id IN (
                SELECT id FROM sync_retry_queue
                WHERE {which}
                FOR UPDATE SKIP LOCKED
            )
            RETURNING q.model, q.object_pk, q.version, q.created_at
            """,  # noqa: S608 - constant text; every value is a parameter
            [*settled_params, settings.SYNC_REPLAY_LEASE, *params],
        )
        return [Claimed(*row) for row in cursor.fetchall()]


def mark_dead(label: str, pks: list[str], reason: str, using: str = "default") -> int:
    with connections[using].cursor() as cursor:
        cursor.execute(
            "UPDATE sync_retry_queue SET status = 'dead', last_error = %s, updated_at = now()"
            " WHERE model = %s AND object_pk = ANY(%s)",
            [reason, label, pks],
        )
        marked: int = cursor.rowcount
        return marked


def drained_epochs(using: str = "default") -> dict[str, int]:
    """Models whose failed intents are all gone, with the epoch that is now drained."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT f.model, f.epoch FROM sync_fence f WHERE f.epoch > 0 AND NOT EXISTS ("
            " SELECT 1 FROM sync_retry_queue q WHERE q.model = f.model AND q.epoch IS NOT NULL)"
        )
        return dict(cursor.fetchall())


def next_version(using: str = "default") -> int:
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT nextval('sync_version_seq')")
        version: int = cursor.fetchone()[0]
        return version


def database_now(using: str = "default") -> datetime.datetime:
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        now: datetime.datetime = cursor.fetchone()[0]
        return now
