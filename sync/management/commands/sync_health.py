"""Health of each spreadsheet source: last run, last success, 24 h success rate, retry
queue."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from sync.ingest.source_checks import source_health
from sync.management.commands._progress import engine_errors


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser) -> None:
        parser.add_argument("source", nargs="?")

    def handle(self, *args, source, verbosity, **options) -> None:
        with engine_errors():
            found = source_health(source)
        for health in found:
            last = health.last_run
            rate = (
                "n/a"
                if health.success_rate_24h is None
                else f"{health.success_rate_24h:.0%} of {health.runs_24h}"
            )
            self.stdout.write(
                f"{health.source}: last run "
                + (
                    f"{last.pk} {last.status} at {last.created_at:%Y-%m-%d %H:%M:%S}, "
                    f"gaps {last.gaps if last.gaps is not None else 'n/a'}"
                    if last
                    else "never"
                )
                + "; last success "
                + (
                    f"{health.last_success.created_at:%Y-%m-%d %H:%M:%S}"
                    if health.last_success
                    else "never"
                )
                + f"; 24h success {rate}; retry queue {health.retry_pending} pending, "
                f"{health.retry_permanent} permanently failed"
            )
