"""Retry the rows of the record retry queue whose backoff ran out."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from sync.ingest import retry
from sync.ingest.source_checks import retry_records
from sync.management.commands.sync_ingest import describe


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser) -> None:
        parser.add_argument("--source")
        parser.add_argument("--all", action="store_true", help="also rows not yet due")

    def handle(self, *args, source, all, verbosity, **options) -> None:  # noqa: A002
        runs = retry_records(source=source, include_not_due=all)
        for run in runs:
            self.stdout.write(describe(run))
        left = retry.stats()
        summary = (
            "; ".join(
                f"{src}: " + ", ".join(f"{n} {status}" for status, n in counts.items())
                for src, counts in sorted(left.items())
            )
            or "empty"
        )
        self.stdout.write(f"{len(runs)} retry run(s); queue now: {summary}")
