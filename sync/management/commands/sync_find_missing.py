"""List the keys of the sheet that the database lacks (seed 004 §13.1)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from sync.ingest.exceptions import IngestError
from sync.ingest.services import source_find_missing


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser) -> None:
        parser.add_argument("source")
        parser.add_argument("--file")

    def handle(self, *args, source, file, verbosity, **options) -> None:
        try:
            report = source_find_missing(source, file=file)
        except IngestError as e:
            raise CommandError(str(e)) from e
        if verbosity >= 1:
            for key, row in report.missing:
                self.stdout.write(f"{key}\trow {row}")
        self.stdout.write(f"{source}: sheet {report.sheet_keys} keys ({report.sheet_rows} rows), "
                          f"database {report.database_count} rows, "
                          f"missing {len(report.missing)}")
