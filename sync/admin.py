"""Django's admin autodiscovery imports ``<app>.admin``: the sync engine's console pages live
in ``sync.console.admin`` (one module per concern)."""

from sync.console import admin  # noqa: F401 - registers the console's admin classes
