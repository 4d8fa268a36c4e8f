"""List the keys of the sheet that the database lacks, and the rows of the
database that the sheet no longer has."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from sync.ingest.source_checks import source_find_missing
from sync.ingest.verification import MissingReport
from sync.management.commands._progress import engine_errors

SHOWN = 10  # keys of the rows that left the sheet named in the summary line


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser) -> None:
        parser.add_argument("source")
        parser.add_argument("--file")

    def handle(self, *args, source, file, verbosity, **options) -> None:
        with engine_errors():
            report = source_find_missing(source, file=file)
        if verbosity >= 1:
            for key, row in report.missing:
                self.stdout.write(f"{key}\trow {row}")
            left = left_summary(report)
            if left:
                for key in report.left.keys:
                    self.stdout.write(f"{key}\tnot in the sheet")
                self.stdout.write(left)
        self.stdout.write(summary(report))


def left_summary(report: MissingReport) -> str:
    """The rows of the database the sheet no longer has (docs/ingestion.md, "Rows that left
    the sheet"), or "" when there are none."""
    if report.left.unchecked:
        return f"{report.source}: rows that left the sheet not checked: {report.left.unchecked}"
    if not report.left.count:
        return ""
    keys = ", ".join(report.left.keys[:SHOWN])
    more = f" and {report.left.count - SHOWN} more" if report.left.count > SHOWN else ""
    return (
        f"{report.source}: left the sheet {report.left.count} ({keys}{more}): row(s) in "
        "the database that the sheet no longer has (kept or soft-deleted by each run as "
        "the source's left_sheet option says)"
    )


def summary(report: MissingReport) -> str:
    """Counts of this source's sheet only: the table may be fed by other sources too."""
    unkeyed = f", {report.rows_without_key} row(s) without a key" if report.rows_without_key else ""
    return (
        f"{report.source}: sheet {report.sheet_keys} keys ({report.sheet_rows} rows"
        f"{unkeyed}), {report.in_database} of them in the database, "
        f"missing {len(report.missing)} (the table holds {report.table_rows} rows "
        "from every source)"
    )
