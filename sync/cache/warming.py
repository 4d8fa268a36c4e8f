"""Cold start: refill Redis from PostgreSQL in pipelined, versioned batches."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection

from sync.cache import store, writer
from sync.cache.ahead import fewer_collections, read_ahead
from sync.cache.declaration import SyncSpec, column
from sync.cache.outbox import RowState, convert_row, converters_for, select_columns


@dataclass
class WarmProgress:
    label: str
    done: int
    total: int
    written: int


# A row as warming reads it: (primary key as text, version, payload values).
WarmRow = tuple[str, int, tuple[Any, ...]]


def iter_rows(
    spec: SyncSpec, batch_size: int, *, after: str | None = None
) -> Iterator[list[WarmRow]]:
    """Keyset pagination over a synced table: batches of (pk text, version, values).

    ``after``: start after this primary key (its text; a resumed warm)."""
    meta = spec.model._meta
    table, pk = (
        connection.ops.quote_name(meta.db_table),
        connection.ops.quote_name(column(spec.model)),
    )
    pk_type = meta.pk.rel_db_type(connection)
    converters = converters_for(spec, "default")
    last = after
    while True:
        where = f"WHERE t.{pk} > %s::{pk_type} " if last is not None else ""
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT t.{pk}, t.version, {select_columns(spec)} FROM {table} t "  # noqa: S608
                f"{where}ORDER BY t.{pk} LIMIT %s",
                [last, batch_size] if last is not None else [batch_size],
            )
            rows = cursor.fetchall()
        if not rows:
            return
        last = rows[-1][0]
        yield [
            (str(pk_value), version, convert_row(values, converters))
            for pk_value, version, *values in rows
        ]


def rows_by_pk(spec: SyncSpec, pks: list[str]) -> list[WarmRow]:
    """The rows with these primary keys (their text), in the order given, in one query; keys
    with no row are left out. A soft-deleted row is read as ``iter_rows`` reads it (and so
    written as a tombstone, never as a live row)."""
    meta = spec.model._meta
    table, pk = (
        connection.ops.quote_name(meta.db_table),
        connection.ops.quote_name(column(spec.model)),
    )
    pk_type = meta.pk.rel_db_type(connection)
    # As the keyset pass names them (str of the Python value); a key that cannot be one of
    # this model's primary keys names no row.
    keys = []
    for key in pks:
        with contextlib.suppress(ValidationError):
            keys.append(str(meta.pk.to_python(key)))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT t.{pk}, t.version, {select_columns(spec)} "  # noqa: S608
            f"FROM {table} t WHERE t.{pk} = ANY(%s::{pk_type}[])",
            [keys],
        )
        found = {str(pk_value): (version, values) for pk_value, version, *values in cursor}
    converters = converters_for(spec, "default")
    return [
        (key, found[key][0], convert_row(found[key][1], converters)) for key in keys if key in found
    ]


def captured(batches: Iterator[list[WarmRow]]) -> Iterator[tuple[list[WarmRow], store.Marks]]:
    """Each batch with the data-loss markers captured before it was read (``store.Marks``)."""
    while True:
        marks = store.capture()
        batch = next(batches, None)
        if batch is None:
            return
        yield batch, marks


class Prepared(NamedTuple):
    """One batch of ``iter_rows`` with the markers taken before its read, its row states and
    its CAS writes, encoded: the rows' entries first, then their blind-index entries."""

    rows: list[WarmRow]
    marks: store.Marks
    states: list[RowState]
    writes: list[store.CacheWrite]


def _prepare(spec: SyncSpec, batch: list[WarmRow], marks: store.Marks) -> Prepared:
    states = [RowState(spec.label, pk, version, values) for pk, version, values in batch]
    writes = [s.to_write(spec) for s in states]
    writes += [w for s in states for w in s.index_writes(spec)]
    return Prepared(batch, marks, states, writes)


def prepared(spec: SyncSpec, batch_size: int, after: str | None = None) -> Iterator[Prepared]:
    """The batches of ``iter_rows``, each with its markers (``captured``) and encoded: what
    the read-ahead thread produces, so the encoding overlaps the previous batch's write."""
    for batch, marks in captured(iter_rows(spec, batch_size, after=after)):
        yield _prepare(spec, batch, marks)


def write_prepared(batch: Prepared) -> int:
    """CAS-write one prepared batch (one pipeline); how many rows were applied. Redis data
    lost since its markers were captured: the rows' intents again (``note_lost``)."""
    applied = store.write_many(batch.writes, marks=batch.marks, source=store.WARM)
    if batch.marks.lost:
        writer.note_lost(batch.states)
    return sum(applied[: len(batch.states)])


def write_batch(spec: SyncSpec, batch: list[WarmRow], marks: store.Marks) -> int:
    """CAS-write one batch of rows read after ``marks`` were captured (``write_prepared``)."""
    return write_prepared(_prepare(spec, batch, marks))


def count_rows(spec: SyncSpec) -> int:
    return spec.model._base_manager.count()


def warm(
    spec: SyncSpec,
    *,
    batch_size: int | None = None,
    progress: Callable[[WarmProgress], None] | None = None,
) -> WarmProgress:
    batch_size = batch_size or settings.SYNC_WARM_BATCH
    state = WarmProgress(spec.label, 0, count_rows(spec), 0)
    with fewer_collections():
        # The next batch is read and encoded while this one is written (sync.cache.ahead).
        batches = read_ahead(functools.partial(prepared, spec, batch_size))
        try:
            for batch in batches:
                state.written += write_prepared(batch)
                state.done += len(batch.rows)
                if progress:
                    progress(state)
        finally:
            batches.close()
    return state
