"""Prepare the demo: the ``admin`` superuser with the password from ``DEMO_ADMIN_PASSWORD``
and, on the first run, each app's demo data (``<app>.demo.load``)."""

from __future__ import annotations

import importlib
import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

DEMO_APPS = ("catalog", "customers", "buyers", "sellers")


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args, **options) -> None:
        password = os.environ.get("DEMO_ADMIN_PASSWORD")
        if not password:
            msg = "set DEMO_ADMIN_PASSWORD (./dev demo does this for you)"
            raise CommandError(msg)
        user, created = get_user_model().objects.get_or_create(
            username="admin", defaults={"email": "admin@example.invalid"}
        )
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        self.stdout.write(f"{'created' if created else 'updated'} superuser admin")
        for app in DEMO_APPS:
            try:
                module = importlib.import_module(f"{app}.demo")
            except ModuleNotFoundError:
                continue
            self.stdout.write(f"{app}: {module.load()}")
