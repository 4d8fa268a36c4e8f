"""Drain the cache retry queue (sync_retry_queue) into Redis now."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from sync.cache.metrics import queue_figures
from sync.cache.replay import replay_pending


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--all", action="store_true", help="also take intents whose backoff has not run out yet"
        )
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--max-batches", type=int, default=None)

    def handle(self, *args, all, batch_size, max_batches, verbosity, **options) -> None:  # noqa: A002
        def progress(result) -> None:
            if verbosity >= 2:
                self.stdout.write(f"batch {result.batches}: {result.written} written")

        result = replay_pending(
            batch_size=batch_size, max_batches=max_batches, include_not_due=all, progress=progress
        )
        figures = queue_figures()
        self.stdout.write(
            f"{result}; queue now {figures['pending']} pending, {figures['dead']} dead"
        )
