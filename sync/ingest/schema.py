"""The schema check: will every value fit its real column?

The limits come from PostgreSQL's catalog (``information_schema.columns``), not from the
model: the incident's ``VARCHAR(50)`` was a table that had drifted from what the code said.
``column_limits`` gives each mapped column's type and limit; ``check_schema`` compares the
sheet with them (headers, then every row's value lengths) and reports which rows and columns
would not fit **before** anything is loaded, with a migration that would fix it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import connection

from sync.cache.declaration import column
from sync.ingest.source_definitions import SourceConfig
from sync.ingest.sources import Row, Source

REPORT_ROWS = 1000  # offending rows listed in a report (all are counted)


@dataclass(frozen=True)
class Column:
    """A database column a sheet column feeds."""

    header: str
    table: str
    column: str
    data_type: str  # as information_schema says: "text", "character varying", "numeric" …
    max_length: int | None  # characters, for character varying(n) / character(n)
    precision: int | None  # numeric(p, s)
    scale: int | None

    @property
    def type_sql(self) -> str:
        if self.max_length is not None:
            return f"{self.data_type}({self.max_length})"
        if self.data_type == "numeric" and self.precision is not None:
            return f"numeric({self.precision},{self.scale or 0})"
        return self.data_type


def _catalog(table: str) -> dict[str, tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name, data_type, character_maximum_length, numeric_precision,"
            " numeric_scale FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = %s",
            [table],
        )
        return {name: rest for name, *rest in cursor.fetchall()}


def column_limits(config: SourceConfig) -> dict[str, Column]:
    """header -> its database column, as the catalog describes it right now."""
    found: dict[str, Column] = {}
    groups = [(config.model, config.parent_columns())]
    if config.child is not None:
        groups.append((config.child.model, config.child_columns()))
    for model, mapping in groups:
        meta = model._meta
        catalog = _catalog(meta.db_table)
        for header, name in mapping.items():
            db_column = column(model, name)
            data_type, length, precision, scale = catalog[db_column]
            found[header] = Column(
                header,
                meta.db_table,
                db_column,
                data_type,
                length,
                precision if data_type == "numeric" else None,
                scale if data_type == "numeric" else None,
            )
    return found


@dataclass(frozen=True)
class Misfit:
    row_number: int
    header: str
    length: int
    limit: int


@dataclass
class SchemaReport:
    source: str
    columns: list[Column]
    missing_headers: list[str] = field(default_factory=list)  # mapped, not in the sheet
    unmapped_headers: list[str] = field(default_factory=list)  # in the sheet, ignored
    rows_scanned: int = 0
    misfits: list[Misfit] = field(default_factory=list)  # the first REPORT_ROWS rows' misfits
    misfit_count: int = 0
    rows_with_misfits: int = 0
    longest: dict[str, int] = field(default_factory=dict)  # header -> longest value seen

    @property
    def limited(self) -> list[Column]:
        return [c for c in self.columns if c.max_length is not None]

    @property
    def ok(self) -> bool:
        return not self.misfit_count and not self.missing_headers

    def misfit_rows(self) -> list[int]:
        return sorted({m.row_number for m in self.misfits})

    def by_column(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for misfit in self.misfits:
            counts[misfit.header] = counts.get(misfit.header, 0) + 1
        return counts

    def fix_migration(self) -> str:
        """A migration that turns every limited column that something overflows into TEXT."""
        targets = sorted(
            {(c.table, c.column, c.type_sql) for c in self.limited if c.header in self.by_column()}
        )
        if not targets:
            return ""
        statements = "\n".join(
            f"        migrations.RunSQL(\n"
            f'            "ALTER TABLE {table} ALTER COLUMN {column} TYPE text",\n'
            f"            reverse_sql=migrations.RunSQL.noop,  # was {type_sql}: "
            f"shrinking back would truncate\n"
            f"        ),"
            for table, column, type_sql in targets
        )
        return (
            "from django.db import migrations\n\n\n"
            "class Migration(migrations.Migration):\n"
            "    # Values in the sheet do not fit these columns (sync_schema_check).\n"
            "    dependencies = []  # the app's latest migration\n\n"
            f"    operations = [\n{statements}\n    ]\n"
        )

    def as_dict(self) -> dict:
        """What a run stores in ``SyncRun.schema_report`` (no values, only lengths)."""
        return {
            "limited_columns": {c.header: c.type_sql for c in self.limited},
            "missing_headers": self.missing_headers,
            "unmapped_headers": self.unmapped_headers,
            "rows_scanned": self.rows_scanned,
            "rows_with_misfits": self.rows_with_misfits,
            "misfits": self.misfit_count,
            "by_column": self.by_column(),
            "rows": self.misfit_rows()[:100],
        }


def compare_headers(config: SourceConfig, headers: list[str], report: SchemaReport) -> None:
    present = set(headers)
    report.missing_headers = [h for h in config.columns if h not in present]
    report.unmapped_headers = [h for h in headers if h and h not in config.columns]


def scan_rows(report: SchemaReport, headers: list[str], rows: Iterable[Row]) -> None:
    """Measure every value that feeds a length-limited column."""
    positions = {h: i for i, h in enumerate(headers)}
    limited = [
        (positions[c.header], c.header, c.max_length)
        for c in report.limited
        if c.header in positions and c.max_length is not None  # every limited one has one
    ]
    for row_number, cells in rows:
        report.rows_scanned += 1
        bad = False
        for position, header, limit in limited:
            value = cells[position] if position < len(cells) else ""
            length = len(value)
            report.longest[header] = max(report.longest.get(header, 0), length)
            if length > limit:
                report.misfit_count += 1
                bad = True
                if len(report.misfits) < REPORT_ROWS:
                    report.misfits.append(Misfit(row_number, header, length, limit))
        report.rows_with_misfits += bad


def check_schema(config: SourceConfig, source: Source, *, scan: bool = True) -> SchemaReport:
    """Headers against the mapping, and (when a column has a length limit) every row."""
    columns = column_limits(config)
    report = SchemaReport(config.name, list(columns.values()))
    headers = source.headers()
    compare_headers(config, headers, report)
    if scan and report.limited:
        scan_rows(report, headers, source.rows())
    return report
