"""Sync just the rows of the sheet that the database lacks (after a schema fix, say)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from sync.ingest.source_checks import source_sync_missing
from sync.management.commands._progress import engine_errors
from sync.management.commands.sync_find_missing import left_summary, summary
from sync.management.commands.sync_ingest import describe


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser) -> None:
        parser.add_argument("source")
        parser.add_argument("--file")

    def handle(self, *args, source, file, verbosity, **options) -> None:
        with engine_errors():
            report, run = source_sync_missing(source, file=file)
        left = left_summary(report)
        if left and verbosity >= 1:  # not synced: only the sheet's rows are
            self.stdout.write(left)
        self.stdout.write(summary(report))
        if run is None:
            return
        self.stdout.write(describe(run))
        if run.gaps:
            msg = (
                f"{run.gaps} row(s) are still missing: see the errors of run {run.pk} "
                "(sync_error_logs)"
            )
            raise CommandError(msg)
