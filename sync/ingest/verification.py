"""Sheet against database: what a run read against what the target table holds.

After a run, ``verify_run`` compares the keys the run read from the sheet (its record logs)
with the target table: counts, gaps (keys in the sheet, missing in the database, each with
whether the run logged why), keys the sheet holds twice, integrity (required fields present,
key format, the child row of every parent) and a sample of rows compared field by field. It
reports keys, field names and counts, never values (DESIGN I6).

A whole-sheet run also reports the rows of the database its sheet no longer has, and does
what the source's ``left_sheet`` option says with them (``left_sheet.py``).

``find_missing`` re-reads the sheet on its own, in chunks (memory stays flat), for the
``sync_find_missing`` / ``sync_missing`` commands: the keys the database lacks, and the rows
the sheet no longer has.

Where the scans read (``sync.replicas``): ``verify_run`` runs inside its run, right after the
run's writes, and what it finds is acted on (re-sync of gaps, rows flagged or soft-deleted):
the primary. ``find_missing`` compares the sheet with what earlier runs left in the table:
a read replica's, but only one that has replayed everything the primary had committed when
the scan began (else the primary), so a run that just finished is never reported missing.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import connection, connections, transaction

from sync.cache.declaration import column
from sync.ingest import left_sheet
from sync.ingest.exceptions import SourceUnavailableError
from sync.ingest.source_definitions import SourceConfig
from sync.ingest.sources import Source
from sync.ingest.validation import RowValidator, ValidRow
from sync.models import SyncRun
from sync.replicas import stale_reads

LISTED = 100  # keys listed per category in a result (all are counted)
CHUNK = 5000
# A run whose rows are at least 1/HASHED_SHARE of its target's verifies by one hash join:
# one index probe per sheet row costs as much as scanning ~20 target rows.
HASHED_SHARE = 20


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _target(config: SourceConfig) -> tuple[str, str, str]:
    return (
        _q(config.model._meta.db_table),
        _q(column(config.model, config.natural_key)),
        _q(column(config.model)),
    )


def verify_run(
    config: SourceConfig,
    run_id: int,
    sample: list[ValidRow],
    validator: RowValidator,
    *,
    explained: set[str],
    whole_sheet: bool,
) -> dict:
    """The run's sheet against the database. ``whole_sheet``: the run read its whole sheet
    (not some keys of it), so the rows its sheet no longer has are reported
    (``left_sheet``), and flagged or soft-deleted as the source says."""
    table, key, _pk = _target(config)
    checks, check_params = _integrity_checks(config)
    integrity = "".join(
        f", count(*) FILTER (WHERE t.{key} IS NOT NULL AND ({condition}))"
        for condition in checks.values()
    )
    with transaction.atomic(), connection.cursor() as cursor:
        # NOTE: the run's record logs are too new for the planner's statistics, which
        # count them as one row: it probes the target's key index once per sheet row. When
        # the run's rows are a good share of the target (most runs: the sheet is the
        # table), one hash join is 2x cheaper (a scan of the target, which the count
        # below makes anyway); a small run over a large table keeps the probes.
        runs = _q(SyncRun._meta.db_table)
        cursor.execute(
            "SELECT current_setting('enable_nestloop'), set_config('enable_nestloop', CASE"  # noqa: S608 - a table name
            f" WHEN (SELECT rows_done FROM {runs} WHERE id = %s)::float8"
            " * %s >= (SELECT reltuples FROM pg_class WHERE oid = %s::regclass)"
            " THEN 'off' ELSE current_setting('enable_nestloop') END, true)",
            [run_id, HASHED_SHARE, table],
        )
        (nested_loops, _setting) = cursor.fetchone()
        # One pass over the run's record logs (hashed by key), joined once with the target:
        # the sheet's distinct keys, those the target lacks, how many keys the sheet holds
        # twice, and the integrity rules over the rows the sheet names.
        cursor.execute(
            f"""
            WITH k AS MATERIALIZED (
                SELECT natural_key, count(*) AS n FROM sync_record_logs
                WHERE run_id = %s AND natural_key <> '' GROUP BY natural_key)
            SELECT count(*), count(t.{key}), (SELECT count(*) FROM {table}),
                   array_agg(k.natural_key) FILTER (WHERE t.{key} IS NULL),
                   count(*) FILTER (WHERE k.n > 1){integrity}
            FROM k LEFT JOIN {table} t ON t.{key} = k.natural_key
            """,  # noqa: S608
            [run_id, *check_params],
        )
        sheet_count, database_count, table_count, gap_keys, repeated, *counts = cursor.fetchone()
        # As it was, for the rest of a transaction around this one (tests).
        cursor.execute("SELECT set_config('enable_nestloop', %s, true)", [nested_loops])
        duplicates = {}
        if repeated:
            cursor.execute(
                "SELECT natural_key, array_agg(row_number ORDER BY row_number)"
                " FROM sync_record_logs WHERE run_id = %s AND natural_key <> ''"
                " GROUP BY natural_key HAVING count(*) > 1 ORDER BY min(row_number) LIMIT %s",
                [run_id, LISTED],
            )
            duplicates = dict(cursor.fetchall())
    gap_keys = sorted(gap_keys or [])
    left = (
        {
            "left_sheet": left_sheet.after_run(
                config, run_id, every_row_named=database_count == table_count
            )
        }
        if whole_sheet
        else {}
    )
    return {
        "sheet_count": sheet_count,
        "database_count": database_count,  # the sheet's keys the database holds
        "table_count": table_count,  # the whole table (other sources may feed it too)
        "gaps": len(gap_keys),
        "gap_keys": gap_keys[:LISTED],
        "unexplained_gaps": [k for k in gap_keys if k not in explained],
        "duplicates": duplicates,
        "integrity": {name: n for name, n in zip(checks, counts, strict=True) if n},
        "sample": compare_sample(config, sample, validator),
        **left,
    }


def _integrity_checks(config: SourceConfig) -> tuple[dict[str, str], list]:
    """The integrity rules as SQL conditions on the target row ``t`` (and their parameters):
    required field empty, key format, no child row."""
    _table, key, pk = _target(config)
    checks: dict[str, str] = {}
    for name in config.required:
        if "." in name:
            continue
        name_column = _q(column(config.model, name))
        checks[f"empty {name}"] = f"t.{name_column} IS NULL OR t.{name_column}::text = ''"
    params: list = []
    if config.key_pattern:
        # NOTE: the patterns in use (classes, \d, anchors) read the same in PostgreSQL ARE.
        checks["key format"] = f"t.{key} !~ %s"
        params.append(config.key_pattern)
    if config.child is not None:
        child = config.child.model._meta
        fk = _q(column(config.child.model, config.child.parent_field))
        checks[f"no {config.child.prefix}"] = (
            f"NOT EXISTS (SELECT 1 FROM {_q(child.db_table)} c WHERE c.{fk} = t.{pk})"  # noqa: S608
        )
    return checks, params


def compare_sample(config: SourceConfig, sample: list[ValidRow], validator: RowValidator) -> dict:
    """The sampled sheet rows against their database rows, field by field."""
    if not sample:
        return {"compared": 0, "mismatches": []}
    names = [spec.field.name for spec in validator.parent]
    stored = {
        getattr(obj, config.natural_key): obj
        for obj in config.model._base_manager.filter(
            **{f"{config.natural_key}__in": [row.key for row in sample]}
        )
    }
    child_names = [spec.field.name for spec in validator.child]
    children = {}
    child_prefix = config.child.prefix if config.child is not None else ""
    if config.child is not None:
        fk = config.child.parent_field
        children = {
            getattr(c, f"{fk}_id"): c
            for c in config.child.model._base_manager.filter(
                **{f"{fk}__in": [obj.pk for obj in stored.values()]}
            )
        }
    mismatches = []
    for row in sample:
        obj = stored.get(row.key)
        if obj is None:
            mismatches.append({"key": row.key, "fields": ["(missing)"]})
            continue
        fields = [n for n, v in zip(names, row.values, strict=True) if getattr(obj, n) != v]
        if row.child is not None:
            child = children.get(obj.pk)
            fields += [
                f"{child_prefix}.{n}"
                for n, v in zip(child_names, row.child, strict=True)
                if child is None or getattr(child, n) != v
            ]
        if fields:
            mismatches.append({"key": row.key, "fields": fields})
    return {"compared": len(sample), "mismatches": mismatches}


@dataclass
class MissingReport:
    """What ``find_missing`` found, for one source: its sheet's keys against the database
    (``table_rows`` is the whole table, which other sources may feed too)."""

    source: str
    sheet_rows: int = 0
    sheet_keys: int = 0
    rows_without_key: int = 0
    in_database: int = 0  # the sheet's keys the database holds
    table_rows: int = 0
    missing: list[tuple[str, int]] = field(default_factory=list)  # (key, row number)
    # The rows of the database this sheet no longer has (left_sheet.py): every key.
    left: left_sheet.Found = field(default_factory=left_sheet.Found)


def _key_position(config: SourceConfig, source: Source, headers: list[str]) -> None:
    """Refuse to count what cannot be seen: a sheet without the key column would report
    "missing 0" whatever the sheet holds."""
    key_header = config.key_column
    if key_header in headers:
        return
    shown = ", ".join(repr(h[:40]) for h in headers[:20] if h.strip()) or "no header at all"
    what = (
        f"its header row has no {key_header!r} column (it has {shown}; is it empty, or "
        "another delimiter, encoding or worksheet?)"
    )
    msg = (
        f"{config.name}: cannot read the key column of {source.location}: {what}; "
        "nothing was compared"
    )
    raise SourceUnavailableError(msg)


def find_missing(config: SourceConfig, source: Source) -> MissingReport:
    """Read the sheet and list the keys the database lacks (on a caught-up replica, if any)."""
    with stale_reads(caught_up=True) as database:
        return _find_missing(config, source, database)


def _find_missing(config: SourceConfig, source: Source, database: str) -> MissingReport:
    headers = source.headers()
    _key_position(config, source, headers)
    from sync.ingest.schema import column_limits

    validator = RowValidator(config, column_limits(config), headers)
    table, key, _pk = _target(config)
    report = MissingReport(config.name)
    seen: set[str] = set()
    keyed: Iterable = ((number, validator.key_of(cells)) for number, cells in source.rows())
    while chunk := list(itertools.islice(keyed, CHUNK)):
        report.sheet_rows += len(chunk)
        first_rows: dict[str, int] = {}
        for number, value in chunk:
            if not value:
                report.rows_without_key += 1
            elif value not in seen:
                first_rows.setdefault(value, number)
        seen.update(first_rows)
        with connections[database].cursor() as cursor:
            cursor.execute(
                f"SELECT k FROM unnest(%s::text[]) AS k WHERE NOT EXISTS ("  # noqa: S608
                f" SELECT 1 FROM {table} t WHERE t.{key} = k)",
                [list(first_rows)],
            )
            report.missing += [(k, first_rows[k]) for (k,) in cursor.fetchall()]
    if report.sheet_rows and not seen:
        msg = (
            f"{config.name}: the {config.key_column!r} column of {source.location} is empty "
            f"on all {report.sheet_rows} rows; nothing was compared"
        )
        raise SourceUnavailableError(msg)
    report.sheet_keys = len(seen)
    report.in_database = report.sheet_keys - len(report.missing)
    with connections[database].cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608
        report.table_rows = cursor.fetchone()[0]
    report.left = left_sheet.in_sheet(config, list(seen))
    report.missing.sort(key=lambda item: item[1])
    return report
