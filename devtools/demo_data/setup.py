"""Prepare the demo: the ``admin`` superuser with the password from ``DEMO_ADMIN_PASSWORD``,
then each app's demo data, then a cache verification (so the console's dashboard shows a
consistency figure from the start).

Each app of ``DEMO_APPS`` has a module of this package defining ``load(*, count: int) -> str``.
Every demo start calls it, so it must be idempotent (upserts on natural keys): a second start
reuses the data instead of duplicating it. It returns a one-line summary for the console.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TextIO

from django.contrib.auth import get_user_model
from django.db import transaction

from sync.cache.maintenance import verify_models

DEMO_APPS = ("catalog", "customers", "buyers", "sellers")


class DemoSetupError(RuntimeError):
    """The demo cannot be prepared for a reason the caller can fix (the message says how)."""


def demo_setup(*, count: int = 300, stdout: TextIO | None = None) -> None:
    """Create or update the demo superuser and load each app's demo data (idempotent), writing
    one line per step to ``stdout`` (default: ``sys.stdout``)."""
    out = stdout or sys.stdout
    password = os.environ.get("DEMO_ADMIN_PASSWORD")
    if not password:
        msg = "set DEMO_ADMIN_PASSWORD (./dev demo does this for you)"
        raise DemoSetupError(msg)
    with transaction.atomic():
        user, created = get_user_model().objects.get_or_create(
            username="admin", defaults={"email": "admin@example.invalid"}
        )
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
    out.write(f"{'created' if created else 'reusing'} superuser admin (new password set)\n")
    for app in DEMO_APPS:
        module = importlib.import_module(f"devtools.demo_data.{app}")
        out.write(f"{app}: {module.load(count=count)}\n")
    reports = verify_models()
    rows = sum(r.rows for r in reports)
    consistent = sum(r.consistent for r in reports)
    out.write(f"cache verification: {consistent} of {rows} synced rows consistent\n")
    out.flush()
