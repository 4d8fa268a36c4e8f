"""Will every value of the sheet fit its column? Reads the real column types from PostgreSQL's
catalog, measures every row, lists the rows and columns that would not fit, and prints a
migration that fixes the columns."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from sync.ingest.source_checks import source_schema_check
from sync.management.commands._progress import engine_errors


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser) -> None:
        parser.add_argument("source")
        parser.add_argument("--file")

    def handle(self, *args, source, file, verbosity, **options) -> None:
        with engine_errors():
            report = source_schema_check(source, file=file)
        for column in report.columns:
            self.stdout.write(
                f"{column.header:20} -> {column.table}.{column.column} {column.type_sql}"
            )
        for header in report.missing_headers:
            self.stdout.write(f"missing column in the sheet: {header}")
        for header in report.unmapped_headers:
            self.stdout.write(f"unmapped column (ignored): {header}")
        for misfit in report.misfits if verbosity >= 1 else []:
            self.stdout.write(
                f"row {misfit.row_number}: {misfit.header} has {misfit.length} "
                f"characters, the column holds {misfit.limit}"
            )
        self.stdout.write(
            f"{report.rows_scanned} rows scanned, {report.rows_with_misfits} row(s) with "
            f"{report.misfit_count} value(s) that do not fit"
        )
        if report.misfit_count:
            self.stdout.write("\nA migration that fixes it:\n\n" + report.fix_migration())
            msg = (
                f"{report.rows_with_misfits} row(s) would not fit: apply a migration like "
                "the one above before syncing"
            )
            raise CommandError(msg)
        if report.missing_headers:
            msg = "the sheet lacks mapped columns: fix the sheet or the column mapping"
            raise CommandError(msg)
