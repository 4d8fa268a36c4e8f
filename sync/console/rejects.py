"""A run's rejected rows as a CSV file (pgloader's reject file is the model).

One line per sheet row the run reported (validation, schema, conflict … anything with a row
number), in the sheet's own columns and order, plus ``row`` (its number in the sheet),
``column`` and ``reason`` (each of its errors, joined by `` | ``), so a person can fix the
lines and upload the file again (the three extra columns are ignored as unmapped).

The cells come from the file the run read, read as a run reads it (``source_for``: declared
or detected encoding and delimiter, headers matched trimmed and ignoring case): the stored
upload for a console upload (exactly the bytes it read), else the source's file or sheet as it
is now; a line whose key no longer matches the one the run logged says so instead of showing
another row's cells.

Who sees what: operators download it; columns that map to a PII field, and columns the
source does not map (their content is unknown), are only in the file of a PII viewer
(DESIGN I11). Cells that a spreadsheet would run as a formula (``= + - @``, tab, CR) are
prefixed with ``'`` (OWASP's CSV injection advice); plain numbers such as ``-12.5`` are not.
"""

from __future__ import annotations

import contextlib
import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

from sync.cache.declaration import spec_for
from sync.ingest.exceptions import IngestError
from sync.ingest.source_definitions import SourceConfig, get_source
from sync.ingest.sources import Source, source_for
from sync.ingest.uploads import upload_file
from sync.models import ErrorLog, SyncRun, SyncUpload
from sync.redaction import redact

EXTRA = ("row", "column", "reason")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?\d+(?:[.,]\d+)*")
UPLOAD_LOCATION = re.compile(r"upload (\d+): ")  # a run of a console upload (uploads.py)


def csv_safe(value: str) -> str:
    """A cell a spreadsheet shows as text: one that would start a formula gets a ``'``."""
    if value.startswith(FORMULA_START) and not NUMBER.fullmatch(value):
        return "'" + value
    return value


@dataclass
class Rejected:
    row: int
    key: str
    columns: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def rejected_rows(run: SyncRun) -> dict[int, Rejected]:
    """The run's reported rows by row number, with every error of each."""
    found: dict[int, Rejected] = {}
    errors = (
        ErrorLog.objects.filter(run_id=run.pk, row_number__isnull=False)
        .order_by("row_number", "id")
        .values_list("row_number", "natural_key", "column", "reason")
    )
    for row_number, key, column, reason in errors.iterator():
        row = cast(int, row_number)  # the query leaves out errors without a row
        entry = found.setdefault(row, Rejected(row, key))
        if column and column not in entry.columns:
            entry.columns.append(column)
        entry.reasons.append(reason)
    return found


def _normal(header: str) -> str:
    return " ".join(header.split()).casefold()


def pii_headers(config: SourceConfig) -> set[str]:
    """The source's mapped headers that feed a PII field (of the target or its child)."""
    found = set()
    parent = set(spec_for(config.label).pii_fields)
    child = (
        set(spec_for(config.child.model._meta.label_lower).pii_fields) if (config.child) else set()
    )
    for header, name in config.columns.items():
        _prefix, dot, rest = name.partition(".")
        if (not dot and name in parent) or (dot and rest in child):
            found.add(_normal(header))
    return found


def shown_columns(config: SourceConfig, headers: list[str], *, pii: bool) -> list[int]:
    """Positions of the sheet's columns in the file: every one for a PII viewer, else the
    mapped non-PII ones."""
    if pii:
        return list(range(len(headers)))
    mapped = {_normal(h) for h in config.columns}
    hidden = pii_headers(config)
    return [i for i, h in enumerate(headers) if _normal(h) in mapped and _normal(h) not in hidden]


@contextlib.contextmanager
def _source_of(run: SyncRun, config: SourceConfig) -> Iterator[Source | None]:
    """The source the run read (``None`` when it cannot be read any more)."""
    uploaded = UPLOAD_LOCATION.match(run.location)
    upload = SyncUpload.objects.filter(pk=int(uploaded.group(1))).first() if uploaded else None
    if upload is not None:
        with contextlib.ExitStack() as stack:
            try:
                path = stack.enter_context(upload_file(upload))
            except IngestError:  # purged after its retention
                path = None
            yield source_for(config, *config.resolve_location(path)) if path else None
        return
    try:
        kind, location = config.resolve_location(run.location or None)
    except IngestError:
        kind, location = config.kind, run.location
    yield source_for(config, kind, location)


@dataclass
class RejectsFile:
    filename: str
    lines: Iterator[list[str]]


def rejects_file(run: SyncRun, *, pii: bool) -> RejectsFile:
    """The run's rejects file for a reader with (``pii``) or without the PII role."""
    config = get_source(run.source)
    rejected = rejected_rows(run)
    suffix = "" if pii else "-without-pii"  # personal and unmapped columns left out
    return RejectsFile(
        f"{run.source}-run-{run.pk}-rejects{suffix}.csv", _lines(run, config, rejected, pii=pii)
    )


def _lines(
    run: SyncRun,
    config: SourceConfig,
    rejected: dict[int, Rejected],
    *,
    pii: bool,
) -> Iterator[list[str]]:
    with _source_of(run, config) as source:
        try:
            headers = source.headers() if source is not None and rejected else []
        except IngestError:
            headers, source = [], None
        keep = shown_columns(config, headers, pii=pii)
        key_at = next(
            (i for i, h in enumerate(headers) if _normal(h) == _normal(config.key_column)), None
        )
        yield [csv_safe(headers[i]) for i in keep] + list(EXTRA)
        blank = [""] * len(keep)
        remaining = dict(rejected)
        if source is not None and remaining:
            try:
                for number, cells in source.rows():
                    entry = remaining.pop(number, None)
                    if entry is not None:
                        yield _line(entry, cells, keep, key_at, blank)
                    if not remaining:
                        break
            except IngestError as e:
                note = f"the sheet cannot be read any more: {e}"
                for entry in remaining.values():
                    entry.reasons.append(note)
        for entry in sorted(remaining.values(), key=lambda e: e.row):
            entry.reasons.append(
                "the sheet the run read is no longer available"
                if (source is None or not headers)
                else f"the sheet has no row {entry.row} any more"
            )
            yield _extra(entry, blank)


def _line(
    entry: Rejected, cells: list[str], keep: list[int], key_at: int | None, blank: list[str]
) -> list[str]:
    found = cells[key_at].strip() if key_at is not None and key_at < len(cells) else ""
    # NOTE: a key the run could not accept was logged redacted and cut (BatchLoading).
    if entry.key and entry.key not in (found, found[:200], redact(found)[:64]):
        entry.reasons.append(
            f"the sheet changed since the run: row {entry.row} now holds "
            "another key, its cells are left out"
        )
        return _extra(entry, blank)
    return _extra(entry, [csv_safe(cells[i]) if i < len(cells) else "" for i in keep])


def _extra(entry: Rejected, blank: list[str]) -> list[str]:
    return [
        *blank,
        str(entry.row),
        csv_safe(", ".join(entry.columns)),
        csv_safe(" | ".join(entry.reasons)),
    ]


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_chunks(lines: Iterator[list[str]]) -> Iterator[str]:
    """The lines as CSV text (UTF-8 with a BOM, which spreadsheets read as UTF-8)."""
    writer = csv.writer(_Echo())
    yield "\ufeff"
    for line in lines:
        yield writer.writerow(line)
