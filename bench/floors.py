"""The floors of replay and warm: the same keys' CAS writes with nothing else (issue 21).

Replay and warm are judged against what the machine can do with the same work at the least:
the same rows' payloads, already encoded as the engine writes them, sent as pipelined EVALSHA
of ``lua/cas_write.lua`` in batches of the engine's own size (``SYNC_REPLAY_BATCH``,
``SYNC_WARM_BATCH``), with no per-row Python beyond building each pipeline. That is the goal's
floor. A second variant adds what replay and warm must minimally do on the PostgreSQL side:
each batch's rows read with one set-based query and encoded before the same pipeline.

Both write what the engine writes: after a replay run, the rewrite at the same versions
(``replace_equal``) does every command the engine's write did (HSET of the entry, HDEL of a
lease, HSET of the writer's field, PEXPIRE); after a FLUSHDB, a warm's floor creates the keys
as the warm does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from bench.fixtures import LABEL, SKU


@dataclass
class Floor:
    """The same keys' payloads, encoded once (not timed), in the engine's batches."""

    batches: list[list]  # of store.CacheWrite
    pks: list[list[str]]  # the same batches' primary keys (the read variant's)
    source: str

    @property
    def rows(self) -> int:
        return sum(len(batch) for batch in self.batches)


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def outage_floor(*, batch_size: int, source: str) -> Floor:
    """Replay's keys: the outage rows (``bench:outage:…``) at their current versions."""
    from catalog.models import Part
    from sync.cache.declaration import spec_for
    from sync.cache.outbox import row_states

    spec = spec_for(LABEL)
    pks = [
        str(pk)
        for pk in Part.objects.filter(sku__startswith=f"{SKU}outage:")
        .order_by("pk")
        .values_list("pk", flat=True)
    ]
    batches, pk_batches = [], []
    for chunk in _chunks(pks, batch_size):
        states = row_states(spec, chunk, {})
        batches.append([w for state in states for w in state.to_writes(spec)])
        pk_batches.append(chunk)
    return Floor(batches, pk_batches, source)


def table_floor(*, batch_size: int, source: str) -> Floor:
    """Warm's keys: every row of the table, in the warm's keyset batches."""
    from sync.cache.declaration import spec_for
    from sync.cache.outbox import RowState
    from sync.cache.warming import iter_rows

    spec = spec_for(LABEL)
    batches, pk_batches = [], []
    for rows in iter_rows(spec, batch_size):
        states = [RowState(LABEL, pk, version, values) for pk, version, values in rows]
        batches.append([w for state in states for w in state.to_writes(spec)])
        pk_batches.append([pk for pk, _version, _values in rows])
    return Floor(batches, pk_batches, source)


def write_floor(floor: Floor) -> int:
    """The goal's floor: one pipelined EVALSHA round trip per batch, payloads ready."""
    from sync.cache import store

    written = 0
    for batch in floor.batches:
        written += sum(store.write_many(batch, replace_equal=True, source=floor.source))
    return written


def read_write_floor(floor: Floor) -> int:
    """The floor with PostgreSQL: per batch, one set-based read of the rows (by primary
    key), their encoding (the engine's codec), then the same pipeline."""
    from sync.cache import store
    from sync.cache.declaration import spec_for
    from sync.cache.outbox import row_states

    spec = spec_for(LABEL)
    written = 0
    for pks in floor.pks:
        states = row_states(spec, pks, {})
        writes = [w for state in states for w in state.to_writes(spec)]
        written += sum(store.write_many(writes, replace_equal=True, source=floor.source))
    return written


def floor_row(
    measurement: str,
    per_second: float,
    floor_per_second: float,
    unit: str,
    *,
    goal: float | None = None,
    cpu_share: float | None = None,
):
    """A throughput as a ratio to its floor (higher is better), against a ≥ goal."""
    from bench.harness import floor_row as row

    return row(measurement, per_second, "floor", floor_per_second, goal, unit, cpu_share=cpu_share)
