"""pytest plugin (``-p config.testservices``): real servers for the test run.

It runs before pytest-django reads the settings. For every service URL that is unset it starts
an embedded server under ``.run/test`` (separate from the demo's ``.run/dev``) and exports the
URL; at the end of the run it stops what this profile runs, so a test run never leaves a
server behind. ``DATABASE_URL`` / ``REDIS_URL`` / ``CELERY_BROKER_URL`` point the suite at
external servers instead.
"""

from __future__ import annotations

import os

import pytest

from config.devservices import Services

PROFILE = "test"
_state: dict[str, object] = {"services": None, "embedded": frozenset()}


def embedded() -> frozenset[str]:
    """Which of ``database``, ``cache``, ``broker`` are embedded servers of this run."""
    return _state["embedded"]  # type: ignore[return-value]


def services() -> Services:
    return _state["services"] or Services(PROFILE)  # type: ignore[return-value]


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return  # the controller started them and exported the URLs
    wanted = {
        "database": not os.environ.get("DATABASE_URL"),
        "cache": not os.environ.get("REDIS_URL"),
        "broker": not os.environ.get("CELERY_BROKER_URL"),
    }
    _state["embedded"] = frozenset(name for name, want in wanted.items() if want)
    os.environ["SYNCOPS_SERVICES_PROFILE"] = PROFILE
    os.environ.setdefault("DJANGO_ENV", "development")
    if not any(wanted.values()):
        return
    svc = Services(PROFILE)
    _state["services"] = svc
    os.environ.update(svc.start(**wanted))


def pytest_unconfigure(config) -> None:
    svc = _state["services"]
    if svc is not None:
        svc.stop()  # type: ignore[attr-defined]
        _state["services"] = None
