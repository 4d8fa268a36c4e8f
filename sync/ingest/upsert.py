"""The two statements of a batch: compare with the database, then upsert what differs.

Both send the batch as one array per column (``unnest``), so a batch costs two round trips
whatever its size. The compare joins the sheet's values with the rows (and their child row)
on the natural key and reports which are already equal; the upsert inserts or updates only
the others on the natural key, keeps ``created_at``, refreshes ``synced_at`` and
``db_updated_at``, and its ``WHERE … IS DISTINCT FROM`` guard leaves a row alone if it became
equal meanwhile (I7). Versions and cache intents come from the sync triggers.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection

from sync.ingest.config import SourceConfig
from sync.ingest.validation import FieldSpec, RowValidator, ValidRow


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


@dataclass(frozen=True)
class Compared:
    existing: dict[str, int]  # key -> id of the parent row already stored
    unchanged: set[str]  # keys whose parent (and child) values already match


def _arrays(specs: list[FieldSpec], alias: str) -> tuple[str, list[str]]:
    """``unnest(%s::type[], …) AS alias(c0, c1, …)`` and the column aliases."""
    names = [f"c{i}" for i in range(len(specs))]
    casts = ", ".join(f"%s::{s.array_type}[]" for s in specs)
    return f"unnest({casts}) AS {alias}({', '.join(names)})", names


def _columns(rows: list[ValidRow], count: int, child: bool = False) -> list[list]:
    return [[(row.child if child else row.values)[i] for row in rows] for i in range(count)]


class BatchWriter:
    """Compare and upsert statements for one source's target (and its child)."""

    def __init__(self, config: SourceConfig, validator: RowValidator) -> None:
        self.config = config
        self.parent = validator.parent
        self.child = validator.child
        meta = config.model._meta
        self.table = _q(meta.db_table)
        self.key_column = _q(meta.get_field(config.natural_key).column)
        self.key_index = validator.key_index
        self.pk_column = _q(meta.pk.column)
        if config.child is not None:
            child_meta = config.child.model._meta
            self.child_table = _q(child_meta.db_table)
            self.parent_fk = _q(child_meta.get_field(config.child.parent_field).column)

    def compare(self, rows: list[ValidRow]) -> Compared:
        source, names = _arrays(self.parent + self.child, "s")
        parent_cols = [_q(s.field.column) for s in self.parent]
        here = [f"t.{c}" for c in parent_cols]
        there = [f"s.{n}" for n in names[:len(self.parent)]]
        join = ""
        if self.child:
            join = f" LEFT JOIN {self.child_table} p ON p.{self.parent_fk} = t.{self.pk_column}"
            here += [f"p.{_q(s.field.column)}" for s in self.child]
            there += [f"s.{n}" for n in names[len(self.parent):]]
        sql = (
            f"SELECT s.c{self.key_index}, t.{self.pk_column}, "  # noqa: S608
            f"({', '.join(here)}) IS NOT DISTINCT FROM ({', '.join(there)}) "
            f"FROM {source} JOIN {self.table} t ON t.{self.key_column} = s.c{self.key_index}"
            f"{join}")
        params = _columns(rows, len(self.parent))
        if self.child:
            params += _columns(rows, len(self.child), child=True)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            found = cursor.fetchall()
        return Compared({key: pk for key, pk, _same in found},
                        {key for key, _pk, same in found if same})

    def upsert(self, rows: list[ValidRow]) -> tuple[dict[str, int], set[str]]:
        """Insert or update ``rows`` (all different from the database, as far as the compare
        knew); returns key -> id of the rows written and the keys that were inserted."""
        if not rows:
            return {}, set()
        source, names = _arrays(self.parent, "s")
        cols = [_q(s.field.column) for s in self.parent]
        value_cols = [c for c in cols if c != self.key_column]
        sql = (
            f"INSERT INTO {self.table} AS t ({', '.join(cols)}, created_at, synced_at, "  # noqa: S608
            f"db_updated_at, version, updated_at_ns) "
            f"SELECT {', '.join(f's.{n}' for n in names)}, now(), now(), now(), 0, 0 "
            f"FROM {source} "
            f"ON CONFLICT ({self.key_column}) DO UPDATE SET "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in value_cols)
            + ", synced_at = EXCLUDED.synced_at, db_updated_at = EXCLUDED.db_updated_at"
            + (f" WHERE ({', '.join(f't.{c}' for c in value_cols)}) IS DISTINCT FROM "
               f"({', '.join(f'EXCLUDED.{c}' for c in value_cols)})" if value_cols else "")
            + f" RETURNING t.{self.key_column}, t.{self.pk_column}, (t.xmax = 0)")
        with connection.cursor() as cursor:
            cursor.execute(sql, _columns(rows, len(self.parent)))
            written = cursor.fetchall()
        return ({key: pk for key, pk, _inserted in written},
                {key for key, _pk, inserted in written if inserted})

    def upsert_children(self, rows: list[ValidRow], ids: dict[str, int],
                        ) -> list[tuple[int, int]]:
        """Insert or update each row's child (on the parent's id); (child id, parent id) of
        the children written."""
        rows = [row for row in rows if row.key in ids]
        if not self.child or not rows:
            return []
        names = [f"c{i}" for i in range(len(self.child))]
        cols = [_q(s.field.column) for s in self.child]
        casts = ", ".join(f"%s::{s.array_type}[]" for s in self.child)
        sql = (
            f"INSERT INTO {self.child_table} AS t ({self.parent_fk}, {', '.join(cols)}, "  # noqa: S608
            f"created_at, synced_at, db_updated_at, version, updated_at_ns) "
            f"SELECT s.fk, {', '.join(f's.{n}' for n in names)}, now(), now(), now(), 0, 0 "
            f"FROM unnest(%s::bigint[], {casts}) AS s(fk, {', '.join(names)}) "
            f"ON CONFLICT ({self.parent_fk}) DO UPDATE SET "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in cols)
            + ", synced_at = EXCLUDED.synced_at, db_updated_at = EXCLUDED.db_updated_at"
            + f" WHERE ({', '.join(f't.{c}' for c in cols)}) IS DISTINCT FROM "
            f"({', '.join(f'EXCLUDED.{c}' for c in cols)}) RETURNING t.id, t.{self.parent_fk}")
        with connection.cursor() as cursor:
            cursor.execute(sql, [[ids[row.key] for row in rows],
                                 *_columns(rows, len(self.child), child=True)])
            return cursor.fetchall()
