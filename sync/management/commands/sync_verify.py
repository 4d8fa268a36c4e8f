"""Compare PostgreSQL and the cache Redis row by row; report (and with --repair, fix)
missing, stale and extra keys, with the consistency figure in "nines"."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from sync.cache.declaration import synced_models
from sync.cache.maintenance import verify_models
from sync.management.commands._progress import ProgressLine, bar, engine_errors


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser) -> None:
        parser.add_argument("models", nargs="*", help="e.g. catalog.part (default: all synced)")
        parser.add_argument(
            "--repair",
            action="store_true",
            help="rewrite missing/stale keys and tombstone extra ones",
        )
        parser.add_argument("--list", action="store_true", help="list the synced models")
        parser.add_argument("--batch-size", type=int, default=None)

    def handle(self, *args, models, repair, list, batch_size, verbosity, **options) -> None:  # noqa: A002
        if list:
            for spec in synced_models():
                self.stdout.write(f"{spec.label}  tier {int(spec.tier)}  ttl {spec.ttl}s")
            return

        line = ProgressLine(self.stdout, enabled=verbosity >= 2)

        def progress(report, total) -> None:
            line.show(f"{report.label:24} {bar(report.rows, total)}")

        with engine_errors(), line:
            reports = verify_models(
                models or None, repair=repair, batch_size=batch_size, progress=progress
            )
        for report in reports:
            self.stdout.write(str(report))
            if verbosity >= 1:
                for kind, keys in report.examples.items():
                    if keys:
                        self.stdout.write(f"  {kind}: {', '.join(keys)}")
        rows = sum(r.rows for r in reports)
        consistent = sum(r.consistent for r in reports)
        fraction = consistent / rows if rows else 1.0
        self.stdout.write(f"total: {rows} rows, {fraction:.6%} consistent")
        if not all(r.ok for r in reports) and not repair:
            msg = "inconsistencies found; run again with --repair to fix them"
            raise CommandError(msg)
