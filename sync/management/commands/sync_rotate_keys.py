"""Re-encrypt every cached Tier 2/3 value under the newest key of SYNC_ENCRYPTION_KEYS."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from sync.cache.rotation import rotate_all
from sync.cache.tiers import keyring
from sync.management.commands._progress import engine_errors


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args, verbosity, **options) -> None:
        ring = keyring()
        self.stdout.write(
            f"current key: {ring.current_id}; also decrypting with: "
            f"{', '.join(list(ring.keys)[1:]) or 'none'}"
        )

        def progress(report) -> None:
            if verbosity >= 2:
                self.stdout.write(f"  {report.label}: {report.scanned} keys scanned")

        with engine_errors():
            reports = rotate_all(progress=progress)
        for report in reports:
            self.stdout.write(str(report))
        self.stdout.write(
            "done: no cached value is left under an old key; the old keys can be "
            "removed from SYNC_ENCRYPTION_KEYS"
        )
