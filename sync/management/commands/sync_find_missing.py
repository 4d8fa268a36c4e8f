"""List the keys of the sheet that the database lacks (seed 004 §13.1)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from sync.ingest.services import source_find_missing
from sync.ingest.verification import MissingReport
from sync.management.commands._progress import engine_errors


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
        self.stdout.write(summary(report))


def summary(report: MissingReport) -> str:
    """Counts of this source's sheet only: the table may be fed by other sources too."""
    unkeyed = (f", {report.rows_without_key} row(s) without a key"
               if report.rows_without_key else "")
    return (f"{report.source}: sheet {report.sheet_keys} keys ({report.sheet_rows} rows"
            f"{unkeyed}), {report.in_database} of them in the database, "
            f"missing {len(report.missing)} (the table holds {report.table_rows} rows "
            "from every source)")
