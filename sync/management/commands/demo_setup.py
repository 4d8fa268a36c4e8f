"""Prepare the demo: the ``admin`` superuser with the password from ``DEMO_ADMIN_PASSWORD``,
then each app's demo data, then a cache verification (so the console's dashboard shows a
consistency figure from the start).

Each app of ``DEMO_APPS`` defines ``load(*, count: int) -> str`` in ``<app>/demo.py``. Every demo
start calls it, so it must be idempotent (upserts on natural keys, DESIGN I7): a second start
reuses the data instead of duplicating it. It returns a one-line summary for the console.
"""

from __future__ import annotations

import importlib
import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from sync.cache.maintenance import verify_models

DEMO_APPS = ("catalog", "customers", "buyers", "sellers")


class Command(BaseCommand):
    help = "Create or update the demo superuser and load each app's demo data (idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--count", type=int, default=300, help="rows per demo model (default: 300)"
        )

    def handle(self, *args, count: int, **options) -> None:
        password = os.environ.get("DEMO_ADMIN_PASSWORD")
        if not password:
            msg = "set DEMO_ADMIN_PASSWORD (./dev demo does this for you)"
            raise CommandError(msg)
        with transaction.atomic():
            user, created = get_user_model().objects.get_or_create(
                username="admin", defaults={"email": "admin@example.invalid"}
            )
            user.is_staff = user.is_superuser = True
            user.set_password(password)
            user.save()
        self.stdout.write(
            f"{'created' if created else 'reusing'} superuser admin (new password set)"
        )
        for app in DEMO_APPS:
            module = importlib.import_module(f"{app}.demo")
            self.stdout.write(f"{app}: {module.load(count=count)}")
        reports = verify_models()
        rows = sum(r.rows for r in reports)
        consistent = sum(r.consistent for r in reports)
        self.stdout.write(f"cache verification: {consistent} of {rows} synced rows consistent")
