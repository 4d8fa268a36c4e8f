"""What a real ingest of a fuzzed sheet must show: the run finished (never an exception),
every data row is accounted for, failures are logged per row, stored text is exact."""

from __future__ import annotations

from buyers.models import Buyer
from sync.ingest.pipeline import run_ingest
from sync.ingest.source_definitions import get_source
from sync.ingest.sources import normal_header
from sync.models import ErrorLog, RecordLog, SyncRun

CATEGORIES = {c.value for c in ErrorLog.Category}
STORED = {RecordLog.Action.CREATED, RecordLog.Action.UPDATED, RecordLog.Action.UNCHANGED}


def _ambiguous(head: list[str]) -> bool:
    """Two columns that read as the same mapped header (trimmed, case ignored): refused."""
    mapped = {normal_header(h) for h in get_source("buyers").columns}
    names = [normal_header(h) for h in head if normal_header(h) in mapped]
    return len(names) != len(set(names))


def assert_run_accounts_for_every_row(path: str, head: list[str], rows: list[list[str]]) -> SyncRun:
    Buyer.objects.all().delete()
    run = run_ingest("buyers", file=path)  # raises nothing: every outcome is in the run
    # A row whose only content is a formula without a saved value is data: it is reported
    # (validation/formula), never skipped as empty (FormulaRow, sync/ingest/sources.py).
    data = {n: r for n, r in enumerate(rows, start=2) if any(r) or getattr(r, "formulas", ())}
    if run.status == SyncRun.Status.FAILED:
        # The whole file was refused (no key column, a field csv cannot read): one clear
        # message, and no row half-done.
        assert run.message and "Traceback" not in run.message, run.message
        # A mapped column missing from the sheet refuses the run: nothing blanked.
        assert (
            "Buyer Number" not in head
            or _ambiguous(head)
            or any(h not in head for h in get_source("buyers").columns)
            or any(len(c) > 100_000 for r in [head, *rows] for c in r)
        ), run.message
        return run
    assert run.status in (SyncRun.Status.SUCCEEDED, SyncRun.Status.PARTIAL), run.message
    logs = list(RecordLog.objects.filter(run_id=run.pk))
    superseded = sum(log.action == RecordLog.Action.SUPERSEDED for log in logs)
    assert run.rows_done == len(data) == len(logs), (run.rows_done, len(data), len(logs))
    assert run.created + run.updated + run.unchanged + run.failed + superseded == len(data)
    assert {log.row_number for log in logs} == set(data)
    errors = list(ErrorLog.objects.filter(run_id=run.pk))
    assert {e.category for e in errors} <= CATEGORIES
    failed = {log.row_number for log in logs if log.action == RecordLog.Action.FAILED}
    assert failed <= {e.row_number for e in errors}  # every failure has its reason
    assert all(e.reason for e in errors)
    # Stored text is exactly the cell of the last row stored under that key: never cut.
    columns = get_source("buyers").columns
    last: dict[str, int] = {}
    for log in sorted(logs, key=lambda log: log.row_number):
        if log.action in STORED:
            last[log.natural_key] = log.row_number
    stored = {b.buyer_number: b for b in Buyer.objects.all()}
    assert set(stored) == set(last)
    for key, number in last.items():
        cells = data[number] + [""] * len(head)
        for header, field in columns.items():
            if header == "Buyer Number" or header not in head:
                continue
            value = getattr(stored[key], field)
            if isinstance(value, str):
                candidates = {cells[i] for i, h in enumerate(head) if h == header}
                assert value in candidates, (key, header, len(value))
    return run
