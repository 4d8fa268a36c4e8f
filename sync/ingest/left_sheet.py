"""Rows that left the sheet (docs/ingestion.md, "Rows that left the sheet").

A whole-sheet run knows every key of its sheet: its record logs hold one row per sheet row
with a key, whatever happened to the row (stored, unchanged, failed, superseded). The live
rows of the target that none of those keys names are rows the sheet no longer has: a buyer
removed from the sheet. Nothing removes them silently, and nothing leaves them unsaid
(DESIGN I10): every whole-sheet run reports them in ``SyncRun.verification["left_sheet"]``
(their count and the first keys), logs a warning, and does what the source's ``left_sheet``
option says:

* ``"flag"`` (the default): the row is kept as it is. The first run that finds it gone writes
  an error row ``source/left_sheet`` with its key (the run admin's search finds the run), and
  every later run counts and lists it while it stays out of the sheet.
* ``"soft_delete"``: the row is soft-deleted through the engine, in one transaction with its
  cache intents (its ``@synced`` soft-delete field set with ``update_synced``: the trigger
  bumps its version and enqueues the intent, Redis gets the tombstone on commit; I3, I4),
  with an error row ``source/left_sheet`` saying so. A soft-deleted row whose key the sheet
  has again is restored by the run that stores it (or finds it unchanged). Only for a target
  with soft delete, fed by this source alone (``config.py`` refuses the rest). A run with
  failed rows soft-deletes nothing (a failed row's key may be misread: a line cut short, a
  shifted cell); it flags instead, saying so (``soft_delete_held``).

Which rows are a source's: no target table records the source of a row. A target fed by
one source (every target the project ships) is that source's whole table, the rule the
verification's counts use (``table_count``). A target fed by several sources: the rows that
no source's sheet has, this run's sheet and the latest whole-sheet run of each other source;
when another source has no such run (its sheet is unknown), the check is not made, and the
result says why, rather than flag rows that may be that source's.

Runs of some keys only (``sync_missing``, the record retry queue) report nothing: they did
not read the whole sheet. A dry run (an upload's preview) changes no row: it reports what its
real run would do, with the same error rows (the preview's errors are the confirmed run's).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db import connection, connections, transaction
from django.db.models.functions import Now

from sync.cache.bulk import update_synced
from sync.cache.declaration import is_synced, spec_for
from sync.ingest.exceptions import SourceConfigError
from sync.models import ErrorLog, RecordLog, SyncRun
from sync.redaction import RedactPiiFilter
from sync.replicas import read_alias

logger = logging.getLogger(__name__)
logger.addFilter(RedactPiiFilter())

FLAG = "flag"
SOFT_DELETE = "soft_delete"
OPTIONS = (FLAG, SOFT_DELETE)
DONE = {FLAG: "flagged", SOFT_DELETE: "soft_deleted"}  # what happened to them, in the result
WOULD = {FLAG: "would be flagged", SOFT_DELETE: "would be soft-deleted"}  # … in a dry run
CODE = "left_sheet"
LISTED = 50  # keys kept in a run's verification (all are counted)
# Runs that read only some keys of their sheet: the rest of the table did not leave it.
SOME_KEYS = (SyncRun.Trigger.MISSING, SyncRun.Trigger.RETRY)
STORED = (RecordLog.Action.CREATED, RecordLog.Action.UPDATED, RecordLog.Action.UNCHANGED)
REASONS = {
    FLAG: "in the database but no longer in the sheet: the row is kept as it is "
    '(left_sheet = "flag"); remove it, or put it back in the sheet',
    SOFT_DELETE: "in the database but no longer in the sheet: soft-deleted "
    '(left_sheet = "soft_delete"); it is restored when the sheet has it again',
}


def soft_delete_field(model) -> str | None:
    """The model's soft-delete field (its ``@synced(soft_delete=…)``), or None."""
    label = model._meta.label_lower
    return spec_for(label).soft_delete if is_synced(label) else None


def _soft_delete_field_of(model) -> str:
    """The soft-delete field of a target whose left rows are soft-deleted (a source is
    refused one without it)."""
    found = soft_delete_field(model)
    if found is None:
        msg = f"{model._meta.label_lower} has no soft-delete field"
        raise SourceConfigError(msg)
    return found


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


@dataclass
class Found:
    """The rows of a target that a sheet no longer has: ``count``, their keys in order
    (``keys``: the first ``limit`` asked for), or ``unchecked``: why they could not be told."""

    count: int = 0
    keys: list[str] = field(default_factory=list)
    unchecked: str = ""


def _other_runs(config, *, exclude: int | None = None) -> tuple[list[int], str]:
    """The latest whole-sheet run of each other source feeding the target, or why one of them
    has none (its sheet is then unknown: its rows cannot be told from those that left)."""
    from sync.ingest.source_definitions import load_sources

    others = sorted(
        name
        for name, other in load_sources().items()
        if other.label == config.label and name != config.name
    )
    runs = []
    for name in others:
        whole_sheet = SyncRun.objects.filter(
            source=name,
            dry_run=False,
            status__in=(SyncRun.Status.SUCCEEDED, SyncRun.Status.PARTIAL),
        ).exclude(trigger__in=SOME_KEYS)
        if exclude is not None:
            whole_sheet = whole_sheet.exclude(pk=exclude)
        run_id = whole_sheet.order_by("-pk").values_list("pk", flat=True).first()
        if run_id is None or not RecordLog.objects.filter(run_id=run_id).exists():
            return [], (
                f"source {name!r} feeds {config.label} too and has no whole-sheet run "
                "whose keys are kept: its rows cannot be told from those that left "
                "this sheet; run it once"
            )
        runs.append(run_id)
    return runs, ""


def _left_sql(
    config, *, run_id: int | None = None, keys: list[str] | None = None, other_runs: list[int]
) -> tuple[str, list]:
    """``SELECT id, key`` of the live target rows that neither this sheet (the keys of the run
    ``run_id``'s record logs, or ``keys``) nor the other sources' runs have."""
    meta = config.model._meta
    key = _q(meta.get_field(config.natural_key).column)
    if run_id is not None:
        where = [
            (
                "NOT EXISTS (SELECT 1 FROM sync_record_logs s"  # noqa: S608
                f" WHERE s.run_id = %s AND s.natural_key = t.{key})"
            )
        ]
        params: list = [run_id]
    else:
        # Hashed by PostgreSQL (15+) for a long array: one pass, no temporary table.
        where, params = [f"t.{key} <> ALL(%s::text[])"], [keys]
    if other_runs:
        where.append(
            "NOT EXISTS (SELECT 1 FROM sync_record_logs o"  # noqa: S608
            f" WHERE o.run_id = ANY(%s) AND o.natural_key = t.{key})"
        )
        params.append(other_runs)
    deleted = soft_delete_field(config.model)
    if deleted:
        where.append(f"t.{_q(meta.get_field(deleted).column)} IS NULL")
    return (
        f"SELECT t.{_q(meta.pk.column)} AS id, t.{key} AS key FROM {_q(meta.db_table)} t "  # noqa: S608
        f"WHERE {' AND '.join(where)}"
    ), params


def _summarize(sql: str, params: list, limit: int | None) -> Found:
    # A caught-up replica's in find_missing's scan (sync/replicas.py); inside a run's write
    # transaction, the primary's.
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(
            f"WITH l AS MATERIALIZED ({sql}) SELECT (SELECT count(*) FROM l),"  # noqa: S608
            " ARRAY(SELECT key FROM l ORDER BY key LIMIT %s)",
            [*params, limit],
        )
        count, keys = cursor.fetchone()
    return Found(count, list(keys))


def in_sheet(config, keys: list[str]) -> Found:
    """The rows of the target that a sheet holding ``keys`` does not have, every key listed
    (``sync_find_missing``)."""
    others, unchecked = _other_runs(config)
    if unchecked:
        return Found(unchecked=unchecked)
    sql, params = _left_sql(config, keys=keys, other_runs=others)
    return _summarize(sql, params, None)


def after_run(config, run_id: int, *, every_row_named: bool = False) -> dict:
    """What a whole-sheet run reports (and does) about the rows its sheet no longer has:
    the ``left_sheet`` entry of its verification. Idempotent: verification may run twice.
    A dry run (an upload's preview) writes the error rows the real run would write, and
    changes no row. ``every_row_named``: the sheet's keys name as many target rows as the
    table holds (the verification's counts), so no row left it when no other source feeds
    the target: the search is skipped (about 12 ms per 10,000 rows)."""
    others, unchecked = _other_runs(config, exclude=run_id)
    if unchecked:
        logger.warning(
            "%s: run %s: rows that left the sheet not checked: %s", config.name, run_id, unchecked
        )
        return {"action": "not checked", "reason": unchecked}
    dry = SyncRun.objects.filter(pk=run_id, dry_run=True).exists()
    sql, params = _left_sql(config, run_id=run_id, other_runs=others)
    result: dict = {}
    option = config.left_sheet
    failed = (
        option == SOFT_DELETE
        and RecordLog.objects.filter(run_id=run_id, action=RecordLog.Action.FAILED).count()
    )
    if failed:
        # A row that failed may be one whose key was misread (a line cut short, a shifted
        # cell): its database row is not gone. Kept and flagged until a clean run.
        option = FLAG
        result["soft_delete_held"] = (
            f"{failed} row(s) of the sheet failed, and a failed row's key may be misread: "
            "the rows are kept and flagged until a run without failed rows"
        )
    with transaction.atomic():
        restored = _restore(config, run_id, dry=dry) if config.left_sheet == SOFT_DELETE else []
        found = Found() if every_row_named and not others else _summarize(sql, params, LISTED)
        if found.count:
            logged = _log(config, run_id, sql, params, option)
            if option == FLAG:
                result["newly_flagged"] = logged
            elif not dry:
                _soft_delete(config, sql, params)
    if restored:
        result["restored"] = {"count": len(restored), "keys": restored[:LISTED]}
        logger.warning(
            "%s: run %s: %d soft-deleted row(s) are in the sheet again: %s",
            config.name,
            run_id,
            len(restored),
            "would be restored" if dry else "restored",
        )
    action = WOULD[option] if dry else DONE[option]
    result = {"count": found.count, "action": action, "keys": found.keys, **result}
    if found.count > LISTED:
        result["keys_not_listed"] = found.count - LISTED
    if found.count:
        logger.warning(
            "%s: run %s: %d row(s) in the database are no longer in the sheet (%s): %s%s",
            config.name,
            run_id,
            found.count,
            action,
            ", ".join(found.keys[:10]),
            " …" if found.count > 10 else "",
        )
    return result


def _log(config, run_id: int, sql: str, params: list, option: str) -> int:
    """A ``source/left_sheet`` error row per key, once per run; with ``flag``, only for keys
    no earlier real run of the source flagged (within the logs' retention). How many."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH l AS ({sql}), ins AS ("  # noqa: S608
            " INSERT INTO sync_error_logs (run_id, source, category, code, natural_key,"
            ' "column", reason, retryable)'
            " SELECT %s, %s, %s, %s, l.key, '', %s, false FROM l WHERE NOT EXISTS ("
            "  SELECT 1 FROM sync_error_logs e JOIN sync_audit_logs r ON r.id = e.run_id"
            "  WHERE e.source = %s AND e.code = %s AND e.natural_key = l.key"
            "  AND (e.run_id = %s OR (%s AND NOT r.dry_run))) RETURNING 1)"
            " SELECT count(*) FROM ins",
            [
                *params,
                run_id,
                config.name,
                ErrorLog.Category.SOURCE,
                CODE,
                REASONS[option],
                config.name,
                CODE,
                run_id,
                option == FLAG,
            ],
        )
        return cursor.fetchone()[0]


def _soft_delete(config, sql: str, params: list) -> None:
    """Soft-delete the rows through the engine: new versions and cache intents in this
    transaction (the trigger), the tombstones written through on commit."""
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} FOR UPDATE OF t", params)
        pks = [pk for pk, _key in cursor.fetchall()]
    deleted = _soft_delete_field_of(config.model)
    update_synced(config.model._base_manager.filter(pk__in=pks), **{deleted: Now()})


def _restore(config, run_id: int, *, dry: bool) -> list[str]:
    """Soft-deleted rows this run stored (or found unchanged) again: live again, through the
    engine (not in a dry run); their keys."""
    meta = config.model._meta
    key = _q(meta.get_field(config.natural_key).column)
    deleted = _soft_delete_field_of(config.model)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT t.{_q(meta.pk.column)}, t.{key} FROM {_q(meta.db_table)} t"  # noqa: S608
            f" WHERE t.{_q(meta.get_field(deleted).column)} IS NOT NULL AND EXISTS ("
            " SELECT 1 FROM sync_record_logs s WHERE s.run_id = %s AND s.natural_key ="
            f" t.{key} AND s.action = ANY(%s)) ORDER BY t.{key} FOR UPDATE OF t",
            [run_id, list(STORED)],
        )
        rows = cursor.fetchall()
    if rows and not dry:
        update_synced(
            config.model._base_manager.filter(pk__in=[pk for pk, _key in rows]), **{deleted: None}
        )
    return [key for _pk, key in rows]


def message(verification: dict) -> str:
    """A phrase for the run's message ("; 3 row(s) left the sheet: kept and flagged"), or
    "" when none did (for the pipeline's summary)."""
    left = verification.get("left_sheet") or {}
    if not left.get("count"):
        return ""
    what = {DONE[FLAG]: "kept and flagged", WOULD[FLAG]: "would be kept and flagged"}.get(
        left["action"], left["action"].replace("_", "-")
    )
    return f"; {left['count']} row(s) left the sheet: {what}"
