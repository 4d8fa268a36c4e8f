"""Refill the cache Redis from PostgreSQL (cold start), in pipelined versioned batches."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from sync.cache import autowarm
from sync.cache.maintenance import warm_models
from sync.management.commands._progress import ProgressLine, bar, engine_errors


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser) -> None:
        parser.add_argument("models", nargs="*", help="e.g. catalog.part (default: all synced)")
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument(
            "--cold",
            action="store_true",
            help="run the automatic warm by hand (all models, resuming a stopped one, its "
            "progress on /health/ and the dashboard); what a worker does by itself",
        )

    def handle(self, *args, models, batch_size, verbosity, cold, **options) -> None:
        if cold:
            self._cold(models, batch_size, verbosity)
            return
        started = time.perf_counter()

        line = ProgressLine(self.stdout, enabled=verbosity >= 1)

        def progress(state) -> None:
            line.show(f"{state.label:24} {bar(state.done, state.total)}")

        with engine_errors(), line:
            results = warm_models(models or None, batch_size=batch_size, progress=progress)
        elapsed = time.perf_counter() - started
        rows = sum(r.done for r in results)
        self.stdout.write(
            f"warmed {rows} rows of {len(results)} model(s) in {elapsed:.2f}s "
            f"({rows / elapsed if elapsed else 0:,.0f} rows/s); "
            f"{sum(r.written for r in results)} written, the rest already current"
        )

    def _cold(self, models: list[str], batch_size: int | None, verbosity: int) -> None:
        if models:
            msg = "--cold warms every synced model; name no model with it"
            raise CommandError(msg)

        line = ProgressLine(self.stdout, enabled=verbosity >= 1)

        def progress(state: autowarm.WarmState) -> None:
            line.show(bar(state.done, state.total))

        with engine_errors():
            before = autowarm.state()
            if before.running:
                self.stdout.write(f"another warm is running: {before.describe()}")
                return
            with line:
                after = autowarm.run_warm(batch_size=batch_size, progress=progress)
        self.stdout.write(f"was: {before.describe()}\nnow: {after.describe()}")
