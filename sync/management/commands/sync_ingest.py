"""Sync a spreadsheet source into PostgreSQL (and through to Redis): one audited run.

manage.py sync_ingest buyers [--file buyers.xlsx] [--dry-run] [--batch-size 500]
manage.py sync_ingest buyers --cancel 42
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from sync.ingest.exceptions import IngestError, SyncAlreadyRunningError
from sync.ingest.pipeline import request_cancel, run_ingest
from sync.management.commands._progress import ProgressLine, bar
from sync.models import SyncRun


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser) -> None:
        parser.add_argument("source", help="a source of SYNC_INGEST_SOURCES_FILE, e.g. buyers")
        parser.add_argument("--file", help="read this .csv/.xlsx instead of the configured one")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="validate and compare, report what would change, write nothing",
        )
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument(
            "--cancel",
            type=int,
            metavar="RUN_ID",
            help="ask a running run of this source to stop after its batch",
        )

    def handle(
        self, *args, source, file, dry_run, batch_size, cancel, verbosity, **options
    ) -> None:
        if cancel is not None:
            if not request_cancel(cancel):
                msg = f"run {cancel} is not running (see sync_health {source})"
                raise CommandError(msg)
            self.stdout.write(f"run {cancel}: cancel requested; it stops after its batch")
            return

        line = ProgressLine(self.stdout, enabled=verbosity >= 1)

        def progress(run: SyncRun) -> None:
            line.show(f"{source:12} {bar(run.rows_done, run.rows_total)}")

        try:
            with line:
                run = run_ingest(
                    source, file=file, dry_run=dry_run, batch_size=batch_size, progress=progress
                )
        except SyncAlreadyRunningError as e:
            raise CommandError(str(e)) from e
        except IngestError as e:
            msg = f"{e}. Check {source!r} in SYNC_INGEST_SOURCES_FILE."
            raise CommandError(msg) from e
        self.stdout.write(describe(run))
        if run.status == SyncRun.Status.FAILED:
            msg = f"run {run.pk} failed: {run.message}"
            raise CommandError(msg)


def describe(run: SyncRun) -> str:
    gaps = "" if run.gaps is None else f", {run.gaps} gap(s)"
    errors = ", ".join(f"{k} {v}" for k, v in sorted(run.errors_by_category.items()))
    speed = f", {run.throughput:,.0f} rows/s" if run.throughput else ""
    return (
        f"run {run.pk} {run.source}{' (dry run)' if run.dry_run else ''}: {run.status}; "
        f"{run.rows_done} rows: {run.created} created, {run.updated} updated, "
        f"{run.unchanged} unchanged, {run.failed} failed{gaps}{speed}"
        + (f"; errors: {errors}" if errors else "")
        + (
            f"; {run.message}"
            if run.status in (SyncRun.Status.FAILED, SyncRun.Status.CANCELLED)
            else ""
        )
    )
