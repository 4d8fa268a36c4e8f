"""A batch's rows into the database: one set-based statement, one round trip.

The validated rows travel as one JSON parameter (an array of rows, encoded in C: cheaper than
``COPY`` into a staging table, and without its two round trips). The statement reads them
(casts to text, numeric or date, which never cut a value) and compares them with the target
on the natural key (rows whose values, and child's values, already match are ``unchanged``
and not written), inserts or updates the others (``ON CONFLICT`` on the natural key:
``created_at`` kept, ``synced_at``/``db_updated_at`` refreshed, and a
``WHERE … IS DISTINCT FROM`` guard that leaves a row alone if it became equal meanwhile, I7),
upserts each written row's child, enqueues the written rows' cache intents (set-based, in
place of the row trigger: I3) and writes the rows' record logs. It answers one row per sheet
row: its id and action, which the run counts, and for each row it wrote the new version and
the values Redis holds, which the write-through writes as they are (nothing is read again).
Versions come from the sync trigger.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import NamedTuple

from django.db import connection

from sync.cache.declaration import SyncSpec, column, field_column, spec_for
from sync.cache.outbox import (
    Converter,
    RowState,
    convert_row,
    converters_for,
    enqueue_sql,
    enqueue_trigger_ids,
    prepared_fetchall,
)
from sync.ingest.source_definitions import SourceConfig
from sync.ingest.validation import FieldSpec, RowValidator, ValidRow
from sync.models import RecordLog

Action = RecordLog.Action


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


class Written(NamedTuple):
    """One sheet row after the statement."""

    row_number: int
    key: str
    object_id: int | None
    action: str  # created, updated or unchanged
    parent_written: bool  # the parent row was inserted or updated (write it through)
    child_id: int | None  # the child row written, if any


class Answer(NamedTuple):
    """The statement's answer: the sheet rows (all of them in a dry run, else those written),
    what Redis must hold for the rows it wrote (their committed values and versions, from
    ``RETURNING``: nothing is read again), and, with ``progress``, the run's cancel flag, total
    and counts after its progress update."""

    rows: list[Written]  # with ``progress``: only the rows written
    states: list[RowState]
    cancel_requested: bool | None = None
    rows_total: int | None = None
    counts: tuple[int, int, int] | None = None  # the run's created, updated, unchanged after
    commit: str | None = None  # its synchronous_commit: "off" for a batch that wrote no row


class Progress(NamedTuple):
    """The run's progress after the batch, but for the counts the statement adds itself."""

    rows_done: int
    created_before: int
    updated_before: int
    unchanged_before: int
    failed: int
    run_id: int


def _cached(spec: SyncSpec) -> tuple[list[str], list[Converter]]:
    """The columns Redis holds for ``spec``'s model, and their converters (as a read has)."""
    return (
        [_q(column(spec.model, name)) for name in spec.fields],
        converters_for(spec, "default"),
    )


def _set_clause(columns: list[str]) -> str:
    assignments = [f"{c} = EXCLUDED.{c}" for c in columns]
    assignments += ["synced_at = EXCLUDED.synced_at", "db_updated_at = EXCLUDED.db_updated_at"]
    if not columns:
        return ", ".join(assignments)
    here = ", ".join(f"t.{c}" for c in columns)
    there = ", ".join(f"EXCLUDED.{c}" for c in columns)
    return f"{', '.join(assignments)} WHERE ({here}) IS DISTINCT FROM ({there})"


class BatchWriter:
    """The batch statement of one source's target (and its child)."""

    def __init__(self, config: SourceConfig, validator: RowValidator) -> None:
        self.config = config
        self.parent: list[FieldSpec] = validator.parent
        self.child: list[FieldSpec] = validator.child
        meta = config.model._meta
        self.table = _q(meta.db_table)
        self.key_column = _q(column(config.model, config.natural_key))
        self.key_index = validator.key_index
        self.pk_column = _q(column(config.model))
        self.label = meta.label_lower
        models = [config.model]
        self.parent_cached, self.parent_converters = _cached(spec_for(self.label))
        self.child_label = ""
        self.child_cached: list[str] = []
        self.child_converters: list[Converter] = []
        if config.child is not None:
            child_meta = config.child.model._meta
            self.child_table = _q(child_meta.db_table)
            self.child_pk = _q(column(config.child.model))
            self.parent_fk = _q(column(config.child.model, config.child.parent_field))
            self.child_label = child_meta.label_lower
            self.child_cached, self.child_converters = _cached(spec_for(self.child_label))
            models.append(config.child.model)
        # The enqueue triggers this statement stands in for (pgtrigger's ignore list).
        self.ignore = "{" + ",".join(enqueue_trigger_ids(models)) + "}"
        # Never a length-limited type (a cast would cut a value); see validation.ARRAY_TYPES.
        self.types = ["integer", *(spec.array_type for spec in self.parent + self.child)]
        self.sql = self._statement()
        self.recorded = self._recorded()

    # ------------------------------------------------------------------ the statement

    def _statement(self) -> str:
        # NOTE (S608): every name below is a quoted table or column name of the models, every
        # literal a model label; the values (the trigger ids, the run id) are parameters.
        n = len(self.parent)
        key = f"c{self.key_index}"
        parent_cols = [_q(field_column(s.field)) for s in self.parent]
        value_cols = [c for c in parent_cols if c != self.key_column]
        child_cols = [_q(field_column(s.field)) for s in self.child]
        here = [f"t.{c}" for c in parent_cols] + [f"p.{c}" for c in child_cols]
        there = [f"s.c{i}" for i in range(n + len(child_cols))]
        exists, join = f"t.{self.pk_column} IS NOT NULL", ""
        if self.child:
            # A parent without its child row is not "unchanged": the child is written.
            exists += f" AND p.{self.child_pk} IS NOT NULL"
            join = f" LEFT JOIN {self.child_table} p ON p.{self.parent_fk} = t.{self.pk_column}"
        # The row triggers' intents are written below, set-based, by this same statement (I3):
        # the enqueue trigger of the tables written here is skipped for this transaction
        # (pgtrigger's ignore setting, transaction-local; BatchLoading._advance clears it).
        ignore = "cfg AS (SELECT set_config('pgtrigger.ignore', %s, true) AS ignoring)"
        # The batch is one JSON parameter (an array of rows): no staging table, no COPY
        # round trips; the casts below never cut a value (text, numeric, date). NOTE: jsonb,
        # parsed once: ->> on plain json re-parses the row for every field (~17x slower).
        columns = ", ".join(
            f"(e->>{i})::{t} AS {'rn' if i == 0 else f'c{i - 1}'}" for i, t in enumerate(self.types)
        )
        staged = f"s AS (SELECT {columns} FROM jsonb_array_elements(%s::jsonb) AS e)"  # noqa: S608
        # NOTE: LATERAL … OFFSET 0 is one index probe per sheet row. A plain join is planned
        # for a row source of unknown size, and the prepared statement keeps the plan made
        # while the target was small: a hash join over a sequential scan of the whole target,
        # once per batch (quadratic in the table's size).
        compared = (
            f"c AS (SELECT s.*, m.old_id, coalesce(m.same, false) AS same FROM s "  # noqa: S608
            f"LEFT JOIN LATERAL (SELECT t.{self.pk_column} AS old_id, ({exists} AND "
            f"({', '.join(here)}) IS NOT DISTINCT FROM ({', '.join(there)})) AS same "
            f"FROM {self.table} t{join} WHERE t.{self.key_column} = s.{key} OFFSET 0) m ON true)"
        )
        cached = ", ".join(f"t.{c} AS f{i}" for i, c in enumerate(self.parent_cached))
        upserted = (
            f"up AS (INSERT INTO {self.table} AS t ({', '.join(parent_cols)}, created_at, "  # noqa: S608
            "synced_at, db_updated_at, version, updated_at_ns) "
            f"SELECT {', '.join(f'c.c{i}' for i in range(n))}, now(), now(), now(), 0, 0 "
            f"FROM c CROSS JOIN cfg WHERE NOT c.same ON CONFLICT ({self.key_column}) DO UPDATE "
            f"SET {_set_clause(value_cols)} RETURNING t.{self.key_column} AS k, "
            f"t.{self.pk_column} AS id, (t.xmax = 0) AS inserted, t.version AS v, {cached})"
        )
        parent_intents = "pq AS (" + enqueue_sql(self.label, "up", "id", "v") + ")"
        resolved = (
            "r AS (SELECT c.*, coalesce(up.id, c.old_id) AS id, up.inserted, "  # noqa: S608
            f"up.v AS pv, pq.retried AS pr, "
            f"{', '.join(f'up.f{i}' for i in range(len(self.parent_cached)))} "
            f"FROM c LEFT JOIN up ON up.k = c.{key} LEFT JOIN pq ON pq.pk = up.id::text)"
        )
        ctes = [ignore, staged, compared, upserted, parent_intents, resolved]
        child_id, tail, child_values = "NULL::bigint", "", ""
        if self.child:
            child_cached = ", ".join(f"t.{c} AS g{i}" for i, c in enumerate(self.child_cached))
            ctes.append(
                f"ch AS (INSERT INTO {self.child_table} AS t ({self.parent_fk}, "  # noqa: S608
                f"{', '.join(child_cols)}, created_at, synced_at, db_updated_at, version, "
                f"updated_at_ns) SELECT r.id, "
                f"{', '.join(f'r.c{n + j}' for j in range(len(child_cols)))}, "
                "now(), now(), now(), 0, 0 FROM r CROSS JOIN cfg "
                "WHERE NOT r.same AND r.id IS NOT NULL "
                f"ON CONFLICT ({self.parent_fk}) DO UPDATE SET {_set_clause(child_cols)} "
                f"RETURNING t.{self.child_pk} AS child_id, t.{self.parent_fk} AS parent_id, "
                f"t.version AS v, {child_cached})"
            )
            ctes.append("cq AS (" + enqueue_sql(self.child_label, "ch", "child_id", "v") + ")")
            child_id = "ch.child_id"
            tail = " LEFT JOIN ch ON ch.parent_id = r.id LEFT JOIN cq ON cq.pk = ch.child_id::text"
            child_values = ", ch.v AS cv, cq.retried AS cr, " + ", ".join(
                f"ch.g{i}" for i in range(len(self.child_cached))
            )
        action = (
            f"CASE WHEN r.inserted THEN '{Action.CREATED}' "
            f"WHEN r.inserted IS NOT NULL OR {child_id} IS NOT NULL "
            f"THEN '{Action.UPDATED}' ELSE '{Action.UNCHANGED}' END"
        )
        ctes.append(
            f"a AS (SELECT r.rn, r.{key} AS k, r.id, {action} AS action, "  # noqa: S608
            f"r.inserted IS NOT NULL AS written, {child_id} AS child_id, r.pv, r.pr, "
            f"{', '.join(f'r.f{i}' for i in range(len(self.parent_cached)))}{child_values} "
            f"FROM r{tail})"
        )
        return "WITH " + ", ".join(ctes)

    def _recorded(self) -> str:
        """The CTEs of a real (not dry) run: record logs, the deletion of completed intents,
        the run's progress; and the final select with the run's cancel flag and total."""
        # NOTE (S608): model labels and action names only; every value is a parameter.
        written = f"SELECT '{self.label}:' || pk AS k FROM pq"  # noqa: S608
        if self.child:
            written += f" UNION ALL SELECT '{self.child_label}:' || pk FROM cq"  # noqa: S608
        counted = {
            action: f"(SELECT count(*) FROM a WHERE a.action = '{action}')"  # noqa: S608
            for action in (Action.CREATED, Action.UPDATED, Action.UNCHANGED)
        }
        return (
            ", logs AS (INSERT INTO sync_record_logs (run_id, row_number, natural_key, action, "  # noqa: S608
            "object_id) SELECT %s, a.rn, a.k, a.action, a.id FROM a)"
            f", written AS ({written})"
            # Intents completed by earlier batches' write-through. NOTE: never one this
            # statement enqueues again (two changes to one row in one statement fail). Found
            # by one index probe each (LATERAL … OFFSET 0: the generic plan otherwise hashes
            # a sequential scan of the whole queue, dead rows included, every batch), deleted
            # by id; the version test is on the deleted row itself, so a newer version that a
            # concurrent writer enqueued meanwhile is re-checked and kept.
            ", done AS (SELECT l.id, l.version FROM unnest(%s::text[], %s::text[], %s::bigint[])"
            " AS d(model, pk, version) CROSS JOIN LATERAL (SELECT q.id, q.version"
            " FROM sync_retry_queue q WHERE q.model = d.model AND q.object_pk = d.pk"
            " AND q.version <= d.version OFFSET 0) l"
            " WHERE NOT EXISTS (SELECT FROM written w WHERE w.k = d.model || ':' || d.pk))"
            ", settled AS (DELETE FROM sync_retry_queue d0"
            " WHERE d0.id = ANY (ARRAY(SELECT id FROM done)) AND d0.version <= ("
            "(SELECT jsonb_object_agg(id::text, version) FROM done) ->> d0.id::text)::bigint)"
            ", prog AS (UPDATE sync_audit_logs SET rows_done = %s,"
            " rows_total = greatest(rows_total, %s),"
            f" created = %s + {counted[Action.CREATED]},"
            f" updated = %s + {counted[Action.UPDATED]},"
            f" unchanged = %s + {counted[Action.UNCHANGED]}, failed = %s"
            " WHERE id = %s RETURNING cancel_requested, rows_total, created, updated, unchanged)"
            # Only the rows written come back (the write-through needs them); the counts come
            # from the run's row. NOTE: prog first: one row even when nothing was written.
            # A statement that is its own transaction (the parameter) and wrote no row commits
            # without waiting for its WAL flush: it holds only logs and progress (a later
            # commit, or the WAL writer within a fraction of a second, makes them durable),
            # and nothing in Redis depends on it. One that wrote rows waits, as always: their
            # write-through follows the commit (I4).
            " SELECT w.*, p.cancel_requested, p.rows_total, p.created, p.updated, p.unchanged,"
            " c.commit FROM prog p CROSS JOIN (SELECT set_config('synchronous_commit', CASE"
            " WHEN %s AND NOT EXISTS (SELECT FROM a WHERE a.written OR a.child_id IS NOT NULL)"
            " THEN 'off' ELSE current_setting('synchronous_commit') END, true) AS commit) c"
            " LEFT JOIN (SELECT * FROM a WHERE a.written OR a.child_id IS NOT NULL)"
            " w ON true"
        )

    def encode(self, rows: list[ValidRow]) -> str:
        """The statement's batch parameter for ``rows`` (no database work: a run encodes its
        next batch while the current one is written)."""
        # NOTE: Decimal and date values go as their text (str), which the casts read back
        # exactly; JSON escapes any character text may hold (validation refuses NUL).
        if self.child:
            # A target with a child: every valid row has its child's values.
            batch = [[row.row_number, *row.values, *row.child] for row in rows]  # type: ignore[misc]
        else:
            batch = [[row.row_number, *row.values] for row in rows]
        return json.dumps(batch, default=str, ensure_ascii=False)

    def write(
        self,
        rows: list[ValidRow],
        *,
        run_id: int,
        progress: Progress | None = None,
        settle: Sequence[RowState] = (),
        encoded: str | None = None,
    ) -> Answer:
        """Run the statement for ``rows`` (in the caller's transaction). With ``progress``
        (not a dry run) it also writes their record logs for ``run_id``, deletes the intents
        of ``settle`` (completed writes) and updates the run's progress. ``rows`` is never
        empty (the caller writes a batch only when it has rows); ``encoded``: ``rows``
        already encoded."""
        params: list = [self.ignore, encoded if encoded is not None else self.encode(rows)]
        if progress is None:
            sql = self.sql + " SELECT * FROM a"  # noqa: S608
        else:
            sql = self.sql + self.recorded
            params += [
                run_id,
                [s.label for s in settle],
                [s.pk for s in settle],
                [s.version for s in settle],
                progress.rows_done,
                progress.rows_done,
                progress.created_before,
                progress.updated_before,
                progress.unchanged_before,
                progress.failed,
                progress.run_id,
                not connection.in_atomic_block,
            ]
        # NOTE: a server-side prepared statement: the same text every batch, planned once per
        # session instead of parsed and planned each time (Django's cursor binds client-side).
        found = prepared_fetchall(connection, sql, params)
        if progress is None:
            return Answer([Written(*row[:6]) for row in found], self._states(found))
        cancel, total, created, updated, unchanged, commit = found[0][-6:]
        found = [row[:-6] for row in found if row[0] is not None]
        return Answer(
            [Written(*row[:6]) for row in found],
            self._states(found),
            cancel,
            total,
            (created, updated, unchanged),
            commit,
        )

    def _states(self, found: list[tuple]) -> list[RowState]:
        """What Redis must hold for every row the statement wrote, as the write-through would
        read it after commit: the row's version and cached values (converted like a read)."""
        states = []
        parent_at, child_at = 8, 8 + len(self.parent_cached)
        for row in found:
            if row[4]:  # the parent was inserted or updated
                states.append(
                    RowState(
                        self.label,
                        str(row[2]),
                        row[6],
                        convert_row(row[parent_at:child_at], self.parent_converters),
                        row[7],
                    )
                )
            if row[5] is not None:  # its child was written
                states.append(
                    RowState(
                        self.child_label,
                        str(row[5]),
                        row[child_at],
                        convert_row(row[child_at + 2 :], self.child_converters),
                        row[child_at + 1],
                    )
                )
        return states
